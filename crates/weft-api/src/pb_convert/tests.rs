use std::collections::BTreeMap;

use super::*;

/// A mutation of a valid resource and the field path it must be rejected at.
type Case<T> = (fn(&mut T), &'static str);

fn service() -> proxy::Service {
    proxy::Service {
        name: "echo".into(),
        namespace: "shop".into(),
        vip: Some("10.96.0.10".parse().expect("ip")),
        ports: vec![
            proxy::ServicePort {
                port: 80,
                target_port: Some(8080),
                protocol: proxy::Protocol::Http,
            },
            proxy::ServicePort {
                port: 9000,
                target_port: None,
                protocol: proxy::Protocol::Grpc,
            },
        ],
        load_balancer: proxy::LoadBalancer::RoundRobin,
        endpoints: vec![
            proxy::Endpoint {
                address: "10.0.0.2".parse().expect("ip"),
                identity: Some("spiffe://cluster.local/ns/shop/sa/echo".into()),
                hbone: Some("10.0.0.2:15009".parse().expect("addr")),
                zone: Some("zone-a".into()),
                workload: Some("shop/echo-1".into()),
            },
            proxy::Endpoint {
                address: "fd00::3".parse().expect("ip"),
                identity: None,
                hbone: None,
                zone: None,
                workload: None,
            },
        ],
        hostnames: vec!["echo.shop.svc.cluster.local".into()],
        policy: proxy::BackendPolicy {
            hash_on: Some(proxy::HashOn::Header("x-user".into())),
            ..proxy::BackendPolicy::default()
        },
    }
}

fn tables() -> Vec<proxy::RouteTable> {
    let rule = proxy::RouteRule {
        matches: vec![proxy::RouteMatch {
            authority: Some(proxy::StringMatch::Regex("(?i).+\\.example\\.com".into())),
            path: Some(proxy::PathMatch::Prefix("/api".into())),
            method: Some("GET".into()),
            headers: vec![proxy::KeyValueMatch {
                name: "x-canary".into(),
                value: proxy::StringMatch::Exact("1".into()),
            }],
            query: vec![proxy::KeyValueMatch {
                name: "v".into(),
                value: proxy::StringMatch::Prefix("2".into()),
            }],
        }],
        backends: vec![
            proxy::Backend {
                service: "echo.shop".into(),
                port: Some(80),
                weight: 50,
            },
            proxy::Backend {
                service: "echo-v2.shop".into(),
                port: None,
                weight: 50,
            },
        ],
        timeout: Some(Duration::from_millis(1500)),
        per_try_timeout: Some(Duration::from_millis(500)),
        retry: Some(proxy::Retry {
            attempts: 3,
            codes: vec![502, 503],
            grpc_codes: vec![14],
            backoff: Duration::from_millis(10),
            non_idempotent: false,
        }),
        request_headers: Some(proxy::HeaderEdits {
            set: vec![("x-env".into(), "prod".into())],
            add: vec![("x-tag".into(), "a".into())],
            remove: vec!["x-debug".into()],
        }),
        response_headers: None,
        redirect: None,
        rewrite: None,
        mirrors: Vec::new(),
        source: Some("HTTPRoute/shop/echo".into()),
        rule: Some(2),
    };
    let catch_all = proxy::RouteRule {
        matches: vec![],
        backends: vec![proxy::Backend {
            service: "echo.shop".into(),
            port: None,
            weight: 1,
        }],
        timeout: None,
        per_try_timeout: None,
        retry: None,
        request_headers: None,
        response_headers: None,
        redirect: None,
        rewrite: None,
        mirrors: Vec::new(),
        source: None,
        rule: None,
    };
    vec![
        proxy::RouteTable {
            service: "echo.shop".into(),
            port: None,
            rules: vec![catch_all.clone()],
        },
        proxy::RouteTable {
            service: "echo.shop".into(),
            port: Some(80),
            rules: vec![rule, catch_all],
        },
    ]
}

#[test]
fn service_round_trips_through_the_wire_form() {
    let original = service();
    let wire = pb::Service::from(&original);
    assert_eq!(proxy::Service::try_from(&wire), Ok(original));
}

#[test]
fn route_tables_round_trip_through_the_wire_form() {
    let original = tables();
    let wire = route_table_to_pb("echo.shop", &original);
    assert_eq!(route_tables_from_pb(&wire), Ok(original));
    let back = route_table_to_pb("echo.shop", &route_tables_from_pb(&wire).expect("valid"));
    assert_eq!(back, wire);
}

#[test]
fn chunks_of_the_same_port_are_concatenated_in_order() {
    let t = tables();
    let mut wire = route_table_to_pb("echo.shop", &t[1..]);
    let mut second = wire.routes[0].clone();
    second.rules.truncate(1);
    second.source = "HTTPRoute/shop/b".into();
    wire.routes.push(second);
    wire.routes.insert(0, pb::Route::from(&t[0]));
    let got = route_tables_from_pb(&wire).expect("valid");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].port, None);
    assert_eq!(got[1].port, Some(80));
    assert_eq!(got[1].rules.len(), 3);
    assert_eq!(got[1].rules[2], t[1].rules[0]);
}

