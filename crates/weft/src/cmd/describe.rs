//! `weft describe KIND NAME`: an object with what relates to it. For a `Service`: its
//! endpoints (workloads its selector matches, with phase and address), the routes
//! attached to it, with their conditions, its policies, and the telemetry its workloads
//! record. For a `Gateway` ([`gateway`]): its listeners, the routes naming it and the
//! conditions of both, and each certificate's resolution and expiry. For a `Secret`
//! ([`secret`]): its certificate's description, `Valid`, and the listeners naming it.
//! For other kinds: the YAML and conditions.

mod gateway;
mod secret;

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

use super::client::{self, Client, ConnectArgs};
use super::get::{self, collection_path, conditions, item_path, name_of, parse_kind};
use super::output::{self, age, or_none};

/// Arguments of `weft describe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Kind (`service`, `svc`, `workload`, `httproute`, …).
    kind: String,
    /// Name.
    name: String,
    /// Namespace.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Prints the description.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let kind = parse_kind(&args.kind)?;
    let client = Client::new(&args.connect)?;
    let text = client::block_on(describe(&client, kind, &args.namespace, &args.name))?;
    print!("{text}");
    Ok(())
}

async fn describe(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> anyhow::Result<String> {
    let object = client.get_json(&item_path(kind, namespace, name)).await?;
    if kind == Kind::Gateway {
        let routes = gateway::routes_naming(client, namespace, name).await?;
        let secrets = client
            .get_json(&collection_path(Kind::Secret, Some(namespace)))
            .await?;
        let secrets = secrets["items"].as_array().cloned().unwrap_or_default();
        return Ok(gateway::render(
            &object,
            &routes,
            &secrets,
            SystemTime::now(),
        ));
    }
    if kind == Kind::Secret {
        let references = secret::referencing(client, namespace, name).await?;
        return Ok(secret::render(&object, &references, SystemTime::now()));
    }
    if kind != Kind::Service {
        return generic(&object);
    }
    let workloads = client
        .get_json(&collection_path(Kind::Workload, Some(namespace)))
        .await?;
    let mut routes = Vec::new();
    for route_kind in [Kind::HttpRoute, Kind::GrpcRoute, Kind::TcpRoute] {
        // Routes may live in another namespace and name this service as a parent.
        let list = client.get_json(&collection_path(route_kind, None)).await?;
        routes.extend(
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|route| attaches_to(route, namespace, name))
                .cloned(),
        );
    }
    let workloads = workloads["items"].as_array().cloned().unwrap_or_default();
    let policies: Vec<Value> = client
        .get_json(&collection_path(Kind::BackendPolicy, Some(namespace)))
        .await?["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| targets(p, name))
        .cloned()
        .collect();
    let mut inbound = Vec::new();
    for kind in [Kind::RateLimit, Kind::FaultInjection] {
        let list = client
            .get_json(&collection_path(kind, Some(namespace)))
            .await?;
        inbound.extend(
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| targets(p, name))
                .cloned(),
        );
    }
    let permissions = client
        .get_json(&collection_path(Kind::TrafficPermission, Some(namespace)))
        .await?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Telemetry of the service's namespace and the mesh-wide ones.
    let mut telemetries = Vec::new();
    let mut namespaces = vec![namespace];
    let mesh_namespace = weft_api::resource::telemetry::MESH_NAMESPACE;
    if namespace != mesh_namespace {
        namespaces.push(mesh_namespace);
    }
    for ns in namespaces {
        let list = client
            .get_json(&collection_path(Kind::Telemetry, Some(ns)))
            .await?;
        telemetries.extend(list["items"].as_array().into_iter().flatten().cloned());
    }
    // The DNS domain: the Mesh's, or the default while none is stored yet.
    let mesh = client
        .get_json(&item_path(
            Kind::Mesh,
            "",
            weft_api::resource::mesh::MESH_NAME,
        ))
        .await
        .unwrap_or_default();
    let domain = mesh["spec"]["dns"]["domain"]
        .as_str()
        .unwrap_or(weft_api::resource::mesh::DEFAULT_DNS_DOMAIN)
        .to_owned();
    Ok(service(
        &object,
        &Related {
            workloads: &workloads,
            routes: &routes,
            policies: &policies,
            inbound: &inbound,
            permissions: &permissions,
            telemetries: &telemetries,
        },
        &domain,
        SystemTime::now(),
    ))
}

