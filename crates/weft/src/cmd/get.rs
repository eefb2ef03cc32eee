//! `weft get KIND [NAME]`: list or read objects, as a kubectl-style table or as
//! YAML/JSON/names. Also holds the kind and path helpers the other resource commands
//! share.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

use super::client::{self, encode_query, Client, ConnectArgs};
use super::output::{self, age, or_none, Output};

/// Arguments of `weft get`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Kind: `services`, `svc`, `workloads`, `httproutes`, `HTTPRoute`, `meshes`, ….
    kind: String,
    /// One object's name; all objects when left out.
    name: Option<String>,
    /// Namespace.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long, conflicts_with = "name")]
    all_namespaces: bool,
    /// Label selector: `app=web,tier!=db,env`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Output format; a table when left out.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Output>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Prints the objects.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let kind = parse_kind(&args.kind)?;
    let client = Client::new(&args.connect)?;
    client::block_on(get(&client, kind, args))
}

async fn get(client: &Client, kind: Kind, args: &Args) -> anyhow::Result<()> {
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let (items, single) = if let Some(name) = &args.name {
        let object = client
            .get_json(&item_path(kind, &args.namespace, name))
            .await?;
        (vec![object], true)
    } else {
        let mut path = collection_path(kind, namespace);
        if let Some(selector) = &args.selector {
            path.push_str("?labelSelector=");
            path.push_str(&encode_query(selector));
        }
        let list = client.get_json(&path).await?;
        (list["items"].as_array().cloned().unwrap_or_default(), false)
    };
    match args.output {
        Some(format @ (Output::Yaml | Output::Json)) => {
            let document = if single {
                items.into_iter().next().unwrap_or_default()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
            };
            output::print_document(&document, format)
        }
        Some(Output::Name) => {
            for item in &items {
                println!("{}/{}", kind.as_str().to_ascii_lowercase(), name_of(item));
            }
            Ok(())
        }
        Some(Output::Wide) | None => {
            if items.is_empty() {
                match namespace.filter(|_| kind.namespaced()) {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found."),
                }
                return Ok(());
            }
            let all_namespaces = args.all_namespaces && kind.namespaced();
            let wide = args.output == Some(Output::Wide);
            print!(
                "{}",
                render(kind, &items, all_namespaces, wide, SystemTime::now())
            );
            Ok(())
        }
    }
}

/// The table for `items` of `kind`.
pub(crate) fn render(
    kind: Kind,
    items: &[Value],
    all_namespaces: bool,
    wide: bool,
    now: SystemTime,
) -> String {
    let mut headers: Vec<&str> = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.push("NAME");
    headers.extend(kind_headers(kind));
    headers.push("AGE");
    if wide {
        headers.push("LABELS");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            let mut row = Vec::new();
            if all_namespaces {
                row.push(or_none(item["metadata"]["namespace"].as_str()));
            }
            row.push(name_of(item).to_owned());
            row.extend(kind_cells(kind, item));
            row.push(age(item["metadata"]["creationTimestamp"].as_str(), now));
            if wide {
                row.push(labels(item));
            }
            row
        })
        .collect();
    output::table(&headers, &rows)
}

fn kind_headers(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Mesh => &["TRUST-DOMAIN", "MTLS", "DEFAULT-ACTION"],
        Kind::Service => &["PORTS", "ENDPOINTS"],
        Kind::Workload => &["ADDRESS", "IDENTITY", "PHASE", "CONTROL-PLANE"],
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute => &["PARENTS", "BACKENDS", "ACCEPTED"],
        Kind::BackendPolicy => &["TARGETS", "LOAD-BALANCER", "ACCEPTED"],
        Kind::RateLimit => &["TARGETS", "LIMITS", "ACCEPTED"],
        Kind::FaultInjection => &["TARGETS", "FAULTS", "ACCEPTED"],
        Kind::TrafficPermission => &["TARGETS", "ACTION", "RULES", "ACCEPTED"],
        Kind::Telemetry => &[
            "TARGETS",
            "TRACING",
            "ACCESS-LOG",
            "METRICS",
            "ACCEPTED",
            "CONFLICTED",
        ],
        Kind::Gateway => &["CLASS", "LISTENERS", "ACCEPTED", "PROGRAMMED"],
        Kind::Secret => &["TYPE", "KEYS", "HOSTS", "NOT-AFTER", "VALID"],
    }
}

