//! Authorization through `weft apply` and real proxies: `TrafficPermission` by
//! identity, path, method and gRPC method, deny over allow, the mesh's default action
//! with a namespace override, audit, TCP connections refused before the app sees a
//! byte, a change applied under load, and an external authorization server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use weft_testkit::client::{self, Http1Client, Http2Client};
use weft_testkit::{echo, ext_authz};

use crate::harness::control_plane::ControlPlane;
use crate::harness::{eventually, Host, Mesh, Proxy};

/// The echo app's workload (`echo-v1`, service account `echo-v1`) and two callers,
/// `frontend` and `batch`, each with a listener → `echo:80`.
struct Setup {
    mesh: Mesh,
    cp: ControlPlane,
    app: echo::Server,
    server: Proxy,
    server_host: Host,
    frontend: SocketAddr,
    batch: SocketAddr,
    _callers: Vec<Proxy>,
}

async fn setup() -> Setup {
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let cp = mesh.control_plane().await;
    let (app, server) = mesh.meshed_echo(&cp, &server_host, "v1").await;
    let mut callers = Vec::new();
    let mut listens = Vec::new();
    for name in ["frontend", "batch"] {
        let host = mesh.host(name);
        let files = mesh
            .meshed(
                &cp,
                &host,
                name,
                &[("app", name)],
                &[],
                &[(mesh.ports.listen, "echo", 80)],
            )
            .await;
        callers.push(mesh.meshed_proxy(&cp, &host, &files).await);
        listens.push(mesh.listen(&host));
    }
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    Setup {
        frontend: listens[0],
        batch: listens[1],
        mesh,
        cp,
        app,
        server,
        server_host,
        _callers: callers,
    }
}

/// The status of one request (a fresh connection each time).
async fn status(listen: SocketAddr, method: &str, path: &str) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "echo")
        .body(Empty::<Bytes>::new())
        .expect("request");
    client::http1_request(listen, req)
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// The server proxy's metrics.
async fn metrics(s: &Setup) -> String {
    let req = http::Request::get("/metrics")
        .header("host", "metrics")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = client::http1_request(s.mesh.metrics(&s.server_host), req)
        .await
        .expect("metrics");
    String::from_utf8_lossy(resp.body()).into_owned()
}

fn permission(name: &str, action: &str, rules: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: TrafficPermission\nmetadata: {{ name: {name} }}\n\
         spec:\n  targetRefs: [{{ kind: Service, name: echo }}]\n  action: {action}\n  rules: {rules}\n"
    )
}