/// Whether a `BackendPolicy` names the service `name` (of its own namespace).
fn targets(policy: &Value, name: &str) -> bool {
    policy["spec"]["targetRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["kind"] == "Service" && t["name"] == name)
}

/// What the description of a service shows beside the service itself.
pub(crate) struct Related<'a> {
    /// Workloads of the service's namespace (the selector picks the endpoints).
    pub(crate) workloads: &'a [Value],
    /// Routes attached to it.
    pub(crate) routes: &'a [Value],
    /// `BackendPolicy` objects that target it (applied or not).
    pub(crate) policies: &'a [Value],
    /// `RateLimit` and `FaultInjection` objects that target it.
    pub(crate) inbound: &'a [Value],
    /// `TrafficPermission` objects of its namespace (those that apply are shown).
    pub(crate) permissions: &'a [Value],
    /// `Telemetry` objects of its namespace and of the mesh's namespace (those that
    /// decide a group for it are shown).
    pub(crate) telemetries: &'a [Value],
}

/// The VIP in force and where it came from, or why there is none.
fn vip(service: &Value) -> String {
    let status = &service["status"];
    let problem = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "VipAllocated" && c["status"] == "False")
        .and_then(|c| c["message"].as_str());
    match (
        status["vip"].as_str(),
        service["spec"]["vip"].as_str(),
        problem,
    ) {
        (Some(v), Some(_), _) => format!("{v} (spec.vip)"),
        (Some(v), None, _) => format!("{v} (allocated from Mesh.spec.dns.vipRange)"),
        (None, _, Some(why)) => format!("<none>: {why}"),
        (None, Some(v), None) => format!("{v} (spec.vip; not yet compiled)"),
        (None, None, None) => "<none yet>".to_owned(),
    }
}