fn kind_cells(kind: Kind, item: &Value) -> Vec<String> {
    let spec = &item["spec"];
    let status = &item["status"];
    match kind {
        Kind::Mesh => {
            // The values in force: what the spec leaves out takes its default, as the
            // control plane applies it.
            let effective = mesh_in_force(spec);
            vec![
                or_none(effective["trustDomain"].as_str()),
                or_none(effective["mtls"]["mode"].as_str()),
                or_none(effective["defaultAction"].as_str()),
            ]
        }
        Kind::Service => vec![ports(spec), endpoints(&status["endpoints"])],
        Kind::Workload => vec![
            or_none(spec["address"].as_str()),
            format!(
                "{}/{}",
                item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(DEFAULT_NAMESPACE),
                spec["serviceAccount"].as_str().unwrap_or("default")
            ),
            or_none(status["phase"].as_str()),
            or_none(status["controlPlane"].as_str()),
        ],
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute => {
            vec![parents(item), backends(spec), accepted(status)]
        }
        Kind::BackendPolicy => vec![
            targets(spec),
            spec["loadBalancer"]["type"]
                .as_str()
                .unwrap_or("peakEwma")
                .to_owned(),
            accepted(status),
        ],
        Kind::RateLimit => vec![targets(spec), limits(spec), accepted(status)],
        Kind::FaultInjection => vec![targets(spec), faults(spec), accepted(status)],
        Kind::TrafficPermission => vec![
            if spec["targetRefs"].as_array().is_none_or(Vec::is_empty) {
                "<namespace>".to_owned()
            } else {
                targets(spec)
            },
            spec["action"].as_str().unwrap_or("allow").to_owned(),
            spec["rules"].as_array().map_or(0, Vec::len).to_string(),
            accepted(status),
        ],
        Kind::Telemetry => vec![
            telemetry_targets(spec),
            tracing(&spec["tracing"]),
            access_log(&spec["accessLog"]),
            metrics(&spec["metrics"]),
            accepted(status),
            condition_status(status, "Conflicted"),
        ],
        Kind::Gateway => vec![
            or_none(spec["gatewayClassName"].as_str()),
            listeners(spec),
            accepted(status),
            condition_status(status, "Programmed"),
        ],
        Kind::Secret => vec![
            or_none(spec["type"].as_str()),
            spec["keys"].as_array().map_or_else(
                || "<none>".to_owned(),
                |keys| {
                    keys.iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ),
            spec["certificate"]["dnsNames"]
                .as_array()
                .filter(|names| !names.is_empty())
                .map_or_else(
                    || "<none>".to_owned(),
                    |names| {
                        names
                            .iter()
                            .filter_map(serde_json::Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                ),
            spec["certificate"]["notAfter"]
                .as_i64()
                .map_or_else(|| "<none>".to_owned(), rfc3339),
            condition_status(status, "Valid"),
        ],
    }
}

/// A `Gateway`'s listeners: `name:port/PROTOCOL`, comma-separated.
fn listeners(spec: &Value) -> String {
    let all: Vec<String> = spec["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{}:{}/{}",
                l["name"].as_str().unwrap_or("?"),
                l["port"],
                l["protocol"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if all.is_empty() {
        "<none>".to_owned()
    } else {
        all.join(",")
    }
}

/// A `Telemetry`'s `targetRefs`: `Mesh`, `Namespace`, or `Service/name`s.
fn telemetry_targets(spec: &Value) -> String {
    let names: Vec<String> = spec["targetRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let kind = t["kind"].as_str().unwrap_or("?");
            match (kind, t["name"].as_str()) {
                ("Service", Some(name)) => format!("Service/{name}"),
                (kind, _) => kind.to_owned(),
            }
        })
        .collect();
    if names.is_empty() {
        "<none>".to_owned()
    } else {
        names.join(",")
    }
}

/// A `Telemetry`'s `tracing`: `5% http://collector:4317`, `off`, or `-` (left to a
/// broader object).
pub(crate) fn tracing(t: &Value) -> String {
    if !t.is_object() {
        "-".to_owned()
    } else if t["disabled"] == true {
        "off".to_owned()
    } else {
        format!(
            "{}% {}",
            t["sampling"].as_f64().unwrap_or(1.0),
            t["endpoint"].as_str().unwrap_or("?")
        )
    }
}

/// A `Telemetry`'s `accessLog`: `json stdout`, `text /var/log/weft/access.log`, `off`,
/// or `-` (left to a broader object).
pub(crate) fn access_log(l: &Value) -> String {
    if !l.is_object() {
        "-".to_owned()
    } else if l["disabled"] == true {
        "off".to_owned()
    } else {
        format!(
            "{} {}",
            l["format"].as_str().unwrap_or("json"),
            l["path"].as_str().unwrap_or("stdout")
        )
    }
}

/// A `Telemetry`'s `metrics`: `on`, `off`, or `-` (left to a broader object).
pub(crate) fn metrics(m: &Value) -> String {
    if !m.is_object() {
        "-".to_owned()
    } else if m["enabled"] == false {
        "off".to_owned()
    } else {
        "on".to_owned()
    }
}

/// The status of the condition `kind` in `status.conditions`; `Unknown` when not
/// reported yet.
fn condition_status(status: &Value, kind: &str) -> String {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_owned()
}

/// A `Mesh.spec` with every default applied (the spec itself if it does not parse).
fn mesh_in_force(spec: &Value) -> Value {
    let given = if spec.is_null() {
        serde_json::json!({})
    } else {
        spec.clone()
    };
    serde_json::from_value::<weft_api::resource::mesh::Spec>(given)
        .ok()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| spec.clone())
}

/// `80/http,443` from `spec.ports`.
fn ports(spec: &Value) -> String {
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let number = p["port"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_default();
            match p["appProtocol"].as_str().or(p["protocol"].as_str()) {
                Some(protocol) => format!("{number}/{protocol}"),
                None => number,
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    }
}

/// `status.endpoints`: addresses (at most three, then `+N more`), a count, or `<none>`.
fn endpoints(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::Array(items) if !items.is_empty() => {
            let shown: Vec<String> = items
                .iter()
                .take(3)
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => match (other["address"].as_str(), other["port"].as_u64()) {
                        (Some(a), Some(p)) => format!("{a}:{p}"),
                        (Some(a), None) => a.to_owned(),
                        _ => other["name"].as_str().unwrap_or("?").to_owned(),
                    },
                })
                .collect();
            let more = items.len().saturating_sub(3);
            if more > 0 {
                format!("{} + {more} more", shown.join(","))
            } else {
                shown.join(",")
            }
        }
        _ => "<none>".to_owned(),
    }
}

/// `spec.parentRefs` names, `ns/name` when in another namespace; a Gateway as
/// `Gateway/name`, with `:listener` when the route names one.
fn parents(item: &Value) -> String {
    let own = item["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE);
    let names: Vec<String> = item["spec"]["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("?");
            let name = match p["namespace"].as_str() {
                Some(ns) if ns != own => format!("{ns}/{name}"),
                _ => name.to_owned(),
            };
            match (p["kind"].as_str(), p["sectionName"].as_str()) {
                (Some("Gateway"), Some(section)) => format!("Gateway/{name}:{section}"),
                (Some("Gateway"), None) => format!("Gateway/{name}"),
                _ => name,
            }
        })
        .collect();
    if names.is_empty() {
        "<none>".to_owned()
    } else {
        names.join(",")
    }
}

/// A `RateLimit`'s limits: `100/1s` (`per identity` when so), comma-separated.
fn limits(spec: &Value) -> String {
    let all: Vec<String> = spec["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{}/{}{}",
                l["requests"].as_u64().unwrap_or(0),
                l["per"].as_str().unwrap_or("1s"),
                if l["by"] == "identity" {
                    " per identity"
                } else {
                    ""
                }
            )
        })
        .collect();
    all.join(",")
}

