//! The seam between the xDS server and the rest of the control plane: who connected,
//! may it, and who left.

use std::net::SocketAddr;
use std::time::SystemTime;

use weft_api::pb::v1 as pb;

use super::snapshot::Viewer;

/// Who opened an xDS stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    /// Server-assigned stream id, unique for the life of the process.
    pub conn_id: u64,
    /// `Node.id` of the first request (`<namespace>/<name>`).
    pub node_id: String,
    /// Decoded `weft-registration-bin` metadata, if the proxy sent it.
    pub registration: Option<pb::Registration>,
    /// Remote address of the connection, when known.
    pub peer: Option<SocketAddr>,
    /// When the stream was accepted.
    pub connected_at: SystemTime,
    /// The stream's `authorization` metadata (the workload token), if sent.
    pub authorization: Option<Authorization>,
}

/// An `authorization` metadata value; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization(pub String);

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

/// Control-plane callbacks on stream lifecycle.
///
/// Called once per stream each: `connected` after the first request (which carries
/// the node id), `disconnected` when a stream that was accepted ends, whatever the
/// reason.
#[async_trait::async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// A proxy opened a stream. Returns who the stream serves, from what the hooks
    /// verified (the workload token, the accepted registration): the stream receives
    /// only resources visible to that viewer. Returning an error ends the stream with
    /// that status (e.g. `permission_denied` for an unknown workload); nothing is
    /// served.
    async fn connected(&self, info: &ConnectionInfo) -> Result<Viewer, tonic::Status>;

    /// An accepted stream ended.
    async fn disconnected(&self, conn_id: u64, node_id: &str);

    /// The proxy ACKed `version` of resource `name` of `type_url` (reported for the
    /// `TrustBundle` type only: a CA rotation waits for it). Default: nothing.
    async fn acked(
        &self,
        _conn_id: u64,
        _node_id: &str,
        _type_url: &str,
        _name: &str,
        _version: &str,
    ) {
    }
}

/// [`Hooks`] that accept every proxy as [`Viewer::Unrestricted`] and do nothing: for
/// tests and in-process tools, never for proxies holding workload tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

#[async_trait::async_trait]
impl Hooks for NoHooks {
    async fn connected(&self, _info: &ConnectionInfo) -> Result<Viewer, tonic::Status> {
        Ok(Viewer::Unrestricted)
    }

    async fn disconnected(&self, _conn_id: u64, _node_id: &str) {}
}
