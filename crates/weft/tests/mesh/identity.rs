//! Workload identity from the control plane: who may register as what, token
//! revocation, and the issued certificate kept across restarts and outages.

use std::time::Duration;

use crate::harness::control_plane::Meshed;
use crate::harness::{eventually, get, ControlPlane, Host, Mesh, Proxy};

/// An echo app (`v1`) behind `echo-v1` on `server` and a `client` proxy whose listener
/// reaches it, both with certificates the control plane issues; returns once a
/// request has crossed.
struct IssuedPair {
    _app: weft_testkit::echo::Server,
    server: Proxy,
    _client: Proxy,
}

async fn issued_pair(mesh: &Mesh, cp: &ControlPlane, client: &Host, server: &Host) -> IssuedPair {
    let (app, server_proxy) = mesh.meshed_echo(cp, server, "v1").await;
    let files = mesh
        .meshed(
            cp,
            client,
            "client",
            &[],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    let client_proxy = mesh.meshed_proxy(cp, client, &files).await;
    cp.apply(mesh, "services", &mesh.echo_services()).await;
    let listen = mesh.listen(client);
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(listen, "/").await == (200, Some("v1".into()))
        })
        .await,
        "no request crossed the mesh"
    );
    IssuedPair {
        _app: app,
        server: server_proxy,
        _client: client_proxy,
    }
}

