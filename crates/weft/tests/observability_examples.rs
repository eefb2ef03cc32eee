//! The Prometheus and Grafana examples of `examples/observability/` are what they claim:
//! the scrape configuration, with its rules and proxy targets, passes `promtool check
//! config`; the rules pass `promtool check rules` and compute what they say on series
//! made up for them (`promtool test rules`); every PromQL query of the dashboards parses;
//! and the dashboards read Prometheus through their `datasource` variable with Grafana's
//! built-in panels only.
//!
//! That they name only metrics and labels Weft exposes, and that a real Prometheus on the
//! configuration counts what a mesh carried, is `tests/mesh/prometheus.rs`.
//!
//! promtool is `$WEFT_PROMTOOL`, else the first on `PATH` (Debian's `prometheus`
//! package has it; `.ci/run` installs it); without it the tests that need it are skipped
//! with a message, unless `WEFT_E2E=required`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[allow(dead_code)] // what checks names against a live mesh is tests/mesh/prometheus.rs's
#[path = "support/observability.rs"]
mod observability;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use observability::{dashboard, dashboard_queries, dir, names, panels, DASHBOARDS};

/// Where the example configuration expects the files it names.
const INSTALLED: &str = "/etc/prometheus/weft/";

/// Grafana's built-in panels this project's dashboards may use.
const BUILTIN_PANELS: [&str; 8] = [
    "row",
    "timeseries",
    "stat",
    "table",
    "gauge",
    "bargauge",
    "text",
    "heatmap",
];

/// promtool, or `None` (after saying why) when the test cannot run here; with
/// `WEFT_E2E=required` a missing promtool fails the test instead.
fn promtool(test: &str) -> Option<PathBuf> {
    match observability::executable("WEFT_PROMTOOL", "promtool") {
        Ok(path) => Some(path),
        Err(why) => {
            weft_testkit::wait::skip(test, &why);
            None
        }
    }
}

/// Runs promtool with `args`; whether it succeeded, and what it printed.
fn run(promtool: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Installs the example configuration in `root` as its comments say to under
/// /etc/prometheus/weft/ (the rules, the proxy targets, a CA and a token), with its
/// paths pointing there; returns the configuration's path.
fn install(root: &Path) -> PathBuf {
    let example = std::fs::read_to_string(dir().join("prometheus.yml")).unwrap();
    assert!(
        example.contains(INSTALLED),
        "prometheus.yml names no file under {INSTALLED}: update this test"
    );
    std::fs::copy(dir().join("rules.yml"), root.join("rules.yml")).unwrap();
    std::fs::create_dir(root.join("proxies")).unwrap();
    for entry in std::fs::read_dir(dir().join("proxies")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, root.join("proxies").join(path.file_name().unwrap())).unwrap();
    }
    let pki = weft_testkit::ca::TestPki::new("cluster.local").unwrap();
    std::fs::copy(pki.ca_path(), root.join("ca.crt")).unwrap();
    std::fs::write(root.join("token"), "weft-read-example\n").unwrap();
    let config = root.join("prometheus.yml");
    let installed = example.replace(INSTALLED, &format!("{}/", root.display()));
    std::fs::write(&config, installed).unwrap();
    config
}

#[test]
fn the_example_prometheus_config_passes_promtool_with_its_rules_and_proxy_targets() {
    let Some(promtool) =
        promtool("the_example_prometheus_config_passes_promtool_with_its_rules_and_proxy_targets")
    else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let config = install(root.path());
    let (ok, out) = run(
        &promtool,
        &["check", "config", config.to_str().unwrap()],
        root.path(),
    );
    assert!(ok, "promtool check config refused prometheus.yml:\n{out}");
    // A warning is a file the configuration names that is not there (file_sd files
    // matching nothing): the example would scrape nothing.
    assert!(
        !out.contains("WARNING"),
        "promtool warned about prometheus.yml:\n{out}"
    );
    assert!(
        out.contains("rules found"),
        "promtool did not check the rules prometheus.yml names:\n{out}"
    );
}

#[test]
fn the_example_rules_pass_promtool_with_every_lint() {
    let Some(promtool) = promtool("the_example_rules_pass_promtool_with_every_lint") else {
        return;
    };
    let (ok, out) = run(
        &promtool,
        &["check", "rules", "--lint=all", "--lint-fatal", "rules.yml"],
        &dir(),
    );
    assert!(ok, "promtool check rules refused rules.yml:\n{out}");
}

