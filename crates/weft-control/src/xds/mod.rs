//! The delta xDS server: pushes each connected proxy the compiled resources it
//! subscribed to (DESIGN §2, "Control plane ↔ proxy").
//!
//! Transport is Envoy's incremental ADS (`DeltaAggregatedResources`) carrying Weft's own
//! `weft.proxy.v1` resources. The flow: the control plane publishes a [`Snapshot`] on a
//! `watch` channel; [`XdsServer`] accepts streams ([`server`]), asks [`Hooks`] whether
//! the proxy may connect, and runs a per-stream [`session`] state machine that diffs
//! the stream's subscriptions against every new snapshot and tracks ACKs and NACKs.
//! [`status`] is what `weft inspect proxy` shows. Each resource carries its audience
//! ([`Visibility`]) and each stream the [`Viewer`] its hooks established, so a proxy
//! receives only what its namespace (or, for inbound policy, its workload) may see.
//!
//! Not here: compiling resources (`weft-policy`), TLS and token authentication (the
//! server is plaintext h2c for now; TLS means serving [`XdsServer::service`] from a tonic
//! server with `tls_config`), and the proxy side (`weft_proxy::control_plane::xds`).

mod hooks;
pub(crate) mod publish;
pub mod server;
mod session;
mod snapshot;
pub mod status;

pub use hooks::{Authorization, ConnectionInfo, Hooks, NoHooks};
pub use server::{AdsService, XdsServer};
pub use session::WILDCARD;
pub use snapshot::{content_version, Resources, Snapshot, Viewer, Visibility, XdsResource};
pub use status::{ProxyStatus, ResourceError, TypeStatus};

/// Errors of the xDS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gRPC server failed (e.g. while accepting connections).
    #[error("xDS server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}
