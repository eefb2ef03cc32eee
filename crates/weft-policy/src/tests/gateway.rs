//! `Gateway`: validation with field paths, route attachment as the routes' and the
//! Gateway's statuses tell it, and mesh (`Service`) parents left as they were.

use serde_json::Value;

use super::{
    assert_errors, compile, errors, http_route, key, object, objects, svc, Kind, HTTP_ROUTE,
};

const GATEWAY: &str = r"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: shop, generation: 4 }
spec:
  gatewayClassName: weft
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      hostname: '*.example.com'
    - name: https
      port: 443
      protocol: HTTPS
      hostname: shop.example.com
      tls:
        mode: Terminate
        certificateRefs: [{ kind: Secret, name: shop-cert }]
      allowedRoutes:
        namespaces: { from: All }
        kinds: [{ group: gateway.networking.k8s.io, kind: HTTPRoute }]
    - name: passthrough
      port: 8443
      protocol: TLS
      hostname: legacy.example.com
      tls: { mode: Passthrough }
    - name: db
      port: 5432
      protocol: TCP
      allowedRoutes:
        namespaces:
          from: Selector
          selector: { matchLabels: { kubernetes.io/metadata.name: data } }
";

/// A route in `namespace` of `kind` with `parentRefs` and `hostnames` (YAML flow
/// lists), forwarding to the `web` Service of `shop`.
fn route(kind: Kind, namespace: &str, name: &str, parents: &str, hostnames: &str) -> String {
    let hostnames = if kind == Kind::TcpRoute {
        String::new()
    } else {
        format!("  hostnames: {hostnames}\n")
    };
    format!(
        "apiVersion: {}\nkind: {kind}\nmetadata: {{ name: {name}, namespace: {namespace}, generation: 2 }}\nspec:\n  parentRefs: {parents}\n{hostnames}  rules: [{{ backendRefs: [{{ name: web, namespace: shop, port: 80 }}] }}]\n",
        kind.api_version()
    )
}

const EDGE: &str = "{ group: gateway.networking.k8s.io, kind: Gateway, name: edge, namespace: shop";

fn web() -> weft_api::resource::Object {
    object(
        "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: { name: web, namespace: shop }\nspec: { selector: { app: web }, ports: [{ port: 80, protocol: http }] }\n",
    )
}

/// `(type, status, reason)` of each condition in `conditions`.
fn summary(conditions: &Value) -> Vec<(String, String, String)> {
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |field: &str| c[field].as_str().unwrap_or_default().to_owned();
            (text("type"), text("status"), text("reason"))
        })
        .collect()
}

fn condition<'a>(conditions: &'a Value, kind: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn triple(kind: &str, status: &str, reason: &str) -> (String, String, String) {
    (kind.to_owned(), status.to_owned(), reason.to_owned())
}

// === validate ===

#[test]
fn a_gateway_with_listeners_of_every_protocol_validates() {
    assert_eq!(errors(GATEWAY), Vec::<String>::new());
    assert_eq!(
        object(GATEWAY).key().map(|k| k.kind).ok(),
        Some(Kind::Gateway)
    );
}

