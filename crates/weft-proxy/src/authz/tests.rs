use http::HeaderValue;

use super::*;

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const BATCH: &str = "spiffe://cluster.local/ns/jobs/sa/batch";
const ADMIN: &str = "spiffe://cluster.local/ns/ops/sa/admin";

fn policy(yaml: &str) -> Policy {
    let a: api::Authorization = serde_saphyr::from_str(yaml).expect("authorization yaml");
    Policy::compile(&a).expect("compiles")
}

struct Req {
    method: &'static str,
    path: &'static str,
    params: Option<&'static str>,
    host: &'static str,
    headers: HeaderMap,
}

fn get(path: &'static str) -> Req {
    Req {
        method: "GET",
        path,
        params: None,
        host: "catalog.shop.svc.cluster.local",
        headers: HeaderMap::new(),
    }
}

impl Req {
    fn method(mut self, m: &'static str) -> Self {
        self.method = m;
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }

    fn host(mut self, h: &'static str) -> Self {
        self.host = h;
        self
    }

    fn params(mut self, without: &'static str) -> Self {
        self.params = Some(without);
        self
    }

    fn view(&self) -> Request<'_> {
        Request {
            method: self.method,
            path: self.path,
            path_without_params: self.params,
            host: self.host,
            headers: &self.headers,
            header_names: HeaderNames::of(&self.headers),
        }
    }
}

/// The outcome and what decided, as text: `allow by default`, `deny by <source> #<i>`.
fn decide(p: &Policy, port: u16, caller: Option<&str>, traffic: Traffic<'_>) -> String {
    let d = p.decide(port, caller, traffic);
    let outcome = match d.outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::Defer => "defer",
    };
    let by = match d.by {
        None => String::new(),
        Some(By::Default(_)) => " by default".to_owned(),
        Some(By::Rule(r)) => format!(" by {}#{}", r.source, r.index),
    };
    let audit = match d.audit {
        None => String::new(),
        Some(By::Default(_)) => ", audit default".to_owned(),
        Some(By::Rule(r)) => format!(", audit {}#{}", r.source, r.index),
    };
    format!("{outcome}{by}{audit}")
}

#[test]
fn nothing_configured_allows_everything_without_looking() {
    let p = Policy::compile(&api::Authorization::default()).expect("compiles");
    assert!(p.is_open());
    let r = get("/admin");
    assert_eq!(decide(&p, 8080, None, Traffic::Http(&r.view())), "allow");
    assert_eq!(decide(&p, 8080, Some(BATCH), Traffic::Connect), "allow");
}

#[test]
fn deny_wins_over_allow_and_the_default_decides_the_rest() {
    let p = policy(
        r#"
defaultAction: deny
rules:
  - { source: allow-shop, from: [{ identity: "spiffe://cluster.local/ns/shop/*" }] }
  - { source: no-admin, action: deny, to: [{ paths: [{ type: PathPrefix, value: /admin }] }] }
  - source: audit-writes
    action: audit
    to: [{ methods: [POST, DELETE] }]
"#,
    );
    let cases: Vec<(&str, Option<&str>, Req, &str)> = vec![
        (
            "shop reads",
            Some(FRONTEND),
            get("/items"),
            "allow by allow-shop#0",
        ),
        (
            "shop admin",
            Some(FRONTEND),
            get("/admin/users"),
            "deny by no-admin#0",
        ),
        (
            "admin prefix is segment-aware",
            Some(FRONTEND),
            get("/administrator"),
            "allow by allow-shop#0",
        ),
        (
            "other namespace",
            Some(BATCH),
            get("/items"),
            "deny by default",
        ),
        ("plaintext", None, get("/items"), "deny by default"),
        (
            "audited write still served",
            Some(FRONTEND),
            get("/items").method("post"),
            "allow by allow-shop#0, audit audit-writes#0",
        ),
        (
            "audited and denied by default",
            Some(BATCH),
            get("/items").method("DELETE"),
            "deny by default, audit audit-writes#0",
        ),
    ];
    for (name, caller, req, want) in cases {
        assert_eq!(
            decide(&p, 8080, caller, Traffic::Http(&req.view())),
            want,
            "{name}"
        );
    }
}

