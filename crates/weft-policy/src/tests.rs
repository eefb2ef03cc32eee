//! Table-driven tests of parsing, validation and compilation.

use serde_json::json;
use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Kind, Object};

use super::{compile, parse_documents, validate};

mod backend;
mod gateway;
mod permission;
mod telemetry;
mod traffic;

const MESH: &str = "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec: { trustDomain: corp.example }\n";

const SERVICE: &str = r"
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: echo, namespace: shop }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]
  vip: 10.96.0.10
";

const WORKLOAD: &str = r"
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: { name: echo-1, namespace: shop, labels: { app: echo } }
spec:
  serviceAccount: echo
  address: 10.0.0.2
  hbone: 10.0.0.2:15009
  ports: [{ port: 8080, protocol: http }]
  zone: eu-west-1a
";

const HTTP_ROUTE: &str = r"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary, namespace: shop }
spec:
  parentRefs: [{ name: echo, port: 80 }]
  hostnames: [echo.example.com, '*.echo.example.com']
  rules:
    - matches:
        - path: { type: PathPrefix, value: /api }
          headers: [{ name: x-canary, value: 'yes' }]
          queryParams: [{ type: RegularExpression, name: v, value: '[0-9]+' }]
          method: GET
      backendRefs: [{ name: echo, port: 80, weight: 90 }, { name: echo, weight: 10 }]
      timeouts: { request: 10s, backendRequest: 500ms }
";

const GRPC_ROUTE: &str = r"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: greeter }
spec:
  parentRefs: [{ name: echo }]
  rules:
    - matches: [{ method: { service: helloworld.Greeter, method: SayHello } }]
      backendRefs: [{ name: echo }]
";

const TCP_ROUTE: &str = r"
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: db }
spec:
  parentRefs: [{ name: db, port: 5432 }]
  rules: [{ backendRefs: [{ name: db, port: 5432 }] }]
";

fn object(yaml: &str) -> Object {
    let mut objects = parse_documents(yaml).expect("test YAML parses");
    assert_eq!(objects.len(), 1, "{yaml}");
    objects.remove(0)
}

fn objects(yaml: &str) -> Vec<Object> {
    parse_documents(yaml).expect("test YAML parses")
}

/// `path: message` of every validation error.
fn errors(yaml: &str) -> Vec<String> {
    match validate(&object(yaml)) {
        Ok(()) => Vec::new(),
        Err(e) => {
            e.0.into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()
        }
    }
}

/// Each `(yaml, path, message)`: validating `yaml` gives an error at `path` whose text
/// contains `message`.
fn assert_errors<Y: AsRef<str>>(cases: Vec<(Y, &str, &str)>) {
    for (yaml, path, message) in cases {
        let errors = errors(yaml.as_ref());
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(message)),
            "expected {path}: ...{message}..., got {errors:?}"
        );
    }
}

fn healthy(mut o: Object) -> Object {
    o.status = Some(json!({ "phase": "Healthy", "since": "irrelevant" }));
    o
}

fn workload(name: &str, ns: &str, address: &str, labels: &str, phase: &str) -> Object {
    let mut o = object(&format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {{ name: {name}, namespace: {ns}, labels: {labels} }}\nspec: {{ address: {address} }}\n"
    ));
    o.status = Some(json!({ "phase": phase }));
    o
}