fn mesh_default(namespace_default: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{ name: default }}\n\
         spec:\n  defaultActionOverrides: [{{ namespace: default, defaultAction: {namespace_default} }}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_decide_by_identity_path_and_method_and_deny_wins() {
    let s = setup().await;
    let yaml = [
        mesh_default("deny"),
        permission(
            "frontend-reads",
            "allow",
            "[{ from: [{ serviceAccount: frontend }], to: [{ methods: [GET], paths: [{ type: PathPrefix, value: /items }] }] }]",
        ),
        permission("batch-all", "allow", "[{ from: [{ serviceAccount: batch }] }]"),
        permission(
            "no-admin",
            "deny",
            "[{ to: [{ paths: [{ type: PathPrefix, value: /items/admin }] }] }]",
        ),
    ]
    .join("---\n");
    let out = s.cp.apply(&s.mesh, "permissions", &yaml).await;
    assert!(out.contains("trafficpermission/no-admin created"), "{out}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(s.frontend, "GET", "/items/1").await == 200
                && status(s.frontend, "GET", "/other").await == 403
        })
        .await,
        "the permissions never reached the server proxy"
    );
    s.app.recorder().clear();
    let cases = [
        (s.frontend, "GET", "/items/1", 200),
        (s.frontend, "POST", "/items/1", 403),
        (s.frontend, "GET", "/other", 403),
        (s.frontend, "GET", "/items/../other", 403),
        (s.frontend, "GET", "/items/%2e%2e/other", 400),
        (s.frontend, "GET", "/items/..;/other", 400),
        (s.frontend, "GET", "/items/admin", 403),
        (s.batch, "GET", "/other", 200),
        (s.batch, "DELETE", "/items/2", 200),
        (s.batch, "GET", "/items/admin/keys", 403),
        (s.batch, "GET", "/items/x/../admin/keys", 403),
    ];
    let mut served = Vec::new();
    for (listen, method, path, want) in cases {
        let who = if listen == s.frontend {
            "frontend"
        } else {
            "batch"
        };
        assert_eq!(
            status(listen, method, path).await,
            want,
            "{who} {method} {path}"
        );
        if want == 200 {
            served.push(path);
        }
    }
    let seen: Vec<String> = s
        .app
        .recorder()
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(seen, served, "only the allowed requests reach the app");

    let text = metrics(&s).await;
    for needle in [
        r#"permission="TrafficPermission/default/no-admin",action="deny",result="denied"} 3"#,
        r#"permission="TrafficPermission/default/batch-all",action="allow",result="allowed"} "#,
        r#"permission="default",action="deny",result="denied"} "#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    // `weft explain` gives the proxy's answer, and why the others did not match.
    let (ok, out) =
        s.cp.cli(&[
            "explain",
            "--from",
            "spiffe://cluster.local/ns/default/sa/batch",
            "--to",
            "echo:80",
            "GET",
            "/items/x/../admin/keys",
        ])
        .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("decision: DENIED, by TrafficPermission/default/no-admin rule 0 (deny)")
            && out.contains("(normalised: /items/admin/keys)")
            && out
                .contains("✗ allow  TrafficPermission/default/frontend-reads rule 0: its callers"),
        "{out}"
    );
    let (ok, out) = s.cp.cli(&["describe", "service", "echo"]).await;
    assert!(
        ok && out.contains("deny   no-admin: from everyone"),
        "{out}"
    );
    let logs = s.server.logs();
    assert!(
        logs.contains("denied")
            && logs.contains("spiffe://cluster.local/ns/default/sa/batch")
            && logs.contains("TrafficPermission/default/no-admin"),
        "the denial log names the caller and the rule:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_serves_and_counts_what_deny_would_refuse() {
    let s = setup().await;
    let yaml = [
        mesh_default("audit"),
        permission(
            "frontend-only",
            "allow",
            "[{ from: [{ serviceAccount: frontend }] }]",
        ),
        permission(
            "watch-deletes",
            "audit",
            "[{ to: [{ methods: [DELETE] }] }]",
        ),
    ]
    .join("---\n");
    s.cp.apply(&s.mesh, "audit", &yaml).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(s.frontend, "GET", "/").await == 200
                && metrics(&s)
                    .await
                    .contains("TrafficPermission/default/frontend-only")
        })
        .await,
        "the permissions never reached the server proxy"
    );
    assert_eq!(status(s.batch, "GET", "/x").await, 200, "audit serves");
    assert_eq!(
        status(s.frontend, "DELETE", "/y").await,
        200,
        "audit serves"
    );
    let text = metrics(&s).await;
    for needle in [
        r#"permission="default",action="audit",result="audited"} 1"#,
        r#"permission="TrafficPermission/default/watch-deletes",action="audit",result="audited"} 1"#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(
        s.server
            .wait_for_log("audit: served", Duration::from_secs(2))
            .await,
        "audits are logged:\n{}",
        s.server.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_applied_under_load_holds_within_a_second_and_nothing_is_served_after() {
    let s = setup().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(s.frontend, "GET", "/").await == 200
        })
        .await
    );
    let listen = s.frontend;
    let load = tokio::spawn(async move {
        let mut c = Http1Client::connect(listen).await.expect("connect");
        let started = Instant::now();
        let mut answers = Vec::new();
        while started.elapsed() < Duration::from_secs(4) {
            let req = http::Request::get("/load")
                .header("host", "echo")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let sent = Instant::now();
            let code = if let Ok(r) = c.send(req).await {
                r.status().as_u16()
            } else {
                c = Http1Client::connect(listen).await.expect("reconnect");
                0
            };
            answers.push((sent, code));
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let applied = Instant::now();
    s.cp.apply(
        &s.mesh,
        "deny-frontend",
        &permission(
            "no-frontend",
            "deny",
            "[{ from: [{ serviceAccount: frontend }] }]",
        ),
    )
    .await;
    let answers = load.await.expect("load task");
    let first_denied = answers
        .iter()
        .position(|(_, code)| *code == 403)
        .expect("the denial never took effect");
    let took = answers[first_denied].0.saturating_duration_since(applied);
    assert!(took < Duration::from_secs(1), "the denial took {took:?}");
    let after: Vec<u16> = answers[first_denied..].iter().map(|(_, c)| *c).collect();
    assert!(
        after.iter().all(|c| *c == 403),
        "a request was served after the denial took effect: {after:?}"
    );
    assert!(
        answers.len() > 100,
        "the load was real: {} requests",
        answers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_methods_are_refused_with_permission_denied() {
    let s = setup().await;
    s.cp.apply(
        &s.mesh,
        "grpc",
        &permission(
            "no-deletes",
            "deny",
            "[{ to: [{ grpc: [{ service: shop.v1.Catalog, method: Delete }] }] }]",
        ),
    )
    .await;
    let frontend = s.frontend;
    // The status and grpc-status of one call, or why it failed (before the services
    // reach the client proxy, a call may fail outright).
    let call = |method: &'static str| async move {
        let c = Http2Client::connect(frontend)
            .await
            .map_err(|e| e.to_string())?;
        let req = http::Request::post(format!("/shop.v1.Catalog/{method}"))
            .header("host", "echo")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = c.send(req).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((
            resp.status().as_u16(),
            resp.headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    };
    let denied = Ok((200, Some("7".to_owned())));
    assert!(
        eventually(Duration::from_secs(10), || async {
            call("Delete").await == denied
        })
        .await,
        "Delete was never refused with PERMISSION_DENIED"
    );
    s.app.recorder().clear();
    assert_eq!(call("Get").await, Ok((200, None)), "Get reaches the app");
    assert_eq!(call("Delete").await, denied);
    let paths: Vec<String> = s
        .app
        .recorder()
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/shop.v1.Catalog/Get"],
        "the refused call never reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_tcp_connection_is_closed_before_the_app_sees_a_byte() {
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let cp = mesh.control_plane().await;
    let tcp_port = mesh.port();
    let app = echo::spawn_tcp(server_host.addr(tcp_port), "raw")
        .await
        .expect("tcp echo");
    let files = mesh
        .meshed(
            &cp,
            &server_host,
            "raw",
            &[("app", "raw")],
            &[(tcp_port, "tcp")],
            &[],
        )
        .await;
    let _server = mesh.meshed_proxy(&cp, &server_host, &files).await;
    let mut listens = Vec::new();
    let mut proxies = Vec::new();
    for name in ["frontend", "batch"] {
        let host = mesh.host(name);
        let files = mesh
            .meshed(
                &cp,
                &host,
                name,
                &[("app", name)],
                &[],
                &[(mesh.ports.listen, "raw", 90)],
            )
            .await;
        proxies.push(mesh.meshed_proxy(&cp, &host, &files).await);
        listens.push(mesh.listen(&host));
    }
    let yaml = format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: raw }}\n\
         spec:\n  selector: {{ app: raw }}\n  ports: [{{ port: 90, targetPort: {tcp_port}, protocol: tcp }}]\n---\n\
         apiVersion: weft.dev/v1alpha1\nkind: TrafficPermission\nmetadata: {{ name: no-batch }}\n\
         spec:\n  targetRefs: [{{ kind: Service, name: raw }}]\n  action: deny\n  \
         rules: [{{ from: [{{ serviceAccount: batch }}] }}]\n"
    );
    cp.apply(&mesh, "raw", &yaml).await;
    let payload = b"hello over tcp".to_vec();
    assert!(
        eventually(Duration::from_secs(10), || async {
            client::tcp_roundtrip(listens[0], &payload)
                .await
                .ok()
                .as_deref()
                == Some(&payload[..])
        })
        .await,
        "the frontend never reached the tcp app"
    );
    let before = app.recorder().connections().len();
    let denied = client::tcp_roundtrip(listens[1], &payload).await;
    assert!(
        denied.as_ref().map_or(true, Vec::is_empty),
        "batch was served: {denied:?}"
    );
    assert_eq!(
        app.recorder().connections().len(),
        before,
        "the denied connection never reached the app"
    );
}

fn ext_authz_mesh(address: SocketAddr, fail_open: bool) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{ name: default }}\n\
         spec:\n  authorizationProviders:\n    - {{ name: opa, address: \"{address}\", timeout: 300ms, failOpen: {fail_open} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_authorization_server_allows_denies_and_its_timeout_refuses() {
    let s = setup().await;
    let server = ext_authz::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("ext_authz server");
    let yaml = [
        ext_authz_mesh(server.addr(), false),
        "apiVersion: weft.dev/v1alpha1\nkind: TrafficPermission\nmetadata: { name: opa-gets }\n\
         spec:\n  targetRefs: [{ kind: Service, name: echo }]\n  action: custom\n  \
         provider: { name: opa }\n  rules: [{ to: [{ methods: [GET] }] }]\n"
            .to_owned(),
    ]
    .join("---\n");
    s.cp.apply(&s.mesh, "ext-authz", &yaml).await;
    let frontend_id = "spiffe://cluster.local/ns/default/sa/frontend";
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(s.frontend, "GET", "/ok").await == 200
                && s.app.recorder().last_request().is_some_and(|r| {
                    r.headers.get("x-ext-authz").and_then(|v| v.to_str().ok()) == Some(frontend_id)
                })
        })
        .await,
        "allowed requests never carried the server's header"
    );
    s.app.recorder().clear();
    let req = http::Request::get("/deny/x")
        .header("host", "echo")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let denied = client::http1_request(s.frontend, req)
        .await
        .expect("answer");
    assert_eq!(denied.status(), 401, "the server's own status");
    assert_eq!(
        denied.headers()["www-authenticate"],
        "Bearer realm=\"test\""
    );
    assert_eq!(denied.body().as_ref(), b"denied by the test server\n");

    let started = Instant::now();
    assert_eq!(
        status(s.frontend, "GET", "/slow").await,
        403,
        "a timeout refuses"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the 300ms timeout was not honoured: {:?}",
        started.elapsed()
    );
    let asked = server.checks().len();
    assert_eq!(
        status(s.frontend, "POST", "/deny/x").await,
        200,
        "POST is not the rule's"
    );
    assert_eq!(
        server.checks().len(),
        asked,
        "a request no custom rule matches is not asked about"
    );
    let seen: Vec<String> = s
        .app
        .recorder()
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri.path()))
        .collect();
    assert_eq!(
        seen,
        ["POST /deny/x"],
        "refused requests never reached the app"
    );
    let check = server.checks().last().cloned().expect("a check");
    assert_eq!(
        (check.caller.as_str(), check.path.as_str()),
        (frontend_id, "/slow")
    );

    // failOpen: a server that cannot be reached lets requests through.
    drop(server);
    let dead = SocketAddr::from(([127, 0, 0, 1], s.mesh.port()));
    s.cp.apply(&s.mesh, "fail-open", &ext_authz_mesh(dead, true))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(s.frontend, "GET", "/ok").await == 200
        })
        .await,
        "a failOpen provider that is down still refused"
    );
}
