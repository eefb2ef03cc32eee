//! `TrafficPermission` and the mesh's default actions: validation with field paths,
//! and the `Authorization` each workload's `InboundPolicy` gets.

use weft_api::pb::v1 as pb;

use super::{
    assert_errors, compile, errors, healthy, key, object, workload, Kind, SERVICE, WORKLOAD,
};

const PERMISSION: &str = r#"
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: readers, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: echo }]
  rules:
    - from:
        - serviceAccount: frontend
        - serviceAccount: ops/admin
        - namespace: checkout
        - identity: "spiffe://cluster.local/ns/batch/*"
        - service: web
        - unauthenticated: true
      to:
        - ports: [80]
          methods: [get]
          paths: [{ type: PathPrefix, value: /items }, { type: Glob, value: "/files/**", ignoreCase: true }]
          hosts: ["Echo.Shop", "*.example.com"]
          headers: [{ name: x-tenant, value: blue }]
          grpc: [{ service: shop.v1.Catalog, method: Get }]
"#;

const WEB: &str = r"
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ port: 80 }]
";

fn authorization(compiled: &crate::Compiled, workload: &str) -> pb::Authorization {
    compiled.inbound_policies[workload]
        .authorization
        .clone()
        .expect("an authorization")
}

fn identities(p: &pb::Permission) -> Vec<String> {
    p.from
        .iter()
        .map(|f| match &f.kind {
            Some(pb::principal::Kind::Identity(id)) => id.clone(),
            Some(pb::principal::Kind::Unauthenticated(_)) => "unauthenticated".to_owned(),
            None => "?".to_owned(),
        })
        .collect()
}

#[test]
fn a_permission_validates() {
    assert_eq!(errors(PERMISSION), Vec::<String>::new());
}

