//! `BackendPolicy`: validation with field paths, attachment and conflicts, and what it
//! compiles to in the proxy `Service`.

use weft_api::pb::v1 as pb;
use weft_api::proxy;

use super::{assert_errors, compile, errors, healthy, key, object, Kind, SERVICE, WORKLOAD};

const POLICY: &str = r"
apiVersion: weft.dev/v1alpha1
kind: BackendPolicy
metadata: { name: echo, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: echo }]
  loadBalancer:
    type: maglev
    hashOn: { cookie: { name: session, ttl: 1h } }
    slowStart: { window: 30s }
  connectionLimits: { maxConnections: 100, maxRequests: 200, maxRequestsPerConnection: 1000 }
  outlierDetection:
    consecutive5xx: 3
    consecutiveGatewayErrors: 2
    baseEjectionTime: 10s
    maxEjectionPercent: 50
    successRate: { minimumHosts: 3 }
  healthCheck:
    port: 80
    interval: 5s
    http: { path: /healthz, expectedStatuses: [200, '300-302'] }
  retryBudget: { percent: 10, minRetriesPerSecond: 2 }
  locality: { minHealthyPercent: 50 }
";

fn policy_of(compiled: &crate::Compiled, name: &str) -> proxy::Service {
    proxy::Service::try_from(&compiled.services[name]).expect("compiled service converts")
}

#[test]
fn a_full_policy_validates() {
    assert_eq!(errors(POLICY), Vec::<String>::new());
}

#[test]
fn rejects_bad_policies_with_path_and_message() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            POLICY.replace(
                "  targetRefs: [{ kind: Service, name: echo }]\n",
                "  targetRefs: []\n",
            ),
            "spec.targetRefs",
            "at least one target",
        ),
        (
            POLICY.replace("kind: Service, name: echo", "kind: Gateway, name: echo"),
            "spec.targetRefs[0].kind",
            "targets a Service",
        ),
        (
            POLICY.replace("    hashOn: { cookie: { name: session, ttl: 1h } }\n", ""),
            "spec.loadBalancer.hashOn",
            "required by type maglev",
        ),
        (
            POLICY.replace("type: maglev", "type: roundRobin"),
            "spec.loadBalancer.hashOn",
            "only used by type ringHash or maglev",
        ),
        (
            POLICY.replace(
                "{ cookie: { name: session, ttl: 1h } }",
                "{ header: x-user, sourceIP: {} }",
            ),
            "spec.loadBalancer.hashOn",
            "exactly one of header, cookie and sourceIP (2 are set)",
        ),
        (
            POLICY.replace("name: session, ttl: 1h", "name: 'bad name', ttl: 1h"),
            "spec.loadBalancer.hashOn.cookie.name",
            "not a cookie name",
        ),
        (
            POLICY.replace("ttl: 1h", "ttl: 1 hour"),
            "spec.loadBalancer.hashOn.cookie.ttl",
            "not a Gateway API duration",
        ),
        (
            POLICY.replace("ttl: 1h", "ttl: 9000h"),
            "spec.loadBalancer.hashOn.cookie.ttl",
            "9000h is longer than the maximum, 8760h",
        ),
        (
            POLICY.replace("interval: 5s", "interval: 25h"),
            "spec.healthCheck.interval",
            "25h is longer than the maximum, 24h",
        ),
        (
            POLICY.replace("baseEjectionTime: 10s", "baseEjectionTime: 99999h"),
            "spec.outlierDetection.baseEjectionTime",
            "longer than the maximum, 24h",
        ),
        (
            POLICY.replace("window: 30s", "window: 0s"),
            "spec.loadBalancer.slowStart.window",
            "longer than 0s",
        ),
        (
            POLICY.replace("maxRequests: 200", "maxRequests: 0"),
            "spec.connectionLimits.maxRequests",
            "at least 1",
        ),
        (
            POLICY.replace("maxEjectionPercent: 50", "maxEjectionPercent: 150"),
            "spec.outlierDetection.maxEjectionPercent",
            "150 is not a percentage",
        ),
        (
            POLICY.replace("baseEjectionTime: 10s", "baseEjectionTime: 10m"),
            "spec.outlierDetection.maxEjectionTime",
            "shorter than baseEjectionTime",
        ),
        (
            POLICY.replace(
                "successRate: { minimumHosts: 3 }",
                "successRate: { stdevFactor: -1 }",
            ),
            "spec.outlierDetection.successRate.stdevFactor",
            "positive number",
        ),
        (
            POLICY.replace(
                "    http: { path: /healthz, expectedStatuses: [200, '300-302'] }\n",
                "    http: { path: /healthz }\n    tcp: {}\n",
            ),
            "spec.healthCheck",
            "exactly one of http, tcp and grpc (2 are set)",
        ),
        (
            POLICY.replace("path: /healthz", "path: healthz"),
            "spec.healthCheck.http.path",
            "must start with '/'",
        ),
        (
            POLICY.replace("'300-302'", "'302-300'"),
            "spec.healthCheck.http.expectedStatuses[1]",
            "not a status or range",
        ),
        (
            POLICY.replace("interval: 5s", "interval: 5s\n    timeout: 10s"),
            "spec.healthCheck.timeout",
            "longer than interval",
        ),
        (
            POLICY.replace("percent: 10,", "percent: 101,"),
            "spec.retryBudget.percent",
            "101 is not a percentage",
        ),
        (
            POLICY.replace(
                "locality: { minHealthyPercent: 50 }",
                "locality: { zone: a }",
            ),
            "spec.locality.zone",
            "unknown field `zone`",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn a_service_load_balancer_field_points_to_backend_policy() {
    let old = SERVICE.replace(
        "  vip: 10.96.0.10\n",
        "  vip: 10.96.0.10\n  loadBalancer: roundRobin\n",
    );
    let errors = errors(&old);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("spec.loadBalancer: moved to a BackendPolicy"),
        "{errors:?}"
    );
}

