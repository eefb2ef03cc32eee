//! `Mesh` (`weft.dev/v1alpha1`, cluster-scoped): mesh-wide settings.
//!
//! There is exactly one, named `default`; the control plane creates it with every field
//! at its default when it is missing. The compiler reads the trust domain (endpoint
//! identities), the mTLS mode (inbound policies) and the CA state in `status.ca` (the
//! trust bundle); the control plane's CA follows `spec.ca`, rotating when it changes.

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// The only name a `Mesh` may have.
pub const MESH_NAME: &str = "default";
/// Trust domain used when no `Mesh` sets one.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// `exportTo` entry naming every namespace.
pub const EXPORT_ALL: &str = "*";
/// `exportTo` entry naming the service's own namespace.
pub const EXPORT_OWN: &str = ".";

/// One `exportTo` entry, for the published schema: `*`, `.` or an RFC 1123 label.
/// Validation also refuses `*` with other entries and repeated entries.
pub const EXPORT_PATTERN: &str = r"^(\*|\.|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$";

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
    /// What a request gets when no `TrafficPermission` allows it: `allow` (every
    /// caller the port's mTLS mode admits), `deny` (HTTP 403, gRPC
    /// `PERMISSION_DENIED`, or the connection closed), or `audit` (served, and logged
    /// and counted as a denial would be: the dry run of `deny`). Default `allow`.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Other default actions for some namespaces or services, for a gradual rollout
    /// (`[{namespace: shop, defaultAction: deny}]`). The most specific entry applies
    /// (a service's over its namespace's over the mesh's); where two services of one
    /// workload port disagree, the strictest wins (`deny` over `audit` over `allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_action_overrides: Vec<DefaultActionOverride>,
    /// How proxies normalise request paths before routing, authorization and
    /// forwarding: `none`, `base` (dot-segments removed, unreserved escapes decoded,
    /// ambiguous forms such as `%2F`, `..;` or `\\` refused with 400), `mergeSlashes`
    /// (`base`, and `//` merged, as most servers read it) or `decodeAndMergeSlashes`
    /// (`%2F` and `%5C` decoded to `/`, then merged). Default `mergeSlashes`
    /// (`docs/policies/path-normalization.md`).
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// External authorization servers `TrafficPermission`s with `action: custom` ask
    /// (Envoy's `envoy.service.auth.v3.Authorization/Check`, e.g. OPA's Envoy plugin).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_providers: Vec<AuthorizationProvider>,
    /// Where workload certificates come from. Default: `type: builtin`.
    #[serde(default)]
    pub ca: Ca,
    /// Service names and VIPs. Default: `domain: cluster.local`, `vipRange:
    /// 240.240.0.0/16`.
    #[serde(default)]
    pub dns: Dns,
    /// `exportTo` of every `Service` that does not set its own: the namespaces whose
    /// proxies may see it (`"."`: the service's own namespace; `"*"`: every
    /// namespace; or namespace names). Default `["*"]`, so existing meshes keep
    /// working; set `["."]` so that a workload token holder sees only the services of
    /// its own namespace and those exported to it.
    #[serde(default = "default_export_to")]
    #[schemars(
        length(min = 1),
        inner(regex(pattern = EXPORT_PATTERN))
    )]
    pub default_export_to: Vec<String>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            trust_domain: default_trust_domain(),
            mtls: Mtls::default(),
            default_action: DefaultAction::default(),
            default_action_overrides: Vec::new(),
            path_normalization: PathNormalization::default(),
            authorization_providers: Vec::new(),
            ca: Ca::default(),
            dns: Dns::default(),
            default_export_to: default_export_to(),
        }
    }
}

fn default_export_to() -> Vec<String> {
    vec![EXPORT_ALL.to_owned()]
}

/// `Mesh.spec.dns`: the names services answer to and the addresses behind them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dns {
    /// Services are `<name>.<namespace>.svc.<domain>` in the proxies' mesh DNS.
    /// Default `cluster.local`.
    #[serde(default = "default_dns_domain")]
    pub domain: String,
    /// Where the control plane allocates the VIP of every `Service` without
    /// `spec.vip`. An allocation is kept (in `Service.status.vip`) for as long as the
    /// service exists and its address stays inside this range. Default
    /// `240.240.0.0/16`: reserved addresses no host uses, so a VIP never shadows a real
    /// destination.
    #[serde(default = "default_vip_range")]
    pub vip_range: Cidr,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            domain: default_dns_domain(),
            vip_range: default_vip_range(),
        }
    }
}

