// Target `csr`: a certificate signing request as the control plane receives it
// (weft_tls::Csr::from_der: DER, key type, self-signature) and, when it is accepted,
// signed by a CA (weft_tls::ca::Authority::sign_csr). Included by fuzz_targets/csr.rs
// and crates/weft-tls/tests/fuzz_corpus.rs.

use std::time::{Duration, SystemTime};

use weft_tls::ca::Authority;
use weft_tls::{Csr, SpiffeId};

/// Parses `data` as a DER CSR; signs an accepted one for a fixed identity.
pub(crate) fn run(data: &[u8]) {
    let Ok(csr) = Csr::from_der(data) else {
        return;
    };
    let _ = csr.requested_uris();
    let id = SpiffeId::new("cluster.local", "default", "web").expect("a valid identity");
    let _ = csr_authority().sign_csr(&csr, &id, Duration::from_secs(3600), SystemTime::now());
}

/// One CA per process.
fn csr_authority() -> &'static Authority {
    static CA: std::sync::OnceLock<Authority> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        Authority::generate("cluster.local", Duration::from_secs(86_400)).expect("a test CA")
    })
}
