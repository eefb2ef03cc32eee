//! Config from a local YAML file, re-read when it (or a certificate it names) changes.
//!
//! The file is polled (cheap: a read and a hash) rather than watched with inotify, so
//! editors that replace files by rename, bind mounts and config-management tools all
//! work the same; SIGHUP forces an immediate check. A file that fails to parse or
//! validate is reported with its field path and the previous config stays in force.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weft_api::proxy::{CertificatePaths, Config};
use weft_tls::Credentials;

use super::{Snapshot, Store};
use crate::telemetry::{Metrics, ReasonLabels};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with field paths.
        source: Box<weft_api::proxy::Error>,
    },
    /// The config is valid but could not be compiled (certificates, identities).
    #[error("{path}: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<super::Error>,
    },
}

/// Reads and validates `path`, loads the certificates it names, and compiles a snapshot
/// (reusing endpoint state from `previous`).
pub fn load(path: &Path, previous: Option<&Snapshot>) -> Result<Snapshot, Error> {
    let (text, version) = read(path)?;
    let mut config = Config::from_yaml(&text).map_err(|source| Error::Config {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    if let Some(c) = &mut config.certificates {
        *c = resolve(base, c);
    }
    let creds = match &config.certificates {
        Some(c) => Some(Arc::new(
            Credentials::from_pem_files(&c.cert, &c.key, &c.trust_bundle).map_err(|e| {
                Error::Snapshot {
                    path: path.to_owned(),
                    source: Box::new(super::Error::Credentials(e)),
                }
            })?,
        )),
        None => None,
    };
    if let Some(creds) = &creds {
        let expected = config.spiffe_id();
        if creds.identity().to_string() != expected {
            tracing::warn!(
                certificate = %creds.identity(),
                workload = %expected,
                "the certificate's SPIFFE ID differs from the workload's identity"
            );
        }
        if creds.is_expired() {
            tracing::error!(identity = %creds.identity(), "the workload certificate has expired; peers will refuse it");
        }
    }
    Snapshot::build(config, creds, version, previous).map_err(|source| Error::Snapshot {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Reads the file and hashes it together with the certificate files it names, so a
/// certificate rotation on disk is a change too.
fn read(path: &Path) -> Result<(String, String), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut hasher = DefaultHasher::new();
    hasher.write(text.as_bytes());
    // Hash certificate files named in the text, if it parses; errors surface in `load`.
    if let Ok(config) = Config::from_yaml(&text) {
        if let Some(c) = &config.certificates {
            let base = path.parent().unwrap_or_else(|| Path::new("."));
            let c = resolve(base, c);
            for file in [&c.cert, &c.key, &c.trust_bundle] {
                if let Ok(bytes) = std::fs::read(file) {
                    hasher.write(&bytes);
                }
            }
        }
    }
    Ok((text, format!("{:016x}", hasher.finish())))
}

fn resolve(base: &Path, c: &CertificatePaths) -> CertificatePaths {
    CertificatePaths {
        cert: base.join(&c.cert),
        key: base.join(&c.key),
        trust_bundle: base.join(&c.trust_bundle),
    }
}

/// Polls `path` every `interval` (and on SIGHUP) and swaps in each new valid config.
/// Calls `changed` after a swap so listeners can be reconciled.
pub async fn watch(
    path: PathBuf,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    changed: impl Fn(&Snapshot) + Send + 'static,
) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut rejected: Option<String> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: checking config");
            }
        }
        let Ok((_, version)) = read(&path) else {
            if rejected.as_deref() != Some("unreadable") {
                tracing::error!(path = %path.display(), "config file unreadable; keeping the current config");
                rejected = Some("unreadable".into());
            }
            continue;
        };
        let current = store.load();
        if version == current.version || rejected.as_deref() == Some(&version) {
            continue;
        }
        let started = std::time::Instant::now();
        match load(&path, Some(&current)) {
            Ok(next) => {
                tracing::info!(version = %next.version, took = ?started.elapsed(), "config reloaded");
                metrics
                    .reloads
                    .get_or_create(&ReasonLabels { reason: "applied" })
                    .inc();
                store.swap(next);
                changed(&store.load());
                rejected = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "config rejected; keeping the current config");
                metrics
                    .reloads
                    .get_or_create(&ReasonLabels { reason: "rejected" })
                    .inc();
                rejected = Some(version);
            }
        }
    }
}
