//! [`JwksCache`]: the current key set of one issuer, read lock-free on the request
//! path and refreshed in the background.
//!
//! The set sits behind an [`ArcSwap`]: a request loads it without locking or
//! allocating, and a refresh swaps in a whole new set. Refreshes happen every
//! `refreshInterval` ([`JwksCache::spawn_refresh`]), and, for a `uri` source, when a
//! token names a key the set does not have ([`JwksCache::refresh_for_unknown_key`], at
//! most once per [`DEFAULT_UNKNOWN_KEY_GAP`]) — which is how a key rotation at the
//! issuer is picked up before the next interval. A refresh that fails (network,
//! status, size, a document with no usable key) keeps the last good set; a file source
//! is only re-read when its modification time or size changes.
//!
//! What it is not: a verifier (see [`crate::jwt::Verifier`]), or shared between issuers
//! by itself; a caller that configures the same source twice can share one cache.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, Guard};
use http::Uri;
use tokio::task::JoinHandle;

use super::fetch::Client;
use super::jwks::KeySet;
pub use super::load::Error;
use super::provider::{self, Jwks};
use crate::backoff::Backoff;

/// Largest key-set document read, from a file or a URL: 1 MiB. Real sets are a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Default least time between two refreshes caused by unknown `kid`s: `30s`. Tokens
/// with made-up `kid`s cannot make the proxy hammer the issuer.
pub const DEFAULT_UNKNOWN_KEY_GAP: Duration = Duration::from_secs(30);

/// First wait before retrying a failed refresh; it doubles up to the refresh interval.
const RETRY_INITIAL: Duration = Duration::from_secs(1);

/// What a successful refresh did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// A new set is in place, with this many usable and skipped keys.
    Updated {
        /// Usable keys.
        keys: usize,
        /// Keys left out (see [`KeySet::skipped`]).
        skipped: usize,
    },
    /// The file has not changed since it was last read; the set is as it was.
    Unchanged,
}

/// Where the set is read from.
#[derive(Debug)]
enum Source {
    File(PathBuf),
    Uri { uri: Uri, client: Client },
}

/// What refreshes remember; behind the refresh lock, so one refresh runs at a time.
#[derive(Debug, Default)]
struct RefreshState {
    /// Modification time and size of the file when it was last read.
    file_stamp: Option<(SystemTime, u64)>,
    /// When the last refresh for an unknown `kid` started.
    last_on_demand: Option<Instant>,
}

/// The current key set of one issuer, and how to refresh it.
#[derive(Debug)]
pub struct JwksCache {
    source: Source,
    current: ArcSwap<KeySet>,
    /// Bumped on every swap, so that requests that waited for a refresh know one
    /// happened.
    generation: AtomicU64,
    refresh: tokio::sync::Mutex<RefreshState>,
    refresh_interval: Duration,
    unknown_key_gap: Duration,
}

// === impl JwksCache ===

impl JwksCache {
    /// A cache for the source in `config`, empty until the first refresh. Reads the CA
    /// bundle of a `uri` source now; fetches nothing.
    pub fn build(config: &Jwks) -> Result<Self, Error> {
        config.validate("jwks").map_err(Error::Config)?;
        let source = match (&config.file, &config.uri, &config.ca_bundle) {
            (Some(file), None, None) => Source::File(file.clone()),
            (None, Some(uri), Some(ca_bundle)) => {
                let uri = provider::https_uri(uri).map_err(|message| {
                    Error::Config(weft_api::proxy::ValidationErrors(vec![
                        weft_api::proxy::FieldError {
                            path: "jwks.uri".to_owned(),
                            message,
                        },
                    ]))
                })?;
                let client = Client::build(ca_bundle, config.timeout, MAX_DOCUMENT_BYTES)?;
                Source::Uri { uri, client }
            }
            // `validate` allows no other combination.
            _ => {
                return Err(Error::Config(weft_api::proxy::ValidationErrors(vec![
                    weft_api::proxy::FieldError {
                        path: "jwks".to_owned(),
                        message: "needs exactly one of `file` or `uri` (with `caBundle`)"
                            .to_owned(),
                    },
                ])))
            }
        };
        Ok(Self {
            source,
            current: ArcSwap::from_pointee(KeySet::empty()),
            generation: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            refresh_interval: config.refresh_interval,
            unknown_key_gap: DEFAULT_UNKNOWN_KEY_GAP,
        })
    }

