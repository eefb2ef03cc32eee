//! The workload certificate, from the control plane: the key is generated here and
//! never leaves the host; a CSR goes to the control plane's `Identity.Sign` with the
//! workload token, and the leaf, its chain and the trust bundle come back. The
//! credentials are persisted (key 0600) so a restart during a control-plane outage
//! still serves until the certificate expires, and renewed at half-life; each renewal
//! is swapped in without dropping connections (new handshakes use it, established
//! ones keep theirs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_tls::{Credentials, SpiffeId};

/// Where and how to get certificates.
#[derive(Clone, Debug)]
pub struct Options {
    /// Control-plane gRPC endpoint (the xDS address).
    pub endpoint: String,
    /// The roots that vouch for the control plane.
    pub trust: super::channel::Trust,
    /// The workload token file (`authorization: Bearer …`), re-read on every request.
    pub token_file: Option<PathBuf>,
    /// The identity to ask for (the control plane signs the token's identity).
    pub identity: SpiffeId,
    /// Where the issued credentials are kept.
    pub dir: PathBuf,
    /// Requested lifetime; `None` takes the control plane's default (24 h).
    pub ttl: Option<Duration>,
    /// The workload's name, sent so the control plane records which CA issued it.
    pub workload: String,
}

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file could not be read.
    #[error("workload token {}: {message}", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The key or CSR could not be generated.
    #[error("generating the key and CSR: {0}")]
    Csr(String),
    /// The control plane could not be reached.
    #[error("cannot reach the control plane at {endpoint}: {message}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The control plane refused.
    #[error("the control plane refused the certificate request: {}: {}", .0.code(), .0.message())]
    Refused(tonic::Status),
    /// The request failed in a way the error chain explains (nothing listening, wrong
    /// CA, `http://` to TLS, token refused).
    #[error("certificate request: {explained}")]
    Failed {
        /// What went wrong and what to do.
        explained: String,
        /// The status.
        source: tonic::Status,
    },
    /// What came back is not usable.
    #[error("the issued certificate is unusable: {0}")]
    Unusable(String),
    /// The credentials could not be written.
    #[error("cannot persist the certificate in {}: {source}", path.display())]
    Persist {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const BUNDLE_FILE: &str = "bundle.pem";

/// The trust bundle file kept in `dir` (the roots issued with the certificate).
pub fn bundle_file(dir: &Path) -> PathBuf {
    dir.join(BUNDLE_FILE)
}

/// The credentials persisted in `dir`, if present, loadable, not expired and for
/// `identity` (the workload's: a certificate a token for another identity once got is
/// never presented again).
pub fn load_persisted(dir: &Path, identity: &SpiffeId) -> Option<Arc<Credentials>> {
    let creds = Credentials::from_pem_files(
        &dir.join(CERT_FILE),
        &dir.join(KEY_FILE),
        &dir.join(BUNDLE_FILE),
    );
    match creds {
        Ok(c) if c.identity() != identity => {
            tracing::warn!(
                dir = %dir.display(),
                persisted = %c.identity(),
                workload = %identity,
                "the persisted certificate is for another identity; discarding it and requesting one for this workload"
            );
            None
        }
        Ok(c) if !c.is_expired() => Some(Arc::new(c)),
        Ok(c) => {
            tracing::warn!(dir = %dir.display(), identity = %c.identity(), "the persisted certificate has expired; requesting a new one");
            None
        }
        Err(e) => {
            if dir.join(CERT_FILE).exists() {
                tracing::warn!(dir = %dir.display(), error = %e, "the persisted certificate is unusable; requesting a new one");
            }
            None
        }
    }
}

/// Requests a certificate once and persists it.
pub async fn request(options: &Options) -> Result<Arc<Credentials>, Error> {
    let (key_pem, csr) = generate_csr(&options.identity)?;
    let endpoint = tonic::transport::Endpoint::from_shared(options.endpoint.clone())
        .map_err(|e| Error::Connect {
            endpoint: options.endpoint.clone(),
            message: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    let channel = super::channel::connect(&options.endpoint, &endpoint, &options.trust)
        .await
        .map_err(|e| Error::Connect {
            endpoint: options.endpoint.clone(),
            message: e.to_string(),
        })?;
    let mut client = pb::identity_client::IdentityClient::new(channel);
    let mut request = tonic::Request::new(pb::SignRequest {
        csr,
        ttl: options
            .ttl
            .and_then(|t| prost_types::Duration::try_from(t).ok()),
        workload: options.workload.clone(),
    });
    if let Some(path) = &options.token_file {
        let value = super::token::authorization(path).map_err(|message| Error::Token {
            path: path.clone(),
            message,
        })?;
        request
            .metadata_mut()
            .insert(pb::AUTHORIZATION_METADATA_KEY, value);
    }
    let response = client
        .sign(request)
        .await
        .map_err(|status| {
            match super::channel::explain_status(
                &options.endpoint,
                &options.trust,
                options.token_file.as_deref(),
                &status,
            ) {
                Some(explained) => Error::Failed {
                    explained,
                    source: status,
                },
                None => Error::Refused(status),
            }
        })?
        .into_inner();
    let chain_pem = weft_tls::bundle::certificates_pem(&response.cert_chain);
    let bundle_pem = weft_tls::bundle::certificates_pem(&response.trust_bundle);
    let creds = Credentials::from_pem(
        chain_pem.as_bytes(),
        key_pem.as_bytes(),
        bundle_pem.as_bytes(),
    )
    .map_err(|e| Error::Unusable(e.to_string()))?;
    if creds.identity() != &options.identity {
        // The control plane signs the token's identity: a token for another identity
        // must not change who this workload is.
        return Err(Error::Unusable(format!(
            "it is for {} but this workload is {}: the token file holds a token for \
             another identity; issue one with `weft token workload` for this workload's \
             namespace and service account",
            creds.identity(),
            options.identity
        )));
    }
    persist(&options.dir, &chain_pem, &key_pem, &bundle_pem).map_err(|source| Error::Persist {
        path: options.dir.clone(),
        source,
    })?;
    tracing::info!(
        identity = %creds.identity(),
        not_after = %humantime::format_rfc3339_seconds(creds.not_after()),
        "workload certificate issued by the control plane"
    );
    Ok(Arc::new(creds))
}

/// A fresh P-256 key (it never leaves this host) and a CSR for `id`.
fn generate_csr(id: &SpiffeId) -> Result<(String, Vec<u8>), Error> {
    weft_tls::csr::generate(id).map_err(|e| Error::Csr(e.to_string()))
}

/// Keeps a valid certificate: renews at half-life (retrying with backoff, never past
/// expiry), and at once (with up to a second of jitter) when `signer` names another CA
/// than the one that issued it (a CA rotation), and hands every new one to `install`.
pub async fn maintain(
    options: Options,
    mut current: Option<Arc<Credentials>>,
    mut signer: tokio::sync::watch::Receiver<String>,
    install: impl Fn(Arc<Credentials>) + Send + 'static,
    shutdown: CancellationToken,
) {
    let mut failures: u32 = 0;
    // Half-life counts from when a certificate arrived: the control plane backdates
    // `notBefore` for clock skew, which would make short-lived certificates renew late.
    let mut received = current.as_ref().map(|c| c.not_before());
    loop {
        let wait = match (&current, received) {
            (Some(c), Some(start)) => renew_in(start, c.not_after(), SystemTime::now()),
            _ => Duration::ZERO,
        };
        let wait = retry_wait(failures, wait);
        let wanted = signer.borrow_and_update().clone();
        let wait = match current.as_ref().and_then(|c| c.issuer_id()) {
            Some(issuer) if !wanted.is_empty() && issuer != wanted => {
                // Spread the renewals of a rotation over a second.
                wait.min(Duration::from_millis(50).mul_f64(1.0 + 19.0 * fastrand::f64()))
            }
            _ => wait,
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            changed = signer.changed() => {
                if changed.is_ok() {
                    continue;
                }
                // No more trust bundles (shutting down): keep the half-life schedule.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        match request(&options).await {
            Ok(creds) => {
                failures = 0;
                received = Some(SystemTime::now().max(creds.not_before()));
                install(creds.clone());
                current = Some(creds);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, attempt = failures, "certificate request failed; retrying");
            }
        }
    }
}

/// Time until half of the certificate's lifetime, counted from `start`, has passed
/// (zero if already past).
pub fn renew_in(start: SystemTime, not_after: SystemTime, now: SystemTime) -> Duration {
    let lifetime = not_after.duration_since(start).unwrap_or_default();
    let renew_at = start + lifetime / 2;
    renew_at.duration_since(now).unwrap_or_default()
}

/// The wait before the next request: the renewal schedule, or after `failures` failed
/// requests in a row the backoff alone. (Capping the backoff by the schedule, as this
/// once did, retried every 200 ms forever when no certificate was held yet or one was
/// past half-life: a refused or malformed token hammered the control plane.)
fn retry_wait(failures: u32, scheduled: Duration) -> Duration {
    if failures == 0 {
        scheduled
    } else {
        backoff(failures)
    }
}

/// Full-jitter exponential backoff: up to 500 ms × 2^(n−1), capped at 30 s.
fn backoff(failures: u32) -> Duration {
    let cap = crate::backoff::ceiling(
        Duration::from_millis(500),
        Duration::from_secs(30),
        failures.saturating_sub(1),
    );
    // Never less than a tenth of the ceiling: a refused token is not retried at once.
    cap.mul_f64(fastrand::f64().max(0.1))
}

/// Writes the three files atomically (temp + fsync + rename), owner-only.
fn persist(dir: &Path, chain: &str, key: &str, bundle: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    super::create_private_dir(dir)?;
    for (name, text) in [(KEY_FILE, key), (CERT_FILE, chain), (BUNDLE_FILE, bundle)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `dir` holding a valid certificate for `ns/sa` as `persist` writes it.
    fn persisted(dir: &Path, ns: &str, sa: &str) -> SpiffeId {
        let ca = weft_tls::ca::Authority::generate("cluster.local", Duration::from_secs(86_400))
            .unwrap();
        let id = SpiffeId::new("cluster.local", ns, sa).unwrap();
        let issued = ca.issue(&id, Duration::from_secs(3600)).unwrap();
        persist(dir, &issued.cert_pem, &issued.key_pem, &ca.cert_pem()).unwrap();
        id
    }

    #[test]
    fn a_persisted_certificate_for_the_workload_identity_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let id = persisted(dir.path(), "shop", "catalog");
        let creds = load_persisted(dir.path(), &id).expect("loaded");
        assert_eq!(creds.identity(), &id);
    }

    #[test]
    fn a_persisted_certificate_for_another_identity_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        persisted(dir.path(), "shop", "attacker");
        let workload = SpiffeId::new("cluster.local", "shop", "catalog").unwrap();
        assert!(load_persisted(dir.path(), &workload).is_none());
    }

    #[test]
    fn renewal_is_due_at_half_life() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(3600);
        assert_eq!(renew_in(start, end, start), Duration::from_secs(1800));
        assert_eq!(
            renew_in(start, end, start + Duration::from_secs(1000)),
            Duration::from_secs(800)
        );
        assert_eq!(renew_in(start, end, end), Duration::ZERO);
    }

    #[test]
    fn failures_without_a_certificate_back_off_instead_of_retrying_every_200ms() {
        // No certificate held: the schedule says "now" (zero) on every turn.
        assert_eq!(retry_wait(0, Duration::ZERO), Duration::ZERO);
        let mean = |failures: u32| {
            (0..200)
                .map(|_| retry_wait(failures, Duration::ZERO))
                .sum::<Duration>()
                / 200
        };
        assert!(mean(4) > Duration::from_millis(1500), "{:?}", mean(4));
        assert!(mean(10) > Duration::from_secs(10), "{:?}", mean(10));
        assert!((0..200).all(|_| retry_wait(10, Duration::ZERO) <= Duration::from_secs(30)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 1..20 {
            let d = backoff(n);
            assert!(d <= Duration::from_secs(30), "{n}: {d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(500));
    }
}