#[test]
fn default_audit_serves_and_flags_what_deny_would_refuse() {
    let p = policy(
        r#"
defaultAction: allow
ports: { 9090: audit, 7070: deny }
rules:
  - { source: ops, from: [{ identity: "spiffe://cluster.local/ns/ops/sa/admin" }] }
"#,
    );
    let r = get("/");
    assert_eq!(
        decide(&p, 8080, Some(BATCH), Traffic::Http(&r.view())),
        "allow by default"
    );
    assert_eq!(
        decide(&p, 9090, Some(BATCH), Traffic::Http(&r.view())),
        "allow by default, audit default"
    );
    assert_eq!(
        decide(&p, 9090, Some(ADMIN), Traffic::Http(&r.view())),
        "allow by ops#0"
    );
    assert_eq!(
        decide(&p, 7070, Some(BATCH), Traffic::Tcp),
        "deny by default"
    );
    assert_eq!(
        decide(&p, 7070, Some(ADMIN), Traffic::Tcp),
        "allow by ops#0"
    );
}

#[test]
fn callers_match_by_exact_id_prefix_any_identity_or_plaintext() {
    let p = policy(
        r#"
defaultAction: deny
rules:
  - { source: exact, from: [{ identity: "spiffe://cluster.local/ns/ops/sa/admin" }], to: [{ ports: [1] }] }
  - { source: prefix, from: [{ identity: "spiffe://cluster.local/ns/shop/*" }], to: [{ ports: [2] }] }
  - { source: any, from: [{ identity: "*" }], to: [{ ports: [3] }] }
  - { source: plain, from: [{ unauthenticated: true }], to: [{ ports: [4] }] }
  - { source: everyone, to: [{ ports: [5] }] }
"#,
    );
    let callers = [Some(ADMIN), Some(FRONTEND), Some(BATCH), None];
    // Rows: ports 1-5; columns: the callers above.
    let want = [
        [true, false, false, false],
        [false, true, false, false],
        [true, true, true, false],
        [false, false, false, true],
        [true, true, true, true],
    ];
    for (row, port) in (1..=5u16).enumerate() {
        for (col, caller) in callers.iter().enumerate() {
            let got = p.decide(port, *caller, Traffic::Tcp).outcome == Outcome::Allow;
            assert_eq!(got, want[row][col], "port {port} caller {caller:?}");
        }
    }
}

#[test]
fn paths_methods_hosts_headers_and_grpc_methods_all_must_hold() {
    let p = policy(
        r#"
defaultAction: deny
rules:
  - source: reads
    to:
      - methods: [GET, HEAD]
        paths: [{ type: Exact, value: /healthz }, { type: PathPrefix, value: /api/ }, { type: Glob, value: "/files/*/raw" }, { type: Glob, value: "/docs/**.pdf" }]
        hosts: ["catalog.shop.svc.cluster.local", "*.example.com"]
  - source: tenant
    to: [{ headers: [{ name: X-Tenant, value: { exact: blue } }] }]
  - source: grpc
    to: [{ grpc: [{ service: shop.v1.Catalog, method: Get }, { service: shop.v1.Health }] }]
"#,
    );
    let cases: Vec<(Req, bool)> = vec![
        (get("/healthz"), true),
        (get("/healthz/x"), false),
        (get("/api"), true),
        (get("/api/items"), true),
        (get("/apiary"), false),
        (get("/api/items").method("head"), true),
        (get("/api/items").method("POST"), false),
        (get("/files/a/raw"), true),
        (get("/files/a/b/raw"), false),
        (get("/docs/a/b/c.pdf"), true),
        (get("/api/x").host("www.example.com"), true),
        (get("/api/x").host("example.com"), false),
        (get("/api/x").host("evil-example.com"), false),
        (
            get("/private").method("POST").header("x-tenant", "blue"),
            true,
        ),
        (get("/private").header("x-tenant", "red"), false),
        (
            get("/private")
                .header("x-tenant", "red")
                .header("x-tenant", "blue"),
            true,
        ),
        (get("/shop.v1.Catalog/Get").method("POST"), true),
        (get("/shop.v1.Catalog/Delete").method("POST"), false),
        (get("/shop.v1.Health/Check").method("POST"), true),
        (get("/shop.v1.Health/Check/x").method("POST"), false),
    ];
    for (req, allowed) in cases {
        let got = p.decide(80, Some(BATCH), Traffic::Http(&req.view()));
        assert_eq!(
            got.outcome == Outcome::Allow,
            allowed,
            "{} {} host {} {:?}",
            req.method,
            req.path,
            req.host,
            req.headers
        );
    }
}

