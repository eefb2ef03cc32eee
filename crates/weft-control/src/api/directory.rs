//! The [`ProxyDirectory`] of a running control plane: what the HTTP API shows of
//! connected proxies (`weft inspect proxy`), read from its xDS server.

use prost::Message;
use weft_api::pb::v1 as pb;

use super::ProxyDirectory;
use crate::xds::XdsServer;

/// The API's view of connected proxies, with the config last sent decoded.
pub(crate) struct Directory {
    pub(crate) xds: XdsServer,
}

impl ProxyDirectory for Directory {
    fn list(&self) -> Vec<serde_json::Value> {
        self.xds
            .proxies()
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect()
    }

    fn get(&self, namespace: &str, name: &str) -> Option<serde_json::Value> {
        let node = format!("{namespace}/{name}");
        let status = self.xds.proxy(&node)?;
        let mut doc = serde_json::to_value(status).ok()?;
        let sent: Vec<serde_json::Value> = self
            .xds
            .resources_sent(&node)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "typeUrl": r.type_url(),
                    "name": r.name,
                    "version": r.version,
                    "resource": decode(&r.body),
                })
            })
            .collect();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("configSent".into(), serde_json::Value::Array(sent));
        }
        Some(doc)
    }
}

/// A proxy resource as JSON, in the proxy model's shape.
fn decode(any: &prost_types::Any) -> serde_json::Value {
    let undecodable = |e: &dyn std::fmt::Display| serde_json::json!({ "error": e.to_string() });
    match any.type_url.as_str() {
        pb::SERVICE_TYPE_URL => match pb::Service::decode(any.value.as_slice()) {
            Ok(s) => match weft_api::proxy::Service::try_from(&s) {
                Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                Err(e) => undecodable(&e),
            },
            Err(e) => undecodable(&e),
        },
        pb::ROUTE_TABLE_TYPE_URL => match pb::RouteTable::decode(any.value.as_slice()) {
            Ok(t) => match weft_api::pb_convert::route_tables_from_pb(&t) {
                Ok(t) => serde_json::to_value(t).unwrap_or_default(),
                Err(e) => undecodable(&e),
            },
            Err(e) => undecodable(&e),
        },
        pb::INBOUND_POLICY_TYPE_URL => match pb::InboundPolicy::decode(any.value.as_slice()) {
            Ok(p) => match weft_api::proxy::InboundPolicy::try_from(&p) {
                Ok(p) => serde_json::to_value(p).unwrap_or_default(),
                Err(e) => undecodable(&e),
            },
            Err(e) => undecodable(&e),
        },
        pb::TRUST_BUNDLE_TYPE_URL => match pb::TrustBundle::decode(any.value.as_slice()) {
            Ok(b) => serde_json::json!({ "rootsPem": b.roots_pem, "signer": b.signer }),
            Err(e) => undecodable(&e),
        },
        other => serde_json::json!({ "unknownType": other }),
    }
}
