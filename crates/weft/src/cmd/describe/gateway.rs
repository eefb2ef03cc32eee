//! `weft describe gateway NAME`: each listener (port, protocol, hostname, TLS and its
//! certificates, which routes it takes, how many attached) with its conditions, the
//! routes that name the Gateway with their conditions there, and the Gateway's own
//! conditions; per listener, each certificate reference's resolution and, when it
//! resolved, the certificate's DNS names and expiry. Everything shown comes from the
//! objects and the status the control plane wrote; nothing is decided here.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

use super::super::client::Client;
use super::super::get::{collection_path, conditions, name_of};
use super::super::output::{age, or_none};
use super::{pairs, write_conditions};

/// Every route (of any namespace) with a `parentRefs` entry naming the Gateway
/// `namespace/name`.
pub(super) async fn routes_naming(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut routes = Vec::new();
    for kind in [Kind::HttpRoute, Kind::GrpcRoute, Kind::TcpRoute] {
        let list = client.get_json(&collection_path(kind, None)).await?;
        routes.extend(
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|route| names(route, namespace, name))
                .cloned(),
        );
    }
    Ok(routes)
}

/// Whether `route` names the Gateway `namespace/name` among its `parentRefs`.
fn names(route: &Value, namespace: &str, name: &str) -> bool {
    let own = route["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE);
    route["spec"]["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|parent| is_gateway(parent, own, namespace, name))
}

/// Whether a `parentRef` (as written in a spec, or echoed in a status with its
/// namespace filled in) names the Gateway `namespace/name`; `own` is the route's
/// namespace.
fn is_gateway(parent: &Value, own: &str, namespace: &str, name: &str) -> bool {
    parent["kind"] == "Gateway"
        && parent["group"] == weft_api::resource::gateway::GROUP
        && parent["name"] == name
        && parent["namespace"].as_str().unwrap_or(own) == namespace
}

/// The description of `gateway`, with the routes that name it and the Secrets of its
/// namespace (descriptions only: the API never answers material).
pub(super) fn render(
    gateway: &Value,
    routes: &[Value],
    secrets: &[Value],
    now: SystemTime,
) -> String {
    let mut out = String::new();
    let meta = &gateway["metadata"];
    let spec = &gateway["spec"];
    let status = &gateway["status"];
    let namespace = meta["namespace"].as_str().unwrap_or(DEFAULT_NAMESPACE);
    let name = name_of(gateway);
    let _ = writeln!(out, "Name:         {name}");
    let _ = writeln!(out, "Namespace:    {namespace}");
    let _ = writeln!(
        out,
        "Class:        {}",
        or_none(spec["gatewayClassName"].as_str())
    );
    let _ = writeln!(out, "Labels:       {}", pairs(&meta["labels"]));
    let _ = writeln!(
        out,
        "Age:          {}",
        age(meta["creationTimestamp"].as_str(), now)
    );
    let _ = writeln!(out, "Listeners:");
    let listeners = spec["listeners"].as_array().cloned().unwrap_or_default();
    if listeners.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    for listener in &listeners {
        let lname = listener["name"].as_str().unwrap_or("?");
        let observed = status["listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == lname)
            .unwrap_or(&Value::Null);
        let _ = writeln!(
            out,
            "  {lname} {}/{}, hostname {}",
            listener["port"],
            listener["protocol"].as_str().unwrap_or("?"),
            listener["hostname"].as_str().unwrap_or("any")
        );
        if let Some(tls) = tls(&listener["tls"], namespace) {
            let _ = writeln!(out, "    tls: {tls}");
        }
        write_certificates(&mut out, listener, observed, namespace, secrets, now);
        let _ = writeln!(
            out,
            "    routes from: {}; kinds: {}",
            from(&listener["allowedRoutes"]["namespaces"], namespace),
            kinds(observed)
        );
        let _ = writeln!(
            out,
            "    attached routes: {}",
            observed["attachedRoutes"]
                .as_u64()
                .map_or_else(|| "<not yet compiled>".to_owned(), |n| n.to_string())
        );
        write_conditions(&mut out, observed, "    ");
    }
    let _ = writeln!(out, "Routes naming it:");
    if routes.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    for route in routes {
        let own = route["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE);
        let _ = writeln!(
            out,
            "  {} {own}/{}",
            route["kind"].as_str().unwrap_or("?"),
            name_of(route)
        );
        let entries: Vec<&Value> = route["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| is_gateway(&p["parentRef"], own, namespace, name))
            .collect();
        if entries.is_empty() {
            let _ = writeln!(out, "    <no status yet>");
        }
        for entry in entries {
            let r = &entry["parentRef"];
            let mut via = String::from("the whole Gateway");
            if let Some(section) = r["sectionName"].as_str() {
                via = format!("listener {section}");
            }
            if let Some(port) = r["port"].as_u64() {
                let _ = write!(via, " on port {port}");
            }
            let _ = writeln!(out, "    via {via}:");
            write_conditions(&mut out, entry, "      ");
        }
    }
    let _ = writeln!(out, "Conditions:");
    write_conditions(&mut out, status, "  ");
    out
}

/// A listener's `tls`: its mode and certificates, `None` when it has none.
fn tls(tls: &Value, namespace: &str) -> Option<String> {
    if !tls.is_object() {
        return None;
    }
    let mode = tls["mode"].as_str().unwrap_or("Terminate");
    let certificates: Vec<String> = tls["certificateRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {}/{}",
                c["kind"].as_str().unwrap_or("Secret"),
                c["namespace"].as_str().unwrap_or(namespace),
                c["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Some(if certificates.is_empty() {
        mode.to_owned()
    } else {
        format!("{mode}, certificates {}", certificates.join(", "))
    })
}

/// Each of a listener's certificate references: unresolved with the control plane's
/// reason, or resolved with the certificate's DNS names, `notAfter` and time left.
fn write_certificates(
    out: &mut String,
    listener: &Value,
    observed: &Value,
    namespace: &str,
    secrets: &[Value],
    now: SystemTime,
) {
    let refs = listener["tls"]["certificateRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let resolved = conditions(observed)
        .into_iter()
        .find(|c| c["type"] == "ResolvedRefs");
    for (i, r) in refs.iter().enumerate() {
        let ref_ns = r["namespace"].as_str().unwrap_or(namespace);
        let ref_name = r["name"].as_str().unwrap_or("?");
        let _ = write!(out, "    certificate {ref_ns}/{ref_name}: ");
        let Some(condition) = &resolved else {
            let _ = writeln!(out, "<not yet compiled>");
            continue;
        };
        let message = condition["message"].as_str().unwrap_or_default();
        if condition["status"] == "False" {
            if let Some(problem) = problem_of(message, i) {
                let _ = writeln!(
                    out,
                    "unresolved ({}): {problem}",
                    condition["reason"].as_str().unwrap_or("?")
                );
                continue;
            }
        }
        let secret = secrets.iter().find(|s| {
            name_of(s) == ref_name
                && s["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(DEFAULT_NAMESPACE)
                    == ref_ns
        });
        let Some(secret) = secret else {
            // Resolved when compiled, gone since: the status will say so next.
            let _ = writeln!(out, "resolved, but the Secret is not there now");
            continue;
        };
        let cert = &secret["spec"]["certificate"];
        let names: Vec<&str> = cert["dnsNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "resolved; DNS names {}; notAfter {} ({})",
            if names.is_empty() {
                "<none>".to_owned()
            } else {
                names.join(", ")
            },
            super::secret::timestamp(&cert["notAfter"]),
            super::secret::time_left(&cert["notAfter"], now)
        );
    }
}

/// The part of a `ResolvedRefs` message about `tls.certificateRefs[index]`, if any:
/// problems are joined with `; `, each starting with its field path.
fn problem_of(message: &str, index: usize) -> Option<&str> {
    let at = format!("tls.certificateRefs[{index}]: ");
    let start = message.find(&at)? + at.len();
    let rest = &message[start..];
    let end = [
        "; tls.certificateRefs[",
        "; allowedRoutes.",
        "; no route can attach",
    ]
    .iter()
    .filter_map(|next| rest.find(next))
    .min()
    .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A listener's `allowedRoutes.namespaces`, in words.
fn from(namespaces: &Value, namespace: &str) -> String {
    match namespaces["from"].as_str().unwrap_or("Same") {
        "All" => "every namespace (All)".to_owned(),
        "Selector" => {
            let selector = &namespaces["selector"];
            let mut terms: Vec<String> = selector["matchLabels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            terms.extend(
                selector["matchExpressions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        let values: Vec<&str> = e["values"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let key = e["key"].as_str().unwrap_or("?");
                        let operator = e["operator"].as_str().unwrap_or("?");
                        if values.is_empty() {
                            format!("{key} {operator}")
                        } else {
                            format!("{key} {operator} ({})", values.join(", "))
                        }
                    }),
            );
            if terms.is_empty() {
                "every namespace (Selector, empty)".to_owned()
            } else {
                format!("namespaces with {} (Selector)", terms.join(", "))
            }
        }
        _ => format!("namespace {namespace} (Same)"),
    }
}

/// The route kinds a listener takes, as the control plane reported them.
fn kinds(observed: &Value) -> String {
    match observed["supportedKinds"].as_array() {
        None => "<not yet compiled>".to_owned(),
        Some(kinds) if kinds.is_empty() => "none".to_owned(),
        Some(kinds) => kinds
            .iter()
            .filter_map(|k| k["kind"].as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn edge() -> Value {
        json!({
            "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": "shop"},
            "spec": {
                "gatewayClassName": "weft",
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP"},
                    {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com",
                     "tls": {"certificateRefs": [{"name": "shop-cert"}]},
                     "allowedRoutes": {"namespaces": {"from": "All"}}},
                    {"name": "db", "port": 5432, "protocol": "TCP",
                     "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchExpressions": [
                         {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["data"]}
                     ]}}}}
                ]
            },
            "status": {
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "ListenersNotValid", "message": "some listeners are not valid: https (InvalidCertificateRef)"},
                    {"type": "Programmed", "status": "False", "reason": "Pending", "message": "no gateway named shop/edge is connected"}
                ],
                "listeners": [
                    {"name": "http", "attachedRoutes": 1,
                     "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}, {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}],
                     "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]},
                    {"name": "https", "attachedRoutes": 0,
                     "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                     "conditions": [{"type": "ResolvedRefs", "status": "False", "reason": "InvalidCertificateRef", "message": "tls.certificateRefs[0]: Secret shop/shop-cert not found"}]}
                ]
            }
        })
    }

    #[test]
    fn a_gateway_shows_each_listener_the_routes_naming_it_and_its_conditions() {
        let routes = [
            json!({
                "kind": "HTTPRoute",
                "metadata": {"name": "store", "namespace": "shop"},
                "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}]},
                "status": {"parents": [
                    {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "shop"},
                     "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "attached to listener http of Gateway shop/edge"}]},
                    {"parentRef": {"group": "", "kind": "Service", "name": "edge", "namespace": "shop"},
                     "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "attached to the Service"}]}
                ]}
            }),
            json!({
                "kind": "TCPRoute",
                "metadata": {"name": "pg", "namespace": "shop"},
                "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "sectionName": "db"}]},
                "status": {"parents": [
                    {"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "shop", "sectionName": "db"},
                     "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "listener db takes routes of the namespaces its allowedRoutes.namespaces.selector matches, not of shop"}]}
                ]}
            }),
        ];
        let text = render(&edge(), &routes, &[], SystemTime::now());
        for line in [
            "Class:        weft\n",
            "  http 80/HTTP, hostname any\n    routes from: namespace shop (Same); kinds: HTTPRoute, GRPCRoute\n    attached routes: 1\n    Accepted=True (Accepted)\n",
            "  https 443/HTTPS, hostname shop.example.com\n    tls: Terminate, certificates Secret shop/shop-cert\n    certificate shop/shop-cert: unresolved (InvalidCertificateRef): Secret shop/shop-cert not found\n    routes from: every namespace (All); kinds: HTTPRoute\n",
            "    ResolvedRefs=False (InvalidCertificateRef): tls.certificateRefs[0]: Secret shop/shop-cert not found\n",
            "  db 5432/TCP, hostname any\n    routes from: namespaces with kubernetes.io/metadata.name In (data) (Selector); kinds: <not yet compiled>\n    attached routes: <not yet compiled>\n    <none reported>\n",
            "Routes naming it:\n  HTTPRoute shop/store\n    via the whole Gateway:\n      Accepted=True (Accepted): attached to listener http of Gateway shop/edge\n  TCPRoute shop/pg\n    via listener db:\n      Accepted=False (NotAllowedByListeners): listener db takes routes",
            "Conditions:\n  Accepted=True (ListenersNotValid): some listeners are not valid: https (InvalidCertificateRef)\n  Programmed=False (Pending): no gateway named shop/edge is connected\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(
            !text.contains("attached to the Service"),
            "a Service parent of the same name is not this Gateway:\n{text}"
        );
    }

    #[test]
    fn each_certificate_ref_shows_its_resolution_and_a_resolved_one_its_names_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut gateway = edge();
        gateway["spec"]["listeners"][1]["tls"]["certificateRefs"] =
            json!([{"name": "shop-cert"}, {"name": "gone"}]);
        gateway["status"]["listeners"][1]["conditions"] = json!([{
            "type": "ResolvedRefs", "status": "False", "reason": "InvalidCertificateRef",
            "message": "tls.certificateRefs[1]: Secret shop/gone not found; create it with `weft apply`"
        }]);
        let secrets = [json!({
            "metadata": {"name": "shop-cert", "namespace": "shop"},
            "spec": {"certificate": {"dnsNames": ["shop.example.com"], "notAfter": 1_800_000_000 + 10 * 86_400}}
        })];
        let text = render(&gateway, &[], &secrets, now);
        for line in [
            "    certificate shop/shop-cert: resolved; DNS names shop.example.com; notAfter 2027-01-25T08:00:00Z (10d left)\n",
            "    certificate shop/gone: unresolved (InvalidCertificateRef): Secret shop/gone not found; create it with `weft apply`\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }

    #[test]
    fn only_routes_naming_this_gateway_by_group_kind_and_namespace_are_its() {
        let route = |ns: &str, parent: Value| json!({"metadata": {"name": "r", "namespace": ns}, "spec": {"parentRefs": [parent]}});
        let gateway = |extra: Value| {
            let mut p =
                json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"});
            if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
                p.extend(extra.clone());
            }
            p
        };
        assert!(names(&route("shop", gateway(json!({}))), "shop", "edge"));
        assert!(names(
            &route("blog", gateway(json!({"namespace": "shop"}))),
            "shop",
            "edge"
        ));
        assert!(!names(&route("blog", gateway(json!({}))), "shop", "edge"));
        assert!(!names(
            &route("shop", json!({"name": "edge"})),
            "shop",
            "edge"
        ));
        assert!(!names(
            &route("shop", gateway(json!({"name": "other"}))),
            "shop",
            "edge"
        ));
    }
}
