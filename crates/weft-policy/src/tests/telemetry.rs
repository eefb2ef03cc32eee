//! `Telemetry`: validation with field paths (the proxy model's own checks, read under
//! `spec.`), and which object decides each group for each workload: Service over
//! Namespace over Mesh, `disabled` overriding, the oldest of one level winning and the
//! others told so.

use weft_api::proxy;
use weft_api::resource::Object;

use super::{assert_errors, compile, errors, key, object, workload, Kind};

/// The page's example: a namespace-wide object.
const NAMESPACE_WIDE: &str = r"
apiVersion: weft.dev/v1alpha1
kind: Telemetry
metadata: { name: shop-observability, namespace: shop }
spec:
  targetRefs: [{ kind: Namespace }]
  tracing:
    endpoint: http://otel-collector.observability:4317
    sampling: 5
    timeout: 10s
  accessLog:
    format: text
    template: '{start_time} {method} {path} {status}'
    path: /var/log/weft/access.log
    maxBytes: 104857600
    maxFiles: 5
  metrics: { enabled: true }
";

/// A `Telemetry` named `name` in `namespace`, created at second `created` of a day.
fn telemetry(name: &str, namespace: &str, created: u32, spec: &str) -> Object {
    let mut o = object(&format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: {{ name: {name}, namespace: {namespace}, generation: 1 }}\nspec:\n{spec}"
    ));
    o.metadata.creation_timestamp = Some(format!("2026-01-01T00:00:{created:02}Z"));
    o
}

fn service(name: &str, namespace: &str, selector: &str) -> Object {
    object(&format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name}, namespace: {namespace} }}\nspec: {{ selector: {selector}, ports: [{{ port: 80, protocol: http }}] }}\n"
    ))
}

/// The telemetry compiled for workload `<name>.<namespace>`, in the proxy model.
fn telemetry_of(compiled: &crate::Compiled, workload: &str) -> proxy::Telemetry {
    let policy = &compiled.inbound_policies[workload];
    proxy::InboundPolicy::try_from(policy)
        .expect("compiled policy converts")
        .telemetry
}