#[test]
fn rejects_bad_gateways_with_path_value_and_what_to_do() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            GATEWAY.replace("gatewayClassName: weft", "gatewayClassName: istio"),
            "spec.gatewayClassName",
            "\"istio\" is not a class Weft serves: use gatewayClassName: weft",
        ),
        (
            GATEWAY.replace("gateway.networking.k8s.io/v1\n", "gateway.networking.k8s.io/v1beta1\n"),
            "apiVersion",
            "not served for Gateway",
        ),
        (
            GATEWAY.replace("  gatewayClassName: weft\n", "  gatewayClassName: weft\n  addresses: [{ value: 10.0.0.1 }]\n"),
            "spec.addresses",
            "not supported: a gateway listens on the addresses of the host it runs on",
        ),
        (
            GATEWAY.replace("  gatewayClassName: weft\n", "  gatewayClassName: weft\n  infrastructure: {}\n"),
            "spec.infrastructure",
            "unknown field `infrastructure`",
        ),
        (
            GATEWAY.replace("      hostname: '*.example.com'\n", "      hostname: '*.example.com'\n      colour: red\n"),
            "spec.listeners[0].colour",
            "unknown field `colour`",
        ),
        (
            GATEWAY.replace("name: db", "name: http"),
            "spec.listeners[3].name",
            "\"http\" is also the name of spec.listeners[0]; listener names are unique",
        ),
        (
            GATEWAY.replace("name: db", "name: DB_1"),
            "spec.listeners[3].name",
            "\"DB_1\" is not a valid name",
        ),
        (
            GATEWAY.replace("port: 5432", "port: 0"),
            "spec.listeners[3].port",
            "0 is not a port: use 1-65535",
        ),
        (
            GATEWAY.replace("port: 5432", "port: 70000"),
            "spec.listeners[3].port",
            "70000",
        ),
        (
            GATEWAY.replace("protocol: TCP", "protocol: UDP"),
            "spec.listeners[3].protocol",
            "unknown variant `UDP`, expected one of `HTTP`, `HTTPS`, `TLS`, `TCP`",
        ),
        (
            GATEWAY.replace("'*.example.com'", "'*.Example.com'"),
            "spec.listeners[0].hostname",
            "\"*.Example.com\" is not a valid hostname",
        ),
        (
            GATEWAY.replace("'*.example.com'", "'10.0.0.1'"),
            "spec.listeners[0].hostname",
            "no IPs or ports",
        ),
        (
            GATEWAY.replace("      protocol: TCP\n", "      protocol: TCP\n      hostname: db.example.com\n"),
            "spec.listeners[3].hostname",
            "\"db.example.com\": a TCP listener has no hostname",
        ),
        (
            GATEWAY.replace("      tls: { mode: Passthrough }\n", ""),
            "spec.listeners[2].tls",
            "required for a TLS listener: {mode: Passthrough}",
        ),
        (
            GATEWAY.replace("      tls:\n        mode: Terminate\n        certificateRefs: [{ kind: Secret, name: shop-cert }]\n", ""),
            "spec.listeners[1].tls",
            "required for an HTTPS listener",
        ),
        (
            GATEWAY.replace("      hostname: '*.example.com'\n", "      hostname: '*.example.com'\n      tls: { certificateRefs: [{ name: c }] }\n"),
            "spec.listeners[0].tls",
            "an HTTP listener is plaintext and takes no tls; remove it, or use protocol HTTPS",
        ),
        (
            GATEWAY.replace("        mode: Terminate\n", "        mode: Passthrough\n"),
            "spec.listeners[1].tls.mode",
            "Passthrough: an HTTPS listener terminates TLS",
        ),
        (
            GATEWAY.replace("tls: { mode: Passthrough }", "tls: { certificateRefs: [{ name: c }] }"),
            "spec.listeners[2].tls.mode",
            "Terminate (the default): a TLS listener passes connections through by SNI, so set mode: Passthrough",
        ),
        (
            GATEWAY.replace("tls: { mode: Passthrough }", "tls: { mode: Passthrough, certificateRefs: [{ name: c }] }"),
            "spec.listeners[2].tls.certificateRefs",
            "mode Passthrough uses no certificate",
        ),
        (
            GATEWAY.replace("certificateRefs: [{ kind: Secret, name: shop-cert }]", "certificateRefs: []"),
            "spec.listeners[1].tls.certificateRefs",
            "mode Terminate needs at least one certificateRef",
        ),
        (
            GATEWAY.replace("{ kind: Secret, name: shop-cert }", "{ kind: ConfigMap, name: shop-cert }"),
            "spec.listeners[1].tls.certificateRefs[0].kind",
            "\"ConfigMap\" is not supported: certificates are in Secrets",
        ),
        (
            GATEWAY.replace("{ kind: Secret, name: shop-cert }", "{ group: cert-manager.io, name: shop-cert }"),
            "spec.listeners[1].tls.certificateRefs[0].group",
            "\"cert-manager.io\" is not supported",
        ),
        (
            GATEWAY.replace("{ kind: Secret, name: shop-cert }", "{ name: shop-cert, namespace: Certs }"),
            "spec.listeners[1].tls.certificateRefs[0].namespace",
            "\"Certs\" is not a valid name",
        ),
        (
            GATEWAY.replace("        mode: Terminate\n", "        mode: Terminate\n        options: { a: b }\n"),
            "spec.listeners[1].tls.options",
            "unknown field `options`",
        ),
        (
            GATEWAY.replace("from: All", "from: Some"),
            "spec.listeners[1].allowedRoutes.namespaces.from",
            "unknown variant `Some`",
        ),
        (
            GATEWAY.replace("          selector: { matchLabels: { kubernetes.io/metadata.name: data } }\n", ""),
            "spec.listeners[3].allowedRoutes.namespaces.selector",
            "required with from: Selector",
        ),
        (
            GATEWAY.replace("from: All }", "from: All, selector: {} }"),
            "spec.listeners[1].allowedRoutes.namespaces.selector",
            "used only with from: Selector (from is All)",
        ),
        (
            GATEWAY.replace("matchLabels: { kubernetes.io/metadata.name: data }", "matchLabels: { team: data }"),
            "spec.listeners[3].allowedRoutes.namespaces.selector.matchLabels.team",
            "namespaces have only the label kubernetes.io/metadata.name (their name) in Weft",
        ),
        (
            GATEWAY.replace("matchLabels: { kubernetes.io/metadata.name: data }", "matchExpressions: [{ key: kubernetes.io/metadata.name, operator: In }]"),
            "spec.listeners[3].allowedRoutes.namespaces.selector.matchExpressions[0].values",
            "required with operator In",
        ),
        (
            GATEWAY.replace("matchLabels: { kubernetes.io/metadata.name: data }", "matchExpressions: [{ key: kubernetes.io/metadata.name, operator: Exists, values: [a] }]"),
            "spec.listeners[3].allowedRoutes.namespaces.selector.matchExpressions[0].values",
            "must be empty with operator Exists",
        ),
        (
            GATEWAY.replace("kind: HTTPRoute }]", "kind: '' }]"),
            "spec.listeners[1].allowedRoutes.kinds[0].kind",
            "required: a route kind",
        ),
        (
            GATEWAY.replace(
                "  listeners:\n",
                "  listeners: []\n  x-listeners:\n",
            ),
            "spec.x-listeners",
            "unknown field `x-listeners`",
        ),
    ];
    assert_errors(cases);
    let none = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: edge }\nspec: { gatewayClassName: weft, listeners: [] }\n";
    assert_errors(vec![(none, "spec.listeners", "at least one listener")]);
}