fn key(kind: Kind, ns: &str, name: &str) -> Key {
    Key {
        kind,
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

// === parse_documents ===

#[test]
fn every_kind_parses_from_yaml_and_validates() {
    for yaml in [MESH, SERVICE, WORKLOAD, HTTP_ROUTE, GRPC_ROUTE, TCP_ROUTE] {
        assert_eq!(errors(yaml), Vec::<String>::new(), "{yaml}");
    }
    let tcp_v1 = TCP_ROUTE.replace("v1alpha2", "v1");
    assert_eq!(errors(&tcp_v1), Vec::<String>::new());
}

#[test]
fn multi_document_streams_skip_empty_documents() {
    let text = format!("---\n{MESH}---\n---\n# only a comment\n---\n{SERVICE}---\n{WORKLOAD}");
    let kinds: Vec<String> = objects(&text).into_iter().map(|o| o.kind).collect();
    assert_eq!(kinds, ["Mesh", "Service", "Workload"]);
}

#[test]
fn json_arrays_and_lists_yield_their_items() {
    let svc = serde_json::to_value(object(SERVICE)).expect("json");
    let array = serde_json::to_string(&json!([svc, svc])).expect("json");
    assert_eq!(objects(&array).len(), 2);
    let list =
        serde_json::to_string(&json!({ "apiVersion": "v1", "kind": "List", "items": [svc] }))
            .expect("json");
    assert_eq!(objects(&list).len(), 1);
}

#[test]
fn parse_errors_name_the_document_and_path() {
    let text = format!("{MESH}---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: x, colour: red }}\n");
    let err = parse_documents(&text).expect_err("unknown metadata field");
    assert_eq!(err.index, 1);
    assert!(
        err.path
            .as_deref()
            .is_some_and(|p| p.starts_with("metadata")),
        "{err:?}"
    );
    assert!(err.to_string().contains("colour"), "{err}");

    let err = parse_documents(&format!("{MESH}---\nkind: [\n")).expect_err("broken YAML");
    assert_eq!(err.index, 1, "{err}");
    assert!(err.message.starts_with("not valid YAML"), "{err}");

    let list = r#"{"kind": "List", "items": [{"apiVersion": "v1", "kind": "Service"}]}"#;
    let err = parse_documents(list).expect_err("item without metadata");
    assert_eq!(err.path.as_deref(), Some("items[0]"), "{err}");
}

// === validate ===

#[test]
fn rejects_bad_values_with_path_and_message() {
    let route = |rule: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: r }}\nspec:\n  parentRefs: [{{ name: echo }}]\n  rules:\n    - backendRefs: [{{ name: echo }}]\n    - {rule}\n"
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            route("backendRefs: [{ name: echo, weight: -1 }]"),
            "spec.rules[1].backendRefs[0].weight",
            "-1: must be ≥ 0",
        ),
        (
            route("backendRefs: [{ name: echo, weight: 2000000 }]"),
            "spec.rules[1].backendRefs[0].weight",
            "must be ≤ 1000000",
        ),
        (
            route("backendRefs: [{ name: echo, port: 0 }]"),
            "spec.rules[1].backendRefs[0].port",
            "0 is not a port",
        ),
        (
            route("backendRefs: [{ name: echo, port: 70000 }]"),
            "spec.rules[1].backendRefs[0].port",
            "70000",
        ),
        (
            route("{ backendRefs: [{ name: echo }], timeouts: { request: 10x } }"),
            "spec.rules[1].timeouts.request",
            "e.g. \"10s\"",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: Host, value: evil }] } }] }"),
            "spec.rules[1].filters[0].requestHeaderModifier.set[0].name",
            "managed by the proxy",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: x-a, value: \"a\\nb\" }] } }] }"),
            "spec.rules[1].filters[0].responseHeaderModifier.add[0].value",
            "CR, LF or NUL",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: ExtensionRef, extensionRef: { name: x } }] }"),
            "spec.rules[1].filters[0].type",
            "\"ExtensionRef\" is not supported",
        ),
        (
            route("{ filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 304 } }] }"),
            "spec.rules[1].filters[0].requestRedirect.statusCode",
            "304 is not a redirect status",
        ),
        (
            route("{ filters: [{ type: RequestRedirect, requestRedirect: { scheme: ftp } }] }"),
            "spec.rules[1].filters[0].requestRedirect.scheme",
            "must be http or https",
        ),
        (
            route("{ matches: [{ path: { type: Exact, value: /a } }], backendRefs: [{ name: echo }], filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }] }"),
            "spec.rules[1].filters",
            "every match of the rule must have a PathPrefix path",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath } } }] }"),
            "spec.rules[1].filters[0].urlRewrite.path.replaceFullPath",
            "required with type ReplaceFullPath",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: URLRewrite, urlRewrite: { hostname: 'Bad Host' } }] }"),
            "spec.rules[1].filters[0].urlRewrite.hostname",
            "is not a host name",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow }, percent: 101 } }] }"),
            "spec.rules[1].filters[0].requestMirror.percent",
            "101 is not a percentage",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow }, fraction: { numerator: 3, denominator: 2 } } }] }"),
            "spec.rules[1].filters[0].requestMirror.fraction",
            "not a fraction between 0 and 1",
        ),
        (
            route("{ filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }, { type: RequestMirror, requestMirror: { backendRef: { name: shadow } } }] }"),
            "spec.rules[1].filters",
            "cannot be combined",
        ),
        (
            route("{ filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow } } }] }"),
            "spec.rules[1].backendRefs",
            "at least one backendRef",
        ),
        (
            route("{ backendRefs: [{ name: echo }], filters: [{ type: RequestHeaderModifier }] }"),
            "spec.rules[1].filters[0].requestHeaderModifier",
            "required with type RequestHeaderModifier",
        ),
        (
            route("{ backendRefs: [{ name: echo }], retry: { attempts: 11 } }"),
            "spec.rules[1].retry.attempts",
            "more than 10",
        ),
        (
            route("{ backendRefs: [{ name: echo }], retry: { codes: [503, 302] } }"),
            "spec.rules[1].retry.codes[1]",
            "302 is not a 4xx or 5xx status",
        ),
        (
            route("{ backendRefs: [{ name: echo }], retry: { backoff: 0s } }"),
            "spec.rules[1].retry.backoff",
            "lockstep",
        ),
        (
            route("{ backendRefs: [{ name: echo }], retry: { backoff: soon } }"),
            "spec.rules[1].retry.backoff",
            "e.g.",
        ),
        (
            route("{ backendRefs: [{ name: echo }], timeouts: { request: 1s, backendRequest: 2s } }"),
            "spec.rules[1].timeouts.backendRequest",
            "longer than timeouts.request",
        ),
        (
            route("{ backendRefs: [{ name: echo }], matches: [{ path: { type: RegularExpression, value: '(' } }] }"),
            "spec.rules[1].matches[0].path.value",
            "is not a valid regular expression",
        ),
        (
            route("{ backendRefs: [{ name: echo }], matches: [{ headers: [{ type: RegularExpression, name: x, value: '[' }] }] }"),
            "spec.rules[1].matches[0].headers[0].value",
            "is not a valid regular expression",
        ),
        (
            route("{ backendRefs: [{ name: echo }], matches: [{ path: { value: api } }] }"),
            "spec.rules[1].matches[0].path.value",
            "must start with '/'",
        ),
        (
            route("{ backendRefs: [{ name: echo }], matches: [{ method: get }] }"),
            "spec.rules[1].matches[0].method",
            "not a method",
        ),
        (
            route("{ backendRefs: [{ name: echo, filters: [{ type: RequestHeaderModifier }] }] }"),
            "spec.rules[1].backendRefs[0].filters",
            "GRPCRoute rules and backendRefs take none",
        ),
        (
            route("{ backendRefs: [{ name: echo, kind: ServiceImport }] }"),
            "spec.rules[1].backendRefs[0].kind",
            "only kind Service",
        ),
        (route("{ backendRefs: [] }"), "spec.rules[1].backendRefs", "at least one"),
        (
            route("{ backendRefs: [{ name: echo }], colour: red }"),
            "spec.rules[1].colour",
            "unknown field `colour`",
        ),
        (
            HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", "[{ name: gw, kind: Gateway, group: example.com }]"),
            "spec.parentRefs[0].group",
            "\"example.com\" is not supported: a parent is a Service (group \"\") or a Gateway",
        ),
        (
            HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", "[{ name: gw, kind: Gateway }]"),
            "spec.parentRefs[0].group",
            "a Gateway parent needs group: gateway.networking.k8s.io",
        ),
        (
            HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", "[{ name: gw, group: gateway.networking.k8s.io }]"),
            "spec.parentRefs[0].kind",
            "set kind: Gateway (kind defaults to Service",
        ),
        (
            HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", "[{ name: echo, kind: ServiceImport }]"),
            "spec.parentRefs[0].kind",
            "\"ServiceImport\" is not supported: a parent is a Service, or a Gateway",
        ),
        (
            HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", "[{ name: echo, sectionName: http }]"),
            "spec.parentRefs[0].sectionName",
            "no meaning for a Service parent",
        ),
        (
            HTTP_ROUTE.replace("[{ name: echo, port: 80 }]", "[{ name: gw, kind: Gateway, group: gateway.networking.k8s.io, sectionName: Web_1 }]"),
            "spec.parentRefs[0].sectionName",
            "not a valid name",
        ),
        (
            HTTP_ROUTE.replace("'*.echo.example.com'", "'10.0.0.1'"),
            "spec.hostnames[1]",
            "not a valid hostname",
        ),
        (
            SERVICE.replace("targetPort: 8080", "targetPort: 0"),
            "spec.ports[0].targetPort",
            "0 is not a port",
        ),
        (
            SERVICE.replace("{ name: http, port: 80,", "{ port: 81 }, { name: http, port: 81,"),
            "spec.ports[1].port",
            "port 81 is listed twice",
        ),
        (SERVICE.replace("  ports: [{ name: http, port: 80, targetPort: 8080, protocol: http }]\n", "  ports: []\n"), "spec.ports", "at least one port"),
        (SERVICE.replace("protocol: http", "protocol: quic"), "spec.ports[0].protocol", "unknown variant `quic`"),
        (WORKLOAD.replace("10.0.0.2\n", "10.0.0.x\n"), "spec.address", "invalid IP address"),
        (WORKLOAD.replace("serviceAccount: echo", "serviceAccount: Echo"), "spec.serviceAccount", "not a valid name"),
        (MESH.replace("name: default", "name: prod"), "metadata.name", "named \"default\""),
        (MESH.replace("name: default", "name: default, namespace: x"), "metadata.namespace", "cluster-scoped"),
        (MESH.replace("corp.example", "Corp Example"), "spec.trustDomain", "not a valid trust domain"),
        (MESH.replace("trustDomain: corp.example", "mtls: { mode: loose }"), "spec.mtls.mode", "unknown variant `loose`"),
        (MESH.replace("trustDomain: corp.example", "dns: { domain: 'Mesh Local' }"), "spec.dns.domain", "not a valid DNS domain"),
        (MESH.replace("trustDomain: corp.example", "dns: { vipRange: 240.240.0.1/16 }"), "spec.dns.vipRange", "did you mean 240.240.0.0/16"),
        (MESH.replace("trustDomain: corp.example", "dns: { vipRange: 240.240.0.0/31 }"), "spec.dns.vipRange", "too small"),
        (MESH.replace("trustDomain: corp.example", "dns: { vipRange: 127.0.0.0/8 }"), "spec.dns.vipRange", "overlaps loopback"),
        (SERVICE.replace("weft.dev/v1alpha1", "weft.dev/v1"), "apiVersion", "not served for Service"),
        (SERVICE.replace("kind: Service", "kind: Serviec"), "kind", "unknown kind"),
        (SERVICE.replace("name: echo,", "name: Echo_1,"), "metadata.name", "not a valid name"),
        (TCP_ROUTE.replace("rules: [{", "rules: [{ backendRefs: [{ name: db, port: 1 }] }, {"), "spec.rules", "exactly one rule"),
        (
            GRPC_ROUTE.replace("{ service: helloworld.Greeter, method: SayHello }", "{ type: Exact }"),
            "spec.rules[0].matches[0].method",
            "give service, method or both",
        ),
        (
            GRPC_ROUTE.replace("method: SayHello", "method: Say/Hello"),
            "spec.rules[0].matches[0].method.method",
            "not a gRPC method name",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn an_absurd_route_timeout_is_refused_with_its_field_path_and_the_maximum() {
    let route = |rule: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: r }}\nspec:\n  parentRefs: [{{ name: echo }}]\n  rules:\n    - {rule}\n"
        )
    };
    assert_eq!(
        errors(&route(
            "{ backendRefs: [{ name: echo }], timeouts: { request: 99999h, backendRequest: 25h }, retry: { backoff: 30h } }"
        )),
        [
            "spec.rules[0].timeouts.request: 99999h is longer than the maximum, 24h",
            "spec.rules[0].timeouts.backendRequest: 25h is longer than the maximum, 24h",
            "spec.rules[0].retry.backoff: 30h is longer than the maximum, 24h",
        ]
    );
    // More digits than Gateway API durations allow is refused before the bound.
    let errs = errors(&route(
        "{ backendRefs: [{ name: echo }], timeouts: { request: 100000000h } }",
    ));
    assert!(
        errs.len() == 1 && errs[0].starts_with("spec.rules[0].timeouts.request: \"100000000h\""),
        "{errs:?}"
    );
}

