//! Strict and permissive mTLS, driven from the control plane: a client outside the mesh
//! reaches a meshed workload in plaintext only while the mesh (or the service port) is
//! permissive, without any caller identity, and the identity headers the receiving
//! proxy asserts cannot be spoofed by anyone.

use std::time::Duration;

use weft_testkit::echo::EchoReply;
use weft_testkit::Host;

use crate::support::{eventually, local, Mesh, ECHO_SERVICES};

const IDENTITY_HEADER: &str = "x-weft-peer-identity";

/// `curl` from `from` to `url` with spoofed identity headers; the echo reply, or why
/// it failed.
fn legacy_get(from: &Host, url: &str) -> Result<EchoReply, String> {
    let out = from
        .command("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "-H",
            "x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/default/sa/admin",
            "-H",
            &format!("{IDENTITY_HEADER}: spiffe://cluster.local/ns/default/sa/admin"),
            url,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    EchoReply::from_body(&out.stdout).map_err(|e| e.to_string())
}

/// `curl` through the client's outbound listener (service `echo`) with extra `headers`.
fn meshed_get(client: &Host, path: &str, headers: &[&str]) -> std::process::Output {
    let mut command = client.command("curl");
    command.args(["-sS", "--fail", "--max-time", "5", "-H", "host: echo"]);
    for header in headers {
        command.args(["-H", header]);
    }
    command
        .arg(format!("http://127.0.0.1:18080{path}"))
        .output()
        .expect("curl")
}

/// The redirect rule `weft redirect install` writes for a permissive port: plaintext
/// for app port `port` goes to the inbound capture listener.
fn redirect_plaintext_to_inbound_capture(host: &Host, port: u16) {
    let port = port.to_string();
    let out = host
        .exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "--dport",
            &port,
            "-j",
            "REDIRECT",
            "--to-ports",
            "15006",
        ])
        .expect("iptables");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metrics(host: &Host) -> String {
    let out = host
        .command("curl")
        .args(["-sS", "--max-time", "5", "http://127.0.0.1:15020/metrics"])
        .output()
        .expect("curl metrics");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plaintext_reaches_a_workload_only_while_its_port_is_permissive() {
    let Some(mesh) = Mesh::new("plaintext_reaches_a_workload_only_while_its_port_is_permissive")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let server = mesh.host("server");
    let client = mesh.host("client");
    let legacy = mesh.host("legacy");
    let _cp = mesh.control_plane(&cp, &[]);
    mesh.apply(&cp, "services", ECHO_SERVICES);

    let _app = server
        .spawn_server(|| async { weft_testkit::echo::spawn_http(local(8080), "v1").await })
        .expect("echo app starts");
    let boot = mesh.bootstrap(
        &server,
        "echo-v1",
        &[("app", "echo"), ("version", "v1")],
        &[(8080, "http")],
        &[],
    );
    let yaml = std::fs::read_to_string(&boot).expect("read bootstrap")
        + &format!("inbound: {{ identityHeader: {IDENTITY_HEADER} }}\n");
    let boot = mesh.write("bootstrap-echo-v1", &yaml);
    let _server_proxy = mesh.meshed_proxy(&server, &boot, &cp);
    let client_boot = mesh.bootstrap(&client, "client", &[], &[], &[(18080, "echo", 80)]);
    let _client_proxy = mesh.meshed_proxy(&client, &client_boot, &cp);

    redirect_plaintext_to_inbound_capture(&server, 8080);
    let url = format!("http://{}:8080/legacy", server.ip());

    // A new mesh is strict: nothing takes plaintext, and the meshed client still works
    // with its identity asserted by the server's proxy, whatever its app claims.
    let refused = legacy_get(&legacy, &url);
    assert!(
        refused.is_err(),
        "strict mesh served plaintext: {refused:?}"
    );
    let meshed = meshed_get(
        &client,
        "/meshed",
        &[&format!(
            "{IDENTITY_HEADER}: spiffe://cluster.local/ns/default/sa/admin"
        )],
    );
    assert!(
        meshed.status.success(),
        "{}",
        String::from_utf8_lossy(&meshed.stderr)
    );
    let reply = EchoReply::from_body(&meshed.stdout).expect("echo reply");
    assert_eq!(
        reply.header(IDENTITY_HEADER),
        Some("spiffe://cluster.local/ns/default/sa/client"),
        "the proxy replaces a spoofed identity header with the verified caller"
    );

    // Permissive mesh: plaintext is served, without any identity the client sent.
    mesh.apply(
        &cp,
        "mesh",
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec:\n  mtls: { mode: permissive }\n",
    );
    let mut served = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            served = legacy_get(&legacy, &url).ok();
            served.is_some()
        }),
        "permissive mesh never served plaintext"
    );
    let reply = served.expect("served");
    assert_eq!(reply.path, "/legacy");
    assert_eq!(
        reply.header("x-forwarded-client-cert"),
        None,
        "plaintext has no verified caller"
    );
    assert_eq!(
        reply.header(IDENTITY_HEADER),
        None,
        "spoofed identity header removed"
    );
    let text = metrics(&server);
    assert!(
        text.lines()
            .any(|l| l.starts_with("weft_proxy_requests_total{")
                && l.contains("direction=\"inbound\"")
                && l.contains("connection_security=\"none\"")),
        "plaintext requests are counted as unauthenticated:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("weft_proxy_requests_total{")
                && l.contains("direction=\"inbound\"")
                && l.contains("connection_security=\"mutual_tls\"")),
        "mesh requests are counted as mutual TLS:\n{text}"
    );

    // A strict service port overrides the permissive mesh.
    let strict_port = ECHO_SERVICES.replacen(
        "selector: { app: echo }\n  ports: [{ port: 80, targetPort: 8080, protocol: http }]",
        "selector: { app: echo }\n  ports: [{ port: 80, targetPort: 8080, protocol: http, mtls: strict }]",
        1,
    );
    assert_ne!(strict_port, ECHO_SERVICES);
    mesh.apply(&cp, "services", &strict_port);
    assert!(
        eventually(Duration::from_secs(10), || legacy_get(&legacy, &url)
            .is_err()),
        "a strict port kept serving plaintext"
    );
    let meshed = meshed_get(&client, "/", &[]);
    assert!(
        meshed.status.success(),
        "mesh traffic stops on a strict port: {}",
        String::from_utf8_lossy(&meshed.stderr)
    );
}