#[test]
fn a_route_may_name_a_gateway_and_one_of_its_listeners_as_parent() {
    for parents in [
        "[{ group: gateway.networking.k8s.io, kind: Gateway, name: edge }]",
        "[{ group: gateway.networking.k8s.io, kind: Gateway, name: edge, namespace: shop, sectionName: https, port: 443 }]",
        "[{ name: echo }, { group: gateway.networking.k8s.io, kind: Gateway, name: edge }]",
    ] {
        let yaml = HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", parents);
        assert_eq!(errors(&yaml), Vec::<String>::new(), "{parents}");
    }
    for kind in [Kind::GrpcRoute, Kind::TcpRoute] {
        let yaml = route(kind, "shop", "r", &format!("[{EDGE} }}]"), "[]");
        assert_eq!(errors(&yaml), Vec::<String>::new(), "{yaml}");
    }
}

// === compile: the Gateway's status ===

#[test]
fn a_valid_gateway_is_accepted_but_not_programmed_while_no_gateway_process_exists() {
    let compiled = compile(&objects(GATEWAY));
    let status = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")];
    let programmed = condition(&status["conditions"], "Programmed");
    assert_eq!(
        (
            &programmed["status"],
            &programmed["reason"],
            &programmed["observedGeneration"]
        ),
        (
            &Value::from("False"),
            &Value::from("Pending"),
            &Value::from(4)
        )
    );
    let message = programmed["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("no gateway named shop/edge is connected"),
        "{message}"
    );
    let names: Vec<&str> = status["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(names, ["http", "https", "passthrough", "db"]);
    let http = &status["listeners"][0];
    assert_eq!(
        summary(&http["conditions"]),
        [
            triple("Accepted", "True", "Accepted"),
            triple("Programmed", "False", "Pending"),
            triple("ResolvedRefs", "True", "ResolvedRefs"),
            triple("Conflicted", "False", "NoConflicts"),
        ]
    );
    assert_eq!(http["attachedRoutes"], 0);
    assert_eq!(
        http["supportedKinds"],
        serde_json::json!([
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
            {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"}
        ])
    );
    // allowedRoutes.kinds narrows what the HTTPS listener takes.
    assert_eq!(
        status["listeners"][1]["supportedKinds"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );
    assert_eq!(
        status["listeners"][3]["supportedKinds"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "TCPRoute"}])
    );
}

#[test]
fn a_certificate_ref_to_a_missing_secret_is_reported_unresolved_never_silently_accepted() {
    let compiled = compile(&objects(GATEWAY));
    let status = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")];
    let https = &status["listeners"][1];
    assert_eq!(
        summary(&https["conditions"]),
        [
            triple("Accepted", "True", "Accepted"),
            triple("Programmed", "False", "Invalid"),
            triple("ResolvedRefs", "False", "InvalidCertificateRef"),
            triple("Conflicted", "False", "NoConflicts"),
        ]
    );
    let message = condition(&https["conditions"], "ResolvedRefs")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("Secret shop/shop-cert not found; create it"),
        "{message}"
    );
    let accepted = condition(&status["conditions"], "Accepted");
    assert_eq!(
        (&accepted["status"], &accepted["reason"]),
        (&Value::from("True"), &Value::from("ListenersNotValid"))
    );
    let message = accepted["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("https (InvalidCertificateRef)")
            && message.contains("passthrough (InvalidRouteKinds)")
            && !message.contains("http ("),
        "{message}"
    );
    // Another namespace's Secret: not permitted, whatever it holds.
    let other = GATEWAY.replace("name: shop-cert }", "name: shop-cert, namespace: certs }");
    let compiled = compile(&objects(&other));
    let https = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")]["listeners"][1];
    assert_eq!(
        condition(&https["conditions"], "ResolvedRefs")["reason"],
        "RefNotPermitted"
    );
}