#[test]
fn names_the_endpoint_whose_address_is_not_an_ip() {
    let mut wire = pb::Service::from(&service());
    wire.endpoints.push(pb::Endpoint {
        address: "10.0.0.x".into(),
        ..pb::Endpoint::default()
    });
    let err = proxy::Service::try_from(&wire).expect_err("bad address");
    assert_eq!(
        err.to_string(),
        "endpoints[2].address: \"10.0.0.x\" is not an IP address"
    );
}

#[test]
fn rejects_malformed_service_fields_by_path() {
    let cases: Vec<Case<pb::Service>> = vec![
        (|s| s.vip = "nope".into(), "vip"),
        (|s| s.hostnames = vec!["Echo.shop".into()], "hostnames[0]"),
        (|s| s.hostnames = vec!["echo..shop".into()], "hostnames[0]"),
        (|s| s.ports[1].port = 70_000, "ports[1].port"),
        (|s| s.ports[0].target_port = 65_536, "ports[0].targetPort"),
        (|s| s.ports[0].protocol = 42, "ports[0].protocol"),
        (|s| s.load_balancer = 9, "loadBalancer"),
        (
            |s| s.endpoints[0].hbone = "10.0.0.2".into(),
            "endpoints[0].hbone",
        ),
        (
            |s| s.endpoints[0].identity = "echo".into(),
            "endpoints[0].identity",
        ),
        (
            |s| s.endpoints[1].hbone = "[fd00::3]:15008".into(),
            "endpoints[1].hbone",
        ),
        (|s| s.name.clear(), "name"),
    ];
    for (mutate, path) in cases {
        let mut wire = pb::Service::from(&service());
        mutate(&mut wire);
        let err = proxy::Service::try_from(&wire).expect_err(path);
        assert_eq!(err.path, path, "{err}");
    }
}

#[test]
fn rejects_malformed_route_fields_by_path() {
    let cases: Vec<Case<pb::RouteTable>> = vec![
        (|t| t.routes[1].port = Some(0), "routes[1].port"),
        (
            |t| t.routes[1].rules[0].matches[0].path = Some(pb::PathMatch { kind: None }),
            "routes[1].rules[0].matches[0].path",
        ),
        (
            |t| t.routes[1].rules[0].matches[0].headers[0].value = None,
            "routes[1].rules[0].matches[0].headers[0].value",
        ),
        (
            |t| t.routes[1].rules[0].backends[1].service.clear(),
            "routes[1].rules[0].backends[1].service",
        ),
        (
            |t| {
                t.routes[1].rules[0].timeout = Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                });
            },
            "routes[1].rules[0].timeout",
        ),
        (|t| t.service.clear(), "service"),
    ];
    for (mutate, path) in cases {
        let mut wire = route_table_to_pb("echo.shop", &tables());
        mutate(&mut wire);
        let err = route_tables_from_pb(&wire).expect_err(path);
        assert_eq!(err.path, path, "{err}");
    }
}

