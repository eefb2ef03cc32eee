//! `RateLimit` and `FaultInjection`: validation with field paths, and what they add to
//! the `InboundPolicy` of the workloads their services select.

use weft_api::pb::v1 as pb;

use super::{assert_errors, compile, errors, healthy, key, object, Kind, SERVICE, WORKLOAD};

const RATE_LIMIT: &str = r"
apiVersion: weft.dev/v1alpha1
kind: RateLimit
metadata: { name: echo, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: echo }]
  limits:
    - { requests: 100, per: 1m, burst: 20, by: identity, matches: [{ path: { type: PathPrefix, value: /api } }] }
    - { requests: 1000 }
";

const FAULT: &str = r"
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: { name: chaos, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: echo }]
  matches: [{ headers: [{ name: x-chaos, value: 'on' }] }]
  delay: { percent: 12.5, fixedDelay: 2s }
  abort: { percent: 1, grpcStatus: 14 }
";

#[test]
fn rate_limits_and_faults_validate() {
    assert_eq!(errors(RATE_LIMIT), Vec::<String>::new());
    assert_eq!(errors(FAULT), Vec::<String>::new());
}

#[test]
fn rejects_bad_rate_limits_and_faults_with_path_and_message() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            RATE_LIMIT.replace("requests: 1000", "requests: 0"),
            "spec.limits[1].requests",
            "at least 1",
        ),
        (
            RATE_LIMIT.replace("per: 1m", "per: 0s"),
            "spec.limits[0].per",
            "longer than 0s",
        ),
        (
            RATE_LIMIT.replace("per: 1m", "per: a minute"),
            "spec.limits[0].per",
            "not a Gateway API duration",
        ),
        (
            RATE_LIMIT.replace("per: 1m", "per: 48h"),
            "spec.limits[0].per",
            "48h is longer than the maximum, 24h",
        ),
        (
            FAULT.replace("fixedDelay: 2s", "fixedDelay: 99999h"),
            "spec.delay.fixedDelay",
            "99999h is longer than the maximum, 24h",
        ),
        (
            RATE_LIMIT.replace("burst: 20", "burst: 0"),
            "spec.limits[0].burst",
            "at least 1",
        ),
        (
            RATE_LIMIT.replace("by: identity", "by: ip"),
            "spec.limits[0].by",
            "unknown variant `ip`",
        ),
        (
            RATE_LIMIT.replace("kind: Service", "kind: HTTPRoute"),
            "spec.targetRefs[0].kind",
            "targets a Service",
        ),
        (
            FAULT.replace("percent: 12.5", "percent: 120"),
            "spec.delay.percent",
            "not a percentage",
        ),
        (
            FAULT.replace("grpcStatus: 14", "grpcStatus: 0"),
            "spec.abort.grpcStatus",
            "not a gRPC error code",
        ),
        (
            FAULT.replace(
                "abort: { percent: 1, grpcStatus: 14 }",
                "abort: { percent: 1, httpStatus: 99 }",
            ),
            "spec.abort.httpStatus",
            "not an HTTP status",
        ),
        (
            FAULT
                .replace("  delay: { percent: 12.5, fixedDelay: 2s }\n", "")
                .replace("  abort: { percent: 1, grpcStatus: 14 }\n", ""),
            "spec",
            "needs a delay, an abort, or both",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn limits_and_faults_compile_into_the_inbound_policy_of_selected_workloads_on_target_ports() {
    let other = WORKLOAD
        .replace("name: echo-1", "name: web-1")
        .replace("app: echo", "app: web")
        .replace("10.0.0.2", "10.0.0.3");
    let compiled = compile(&[
        object(SERVICE),
        healthy(object(WORKLOAD)),
        healthy(object(&other)),
        object(RATE_LIMIT),
        object(FAULT),
    ]);
    let policy = &compiled.inbound_policies["echo-1.shop"];
    assert_eq!(policy.rate_limits.len(), 2);
    let first = &policy.rate_limits[0];
    assert_eq!(first.ports, [8080], "the service's target port");
    assert_eq!(
        (first.requests, first.burst, first.per_identity),
        (100, 20, true)
    );
    assert_eq!(first.per.map(|d| d.seconds), Some(60));
    assert_eq!(first.source, "RateLimit/shop/echo");
    assert!(matches!(
        first.matches[0].path.as_ref().and_then(|p| p.kind.clone()),
        Some(pb::path_match::Kind::Prefix(p)) if p == "/api"
    ));
    let second = &policy.rate_limits[1];
    assert_eq!(
        (second.requests, second.burst, second.per_identity),
        (1000, 0, false)
    );
    assert_eq!(second.per.map(|d| d.seconds), Some(1), "per defaults to 1s");
    let fault = &policy.faults[0];
    assert_eq!(
        (fault.delay_per_million, fault.abort_per_million),
        (125_000, 10_000)
    );
    assert_eq!(fault.abort_grpc_status, Some(14));
    assert_eq!(fault.delay.map(|d| d.seconds), Some(2));

    let unselected = &compiled.inbound_policies["web-1.shop"];
    assert!(unselected.rate_limits.is_empty() && unselected.faults.is_empty());
    assert_eq!(
        compiled.statuses[&key(Kind::RateLimit, "shop", "echo")]["ancestors"][0]["conditions"][0]
            ["status"],
        "True"
    );
}

#[test]
fn a_missing_target_service_is_reported_on_the_policy() {
    let compiled = compile(&[object(&FAULT.replace("name: echo }]", "name: gone }]"))]);
    let c = &compiled.statuses[&key(Kind::FaultInjection, "shop", "chaos")]["ancestors"][0]
        ["conditions"][0];
    assert_eq!(c["reason"], "TargetNotFound");
}