#[test]
fn rejects_bad_permissions_with_path_and_message() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            PERMISSION.replace("kind: Service", "kind: HTTPRoute"),
            "spec.targetRefs[0].kind",
            "targets a Service",
        ),
        (
            PERMISSION.replace("name: echo }]", "name: echo, port: 0 }]"),
            "spec.targetRefs[0].port",
            "1-65535",
        ),
        (
            format!("{PERMISSION}  colour: red\n"),
            "spec.colour",
            "unknown field",
        ),
        (
            PERMISSION.replace(
                "- serviceAccount: frontend",
                "- { serviceAccount: frontend, namespace: shop }",
            ),
            "spec.rules[0].from[0]",
            "names 2 kinds of caller",
        ),
        (
            PERMISSION.replace("- serviceAccount: frontend", "- {}"),
            "spec.rules[0].from[0]",
            "names 0 kinds",
        ),
        (
            PERMISSION.replace(
                "spiffe://cluster.local/ns/batch/*",
                "spiffe://cluster.local/*/sa/x",
            ),
            "spec.rules[0].from[3].identity",
            "may only end the pattern",
        ),
        (
            PERMISSION.replace(
                "spiffe://cluster.local/ns/batch/*",
                "cluster.local/ns/batch",
            ),
            "spec.rules[0].from[3].identity",
            "is not a SPIFFE ID",
        ),
        (
            PERMISSION.replace("unauthenticated: true", "unauthenticated: false"),
            "spec.rules[0].from[5].unauthenticated",
            "names nobody",
        ),
        (
            PERMISSION.replace("namespace: checkout", "namespace: Checkout"),
            "spec.rules[0].from[2].namespace",
            "not a valid",
        ),
        (
            PERMISSION.replace("ports: [80]", "ports: [0]"),
            "spec.rules[0].to[0].ports[0]",
            "1-65535",
        ),
        (
            PERMISSION.replace("value: /items }", "value: items }"),
            "spec.rules[0].to[0].paths[0].value",
            "must start with '/'",
        ),
        (
            PERMISSION.replace("value: /items }", "value: /items/../admin }"),
            "spec.rules[0].to[0].paths[0].value",
            "not a normalised path",
        ),
        (
            PERMISSION.replace("value: /items }", "value: '/it%65ms' }"),
            "spec.rules[0].to[0].paths[0].value",
            "write the decoded path",
        ),
        (
            PERMISSION.replace("value: /items }", "value: '/items/*' }"),
            "spec.rules[0].to[0].paths[0].value",
            "use type: Glob",
        ),
        (
            PERMISSION.replace("methods: [get]", "methods: ['GE T']"),
            "spec.rules[0].to[0].methods[0]",
            "not an HTTP method",
        ),
        (
            PERMISSION.replace("\"Echo.Shop\"", "\"echo.shop:80\""),
            "spec.rules[0].to[0].hosts[0]",
            "without a port",
        ),
        (
            PERMISSION.replace("name: x-tenant", "name: 'x tenant'"),
            "spec.rules[0].to[0].headers[0].name",
            "not a valid name",
        ),
        (
            PERMISSION.replace("method: Get }", "method: Get/x }"),
            "spec.rules[0].to[0].grpc[0].method",
            "not a gRPC method",
        ),
        (
            PERMISSION
                .split("  rules:\n")
                .next()
                .map(|head| format!("{head}  rules: []\n"))
                .unwrap_or_default(),
            "spec.rules",
            "at least one rule",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn a_permission_compiles_to_identities_and_target_ports_on_the_selected_workloads() {
    let web = workload("web-1", "shop", "10.0.0.9", "{ app: web }", "Healthy");
    let mut web_obj = web;
    web_obj.spec["serviceAccount"] = "web-sa".into();
    let compiled = compile(&[
        object(SERVICE),
        object(WEB),
        healthy(object(WORKLOAD)),
        web_obj,
        object(PERMISSION),
    ]);
    let a = authorization(&compiled, "echo-1.shop");
    assert_eq!(a.default_action, pb::AuthzAction::Allow as i32);
    assert_eq!(a.rules.len(), 1);
    let rule = &a.rules[0];
    assert_eq!(rule.source, "TrafficPermission/shop/readers");
    assert_eq!(rule.ports, [8080], "the service's target port");
    assert_eq!(
        identities(rule),
        [
            "spiffe://cluster.local/ns/shop/sa/frontend",
            "spiffe://cluster.local/ns/ops/sa/admin",
            "spiffe://cluster.local/ns/checkout/sa/*",
            "spiffe://cluster.local/ns/batch/*",
            "spiffe://cluster.local/ns/shop/sa/web-sa",
            "unauthenticated",
        ]
    );
    let to = &rule.to[0];
    assert_eq!(to.ports, [8080], "service port 80 is target port 8080");
    assert_eq!(to.methods, ["GET"]);
    assert_eq!(to.hosts, ["echo.shop", "*.example.com"]);
    assert!(matches!(&to.paths[1].kind, Some(pb::path_pattern::Kind::Glob(g)) if g == "/files/**"));
    assert!(to.paths[1].ignore_case);
    assert_eq!(
        (to.grpc[0].service.as_str(), to.grpc[0].method.as_str()),
        ("shop.v1.Catalog", "Get")
    );
    // The web workload is not a target: nothing applies there.
    assert!(compiled.inbound_policies["web-1.shop"]
        .authorization
        .is_none());
    let status = &compiled.statuses[&key(Kind::TrafficPermission, "shop", "readers")];
    assert_eq!(status["ancestors"][0]["conditions"][0]["status"], "True");
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");
}

#[test]
fn a_rule_that_cannot_match_is_left_out_never_widened_and_the_status_says_why() {
    let yaml = PERMISSION
        .replace("- service: web\n", "- service: gone\n")
        .replace("ports: [80]", "ports: [81]");
    let compiled = compile(&[object(SERVICE), healthy(object(WORKLOAD)), object(&yaml)]);
    // Its only `to` names a port the service does not have: the rule is dropped, not
    // turned into "every request".
    assert!(compiled.inbound_policies["echo-1.shop"]
        .authorization
        .is_none());
    let c = &compiled.statuses[&key(Kind::TrafficPermission, "shop", "readers")]["conditions"][0];
    assert_eq!(c["status"], "False");
    let message = c["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.rules[0].from[4].service: Service shop/gone does not exist"),
        "{message}"
    );
    assert!(
        message.contains("spec.rules[0].to[0].ports[0]: 81 is not a port of the targets"),
        "{message}"
    );

    let only_gone = r"
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: gone-only, namespace: shop }
spec:
  action: allow
  rules: [{ from: [{ service: gone }] }]