/// Sends `request` to `addr` from inside `host` after `delay`, and returns everything
/// the server answered until it closed.
fn slow_request(host: &Host, addr: std::net::SocketAddr, delay: Duration, request: &str) -> String {
    let request = request.to_owned();
    host.run(move || async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::time::sleep(delay).await;
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    })
}

#[test]
fn a_plaintext_client_silent_past_detection_still_cannot_forge_identity_headers() {
    let Some(mesh) =
        Mesh::new("a_plaintext_client_silent_past_detection_still_cannot_forge_identity_headers")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let server = mesh.host("server");
    let legacy = mesh.host("legacy");
    let _cp = mesh.control_plane(&cp, &[]);
    // An undeclared (`auto`) port: the proxy detects the protocol.
    let services = ECHO_SERVICES.replace("protocol: http }", "protocol: auto }");
    assert_ne!(services, ECHO_SERVICES);
    mesh.apply(&cp, "services", &services);
    mesh.apply(
        &cp,
        "mesh",
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec:\n  mtls: { mode: permissive }\n",
    );
    let _app = server
        .spawn_server(|| async { weft_testkit::echo::spawn_http(local(8080), "v1").await })
        .expect("echo app starts");
    let boot = mesh.bootstrap(
        &server,
        "echo-v1",
        &[("app", "echo"), ("version", "v1")],
        &[(8080, "auto")],
        &[],
    );
    let _server_proxy = mesh.meshed_proxy(&server, &boot, &cp);
    redirect_plaintext_to_inbound_capture(&server, 8080);
    let url = format!("http://{}:8080/legacy", server.ip());
    assert!(
        eventually(Duration::from_secs(10), || legacy_get(&legacy, &url)
            .is_ok()),
        "the permissive port never served plaintext"
    );

    // Sent after the 300 ms detection wait: the proxy has connected to the app by then,
    // but the client spoke first, so its bytes are still parsed as HTTP.
    let addr = std::net::SocketAddr::from((server.ip(), 8080));
    let answer = slow_request(
        &legacy,
        addr,
        Duration::from_millis(1200),
        "GET /late HTTP/1.1\r\nhost: echo\r\nx-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/default/sa/admin\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let reply = EchoReply::from_body(body.as_bytes()).expect("echo reply");
    assert_eq!(reply.path, "/late");
    assert_eq!(
        reply.header("x-forwarded-client-cert"),
        None,
        "a forged identity header reached the app after the detection timeout"
    );

    // A malformed first request line after the wait is refused, not copied.
    let answer = slow_request(
        &legacy,
        addr,
        Duration::from_millis(1200),
        "GET /late HTTP/1.1 \r\nhost: echo\r\nx-forwarded-client-cert: forged\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// `curl` from `from` to `url`: the HTTP status, or 0 when the connection failed.
fn plaintext_status(from: &Host, url: &str) -> u16 {
    let out = from
        .command("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn with_default_deny_plaintext_is_served_only_where_a_permission_allows_unauthenticated() {
    let Some(mesh) = Mesh::new(
        "with_default_deny_plaintext_is_served_only_where_a_permission_allows_unauthenticated",
    ) else {
        return;
    };
    let cp = mesh.host("cp");
    let server = mesh.host("server");
    let client = mesh.host("client");
    let legacy = mesh.host("legacy");
    let _cp = mesh.control_plane(&cp, &[]);
    mesh.apply(&cp, "services", ECHO_SERVICES);
    // A permissive mesh that denies by default; the meshed client is allowed.
    mesh.apply(
        &cp,
        "policy",
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n\
         spec:\n  mtls: { mode: permissive }\n  defaultAction: deny\n---\n\
         apiVersion: weft.dev/v1alpha1\nkind: TrafficPermission\nmetadata: { name: meshed-client }\n\
         spec:\n  targetRefs: [{ kind: Service, name: echo }]\n  rules: [{ from: [{ serviceAccount: client }] }]\n",
    );
    let _app = server
        .spawn_server(|| async { weft_testkit::echo::spawn_http(local(8080), "v1").await })
        .expect("echo app starts");
    let boot = mesh.bootstrap(
        &server,
        "echo-v1",
        &[("app", "echo"), ("version", "v1")],
        &[(8080, "http")],
        &[],
    );
    let _server_proxy = mesh.meshed_proxy(&server, &boot, &cp);
    let client_boot = mesh.bootstrap(&client, "client", &[], &[], &[(18080, "echo", 80)]);
    let _client_proxy = mesh.meshed_proxy(&client, &client_boot, &cp);
    redirect_plaintext_to_inbound_capture(&server, 8080);
    let legacy_url = format!("http://{}:8080/legacy/page", server.ip());
    let other_url = format!("http://{}:8080/other", server.ip());

    assert!(
        eventually(Duration::from_secs(10), || meshed_get(&client, "/", &[])
            .status
            .success()),
        "the allowed meshed client was never served"
    );
    // No permission names unauthenticated callers: plaintext is refused when it
    // connects, before a byte reaches the app.
    assert_eq!(
        plaintext_status(&legacy, &legacy_url),
        0,
        "plaintext served under default deny"
    );

    mesh.apply(
        &cp,
        "legacy",
        "apiVersion: weft.dev/v1alpha1\nkind: TrafficPermission\nmetadata: { name: legacy-pages }\n\
         spec:\n  targetRefs: [{ kind: Service, name: echo }]\n  \
         rules: [{ from: [{ unauthenticated: true }], to: [{ paths: [{ type: PathPrefix, value: /legacy }] }] }]\n",
    );
    assert!(
        eventually(Duration::from_secs(10), || plaintext_status(
            &legacy,
            &legacy_url
        ) == 200),
        "the permission for unauthenticated callers never took effect"
    );
    assert_eq!(
        plaintext_status(&legacy, &other_url),
        403,
        "only what it names"
    );
    assert!(
        meshed_get(&client, "/other", &[]).status.success(),
        "meshed client still allowed"
    );
}