#[test]
fn collects_every_error_in_one_pass() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: BAD }\nspec:\n  parentRefs: [{ name: echo, sectionName: http }]\n  rules: [{ backendRefs: [{ name: echo, weight: -5 }, { name: Nope }] }]\n";
    let paths: Vec<String> = errors(yaml)
        .into_iter()
        .map(|e| e.split(": ").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "metadata.name",
            "spec.parentRefs[0].sectionName",
            "spec.rules[0].backendRefs[0].weight",
            "spec.rules[0].backendRefs[1].name",
        ]
    );
}

#[test]
fn mesh_spec_may_be_omitted() {
    assert_eq!(
        errors("apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n"),
        Vec::<String>::new()
    );
}

// === compile: services ===

#[test]
fn selector_picks_healthy_and_disconnected_workloads_of_its_namespace() {
    let mut input = vec![object(SERVICE)];
    input.push(workload(
        "b",
        "shop",
        "10.0.0.9",
        "{ app: echo }",
        "Healthy",
    ));
    input.push(workload(
        "a",
        "shop",
        "10.0.0.3",
        "{ app: echo, v: '2' }",
        "Disconnected",
    ));
    input.push(workload(
        "sick",
        "shop",
        "10.0.0.4",
        "{ app: echo }",
        "Unhealthy",
    ));
    input.push(workload(
        "other-app",
        "shop",
        "10.0.0.5",
        "{ app: web }",
        "Healthy",
    ));
    input.push(workload(
        "other-ns",
        "prod",
        "10.0.0.6",
        "{ app: echo }",
        "Healthy",
    ));
    let mut unobserved = workload("new", "shop", "10.0.0.7", "{ app: echo }", "Healthy");
    unobserved.status = None;
    input.push(unobserved);

    let compiled = compile(&input);
    let svc = &compiled.services["echo.shop"];
    let addresses: Vec<&str> = svc.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["10.0.0.3", "10.0.0.9"]);
    assert_eq!(svc.endpoints[0].workload, "shop/a");
    assert_eq!(
        svc.endpoints[0].hbone, "",
        "default HBONE address stays implicit"
    );
    assert_eq!(svc.vip, "10.96.0.10");
    assert_eq!(
        svc.load_balancer,
        pb::LoadBalancer::PeakEwma as i32,
        "without a BackendPolicy"
    );
    assert_eq!(svc.ports[0].target_port, 8080);
    assert_eq!(svc.ports[0].protocol, pb::Protocol::Http as i32);
    assert_eq!(
        compiled.statuses[&key(Kind::Service, "shop", "echo")],
        json!({ "endpoints": 2, "vip": "10.96.0.10", "exportTo": ["*"] })
    );
}

