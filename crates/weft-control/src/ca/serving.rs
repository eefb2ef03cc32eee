//! The control plane's own certificate from the mesh CA: renewed at half-life and
//! re-issued when the signing CA changes, with the trust bundle file clients verify it
//! with kept current.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::MeshCa;

/// Lifetime of the control plane's serving certificate; renewed at half-life.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// Writes the (public) trust bundle atomically, world-readable.
pub(crate) fn write_ca_file(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("crt.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Re-issues the serving certificate when the signing CA changes, and rewrites the
/// trust bundle file when the bundle does.
pub(crate) async fn follow_ca(
    ca: &MeshCa,
    serving: &weft_tls::control::ServingCert,
    hosts: &[String],
    file: Option<&std::path::Path>,
    shutdown: CancellationToken,
) {
    let mut signer = ca.signer_id();
    let mut bundle = ca.trust_bundle();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(super::rotation::INTERVAL) => {}
        }
        let now_bundle = ca.trust_bundle();
        if now_bundle != bundle {
            if let Some(path) = file {
                match write_ca_file(path, &now_bundle.to_pem()) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), roots = now_bundle.len(), "rewrote the mesh CA certificate file");
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "cannot rewrite the mesh CA certificate file");
                    }
                }
            }
            bundle = now_bundle;
        }
        let now_signer = ca.signer_id();
        if now_signer != signer {
            match ca.issue_serving(hosts, SERVING_VALIDITY, std::time::SystemTime::now()) {
                Ok(leaf) => match serving.set(&leaf.chain, &leaf.key_der) {
                    Ok(()) => {
                        tracing::info!("the control plane serves a certificate from the new CA");
                        signer = now_signer;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot use the new serving certificate"),
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot issue a serving certificate from the new CA");
                }
            }
        }
    }
}

/// Re-issues the serving certificate every `every` (new handshakes get the new one).
pub(crate) async fn renew_serving(
    ca: &MeshCa,
    serving: &weft_tls::control::ServingCert,
    hosts: &[String],
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let renewed = ca
            .issue_serving(hosts, SERVING_VALIDITY, std::time::SystemTime::now())
            .map_err(|e| e.to_string())
            .and_then(|leaf| {
                serving
                    .set(&leaf.chain, &leaf.key_der)
                    .map_err(|e| e.to_string())
            });
        match renewed {
            Ok(()) => tracing::info!("renewed the control plane's serving certificate"),
            Err(e) => {
                tracing::error!(error = %e, "could not renew the control plane's serving certificate; retrying later");
            }
        }
    }
}