/// A `FaultInjection`'s faults: `delay 10% 2s`, `abort 5% 503`.
fn faults(spec: &Value) -> String {
    let mut parts = Vec::new();
    let d = &spec["delay"];
    if d.is_object() {
        parts.push(format!(
            "delay {}% {}",
            d["percent"],
            d["fixedDelay"].as_str().unwrap_or("?")
        ));
    }
    let a = &spec["abort"];
    if a.is_object() {
        let what = a["grpcStatus"].as_u64().map_or_else(
            || a["httpStatus"].as_u64().unwrap_or(503).to_string(),
            |g| format!("grpc {g}"),
        );
        parts.push(format!("abort {}% {what}", a["percent"]));
    }
    parts.join(", ")
}

/// A policy's `targetRefs`: `Kind/name`, comma-separated.
fn targets(spec: &Value) -> String {
    let names: Vec<String> = spec["targetRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}/{}",
                t["kind"].as_str().unwrap_or("?"),
                t["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if names.is_empty() {
        "<none>".to_owned()
    } else {
        names.join(",")
    }
}

/// Every rule's `backendRefs`: `name:port` with `(weight)` when set.
fn backends(spec: &Value) -> String {
    let mut out: Vec<String> = Vec::new();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        for backend in rule["backendRefs"].as_array().into_iter().flatten() {
            let mut text = backend["name"].as_str().unwrap_or("?").to_owned();
            if let Some(port) = backend["port"].as_u64() {
                let _ = write!(text, ":{port}");
            }
            if let Some(weight) = backend["weight"].as_u64() {
                let _ = write!(text, "({weight})");
            }
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    if out.is_empty() {
        "<none>".to_owned()
    } else {
        out.join(",")
    }
}

/// The `Accepted` condition's status, from `status.parents[].conditions` (Gateway API)
/// or `status.conditions`; `Unknown` when not reported yet.
fn accepted(status: &Value) -> String {
    let mut values: Vec<String> = conditions(status)
        .into_iter()
        .filter(|c| c["type"] == "Accepted")
        .filter_map(|c| c["status"].as_str().map(str::to_owned))
        .collect();
    values.dedup();
    if values.is_empty() {
        "Unknown".to_owned()
    } else {
        values.join(",")
    }
}

/// Every condition in a status: `status.conditions`, `status.parents[].conditions`
/// (routes) and `status.ancestors[].conditions` (policies).
pub(crate) fn conditions(status: &Value) -> Vec<Value> {
    let mut all: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
    for parent in status["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(status["ancestors"].as_array().into_iter().flatten())
    {
        all.extend(parent["conditions"].as_array().cloned().unwrap_or_default());
    }
    all
}

fn labels(item: &Value) -> String {
    let pairs: Vec<String> = item["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        pairs.join(",")
    }
}

/// An object's name.
pub(crate) fn name_of(item: &Value) -> &str {
    item["metadata"]["name"].as_str().unwrap_or_default()
}

/// A kind as users type it, or an error listing the known kinds.
pub(crate) fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    Kind::parse_loose(text).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        anyhow::anyhow!("unknown kind {text:?}; known kinds: {}", known.join(", "))
    })
}