// === compile: exportTo ===

#[test]
fn export_to_defaults_to_the_mesh_default_which_defaults_to_every_namespace() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("no Mesh, no exportTo", "", &["*"]),
        ("Mesh default only", "defaultExportTo: [\".\"]", &["shop"]),
        (
            "Mesh default naming another namespace",
            "defaultExportTo: [\".\", monitoring]",
            &["monitoring", "shop"],
        ),
    ];
    for (case, mesh_spec, want) in cases {
        let mut objects = vec![object(SERVICE)];
        if !mesh_spec.is_empty() {
            objects.push(object(&format!(
                "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{ name: default }}\nspec: {{ {mesh_spec} }}\n"
            )));
        }
        let compiled = compile(&objects);
        let want: Vec<String> = want.iter().map(|n| (*n).to_owned()).collect();
        assert_eq!(compiled.exports["echo.shop"].to_list(), want, "{case}");
        assert_eq!(
            compiled.statuses[&key(Kind::Service, "shop", "echo")]["exportTo"],
            json!(want),
            "{case}: the status shows the effective exportTo"
        );
    }
}

#[test]
fn a_services_export_to_overrides_the_mesh_default() {
    let mesh = object(
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n\
         spec: { defaultExportTo: [\".\"] }\n",
    );
    let cases: &[(&str, &[&str])] = &[
        ("[\"*\"]", &["*"]),
        ("[team-b]", &["shop", "team-b"]),
        ("[\".\", team-b]", &["shop", "team-b"]),
    ];
    for (export_to, want) in cases {
        let service = format!("{SERVICE}  exportTo: {export_to}\n");
        let compiled = compile(&[mesh.clone(), object(&service)]);
        let want: Vec<String> = want.iter().map(|n| (*n).to_owned()).collect();
        assert_eq!(compiled.exports["echo.shop"].to_list(), want, "{export_to}");
    }
}

#[test]
fn an_invalid_export_to_is_refused_with_its_field_path() {
    let service = format!("{SERVICE}  exportTo: [\"*\", Team_B]\n");
    let errors = validate(&object(&service)).expect_err("invalid").0;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["spec.exportTo[0]", "spec.exportTo[1]"],
        "{errors:?}"
    );
    assert!(
        errors[1].message.contains("\"Team_B\" is not a namespace"),
        "{errors:?}"
    );

    let mesh = object(
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n\
         spec: { defaultExportTo: [] }\n",
    );
    let errors = validate(&mesh).expect_err("invalid").0;
    assert_eq!(errors[0].path, "spec.defaultExportTo", "{errors:?}");
    assert!(errors[0].message.contains("is empty"), "{errors:?}");
}

// === compile: VIPs and names ===

#[test]
fn a_service_without_a_vip_gets_one_from_the_mesh_range_and_keeps_it_through_its_status() {
    let no_vip = SERVICE.replace("  vip: 10.96.0.10\n", "");
    let compiled = compile(&[object(&no_vip)]);
    let svc = &compiled.services["echo.shop"];
    let vip: std::net::IpAddr = svc.vip.parse().expect("allocated");
    assert!(
        "240.240.0.0/16"
            .parse::<weft_api::cidr::Cidr>()
            .expect("range")
            .contains(vip),
        "{vip} is in the default range"
    );
    let status = &compiled.statuses[&key(Kind::Service, "shop", "echo")];
    assert_eq!(
        status["vip"], svc.vip,
        "the allocation is written to the status"
    );
    assert_eq!(svc.hostnames, ["echo.shop.svc.cluster.local"]);

    // The stored status is what the next compile (after a restart) keeps, even where
    // the hash would have picked another address.
    let mut stored = object(&no_vip);
    stored.status = Some(json!({ "endpoints": 0, "vip": "240.240.9.9" }));
    let again = compile(&[stored]);
    assert_eq!(again.services["echo.shop"].vip, "240.240.9.9");
}

#[test]
fn the_mesh_sets_the_dns_domain_and_the_vip_range() {
    let mesh = object(
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n\
         spec: { dns: { domain: mesh.internal, vipRange: 198.18.0.0/24 } }\n",
    );
    let no_vip = SERVICE.replace("  vip: 10.96.0.10\n", "");
    let mut stored = object(&no_vip);
    stored.status = Some(json!({ "vip": "240.240.9.9" }));
    let compiled = compile(&[mesh, stored]);
    let svc = &compiled.services["echo.shop"];
    assert!(
        svc.vip.starts_with("198.18.0."),
        "moved into the new range: {}",
        svc.vip
    );
    assert_eq!(svc.hostnames, ["echo.shop.svc.mesh.internal"]);
}

#[test]
fn a_vip_two_services_claim_goes_to_the_older_and_the_other_is_told() {
    let first = SERVICE.replace(
        "metadata: { name: echo, namespace: shop }",
        "metadata: { name: echo, namespace: shop, creationTimestamp: '2026-01-01T00:00:00Z' }",
    );
    let second = SERVICE.replace(
        "metadata: { name: echo, namespace: shop }",
        "metadata: { name: aaa, namespace: shop, creationTimestamp: '2026-02-01T00:00:00Z' }",
    );
    let compiled = compile(&[object(&first), object(&second)]);
    assert_eq!(compiled.services["echo.shop"].vip, "10.96.0.10");
    assert_eq!(
        compiled.services["aaa.shop"].vip, "",
        "no duplicate reaches a proxy"
    );
    let status = &compiled.statuses[&key(Kind::Service, "shop", "aaa")];
    assert_eq!(status["conditions"][0]["type"], "VipAllocated");
    assert_eq!(status["conditions"][0]["status"], "False");
    let message = status["conditions"][0]["message"]
        .as_str()
        .expect("message");
    assert!(message.contains("shop/echo"), "{message}");
}

#[test]
fn empty_selector_selects_nothing() {
    let svc = SERVICE.replace("  selector: { app: echo }\n", "");
    let compiled = compile(&[object(&svc), healthy(object(WORKLOAD))]);
    assert!(compiled.services["echo.shop"].endpoints.is_empty());
}

#[test]
fn a_workload_of_a_service_account_the_service_does_not_allow_is_not_an_endpoint() {
    let svc = SERVICE.replace(
        "  vip: 10.96.0.10\n",
        "  vip: 10.96.0.10\n  serviceAccounts: [echo]\n",
    );
    // Same labels, another identity: it copied the selector.
    let intruder = WORKLOAD
        .replace("name: echo-1", "name: intruder")
        .replace("serviceAccount: echo", "serviceAccount: attacker")
        .replace("10.0.0.2", "10.0.0.66");
    let compiled = compile(&[
        object(&svc),
        healthy(object(WORKLOAD)),
        healthy(object(&intruder)),
    ]);
    let endpoints: Vec<&str> = compiled.services["echo.shop"]
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect();
    assert_eq!(endpoints, ["10.0.0.2"]);
    let status = &compiled.statuses[&key(Kind::Service, "shop", "echo")];
    assert_eq!(status["endpoints"], 1);
    assert_eq!(status["conditions"][0]["type"], "EndpointsAllowed");
    assert_eq!(status["conditions"][0]["status"], "False");
    let message = status["conditions"][0]["message"]
        .as_str()
        .expect("message");
    assert!(message.contains("shop/intruder (attacker)"), "{message}");
    // Without the field, any service account serves (the default).
    let open = compile(&[
        object(SERVICE),
        healthy(object(WORKLOAD)),
        healthy(object(&intruder)),
    ]);
    assert_eq!(open.services["echo.shop"].endpoints.len(), 2);
    assert!(open.statuses[&key(Kind::Service, "shop", "echo")]
        .get("conditions")
        .is_none());
}

#[test]
fn service_accounts_of_a_service_are_labels_listed_once() {
    let svc = SERVICE.replace(
        "  vip: 10.96.0.10\n",
        "  serviceAccounts: [echo, Bad_Name, echo]\n",
    );
    let errors = errors(&svc);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("spec.serviceAccounts[1]"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("spec.serviceAccounts[2]: service account \"echo\" is listed twice"),
        "{errors:?}"
    );
}

#[test]
fn endpoint_identity_uses_the_mesh_trust_domain() {
    let input = [object(MESH), object(SERVICE), healthy(object(WORKLOAD))];
    let ep = &compile(&input).services["echo.shop"].endpoints[0];
    assert_eq!(ep.identity, "spiffe://corp.example/ns/shop/sa/echo");
    assert_eq!(ep.hbone, "10.0.0.2:15009");
    assert_eq!(ep.zone, "eu-west-1a");

    let without_mesh = [object(SERVICE), healthy(object(WORKLOAD))];
    let ep = &compile(&without_mesh).services["echo.shop"].endpoints[0];
    assert_eq!(ep.identity, "spiffe://cluster.local/ns/shop/sa/echo");
}

// === compile: inbound policies ===

fn port_modes(p: &pb::InboundPolicy) -> Vec<(u32, pb::MtlsMode)> {
    p.ports
        .iter()
        .map(|e| (e.port, pb::MtlsMode::try_from(e.mtls).expect("known mode")))
        .collect()
}

#[test]
fn every_workload_gets_an_inbound_policy_with_the_mesh_mode_strict_by_default() {
    let input = [object(SERVICE), healthy(object(WORKLOAD))];
    let compiled = compile(&input);
    let policy = &compiled.inbound_policies["echo-1.shop"];
    assert_eq!(policy.workload, "shop/echo-1");
    assert_eq!(policy.mtls, pb::MtlsMode::Strict as i32);
    assert!(policy.ports.is_empty());

    let permissive = object(
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec: { mtls: { mode: permissive } }\n",
    );
    let compiled = compile(&[permissive, object(SERVICE), healthy(object(WORKLOAD))]);
    assert_eq!(
        compiled.inbound_policies["echo-1.shop"].mtls,
        pb::MtlsMode::Permissive as i32
    );
}

#[test]
fn a_service_port_mode_applies_to_its_target_port_and_strict_wins_a_conflict() {
    let permissive_port =
        SERVICE.replace("protocol: http }]", "protocol: http, mtls: permissive }]");
    let strict_port = SERVICE
        .replace(
            "name: echo, namespace: shop",
            "name: echo-strict, namespace: shop",
        )
        .replace("protocol: http }]", "protocol: http, mtls: strict }]")
        .replace("  vip: 10.96.0.10\n", "");
    let other_namespace = permissive_port.replace("namespace: shop", "namespace: other");
    let compiled = compile(&[object(&permissive_port), healthy(object(WORKLOAD))]);
    assert_eq!(
        port_modes(&compiled.inbound_policies["echo-1.shop"]),
        [(8080, pb::MtlsMode::Permissive)],
        "targetPort 8080, not the service port 80"
    );
    let compiled = compile(&[
        object(&permissive_port),
        object(&strict_port),
        object(&other_namespace),
        healthy(object(WORKLOAD)),
    ]);
    assert_eq!(
        port_modes(&compiled.inbound_policies["echo-1.shop"]),
        [],
        "strict wins, and strict is the mesh mode: no override left"
    );
    let compiled = compile(&[object(&other_namespace), healthy(object(WORKLOAD))]);
    assert_eq!(port_modes(&compiled.inbound_policies["echo-1.shop"]), []);
}

// === compile: routes ===

fn svc(name: &str, ports: &str) -> Object {
    object(&format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name} }}\nspec: {{ selector: {{ app: {name} }}, ports: {ports} }}\n"
    ))
}

