//! Operator authentication (DESIGN §7, "every control-plane API call is
//! authenticated"; ADR 0025): named operator tokens, each with a [`Role`].
//!
//! A token is 256 random bits in unpadded base64url behind a prefix that says its role
//! ([`ADMIN_TOKEN_PREFIX`], [`READ_ONLY_TOKEN_PREFIX`]), so a leaked one is
//! recognisable. The store keeps its SHA-256 ([`OperatorToken`]), never the token: the
//! plaintext is shown once, when it is created. On a store's first start the control
//! plane creates the admin token [`BOOTSTRAP_TOKEN_NAME`] and writes it to a local file
//! (mode 0600, see [`write_token_file`]) for `weft token admin` to print; the admin
//! token of earlier versions became that token (store migration 0004).
//!
//! Every API route except `/healthz` and `/readyz` requires
//! `Authorization: Bearer <token>`:
//!
//! | presented | answer |
//! |---|---|
//! | nothing | `401`, `WWW-Authenticate: Bearer` |
//! | a token no operator token hashes to | `403` |
//! | an expired or revoked token | `401`, saying which and how to get a new one |
//! | a `read-only` token, method other than `GET`/`HEAD` | `403`, naming the role |
//! | a usable token allowed the method | served |
//!
//! The hot path: presented tokens are hashed and looked up in an in-memory index keyed
//! by hash ([`OperatorAuth`]). Lookup by hash is safe against timing attacks: what a
//! comparison's time could reveal is how much of the presented token's SHA-256 matches
//! a stored hash, and learning a stored hash gives no token (that needs a preimage).
//! The found entry's hash is still compared in constant time.
//!
//! Several instances share the store, and operator tokens are not in the change feed:
//! each instance re-reads the whole (short) table when its index is older than
//! [`REFRESH_INTERVAL`], before answering the request that found it so. So a token
//! revoked on one instance is refused by every other within [`REFRESH_INTERVAL`] (plus
//! the time of the read), and at once by the instance that revoked it. A token no entry
//! matches re-reads the table too, at most once per [`MISS_REFRESH_INTERVAL`], so a
//! token created on another instance works without waiting for the refresh. When the
//! table cannot be read, the stale index is not trusted: the answer is `503`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::digest::{digest, SHA256};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::error::Error as ApiError;
use crate::store::{OperatorToken, Role, Store, StoreError};

/// Prefix of every admin token.
pub const ADMIN_TOKEN_PREFIX: &str = "weft-admin-";

/// Prefix of every read-only token.
pub const READ_ONLY_TOKEN_PREFIX: &str = "weft-read-";

/// Name of the file, in the control plane's data directory, holding the plaintext of
/// the [`BOOTSTRAP_TOKEN_NAME`] token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Name of the admin token the control plane creates on a store's first start (and
/// `weft control-plane admin-token reset` replaces).
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap";

/// Paths open without a token: liveness and readiness probes.
pub const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Longest an instance answers from its index without re-reading the store: 2 s. The
/// bound on how long a token revoked on another instance keeps working here.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Shortest time between re-reads caused by tokens no entry matches: 250 ms. Bounds
/// what a flood of made-up tokens costs the store.
pub const MISS_REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// Checks presented operator tokens against the store's, through an index of their
/// hashes refreshed as the [module docs](self) say.
pub struct OperatorAuth {
    store: Arc<dyn Store>,
    refresh: Duration,
    index: RwLock<Arc<Index>>,
    /// Held while the index is re-read, so that concurrent requests read it once.
    reload: tokio::sync::Mutex<()>,
}

/// The usable and unusable tokens by hash, and when they were read.
struct Index {
    by_hash: HashMap<[u8; 32], OperatorToken>,
    /// `None`: never read.
    loaded: Option<Instant>,
}

/// Who presented a usable token: put in the request's extensions for the handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// What a presented token turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A usable token.
    Valid(Operator),
    /// A token that expired (the stored record).
    Expired(OperatorToken),
    /// A token that was revoked (the stored record).
    Revoked(OperatorToken),
    /// No operator token hashes to it.
    Unknown,
}

