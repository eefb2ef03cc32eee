//! `weft explain --from CALLER --to SERVICE:PORT [METHOD] [PATH]`: which
//! `TrafficPermission` and rule decide a request, and why every other rule did not
//! match.
//!
//! It reads every object from the control plane, compiles them as the control plane
//! does (`weft-policy`), takes the `InboundPolicy` of the service's workloads, and asks
//! the proxy's own decision code (`weft_proxy::authz`) with the path normalised as the
//! proxy would: the answer is the one the destination's proxy gives, not a second
//! implementation of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context as _};
use serde_json::Value;
use weft_api::pb::v1 as pb;
use weft_api::proxy;
use weft_api::resource::{service, Kind, Object, DEFAULT_NAMESPACE};
use weft_proxy::authz::{self, Outcome, Traffic};

use super::client::{self, Client, ConnectArgs};
use super::get::collection_path;

/// Arguments of `weft explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The caller: a SPIFFE ID (`spiffe://cluster.local/ns/web/sa/frontend`), or
    /// `unauthenticated` for a plaintext client on a permissive port.
    #[arg(long)]
    from: String,
    /// The destination: `SERVICE[:PORT]` (the service's port; optional when it has
    /// one), in `--namespace`.
    #[arg(long)]
    to: String,
    /// The request's method; with `--tcp`, none.
    #[arg(default_value = "GET")]
    method: String,
    /// The request's path, with its query if any.
    #[arg(default_value = "/")]
    path: String,
    /// A request header, `name: value`. Repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The `Host` the request is sent with. Default: the service's mesh name.
    #[arg(long)]
    host: Option<String>,
    /// Explain an opaque TCP connection instead of an HTTP request.
    #[arg(long)]
    tcp: bool,
    /// Namespace of the service.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Prints the explanation.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let objects = client::block_on(every_object(&client))?;
    print!("{}", explain(&objects, args)?);
    Ok(())
}

async fn every_object(client: &Client) -> anyhow::Result<Vec<Object>> {
    let mut objects = Vec::new();
    for kind in Kind::ALL {
        let list = client.get_json(&collection_path(kind, None)).await?;
        for item in list["items"].as_array().into_iter().flatten() {
            let object: Object = serde_json::from_value(item.clone()).with_context(|| {
                format!("the control plane listed a {kind} that is not an object")
            })?;
            objects.push(object);
        }
    }
    Ok(objects)
}