fn http_route(name: &str, created: &str, spec: &str) -> Object {
    let mut o = object(&format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: {name}, generation: 3 }}\nspec:\n{spec}"
    ));
    o.metadata.creation_timestamp = Some(created.to_owned());
    o
}

fn paths(rules: &[pb::RouteRule]) -> Vec<String> {
    rules
        .iter()
        .map(|r| {
            match r
                .matches
                .first()
                .and_then(|m| m.path.as_ref())
                .and_then(|p| p.kind.as_ref())
            {
                Some(pb::path_match::Kind::Exact(p)) => format!("={p}"),
                Some(pb::path_match::Kind::Prefix(p)) => format!("{p}*"),
                Some(pb::path_match::Kind::Regex(p)) => format!("~{p}"),
                None => "*".to_owned(),
            }
        })
        .collect()
}

#[test]
fn splits_traffic_by_weight() {
    let input = [
        svc("web", "[{ port: 80 }]"),
        svc("web-v2", "[{ port: 80 }]"),
        http_route(
            "split",
            "2024-01-01T00:00:00Z",
            "  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: web, weight: 50 }, { name: web-v2, weight: 50 }] }]\n",
        ),
    ];
    let compiled = compile(&input);
    let table = &compiled.route_tables["web.default"];
    assert_eq!(table.service, "web.default");
    assert_eq!(table.routes.len(), 1);
    let route = &table.routes[0];
    assert_eq!(route.port, None);
    assert_eq!(route.source, "HTTPRoute/default/split");
    let backends: Vec<(&str, u32)> = route.rules[0]
        .backends
        .iter()
        .map(|b| (b.service.as_str(), b.weight))
        .collect();
    assert_eq!(backends, [("web.default", 50), ("web-v2.default", 50)]);
    assert!(
        route.rules[0].matches.is_empty(),
        "no matches is a catch-all"
    );
    let status = &compiled.statuses[&key(Kind::HttpRoute, "default", "split")];
    assert_eq!(status["parents"][0]["conditions"][0]["status"], "True");
    assert_eq!(status["parents"][0]["conditions"][1]["status"], "True");
    assert_eq!(
        status["parents"][0]["conditions"][1]["observedGeneration"],
        3
    );
    assert_eq!(
        status["parents"][0]["controllerName"],
        "weft.dev/control-plane"
    );
}

