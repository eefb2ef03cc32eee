//! `weft inspect proxy NAME [-n NS]`: what the control plane knows about a connected
//! proxy — its connection and registration, and per resource type the versions sent
//! and acknowledged and the last NACK with its error (shown first: it is usually why
//! one runs this). `-o yaml|json` prints the raw document, config last sent included.

use std::fmt::Write as _;

use serde_json::Value;
use weft_api::resource::DEFAULT_NAMESPACE;

use super::client::{self, encode_query, Client, ConnectArgs};
use super::output::{self, or_none, Output};

/// Arguments of `weft inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What to inspect; only `proxy` for now.
    #[arg(value_parser = ["proxy"])]
    target: String,
    /// The proxy's workload name.
    name: String,
    /// The proxy's workload namespace.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Print the raw document instead (`yaml` or `json`).
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Prints the proxy's state.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let path = format!(
        "/v1/proxies/{}/{}",
        encode_query(&args.namespace),
        encode_query(&args.name)
    );
    let proxy = client::block_on(async { client.get_json(&path).await })?;
    if let Some(format @ (Output::Yaml | Output::Json)) = args.output {
        return output::print_document(&proxy, format);
    }
    print!("{}", render(&proxy));
    Ok(())
}

/// The human-readable view of a proxy document.
pub(crate) fn render(proxy: &Value) -> String {
    let mut out = String::new();
    let types = proxy["types"].as_array().cloned().unwrap_or_default();
    let nacked: Vec<&Value> = types.iter().filter(|t| t["lastNack"].is_object()).collect();
    for t in &nacked {
        let nack = &t["lastNack"];
        let _ = writeln!(
            out,
            "NACK: the proxy refused {} (nonce {}, at {}): {}",
            short_type(&t["typeUrl"]),
            text(&nack["nonce"]),
            text(&nack["at"]),
            text(&nack["message"])
        );
        for error in nack["errors"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {}: {}",
                text(&error["name"]),
                text(&error["message"])
            );
        }
    }
    if !nacked.is_empty() {
        out.push('\n');
    }

    let _ = writeln!(out, "Node:         {}", text(&proxy["nodeId"]));
    let _ = writeln!(out, "Connection:   {}", text(&proxy["connId"]));
    let _ = writeln!(out, "Peer:         {}", text(&proxy["peer"]));
    let _ = writeln!(out, "Connected at: {}", text(&proxy["connectedAt"]));
    let registration = &proxy["registration"];
    if registration.is_object() {
        let ports: Vec<String> = registration["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "Registration: {}/{} sa={} address={} ports={} zone={} proxy={}",
            text(&registration["namespace"]),
            text(&registration["name"]),
            text(&registration["serviceAccount"]),
            text(&registration["address"]),
            or_none(Some(&ports.join(","))),
            text(&registration["zone"]),
            text(&registration["proxyVersion"]),
        );
    }
    let _ = writeln!(out, "Types:");
    if types.is_empty() {
        let _ = writeln!(out, "  <none subscribed>");
    }
    for t in &types {
        let _ = writeln!(out, "  {}", short_type(&t["typeUrl"]));
        let subscribed: Vec<String> = t["subscribed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let _ = writeln!(
            out,
            "    subscribed: {}",
            or_none(Some(&subscribed.join(", ")))
        );
        for (label, field) in [("sent", "lastSent"), ("acked", "acked")] {
            let entry = &t[field];
            if entry.is_object() {
                let _ = writeln!(
                    out,
                    "    {label:<10}  nonce {} at {}: {}",
                    text(&entry["nonce"]),
                    text(&entry["at"]),
                    versions(&entry["versions"])
                );
            } else {
                let _ = writeln!(out, "    {label:<10}  <none>");
            }
        }
        if let Some(nonce) = t["pendingNonce"].as_str() {
            let _ = writeln!(out, "    pending     nonce {nonce} (no ACK or NACK yet)");
        }
        if t["lastNack"].is_object() {
            let _ = writeln!(out, "    last NACK   {}", text(&t["lastNack"]["message"]));
        }
    }
    out
}

fn versions(map: &Value) -> String {
    let pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, version)| format!("{name}@{}", text(version)))
        .collect();
    or_none(Some(&pairs.join(", ")))
}

/// `weft.proxy.v1.Service` from a type URL.
fn short_type(url: &Value) -> String {
    let url = text(url);
    url.rsplit('/').next().unwrap_or(&url).to_owned()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nack_is_shown_first_with_each_refused_resource() {
        let proxy = json!({
            "nodeId": "default/web-1",
            "connId": 7,
            "types": [{
                "typeUrl": "type.googleapis.com/weft.proxy.v1.RouteTable",
                "subscribed": ["web.default"],
                "lastSent": {"nonce": "3", "versions": {"web.default": "v5"}, "at": "t3"},
                "acked": {"nonce": "2", "versions": {"web.default": "v4"}, "at": "t2"},
                "lastNack": {"nonce": "3", "message": "1 resource refused", "at": "t3",
                             "errors": [{"name": "web.default", "message": "regex does not compile"}]}
            }]
        });
        let text = render(&proxy);
        assert!(
            text.starts_with("NACK: the proxy refused weft.proxy.v1.RouteTable (nonce 3, at t3): 1 resource refused\n  web.default: regex does not compile"),
            "{text}"
        );
        assert!(
            text.contains("sent        nonce 3 at t3: web.default@v5"),
            "{text}"
        );
        assert!(
            text.contains("acked       nonce 2 at t2: web.default@v4"),
            "{text}"
        );
    }
}
