//! `Secret` (core `v1`, type `kubernetes.io/tls`): TLS material for gateways.
//!
//! A request carries the material the Kubernetes way, at the top level: `type`,
//! `data` (base64) and `stringData` (text). [`lift`] moves those fields under `spec`
//! before the document becomes an [`Object`](super::Object), so the store and the API
//! move a Secret like any other kind. What is stored and answered is a [`Spec`]: the
//! type, the keys present, the certificate's description, and (stored only, never
//! answered) the material sealed with the control plane's key. See ADR 41.

use serde::{Deserialize, Serialize};

/// The `apiVersion` of a Secret (Kubernetes core).
pub const API_VERSION: &str = "v1";
/// The one Secret type Weft takes.
pub const TLS_TYPE: &str = "kubernetes.io/tls";
/// The certificate chain, leaf first (PEM).
pub const TLS_CRT: &str = "tls.crt";
/// The leaf's private key (PEM: PKCS#8, SEC1 or PKCS#1).
pub const TLS_KEY: &str = "tls.key";
/// Optional CA certificates (PEM).
pub const CA_CRT: &str = "ca.crt";
/// Every key a TLS Secret may hold.
pub const KEYS: [&str; 3] = [TLS_CRT, TLS_KEY, CA_CRT];

/// The top-level fields a Secret request carries, which [`lift`] moves under `spec`.
pub const TOP_LEVEL_FIELDS: [&str; 4] = ["type", "data", "stringData", "immutable"];

/// A Secret as stored and answered: what the material is, never the material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// `kubernetes.io/tls`.
    pub r#type: String,
    /// The keys present (`tls.crt`, `tls.key`, and `ca.crt` when given), sorted.
    pub keys: Vec<String>,
    /// The leaf certificate of `tls.crt`.
    pub certificate: Certificate,
    /// The material, encrypted with the control plane's key. Stored, never answered:
    /// the API removes it from every reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub sealed: Option<Sealed>,
}

/// What `tls.crt`'s leaf certificate says, for reading and for matching hostnames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// Subject distinguished name (RFC 4514).
    pub subject: String,
    /// Issuer distinguished name (RFC 4514).
    pub issuer: String,
    /// DNS names of the subject alternative names (wildcards as written).
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// IP addresses of the subject alternative names.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// SHA-256 of the leaf certificate's DER, upper-case hex pairs joined by `:`.
    pub sha256_fingerprint: String,
    /// Certificates in `tls.crt` (the leaf and its intermediates).
    pub chain_length: usize,
}

/// Material sealed with AES-256-GCM: the key's id, the nonce and the ciphertext (with
/// its tag), both base64. The associated data is the object's identity, so a
/// ciphertext moved to another Secret does not open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sealed {
    /// Which key sealed it (the first 8 bytes of the key's SHA-256, hex).
    pub key_id: String,
    /// The 96-bit nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

/// Moves a Secret document's top-level `type`, `data`, `stringData` and `immutable`
/// under `spec`, where the rest of the system reads a kind's content. Documents of
/// other kinds, and Secrets without those fields, are left as they are. A Secret that
/// also has a `spec` keeps it, so validation can refuse it by name.
pub fn lift(document: &mut serde_json::Value) {
    let Some(map) = document.as_object_mut() else {
        return;
    };
    if map.get("kind").and_then(serde_json::Value::as_str) != Some("Secret") {
        return;
    }
    let mut lifted = serde_json::Map::new();
    for field in TOP_LEVEL_FIELDS {
        if let Some(value) = map.remove(field) {
            lifted.insert(field.to_owned(), value);
        }
    }
    if lifted.is_empty() {
        return;
    }
    match map.get_mut("spec") {
        Some(serde_json::Value::Object(spec)) => {
            // Both: keep the written spec and add the lifted fields beside it, so the
            // Secret's checks see and refuse the `spec` the document should not have.
            for (k, v) in lifted {
                spec.entry(k).or_insert(v);
            }
        }
        Some(_) => {}
        None => {
            map.insert("spec".to_owned(), serde_json::Value::Object(lifted));
        }
    }
}

/// Removes the sealed material from a stored Secret's spec (any other kind is left as
/// it is): what every reader outside the secret path gets.
pub fn redact(object: &mut super::Object) {
    if object.kind == "Secret" {
        if let Some(spec) = object.spec.as_object_mut() {
            spec.remove("sealed");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lift_moves_top_level_material_under_spec_for_secrets_only() {
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"},
            "type": TLS_TYPE, "stringData": {"tls.crt": "x"}
        });
        lift(&mut secret);
        assert_eq!(
            secret["spec"],
            json!({"type": TLS_TYPE, "stringData": {"tls.crt": "x"}})
        );
        assert!(secret.get("type").is_none());
        let mut other = json!({"kind": "Service", "type": "x", "spec": {}});
        lift(&mut other);
        assert_eq!(other["type"], "x");
    }

    #[test]
    fn redact_removes_the_sealed_material_of_a_secret() {
        let mut object = super::super::Object {
            api_version: API_VERSION.into(),
            kind: "Secret".into(),
            metadata: super::super::ObjectMeta::default(),
            spec: json!({"type": TLS_TYPE, "sealed": {"keyId": "k"}}),
            status: None,
        };
        redact(&mut object);
        assert_eq!(object.spec, json!({"type": TLS_TYPE}));
    }
}