    /// Sets the least time between two refreshes caused by unknown `kid`s. Default:
    /// [`DEFAULT_UNKNOWN_KEY_GAP`] (`30s`).
    #[must_use]
    pub fn with_unknown_key_gap(mut self, gap: Duration) -> Self {
        self.unknown_key_gap = gap;
        self
    }

    /// The current set, without locking or allocating. Do not hold it across an
    /// `.await`.
    pub fn keys(&self) -> Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// How often [`JwksCache::spawn_refresh`] re-reads the source.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// Where the set comes from, for logs and errors: the file path or the URL.
    pub fn source(&self) -> String {
        match &self.source {
            Source::File(path) => path.display().to_string(),
            Source::Uri { uri, .. } => uri.to_string(),
        }
    }

    /// Re-reads the source now (waiting for a refresh already running) and swaps in the
    /// new set. On error the current set stays.
    pub async fn refresh(&self) -> Result<Refreshed, Error> {
        let mut state = self.refresh.lock().await;
        self.refresh_locked(&mut state).await
    }

    /// For a token whose `kid` (or key type) the current set lacks: refreshes from a
    /// `uri` unless one such refresh started less than the unknown-key gap ago. Returns
    /// whether the set changed since the caller looked, that is, whether looking the
    /// key up again can help. A file source is not re-read here (its interval does).
    pub async fn refresh_for_unknown_key(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        if matches!(self.source, Source::File(_)) {
            return false;
        }
        let mut state = self.refresh.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Someone refreshed while we waited for the lock.
            return true;
        }
        if state
            .last_on_demand
            .is_some_and(|last| last.elapsed() < self.unknown_key_gap)
        {
            return false;
        }
        state.last_on_demand = Some(Instant::now());
        match self.refresh_locked(&mut state).await {
            Ok(Refreshed::Updated { .. }) => true,
            Ok(Refreshed::Unchanged) => false,
            Err(error) => {
                tracing::warn!(%error, "refreshing a JWKS for an unknown key failed; keeping the last good set");
                false
            }
        }
    }

    /// Starts the task that refreshes the set now and then every refresh interval
    /// (sooner, with backoff, after a failure). The task ends when the cache is
    /// dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> JoinHandle<()> {
        let cache = Arc::downgrade(self);
        let interval = self.refresh_interval;
        tokio::spawn(run(cache, interval))
    }

    async fn refresh_locked(&self, state: &mut RefreshState) -> Result<Refreshed, Error> {
        let (set, from) = match &self.source {
            Source::File(path) => {
                let metadata = tokio::fs::metadata(path)
                    .await
                    .map_err(|source| Error::Read {
                        path: path.clone(),
                        source,
                    })?;
                let stamp = (
                    metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    metadata.len(),
                );
                if state.file_stamp == Some(stamp) {
                    return Ok(Refreshed::Unchanged);
                }
                if metadata.len() > MAX_DOCUMENT_BYTES as u64 {
                    return Err(Error::TooLarge {
                        from: path.display().to_string(),
                        max: MAX_DOCUMENT_BYTES,
                    });
                }
                let document = read_bounded(path).await?;
                let set = KeySet::parse(&document).map_err(|source| Error::Parse {
                    from: path.display().to_string(),
                    source,
                })?;
                state.file_stamp = Some(stamp);
                (set, path.display().to_string())
            }
            Source::Uri { uri, client } => {
                let document = client.get(uri).await?;
                let set = KeySet::parse(&document).map_err(|source| Error::Parse {
                    from: uri.to_string(),
                    source,
                })?;
                (set, uri.to_string())
            }
        };
        for skipped in set.skipped() {
            tracing::warn!(
                jwks = %from,
                index = skipped.index,
                kid = skipped.kid.as_deref().unwrap_or(""),
                reason = %skipped.reason,
                "skipping a key of the JWKS that cannot be used"
            );
        }
        let refreshed = Refreshed::Updated {
            keys: set.len(),
            skipped: set.skipped().len(),
        };
        self.current.store(Arc::new(set));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(refreshed)
    }
}