/// A token just created: the plaintext (shown once) and what the store keeps.
#[derive(Clone, Debug)]
pub struct Created {
    /// The token.
    pub token: String,
    /// Its record.
    pub record: OperatorToken,
}

/// Why an operator token could not be created or its file written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system random generator failed.
    #[error("cannot generate an operator token: the system random generator failed")]
    Random,
    /// An unrevoked, unexpired token already has the name.
    #[error(
        "an operator token named {0:?} exists: pick another name, or revoke it first \
         (`weft token admin revoke {0}`; to rotate, create the new token under another name, \
         switch to it, then revoke the old one)"
    )]
    Exists(String),
    /// The token file could not be written.
    #[error("cannot write the admin token to {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

// === impl OperatorAuth ===

impl OperatorAuth {
    /// Checks tokens against `store`'s, re-reading them every [`REFRESH_INTERVAL`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        OperatorAuth {
            store,
            refresh: REFRESH_INTERVAL,
            index: RwLock::new(Arc::new(Index {
                by_hash: HashMap::new(),
                loaded: None,
            })),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-reads the tokens every `refresh` instead (tests).
    #[must_use]
    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    /// What `token` is at `now`: usable (with its operator), expired, revoked or
    /// unknown. `Err` when the index is due a re-read and the store cannot be read.
    pub async fn check(&self, token: &str, now: SystemTime) -> Result<Check, StoreError> {
        let hash = sha256(token);
        let mut index = self.current();
        if index.older_than(self.refresh) {
            index = self.reload_if_older(self.refresh).await?;
        }
        if !index.by_hash.contains_key(&hash) && index.older_than(MISS_REFRESH_INTERVAL) {
            index = self.reload_if_older(MISS_REFRESH_INTERVAL).await?;
        }
        let Some(found) = index.by_hash.get(&hash) else {
            return Ok(Check::Unknown);
        };
        let stored = unhex(&found.hash);
        if !stored.is_some_and(|stored| constant_time_eq(&stored, &hash)) {
            return Ok(Check::Unknown);
        }
        Ok(if found.is_expired(now) {
            Check::Expired(found.clone())
        } else if found.revoked_at.is_some() {
            Check::Revoked(found.clone())
        } else {
            Check::Valid(Operator {
                name: found.name.clone(),
                role: found.role,
            })
        })
    }

    /// Makes the next check re-read the store: after this instance created or revoked
    /// a token, so that the change applies here at once.
    pub fn invalidate(&self) {
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        *index = Arc::new(Index {
            by_hash: index.by_hash.clone(),
            loaded: None,
        });
    }

    fn current(&self) -> Arc<Index> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the store unless another request did while this one waited.
    async fn reload_if_older(&self, age: Duration) -> Result<Arc<Index>, StoreError> {
        let _reloading = self.reload.lock().await;
        let index = self.current();
        if !index.older_than(age) {
            return Ok(index);
        }
        let tokens = self.store.operator_tokens().await?;
        let by_hash = tokens
            .into_iter()
            .filter_map(|token| Some((unhex(&token.hash)?, token)))
            .collect();
        let fresh = Arc::new(Index {
            by_hash,
            loaded: Some(Instant::now()),
        });
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        Ok(fresh)
    }
}

impl std::fmt::Debug for OperatorAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorAuth")
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl Index {
    fn older_than(&self, age: Duration) -> bool {
        self.loaded.is_none_or(|at| at.elapsed() >= age)
    }
}

// === tokens ===

/// Creates the admin token [`BOOTSTRAP_TOKEN_NAME`] when the store has no operator
/// token at all (its first start), and returns it: the only time its plaintext is
/// known. `None` when the store has tokens, or another instance starting at the same
/// time created it first.
pub async fn create_bootstrap(store: &dyn Store) -> Result<Option<String>, Error> {
    if !store.operator_tokens().await?.is_empty() {
        return Ok(None);
    }
    let created = new_token(BOOTSTRAP_TOKEN_NAME, Role::Admin, None, SystemTime::now())?;
    Ok(store
        .create_operator_token(&created.record, false)
        .await?
        .then_some(created.token))
}