/// The explanation of `args` over `objects`.
fn explain(objects: &[Object], args: &Args) -> anyhow::Result<String> {
    let (name, port) = match args.to.rsplit_once(':') {
        Some((name, port)) => (
            name,
            Some(
                port.parse::<u16>()
                    .with_context(|| format!("--to {}: {port:?} is not a port", args.to))?,
            ),
        ),
        None => (args.to.as_str(), None),
    };
    let ns = args.namespace.as_str();
    let is = |o: &&Object, kind: Kind| o.kind().is_ok_and(|k| k == kind) && o.namespace() == ns;
    let Some(svc_object) = objects
        .iter()
        .find(|o| is(o, Kind::Service) && o.metadata.name == name)
    else {
        bail!("no Service {ns}/{name}; `weft get services -n {ns}` lists them");
    };
    let spec: service::Spec = serde_json::from_value(svc_object.spec.clone())
        .with_context(|| format!("Service {ns}/{name} does not parse"))?;
    let svc_port = match port {
        Some(p) => spec.ports.iter().find(|sp| sp.port == p).with_context(|| {
            format!(
                "Service {ns}/{name} has no port {p} (its ports: {})",
                ports(&spec)
            )
        })?,
        None if spec.ports.len() == 1 => &spec.ports[0],
        None => bail!(
            "Service {ns}/{name} has several ports ({}); say which: --to {name}:PORT",
            ports(&spec)
        ),
    };
    let target = svc_port.target_port.unwrap_or(svc_port.port);
    let compiled = weft_policy::compile(objects.iter());
    // The service's workloads, grouped by the policy they get (usually one group).
    let mut groups: BTreeMap<String, (Vec<String>, proxy::InboundPolicy)> = BTreeMap::new();
    for w in objects.iter().filter(|o| is(o, Kind::Workload)) {
        let selected = !spec.selector.is_empty()
            && spec
                .selector
                .iter()
                .all(|(k, v)| w.metadata.labels.get(k) == Some(v));
        if !selected {
            continue;
        }
        let key = format!("{}.{ns}", w.metadata.name);
        let wire = compiled
            .inbound_policies
            .get(&key)
            .cloned()
            .unwrap_or_else(pb::InboundPolicy::default);
        let policy = proxy::InboundPolicy::try_from(&wire)
            .map_err(|e| anyhow::anyhow!("the compiled policy of {key} does not convert: {e}"))?;
        let id = format!("{:?}", wire.authorization) + &format!("{:?}", wire.path_normalization);
        groups
            .entry(id)
            .or_insert_with(|| (Vec::new(), policy))
            .0
            .push(w.metadata.name.clone());
    }
    if groups.is_empty() {
        bail!("Service {ns}/{name} selects no workload yet: no proxy enforces anything for it");
    }
    let caller = match args.from.as_str() {
        "unauthenticated" => None,
        id if id.starts_with("spiffe://") => Some(id),
        other => bail!(
            "--from {other:?}: give a SPIFFE ID (spiffe://<trust domain>/ns/<ns>/sa/<name>) or \
             `unauthenticated`"
        ),
    };
    let mut headers = http::HeaderMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("-H {h:?}: write `name: value`"))?;
        headers.append(
            http::HeaderName::from_bytes(k.trim().as_bytes())
                .with_context(|| format!("-H {h:?}: {k:?} is not a header name"))?,
            http::HeaderValue::from_str(v.trim())
                .with_context(|| format!("-H {h:?}: the value is not valid in a header"))?,
        );
    }
    let mut out = String::new();
    for (workloads, policy) in groups.values() {
        let _ = writeln!(
            out,
            "{name}.{ns}:{} → workload port {target} on {}",
            svc_port.port,
            workloads.join(", ")
        );
        out.push_str(&one(args, policy, caller, target, &headers, name, ns)?);
    }
    Ok(out)
}