#[test]
fn ignore_case_covers_paths_an_app_reads_without_case() {
    let p = policy(
        r#"
rules:
  - { source: d, action: deny, to: [{ paths: [{ type: PathPrefix, value: /admin, ignoreCase: true }, { type: Glob, value: "/x/*/SECRET", ignoreCase: true }] }] }
  - { source: s, action: deny, to: [{ paths: [{ type: Exact, value: /Private }] }] }
"#,
    );
    for (path, denied) in [
        ("/ADMIN/users", true),
        ("/Admin", true),
        ("/x/a/secret", true),
        ("/Private", true),
        ("/private", false),
        ("/public", false),
    ] {
        let r = get(path);
        let got = p
            .decide(80, Some(FRONTEND), Traffic::Http(&r.view()))
            .outcome;
        assert_eq!(got == Outcome::Deny, denied, "{path}");
    }
}

#[test]
fn path_parameters_can_widen_a_denial_but_never_an_allowance() {
    let p = policy(
        r"
defaultAction: deny
rules:
  - { source: public, to: [{ paths: [{ type: PathPrefix, value: /public }] }] }
  - { source: no-admin, action: deny, to: [{ paths: [{ type: PathPrefix, value: /public/admin }] }] }
",
    );
    let cases = [
        // A Java server reads `/public/admin;x/keys` as `/public/admin/keys`.
        (
            get("/public/admin;x/keys").params("/public/admin/keys"),
            "deny by no-admin#0",
        ),
        // `/public;x` is `/public` to one server and a sibling of it to another.
        (get("/public;x").params("/public"), "deny by default"),
        (
            get("/public/page;jsessionid=1").params("/public/page"),
            "allow by public#0",
        ),
    ];
    for (req, want) in cases {
        assert_eq!(
            decide(&p, 80, Some(FRONTEND), Traffic::Http(&req.view())),
            want,
            "{}",
            req.path
        );
    }
}

#[test]
fn http_conditions_meet_tcp_by_refusing_and_connect_by_waiting() {
    let p = policy(
        r#"
defaultAction: deny
rules:
  - { source: l7-allow, from: [{ identity: "spiffe://cluster.local/ns/shop/*" }], to: [{ methods: [GET] }] }
  - { source: l7-deny, action: deny, from: [{ identity: "spiffe://cluster.local/ns/ops/*" }], to: [{ paths: [{ type: Exact, value: /x }] }] }
  - { source: l4-deny, action: deny, from: [{ identity: "spiffe://cluster.local/ns/jobs/*" }] }
  - { source: l4-allow, from: [{ identity: "spiffe://cluster.local/ns/ops/*" }], to: [{ ports: [9000] }] }
"#,
    );
    let cases = [
        // A TCP connection: an HTTP allow does not open it; an HTTP deny closes it.
        (FRONTEND, 8080, Traffic::Tcp, "deny by default"),
        (ADMIN, 9000, Traffic::Tcp, "deny by l7-deny#0"),
        // Not known yet: refused only when certain.
        (FRONTEND, 8080, Traffic::Connect, "defer"),
        (BATCH, 8080, Traffic::Connect, "deny by l4-deny#0"),
        (ADMIN, 9000, Traffic::Connect, "defer"),
        (ADMIN, 8080, Traffic::Connect, "deny by default"),
    ];
    for (caller, port, traffic, want) in cases {
        assert_eq!(
            decide(&p, port, Some(caller), traffic),
            want,
            "{caller} {port} {traffic:?}"
        );
    }
}