/// Reads at most [`MAX_DOCUMENT_BYTES`] (+1, to tell a file that grew) of `path`.
async fn read_bounded(path: &PathBuf) -> Result<Vec<u8>, Error> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
    let mut document = Vec::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut document)
        .await
        .map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::TooLarge {
            from: path.display().to_string(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    Ok(document)
}

/// The refresh loop of [`JwksCache::spawn_refresh`].
async fn run(cache: Weak<JwksCache>, interval: Duration) {
    let mut backoff = Backoff::new(RETRY_INITIAL, interval);
    loop {
        let wait = {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            match cache.refresh().await {
                Ok(refreshed) => {
                    if let Refreshed::Updated { keys, skipped } = refreshed {
                        tracing::debug!(jwks = %cache.source(), keys, skipped, "JWKS loaded");
                    }
                    backoff.reset();
                    interval
                }
                Err(error) => {
                    tracing::warn!(%error, "refreshing a JWKS failed; keeping the last good set");
                    backoff.next_delay().max(Duration::from_millis(100))
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file_config(path: &std::path::Path) -> Jwks {
        Jwks {
            file: Some(path.to_owned()),
            uri: None,
            ca_bundle: None,
            refresh_interval: Duration::from_secs(1),
            timeout: provider::DEFAULT_FETCH_TIMEOUT,
        }
    }

    fn write(path: &std::path::Path, text: &str) {
        let mut file = std::fs::File::create(path).expect("creates the JWKS file");
        file.write_all(text.as_bytes())
            .expect("writes the JWKS file");
    }

    const ED_KEY_A: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    const ED_KEY_B: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"b","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"OKP","crv":"Ed25519","kid":"c","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn kids(cache: &JwksCache) -> Vec<String> {
        cache
            .keys()
            .keys()
            .iter()
            .filter_map(|k| k.kid().map(str::to_owned))
            .collect()
    }

    #[tokio::test]
    async fn file_source_reloads_only_when_the_file_changes_and_keeps_the_last_good_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        write(&path, ED_KEY_A);
        let cache = JwksCache::build(&file_config(&path)).expect("builds");
        assert!(
            cache.keys().is_empty(),
            "nothing is read before the first refresh"
        );

        assert_eq!(
            cache.refresh().await.expect("first read"),
            Refreshed::Updated {
                keys: 1,
                skipped: 0
            }
        );
        assert_eq!(kids(&cache), vec!["a"]);
        assert_eq!(
            cache.refresh().await.expect("no change"),
            Refreshed::Unchanged
        );

        // A different size changes the stamp even within one mtime tick.
        write(&path, ED_KEY_B);
        assert_eq!(
            cache.refresh().await.expect("re-read"),
            Refreshed::Updated {
                keys: 2,
                skipped: 0
            }
        );
        assert_eq!(kids(&cache), vec!["b", "c"]);

        write(&path, "{\"keys\": []}");
        let err = cache.refresh().await.expect_err("an empty set is refused");
        assert!(matches!(err, Error::Parse { .. }), "{err}");
        assert_eq!(kids(&cache), vec!["b", "c"], "the last good set stays");

        std::fs::remove_file(&path).expect("removes");
        let err = cache.refresh().await.expect_err("a missing file fails");
        assert!(err.to_string().starts_with("reading jwks.file"), "{err}");
        assert_eq!(kids(&cache), vec!["b", "c"], "the last good set stays");
    }

    #[tokio::test]
    async fn file_source_refuses_a_document_over_the_size_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        write(&path, &" ".repeat(MAX_DOCUMENT_BYTES + 1));
        let cache = JwksCache::build(&file_config(&path)).expect("builds");
        let err = cache.refresh().await.expect_err("too large");
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    max: MAX_DOCUMENT_BYTES,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_refresh_task_loads_the_set_and_ends_with_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        write(&path, ED_KEY_A);
        let cache = Arc::new(JwksCache::build(&file_config(&path)).expect("builds"));
        let task = cache.spawn_refresh();
        let loaded = async {
            while cache.keys().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), loaded)
            .await
            .expect("the task loads the set");
        drop(cache);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task ends after the cache is dropped")
            .expect("the task does not panic");
    }

    #[test]
    fn refuses_a_uri_without_a_readable_ca_bundle() {
        let config = Jwks {
            file: None,
            uri: Some("https://127.0.0.1:1/jwks".into()),
            ca_bundle: Some("/nonexistent/ca.pem".into()),
            refresh_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
        };
        let err = JwksCache::build(&config).expect_err("an unreadable bundle is refused");
        assert!(
            err.to_string()
                .starts_with("jwks.caBundle /nonexistent/ca.pem:"),
            "{err}"
        );

        let config = Jwks {
            uri: Some("http://127.0.0.1:1/jwks".into()),
            ..config
        };
        let err = JwksCache::build(&config).expect_err("plain http is refused");
        assert!(err.to_string().contains("uses plain http"), "{err}");
    }
}