#[test]
fn conflicting_listeners_are_conflicted_not_accepted_and_the_gateway_names_them() {
    let conflicting = GATEWAY
        .replace("port: 5432", "port: 80")
        .replace("port: 8443", "port: 443")
        .replace("hostname: legacy.example.com", "hostname: shop.example.com");
    let compiled = compile(&objects(&conflicting));
    let status = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")];
    let conflicted: Vec<(String, String, String)> = status["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let c = condition(&l["conditions"], "Conflicted");
            let a = condition(&l["conditions"], "Accepted");
            (
                l["name"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                a["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        conflicted,
        [
            triple("http", "ProtocolConflict", "PortUnavailable"),
            triple("https", "HostnameConflict", "PortUnavailable"),
            triple("passthrough", "HostnameConflict", "PortUnavailable"),
            triple("db", "ProtocolConflict", "PortUnavailable"),
        ]
    );
    let accepted = condition(&status["conditions"], "Accepted");
    assert_eq!(
        (&accepted["status"], &accepted["reason"]),
        (&Value::from("False"), &Value::from("ListenersNotValid")),
        "no listener left: the Gateway is not accepted"
    );
    assert!(
        accepted["message"].as_str().is_some_and(|m| m.starts_with(
            "no listener is valid: http (ProtocolConflict), https (HostnameConflict), \
             passthrough (HostnameConflict), db (ProtocolConflict)"
        )),
        "{accepted}"
    );
}

// === compile: attachment ===

#[test]
fn routes_attach_by_the_listeners_rules_and_attached_routes_counts_each_once() {
    let mut all = objects(GATEWAY);
    all.push(web());
    // Both HTTP listeners, named twice (whole Gateway and one listener): counted once.
    all.push(object(&route(
        Kind::HttpRoute,
        "shop",
        "store",
        &format!("[{EDGE} }}, {EDGE}, sectionName: https }}]"),
        "[shop.example.com]",
    )));
    // gRPC: the HTTPS listener takes HTTPRoute only.
    all.push(object(&route(
        Kind::GrpcRoute,
        "shop",
        "rpc",
        &format!("[{EDGE} }}]"),
        "[]",
    )));
    // Another namespace: only the HTTPS listener takes it, and only for its hostname.
    all.push(object(&route(
        Kind::HttpRoute,
        "blog",
        "blog",
        &format!("[{EDGE} }}]"),
        "[shop.example.com]",
    )));
    all.push(object(&route(
        Kind::HttpRoute,
        "blog",
        "elsewhere",
        &format!("[{EDGE} }}]"),
        "[blog.example.org]",
    )));
    // TCP: the selector takes data's routes, not shop's.
    all.push(object(&route(
        Kind::TcpRoute,
        "data",
        "pg",
        &format!("[{EDGE} }}]"),
        "",
    )));
    all.push(object(&route(
        Kind::TcpRoute,
        "shop",
        "pg",
        &format!("[{EDGE} }}]"),
        "",
    )));
    // A listener that does not exist, a port no listener has, a Gateway that does not.
    all.push(object(&route(
        Kind::HttpRoute,
        "shop",
        "typo",
        &format!("[{EDGE}, sectionName: htps }}]"),
        "[]",
    )));
    all.push(object(&route(
        Kind::HttpRoute,
        "shop",
        "port",
        &format!("[{EDGE}, port: 81 }}]"),
        "[]",
    )));
    all.push(object(&route(
        Kind::HttpRoute,
        "shop",
        "lost",
        "[{ group: gateway.networking.k8s.io, kind: Gateway, name: nowhere }]",
        "[]",
    )));
    let compiled = compile(&all);
    let parent = |kind: Kind, ns: &str, name: &str, i: usize| {
        let p = &compiled.statuses[&key(kind, ns, name)]["parents"][i];
        let accepted = condition(&p["conditions"], "Accepted");
        (
            accepted["reason"].as_str().unwrap_or_default().to_owned(),
            accepted["message"].as_str().unwrap_or_default().to_owned(),
            accepted["observedGeneration"].clone(),
        )
    };
    let cases = [
        (Kind::HttpRoute, "shop", "store", 0, "Accepted", "attached to listeners http, https of Gateway shop/edge"),
        (Kind::HttpRoute, "shop", "store", 1, "Accepted", "attached to listener https of Gateway shop/edge"),
        (Kind::GrpcRoute, "shop", "rpc", 0, "Accepted", "attached to listener http of Gateway shop/edge"),
        (Kind::HttpRoute, "blog", "blog", 0, "Accepted", "attached to listener https of"),
        (Kind::HttpRoute, "blog", "elsewhere", 0, "NoMatchingListenerHostname", "no hostname of the route (blog.example.org)"),
        (Kind::TcpRoute, "data", "pg", 0, "Accepted", "attached to listener db of"),
        (Kind::TcpRoute, "shop", "pg", 0, "NotAllowedByListeners", "listener db takes routes of the namespaces its allowedRoutes.namespaces.selector matches, not of shop"),
        (Kind::HttpRoute, "shop", "typo", 0, "NoMatchingParent", "has no listener named \"htps\" (listeners: http, https, passthrough, db)"),
        (Kind::HttpRoute, "shop", "port", 0, "NoMatchingParent", "Gateway shop/edge has no listener on port 81"),
        (Kind::HttpRoute, "shop", "lost", 0, "NoMatchingParent", "Gateway shop/nowhere not found"),
    ];
    for (kind, ns, name, i, reason, message) in cases {
        let (got_reason, got_message, generation) = parent(kind, ns, name, i);
        assert_eq!(got_reason, reason, "{kind} {ns}/{name}: {got_message}");
        assert!(
            got_message.contains(message),
            "{kind} {ns}/{name}: {got_message}"
        );
        assert_eq!(generation, 2, "{kind} {ns}/{name}");
    }
    let listeners = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")]["listeners"];
    let counts: Vec<(String, u64)> = listeners
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or_default().to_owned(),
                l["attachedRoutes"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [("http", 2), ("https", 2), ("passthrough", 0), ("db", 1)]
        .into_iter()
        .map(|(n, c)| (n.to_owned(), c))
        .collect();
    assert_eq!(counts, want);
    // The parentRef is echoed with the listener it named.
    let p = &compiled.statuses[&key(Kind::HttpRoute, "shop", "store")]["parents"][1]["parentRef"];
    assert_eq!(
        p,
        &serde_json::json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge", "namespace": "shop", "sectionName": "https"})
    );
    // Nothing is compiled for a Gateway: no proxy serves one yet.
    assert!(
        compiled.route_tables.is_empty(),
        "{:?}",
        compiled.route_tables.keys()
    );
}

#[test]
fn a_backend_behind_a_gateway_needs_its_port_and_must_exist() {
    let spec = format!(
        "  parentRefs: [{EDGE} }}]\n  rules:\n    - backendRefs: [{{ name: web, namespace: shop }}, {{ name: gone, port: 80 }}, {{ name: web, namespace: shop, port: 81 }}]\n"
    );
    let mut all = objects(GATEWAY);
    all.push(web());
    let mut r = http_route("r", "2026-01-01T00:00:00Z", &spec);
    r.metadata.namespace = Some("shop".into());
    all.push(r);
    let compiled = compile(&all);
    let resolved = condition(
        &compiled.statuses[&key(Kind::HttpRoute, "shop", "r")]["parents"][0]["conditions"],
        "ResolvedRefs",
    );
    assert_eq!(resolved["reason"], "BackendNotFound");
    let message = resolved["message"].as_str().unwrap_or_default();
    for part in [
        "backend Service shop/web has no port: a request through a Gateway arrives on a listener's port",
        "backend Service shop/gone not found",
        "backend Service shop/web has no port 81 (ports: 80)",
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }
}

#[test]
fn a_route_naming_an_invalid_gateway_is_told_it_does_not_validate() {
    let bad = GATEWAY.replace("gatewayClassName: weft", "gatewayClassName: istio");
    let mut all = objects(&bad);
    all.push(object(&route(
        Kind::HttpRoute,
        "shop",
        "r",
        &format!("[{EDGE} }}]"),
        "[]",
    )));
    let compiled = compile(&all);
    let status = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")];
    assert_eq!(
        summary(&status["conditions"]),
        [triple("Accepted", "False", "Invalid")]
    );
    assert!(
        status["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.gatewayClassName")),
        "{status}"
    );
    assert_eq!(status["listeners"], serde_json::json!([]));
    let accepted = condition(
        &compiled.statuses[&key(Kind::HttpRoute, "shop", "r")]["parents"][0]["conditions"],
        "Accepted",
    );
    assert_eq!(accepted["reason"], "NoMatchingParent");
    assert_eq!(
        accepted["message"],
        "Gateway shop/edge does not validate, so no route attaches to it; see its status"
    );
}

// === compile: mesh parents are untouched ===

#[test]
fn a_gateway_parent_changes_nothing_a_service_parent_compiles_to() {
    let mesh_only = http_route(
        "r",
        "2026-01-01T00:00:00Z",
        "  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: web }] }]\n",
    );
    let both = http_route(
        "r",
        "2026-01-01T00:00:00Z",
        "  parentRefs: [{ name: web }, { group: gateway.networking.k8s.io, kind: Gateway, name: web }]\n  rules: [{ backendRefs: [{ name: web }] }]\n",
    );
    let gateway = object(&GATEWAY.replace("name: edge, namespace: shop", "name: web"));
    let alone = compile(&[svc("web", "[{ port: 80 }]"), mesh_only]);
    let beside = compile(&[svc("web", "[{ port: 80 }]"), both, gateway]);
    assert_eq!(alone.route_tables, beside.route_tables);
    assert_eq!(alone.services, beside.services);
    let parents =
        |c: &crate::Compiled| c.statuses[&key(Kind::HttpRoute, "default", "r")]["parents"].clone();
    assert_eq!(parents(&alone)[0], parents(&beside)[0]);
    assert_eq!(parents(&beside)[1]["parentRef"]["kind"], "Gateway");
}

#[test]
fn a_shadowed_rule_is_reported_on_the_service_parent_not_on_a_gateway_of_the_same_name() {
    let spec = "  parentRefs: [{ name: web }, { group: gateway.networking.k8s.io, kind: Gateway, name: web }]\n  rules:\n    - backendRefs: [{ name: web, port: 80 }]\n    - backendRefs: [{ name: web, port: 80 }]\n";
    let gateway = object(&GATEWAY.replace("name: edge, namespace: shop", "name: web"));
    let compiled = compile(&[
        svc("web", "[{ port: 80 }]"),
        http_route("r", "2026-01-01T00:00:00Z", spec),
        gateway,
    ]);
    let parents = &compiled.statuses[&key(Kind::HttpRoute, "default", "r")]["parents"];
    assert_eq!(
        condition(&parents[0]["conditions"], "Conflicted")["reason"],
        "ShadowedRules"
    );
    assert_eq!(
        condition(&parents[1]["conditions"], "Conflicted"),
        &Value::Null,
        "{parents}"
    );
}

#[test]
fn a_service_parent_naming_a_gateway_is_told_how_to_attach_to_it() {
    let compiled = compile(&[
        object(&GATEWAY.replace("name: edge, namespace: shop", "name: edge")),
        http_route(
            "r",
            "2026-01-01T00:00:00Z",
            "  parentRefs: [{ name: edge }]\n  rules: [{ backendRefs: [{ name: web, port: 80 }] }]\n",
        ),
    ]);
    let accepted = condition(
        &compiled.statuses[&key(Kind::HttpRoute, "default", "r")]["parents"][0]["conditions"],
        "Accepted",
    );
    assert_eq!(
        accepted["message"],
        "Service default/edge not found; a Gateway of that name exists: to attach to it, \
         set group: gateway.networking.k8s.io and kind: Gateway"
    );
}

/// A Secret as the control loop hands it to compilation: the stored form without its
/// sealed material.
const SHOP_CERT: &str = r"
apiVersion: v1
kind: Secret
metadata: { name: shop-cert, namespace: shop }
spec:
  type: kubernetes.io/tls
  keys: [tls.crt, tls.key]
  certificate:
    subject: CN=shop.example.com
    issuer: CN=Example CA
    dnsNames: [shop.example.com]
    ipAddresses: []
    notBefore: 1700000000
    notAfter: 1900000000
    sha256Fingerprint: 'AB:CD'
    chainLength: 1
";

#[test]
fn a_certificate_ref_to_a_valid_secret_of_the_namespace_resolves() {
    let mut all = objects(GATEWAY);
    all.extend(objects(SHOP_CERT));
    let compiled = compile(&all);
    let status = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")];
    let https = &status["listeners"][1];
    assert_eq!(
        summary(&https["conditions"]),
        [
            triple("Accepted", "True", "Accepted"),
            triple("Programmed", "False", "Pending"),
            triple("ResolvedRefs", "True", "ResolvedRefs"),
            triple("Conflicted", "False", "NoConflicts"),
        ]
    );
    assert_eq!(
        compiled.certificate_expiry[&("shop".to_owned(), "shop-cert".to_owned())],
        1_900_000_000
    );
}

#[test]
fn a_secret_of_another_type_does_not_resolve_and_says_why() {
    let mut all = objects(GATEWAY);
    all.extend(objects(&SHOP_CERT.replace("kubernetes.io/tls", "Opaque")));
    let compiled = compile(&all);
    let https = &compiled.statuses[&key(Kind::Gateway, "shop", "edge")]["listeners"][1];
    let resolved = condition(&https["conditions"], "ResolvedRefs");
    assert_eq!(resolved["reason"], "InvalidCertificateRef");
    let message = resolved["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is not a usable kubernetes.io/tls Secret")
            && message.contains("\"Opaque\" is not supported"),
        "{message}"
    );
}
