use crate::proxy::{Config, Error};

const BASE: &str = r"
workload: { name: client, address: 10.0.0.1 }
listeners: { hbone: null }
outbound:
  - { listen: 127.0.0.1:18080, service: echo, port: 80 }
services:
  - name: echo
    ports: [{ port: 80, targetPort: 8080, protocol: http }]
    endpoints: [{ address: 10.0.0.2, identity: spiffe://cluster.local/ns/default/sa/echo }]
  - name: echo-v2
    ports: [{ port: 80 }]
";

fn errors_of(extra: &str) -> Vec<String> {
    match Config::from_yaml(&format!("{BASE}{extra}")) {
        Err(Error::Invalid(e)) => {
            e.0.into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()
        }
        Err(other) => vec![other.to_string()],
        Ok(_) => vec![],
    }
}

#[test]
fn accepts_a_valid_config() {
    assert_eq!(errors_of(""), Vec::<String>::new());
}

#[test]
fn names_the_unresolved_backend_by_field_path() {
    let errs = errors_of(
            "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo }, { service: nope, weight: 3 }]\n",
        );
    assert_eq!(
        errs,
        vec!["routes[0].rules[0].backends[1].service: no service \"nope\" in services"]
    );
}

#[test]
fn rejects_unknown_fields_with_their_path() {
    let err = Config::from_yaml(&BASE.replace("protocol: http", "protocol: http, colour: red"))
        .expect_err("unknown field must fail");
    let text = err.to_string();
    assert!(text.starts_with("services[0].ports[0]"), "{text}");
    assert!(text.contains("colour"), "{text}");
}

#[test]
fn rejects_negative_weight_with_its_path() {
    let err = Config::from_yaml(&format!(
            "{BASE}routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo, weight: -1 }}]\n"
        ))
        .expect_err("negative weight must fail");
    assert!(
        err.to_string()
            .starts_with("routes[0].rules[0].backends[0].weight"),
        "{err}"
    );
}

#[test]
fn rejects_an_absurd_route_timeout_with_its_path_and_the_maximum() {
    let errors = errors_of(
            "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo }]\n        timeout: 100000000h\n        retry: { attempts: 1, backoff: 25h }\n",
        );
    assert_eq!(
        errors,
        [
            "routes[0].rules[0].timeout: 100000000h is longer than the maximum, 24h",
            "routes[0].rules[0].retry.backoff: 25h is longer than the maximum, 24h",
        ]
    );
}

#[test]
fn bounds_settings_and_allows_a_long_cookie_ttl() {
    let errors = errors_of("settings: { idleTimeout: 48h }\n");
    assert_eq!(
        errors,
        ["settings.idleTimeout: 48h is longer than the maximum, 24h"]
    );
    let cookie = "  - name: sticky\n    ports: [{ port: 80 }]\n    loadBalancer: ringHash\n    policy:\n      hashOn: { cookie: { name: s, ttl: TTL } }\n";
    let parse = |ttl: &str| Config::from_yaml(&format!("{BASE}{}", cookie.replace("TTL", ttl)));
    assert!(parse("720h").is_ok(), "{:?}", parse("720h"));
    let err = parse("9000h").expect_err("longer than a year");
    assert!(
        err.to_string()
            .contains("hashOn.cookie.ttl: 9000h is longer than the maximum, 8760h"),
        "{err}"
    );
}

#[test]
fn rejects_invalid_regex() {
    let errs = errors_of(
            "routes:\n  - service: echo\n    rules:\n      - matches: [{ path: { regex: '(' } }]\n        backends: [{ service: echo }]\n",
        );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "routes[0].rules[0].matches[0].path: \"(\" is not a valid regular expression"
        ),
        "{errs:?}"
    );
}

#[test]
fn rejects_admin_off_loopback() {
    let errs = errors_of("").len();
    assert_eq!(errs, 0);
    let err = Config::from_yaml(
        &BASE.replace("{ hbone: null }", "{ hbone: null, admin: 0.0.0.0:15000 }"),
    )
    .expect_err("admin on 0.0.0.0 must fail");
    assert!(
        err.to_string()
            .starts_with("listeners.admin: 0.0.0.0:15000 is not a loopback"),
        "{err}"
    );
}

#[test]
fn rejects_listener_address_conflicts() {
    let err = Config::from_yaml(&BASE.replace("127.0.0.1:18080", "127.0.0.1:15000"))
        .expect_err("conflict must fail");
    assert!(
        err.to_string()
            .contains("outbound[0].listen: 127.0.0.1:15000 is already used by listeners.admin"),
        "{err}"
    );
}