/// The namespaces whose proxies may see the service (`status.exportTo`, resolved by
/// the control plane) and where that came from.
fn export(service: &Value) -> String {
    let list = |v: &Value| {
        v.as_array().map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let source = if service["spec"]["exportTo"].is_array() {
        "spec.exportTo"
    } else {
        "Mesh.spec.defaultExportTo"
    };
    match list(&service["status"]["exportTo"]) {
        Some(names) if names == "*" => format!("every namespace ({source})"),
        Some(names) => format!("{names} ({source})"),
        None => match list(&service["spec"]["exportTo"]) {
            Some(names) => format!("{names} (spec.exportTo; not yet compiled)"),
            None => "<not yet compiled>".to_owned(),
        },
    }
}

/// The description of a service, its endpoints and routes.
pub(crate) fn service(
    service: &Value,
    related: &Related<'_>,
    domain: &str,
    now: SystemTime,
) -> String {
    let Related {
        workloads,
        routes,
        policies,
        inbound,
        permissions,
        telemetries,
    } = *related;
    let mut out = String::new();
    let meta = &service["metadata"];
    let spec = &service["spec"];
    let selector = selector(spec);
    let _ = writeln!(out, "Name:         {}", name_of(service));
    let _ = writeln!(out, "Namespace:    {}", or_none(meta["namespace"].as_str()));
    let _ = writeln!(out, "Labels:       {}", pairs(&meta["labels"]));
    let _ = writeln!(out, "Selector:     {}", pairs(&selector));
    let _ = writeln!(out, "VIP:          {}", vip(service));
    let _ = writeln!(out, "Exported to:  {}", export(service));
    let _ = writeln!(
        out,
        "DNS name:     {}.{}.svc.{domain}",
        name_of(service),
        meta["namespace"]
            .as_str()
            .unwrap_or(weft_api::resource::DEFAULT_NAMESPACE)
    );
    let _ = writeln!(
        out,
        "Age:          {}",
        age(meta["creationTimestamp"].as_str(), now)
    );
    let _ = writeln!(out, "Ports:");
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    for port in &ports {
        let _ = writeln!(
            out,
            "  {} {}{}{}",
            port["name"].as_str().unwrap_or("-"),
            port["port"],
            port["appProtocol"]
                .as_str()
                .map(|p| format!("/{p}"))
                .unwrap_or_default(),
            port["targetPort"]
                .as_u64()
                .map(|p| format!(" -> {p}"))
                .unwrap_or_default(),
        );
    }

    let endpoints: Vec<&Value> = workloads.iter().filter(|w| selects(&selector, w)).collect();
    let _ = writeln!(out, "Endpoints:");
    if endpoints.is_empty() {
        let _ = writeln!(out, "  <none> (no workload matches the selector)");
    } else {
        let rows: Vec<Vec<String>> = endpoints
            .iter()
            .map(|w| {
                vec![
                    name_of(w).to_owned(),
                    or_none(w["spec"]["address"].as_str()),
                    or_none(w["status"]["phase"].as_str()),
                ]
            })
            .collect();
        indent(
            &mut out,
            &output::table(&["NAME", "ADDRESS", "PHASE"], &rows),
        );
    }

    let _ = writeln!(out, "Routes:");
    if routes.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    let name = name_of(service);
    let applied = policies.iter().find(|p| accepted_for(p, name));
    let budget = applied.map_or_else(
        || "retry budget 20% + 10/s".to_owned(),
        |p| retry_budget(&p["spec"]),
    );
    for route in routes {
        let _ = writeln!(
            out,
            "  {} {}/{}",
            route["kind"].as_str().unwrap_or_default(),
            or_none(route["metadata"]["namespace"].as_str()),
            name_of(route)
        );
        for (i, rule) in route["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let _ = writeln!(out, "    rules[{i}]: {}; {budget}", rule_policies(rule));
            let _ = writeln!(out, "      backends: {}", rule_backends(rule));
        }
        write_conditions(&mut out, &route["status"], "    ");
    }
    let _ = writeln!(out, "Backend policy:");
    let (title, spec) = applied.map_or_else(
        || ("<defaults>".to_owned(), &Value::Null),
        |p| (format!("BackendPolicy {}", name_of(p)), &p["spec"]),
    );
    let _ = writeln!(out, "  {title}");
    for line in backend_policy(spec) {
        let _ = writeln!(out, "    {line}");
    }
    for p in policies.iter().filter(|p| !accepted_for(p, name)) {
        let _ = writeln!(out, "  BackendPolicy {} (not applied)", name_of(p));
        write_conditions(&mut out, &p["status"], "    ");
    }
    let _ = writeln!(out, "Inbound policies (applied by its workloads):");
    if inbound.is_empty() {
        let _ = writeln!(out, "  <none>");
    }
    for p in inbound {
        let spec = &p["spec"];
        let what = if p["kind"] == "RateLimit" {
            spec["limits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    format!(
                        "{} per {}{}",
                        l["requests"].as_u64().unwrap_or(0),
                        l["per"].as_str().unwrap_or("1s"),
                        if l["by"] == "identity" {
                            " per caller"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            let mut parts = Vec::new();
            if spec["delay"].is_object() {
                parts.push(format!(
                    "delay {}% by {}",
                    spec["delay"]["percent"],
                    spec["delay"]["fixedDelay"].as_str().unwrap_or("?")
                ));
            }
            if spec["abort"].is_object() {
                parts.push(format!("abort {}%", spec["abort"]["percent"]));
            }
            parts.join(", ")
        };
        let _ = writeln!(
            out,
            "  {} {}: {what}",
            p["kind"].as_str().unwrap_or("?"),
            name_of(p)
        );
    }
    let _ = writeln!(
        out,
        "Permissions (who may call it; `weft explain` decides one request):"
    );
    let lines = super::explain::permissions_of(permissions, name);
    if lines.is_empty() {
        let _ = writeln!(out, "  <none>: the default action decides");
    }
    for line in lines {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "Telemetry (what its workloads' proxies record, both sides):"
    );
    let namespace = meta["namespace"].as_str().unwrap_or(DEFAULT_NAMESPACE);
    for line in telemetry_lines(telemetries, namespace, name) {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "Conditions:");
    write_conditions(&mut out, &service["status"], "  ");
    out
}

/// How one group of a `Telemetry` spec reads in a line (`5% http://collector:4317`).
type Show = fn(&Value) -> String;

/// Per group, what the workloads of service `namespace/name` record and which
/// `Telemetry` decides it: the oldest of those naming the service, else of its
/// namespace's, else of the mesh's (as the control plane decides; a Telemetry of
/// another service that selects the same workloads can also decide, see its
/// `Conflicted` condition).
fn telemetry_lines(telemetries: &[Value], namespace: &str, name: &str) -> Vec<String> {
    let mesh_namespace = weft_api::resource::telemetry::MESH_NAMESPACE;
    let level = |t: &Value| {
        let refs = t["spec"]["targetRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ns = t["metadata"]["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE);
        let kind = refs.first().and_then(|r| r["kind"].as_str()).unwrap_or("");
        match kind {
            "Service"
                if ns == namespace
                    && refs
                        .iter()
                        .any(|r| r["kind"] == "Service" && r["name"] == name) =>
            {
                Some((0, "Service"))
            }
            "Namespace" if ns == namespace => Some((1, "Namespace")),
            "Mesh" if ns == mesh_namespace => Some((2, "Mesh")),
            _ => None,
        }
    };
    let invalid = |t: &Value| {
        conditions(&t["status"])
            .iter()
            .any(|c| c["type"] == "Accepted" && c["reason"] == "Invalid")
    };
    let mut candidates: Vec<(usize, &str, &Value)> = telemetries
        .iter()
        .filter(|t| !invalid(t))
        .filter_map(|t| level(t).map(|(rank, kind)| (rank, kind, t)))
        .collect();
    let age = |t: &Value| {
        (
            t["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            t["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name_of(t).to_owned(),
        )
    };
    candidates.sort_by_key(|(rank, _, t)| (*rank, age(t)));
    // (field, label, how a value reads, what the proxy does when no object sets it)
    let groups: [(&str, &str, Show, &str); 3] = [
        ("tracing", "tracing", get::tracing, "off"),
        ("accessLog", "access log", get::access_log, "off"),
        ("metrics", "metrics", get::metrics, "on"),
    ];
    groups
        .into_iter()
        .map(|(field, label, show, default)| {
            match candidates
                .iter()
                .find(|(_, _, t)| t["spec"][field].is_object())
            {
                Some((_, kind, t)) => format!(
                    "{label}: {} (Telemetry {}/{}, {kind})",
                    show(&t["spec"][field]),
                    t["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or(DEFAULT_NAMESPACE),
                    name_of(t)
                ),
                None => format!("{label}: {default} (default)"),
            }
        })
        .collect()
}

/// The resilience policies a route rule applies, in a line: timeouts and retries
/// (every retry also within the destination's retry budget).
/// A rule's backends with their weights and the share of requests each gets:
/// `web:80 weight 90 (90%), web-v2:80 weight 10 (10%)`.
fn rule_backends(rule: &Value) -> String {
    let refs: Vec<&Value> = rule["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if refs.is_empty() {
        return "<none>".to_owned();
    }
    // Gateway API: a backendRef without a weight has weight 1.
    let weight = |b: &Value| b["weight"].as_u64().unwrap_or(1);
    let total: u64 = refs.iter().map(|b| weight(b)).sum();
    refs.iter()
        .map(|b| {
            let w = weight(b);
            let port = b["port"]
                .as_u64()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            #[allow(clippy::cast_precision_loss)] // weights are at most 1,000,000
            let share = if total == 0 {
                0.0
            } else {
                w as f64 * 100.0 / total as f64
            };
            format!(
                "{}{port} weight {w} ({share:.0}%)",
                b["name"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn rule_policies(rule: &Value) -> String {
    let mut parts = Vec::new();
    let timeouts = &rule["timeouts"];
    match (
        timeouts["request"].as_str(),
        timeouts["backendRequest"].as_str(),
    ) {
        (None, None) => {}
        (request, per_try) => parts.push(format!(
            "timeout {}, per try {}",
            request.unwrap_or("none"),
            per_try.unwrap_or("none")
        )),
    }
    let retry = &rule["retry"];
    if retry.is_object() {
        let codes: Vec<String> = retry["codes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        parts.push(format!(
            "retry {} up to {}x, backoff {}{}",
            if codes.is_empty() {
                "failed connects and resets".to_owned()
            } else {
                format!("failed connects and {}", codes.join(","))
            },
            retry["attempts"].as_u64().unwrap_or(2),
            retry["backoff"].as_str().unwrap_or("25ms"),
            if retry["nonIdempotent"].as_bool() == Some(true) {
                ", any method"
            } else {
                ""
            }
        ));
    } else {
        parts.push("retry failed connects once (default)".to_owned());
    }
    parts.join("; ")
}

/// Whether the policy's status says it applies to service `name`.
fn accepted_for(policy: &Value, name: &str) -> bool {
    policy["status"]["ancestors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| {
            a["ancestorRef"]["name"] == name
                && a["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Accepted" && c["status"] == "True")
        })
}

fn retry_budget(spec: &Value) -> String {
    let b = &spec["retryBudget"];
    format!(
        "retry budget {}% + {}/s",
        b["percent"].as_u64().unwrap_or(20),
        b["minRetriesPerSecond"].as_u64().unwrap_or(10)
    )
}

/// A `BackendPolicy` spec (or `null`: the defaults) as one line per concern.
fn backend_policy(spec: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let lb = &spec["loadBalancer"];
    let mut balancer = format!(
        "load balancer: {}",
        lb["type"].as_str().unwrap_or("peakEwma")
    );
    let hash = &lb["hashOn"];
    if let Some(h) = hash["header"].as_str() {
        let _ = write!(balancer, " on header {h}");
    } else if let Some(c) = hash["cookie"]["name"].as_str() {
        let _ = write!(balancer, " on cookie {c}");
        if let Some(ttl) = hash["cookie"]["ttl"].as_str() {
            let _ = write!(balancer, " (set for {ttl} when absent)");
        }
    } else if hash["sourceIP"].is_object() {
        balancer.push_str(" on the caller's address");
    }
    if let Some(w) = lb["slowStart"]["window"].as_str() {
        let _ = write!(balancer, "; slow start over {w}");
    }
    let _ = write!(
        balancer,
        "; panic below {}% usable",
        lb["panicThresholdPercent"].as_u64().unwrap_or(50)
    );
    lines.push(balancer);
    let limits = &spec["connectionLimits"];
    let limit = |field: &str| {
        limits[field]
            .as_u64()
            .map_or_else(|| "1024".to_owned(), |n| n.to_string())
    };
    lines.push(format!(
        "connection limits: {} connections, {} pending, {} requests{}",
        limit("maxConnections"),
        limit("maxPendingRequests"),
        limit("maxRequests"),
        limits["maxRequestsPerConnection"]
            .as_u64()
            .map(|n| format!(", {n} per connection"))
            .unwrap_or_default()
    ));
    let o = &spec["outlierDetection"];
    if o["disabled"].as_bool() == Some(true) {
        lines.push("outlier detection: off".to_owned());
    } else {
        let mut parts = Vec::new();
        match o["consecutive5xx"].as_u64() {
            Some(0) => {}
            n => parts.push(format!("{} consecutive 5xx", n.unwrap_or(5))),
        }
        if let Some(n) = o["consecutiveGatewayErrors"].as_u64().filter(|n| *n > 0) {
            parts.push(format!("{n} consecutive gateway errors"));
        }
        if o["successRate"].is_object() {
            parts.push("success rate".to_owned());
        }
        lines.push(format!(
            "outlier detection: eject on {} for {} (growing to {}), at most {}%",
            if parts.is_empty() {
                "nothing".to_owned()
            } else {
                parts.join(", ")
            },
            o["baseEjectionTime"].as_str().unwrap_or("30s"),
            o["maxEjectionTime"].as_str().unwrap_or("300s"),
            o["maxEjectionPercent"].as_u64().unwrap_or(10)
        ));
    }
    let h = &spec["healthCheck"];
    if h.is_object() {
        let what = if let Some(path) = h["http"]["path"].as_str() {
            format!("http GET {path}")
        } else if h["grpc"].is_object() {
            "grpc.health.v1".to_owned()
        } else {
            "tcp connect".to_owned()
        };
        lines.push(format!(
            "health check: {what} every {}, timeout {}, out after {} failures, back after {} passes",
            h["interval"].as_str().unwrap_or("10s"),
            h["timeout"].as_str().unwrap_or("1s"),
            h["unhealthyThreshold"].as_u64().unwrap_or(3),
            h["healthyThreshold"].as_u64().unwrap_or(2)
        ));
    } else {
        lines.push("health check: none".to_owned());
    }
    lines.push(retry_budget(spec));
    let l = &spec["locality"];
    if l["preferZone"].as_bool() == Some(false) {
        lines.push("locality: none".to_owned());
    } else {
        lines.push(format!(
            "locality: prefer the caller's zone while {}% of its endpoints are usable",
            l["minHealthyPercent"].as_u64().unwrap_or(70)
        ));
    }
    lines
}

/// Any object: its YAML, then its conditions.
fn generic(object: &Value) -> anyhow::Result<String> {
    let mut out = serde_saphyr::to_string(object)?;
    out.push_str("Conditions:\n");
    write_conditions(&mut out, &object["status"], "  ");
    Ok(out)
}

fn write_conditions(out: &mut String, status: &Value, prefix: &str) {
    let all = conditions(status);
    if all.is_empty() {
        let _ = writeln!(out, "{prefix}<none reported>");
        return;
    }
    for c in all {
        let _ = write!(
            out,
            "{prefix}{}={}",
            c["type"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        );
        if let Some(reason) = c["reason"].as_str() {
            let _ = write!(out, " ({reason})");
        }
        if let Some(message) = c["message"].as_str().filter(|m| !m.is_empty()) {
            let _ = write!(out, ": {message}");
        }
        out.push('\n');
    }
}

/// A service's selector: `spec.selector` as a label map, or its `matchLabels`.
fn selector(spec: &Value) -> Value {
    let selector = &spec["selector"];
    if selector["matchLabels"].is_object() {
        selector["matchLabels"].clone()
    } else {
        selector.clone()
    }
}

/// Whether every selector label is on the workload. An empty selector selects nothing
/// (a service without a selector has no endpoints).
fn selects(selector: &Value, workload: &Value) -> bool {
    let Some(wanted) = selector.as_object().filter(|m| !m.is_empty()) else {
        return false;
    };
    wanted
        .iter()
        .all(|(k, v)| workload["metadata"]["labels"][k] == *v)
}

/// Whether `route` names the service `namespace/name` among its `parentRefs`.
fn attaches_to(route: &Value, namespace: &str, name: &str) -> bool {
    let own = route["metadata"]["namespace"]
        .as_str()
        .unwrap_or(DEFAULT_NAMESPACE);
    route["spec"]["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|parent| {
            parent["name"] == name
                && parent["namespace"].as_str().unwrap_or(own) == namespace
                && parent["kind"].as_str().is_none_or(|k| k == "Service")
        })
}

fn pairs(map: &Value) -> String {
    let pairs: Vec<String> = map
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

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_lists_selected_workloads_and_attached_routes_with_conditions() {
        let svc = json!({
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "appProtocol": "http"}]},
            "status": {"endpoints": 1, "vip": "240.240.0.9", "exportTo": ["*"]}
        });
        let workloads = [
            json!({"metadata": {"name": "web-1", "labels": {"app": "web"}}, "spec": {"address": "10.0.0.1"}, "status": {"phase": "Healthy"}}),
            json!({"metadata": {"name": "db-1", "labels": {"app": "db"}}, "spec": {"address": "10.0.0.2"}}),
        ];
        let route = json!({
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "web"}], "rules": [
                {"backendRefs": [{"name": "web", "port": 80, "weight": 90}, {"name": "web-v2", "port": 80, "weight": 10}], "timeouts": {"request": "2s"}, "retry": {"codes": [503], "attempts": 3}},
                {"backendRefs": [{"name": "web"}]}
            ]},
            "status": {"parents": [{"conditions": [{"type": "Accepted", "status": "False", "reason": "BackendNotFound", "message": "web-v2 does not exist"}]}]}
        });
        assert!(attaches_to(&route, "default", "web"));
        assert!(!attaches_to(&route, "prod", "web"));
        let policy = json!({
            "kind": "BackendPolicy",
            "metadata": {"name": "web-sticky", "namespace": "default"},
            "spec": {
                "targetRefs": [{"kind": "Service", "name": "web"}],
                "loadBalancer": {"type": "maglev", "hashOn": {"cookie": {"name": "session", "ttl": "1h"}}},
                "healthCheck": {"http": {"path": "/healthz"}, "interval": "5s"},
                "retryBudget": {"percent": 10}
            },
            "status": {"ancestors": [{"ancestorRef": {"kind": "Service", "name": "web"}, "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "applies"}]}]}
        });
        let loser = json!({
            "kind": "BackendPolicy",
            "metadata": {"name": "web-late", "namespace": "default"},
            "spec": {"targetRefs": [{"kind": "Service", "name": "web"}]},
            "status": {"ancestors": [{"ancestorRef": {"kind": "Service", "name": "web"}, "conditions": [{"type": "Accepted", "status": "False", "reason": "Conflicted", "message": "BackendPolicy default/web-sticky already applies"}]}]}
        });
        assert!(targets(&policy, "web") && !targets(&policy, "db"));
        let routes = [route];
        let policies = [policy, loser];
        let permissions = [json!({
            "kind": "TrafficPermission",
            "metadata": {"name": "web-readers"},
            "spec": {"targetRefs": [{"kind": "Service", "name": "web"}], "rules": [{"from": [{"serviceAccount": "frontend"}]}]}
        })];
        let inbound = [json!({
            "kind": "RateLimit",
            "metadata": {"name": "web-limit"},
            "spec": {"targetRefs": [{"kind": "Service", "name": "web"}], "limits": [{"requests": 100, "by": "identity"}]}
        })];
        let text = service(
            &svc,
            &Related {
                workloads: &workloads,
                routes: &routes,
                policies: &policies,
                inbound: &inbound,
                permissions: &permissions,
                telemetries: &[],
            },
            "mesh.internal",
            SystemTime::now(),
        );
        assert!(text.contains("BackendPolicy web-sticky\n"), "{text}");
        assert!(
            text.contains("load balancer: maglev on cookie session (set for 1h when absent)"),
            "{text}"
        );
        assert!(
            text.contains("health check: http GET /healthz every 5s, timeout 1s"),
            "{text}"
        );
        assert!(
            text.contains("RateLimit web-limit: 100 per 1s per caller"),
            "{text}"
        );
        assert!(
            text.contains("  allow  web-readers: from serviceAccount frontend\n"),
            "{text}"
        );
        assert!(
            text.contains("BackendPolicy web-late (not applied)")
                && text.contains("Accepted=False (Conflicted)"),
            "{text}"
        );
        assert!(
            text.contains("VIP:          240.240.0.9 (allocated from Mesh.spec.dns.vipRange)"),
            "{text}"
        );
        assert!(
            text.contains("DNS name:     web.default.svc.mesh.internal"),
            "{text}"
        );
        assert!(
            text.contains("Exported to:  every namespace (Mesh.spec.defaultExportTo)"),
            "{text}"
        );
        assert!(text.contains("web-1   10.0.0.1   Healthy"), "{text}");
        assert!(!text.contains("db-1"), "{text}");
        assert!(text.contains("HTTPRoute default/web"), "{text}");
        assert!(
            text.contains(
                "rules[0]: timeout 2s, per try none; retry failed connects and 503 up to 3x, \
                 backoff 25ms; retry budget 10% + 10/s"
            ),
            "{text}"
        );
        assert!(
            text.contains("backends: web:80 weight 90 (90%), web-v2:80 weight 10 (10%)\n"),
            "{text}"
        );
        assert!(
            text.contains("rules[1]: retry failed connects once (default)"),
            "{text}"
        );
        assert!(text.contains("backends: web weight 1 (100%)\n"), "{text}");
        assert!(
            text.contains("Accepted=False (BackendNotFound): web-v2 does not exist"),
            "{text}"
        );
    }

    #[test]
    fn the_telemetry_of_a_service_comes_per_group_from_the_most_specific_oldest_object() {
        let telemetry = |name: &str, ns: &str, created: &str, spec: Value| {
            json!({
                "kind": "Telemetry",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
                "spec": spec
            })
        };
        let all = [
            telemetry(
                "mesh",
                "weft-system",
                "2026-01-01T00:00:00Z",
                json!({"targetRefs": [{"kind": "Mesh"}], "tracing": {"endpoint": "http://a:4317"}, "accessLog": {}}),
            ),
            telemetry(
                "shop-late",
                "shop",
                "2026-01-03T00:00:00Z",
                json!({"targetRefs": [{"kind": "Namespace"}], "tracing": {"endpoint": "http://late:4317"}}),
            ),
            telemetry(
                "shop",
                "shop",
                "2026-01-02T00:00:00Z",
                json!({"targetRefs": [{"kind": "Namespace"}], "tracing": {"endpoint": "http://b:4317", "sampling": 5}}),
            ),
            telemetry(
                "web-quiet",
                "shop",
                "2026-01-04T00:00:00Z",
                json!({"targetRefs": [{"kind": "Service", "name": "web"}], "accessLog": {"disabled": true}}),
            ),
            telemetry(
                "other",
                "shop",
                "2026-01-01T00:00:00Z",
                json!({"targetRefs": [{"kind": "Service", "name": "cart"}], "metrics": {"enabled": false}}),
            ),
        ];
        assert_eq!(
            telemetry_lines(&all, "shop", "web"),
            [
                "tracing: 5% http://b:4317 (Telemetry shop/shop, Namespace)",
                "access log: off (Telemetry shop/web-quiet, Service)",
                "metrics: on (default)",
            ]
        );
        assert_eq!(
            telemetry_lines(&all, "web", "web"),
            [
                "tracing: 1% http://a:4317 (Telemetry weft-system/mesh, Mesh)",
                "access log: json stdout (Telemetry weft-system/mesh, Mesh)",
                "metrics: on (default)",
            ]
        );
    }

    #[test]
    fn mesh_wide_telemetry_lives_in_the_control_planes_reserved_namespace() {
        assert_eq!(
            weft_api::resource::telemetry::MESH_NAMESPACE,
            weft_tls::control::NAMESPACE
        );
    }

    #[test]
    fn the_effective_export_and_its_source_are_shown() {
        let cases = [
            (
                json!({}),
                json!({"exportTo": ["team-a", "team-b"]}),
                "team-a, team-b (Mesh.spec.defaultExportTo)",
            ),
            (
                json!({"exportTo": ["*"]}),
                json!({"exportTo": ["*"]}),
                "every namespace (spec.exportTo)",
            ),
            (
                json!({"exportTo": ["."]}),
                json!({}),
                ". (spec.exportTo; not yet compiled)",
            ),
            (json!({}), json!({}), "<not yet compiled>"),
        ];
        for (spec, status, want) in cases {
            let svc = json!({"spec": spec, "status": status});
            assert_eq!(export(&svc), want);
        }
    }

    #[test]
    fn a_service_without_a_vip_says_why() {
        let svc = json!({
            "metadata": {"name": "b"},
            "spec": {"vip": "10.0.0.1", "ports": []},
            "status": {"conditions": [{"type": "VipAllocated", "status": "False", "message": "spec.vip 10.0.0.1 is already the VIP of service default/a"}]}
        });
        assert_eq!(
            vip(&svc),
            "<none>: spec.vip 10.0.0.1 is already the VIP of service default/a"
        );
    }
}