#[test]
fn rules_apply_only_to_their_ports() {
    let p = policy(
        r"
rules:
  - { source: d, action: deny, ports: [8080] }
  - { source: e, action: deny, to: [{ ports: [7070] }] }
",
    );
    for (port, denied) in [(8080, true), (7070, true), (9090, false)] {
        let got = p.decide(port, Some(FRONTEND), Traffic::Tcp).outcome;
        assert_eq!(got == Outcome::Deny, denied, "port {port}");
    }
}

#[test]
fn hosts_are_compared_lower_case_without_port_or_trailing_dot() {
    let mut buf = String::new();
    for (host, want) in [
        ("Catalog.Shop:8080", "catalog.shop"),
        ("catalog.shop.", "catalog.shop"),
        ("CATALOG.SHOP.:80", "catalog.shop"),
        ("user@catalog.shop", "catalog.shop"),
        ("[::1]:8080", "[::1]"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("plain", "plain"),
    ] {
        assert_eq!(normal_host(host, &mut buf), want, "{host}");
    }
}

#[test]
fn a_rule_that_does_not_compile_names_its_field() {
    let a: api::Authorization = serde_saphyr::from_str(
        "rules: [{ to: [{ headers: [{ name: x, value: { regex: '(' } }] }] }]",
    )
    .expect("yaml");
    let err = Policy::compile(&a).expect_err("bad regex");
    assert_eq!(
        err.path,
        "inbound.authorization.rules[0].to[0].headers[0].value"
    );
}

#[test]
fn a_custom_rule_asks_its_provider_about_allowed_requests_and_refuses_tcp() {
    let p = policy(
        r#"
defaultAction: allow
providers: [{ name: opa, address: "127.0.0.1:9191" }]
rules:
  - { source: opa, action: custom, provider: opa, to: [{ paths: [{ type: PathPrefix, value: /api }] }] }
  - { source: no-batch, action: deny, from: [{ identity: "spiffe://cluster.local/ns/jobs/sa/batch" }] }
"#,
    );
    let asked = |caller: &str, path: &'static str| {
        let r = get(path);
        let d = p.decide(80, Some(caller), Traffic::Http(&r.view()));
        (
            d.outcome,
            d.ask
                .map(|(rule, provider)| (rule.source.to_string(), provider.name.clone())),
        )
    };
    assert_eq!(
        asked(FRONTEND, "/api/x"),
        (Outcome::Allow, Some(("opa".to_owned(), "opa".to_owned())))
    );
    assert_eq!(
        asked(FRONTEND, "/other"),
        (Outcome::Allow, None),
        "not the rule's"
    );
    assert_eq!(
        asked(BATCH, "/api/x"),
        (Outcome::Deny, None),
        "denied first, never asked"
    );
    assert_eq!(
        decide(&p, 80, Some(FRONTEND), Traffic::Tcp),
        "deny by opa#0"
    );
    assert_eq!(decide(&p, 80, Some(FRONTEND), Traffic::Connect), "defer");
}

#[test]
fn a_custom_rule_without_a_known_provider_does_not_compile() {
    let a: api::Authorization =
        serde_saphyr::from_str("rules: [{ action: custom, provider: opa }]").expect("yaml");
    let err = Policy::compile(&a).expect_err("unknown provider");
    assert_eq!(err.path, "inbound.authorization.rules[0].provider");
}