#[test]
fn a_port_offset_moves_every_default_listener_and_keeps_written_ones() {
    let with = |listeners: &str| {
        let certs = "certificates: { cert: a.crt, key: a.key, trustBundle: ca.crt }";
        Config::from_yaml(&BASE.replace(
            "listeners: { hbone: null }",
            &format!("{listeners}\n{certs}"),
        ))
        .expect("valid")
        .listeners
    };
    let moved =
        with("listeners: { portOffset: 100, metrics: 127.0.0.1:9090, inboundCapture: null }");
    assert_eq!(moved.admin.to_string(), "127.0.0.1:15100");
    assert_eq!(
        moved.hbone.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:15108")
    );
    assert_eq!(
        moved.outbound_capture.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:15101")
    );
    assert_eq!(
        moved.metrics.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9090")
    );
    assert_eq!(moved.inbound_capture, None);
    // Without an offset the defaults stand.
    let plain = with("listeners: {}");
    assert_eq!(plain.admin.to_string(), "127.0.0.1:15000");
    assert_eq!(plain.hbone.map(|a| a.port()), Some(15008));
    // What the proxy writes out (config dump, persisted state) reads back the same.
    let again: crate::proxy::Listeners =
        serde_json::from_value(serde_json::to_value(&moved).expect("serialises"))
            .expect("reads back");
    assert_eq!(again, moved);
}

#[test]
fn a_port_offset_past_the_last_port_is_refused_with_the_largest_that_fits() {
    let err = Config::from_yaml(&BASE.replace(
        "listeners: { hbone: null }",
        "listeners: { hbone: null, portOffset: 60000 }",
    ))
    .expect_err("offset overflows");
    let text = err.to_string();
    assert!(text.contains("listeners"), "{text}");
    assert!(text.contains("portOffset 60000"), "{text}");
    assert!(text.contains("at most 50515"), "{text}");
}

#[test]
fn requires_certificates_when_hbone_is_on() {
    let err = Config::from_yaml(&BASE.replace("listeners: { hbone: null }\n", ""))
        .expect_err("hbone without certs must fail");
    assert!(
        err.to_string().starts_with("certificates: required"),
        "{err}"
    );
}

#[test]
fn rejects_backend_without_the_route_port() {
    let errs = errors_of(
            "  - name: other\n    ports: [{ port: 9 }]\nroutes:\n  - service: echo\n    rules:\n      - backends: [{ service: other }]\n",
        );
    assert_eq!(errs, vec!["routes[0].rules[0].backends[0].port: backend service \"other\" has no port 80; set backends[].port"]);
}

#[test]
fn reports_bad_yaml() {
    let err = Config::from_yaml("workload: [").expect_err("broken yaml must fail");
    assert!(matches!(err, Error::Yaml(_)), "{err}");
}

#[test]
fn durations_are_human_readable() {
    let cfg =
        Config::from_yaml(&format!("{BASE}settings: {{ detectTimeout: 50ms }}\n")).expect("valid");
    assert_eq!(
        cfg.settings.detect_timeout,
        std::time::Duration::from_millis(50)
    );
    let err = Config::from_yaml(&format!("{BASE}settings: {{ detectTimeout: 50 }}\n"))
        .expect_err("bare number");
    assert!(
        err.to_string().starts_with("settings.detectTimeout"),
        "{err}"
    );
}

#[test]
fn a_port_mode_overrides_the_workload_mode() {
    let cfg = Config::from_yaml(&BASE.replace(
            "workload: { name: client, address: 10.0.0.1 }",
            "workload:\n  name: client\n  address: 10.0.0.1\n  ports: [{ port: 8080, mtls: permissive }, { port: 9090 }]",
        ))
        .expect("valid");
    assert_eq!(cfg.port_mtls(8080), crate::proxy::MtlsMode::Permissive);
    assert_eq!(cfg.port_mtls(9090), crate::proxy::MtlsMode::Strict);
    assert!(cfg.accepts_plaintext());
    let strict = Config::from_yaml(BASE).expect("valid");
    assert!(!strict.accepts_plaintext(), "strict is the default");
}

