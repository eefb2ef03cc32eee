//! The proxy's xDS client: receives its configuration from the control plane over
//! delta ADS (DESIGN §2, "Control plane ↔ proxy" and "Last known good").
//!
//! [`Client`] keeps one `DeltaAggregatedResources` stream open to the control plane,
//! subscribing to what the proxy's [`Sink`] asks for. Each resource is checked alone:
//! a bad one is NACKed and the rest applies. The accepted [`ResourceSet`] is persisted
//! ([`state_file`]) before it is acknowledged, so a restarted proxy serves its last
//! known good config even while the control plane is down.
//!
//! The stream runs over TLS to the control plane ([`channel`]: verified by the control
//! plane's SPIFFE identity against the mesh roots) and carries the workload token
//! ([`super::token`]). A failure says which (nothing listening, wrong CA, `http://` to
//! TLS, token refused): [`channel::explain`].
//!
//! Not here: decoding resources into the data-path config ([`super::sink`]).

mod client;
mod resources;
pub mod state_file;

use super::channel;

pub use client::{Client, ClientOptions, Sink, Status};
pub use resources::{Resource, ResourceSet, Subscriptions, WILDCARD};

/// Errors of one xDS stream (each is followed by a reconnect).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configured endpoint is not a valid URI.
    #[error("invalid control-plane endpoint {endpoint:?}: {source}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// Why it is invalid.
        #[source]
        source: tonic::transport::Error,
    },
    /// Connecting to the control plane failed.
    #[error("cannot connect to the control plane: {0}")]
    Connect(#[source] channel::Error),
    /// The control plane refused or ended the stream with a status.
    #[error("xDS stream failed: {}: {}", .0.code(), .0.message())]
    Stream(#[source] tonic::Status),
    /// A call failed in a way [`channel::explain_status`] recognises (the transport
    /// failed under it, or the token was refused): what happened and what to do.
    #[error("{explained}")]
    Call {
        /// What went wrong and what to do.
        explained: String,
        /// The status.
        source: tonic::Status,
    },
    /// The workload token file could not be used.
    #[error("workload token {}: {message}", path.display())]
    Token {
        /// The token file.
        path: std::path::PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The bootstrap's workload identity is not a SPIFFE ID, so no certificate can be
    /// requested for it.
    #[error("the bootstrap's workload identity is not a SPIFFE ID ({0}); fix workload.trustDomain, workload.namespace or workload.serviceAccount")]
    Identity(#[source] weft_tls::spiffe::Error),
    /// The control plane closed the stream without a status.
    #[error("the control plane closed the xDS stream")]
    Closed,
}

impl Error {
    /// A failed call, [`channel::explain_status`]ed where it can be.
    pub(crate) fn from_status(
        status: tonic::Status,
        url: &str,
        trust: &channel::Trust,
        token_file: Option<&std::path::Path>,
    ) -> Self {
        match channel::explain_status(url, trust, token_file, &status) {
            Some(explained) => Error::Call {
                explained,
                source: status,
            },
            None => Error::Stream(status),
        }
    }
}