#[test]
fn the_policy_compiles_into_the_targeted_service() {
    let compiled = compile(&[object(SERVICE), healthy(object(WORKLOAD)), object(POLICY)]);
    let svc = policy_of(&compiled, "echo.shop");
    assert_eq!(svc.load_balancer, proxy::LoadBalancer::Maglev);
    let p = svc.policy;
    assert_eq!(
        p.hash_on,
        Some(proxy::HashOn::Cookie(proxy::HashCookie {
            name: "session".into(),
            ttl: Some(std::time::Duration::from_secs(3600)),
            path: "/".into(),
        }))
    );
    assert_eq!(p.slow_start, Some(std::time::Duration::from_secs(30)));
    assert_eq!(
        p.limits,
        proxy::Limits {
            max_connections: 100,
            max_pending_requests: proxy::Limits::DEFAULT,
            max_requests: 200,
            max_requests_per_connection: Some(1000),
        }
    );
    let o = p.outlier_detection.expect("outlier detection");
    assert_eq!(
        (
            o.consecutive_5xx,
            o.consecutive_gateway_errors,
            o.max_ejection_percent
        ),
        (Some(3), Some(2), 50)
    );
    assert_eq!(o.base_ejection_time, std::time::Duration::from_secs(10));
    assert_eq!(o.success_rate.map(|r| r.minimum_hosts), Some(3));
    let h = p.health_check.expect("health check");
    assert_eq!(
        h.port, 8080,
        "service port 80 is checked on its target port"
    );
    assert_eq!(
        h.check,
        proxy::HealthCheckKind::Http {
            path: "/healthz".into(),
            host: "echo.shop.svc.cluster.local".into(),
            expected: vec![(200, 200), (300, 302)],
        }
    );
    assert_eq!(
        p.retry_budget,
        proxy::RetryBudget {
            percent: 10,
            min_retries_per_second: 2
        }
    );
    assert_eq!(p.locality.min_healthy_percent, 50);
    assert_eq!(p.source.as_deref(), Some("BackendPolicy/shop/echo"));
    assert_eq!(
        compiled.statuses[&key(Kind::BackendPolicy, "shop", "echo")]["ancestors"][0]["conditions"]
            [0]["status"],
        "True"
    );
}