#[test]
fn inbound_policy_round_trips_and_refuses_unknown_modes_by_path() {
    let policy = proxy::InboundPolicy {
        mtls: proxy::MtlsMode::Strict,
        ports: BTreeMap::from([(8080, proxy::MtlsMode::Permissive)]),
        rate_limits: Vec::new(),
        faults: Vec::new(),
        authorization: proxy::Authorization::default(),
        path_normalization: proxy::PathNormalization::Base,
        telemetry: proxy::Telemetry {
            tracing: Some(proxy::Tracing {
                endpoint: "http://127.0.0.1:4317".into(),
                sampling: 12.5,
                timeout: std::time::Duration::from_secs(3),
            }),
            access_log: Some(proxy::AccessLog {
                format: proxy::AccessLogFormat::Text,
                template: Some("{method} {path} {status}".into()),
                path: Some("/var/log/weft/access.log".into()),
                max_bytes: 1 << 20,
                max_files: 3,
            }),
            metrics: proxy::MetricsOptions { enabled: false },
        },
    };
    let wire = pb::InboundPolicy::from(&policy);
    assert_eq!(proxy::InboundPolicy::try_from(&wire), Ok(policy));
    let mut bad = wire.clone();
    bad.ports[0].mtls = 7;
    assert_eq!(
        proxy::InboundPolicy::try_from(&bad)
            .expect_err("unknown mode")
            .to_string(),
        "ports[0].mtls: unknown mTLS mode 7 (a newer control plane?)"
    );
    let mut twice = wire;
    twice.ports.push(twice.ports[0]);
    assert!(proxy::InboundPolicy::try_from(&twice)
        .expect_err("duplicate port")
        .to_string()
        .starts_with("ports[1].port: port 8080 is listed twice"));
}

fn authorization() -> proxy::Authorization {
    serde_saphyr::from_str(
        r#"
defaultAction: deny
ports: { 9090: audit }
rules:
  - action: deny
    ports: [8080]
    from: [{ identity: "spiffe://cluster.local/ns/shop/*" }, { unauthenticated: true }]
    to:
      - paths: [{ type: PathPrefix, value: /admin, ignoreCase: true }, { type: Glob, value: "/a/*/b" }]
        methods: [POST]
        hosts: ["*.example.com"]
        headers: [{ name: x-role, value: { exact: guest } }]
        grpc: [{ service: shop.v1.Catalog, method: Delete }, { method: Get }]
    source: TrafficPermission/shop/no-admin
    rule: 2
  - from: [{ identity: "*" }]
"#,
    )
    .expect("yaml")
}

#[test]
fn authorization_round_trips_and_is_absent_when_default() {
    let a = authorization();
    let policy = proxy::InboundPolicy {
        authorization: a.clone(),
        ..proxy::InboundPolicy::default()
    };
    let wire = pb::InboundPolicy::from(&policy);
    assert!(wire.authorization.is_some());
    assert_eq!(
        proxy::InboundPolicy::try_from(&wire)
            .expect("valid")
            .authorization,
        a
    );
    let open = pb::InboundPolicy::from(&proxy::InboundPolicy::default());
    assert_eq!(open.authorization, None);
}

#[test]
fn authorization_from_a_newer_control_plane_is_refused_by_path() {
    type Mutation = fn(&mut pb::Authorization);
    let cases: Vec<(Mutation, &str)> = vec![
        (|a| a.default_action = 9, "authorization.defaultAction"),
        (|a| a.rules[0].action = 9, "authorization.rules[0].action"),
        (|a| a.ports[0].action = 9, "authorization.ports[0].action"),
        (
            |a| a.rules[0].from[0].kind = None,
            "authorization.rules[0].from[0]",
        ),
        (
            |a| a.rules[0].to[0].paths[0].kind = None,
            "authorization.rules[0].to[0].paths[0]",
        ),
        (
            |a| {
                a.rules[0].to[0].paths[0].kind =
                    Some(pb::path_pattern::Kind::Exact("admin".into()));
            },
            "authorization.rules[0].to[0].paths[0]",
        ),
        (
            |a| a.rules[0].ports[0] = 70_000,
            "authorization.rules[0].ports[0]",
        ),
    ];
    for (mutate, path) in cases {
        let mut wire = pb::InboundPolicy::from(&proxy::InboundPolicy {
            authorization: authorization(),
            ..proxy::InboundPolicy::default()
        });
        mutate(wire.authorization.as_mut().expect("set"));
        let err = proxy::InboundPolicy::try_from(&wire).expect_err(path);
        assert_eq!(err.path, path, "{err}");
    }
}