/// Starts a control-plane-mode proxy on `host` with `bootstrap` and `token` without
/// waiting for it to be ready (the control plane is expected to refuse it).
fn refused_proxy(
    mesh: &Mesh,
    cp: &ControlPlane,
    host: &Host,
    bootstrap: std::path::PathBuf,
    token: std::path::PathBuf,
) -> Proxy {
    let files = Meshed { bootstrap, token };
    let control_plane = mesh.proxy_control_plane(cp, host, &files);
    Proxy::spawn(
        host.name(),
        files.bootstrap,
        Some(control_plane),
        mesh.admin(host),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cannot_register_an_identity_its_token_does_not_name() {
    let mesh = Mesh::new();
    let mallory = mesh.host("mallory");
    let cp = mesh.control_plane().await;
    // A token for `client`, presented by a proxy that claims to be `echo-v1`.
    let token = cp.workload_token(mesh.dir.path(), "client", &[]).await;
    let boot = mesh.write(
        "bootstrap-echo-v1",
        &mesh.workload_yaml(
            &mallory,
            "echo-v1",
            &[("app", "echo")],
            &[(mesh.ports.app, "http")],
        ),
    );
    let proxy = refused_proxy(&mesh, &cp, &mallory, boot, token);
    assert!(
        proxy
            .wait_for_log("permission", Duration::from_secs(10))
            .await,
        "the proxy was not told why it was refused:\n{}",
        proxy.logs()
    );
    let (_, workloads) = cp.cli(&["get", "workloads"]).await;
    assert!(
        !workloads.contains("echo-v1"),
        "nothing registered:\n{workloads}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_taking_another_workloads_name_or_selector_labels_is_refused_and_its_app_never_answers(
) {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let mallory = mesh.host("mallory");
    let cp = mesh.control_plane().await;
    let _pair = issued_pair(&mesh, &cp, &client, &server).await;
    // The attacker's app answers as `mallory`; its proxy holds an ordinary token for
    // its own identity (granting no labels) and declares echo's selector labels.
    let _evil = weft_testkit::echo::spawn_http(mesh.app(&mallory), "mallory")
        .await
        .expect("attacker app");
    let boot = mesh.write(
        "bootstrap-intruder",
        &mesh.workload_yaml(
            &mallory,
            "intruder",
            &[("app", "echo"), ("version", "v1")],
            &[(mesh.ports.app, "http")],
        ),
    );
    let token = cp.workload_token(mesh.dir.path(), "intruder", &[]).await;
    let intruder = refused_proxy(&mesh, &cp, &mallory, boot, token);
    assert!(
        intruder
            .wait_for_log("does not grant", Duration::from_secs(10))
            .await,
        "the proxy was not told why it was refused:\n{}",
        intruder.logs()
    );
    // A second attacker proxy, with a token of its own identity granting echo's labels
    // even, names itself `echo-v1`, the live workload it wants to take over.
    let hijacker = mesh.host("hijacker");
    let _evil2 = weft_testkit::echo::spawn_http(mesh.app(&hijacker), "mallory")
        .await
        .expect("attacker app");
    let yaml = mesh
        .workload_yaml(
            &hijacker,
            "echo-v1",
            &[("app", "echo"), ("version", "v1")],
            &[(mesh.ports.app, "http")],
        )
        .replace("serviceAccount: echo-v1", "serviceAccount: hijacker");
    let boot = mesh.write("bootstrap-hijacker", &yaml);
    let token = cp
        .workload_token(
            mesh.dir.path(),
            "hijacker",
            &[("app", "echo"), ("version", "v1")],
        )
        .await;
    let hijack = refused_proxy(&mesh, &cp, &hijacker, boot, token);
    assert!(
        hijack
            // echo-v1's proxy is live: refused as a second proxy (were it gone, as
            // another identity's workload; `registry` tests show that one).
            .wait_for_log(
                "two proxies cannot register one workload",
                Duration::from_secs(10)
            )
            .await,
        "the hijacker was not told why it was refused:\n{}",
        hijack.logs()
    );

    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(get(mesh.listen(&client), "/").await);
    }
    assert!(
        answers
            .iter()
            .all(|(status, from)| *status == 200 && from.as_deref() == Some("v1")),
        "every request is answered by the real echo-v1: {answers:?}"
    );
    let (_, workloads) = cp.cli(&["get", "workloads"]).await;
    assert!(
        !workloads.contains("intruder"),
        "the intruder registered nothing:\n{workloads}"
    );
    assert!(
        workloads.contains("echo-v1"),
        "echo-v1 is still registered:\n{workloads}"
    );
    let (_, owner) = cp.cli(&["get", "workload", "echo-v1", "-o", "yaml"]).await;
    assert!(
        owner.contains("serviceAccount: echo-v1") && owner.contains(&server.ip().to_string()),
        "echo-v1 is still the real one, at its own address:\n{owner}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_workload_token_ends_its_proxy_stream_and_refuses_its_return() {
    let mesh = Mesh::new();
    let server = mesh.host("server");
    let cp = mesh.control_plane().await;
    let _app = weft_testkit::echo::spawn_http(mesh.app(&server), "v1")
        .await
        .expect("echo app");
    let boot = mesh.write(
        "bootstrap-echo-v1",
        &mesh.workload_yaml(
            &server,
            "echo-v1",
            &[("app", "echo")],
            &[(mesh.ports.app, "http")],
        ),
    );
    // A token of our own, to know its id.
    let (ok, out) = cp
        .cli(&[
            "token",
            "workload",
            "--namespace",
            "default",
            "--service-account",
            "echo-v1",
            "--label",
            "app=echo",
        ])
        .await;
    assert!(ok, "{out}");
    let token = out
        .lines()
        .find(|l| l.split('.').count() == 3 && !l.contains(' '))
        .expect("a token line")
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("token id "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the token id")
        .to_owned();
    let token_file = mesh.dir.path().join("revocable.token");
    std::fs::write(&token_file, token + "\n").expect("write token");
    let files = Meshed {
        bootstrap: boot,
        token: token_file,
    };
    let proxy = mesh.meshed_proxy(&cp, &server, &files).await;
    let phase = || async { cp.cli(&["get", "workloads"]).await.1 };
    assert!(
        eventually(Duration::from_secs(10), || async {
            phase().await.contains("Healthy")
        })
        .await,
        "the proxy registered:\n{}",
        phase().await
    );

    let (ok, out) = cp.cli(&["token", "revoke", &id]).await;
    assert!(ok, "{out}");
    assert!(
        proxy
            .wait_for_log("has been revoked", Duration::from_secs(10))
            .await,
        "the open stream was not ended with the reason:\n{}",
        proxy.logs()
    );
    // Its reconnects are refused: the workload never comes back.
    assert!(
        eventually(Duration::from_secs(10), || async {
            !phase().await.contains("Healthy")
        })
        .await,
        "the workload is still healthy:\n{}",
        phase().await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = phase().await;
    assert!(
        !now.contains("Healthy"),
        "a revoked proxy came back:\n{now}"
    );
    assert!(
        proxy.logs().contains("PermissionDenied") || proxy.logs().contains("permission"),
        "the reconnect was refused with a reason:\n{}",
        proxy.logs()
    );
}

/// Restarts `echo-v1`'s proxy on `server` with the same bootstrap, token and state
/// base as before (it waits for `/ready`), and checks that the client's requests
/// reach it again.
async fn restart_echo_proxy(
    mesh: &Mesh,
    control_plane: weft_proxy::run::ControlPlane,
    client: &Host,
    server: &Host,
) -> Proxy {
    let restarted = Proxy::start(
        server.name(),
        mesh.dir.path().join("bootstrap-echo-v1.yaml"),
        Some(control_plane),
        mesh.admin(server),
    )
    .await;
    let listen = mesh.listen(client);
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(listen, "/").await == (200, Some("v1".into()))
        })
        .await,
        "the restarted proxy did not serve:\n{}",
        restarted.logs()
    );
    restarted
}

/// What `echo-v1`'s proxy on `server` is started with.
fn echo_control_plane(
    mesh: &Mesh,
    cp: &ControlPlane,
    server: &Host,
) -> weft_proxy::run::ControlPlane {
    let files = Meshed {
        bootstrap: mesh.dir.path().join("bootstrap-echo-v1.yaml"),
        token: mesh.dir.path().join("echo-v1.token"),
    };
    mesh.proxy_control_plane(cp, server, &files)
}

/// `echo-v1`'s proxy state directory under the state base of `server`.
fn echo_state(mesh: &Mesh, server: &Host) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = mesh.dir.path().join(format!("state-{}", server.name()));
    let state = base.join("echo-v1.default");
    (base, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restarted_during_a_control_plane_outage_serves_with_its_persisted_certificate() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let control = mesh.control_plane().await;
    let pair = issued_pair(&mesh, &control, &client, &server).await;
    let echo_cp = echo_control_plane(&mesh, &control, &server);
    // The log line the negative assertion below looks for is the one the first run
    // wrote when its certificate was issued.
    let first = pair.server.logs();
    assert!(
        first.contains("workload certificate issued by the control plane"),
        "{first}"
    );
    drop(control);
    drop(pair.server);
    // No control plane to ask.
    let restarted = restart_echo_proxy(&mesh, echo_cp, &client, &server).await;
    let logs = restarted.logs();
    assert!(
        !logs.contains("workload certificate issued by the control plane"),
        "no certificate can have been issued during the outage:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restarted_without_its_identity_files_gets_a_certificate_and_becomes_ready() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let control = mesh.control_plane().await;
    let pair = issued_pair(&mesh, &control, &client, &server).await;
    drop(pair.server);
    // The persisted config stays; the certificate, key and bundle are gone, and the
    // control plane has nothing new to send (the versions match).
    let (_, state) = echo_state(&mesh, &server);
    std::fs::remove_dir_all(state.join("identity")).expect("remove the identity files");
    let echo_cp = echo_control_plane(&mesh, &control, &server);
    let _restarted = restart_echo_proxy(&mesh, echo_cp, &client, &server).await;
    assert!(state.join("identity").join("cert.pem").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_directory_is_recreated_owner_only_with_the_identity_persisted() {
    use std::os::unix::fs::PermissionsExt as _;
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let control = mesh.control_plane().await;
    let pair = issued_pair(&mesh, &control, &client, &server).await;
    drop(pair.server);
    let (base, state) = echo_state(&mesh, &server);
    std::fs::remove_dir_all(&base).expect("remove the state directory");
    let echo_cp = echo_control_plane(&mesh, &control, &server);
    let _restarted = restart_echo_proxy(&mesh, echo_cp, &client, &server).await;
    for dir in [&base, &state, &state.join("identity")] {
        let mode = std::fs::metadata(dir)
            .expect("recreated")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }
    assert!(state.join("identity").join("key.pem").exists());
}