#[test]
fn every_dashboard_query_is_promql_promtool_parses() {
    let Some(promtool) = promtool("every_dashboard_query_is_promql_promtool_parses") else {
        return;
    };
    let queries = dashboard_queries(&[]);
    assert!(
        queries.len() >= 50,
        "only {} dashboard queries found: is the scan broken?",
        queries.len()
    );
    // Each query as a recording rule: promtool parses every expression of a rule file.
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| json!({ "record": format!("dashboard_query_{i}"), "expr": q.expr }))
        .collect();
    let file = json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join("dashboards.yml"),
        serde_json::to_string_pretty(&file).unwrap(),
    )
    .unwrap();
    let (ok, out) = run(
        &promtool,
        &["check", "rules", "--lint=none", "dashboards.yml"],
        root.path(),
    );
    let index: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("dashboard_query_{i}: {}", q.origin))
        .collect();
    assert!(
        ok,
        "a dashboard query is not PromQL:\n{out}\nwhich query is which:\n{}",
        index.join("\n")
    );
}

#[test]
fn every_dashboard_reads_prometheus_through_its_datasource_variable_with_builtin_panels() {
    let through_variable = json!({ "type": "prometheus", "uid": "${datasource}" });
    let mut uids = BTreeSet::new();
    for name in DASHBOARDS {
        let board = dashboard(name);
        assert_eq!(board["schemaVersion"], 39, "{name}: schemaVersion");
        assert!(
            uids.insert(board["uid"].as_str().unwrap_or_default().to_owned()),
            "{name}: no uid, or another dashboard's"
        );
        assert!(
            board.get("__requires").is_none() && board.get("__inputs").is_none(),
            "{name}: imports with no inputs or plugins to resolve"
        );
        let variables = board["templating"]["list"].as_array().unwrap();
        let datasource = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(datasource["type"], "datasource", "{name}");
        assert_eq!(datasource["query"], "prometheus", "{name}");
        let defined: BTreeSet<&str> = variables
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for variable in variables.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                variable["datasource"], through_variable,
                "{name}: variable {}",
                variable["name"]
            );
        }

        let mut ids = BTreeSet::new();
        for panel in panels(&board) {
            let title = &panel["title"];
            let kind = panel["type"].as_str().unwrap_or_default();
            assert!(
                BUILTIN_PANELS.contains(&kind),
                "{name}: {title} is a {kind:?} panel, not a built-in one"
            );
            assert!(ids.insert(panel["id"].to_string()), "{name}: {title}: id");
            let at = &panel["gridPos"];
            let right = at["x"].as_u64().unwrap() + at["w"].as_u64().unwrap();
            assert!(right <= 24, "{name}: {title} is wider than the dashboard");
            if kind == "row" {
                continue;
            }
            assert_eq!(panel["datasource"], through_variable, "{name}: {title}");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            for target in targets {
                assert_eq!(target["datasource"], through_variable, "{name}: {title}");
                let expr = target["expr"].as_str().unwrap_or_default();
                for used in grafana_variables(expr) {
                    assert!(
                        defined.contains(used.as_str()) || used.starts_with("__"),
                        "{name}: {title} uses ${used}, which the dashboard does not define"
                    );
                }
            }
        }
    }
}