";
    let compiled = compile(&[
        object(SERVICE),
        healthy(object(WORKLOAD)),
        object(only_gone),
    ]);
    assert!(
        compiled.inbound_policies["echo-1.shop"]
            .authorization
            .is_none(),
        "callers that resolve to nobody are not everybody"
    );
}

#[test]
fn a_namespace_wide_permission_covers_every_port_of_every_workload_there() {
    let yaml = r"
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: no-debug, namespace: shop }
spec:
  action: deny
  rules: [{ to: [{ ports: [9090] }] }]
";
    let compiled = compile(&[
        object(SERVICE),
        healthy(object(WORKLOAD)),
        workload("other", "elsewhere", "10.0.0.5", "{ app: echo }", "Healthy"),
        object(yaml),
    ]);
    let a = authorization(&compiled, "echo-1.shop");
    assert_eq!(a.rules[0].action, pb::AuthzAction::Deny as i32);
    assert!(a.rules[0].ports.is_empty(), "every port");
    assert_eq!(a.rules[0].to[0].ports, [9090], "workload ports as written");
    assert!(compiled.inbound_policies["other.elsewhere"]
        .authorization
        .is_none());
}

#[test]
fn default_actions_follow_the_most_specific_override_and_the_strictest_service() {
    let mesh = r"
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: { name: default }
spec:
  defaultAction: allow
  defaultActionOverrides:
    - { namespace: shop, defaultAction: audit }
    - { namespace: shop, service: echo, defaultAction: deny }
    - { namespace: shop, service: echo-alias, defaultAction: allow }
";
    let alias = SERVICE
        .replace("name: echo,", "name: echo-alias,")
        .replace("vip: 10.96.0.10", "vip: 10.96.0.11");
    let compiled = compile(&[
        object(mesh),
        object(SERVICE),
        object(&alias),
        healthy(object(WORKLOAD)),
        workload("lone", "shop", "10.0.0.6", "{ app: lone }", "Healthy"),
        workload("away", "prod", "10.0.0.7", "{ app: echo }", "Healthy"),
    ]);
    let echo = authorization(&compiled, "echo-1.shop");
    assert_eq!(
        echo.default_action,
        pb::AuthzAction::Audit as i32,
        "the namespace's"
    );
    assert_eq!(echo.ports.len(), 1);
    assert_eq!(
        (echo.ports[0].port, echo.ports[0].action),
        (8080, pb::AuthzAction::Deny as i32),
        "two services disagree on 8080: the strictest"
    );
    let lone = authorization(&compiled, "lone.shop");
    assert_eq!(lone.default_action, pb::AuthzAction::Audit as i32);
    assert!(lone.ports.is_empty());
    assert!(
        compiled.inbound_policies["away.prod"]
            .authorization
            .is_none(),
        "another namespace keeps the mesh's allow"
    );
}

const CUSTOM: &str = r"
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: opa, namespace: shop }
spec:
  targetRefs: [{ kind: Service, name: echo }]
  action: custom
  provider: { name: opa }
  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /api }] }] }]
";

const PROVIDERS: &str = r#"
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: { name: default }
spec:
  authorizationProviders:
    - { name: opa, address: "127.0.0.1:9191", timeout: 150ms, failOpen: true }
"#;

