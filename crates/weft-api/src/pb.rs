//! Generated types of `proto/weft/proxy/v1`: the control-plane ↔ proxy contract.
//!
//! Messages (prost) plus the gRPC servers and clients of the `Identity` and `Reports`
//! services (`identity_server`, `identity_client`, `reports_server`,
//! `reports_client`; tonic).

// Generated: prost boxes no oneof variant, whatever their sizes.
#![allow(
    missing_docs,
    clippy::pedantic,
    clippy::large_enum_variant,
    unreachable_pub
)]

/// `weft.proxy.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/weft.proxy.v1.rs"));

    /// Type URL prefix of every Weft proxy resource.
    pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/weft.proxy.v1.";
    /// Type URL of [`Service`].
    pub const SERVICE_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.Service";
    /// Type URL of [`RouteTable`].
    pub const ROUTE_TABLE_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.RouteTable";
    /// Type URL of [`InboundPolicy`].
    pub const INBOUND_POLICY_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.InboundPolicy";
    /// Type URL of [`TrustBundle`].
    pub const TRUST_BUNDLE_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.TrustBundle";
    /// The one [`TrustBundle`] resource's name.
    pub const TRUST_BUNDLE_NAME: &str = "mesh";
    /// Type URL of [`ResourceErrors`] (in NACK details).
    pub const RESOURCE_ERRORS_TYPE_URL: &str = "type.googleapis.com/weft.proxy.v1.ResourceErrors";
    /// gRPC metadata key carrying the proxy's [`Registration`].
    pub const REGISTRATION_METADATA_KEY: &str = "weft-registration-bin";
    /// gRPC metadata key carrying the caller's workload token, as
    /// `authorization: Bearer <token>` (the token `weft token workload` prints). Every
    /// call of the [`Identity`](identity_server::Identity) service needs it; the control
    /// plane signs certificates for the identity the token names only.
    pub const AUTHORIZATION_METADATA_KEY: &str = "authorization";
    /// Scheme in front of the token in [`AUTHORIZATION_METADATA_KEY`] (`Bearer `).
    pub const BEARER_PREFIX: &str = "Bearer ";
    /// Full gRPC service name of the CSR-signing service (`weft.proxy.v1.Identity`).
    pub const IDENTITY_SERVICE_NAME: &str = "weft.proxy.v1.Identity";
    /// gRPC path of `Identity.Sign`.
    pub const IDENTITY_SIGN_PATH: &str = "/weft.proxy.v1.Identity/Sign";
}