/// API path of a kind's collection in `namespace` (all namespaces when `None`).
pub(crate) fn collection_path(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced() => {
            format!("/v1/namespaces/{}/{}", encode_query(ns), kind.plural())
        }
        _ => format!("/v1/{}", kind.plural()),
    }
}

/// API path of one object.
pub(crate) fn item_path(kind: Kind, namespace: &str, name: &str) -> String {
    format!(
        "{}/{}",
        collection_path(kind, Some(namespace)),
        encode_query(name)
    )
}

/// Seconds since the epoch as an RFC 3339 UTC time (`2026-12-08T01:00:00Z`).
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2025-01-01T01:00:00Z").unwrap()
    }

    #[test]
    fn service_rows_show_ports_and_endpoints_from_status() {
        let service = json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"ports": [{"port": 80, "appProtocol": "http"}, {"port": 9090}]},
            "status": {"endpoints": [{"address": "127.0.0.10", "port": 8080}]}
        });
        assert_eq!(
            render(Kind::Service, &[service], false, false, now()),
            "NAME   PORTS          ENDPOINTS         AGE\nweb    80/http,9090   127.0.0.10:8080   60m\n"
        );
    }

    #[test]
    fn workload_rows_show_identity_phase_and_control_plane() {
        let workload = json!({
            "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {"address": "10.0.0.1", "serviceAccount": "web"},
            "status": {"phase": "Healthy", "controlPlane": "cp-0"}
        });
        let table = render(Kind::Workload, &[workload], true, true, now());
        let row = table.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "prod",
                "web-1",
                "10.0.0.1",
                "prod/web",
                "Healthy",
                "cp-0",
                "<unknown>",
                "app=web"
            ]
        );
    }

    #[test]
    fn route_rows_show_parents_weighted_backends_and_acceptance() {
        let route = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": "web"}, {"name": "api", "namespace": "other"}],
                "rules": [{"backendRefs": [{"name": "web", "port": 80, "weight": 90}, {"name": "web-v2", "port": 80, "weight": 10}]}]
            },
            "status": {"parents": [{"conditions": [{"type": "Accepted", "status": "True"}]}]}
        });
        let table = render(Kind::HttpRoute, &[route], false, false, now());
        let cells: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "web",
                "web,other/api",
                "web:80(90),web-v2:80(10)",
                "True",
                "<unknown>"
            ]
        );
    }

    #[test]
    fn gateway_rows_show_class_listeners_acceptance_and_programming() {
        let gateway = json!({
            "metadata": {"name": "edge", "namespace": "shop"},
            "spec": {
                "gatewayClassName": "weft",
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP"},
                    {"name": "https", "port": 443, "protocol": "HTTPS"}
                ]
            },
            "status": {"conditions": [
                {"type": "Accepted", "status": "True"},
                {"type": "Programmed", "status": "False", "reason": "Pending"}
            ]}
        });
        assert_eq!(
            kind_cells(Kind::Gateway, &gateway),
            ["weft", "http:80/HTTP,https:443/HTTPS", "True", "False"]
        );
        let route = json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"parentRefs": [
                {"name": "web"},
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"},
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "infra", "sectionName": "https"}
            ]}
        });
        assert_eq!(parents(&route), "web,Gateway/edge,Gateway/infra/edge:https");
        assert_eq!(parse_kind("gtw").unwrap(), Kind::Gateway);
        assert_eq!(parse_kind("gateways").unwrap(), Kind::Gateway);
        assert_eq!(parse_kind("Gateway").unwrap(), Kind::Gateway);
    }

    #[test]
    fn meshes_show_the_values_in_force_with_defaults_applied() {
        let omitted = json!({"metadata": {"name": "default"}});
        assert_eq!(
            kind_cells(Kind::Mesh, &omitted),
            ["cluster.local", "strict", "allow"]
        );
        let partial = json!({"spec": {"mtls": {"mode": "permissive"}, "defaultAction": "deny"}});
        assert_eq!(
            kind_cells(Kind::Mesh, &partial),
            ["cluster.local", "permissive", "deny"]
        );
        let full = json!({"spec": {"trustDomain": "prod.example", "mtls": {}}});
        assert_eq!(
            kind_cells(Kind::Mesh, &full),
            ["prod.example", "strict", "allow"]
        );
    }

    #[test]
    fn telemetry_rows_show_targets_each_group_and_conflicts() {
        let telemetry = json!({
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {
                "targetRefs": [{"kind": "Namespace"}],
                "tracing": {"endpoint": "http://otel:4317", "sampling": 5},
                "accessLog": {"disabled": true}
            },
            "status": {
                "ancestors": [{"conditions": [{"type": "Accepted", "status": "True"}]}],
                "conditions": [{"type": "Conflicted", "status": "True"}]
            }
        });
        assert_eq!(
            kind_cells(Kind::Telemetry, &telemetry),
            [
                "Namespace",
                "5% http://otel:4317",
                "off",
                "-",
                "True",
                "True"
            ]
        );
        let service = json!({
            "spec": {
                "targetRefs": [{"kind": "Service", "name": "echo"}, {"kind": "Service", "name": "cart"}],
                "accessLog": {"format": "text", "path": "/var/log/weft/access.log"},
                "metrics": {"enabled": false}
            }
        });
        assert_eq!(
            kind_cells(Kind::Telemetry, &service),
            [
                "Service/echo,Service/cart",
                "-",
                "text /var/log/weft/access.log",
                "off",
                "Unknown",
                "Unknown"
            ]
        );
        assert_eq!(parse_kind("tel").unwrap(), Kind::Telemetry);
        assert_eq!(parse_kind("telemetries").unwrap(), Kind::Telemetry);
    }

    #[test]
    fn kinds_parse_loosely_and_unknown_ones_list_the_known() {
        assert_eq!(parse_kind("svc").unwrap(), Kind::Service);
        assert_eq!(parse_kind("HTTPRoute").unwrap(), Kind::HttpRoute);
        let error = parse_kind("gizmo").unwrap_err().to_string();
        assert!(
            error.contains("services") && error.contains("tcproutes"),
            "{error}"
        );
    }

    #[test]
    fn paths_follow_the_api_layout() {
        assert_eq!(
            collection_path(Kind::Service, Some("prod")),
            "/v1/namespaces/prod/services"
        );
        assert_eq!(collection_path(Kind::Service, None), "/v1/services");
        assert_eq!(
            item_path(Kind::Mesh, "prod", "default"),
            "/v1/meshes/default"
        );
    }
}