#[test]
fn custom_permissions_name_a_provider_the_mesh_declares_on_loopback() {
    assert_eq!(errors(CUSTOM), Vec::<String>::new());
    assert_eq!(errors(PROVIDERS), Vec::<String>::new());
    let cases: Vec<(String, &str, &str)> = vec![
        (
            CUSTOM.replace("  provider: { name: opa }\n", ""),
            "spec.provider",
            "needs the provider",
        ),
        (
            CUSTOM.replace("action: custom", "action: deny"),
            "spec.provider",
            "only action: custom",
        ),
        (
            PROVIDERS.replace("127.0.0.1:9191", "10.0.0.9:9191"),
            "spec.authorizationProviders[0].address",
            "not a loopback address",
        ),
        (
            PROVIDERS.replace("timeout: 150ms", "timeout: soon"),
            "spec.authorizationProviders[0].timeout",
            "not a Gateway API duration",
        ),
        (
            PROVIDERS.replace(
                "failOpen: true }",
                "failOpen: true }\n    - { name: opa, address: \"127.0.0.1:1\" }",
            ),
            "spec.authorizationProviders[1].name",
            "used by another provider",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn a_custom_rule_carries_its_provider_and_an_unknown_provider_fails_closed() {
    let compiled = compile(&[
        object(PROVIDERS),
        object(SERVICE),
        healthy(object(WORKLOAD)),
        object(CUSTOM),
    ]);
    let a = authorization(&compiled, "echo-1.shop");
    assert_eq!(a.rules[0].action, pb::AuthzAction::Custom as i32);
    assert_eq!(a.rules[0].provider, "opa");
    assert_eq!(a.providers.len(), 1);
    let p = &a.providers[0];
    assert_eq!((p.address.as_str(), p.fail_open), ("127.0.0.1:9191", true));
    assert_eq!(p.timeout.map(|d| d.nanos), Some(150_000_000));

    let compiled = compile(&[object(SERVICE), healthy(object(WORKLOAD)), object(CUSTOM)]);
    let a = authorization(&compiled, "echo-1.shop");
    assert_eq!(
        a.rules[0].action,
        pb::AuthzAction::Deny as i32,
        "no provider to ask: the rule refuses what it matches"
    );
    assert!(a.providers.is_empty());
    let c = &compiled.statuses[&key(Kind::TrafficPermission, "shop", "opa")]["conditions"][0];
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"opa\" is not one of Mesh.spec.authorizationProviders")),
        "{c}"
    );
}

#[test]
fn an_allow_permission_under_a_default_of_allow_is_flagged_as_having_no_effect() {
    let compiled = compile(&[
        object(SERVICE),
        healthy(object(WORKLOAD)),
        object(PERMISSION),
    ]);
    let conditions =
        &compiled.statuses[&key(Kind::TrafficPermission, "shop", "readers")]["conditions"];
    assert_eq!(conditions[1]["type"], "Effective", "{conditions}");
    assert_eq!(conditions[1]["reason"], "DefaultAllows");

    let deny = r"
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: { name: default }
spec: { defaultActionOverrides: [{ namespace: shop, defaultAction: deny }] }
";
    let compiled = compile(&[
        object(deny),
        object(SERVICE),
        healthy(object(WORKLOAD)),
        object(PERMISSION),
    ]);
    let conditions =
        &compiled.statuses[&key(Kind::TrafficPermission, "shop", "readers")]["conditions"];
    assert_eq!(conditions.as_array().map(Vec::len), Some(1), "{conditions}");
}

