//! `Mesh` (`weft.dev/v1alpha1`, cluster-scoped): mesh-wide settings.
//!
//! There is exactly one, named `default`; without it every field takes its default.
//! Today the compiler reads only [`Spec::trust_domain`] (endpoint identities); mTLS
//! mode, default action and CA backend are stored as given and enforced by the
//! components that own them.

use serde::{Deserialize, Serialize};

/// The only name a `Mesh` may have.
pub const MESH_NAME: &str = "default";
/// Trust domain used when no `Mesh` sets one.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// `Mesh.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// SPIFFE trust domain of every identity in the mesh
    /// (`spiffe://<trustDomain>/ns/<ns>/sa/<sa>`). Default `cluster.local`.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Mutual TLS between proxies. Default: `mode: strict`.
    #[serde(default)]
    pub mtls: Mtls,
    /// What happens to a request no `TrafficPermission` speaks about. Default `allow`
    /// (any authenticated mesh identity).
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Where workload certificates come from. Default: `type: builtin`.
    #[serde(default)]
    pub ca: Ca,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            trust_domain: default_trust_domain(),
            mtls: Mtls::default(),
            default_action: DefaultAction::default(),
            ca: Ca::default(),
        }
    }
}

/// `Mesh.spec.mtls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mtls {
    /// `strict` (only mTLS from mesh identities) or `permissive` (plaintext accepted too,
    /// for migration). Default `strict`.
    #[serde(default)]
    pub mode: MtlsMode,
}

/// mTLS enforcement mode.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum MtlsMode {
    /// Only mTLS connections from mesh identities are accepted.
    #[default]
    Strict,
    /// Plaintext from outside the mesh is accepted as well.
    Permissive,
}

/// Authorization outcome when no permission applies.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum DefaultAction {
    /// Allow authenticated mesh identities.
    #[default]
    Allow,
    /// Deny unless a permission allows.
    Deny,
}

/// `Mesh.spec.ca`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ca {
    /// `builtin` (the control plane's own CA) or `provided` (the operator's PKI).
    /// Default `builtin`.
    #[serde(default, rename = "type")]
    pub kind: CaType,
    /// Where the operator's CA lives; required when `type` is `provided`, ignored
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provided: Option<ProvidedCa>,
}

/// `Mesh.spec.ca.provided`: PEM files on the control-plane host, read when the control
/// plane starts. Paths must be absolute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvidedCa {
    /// The CA certificate that signs workload certificates (a root or an
    /// intermediate), PEM.
    pub cert_file: String,
    /// Its private key (ECDSA P-256, unencrypted PKCS#8 or SEC1), PEM. Keep it readable
    /// by the control plane only.
    pub key_file: String,
    /// The certificates above `certFile` up to and including the root, PEM. Omit when
    /// `certFile` is the root itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_file: Option<String>,
}

/// CA backend.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum CaType {
    /// The control plane generates and keeps its own root.
    #[default]
    Builtin,
    /// The operator supplies the CA certificate and key.
    Provided,
}

fn default_trust_domain() -> String {
    DEFAULT_TRUST_DOMAIN.to_owned()
}