#[test]
fn orders_rules_by_precedence_across_routes() {
    let older = http_route(
        "older",
        "2024-01-01T00:00:00Z",
        "  parentRefs: [{ name: web }]\n  rules:\n    - matches: [{ path: { value: /api } }, { path: { type: Exact, value: /api/login } }]\n      backendRefs: [{ name: web }]\n    - backendRefs: [{ name: web }]\n",
    );
    let newer = http_route(
        "newer",
        "2024-06-01T00:00:00Z",
        "  parentRefs: [{ name: web }]\n  rules:\n    - matches: [{ path: { value: /api/v2 } }, { path: { value: /api }, method: POST }, { path: { value: /api }, headers: [{ name: x, value: 'v' }] }]\n      backendRefs: [{ name: web }]\n    - matches: [{ path: { value: /api } }]\n      backendRefs: [{ name: web }]\n",
    );
    let compiled = compile(&[svc("web", "[{ port: 80 }]"), newer, older]);
    let table = &compiled.route_tables["web.default"];
    let rules: Vec<pb::RouteRule> = table.routes.iter().flat_map(|r| r.rules.clone()).collect();
    assert_eq!(
        paths(&rules),
        [
            "=/api/login",
            "/api/v2*",
            "/api*",
            "/api*",
            "/api*",
            "/api*",
            "*"
        ]
    );
    // Among the four equal `/api` prefixes: method first, then headers, then age.
    assert_eq!(rules[2].matches[0].method, "POST");
    assert_eq!(rules[3].matches[0].headers.len(), 1);
    let sources: Vec<&str> = table.routes.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "HTTPRoute/default/older",
            "HTTPRoute/default/newer",
            "HTTPRoute/default/older",
            "HTTPRoute/default/newer",
            "HTTPRoute/default/older",
        ]
    );
}

#[test]
fn header_modifier_filters_compile_to_lowercase_edits_on_the_rule() {
    let route = HTTP_ROUTE.replace(
        "      timeouts: { request: 10s, backendRequest: 500ms }\n",
        "      filters:\n\
         \x20       - type: RequestHeaderModifier\n\
         \x20         requestHeaderModifier: { set: [{ name: X-Env, value: prod }], remove: [X-Debug] }\n\
         \x20       - type: ResponseHeaderModifier\n\
         \x20         responseHeaderModifier: { add: [{ name: x-served-by, value: weft }] }\n",
    );
    let compiled = compile(&[object(SERVICE), object(&route)]);
    let rule = &compiled.route_tables["echo.shop"].routes[0].rules[0];
    let request = rule.request_headers.as_ref().expect("request edits");
    assert_eq!(request.set[0].name, "x-env");
    assert_eq!(request.set[0].value, "prod");
    assert_eq!(request.remove, ["x-debug"]);
    let response = rule.response_headers.as_ref().expect("response edits");
    assert_eq!(response.add[0].name, "x-served-by");
}

#[test]
fn retry_sections_compile_with_defaults_for_what_they_leave_out() {
    let route = HTTP_ROUTE.replace(
        "      timeouts: { request: 10s, backendRequest: 500ms }\n",
        "      retry: { codes: [503], backoff: 50ms }\n",
    );
    let compiled = compile(&[object(SERVICE), object(&route)]);
    let rule = &compiled.route_tables["echo.shop"].routes[0].rules[0];
    let retry = rule.retry.as_ref().expect("retry");
    assert_eq!(retry.attempts, 2, "the default number of retries");
    assert_eq!(retry.codes, [503]);
    assert_eq!(
        retry.backoff,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 50_000_000
        })
    );
    assert!(!retry.non_idempotent);
}

