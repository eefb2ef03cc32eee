//! Weft's TLS identity layer: SPIFFE IDs, workload credentials, HBONE mTLS
//! configurations, and a small certificate authority.
//!
//! Where it sits: the proxy loads [`Credentials`] from PEM files and asks them for the
//! rustls configurations of its HBONE listener (`server_config`) and of each connection to
//! a peer proxy (`client_config`, pinned to the peer's [`SpiffeId`]); after a handshake
//! the inbound side reads the caller's identity with [`verify::peer_identity`]. Tests,
//! `weft` operator commands and the control plane mint certificates with
//! [`ca::Authority`]; the control plane signs proxies' [`csr::Csr`]s and authenticates
//! proxies by their [`token`]s.
//!
//! What it is not: a TLS stack or a socket layer. It builds configurations and checks
//! certificates; `tokio-rustls` in the proxy does the I/O. All cryptography goes through
//! the aws-lc-rs provider, chosen explicitly rather than through a process-wide default.
//!
//! - [`spiffe`]: the `spiffe://<td>/ns/<ns>/sa/<sa>` identity type.
//! - [`creds`]: loading and validating our chain, key and trust bundle; config builders.
//! - [`verify`]: reading a peer's identity; the SPIFFE-pinned server verifier.
//! - [`ca`]: issuing ECDSA P-256 workload certificates, directly or from a CSR.
//! - [`csr`]: PKCS#10 requests: the proxy makes one for a key that never leaves its host.
//! - [`control`]: TLS of the control plane's own listeners, and how Weft's clients
//!   verify them (the control plane's SPIFFE identity).
//! - [`bundle`]: trust bundles, one root normally, two during a CA rotation.
//! - [`material`]: the TLS material of a `Secret`: checked, and described without it.
//! - [`listener`]: connection caps, idle and handshake timeouts, accept-error pacing
//!   and the open-file limit, shared by every TLS listener.
//! - [`token`]: signed workload tokens (JWT, ES256) that bind a proxy to its identity when
//!   it calls the control plane.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub mod bundle;
pub mod ca;
pub mod control;
pub mod creds;
pub mod csr;
pub mod listener;
pub mod material;
pub mod spiffe;
pub mod token;
pub mod verify;

pub use bundle::TrustBundle;
pub use creds::{Credentials, Error as CredsError};
pub use csr::Csr;
pub use spiffe::SpiffeId;

/// The crypto provider every Weft TLS configuration uses: aws-lc-rs with its defaults.
///
/// Other crates building rustls configurations (e.g. the control plane's xDS listener)
/// should take it from here rather than rely on a process-default provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