#[test]
fn rejects_a_permissive_port_without_the_inbound_capture_listener() {
    let errs = errors_of_yaml(&BASE.replace(
        "workload: { name: client, address: 10.0.0.1 }\nlisteners: { hbone: null }",
        "workload: { name: client, address: 10.0.0.1, ports: [{ port: 8080 }] }\n\
             listeners: { hbone: null, inboundCapture: null }\ninbound: { mtls: permissive }",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .starts_with("workload.ports[0]: is permissive but listeners.inboundCapture is null"),
        "{errs:?}"
    );
}

#[test]
fn rejects_identity_headers_that_are_malformed_or_reserved() {
    for (header, expect) in [
        ("X-Caller", "is not a header name"),
        ("x caller", "is not a header name"),
        ("", "is not a header name"),
        ("host", "with its own meaning"),
        ("x-forwarded-client-cert", "with its own meaning"),
    ] {
        let errs = errors_of(&format!("inbound: {{ identityHeader: {header:?} }}\n"));
        assert_eq!(errs.len(), 1, "{header}: {errs:?}");
        assert!(
            errs[0].starts_with("inbound.identityHeader:") && errs[0].contains(expect),
            "{header}: {errs:?}"
        );
    }
    let ok = Config::from_yaml(&format!(
        "{BASE}inbound: {{ identityHeader: x-weft-peer-identity }}\n"
    ))
    .expect("valid");
    assert_eq!(
        ok.inbound.identity_header.as_deref(),
        Some("x-weft-peer-identity")
    );
}

#[test]
fn backend_policy_problems_are_named_by_field_path() {
    let base = BASE.replace("  - name: echo-v2\n    ports: [{ port: 80 }]\n", "");
    let with = |policy: &str| {
        errors_of_yaml(&format!(
            "{base}  - name: echo-v2\n    ports: [{{ port: 80, targetPort: 8080 }}]\n{policy}"
        ))
    };
    assert_eq!(
            with("    loadBalancer: maglev\n"),
            vec!["services[1].policy.hashOn: the Maglev load balancer needs something to hash, e.g. hashOn: {header: x-user-id}"]
        );
    assert_eq!(
            with("    policy: { hashOn: sourceIP }\n"),
            vec!["services[1].policy.hashOn: only used by the ringHash and maglev load balancers; set loadBalancer or remove it"]
        );
    let errors = with(
            "    policy:\n      retryBudget: { percent: 120 }\n      limits: { maxRequests: 0 }\n      healthCheck: { port: 80, check: { http: { path: healthz, host: echo } } }\n",
        );
    assert_eq!(
            errors,
            vec![
                "services[1].policy.retryBudget.percent: 120 is not a percentage (0-100)",
                "services[1].policy.limits.maxRequests: must be at least 1 (a limit of 0 would refuse everything)",
                "services[1].policy.healthCheck.port: 80 is not a target port of the service (checks go to the endpoints' ports)",
                "services[1].policy.healthCheck.check.http.path: \"healthz\" must start with '/'",
            ]
        );
    assert_eq!(
            with("    loadBalancer: ringHash\n    policy:\n      hashOn: { cookie: { name: session, ttl: 1h } }\n      healthCheck: { port: 8080, check: tcp }\n"),
            Vec::<String>::new()
        );
}

fn errors_of_yaml(yaml: &str) -> Vec<String> {
    match Config::from_yaml(yaml) {
        Err(Error::Invalid(e)) => {
            e.0.into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()
        }
        Ok(_) => Vec::new(),
        Err(other) => panic!("expected validation errors, got {other:?}"),
    }
}

/// Telemetry settings that could not work are refused with their path and what to
/// write instead; good ones pass.
#[test]
fn telemetry_settings_are_checked_with_their_paths() {
    #[rustfmt::skip]
    let cases: &[(&str, Option<&str>)] = &[
        ("telemetry: { tracing: { endpoint: \"http://127.0.0.1:4317\", sampling: 0.5 } }", None),
        ("telemetry: { tracing: { endpoint: \"http://[::1]:4317/\" } }", None),
        ("telemetry: { tracing: { endpoint: \"http://collector.observability:4317\" } }", None),
        ("telemetry: { tracing: { endpoint: \"https://collector:4317\" } }", Some("telemetry.tracing.endpoint: \"https://collector:4317\": https collectors are not supported yet")),
        ("telemetry: { tracing: { endpoint: \"127.0.0.1:4317\" } }", Some("telemetry.tracing.endpoint: \"127.0.0.1:4317\" is not an OTLP/gRPC endpoint: write http://host:port")),
        ("telemetry: { tracing: { endpoint: \"http://collector\" } }", Some("is not an OTLP/gRPC endpoint")),
        ("telemetry: { tracing: { endpoint: \"http://c:4317\", sampling: 150 } }", Some("telemetry.tracing.sampling: 150 is not a percentage: must be 0 to 100")),
        ("telemetry: { tracing: { endpoint: \"http://c:4317\", timeout: 0s } }", Some("telemetry.tracing.timeout: 0ns: must be more than 0")),
        ("telemetry: { accessLog: { format: text, template: \"{method} {path} {status}\" } }", None),
        ("telemetry: { accessLog: { format: text, template: \"{method} {pth}\" } }", Some("telemetry.accessLog.template: unknown field {pth}: the fields are start_time, direction")),
        ("telemetry: { accessLog: { format: text, template: \"{{literal}} {method\" } }", Some("telemetry.accessLog.template: the '{' at byte 12 is never closed")),
        ("telemetry: { accessLog: { template: \"{method}\" } }", Some("telemetry.accessLog.template: a template is for format: text")),
        ("telemetry: { accessLog: { path: logs/access.log } }", Some("telemetry.accessLog.path: logs/access.log: must be an absolute path")),
        ("telemetry: { accessLog: { path: /var/log/a.log, maxBytes: 10 } }", Some("telemetry.accessLog.maxBytes: 10: must be at least 4096")),
        ("telemetry: { metrics: { enabled: false } }", None),
        ("telemetry: { metrics: { enabeld: false } }", Some("unknown field `enabeld`")),
    ];
    for (yaml, expected) in cases {
        let errors = errors_of(&format!("{yaml}\n"));
        match expected {
            None => assert!(errors.is_empty(), "{yaml}: {errors:?}"),
            Some(e) => assert!(
                errors.iter().any(|got| got.contains(e)),
                "{yaml}: expected {e:?} in {errors:?}"
            ),
        }
    }
}
