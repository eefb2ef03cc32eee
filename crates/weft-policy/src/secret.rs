//! `Secret` as the rest of the system sees it: the stored form (type, keys, the
//! certificate's description; see `weft_api::resource::secret`), never the material.
//! The material itself is checked where it arrives (the control plane's API, with
//! `weft_tls::material`), sealed there, and never reaches compilation: the control loop
//! hands [`crate::compile`] Secrets without their sealed part.
//!
//! Here: the stored form's checks, the certificates Gateways may name (by namespace and
//! name), and the Secret's status, which depends on the time (an expired certificate is
//! kept and flagged, so a renewal can be applied before the old one is removed).

use std::collections::BTreeMap;

use serde_json::Value;
use weft_api::resource::secret::{Certificate, Spec, KEYS, TLS_CRT, TLS_KEY, TLS_TYPE};
use weft_api::resource::Object;

use crate::field;
use crate::status::condition;

/// A Secret's certificate by `(namespace, name)`, or why it cannot be used.
pub(crate) type Certificates = BTreeMap<(String, String), Result<Certificate, String>>;

/// Checks a stored Secret's spec.
pub(crate) fn validate(spec: &Spec, errors: &mut field::Errors) {
    if spec.r#type != TLS_TYPE {
        errors.push(
            "type",
            format!(
                "{:?} is not supported; Weft takes Secrets of type {TLS_TYPE} only",
                spec.r#type
            ),
        );
    }
    for key in [TLS_CRT, TLS_KEY] {
        if !spec.keys.iter().any(|k| k == key) {
            errors.push("spec.keys", format!("{key} is missing"));
        }
    }
    for key in &spec.keys {
        if !KEYS.contains(&key.as_str()) {
            errors.push(
                "spec.keys",
                format!("{key:?} is not a key of a {TLS_TYPE} Secret"),
            );
        }
    }
}

/// The status of a stored Secret at `now` (seconds since the epoch): `Valid` is
/// `True` while the leaf certificate is in its validity period, `False` with `Expired`
/// or `NotYetValid` otherwise. No timestamps, as for every status Weft writes.
pub fn status(object: &Object, now: i64) -> Option<Value> {
    let spec: Spec = serde_json::from_value(object.spec.clone()).ok()?;
    let cert = &spec.certificate;
    let generation = object.metadata.generation;
    let valid = if now >= cert.not_after {
        condition(
            "Valid",
            false,
            "Expired",
            &format!(
                "the certificate ({}) expired at {} (seconds since the epoch); apply a renewed \
                 certificate under this name: Gateways naming it keep it until then",
                cert.subject, cert.not_after
            ),
            generation,
        )
    } else if now < cert.not_before {
        condition(
            "Valid",
            false,
            "NotYetValid",
            &format!(
                "the certificate ({}) is valid from {} (seconds since the epoch); clients will \
                 refuse it until then",
                cert.subject, cert.not_before
            ),
            generation,
        )
    } else {
        condition(
            "Valid",
            true,
            "Valid",
            &format!(
                "the certificate ({}) is in its validity period",
                cert.subject
            ),
            generation,
        )
    };
    Some(serde_json::json!({ "conditions": [valid] }))
}

/// Whether `cert` covers `hostname` (a listener's: exact, or `*.` and a domain). A SAN
/// `*.example.com` covers `a.example.com` and, as the same wildcard, `*.example.com`; it
/// does not cover `example.com` or `a.b.example.com` (TLS wildcards span one label).
pub(crate) fn covers(cert: &Certificate, hostname: &str) -> bool {
    let hostname = hostname.to_ascii_lowercase();
    cert.dns_names.iter().any(|san| {
        let san = san.to_ascii_lowercase();
        if san == hostname {
            return true;
        }
        match (san.strip_prefix("*."), hostname.split_once('.')) {
            (Some(domain), Some((label, rest))) => label != "*" && rest == domain,
            _ => false,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> Certificate {
        Certificate {
            subject: "CN=x".into(),
            issuer: "CN=x".into(),
            dns_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ip_addresses: vec![],
            not_before: 100,
            not_after: 200,
            sha256_fingerprint: String::new(),
            chain_length: 1,
        }
    }

    #[test]
    fn a_certificate_covers_exact_names_and_one_label_under_a_wildcard() {
        let c = cert(&["shop.example.com", "*.api.example.com"]);
        assert!(covers(&c, "Shop.Example.com"));
        assert!(covers(&c, "v1.api.example.com"));
        assert!(covers(&c, "*.api.example.com"));
        assert!(!covers(&c, "api.example.com"));
        assert!(!covers(&c, "a.v1.api.example.com"));
        assert!(!covers(&c, "*.example.com"));
        assert!(!covers(&cert(&["a.example.com"]), "*.example.com"));
    }

    #[test]
    fn status_flags_an_expired_certificate_and_one_not_yet_valid() {
        let object = Object {
            api_version: "v1".into(),
            kind: "Secret".into(),
            metadata: weft_api::resource::ObjectMeta::default(),
            spec: serde_json::to_value(Spec {
                r#type: TLS_TYPE.into(),
                keys: vec![TLS_CRT.into(), TLS_KEY.into()],
                certificate: cert(&["a.example.com"]),
                sealed: None,
            })
            .unwrap(),
            status: None,
        };
        let reason = |now| status(&object, now).unwrap()["conditions"][0]["reason"].clone();
        assert_eq!(reason(50), "NotYetValid");
        assert_eq!(reason(150), "Valid");
        assert_eq!(reason(200), "Expired");
    }
}