fn ports(spec: &service::Spec) -> String {
    spec.ports
        .iter()
        .map(|p| p.port.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The explanation for one policy.
fn one(
    args: &Args,
    policy: &proxy::InboundPolicy,
    caller: Option<&str>,
    port: u16,
    headers: &http::HeaderMap,
    name: &str,
    ns: &str,
) -> anyhow::Result<String> {
    let compiled = authz::Policy::compile(&policy.authorization)
        .map_err(|e| anyhow::anyhow!("the permissions do not compile: {e}"))?;
    let mut out = String::new();
    let who = caller.unwrap_or("unauthenticated");
    let (path, query) = args
        .path
        .split_once('?')
        .map_or((args.path.as_str(), None), |(p, q)| (p, Some(q)));
    let normal;
    let stripped;
    let host_text;
    let mut host_buf = String::new();
    let request;
    let traffic = if args.tcp {
        let _ = writeln!(out, "a TCP connection from {who}");
        Traffic::Tcp
    } else {
        normal = match weft_proxy::http::path::normalize(path, policy.path_normalization) {
            Ok(p) => p.into_owned(),
            Err(refusal) => {
                let _ = writeln!(
                    out,
                    "{} {path} from {who}\ndecision: REFUSED with 400 before any permission: {refusal} \
                     (pathNormalization: {})",
                    args.method,
                    policy.path_normalization.as_str()
                );
                return Ok(out);
            }
        };
        stripped = weft_proxy::http::path::without_params(&normal);
        host_text = args
            .host
            .clone()
            .unwrap_or_else(|| format!("{name}.{ns}.svc.cluster.local"));
        request = authz::Request {
            method: &args.method,
            path: &normal,
            path_without_params: stripped.as_deref(),
            host: authz::normal_host(&host_text, &mut host_buf),
            headers,
            header_names: authz::HeaderNames::of(headers),
        };
        let shown = if normal == path {
            String::new()
        } else {
            format!(" (normalised: {normal})")
        };
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        let _ = writeln!(out, "{} {path}{q}{shown} from {who}", args.method);
        Traffic::Http(&request)
    };
    let (decision, rules) = compiled.explain(port, caller, traffic);
    let verdict = match decision.outcome {
        Outcome::Allow if decision.ask.is_some() => {
            "ALLOWED if the external authorization server agrees"
        }
        Outcome::Allow => "ALLOWED",
        Outcome::Deny => "DENIED",
        Outcome::Defer => "depends on the request",
    };
    let by = decision
        .by
        .map_or_else(|| "nothing is configured".to_owned(), |b| b.to_string());
    let _ = writeln!(out, "decision: {verdict}, by {by}");
    if let Some(audit) = decision.audit {
        let _ = writeln!(
            out,
            "audit: flagged by {audit} (served, logged and counted)"
        );
    }
    if let Some((rule, provider)) = decision.ask {
        let _ = writeln!(
            out,
            "asks: provider {} at {} ({} rule {})",
            provider.name, provider.address, rule.source, rule.index
        );
    }
    if rules.is_empty() {
        let _ = writeln!(out, "rules: none apply to this workload");
    } else {
        let _ = writeln!(out, "rules, in the order they are tried:");
        for e in &rules {
            let mark = if e.matched { "✓" } else { "✗" };
            let _ = writeln!(
                out,
                "  {mark} {:<6} {} rule {}: {}",
                e.rule.action.as_str(),
                e.rule.source,
                e.rule.index,
                e.why
            );
        }
    }
    let _ = writeln!(
        out,
        "default action on port {port}: {}",
        compiled.default_for(port).as_str()
    );
    Ok(out)
}

/// The permissions whose targets include the service `name` (or its whole namespace),
/// for `weft describe service`.
pub(crate) fn permissions_of(items: &[Value], name: &str) -> Vec<String> {
    items
        .iter()
        .filter(|p| {
            let targets = p["spec"]["targetRefs"].as_array();
            targets.is_none_or(Vec::is_empty)
                || targets
                    .into_iter()
                    .flatten()
                    .any(|t| t["kind"] == "Service" && t["name"] == name)
        })
        .map(|p| {
            let action = p["spec"]["action"].as_str().unwrap_or("allow");
            let scope = if p["spec"]["targetRefs"].as_array().is_none_or(Vec::is_empty) {
                " (whole namespace)"
            } else {
                ""
            };
            let from: Vec<String> = p["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| {
                    let from = r["from"].as_array().cloned().unwrap_or_default();
                    if from.is_empty() {
                        vec!["everyone".to_owned()]
                    } else {
                        from.iter().map(source_text).collect()
                    }
                })
                .collect();
            format!(
                "{action:<6} {}{scope}: from {}",
                p["metadata"]["name"].as_str().unwrap_or("?"),
                from.join(", ")
            )
        })
        .collect()
}

fn source_text(s: &Value) -> String {
    for key in ["identity", "serviceAccount", "namespace", "service"] {
        if let Some(v) = s[key].as_str() {
            return format!("{key} {v}");
        }
    }
    if s["unauthenticated"] == true {
        return "unauthenticated".to_owned();
    }
    "?".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(yaml: &str) -> Vec<Object> {
        weft_policy::parse_documents(yaml).expect("objects")
    }

    const MESH: &str = r"
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: catalog, namespace: shop }
spec:
  selector: { app: catalog }
  ports: [{ port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: { name: catalog-1, namespace: shop, labels: { app: catalog } }
spec: { serviceAccount: catalog, address: 10.0.0.1, ports: [{ port: 8080 }] }
status: { phase: Healthy }
---
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: { name: default }
spec: { defaultAction: deny }
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: readers, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: catalog }]
  rules: [{ from: [{ namespace: web }], to: [{ methods: [GET], paths: [{ type: PathPrefix, value: /items }] }] }]
---
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: no-admin, namespace: shop }
spec:
  action: deny
  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /admin }] }] }]