#[test]
fn compiles_matches_hostnames_and_timeouts() {
    let compiled = compile(&[object(SERVICE), object(HTTP_ROUTE)]);
    let route = &compiled.route_tables["echo.shop"].routes[0];
    assert_eq!(route.port, Some(80));
    assert_eq!(route.rules.len(), 2, "one rule per hostname");
    let exact = &route.rules[0].matches[0];
    assert_eq!(
        exact.authority.as_ref().and_then(|a| a.kind.clone()),
        Some(pb::string_match::Kind::Exact("echo.example.com".into()))
    );
    let wildcard = route.rules[1].matches[0]
        .authority
        .as_ref()
        .and_then(|a| a.kind.clone());
    let Some(pb::string_match::Kind::Regex(re)) = wildcard else {
        panic!("wildcard hostname must compile to a regex: {wildcard:?}");
    };
    let re = regex::Regex::new(&format!("^(?:{re})$")).expect("valid regex");
    assert!(re.is_match("a.echo.example.com") && re.is_match("A.b.echo.example.com"));
    assert!(!re.is_match("echo.example.com") && !re.is_match("a.echo.example.com.evil"));
    assert_eq!(exact.method, "GET");
    assert_eq!(exact.headers[0].name, "x-canary");
    assert_eq!(
        exact.query[0].value.as_ref().and_then(|v| v.kind.clone()),
        Some(pb::string_match::Kind::Regex("[0-9]+".into()))
    );
    // request 10s for the whole request, backendRequest 500ms for each attempt.
    assert_eq!(
        route.rules[0].timeout,
        Some(prost_types::Duration {
            seconds: 10,
            nanos: 0
        })
    );
    assert_eq!(
        route.rules[0].per_try_timeout,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 500_000_000
        })
    );
    assert_eq!(
        route.rules[0].retry, None,
        "no retry section: the proxy's default"
    );
    let backends = &route.rules[0].backends;
    assert_eq!((backends[0].port, backends[1].port), (Some(80), None));
}

#[test]
fn unresolved_references_become_false_conditions() {
    let route = http_route(
        "r",
        "2024-01-01T00:00:00Z",
        "  parentRefs: [{ name: web }, { name: missing }, { name: web, port: 81 }]\n  rules:\n    - matches: [{ path: { value: /a } }]\n      backendRefs: [{ name: gone }]\n    - backendRefs: [{ name: web, weight: 3 }, { name: web, port: 9 }]\n",
    );
    let compiled = compile(&[svc("web", "[{ port: 80 }]"), route]);
    let status = &compiled.statuses[&key(Kind::HttpRoute, "default", "r")];
    let parents = status["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 3);
    assert_eq!(parents[0]["conditions"][0]["status"], "True");
    assert_eq!(parents[0]["conditions"][1]["status"], "False");
    assert_eq!(parents[0]["conditions"][1]["reason"], "BackendNotFound");
    let message = parents[0]["conditions"][1]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("backend Service default/gone not found"),
        "{message}"
    );
    assert!(message.contains("has no port 9"), "{message}");
    for (i, why) in [(1, "default/missing not found"), (2, "has no port 81")] {
        let accepted = &parents[i]["conditions"][0];
        assert_eq!(accepted["status"], "False");
        assert_eq!(accepted["reason"], "NoMatchingParent");
        assert!(
            accepted["message"]
                .as_str()
                .is_some_and(|m| m.contains(why)),
            "{accepted}"
        );
    }
    // The rule whose backends are all missing still compiles (the proxy answers 503)
    // instead of letting `/a` fall through to the catch-all.
    let rules = &compiled.route_tables["web.default"].routes[0].rules;
    assert_eq!(paths(rules), ["/a*", "*"]);
    assert!(rules[0].backends.is_empty());
    assert_eq!(rules[1].backends.len(), 1);
    assert_eq!(rules[1].backends[0].weight, 3);
}

#[test]
fn port_scoped_routes_get_a_table_per_port() {
    let all = http_route(
        "all",
        "2024-01-01T00:00:00Z",
        "  parentRefs: [{ name: web }]\n  rules: [{ backendRefs: [{ name: web }] }]\n",
    );
    let admin = http_route(
        "admin",
        "2024-01-01T00:00:00Z",
        "  parentRefs: [{ name: web, port: 8443 }]\n  rules: [{ matches: [{ path: { value: /admin } }], backendRefs: [{ name: web }] }]\n",
    );
    let compiled = compile(&[svc("web", "[{ port: 80 }, { port: 8443 }]"), all, admin]);
    let summary: Vec<(Option<u32>, &str, usize)> = compiled.route_tables["web.default"]
        .routes
        .iter()
        .map(|r| (r.port, r.source.as_str(), r.rules.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(80), "HTTPRoute/default/all", 1),
            (Some(8443), "HTTPRoute/default/admin", 1),
            (Some(8443), "HTTPRoute/default/all", 1),
        ]
    );
}

#[test]
fn grpc_method_matches_become_paths() {
    let route = object(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: { name: g }\nspec:\n  parentRefs: [{ name: grpc }]\n  rules:\n    - matches:\n        - method: { service: helloworld.Greeter, method: SayHello }\n        - method: { service: helloworld.Greeter }\n        - method: { method: SayHello }\n        - method: { type: RegularExpression, service: 'helloworld\\..*' }\n      backendRefs: [{ name: grpc }]\n",
    );
    let compiled = compile(&[svc("grpc", "[{ port: 9000, protocol: grpc }]"), route]);
    let rules = &compiled.route_tables["grpc.default"].routes[0].rules;
    assert_eq!(
        paths(rules),
        [
            "=/helloworld.Greeter/SayHello",
            "~/(?:helloworld\\..*)/(?:[^/]+)",
            "~/[^/]+/SayHello",
            "/helloworld.Greeter/*",
        ]
    );
}

