//! The control plane's own metrics, in Prometheus text at `GET /metrics` on the API
//! port (an operator token of either role): connected proxies, xDS pushes and how
//! long proxies take to acknowledge them, ACKs and NACKs by type, store writes and
//! their latency, and certificates issued.
//!
//! Every label value is one of a fixed set: the xDS type is one of the types this
//! control plane serves (`other` for anything a proxy names besides), so a proxy
//! cannot add series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use weft_api::pb::v1 as pb;

/// Labels by xDS resource type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// `Service`, `RouteTable`, `InboundPolicy`, `TrustBundle`, or `other`.
    pub r#type: &'static str,
}

/// Labels of proxy replies to pushes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplyLabels {
    /// As [`TypeLabels`].
    pub r#type: &'static str,
    /// `ack` or `nack`.
    pub result: &'static str,
}

/// Labels of store writes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `put`, `apply`, `status`, `delete`.
    pub op: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels of store write latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// As [`WriteLabels`].
    pub op: &'static str,
}

/// Labels of certificate signing requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `issued`, `refused` (a bad token or request), `failed` (the CA could not sign).
    pub result: &'static str,
}

/// Labels of a Secret's metrics: the Secret's namespace and name (one series per
/// Secret; the series of a deleted Secret is removed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

/// Every metric the control plane records.
#[derive(Debug)]
pub struct ControlMetrics {
    /// Proxies with an open xDS stream.
    pub proxies_connected: Gauge,
    /// xDS responses sent, by type.
    pub pushes: Family<TypeLabels, Counter>,
    /// From a push to the proxy's ACK or NACK, by type, seconds.
    pub push_reply_duration: Family<TypeLabels, Histogram>,
    /// ACKs and NACKs, by type.
    pub replies: Family<ReplyLabels, Counter>,
    /// Store writes by operation and result.
    pub store_writes: Family<WriteLabels, Counter>,
    /// Store write latency by operation, seconds.
    pub store_write_duration: Family<OpLabels, Histogram>,
    /// Certificate signing requests by result.
    pub certificates: Family<ResultLabels, Counter>,
    /// When each Secret's leaf certificate expires, seconds since the epoch.
    pub secret_certificate_expiry: Family<SecretLabels, Gauge>,
    registry: Registry,
}

impl ControlMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft_control");
        let proxies_connected = Gauge::default();
        registry.register(
            "proxies_connected",
            "Proxies with an open xDS stream",
            proxies_connected.clone(),
        );
        let pushes = Family::default();
        registry.register("xds_pushes", "xDS responses sent, by type", pushes.clone());
        let push_reply_duration = Family::<TypeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
        });
        registry.register_with_unit(
            "xds_push_reply_duration",
            "Time from an xDS push to the proxy's ACK or NACK, by type",
            Unit::Seconds,
            push_reply_duration.clone(),
        );
        let replies = Family::default();
        registry.register(
            "xds_replies",
            "ACKs and NACKs of xDS pushes, by type",
            replies.clone(),
        );
        let store_writes = Family::default();
        registry.register(
            "store_writes",
            "Store writes by operation and result",
            store_writes.clone(),
        );
        let store_write_duration = Family::<OpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
        });
        registry.register_with_unit(
            "store_write_duration",
            "Store write latency by operation",
            Unit::Seconds,
            store_write_duration.clone(),
        );
        let certificates = Family::default();
        registry.register(
            "certificate_requests",
            "Certificate signing requests by result",
            certificates.clone(),
        );
        let secret_certificate_expiry = Family::default();
        registry.register_with_unit(
            "secret_certificate_expiry",
            "When each Secret's certificate expires (notAfter), seconds since the Unix epoch",
            Unit::Seconds,
            secret_certificate_expiry.clone(),
        );
        Self {
            proxies_connected,
            pushes,
            push_reply_duration,
            replies,
            store_writes,
            store_write_duration,
            certificates,
            secret_certificate_expiry,
            registry,
        }
    }

    /// Sets the certificate expiry of every Secret (by namespace and name), removing
    /// the series of Secrets that are gone.
    pub fn set_certificate_expiry(
        &self,
        expiry: &std::collections::BTreeMap<(String, String), i64>,
    ) {
        self.secret_certificate_expiry.clear();
        for ((namespace, name), not_after) in expiry {
            self.secret_certificate_expiry
                .get_or_create(&SecretLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
                .set(*not_after);
        }
    }

    /// Counts a push of `type_url`.
    pub fn push(&self, type_url: &str) {
        self.pushes
            .get_or_create(&TypeLabels {
                r#type: type_name(type_url),
            })
            .inc();
    }

    /// Counts a proxy's reply to a push of `type_url`, `after` the push.
    pub fn reply(&self, type_url: &str, nack: bool, after: Duration) {
        let r#type = type_name(type_url);
        self.replies
            .get_or_create(&ReplyLabels {
                r#type,
                result: if nack { "nack" } else { "ack" },
            })
            .inc();
        self.push_reply_duration
            .get_or_create(&TypeLabels { r#type })
            .observe(after.as_secs_f64());
    }

    /// Counts a store write of `op` that took `took`.
    pub fn store_write(&self, op: &'static str, ok: bool, took: Duration) {
        self.store_writes
            .get_or_create(&WriteLabels {
                op,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        self.store_write_duration
            .get_or_create(&OpLabels { op })
            .observe(took.as_secs_f64());
    }

    /// Counts a certificate signing request by its `result`.
    pub fn certificate(&self, result: &'static str) {
        self.certificates
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for ControlMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The label of `type_url`: one of the served types, or `other`.
fn type_name(type_url: &str) -> &'static str {
    match type_url {
        pb::SERVICE_TYPE_URL => "Service",
        pb::ROUTE_TABLE_TYPE_URL => "RouteTable",
        pb::INBOUND_POLICY_TYPE_URL => "InboundPolicy",
        pb::TRUST_BUNDLE_TYPE_URL => "TrustBundle",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_a_proxy_makes_up_is_counted_as_other() {
        let metrics = ControlMetrics::new();
        metrics.push(pb::SERVICE_TYPE_URL);
        metrics.reply(
            "type.googleapis.com/made.up.Thing",
            true,
            Duration::from_millis(3),
        );
        metrics.reply(pb::SERVICE_TYPE_URL, false, Duration::from_millis(3));
        let text = metrics.encode();
        for line in [
            r#"weft_control_xds_pushes_total{type="Service"} 1"#,
            r#"weft_control_xds_replies_total{type="other",result="nack"} 1"#,
            r#"weft_control_xds_replies_total{type="Service",result="ack"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("made.up"), "{text}");
    }
}