/// The Grafana variables `expr` uses (`$name`, `${name}`, `${name:format}`).
fn grafana_variables(expr: &str) -> Vec<String> {
    expr.split('$')
        .skip(1)
        .map(|after| {
            let name = after.strip_prefix('{').unwrap_or(after);
            name.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The annotations of the alert `name` as it fires with `labels`: its `{{ $labels.x }}`
/// replaced by their values.
fn annotations(name: &str, labels: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let alert = observability::rules()
        .into_iter()
        .find(|rule| rule["alert"] == name)
        .unwrap_or_else(|| panic!("rules.yml has no alert {name}"));
    for (key, text) in alert["annotations"].as_object().unwrap() {
        let mut text = text.as_str().unwrap().to_owned();
        for (label, value) in labels.as_object().unwrap() {
            text = text.replace(
                &format!("{{{{ $labels.{label} }}}}"),
                value.as_str().unwrap(),
            );
        }
        assert!(
            !text.contains("{{"),
            "{name}: this test fills in only labels: {text}"
        );
        out.insert(key.clone(), Value::String(text));
    }
    Value::Object(out)
}

/// An alert of `name` that fires with `labels` (its own labels included).
fn firing(name: &str, labels: &Value) -> Value {
    json!({ "exp_labels": labels, "exp_annotations": annotations(name, labels) })
}

#[test]
fn the_example_rules_record_success_rates_and_alert_on_5xx_nacks_and_failed_handshakes_and_signing()
{
    let Some(promtool) = promtool(
        "the_example_rules_record_success_rates_and_alert_on_5xx_nacks_and_failed_handshakes_and_signing",
    ) else {
        return;
    };
    let outbound = |service: &str, class: &str| {
        format!(
            "weft_proxy_requests_total{{direction=\"outbound\", destination_service=\"{service}\", response_class=\"{class}\"}}"
        )
    };
    let handshakes = |result: &str| {
        format!(
            "weft_proxy_hbone_handshakes_total{{job=\"weft-proxy\", instance=\"10.0.4.7\", direction=\"outbound\", result=\"{result}\"}}"
        )
    };
    let recorded = |name: &str| {
        format!("destination_service:weft_proxy_requests:{name}{{destination_service=\"shop.default\"}}")
    };
    let test = json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                // shop: 1 request/s, one in ten a 5xx. cart: one in a hundred.
                { "series": outbound("shop.default", "2xx"), "values": "0+54x30" },
                { "series": outbound("shop.default", "5xx"), "values": "0+6x30" },
                { "series": outbound("cart.default", "2xx"), "values": "0+99x30" },
                { "series": outbound("cart.default", "5xx"), "values": "0+1x30" },
                // One NACK at minute 3; ACKs all along.
                { "series": "weft_control_xds_replies_total{type=\"RouteTable\", result=\"nack\"}", "values": "0 0 0 1x27" },
                { "series": "weft_control_xds_replies_total{type=\"Service\", result=\"ack\"}", "values": "0+5x30" },
                // One certificate the CA could not sign, at minute 11.
                { "series": "weft_control_certificate_requests_total{result=\"failed\"}", "values": "0x10 1x19" },
                { "series": "weft_control_certificate_requests_total{result=\"issued\"}", "values": "0+2x30" },
                // A proxy whose dialled handshakes fail now and then from the start.
                { "series": handshakes("failed"), "values": "0+1x30" },
                { "series": handshakes("ok"), "values": "0+10x30" },
            ],
            "promql_expr_test": [
                {
                    "expr": recorded("rate5m"),
                    "eval_time": "10m",
                    "exp_samples": [{ "labels": recorded("rate5m"), "value": 1 }],
                },
                {
                    "expr": recorded("success_ratio_rate5m"),
                    "eval_time": "10m",
                    "exp_samples": [{ "labels": recorded("success_ratio_rate5m"), "value": 0.9 }],
                },
            ],
            "alert_rule_test": [
                // 10% 5xx pages after five minutes, 1% never.
                { "alertname": "WeftServiceHighErrorRate", "eval_time": "4m", "exp_alerts": [] },
                {
                    "alertname": "WeftServiceHighErrorRate",
                    "eval_time": "10m",
                    "exp_alerts": [firing("WeftServiceHighErrorRate",
                        &json!({ "severity": "warning", "destination_service": "shop.default" }))],
                },
                {
                    "alertname": "WeftProxyRejectedConfig",
                    "eval_time": "5m",
                    "exp_alerts": [firing("WeftProxyRejectedConfig",
                        &json!({ "severity": "warning", "type": "RouteTable" }))],
                },
                { "alertname": "WeftProxyRejectedConfig", "eval_time": "25m", "exp_alerts": [] },
                { "alertname": "WeftCertificateSigningFailed", "eval_time": "10m", "exp_alerts": [] },
                {
                    "alertname": "WeftCertificateSigningFailed",
                    "eval_time": "12m",
                    "exp_alerts": [firing("WeftCertificateSigningFailed",
                        &json!({ "severity": "critical" }))],
                },
                { "alertname": "WeftCertificateRequestsRefused", "eval_time": "25m", "exp_alerts": [] },
                {
                    "alertname": "WeftHboneHandshakesFailing",
                    "eval_time": "15m",
                    "exp_alerts": [firing("WeftHboneHandshakesFailing", &json!({
                        "severity": "warning",
                        "instance": "10.0.4.7",
                        "direction": "outbound",
                        "result": "failed",
                    }))],
                },
            ],
        }],
    });
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(dir().join("rules.yml"), root.path().join("rules.yml")).unwrap();
    std::fs::write(
        root.path().join("rules_test.yml"),
        serde_json::to_string_pretty(&test).unwrap(),
    )
    .unwrap();
    let (ok, out) = run(&promtool, &["test", "rules", "rules_test.yml"], root.path());
    assert!(ok, "the rules do not compute what they say:\n{out}");
}