/// Replaces the admin token [`BOOTSTRAP_TOKEN_NAME`] with a new one (revoking the old
/// one, if any, in the same transaction), leaving every other token as it is: the
/// recovery path when the token file is lost (`weft control-plane admin-token reset`).
pub async fn reset_bootstrap(store: &dyn Store) -> Result<Created, Error> {
    let created = new_token(BOOTSTRAP_TOKEN_NAME, Role::Admin, None, SystemTime::now())?;
    if store.create_operator_token(&created.record, true).await? {
        Ok(created)
    } else {
        Err(Error::Exists(BOOTSTRAP_TOKEN_NAME.to_owned()))
    }
}

/// Creates operator token `name` with `role`, valid from `now` for `ttl` (for ever
/// when `None`). `name` and `ttl` are the caller's to check.
pub async fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
    ttl: Option<Duration>,
    now: SystemTime,
) -> Result<Created, Error> {
    let created = new_token(name, role, ttl, now)?;
    if store.create_operator_token(&created.record, false).await? {
        Ok(created)
    } else {
        Err(Error::Exists(name.to_owned()))
    }
}

/// A fresh token and its record (whole seconds, as the store keeps them).
fn new_token(
    name: &str,
    role: Role,
    ttl: Option<Duration>,
    now: SystemTime,
) -> Result<Created, Error> {
    let now = whole_seconds(now);
    let token = generate_token(role)?;
    let mut id = [0u8; 16];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| Error::Random)?;
    Ok(Created {
        record: OperatorToken {
            id: hex::encode(id),
            name: name.to_owned(),
            role,
            hash: hash_hex(&token),
            created_at: now,
            expires_at: ttl.map(|ttl| now + ttl),
            revoked_at: None,
        },
        token,
    })
}

/// A fresh token of `role`: its prefix and 256 random bits in unpadded base64url.
pub fn generate_token(role: Role) -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Random)?;
    let prefix = match role {
        Role::Admin => ADMIN_TOKEN_PREFIX,
        Role::ReadOnly => READ_ONLY_TOKEN_PREFIX,
    };
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The SHA-256 of `token` as the store keeps it: 64 lower-case hex digits.
pub fn hash_hex(token: &str) -> String {
    hex::encode(sha256(token))
}