";

    fn args(from: &str, to: &str, method: &str, path: &str) -> Args {
        Args {
            from: from.to_owned(),
            to: to.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            host: None,
            tcp: false,
            namespace: "shop".to_owned(),
            connect: ConnectArgs::explicit(String::new(), String::new(), "ca".into()),
        }
    }

    const FRONTEND: &str = "spiffe://cluster.local/ns/web/sa/frontend";

    #[test]
    fn explains_the_deciding_permission_and_every_other_rule() {
        let objects = objects(MESH);
        let text = explain(
            &objects,
            &args(FRONTEND, "catalog:80", "GET", "/admin/../admin/x"),
        )
        .expect("explained");
        assert!(
            text.starts_with("catalog.shop:80 → workload port 8080 on catalog-1\n"),
            "{text}"
        );
        assert!(text.contains("(normalised: /admin/x)"), "{text}");
        assert!(
            text.contains("decision: DENIED, by TrafficPermission/shop/no-admin rule 0 (deny)"),
            "{text}"
        );
        assert!(
            text.contains(r#"✗ allow  TrafficPermission/shop/readers rule 0: to: path "/admin/x" matches none of [PathPrefix /items]"#),
            "{text}"
        );
        let allowed =
            explain(&objects, &args(FRONTEND, "catalog", "GET", "/items/1")).expect("explained");
        assert!(
            allowed.contains("decision: ALLOWED, by TrafficPermission/shop/readers rule 0 (allow)"),
            "{allowed}"
        );
        let other = explain(
            &objects,
            &args(
                "spiffe://cluster.local/ns/jobs/sa/batch",
                "catalog:80",
                "GET",
                "/items/1",
            ),
        )
        .expect("explained");
        assert!(
            other.contains("decision: DENIED, by the default action (deny)"),
            "{other}"
        );
        assert!(
            other.contains("its callers (spiffe://cluster.local/ns/web/sa/*) do not include"),
            "{other}"
        );
        let refused = explain(
            &objects,
            &args(FRONTEND, "catalog:80", "GET", "/items/..;/admin"),
        )
        .expect("explained");
        assert!(refused.contains("REFUSED with 400"), "{refused}");
    }

    #[test]
    fn bad_arguments_say_what_to_write_instead() {
        let objects = objects(MESH);
        for (a, want) in [
            (
                args(FRONTEND, "nope:80", "GET", "/"),
                "no Service shop/nope",
            ),
            (
                args(FRONTEND, "catalog:81", "GET", "/"),
                "has no port 81 (its ports: 80)",
            ),
            (args(FRONTEND, "catalog:x", "GET", "/"), "is not a port"),
            (args("frontend", "catalog", "GET", "/"), "give a SPIFFE ID"),
        ] {
            let err = explain(&objects, &a).expect_err("refused").to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn describe_lists_the_permissions_of_a_service_and_of_its_namespace() {
        let items: Vec<Value> = objects(MESH)
            .into_iter()
            .filter(|o| o.kind().is_ok_and(|k| k == Kind::TrafficPermission))
            .map(|o| serde_json::to_value(o).expect("json"))
            .collect();
        assert_eq!(
            permissions_of(&items, "catalog"),
            [
                "allow  readers: from namespace web",
                "deny   no-admin (whole namespace): from everyone"
            ]
        );
    }
}