#[test]
fn grafana_variables_become_values_promql_accepts() {
    let expr = r#"sum(rate(m{a="$service", b=~"${instance:regex}", c="${datasource}"}[$__rate_interval])) offset $__range"#;
    assert_eq!(
        observability::substitute(expr, &[("service", "echo.default")]),
        r#"sum(rate(m{a="echo.default", b=~"x", c="x"}[5m])) offset 5m"#
    );
    assert_eq!(
        grafana_variables(expr),
        [
            "service",
            "instance",
            "datasource",
            "__rate_interval",
            "__range"
        ]
    );
}

#[test]
fn promql_names_come_from_selectors_and_groupings_not_strings_functions_or_ranges() {
    let used = names(
        r#"histogram_quantile(0.99, sum by (destination_service, le) (rate(weft_x_bucket{direction="outbound", route=~"a|b(c)"}[5m:1m])))
          / ignoring (route) group_left () sum without (status) (a:weft_y:rate5m) and on() up == bool 1 # weft_comment"#,
    );
    let metrics: BTreeMap<String, BTreeSet<String>> = [
        ("weft_x_bucket", &["direction", "route"][..]),
        ("a:weft_y:rate5m", &[]),
        ("up", &[]),
    ]
    .into_iter()
    .map(|(m, labels)| {
        (
            m.to_owned(),
            labels.iter().map(|l| (*l).to_owned()).collect(),
        )
    })
    .collect();
    assert_eq!(used.metrics, metrics);
    let grouping: BTreeSet<String> = ["destination_service", "le", "route", "status"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(used.grouping, grouping);
}

#[test]
fn exposition_text_gives_each_sample_name_its_label_names() {
    let text = "# HELP weft_proxy_requests HTTP requests.\n\
                # TYPE weft_proxy_requests counter\n\
                weft_proxy_requests_total{direction=\"inbound\",source_identity=\"spiffe://td/ns/a,b=\\\"c\\\"}/sa/x\",status=\"200\"} 3\n\
                # TYPE weft_proxy_request_duration_seconds histogram\n\
                weft_proxy_request_duration_seconds_bucket{le=\"0.5\"} 1\n\
                # TYPE weft_control_proxies_connected gauge\n\
                weft_control_proxies_connected 2\n\
                # EOF\n";
    let exposed = observability::exposed(text);
    let labels = |name: &str| -> Vec<&str> { exposed[name].iter().map(String::as_str).collect() };
    assert_eq!(
        labels("weft_proxy_requests_total"),
        ["direction", "source_identity", "status"]
    );
    assert_eq!(labels("weft_proxy_request_duration_seconds_bucket"), ["le"]);
    assert!(labels("weft_proxy_request_duration_seconds_count").is_empty());
    assert!(labels("weft_control_proxies_connected").is_empty());
    assert_eq!(exposed.len(), 5, "{exposed:?}");
}

#[test]
fn a_misspelt_metric_or_label_is_reported_with_its_query() {
    let exposed = observability::exposed(
        "# TYPE weft_proxy_requests counter\nweft_proxy_requests_total{direction=\"inbound\",status=\"200\"} 1\n",
    );
    let recorded = BTreeMap::from([(
        "service:weft_proxy_requests:rate5m".to_owned(),
        BTreeSet::from(["destination_service".to_owned()]),
    )]);
    let query = |origin: &str, expr: &str| observability::Query {
        origin: origin.to_owned(),
        expr: expr.to_owned(),
    };
    let problems = observability::misnamed(
        &[
            query(
                "fine",
                r#"sum by (status, instance) (rate(weft_proxy_requests_total{direction="inbound", job="x"}[5m])) or up or service:weft_proxy_requests:rate5m"#,
            ),
            query("metric", "weft_proxy_request_total"),
            query("label", r#"weft_proxy_requests_total{directon="inbound"}"#),
            query("grouping", "sum by (code) (weft_proxy_requests_total)"),
            query("recorded", "service:weft_proxy_requests:rate1h"),
        ],
        &exposed,
        &recorded,
    );
    let origins: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        origins,
        ["metric", "label", "grouping", "recorded"],
        "{problems:#?}"
    );
}