/// The mesh DNS domain used when no `Mesh` sets one.
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";

fn default_dns_domain() -> String {
    DEFAULT_DNS_DOMAIN.to_owned()
}

fn default_vip_range() -> Cidr {
    Cidr::default_vip_range()
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
    /// Served.
    #[default]
    Allow,
    /// Refused unless a permission allows it.
    Deny,
    /// Served; logged and counted as a denial would be.
    Audit,
}

/// `Mesh.spec.authorizationProviders[]`: an Envoy external authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationProvider {
    /// The name permissions use (`provider: {name}`): an RFC 1123 label.
    pub name: String,
    /// `ip:port` of the server's gRPC endpoint on each proxy's own host (a loopback
    /// address: the request's headers and caller travel in plaintext HTTP/2, so the
    /// server runs beside every proxy, as OPA's Envoy plugin usually does).
    pub address: std::net::SocketAddr,
    /// How long a check may take. Default `200ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `true`: serve the request when the server cannot be asked (down, too slow,
    /// an error). Default `false`: refuse it with 403.
    #[serde(default)]
    pub fail_open: bool,
}

/// `Mesh.spec.pathNormalization`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum PathNormalization {
    /// As sent.
    None,
    /// Dot-segments removed, unreserved escapes decoded, ambiguous forms refused.
    Base,
    /// `base`, and runs of `/` merged.
    #[default]
    MergeSlashes,
    /// `%2F`, `%5C` and `\\` decoded to `/`, then `mergeSlashes`.
    DecodeAndMergeSlashes,
}

/// `Mesh.spec.defaultActionOverrides[]`: the default action of one namespace, or of one
/// service's workloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultActionOverride {
    /// The namespace.
    pub namespace: String,
    /// A service of that namespace: only its workloads, on its target ports. Default:
    /// every workload of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Their default action.
    pub default_action: DefaultAction,
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
    /// The builtin CA's settings; used when `type` is `builtin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<BuiltinCa>,
}

/// `Mesh.spec.ca.builtin`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuiltinCa {
    /// Which builtin root signs: raise it to rotate to a new root (generated on demand).
    /// The control plane then publishes both roots, reissues every certificate, and
    /// retires the old root, without dropping connections. Default 0.
    #[serde(default)]
    pub generation: u32,
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

/// `Mesh.status.ca`: the CA state the control plane keeps and every instance follows.
/// Written by the control plane only (`weft get mesh default -o yaml` shows a rotation's
/// progress).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaStatus {
    /// Where a rotation stands.
    pub phase: CaPhase,
    /// The CA that signs new certificates: `builtin:<generation>` or `provided:<id>`.
    pub signer: String,
    /// Its id (`weft_tls::ca::name_id` of its subject), as proxies see it.
    pub signer_id: String,
    /// While `Distributing`: the CA being rotated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// While `Reissuing`: the CA being retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The trust bundle: PEM root certificates (two during a rotation).
    pub roots: Vec<String>,
    /// When this phase began (RFC 3339).
    pub since: String,
    /// What the rotation waits for, or why it cannot proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The phases of a CA rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaPhase {
    /// One CA signs and its root is the only one trusted.
    Ready,
    /// Both roots are trusted; the old CA still signs, until every proxy holds both.
    Distributing,
    /// Both roots are trusted; the new CA signs, until every proxy holds a certificate
    /// from it. Then the old root is retired (`Ready`).
    Reissuing,
}

impl CaStatus {
    /// The proxy resource this state publishes.
    pub fn trust_bundle(&self) -> crate::pb::v1::TrustBundle {
        crate::pb::v1::TrustBundle {
            roots_pem: self.roots.concat(),
            signer: self.signer_id.clone(),
        }
    }

    /// `Mesh.status.ca` of a stored Mesh status, if present and readable.
    pub fn of(status: Option<&serde_json::Value>) -> Option<Self> {
        serde_json::from_value(status?.get("ca")?.clone()).ok()
    }
}