fn conflicted(compiled: &crate::Compiled, namespace: &str, name: &str) -> (String, String) {
    let status = &compiled.statuses[&key(Kind::Telemetry, namespace, name)];
    let c = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Conflicted")
        .unwrap_or_else(|| panic!("a Conflicted condition: {status}"));
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn telemetry_of_each_scope_validates() {
    assert_eq!(errors(NAMESPACE_WIDE), Vec::<String>::new());
    let mesh = "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: { name: mesh, namespace: weft-system }\nspec:\n  targetRefs: [{ kind: Mesh }]\n  accessLog: {}\n";
    assert_eq!(errors(mesh), Vec::<String>::new());
    let service = "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: { name: quiet, namespace: shop }\nspec:\n  targetRefs: [{ kind: Service, name: echo }, { group: weft.dev, kind: Service, name: cart }]\n  tracing: { disabled: true }\n  accessLog: { disabled: true }\n  metrics: { enabled: false }\n";
    assert_eq!(errors(service), Vec::<String>::new());
    let named = NAMESPACE_WIDE.replace("{ kind: Namespace }", "{ kind: Namespace, name: shop }");
    assert_eq!(errors(&named), Vec::<String>::new());
}

#[test]
fn rejects_bad_telemetry_with_path_and_message() {
    let replace = |from: &str, to: &str| {
        assert!(NAMESPACE_WIDE.contains(from), "{from}");
        NAMESPACE_WIDE.replace(from, to)
    };
    let cases: Vec<(String, &str, &str)> = vec![
        // The proxy model's checks, under spec.
        (
            replace("sampling: 5", "sampling: 150"),
            "spec.tracing.sampling",
            "150 is not a percentage: must be 0 to 100",
        ),
        (
            replace("http://otel", "https://otel"),
            "spec.tracing.endpoint",
            "https collectors are not supported yet",
        ),
        (
            replace("http://otel-collector.observability:4317", "otel-collector"),
            "spec.tracing.endpoint",
            "is not an OTLP/gRPC endpoint",
        ),
        (
            replace("timeout: 10s", "timeout: 2m"),
            "spec.tracing.timeout",
            "must be more than 0 and at most 60s",
        ),
        (
            replace("{status}", "{status} {colour}"),
            "spec.accessLog.template",
            "unknown field {colour}",
        ),
        (
            replace("format: text", "format: json"),
            "spec.accessLog.template",
            "a template is for format: text",
        ),
        (
            replace("/var/log/weft/access.log", "access.log"),
            "spec.accessLog.path",
            "must be an absolute path",
        ),
        (
            replace("maxBytes: 104857600", "maxBytes: 100"),
            "spec.accessLog.maxBytes",
            "100: must be at least 4096",
        ),
        (
            replace("maxFiles: 5", "maxFiles: 1000"),
            "spec.accessLog.maxFiles",
            "at most 100 rotated files",
        ),
        // What only the resource can get wrong.
        (
            replace("timeout: 10s", "timeout: soon"),
            "spec.tracing.timeout",
            "not a Gateway API duration",
        ),
        (
            replace("    sampling: 5\n", "    sampling: 5\n    disabled: true\n"),
            "spec.tracing.endpoint",
            "spec.tracing is disabled, so endpoint would never apply",
        ),
        (
            replace("    endpoint: http://otel-collector.observability:4317\n", ""),
            "spec.tracing.endpoint",
            "required: the OTLP/gRPC collector",
        ),
        (
            replace("    format: text\n", "    format: text\n    disabled: true\n"),
            "spec.accessLog.maxFiles",
            "spec.accessLog is disabled",
        ),
        (
            replace("metrics: { enabled: true }", "metrics: { enabled: true, labels: [] }"),
            "spec.metrics.labels",
            "unknown field `labels`, expected `enabled`",
        ),
        (
            replace("targetRefs: [{ kind: Namespace }]", "targetRefs: []"),
            "spec.targetRefs",
            "a Telemetry needs a target",
        ),
        (
            replace("{ kind: Namespace }", "{ kind: HTTPRoute, name: web }"),
            "spec.targetRefs[0].kind",
            "unknown variant `HTTPRoute`",
        ),
        (
            replace("{ kind: Namespace }", "{ kind: Namespace, name: cart }"),
            "spec.targetRefs[0].name",
            "a Telemetry covers its own namespace, \"shop\"",
        ),
        (
            replace("{ kind: Namespace }", "{ kind: Mesh }"),
            "spec.targetRefs[0].kind",
            "lives in namespace weft-system",
        ),
        (
            replace("{ kind: Namespace }", "{ kind: Service }"),
            "spec.targetRefs[0].name",
            "required for a Service target",
        ),
        (
            replace("{ kind: Namespace }", "{ kind: Service, name: Echo }"),
            "spec.targetRefs[0].name",
            "\"Echo\" is not a valid name",
        ),
        (
            replace(
                "{ kind: Namespace }",
                "{ kind: Service, name: echo }, { kind: Service, name: echo }",
            ),
            "spec.targetRefs[1].name",
            "listed twice",
        ),
        (
            replace(
                "{ kind: Namespace }",
                "{ kind: Namespace }, { kind: Service, name: echo }",
            ),
            "spec.targetRefs[0].kind",
            "a Namespace target stands alone",
        ),
        (
            replace("{ kind: Namespace }", "{ group: apps, kind: Namespace }"),
            "spec.targetRefs[0].group",
            "\"apps\" is not supported",
        ),
        (
            "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: { name: empty }\nspec:\n  targetRefs: [{ kind: Namespace }]\n".to_owned(),
            "spec",
            "a Telemetry needs tracing, accessLog or metrics",
        ),
        (
            "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: { name: mesh, namespace: weft-system }\nspec:\n  targetRefs: [{ kind: Mesh, name: prod }]\n  metrics: {}\n".to_owned(),
            "spec.targetRefs[0].name",
            "there is one Mesh",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn each_group_comes_from_the_most_specific_object_that_sets_it_and_disabled_overrides() {
    let compiled = compile(&[
        service("echo", "shop", "{ app: echo }"),
        workload("echo-1", "shop", "10.0.0.2", "{ app: echo }", "Healthy"),
        workload("cart-1", "shop", "10.0.0.3", "{ app: cart }", "Healthy"),
        workload("web-1", "web", "10.0.0.4", "{ app: web }", "Healthy"),
        // Mesh: spans to A, JSON access log to stdout, requests not counted.
        telemetry(
            "mesh",
            "weft-system",
            1,
            "  targetRefs: [{ kind: Mesh }]\n  tracing: { endpoint: 'http://a:4317' }\n  accessLog: {}\n  metrics: { enabled: false }\n",
        ),
        // Namespace shop: spans to B at 5%.
        telemetry(
            "shop",
            "shop",
            2,
            "  targetRefs: [{ kind: Namespace }]\n  tracing: { endpoint: 'http://b:4317', sampling: 5, timeout: 3s }\n",
        ),
        // Service echo: no access log, requests counted; and (another object, another
        // group, so no conflict) no spans.
        telemetry(
            "echo-quiet",
            "shop",
            3,
            "  targetRefs: [{ kind: Service, name: echo }]\n  accessLog: { disabled: true }\n  metrics: { enabled: true }\n",
        ),
        telemetry(
            "echo-untraced",
            "shop",
            4,
            "  targetRefs: [{ kind: Service, name: echo }]\n  tracing: { disabled: true }\n",
        ),
    ]);
    let traced = |endpoint: &str, sampling: f64, timeout: u64| {
        Some(proxy::Tracing {
            endpoint: endpoint.to_owned(),
            sampling,
            timeout: std::time::Duration::from_secs(timeout),
        })
    };
    let stdout_json = Some(proxy::AccessLog {
        format: proxy::AccessLogFormat::Json,
        template: None,
        path: None,
        max_bytes: proxy::DEFAULT_ACCESS_LOG_MAX_BYTES,
        max_files: proxy::DEFAULT_ACCESS_LOG_MAX_FILES,
    });
    // (workload, tracing, access log, requests counted)
    let table = [
        ("echo-1.shop", None, None, true),
        (
            "cart-1.shop",
            traced("http://b:4317", 5.0, 3),
            stdout_json.clone(),
            false,
        ),
        (
            "web-1.web",
            traced("http://a:4317", 1.0, 10),
            stdout_json,
            false,
        ),
    ];
    for (workload, tracing, access_log, counted) in table {
        let want = proxy::Telemetry {
            tracing,
            access_log,
            metrics: proxy::MetricsOptions { enabled: counted },
        };
        assert_eq!(telemetry_of(&compiled, workload), want, "{workload}");
    }
    for name in ["shop", "echo-quiet", "echo-untraced"] {
        assert_eq!(conflicted(&compiled, "shop", name).0, "False", "{name}");
    }
    let status = &compiled.statuses[&key(Kind::Telemetry, "weft-system", "mesh")];
    assert_eq!(status["ancestors"][0]["ancestorRef"]["kind"], "Mesh");
    assert_eq!(status["ancestors"][0]["conditions"][0]["status"], "True");
}

#[test]
fn without_a_telemetry_a_workload_keeps_the_proxy_defaults_and_none_is_sent() {
    let compiled = compile(&[workload(
        "echo-1",
        "shop",
        "10.0.0.2",
        "{ app: echo }",
        "Healthy",
    )]);
    assert_eq!(compiled.inbound_policies["echo-1.shop"].telemetry, None);
}

#[test]
fn of_two_objects_of_one_level_the_older_wins_and_the_other_is_told_which_shadows_it() {
    let compiled = compile(&[
        service("echo", "shop", "{ app: echo }"),
        service("echo-v1", "shop", "{ app: echo, version: v1 }"),
        workload("echo-1", "shop", "10.0.0.2", "{ app: echo, version: v1 }", "Healthy"),
        // Namespace level: the older's spans; the younger's metrics still apply (no
        // older object sets them).
        telemetry(
            "late",
            "shop",
            9,
            "  targetRefs: [{ kind: Namespace }]\n  tracing: { endpoint: 'http://late:4317' }\n  metrics: { enabled: false }\n",
        ),
        telemetry(
            "early",
            "shop",
            1,
            "  targetRefs: [{ kind: Namespace }]\n  tracing: { endpoint: 'http://early:4317' }\n",
        ),
        // Service level, two services selecting the one workload: the older's log.
        telemetry(
            "v1-log",
            "shop",
            5,
            "  targetRefs: [{ kind: Service, name: echo-v1 }]\n  accessLog: { format: json }\n",
        ),
        telemetry(
            "all-log",
            "shop",
            4,
            "  targetRefs: [{ kind: Service, name: echo }]\n  accessLog: { disabled: true }\n",
        ),
        // Mesh level.
        telemetry(
            "mesh-b",
            "weft-system",
            2,
            "  targetRefs: [{ kind: Mesh }]\n  metrics: { enabled: true }\n",
        ),
        telemetry(
            "mesh-a",
            "weft-system",
            1,
            "  targetRefs: [{ kind: Mesh }]\n  metrics: { enabled: true }\n",
        ),
    ]);
    let t = telemetry_of(&compiled, "echo-1.shop");
    assert_eq!(
        t.tracing.map(|t| t.endpoint).as_deref(),
        Some("http://early:4317")
    );
    assert_eq!(t.access_log, None, "all-log is older than v1-log");
    assert!(!t.metrics.enabled, "only late sets metrics at its level");

    let cases = [
        ("shop", "early", "False", ""),
        (
            "shop",
            "late",
            "True",
            "spec.tracing does not apply to namespace shop: Telemetry shop/early, older, sets it there too",
        ),
        ("shop", "all-log", "False", ""),
        (
            "shop",
            "v1-log",
            "True",
            "spec.accessLog does not apply to Workload shop/echo-1: Telemetry shop/all-log, older",
        ),
        ("weft-system", "mesh-a", "False", ""),
        (
            "weft-system",
            "mesh-b",
            "True",
            "spec.metrics does not apply to the whole mesh: Telemetry weft-system/mesh-a, older",
        ),
    ];
    for (ns, name, status, message) in cases {
        let (got, text) = conflicted(&compiled, ns, name);
        assert_eq!(got, status, "{ns}/{name}: {text}");
        assert!(text.contains(message), "{ns}/{name}: {text}");
    }
    let (_, late) = conflicted(&compiled, "shop", "late");
    assert!(!late.contains("spec.metrics"), "{late}");
}

#[test]
fn two_objects_naming_one_service_conflict_even_before_it_has_workloads() {
    let compiled = compile(&[
        telemetry(
            "a",
            "shop",
            1,
            "  targetRefs: [{ kind: Service, name: echo }]\n  metrics: { enabled: false }\n",
        ),
        telemetry(
            "b",
            "shop",
            2,
            "  targetRefs: [{ kind: Service, name: cart }, { kind: Service, name: echo }]\n  metrics: { enabled: true }\n",
        ),
    ]);
    let (status, message) = conflicted(&compiled, "shop", "b");
    assert_eq!(status, "True");
    assert!(
        message.contains("spec.metrics does not apply to Service shop/echo: Telemetry shop/a"),
        "{message}"
    );
}

#[test]
fn a_missing_target_service_is_a_condition_not_an_error() {
    let spec = "  targetRefs: [{ kind: Service, name: gone }]\n  metrics: { enabled: false }\n";
    let t = telemetry("gone", "shop", 1, spec);
    assert_eq!(crate::validate(&t), Ok(()));
    let compiled = compile(&[
        t,
        workload("echo-1", "shop", "10.0.0.2", "{ app: gone }", "Healthy"),
    ]);
    let c =
        &compiled.statuses[&key(Kind::Telemetry, "shop", "gone")]["ancestors"][0]["conditions"][0];
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&"False".into(), &"TargetNotFound".into())
    );
    assert_eq!(c["message"], "Service shop/gone does not exist");
    assert_eq!(compiled.inbound_policies["echo-1.shop"].telemetry, None);
}

#[test]
fn a_stored_telemetry_that_no_longer_validates_applies_nowhere_and_says_why() {
    let mut bad = telemetry(
        "bad",
        "shop",
        1,
        "  targetRefs: [{ kind: Namespace }]\n  metrics: { enabled: false }\n",
    );
    bad.spec["tracing"] = serde_json::json!({"endpoint": "http://a:4317", "sampling": 101});
    let compiled = compile(&[
        bad,
        workload("echo-1", "shop", "10.0.0.2", "{ app: echo }", "Healthy"),
    ]);
    let c = &compiled.statuses[&key(Kind::Telemetry, "shop", "bad")]["conditions"][0];
    assert_eq!(
        (&c["type"], &c["reason"]),
        (&"Accepted".into(), &"Invalid".into())
    );
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.tracing.sampling")),
        "{c}"
    );
    assert_eq!(compiled.inbound_policies["echo-1.shop"].telemetry, None);
}