/// Writes `token` to `path` atomically (a temporary file in the same directory, mode
/// 0600, renamed over `path`), creating the directory if missing.
pub fn write_token_file(path: &Path, token: &str) -> Result<(), Error> {
    let fail = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let name = path.file_name().map_or_else(
        || ADMIN_TOKEN_FILE.to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        // A leftover from a crash may have another mode; start from nothing.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(fail)
}

/// The middleware on [`router`](super::router): requires a usable operator token on
/// every path but [`OPEN_PATHS`], and an admin one for any method but `GET` and `HEAD`.
/// The [`Operator`] goes into the request's extensions.
pub(super) async fn require_operator(
    State(auth): State<Arc<OperatorAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Some(token) = bearer(request.headers()) else {
        return unauthorized(ApiError::unauthorized(
            "this API needs an operator token: send `Authorization: Bearer <token>`; \
             get the admin token with `weft token admin` on the control-plane host and give it \
             to the CLI with --token, $WEFT_TOKEN or `token:` in ~/.config/weft/config.yaml",
        ));
    };
    let operator = match auth.check(token, SystemTime::now()).await {
        Ok(Check::Valid(operator)) => operator,
        Ok(Check::Unknown) => {
            return ApiError::forbidden(
                "the bearer token is not an operator token of this control plane; get the \
                 admin token with `weft token admin` on the control-plane host, or ask an admin \
                 for a token (`weft token admin create NAME`)",
            )
            .into_response()
        }
        Ok(Check::Expired(token)) => {
            let at = token.expires_at.map_or_else(String::new, |at| {
                format!(" at {}", humantime::format_rfc3339_seconds(at))
            });
            return unauthorized(ApiError::unauthorized(format!(
                "the operator token {:?} expired{at}; {}",
                token.name,
                new_token_hint(&token)
            )));
        }
        Ok(Check::Revoked(token)) => {
            let at = token.revoked_at.map_or_else(String::new, |at| {
                format!(" at {}", humantime::format_rfc3339_seconds(at))
            });
            return unauthorized(ApiError::unauthorized(format!(
                "the operator token {:?} was revoked{at}; {}",
                token.name,
                new_token_hint(&token)
            )));
        }
        // The index is due a re-read: a stale one could accept a revoked token.
        Err(error) => return ApiError::from(error).into_response(),
    };
    if !allows(operator.role, request.method()) {
        return ApiError::forbidden(format!(
            "the operator token {:?} has role {}, which may only read (GET); {} {} needs an \
             admin token: ask an admin for one (`weft token admin create NAME --role admin`)",
            operator.name,
            operator.role,
            request.method(),
            request.uri().path()
        ))
        .into_response();
    }
    request.extensions_mut().insert(operator);
    next.run(request).await
}

/// Whether `role` may use `method` (on any path).
pub fn allows(role: Role, method: &Method) -> bool {
    match role {
        Role::Admin => true,
        Role::ReadOnly => matches!(*method, Method::GET | Method::HEAD),
    }
}

/// How the holder of `token`, which no longer works, gets a new one.
fn new_token_hint(token: &OperatorToken) -> String {
    if token.name == BOOTSTRAP_TOKEN_NAME {
        "get the current admin token with `weft token admin` on the control-plane host, or \
         make a new one there with `weft control-plane admin-token reset`"
            .to_owned()
    } else {
        "ask an admin for a new token (`weft token admin create NAME`)".to_owned()
    }
}

fn unauthorized(error: ApiError) -> Response {
    (
        [(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        error,
    )
        .into_response()
}

/// The token of an `Authorization: Bearer …` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn sha256(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// 64 hex digits as 32 bytes; `None` if they are not.
fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// `time` without its fraction of a second, as the store keeps times.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::time::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_by_role_base64url_of_256_bits_and_differ() {
        for (role, prefix) in [
            (Role::Admin, ADMIN_TOKEN_PREFIX),
            (Role::ReadOnly, READ_ONLY_TOKEN_PREFIX),
        ] {
            let a = generate_token(role).unwrap();
            let b = generate_token(role).unwrap();
            assert_ne!(a, b);
            let body = a.strip_prefix(prefix).unwrap();
            assert_eq!(body.len(), 43, "32 bytes in unpadded base64");
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap();
            assert_eq!(decoded.len(), 32);
        }
    }

    #[test]
    fn hashes_are_lower_case_hex_that_round_trips() {
        let hash = hash_hex("weft-admin-abc");
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash.to_lowercase());
        assert_eq!(unhex(&hash), Some(sha256("weft-admin-abc")));
        assert_eq!(unhex("not hex"), None);
        assert!(constant_time_eq(&sha256("a"), &sha256("a")));
        assert!(!constant_time_eq(&sha256("a"), &sha256("b")));
    }

    #[test]
    fn read_only_allows_only_get_and_head() {
        for method in [Method::GET, Method::HEAD] {
            assert!(allows(Role::ReadOnly, &method));
        }
        for method in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(!allows(Role::ReadOnly, &method), "{method}");
            assert!(allows(Role::Admin, &method), "{method}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_other_schemes_are_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  t0k "));
        assert_eq!(bearer(&headers), Some("t0k"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn the_token_file_is_written_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(ADMIN_TOKEN_FILE);
        write_token_file(&path, "weft-admin-x").unwrap();
        write_token_file(&path, "weft-admin-y").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "weft-admin-y\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