#[test]
fn tcp_routes_forward_to_weighted_backends() {
    let input = [
        svc("db", "[{ port: 5432, protocol: tcp }]"),
        object(&TCP_ROUTE.replace(
            "backendRefs: [{ name: db, port: 5432 }]",
            "backendRefs: [{ name: db, port: 5432, weight: 9 }]",
        )),
    ];
    let compiled = compile(&input);
    let route = &compiled.route_tables["db.default"].routes[0];
    assert_eq!(route.port, Some(5432));
    assert_eq!(route.source, "TCPRoute/default/db");
    assert!(route.rules[0].matches.is_empty());
    assert_eq!(route.rules[0].backends[0].service, "db.default");
    assert_eq!(route.rules[0].backends[0].weight, 9);
}

#[test]
fn invalid_stored_objects_compile_to_nothing_and_say_why() {
    let mut bad = object(SERVICE);
    bad.spec["ports"] = json!([]);
    let compiled = compile(&[bad]);
    assert!(compiled.services.is_empty());
    let status = &compiled.statuses[&key(Kind::Service, "shop", "echo")];
    assert_eq!(status["conditions"][0]["reason"], "Invalid");
}

#[test]
fn compiling_twice_or_reordered_gives_identical_output() {
    let mut input = objects(&format!(
        "{MESH}---\n{SERVICE}---\n{HTTP_ROUTE}---\n{GRPC_ROUTE}---\n{TCP_ROUTE}"
    ));
    input.push(healthy(object(WORKLOAD)));
    input.push(workload(
        "w2",
        "shop",
        "10.0.0.1",
        "{ app: echo }",
        "Healthy",
    ));
    let first = compile(&input);
    assert_eq!(first, compile(&input));
    input.reverse();
    let reordered = compile(&input);
    assert_eq!(first, reordered);
    let encode = |c: &super::Compiled| -> Vec<Vec<u8>> {
        c.services
            .values()
            .map(prost::Message::encode_to_vec)
            .chain(c.route_tables.values().map(prost::Message::encode_to_vec))
            .collect()
    };
    assert_eq!(encode(&first), encode(&reordered));
    assert_eq!(
        serde_json::to_string(&first.statuses.values().collect::<Vec<_>>()).ok(),
        serde_json::to_string(&reordered.statuses.values().collect::<Vec<_>>()).ok()
    );
}

#[test]
fn grpc_route_retries_compile_to_grpc_status_codes_and_unknown_names_are_refused() {
    let route = GRPC_ROUTE.replace(
        "      backendRefs: [{ name: echo }]\n",
        "      backendRefs: [{ name: echo }]\n      retry: { codes: [unavailable, RESOURCE_EXHAUSTED], attempts: 3 }\n",
    );
    assert_eq!(errors(&route), Vec::<String>::new());
    let compiled = compile(&[
        object(SERVICE),
        object(&route.replace("name: greeter }", "name: greeter, namespace: shop }")),
    ]);
    let retry = compiled.route_tables["echo.shop"].routes[0].rules[0]
        .retry
        .clone()
        .expect("retry");
    assert_eq!((retry.attempts, retry.grpc_codes), (3, vec![14, 8]));
    let bad = errors(&route.replace("unavailable", "flaky"));
    assert!(
        bad.iter()
            .any(|e| e.starts_with("spec.rules[0].retry.codes[0]: ")
                && e.contains("not a gRPC status code name")),
        "{bad:?}"
    );
}

#[test]
fn a_rule_an_older_route_shadows_is_reported_as_conflicted() {
    let spec = |extra: &str| {
        format!(
            "  parentRefs: [{{ name: web }}]\n  rules:\n    - matches: [{{ path: {{ type: PathPrefix, value: /api }} }}]\n      backendRefs: [{{ name: web, port: 80 }}]\n{extra}"
        )
    };
    let older = http_route("older", "2026-01-01T00:00:00Z", &spec(""));
    // Its first rule repeats the older route's match; its second has one match of its
    // own too, so it still applies.
    let newer = http_route(
        "newer",
        "2026-01-02T00:00:00Z",
        &spec("    - matches: [{ path: { type: PathPrefix, value: /api } }, { path: { type: Exact, value: /new } }]\n      backendRefs: [{ name: web, port: 80 }]\n"),
    );
    let compiled = compile(&[svc("web", "[{ port: 80 }]"), older, newer]);
    let conditions = |name: &str| {
        compiled.statuses[&key(Kind::HttpRoute, "default", name)]["parents"][0]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let conflicted: Vec<_> = conditions("newer")
        .into_iter()
        .filter(|c| c["type"] == "Conflicted")
        .collect();
    assert_eq!(conflicted.len(), 1, "{conflicted:?}");
    assert_eq!(conflicted[0]["reason"], "ShadowedRules");
    assert_eq!(
        conflicted[0]["message"],
        "rules[0] never applies: HTTPRoute default/older rules[0] matches the same requests first"
    );
    assert!(
        conditions("older")
            .iter()
            .all(|c| c["type"] != "Conflicted"),
        "the older route wins and is not told anything"
    );
}

#[test]
fn more_documents_than_the_limit_are_refused_naming_the_limit() {
    let one = "---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {}\n";
    let error = parse_documents(&one.repeat(crate::MAX_DOCUMENTS + 1)).expect_err("too many");
    assert!(error.message.contains("the limit is 10000"), "{error}");
    assert!(error.message.contains("split"), "{error}");

    let list = format!("[{}]", vec!["{}"; crate::MAX_DOCUMENTS + 1].join(","));
    let error = parse_documents(&list).expect_err("too many items");
    assert!(
        error
            .message
            .contains("10001 documents, the limit is 10000"),
        "{error}"
    );
}

#[test]
fn more_nodes_than_the_limit_are_refused_naming_the_limit() {
    let list = format!("[{}]", vec!["1"; crate::MAX_NODES + 1].join(","));
    let error = parse_documents(&list).expect_err("too many nodes");
    assert!(error.message.contains("the limit is 1000000"), "{error}");
}

#[test]
fn duplicate_keys_are_refused() {
    let error = parse_documents("kind: Service\nkind: Workload\n").expect_err("duplicate");
    assert!(
        error.message.to_lowercase().contains("duplicate"),
        "{error}"
    );
}
