//! `weft describe secret NAME`: what a `Secret` holds, never the material — its type
//! and keys, the leaf certificate's subject, DNS names and IP addresses, issuer,
//! validity (with the time left) and fingerprint, its `Valid` condition, and the
//! Gateway listeners whose `certificateRefs` name it. The API answers a description
//! only (ADR 41), so there is nothing secret here to hide; everything shown comes from
//! the stored description and the status the control plane wrote.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

use super::super::client::Client;
use super::super::get::{collection_path, name_of};
use super::super::output::{age, or_none};
use super::{pairs, write_conditions};

/// A Gateway listener that names a Secret: `(gateway namespace/name, listener)`.
pub(super) type Reference = (String, String);

/// Every Gateway listener (of any namespace) whose `tls.certificateRefs` name the
/// Secret `namespace/name`.
pub(super) async fn referencing(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<Reference>> {
    let list = client
        .get_json(&collection_path(Kind::Gateway, None))
        .await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|gateway| listeners_naming(gateway, namespace, name))
        .collect())
}

/// The listeners of `gateway` whose certificate references name `namespace/name`.
fn listeners_naming(gateway: &Value, namespace: &str, name: &str) -> Vec<Reference> {
    let own = gateway["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE);
    let qualified = format!("{own}/{}", name_of(gateway));
    gateway["spec"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|listener| {
            listener["tls"]["certificateRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| {
                    r["kind"].as_str().unwrap_or("Secret") == "Secret"
                        && r["name"] == name
                        && r["namespace"].as_str().unwrap_or(own) == namespace
                })
        })
        .map(|listener| {
            (
                qualified.clone(),
                listener["name"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

/// The description of `secret`, with the Gateway listeners naming it.
pub(super) fn render(secret: &Value, references: &[Reference], now: SystemTime) -> String {
    let mut out = String::new();
    let meta = &secret["metadata"];
    let spec = &secret["spec"];
    let cert = &spec["certificate"];
    let list = |value: &Value| {
        let items: Vec<&str> = value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if items.is_empty() {
            "<none>".to_owned()
        } else {
            items.join(", ")
        }
    };
    let _ = writeln!(out, "Name:         {}", name_of(secret));
    let _ = writeln!(
        out,
        "Namespace:    {}",
        meta["namespace"].as_str().unwrap_or(DEFAULT_NAMESPACE)
    );
    let _ = writeln!(out, "Labels:       {}", pairs(&meta["labels"]));
    let _ = writeln!(
        out,
        "Age:          {}",
        age(meta["creationTimestamp"].as_str(), now)
    );
    let _ = writeln!(out, "Type:         {}", or_none(spec["type"].as_str()));
    let _ = writeln!(out, "Keys:         {}", list(&spec["keys"]));
    let _ = writeln!(out, "Certificate:");
    let _ = writeln!(out, "  Subject:      {}", or_none(cert["subject"].as_str()));
    let _ = writeln!(out, "  DNS names:    {}", list(&cert["dnsNames"]));
    let _ = writeln!(out, "  IP addresses: {}", list(&cert["ipAddresses"]));
    let _ = writeln!(out, "  Issuer:       {}", or_none(cert["issuer"].as_str()));
    let _ = writeln!(out, "  Not before:   {}", timestamp(&cert["notBefore"]));
    let _ = writeln!(
        out,
        "  Not after:    {} ({})",
        timestamp(&cert["notAfter"]),
        time_left(&cert["notAfter"], now)
    );
    let _ = writeln!(
        out,
        "  SHA-256:      {}",
        or_none(cert["sha256Fingerprint"].as_str())
    );
    if let Some(chain) = cert["chainLength"].as_u64() {
        let _ = writeln!(out, "  Chain:        {chain} certificate(s)");
    }
    let _ = writeln!(out, "Referenced by:");
    if references.is_empty() {
        let _ = writeln!(out, "  <no Gateway listener>");
    }
    for (gateway, listener) in references {
        let _ = writeln!(out, "  Gateway {gateway}, listener {listener}");
    }
    let _ = writeln!(out, "Conditions:");
    write_conditions(&mut out, &secret["status"], "  ");
    out
}

/// Seconds since the epoch as an RFC 3339 time (UTC), or `<unknown>`.
pub(super) fn timestamp(seconds: &Value) -> String {
    match seconds.as_i64().and_then(|s| u64::try_from(s).ok()) {
        Some(s) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string()
        }
        None => "<unknown>".to_owned(),
    }
}

/// How long until `not_after` (seconds since the epoch), or how long ago it passed.
pub(super) fn time_left(not_after: &Value, now: SystemTime) -> String {
    let Some(end) = not_after.as_i64() else {
        return "<unknown>".to_owned();
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = end.saturating_sub(now);
    let span = |s: u64| match s {
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    };
    if left > 0 {
        format!("{} left", span(left.unsigned_abs()))
    } else {
        format!("EXPIRED {} ago", span(left.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "shop-cert", "namespace": "shop"},
            "spec": {
                "type": "kubernetes.io/tls",
                "keys": ["tls.crt", "tls.key"],
                "certificate": {
                    "subject": "CN=shop.example.com", "issuer": "CN=Example CA",
                    "dnsNames": ["shop.example.com", "*.shop.example.com"], "ipAddresses": [],
                    "notBefore": NOW - 86_400, "notAfter": NOW + 30 * 86_400,
                    "sha256Fingerprint": "AB:CD", "chainLength": 2
                }
            },
            "status": {"conditions": [{"type": "Valid", "status": "True", "reason": "Valid",
                "message": "the certificate (CN=shop.example.com) is in its validity period"}]}
        })
    }

    #[test]
    fn a_secret_shows_its_certificate_validity_condition_and_the_listeners_naming_it() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let references = vec![("shop/edge".to_owned(), "https".to_owned())];
        let text = render(&secret(), &references, now);
        for line in [
            "Type:         kubernetes.io/tls\n",
            "Keys:         tls.crt, tls.key\n",
            "  Subject:      CN=shop.example.com\n",
            "  DNS names:    shop.example.com, *.shop.example.com\n",
            "  Issuer:       CN=Example CA\n",
            "  Not before:   2027-01-14T08:00:00Z\n",
            "  Not after:    2027-02-14T08:00:00Z (30d left)\n",
            "  SHA-256:      AB:CD\n",
            "Referenced by:\n  Gateway shop/edge, listener https\n",
            "Conditions:\n  Valid=True (Valid): the certificate (CN=shop.example.com) is in its validity period\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }

    #[test]
    fn an_expired_certificate_says_how_long_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        assert_eq!(time_left(&json!(NOW - 3 * 86_400), now), "EXPIRED 3d ago");
        assert_eq!(time_left(&json!(NOW + 5400), now), "90m left");
    }

    #[test]
    fn only_listeners_naming_this_secret_in_its_namespace_reference_it() {
        let gateway = json!({
            "metadata": {"name": "edge", "namespace": "shop"},
            "spec": {"listeners": [
                {"name": "a", "tls": {"certificateRefs": [{"name": "shop-cert"}]}},
                {"name": "b", "tls": {"certificateRefs": [{"name": "other"}]}},
                {"name": "c", "tls": {"certificateRefs": [{"name": "shop-cert", "namespace": "blog"}]}},
                {"name": "d"}
            ]}
        });
        assert_eq!(
            listeners_naming(&gateway, "shop", "shop-cert"),
            vec![("shop/edge".to_owned(), "a".to_owned())]
        );
        assert_eq!(
            listeners_naming(&gateway, "blog", "shop-cert"),
            vec![("shop/edge".to_owned(), "c".to_owned())]
        );
    }
}