#[test]
fn a_permission_under_a_deny_of_everything_on_its_targets_is_flagged_as_shadowed() {
    let deny_all = r"
apiVersion: weft.dev/v1alpha1
kind: TrafficPermission
metadata: { name: lockdown, namespace: shop }
spec:
  action: deny
  rules: [{}]
";
    let deny_mesh = r"
apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata: { name: default }
spec: { defaultAction: deny }
";
    let compiled = compile(&[
        object(deny_mesh),
        object(SERVICE),
        healthy(object(WORKLOAD)),
        object(PERMISSION),
        object(deny_all),
    ]);
    let conditions =
        &compiled.statuses[&key(Kind::TrafficPermission, "shop", "readers")]["conditions"];
    assert_eq!(conditions[1]["reason"], "ShadowedByDeny", "{conditions}");
    assert_eq!(
        conditions[1]["message"],
        "rules[0] never applies: TrafficPermission shop/lockdown rules[0] denies every \
         request it matches, and deny wins",
        "{conditions}"
    );
    let lockdown =
        &compiled.statuses[&key(Kind::TrafficPermission, "shop", "lockdown")]["conditions"];
    assert_eq!(
        lockdown.as_array().map(Vec::len),
        Some(1),
        "a deny is not shadowed: {lockdown}"
    );
}

/// The conditions a permission `allow` (its `spec` after `targetRefs`/`rules`) gets
/// beside a `deny` with `deny_spec`, under a default of deny.
fn shadow_conditions(deny_spec: &str, allow_spec: &str) -> serde_json::Value {
    let mesh = "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec: { defaultAction: deny }\n";
    let permission = |name: &str, action: &str, spec: &str| {
        format!(
            "apiVersion: weft.dev/v1alpha1\nkind: TrafficPermission\nmetadata: {{ name: {name}, namespace: shop }}\nspec:\n  action: {action}\n{spec}"
        )
    };
    let compiled = compile(&[
        object(mesh),
        object(SERVICE),
        healthy(object(WORKLOAD)),
        object(&permission("guard", "deny", deny_spec)),
        object(&permission("open", "allow", allow_spec)),
    ]);
    compiled.statuses[&key(Kind::TrafficPermission, "shop", "open")]["conditions"].clone()
}

