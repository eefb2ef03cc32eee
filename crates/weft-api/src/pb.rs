//! Generated types of `proto/weft/proxy/v1`: the control-plane ↔ proxy contract.

#![allow(missing_docs, clippy::pedantic, unreachable_pub)]

/// `weft.proxy.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/weft.proxy.v1.rs"));

    /// Type URL prefix of every Weft proxy resource.
    pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/weft.proxy.v1.";
    /// Type URL of [`Service`].
    pub const SERVICE_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.Service";
    /// Type URL of [`RouteTable`].
    pub const ROUTE_TABLE_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.RouteTable";
    /// Type URL of [`ResourceErrors`] (in NACK details).
    pub const RESOURCE_ERRORS_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.ResourceErrors";
    /// gRPC metadata key carrying the proxy's [`Registration`].
    pub const REGISTRATION_METADATA_KEY: &str = "weft-registration-bin";
}
