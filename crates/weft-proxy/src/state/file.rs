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

use weft_api::proxy::{CertificatePaths, Config, References};
use weft_tls::Credentials;

use super::Snapshot;
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

/// A validated config file with its certificates loaded.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The config (certificate paths resolved against the file's directory).
    pub config: Config,
    /// The credentials it names, loaded.
    pub creds: Option<Arc<Credentials>>,
    /// Content hash of the file and the certificate files.
    pub version: String,
}

/// Reads and validates `path`, loads the certificates it names, and compiles a snapshot
/// (reusing endpoint state from `previous`).
pub fn load(path: &Path, previous: Option<&Snapshot>) -> Result<Snapshot, Error> {
    let loaded = read_config(path, References::Required)?;
    Snapshot::build(loaded.config, loaded.creds, loaded.version, previous).map_err(|source| {
        Error::Snapshot {
            path: path.to_owned(),
            source: Box::new(source),
        }
    })
}

/// Reads and validates `path` and loads the certificates it names. With
/// [`References::Deferred`] the file is a bootstrap whose services come from the
/// control plane.
pub fn read_config(path: &Path, references: References) -> Result<Loaded, Error> {
    let (text, version) = read(path)?;
    let mut config = Config::from_yaml_with(&text, references).map_err(|source| Error::Config {
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
    Ok(Loaded {
        config,
        creds,
        version,
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
    if let Ok(config) = Config::from_yaml_with(&text, References::Deferred) {
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

/// Polls `path` every `interval` (and on SIGHUP) and hands each new valid config to
/// `apply`, which swaps it in (or reports why it could not). `applied` is the version
/// already in force.
pub async fn watch(
    path: PathBuf,
    references: References,
    mut applied: String,
    metrics: Arc<Metrics>,
    interval: Duration,
    apply: impl Fn(Loaded) -> Result<(), String> + Send + 'static,
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
        if version == applied || rejected.as_deref() == Some(&version) {
            continue;
        }
        let started = std::time::Instant::now();
        match read_config(&path, references)
            .map_err(|e| e.to_string())
            .and_then(|loaded| apply(loaded).map_err(|e| format!("{}: {e}", path.display())))
        {
            Ok(()) => {
                tracing::info!(%version, took = ?started.elapsed(), "config reloaded");
                metrics
                    .reloads
                    .get_or_create(&ReasonLabels { reason: "applied" })
                    .inc();
                applied = version;
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