#[test]
fn explain_names_the_deciding_rule_and_why_each_other_did_not_match() {
    let p = policy(
        r#"
defaultAction: deny
rules:
  - { source: no-admin, action: deny, to: [{ paths: [{ type: PathPrefix, value: /admin }] }] }
  - source: shop-reads
    from: [{ identity: "spiffe://cluster.local/ns/shop/*" }]
    to: [{ methods: [GET], paths: [{ type: PathPrefix, value: /items }, { type: Glob, value: "/docs/**" }] }]
  - { source: tenant, to: [{ headers: [{ name: x-tenant, value: { exact: blue } }] }] }
"#,
    );
    let why = |caller: &str, req: &Req| {
        let (d, rules) = p.explain(80, Some(caller), Traffic::Http(&req.view()));
        let by = d.by.map(|b| b.to_string()).unwrap_or_default();
        let lines: Vec<String> = rules
            .iter()
            .map(|e| format!("{}: {}", e.rule.source, e.why))
            .collect();
        (by, lines)
    };
    let (by, lines) = why(FRONTEND, &get("/items").method("POST"));
    assert_eq!(by, "the default action (deny)");
    assert_eq!(
        lines,
        [
            r#"no-admin: to: path "/items" matches none of [PathPrefix /admin]"#,
            "shop-reads: to: methods [GET], not POST",
            "tenant: to: header x-tenant has no value matching \"blue\"",
        ]
    );
    let (by, lines) = why(BATCH, &get("/admin/x"));
    assert_eq!(by, "no-admin rule 0 (deny)");
    assert_eq!(lines[0], "no-admin: matches");
    assert_eq!(
        lines[1],
        "shop-reads: its callers (spiffe://cluster.local/ns/shop/*) do not include spiffe://cluster.local/ns/jobs/sa/batch"
    );
}

#[test]
fn explain_agrees_with_decide_on_which_rules_match() {
    let p = policy(
        r#"
rules:
  - { source: a, action: deny, from: [{ identity: "spiffe://cluster.local/ns/jobs/*" }], to: [{ methods: [DELETE] }] }
  - { source: b, action: audit, to: [{ paths: [{ type: Glob, value: "/x/*" }] }] }
  - { source: c, from: [{ unauthenticated: true }] }
"#,
    );
    for caller in [Some(FRONTEND), Some(BATCH), None] {
        for req in [
            get("/x/1"),
            get("/y").method("DELETE"),
            get("/x/2").method("delete"),
        ] {
            let view = req.view();
            let (d, rules) = p.explain(80, caller, Traffic::Http(&view));
            let deny = rules
                .iter()
                .find(|e| e.rule.action == Action::Deny && e.matched);
            assert_eq!(
                deny.is_some(),
                d.outcome == Outcome::Deny,
                "{caller:?} {} {}",
                req.method,
                req.path
            );
            if d.outcome != Outcome::Deny {
                // A denial ends the decision before audits are looked at.
                let audit = rules
                    .iter()
                    .find(|e| e.rule.action == Action::Audit && e.matched);
                assert_eq!(audit.is_some(), d.audit.is_some());
            }
        }
    }
}

#[test]
fn a_denied_header_is_denied_in_any_case_and_with_underscores_for_dashes() {
    let p = policy(
        r#"
rules:
  - { source: d, action: deny, to: [{ headers: [{ name: X-Debug, value: { exact: "on" } }] }] }
  - { source: a, action: audit, to: [{ headers: [{ name: x-trace, value: { exact: "1" } }] }] }
"#,
    );
    for (name, value, denied) in [
        ("x-debug", "on", true),
        ("X-DEBUG", "on", true),
        ("x_debug", "on", true),
        ("X_Debug", "on", true),
        ("x-debug", "off", false),
        ("x_debugs", "on", false),
        ("x.debug", "on", false),
    ] {
        let mut r = get("/");
        r.headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_static(value),
        );
        let got = p
            .decide(80, Some(FRONTEND), Traffic::Http(&r.view()))
            .outcome;
        assert_eq!(got == Outcome::Deny, denied, "{name}: {value}");
    }
}