#[test]
fn a_service_without_a_policy_gets_the_defaults_with_ejection_on() {
    let compiled = compile(&[object(SERVICE)]);
    let svc = policy_of(&compiled, "echo.shop");
    assert_eq!(svc.load_balancer, proxy::LoadBalancer::PeakEwma);
    assert_eq!(svc.policy, proxy::BackendPolicy::default());
    assert_eq!(
        svc.policy.outlier_detection.and_then(|o| o.consecutive_5xx),
        Some(5)
    );
}

#[test]
fn disabled_outlier_detection_compiles_to_none() {
    let yaml = POLICY.replace(
        "    consecutive5xx: 3\n",
        "    disabled: true\n    consecutive5xx: 3\n",
    );
    let compiled = compile(&[object(SERVICE), object(&yaml)]);
    assert_eq!(
        policy_of(&compiled, "echo.shop").policy.outlier_detection,
        None
    );
}

#[test]
fn the_oldest_policy_wins_a_service_and_the_other_says_conflicted() {
    let mut first = object(POLICY);
    first.metadata.creation_timestamp = Some("2026-01-01T00:00:00Z".into());
    let mut second = object(
        &POLICY
            .replace(
                "name: echo, namespace: shop }",
                "name: aaa, namespace: shop }",
            )
            .replace("type: maglev", "type: roundRobin")
            .replace("    hashOn: { cookie: { name: session, ttl: 1h } }\n", ""),
    );
    second.metadata.creation_timestamp = Some("2026-02-01T00:00:00Z".into());
    let compiled = compile(&[object(SERVICE), second, first]);
    assert_eq!(
        policy_of(&compiled, "echo.shop").load_balancer,
        proxy::LoadBalancer::Maglev,
        "the older policy applies even though the newer sorts first by name"
    );
    let loser = &compiled.statuses[&key(Kind::BackendPolicy, "shop", "aaa")]["ancestors"][0]
        ["conditions"][0];
    assert_eq!(loser["status"], "False");
    assert_eq!(loser["reason"], "Conflicted");
    assert!(
        loser["message"]
            .as_str()
            .is_some_and(|m| m.contains("BackendPolicy shop/echo already applies")),
        "{loser}"
    );
}

#[test]
fn a_missing_target_or_port_is_reported_on_the_policy() {
    let missing = POLICY.replace("kind: Service, name: echo", "kind: Service, name: nope");
    let compiled = compile(&[object(SERVICE), object(&missing)]);
    let c = &compiled.statuses[&key(Kind::BackendPolicy, "shop", "echo")]["ancestors"][0]
        ["conditions"][0];
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("TargetNotFound"))
    );
    assert_eq!(
        policy_of(&compiled, "echo.shop").policy,
        proxy::BackendPolicy::default(),
        "the service keeps the defaults"
    );

    let bad_port = POLICY.replace("    port: 80\n", "    port: 81\n");
    let compiled = compile(&[object(SERVICE), object(&bad_port)]);
    let c = &compiled.statuses[&key(Kind::BackendPolicy, "shop", "echo")]["ancestors"][0]
        ["conditions"][0];
    assert_eq!(c["reason"], "Invalid");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.healthCheck.port: Service shop/echo has no port 81")),
        "{c}"
    );
}

#[test]
fn the_wire_form_carries_the_policy_source_for_debugging() {
    let compiled = compile(&[object(SERVICE), object(POLICY)]);
    let wire: &pb::Service = &compiled.services["echo.shop"];
    assert_eq!(
        wire.policy.as_ref().map(|p| p.source.as_str()),
        Some("BackendPolicy/shop/echo")
    );
}