#[test]
fn an_allow_rule_is_reported_dead_only_when_a_deny_provably_matches_all_it_matches() {
    // (deny rules, allow rules, the reason expected beside RulesMatchable)
    let cases: &[(&str, &str, Option<&str>)] = &[
        // callers: prefixes, namespaces, service accounts, unauthenticated
        (
            "  rules: [{ from: [{ identity: \"spiffe://cluster.local/ns/batch/*\" }] }]\n",
            "  rules: [{ from: [{ serviceAccount: batch/worker }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ from: [{ namespace: batch }] }]\n",
            "  rules: [{ from: [{ identity: spiffe://cluster.local/ns/batch/sa/x }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ from: [{ namespace: batch }] }]\n",
            "  rules: [{ from: [{ namespace: batch2 }] }]\n",
            None,
        ),
        (
            "  rules: [{ from: [{ namespace: batch }] }]\n",
            "  rules: [{ from: [{ namespace: batch }, { namespace: web }] }]\n",
            None,
        ),
        (
            "  rules: [{ from: [{ unauthenticated: true }] }]\n",
            "  rules: [{ from: [{ unauthenticated: true }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ from: [{ unauthenticated: true }] }]\n",
            "  rules: [{ from: [{ identity: \"*\" }] }]\n",
            None,
        ),
        (
            "  rules: [{ from: [{ identity: spiffe://cluster.local/ns/batch/sa/x }] }]\n",
            "  rules: [{ from: [{ identity: \"spiffe://cluster.local/ns/batch/sa/x*\" }] }]\n",
            None,
        ),
        // paths: segment-boundary prefixes, case, globs
        (
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /admin/ }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: Exact, value: /admin/users }, { type: PathPrefix, value: /admin }] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /admin }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /administrator }] }] }]\n",
            None,
        ),
        (
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /admin }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /admin, ignoreCase: true }] }] }]\n",
            None,
        ),
        (
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /Admin, ignoreCase: true }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: Exact, value: /ADMIN/x }] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: /files }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: Glob, value: \"/files/*/raw\" }] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ paths: [{ type: Glob, value: \"/files/**\" }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: Glob, value: \"/files/*\" }] }] }]\n",
            None,
        ),
        (
            "  rules: [{ to: [{ paths: [{ type: PathPrefix, value: / }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ type: Exact, value: /anything }] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        // methods, headers (all must match), hosts, gRPC
        (
            "  rules: [{ to: [{ methods: [POST] }] }]\n",
            "  rules: [{ to: [{ methods: [post] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ methods: [POST] }] }]\n",
            "  rules: [{ to: [{ methods: [POST, GET] }] }]\n",
            None,
        ),
        (
            "  rules: [{ to: [{ headers: [{ name: x-a, value: \"1\" }] }] }]\n",
            "  rules: [{ to: [{ headers: [{ name: X-A, value: \"1\" }, { name: x-b, value: \"2\" }] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ headers: [{ name: x-a, value: \"1\" }, { name: x-b, value: \"2\" }] }] }]\n",
            "  rules: [{ to: [{ headers: [{ name: x-a, value: \"1\" }] }] }]\n",
            None,
        ),
        (
            "  rules: [{ to: [{ hosts: [\"*.example.com\"] }] }]\n",
            "  rules: [{ to: [{ hosts: [a.Example.com] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ grpc: [{ service: shop.v1.Catalog }] }] }]\n",
            "  rules: [{ to: [{ grpc: [{ service: shop.v1.Catalog, method: Get }] }] }]\n",
            Some("ShadowedByDeny"),
        ),
        (
            "  rules: [{ to: [{ grpc: [{ service: shop.v1.Catalog }] }] }]\n",
            "  rules: [{ to: [{ methods: [POST] }] }]\n",
            None,
        ),
        // targets: a deny on one port does not cover an allow on the whole service
        (
            "  targetRefs: [{ kind: Service, name: echo, port: 80 }]\n  rules: [{}]\n",
            "  targetRefs: [{ kind: Service, name: echo }]\n  rules: [{}]\n",
            None,
        ),
        (
            "  rules: [{}]\n",
            "  targetRefs: [{ kind: Service, name: echo, port: 80 }]\n  rules: [{ from: [{ namespace: web }] }]\n",
            Some("ShadowedByDeny"),
        ),
        // ports mean service ports under a Service, workload ports under a namespace
        (
            "  rules: [{ to: [{ ports: [80] }] }]\n",
            "  targetRefs: [{ kind: Service, name: echo }]\n  rules: [{ to: [{ ports: [80] }] }]\n",
            None,
        ),
        // some rules dead, others not
        (
            "  rules: [{ to: [{ paths: [{ value: /admin }] }] }]\n",
            "  rules: [{ to: [{ paths: [{ value: /admin/x }] }] }, { to: [{ paths: [{ value: /public }] }] }]\n",
            Some("ShadowedRules"),
        ),
    ];
    for (deny, allow, expected) in cases {
        let conditions = shadow_conditions(deny, allow);
        let list = conditions.as_array().expect("conditions");
        assert_eq!(
            list[0]["status"], "True",
            "every rule must be matchable in this table: {deny}{allow}{conditions}"
        );
        let got = list
            .get(1)
            .map(|c| c["reason"].as_str().unwrap_or_default());
        assert_eq!(got, *expected, "deny:\n{deny}allow:\n{allow}{conditions}");
    }
}

#[test]
fn a_dead_rule_names_the_deny_rule_that_covers_it() {
    let conditions = shadow_conditions(
        "  rules: [{ from: [{ namespace: web }] }, { to: [{ paths: [{ value: /admin }] }] }]\n",
        "  rules: [{ to: [{ paths: [{ value: /public }] }] }, { to: [{ methods: [GET], paths: [{ value: /admin/x }] }] }]\n",
    );
    assert_eq!(conditions[1]["type"], "Conflicted", "{conditions}");
    assert_eq!(conditions[1]["status"], "True", "{conditions}");
    assert_eq!(
        conditions[1]["message"],
        "rules[1] never applies: TrafficPermission shop/guard rules[1] denies every request it \
         matches, and deny wins",
        "{conditions}"
    );
}