#[test]
fn a_connection_s_scope_decides_exactly_as_the_whole_policy_does() {
    let p = policy(
        r#"
defaultAction: audit
ports: { 9090: deny }
providers: [{ name: opa, address: "127.0.0.1:9191" }]
rules:
  - { source: d1, action: deny, from: [{ identity: "spiffe://cluster.local/ns/jobs/*" }], to: [{ methods: [DELETE] }] }
  - { source: d2, action: deny, ports: [9090], to: [{ paths: [{ type: PathPrefix, value: /admin }] }] }
  - { source: c, action: custom, provider: opa, from: [{ identity: "*" }], to: [{ paths: [{ type: PathPrefix, value: /api }] }] }
  - { source: a1, action: audit, to: [{ headers: [{ name: x-debug, value: { exact: "on" } }] }] }
  - { source: p1, from: [{ identity: "spiffe://cluster.local/ns/shop/sa/frontend" }], to: [{ ports: [8080], methods: [GET] }] }
  - { source: p2, from: [{ unauthenticated: true }] }
  - { source: g1, action: deny, to: [{ paths: [{ type: Glob, value: "/files/*/raw" }] }] }
  - { source: g2, action: audit, to: [{ paths: [{ type: Glob, value: "/*/secret", ignoreCase: true }] }] }
  - { source: i1, action: deny, to: [{ paths: [{ type: PathPrefix, value: /private, ignoreCase: true }] }] }
  - { source: e1, to: [{ paths: [{ type: Exact, value: / }] }] }
  - { source: r1, to: [{ grpc: [{ service: shop.v1.Catalog }] }, { paths: [{ type: PathPrefix, value: /public }] }] }
  - { source: r2, action: deny, to: [{ paths: [{ type: PathPrefix, value: /public/admin }] }, { methods: [PUT] }] }
  - { source: h1, action: deny, to: [{ headers: [{ name: x-kill, value: { exact: "1" } }] }, { headers: [{ name: x-stop, value: { exact: "1" } }] }] }
  - { source: h2, action: audit, to: [{ headers: [{ name: x-trace, value: { exact: "1" } }] }, { methods: [PATCH] }] }
"#,
    );
    let summary = |d: &Decision<'_>| {
        (
            d.outcome,
            d.by.map(|b| b.to_string()),
            d.audit.map(|b| b.to_string()),
            d.ask.map(|(r, _)| r.source.to_string()),
        )
    };
    for caller in [Some(FRONTEND), Some(BATCH), Some(ADMIN), None] {
        for port in [8080, 9090] {
            let scope = p.scope(port, caller);
            assert!(p.is_scope_of(&scope, port) && !p.is_scope_of(&scope, port + 1));
            for req in [
                get("/"),
                get("/admin/x"),
                get("/api/v1").method("POST"),
                get("/x").method("DELETE"),
                get("/y").header("x-debug", "on"),
                get("/files/a/raw"),
                get("/FILES/a/raw"),
                get("/docs/SECRET"),
                get("/PRIVATE/key"),
                get("/private;x/key").params("/private/key"),
                get("/public;x/admin").params("/public/admin"),
                get("/shop.v1.Catalog/Get").method("POST"),
                get("/Shop.v1.Catalog/Get").method("POST"),
                get("/public/page"),
                get("/public/page").method("PUT"),
                get("/other"),
                get("/y").header("x_debug", "on"),
                get("/z").header("x-kill", "1"),
                get("/z").header("x-stop", "1"),
                get("/z").header("x_stop", "1"),
                get("/z").header("x-trace", "1"),
                get("/z").method("PATCH"),
            ] {
                let view = req.view();
                let whole = p.decide(port, caller, Traffic::Http(&view));
                let scoped = p.decide_scoped(&scope, caller, Traffic::Http(&view));
                assert_eq!(
                    summary(&whole),
                    summary(&scoped),
                    "{caller:?} port {port} {} {}",
                    req.method,
                    req.path
                );
            }
        }
    }
    let other = policy("rules: [{ action: deny }]");
    assert!(
        !other.is_scope_of(&p.scope(8080, None), 8080),
        "another policy's scope"
    );
}
