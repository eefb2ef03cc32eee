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
    client: Proxy,
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
        client: client_proxy,
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

/// Runs `sh -c script`; panics with its output if it fails.
async fn sh(script: &str) -> String {
    let out = tokio::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .await
        .expect("sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}:\n{text}");
    text
}

/// The serial number of the certificate the proxy on `host` presents on its HBONE
/// port, as `openssl s_client` sees it.
async fn hbone_serial(mesh: &Mesh, host: &Host) -> Option<String> {
    let out = sh(&format!(
        "openssl s_client -connect {} -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -serial",
        host.addr(mesh.ports.hbone)
    ))
    .await;
    out.trim().strip_prefix("serial=").map(str::to_owned)
}

/// `Mesh.status.ca` as `weft get mesh default -o json` shows it.
async fn ca_status(cp: &ControlPlane) -> serde_json::Value {
    let (ok, out) = cp.cli(&["get", "mesh", "default", "-o", "json"]).await;
    if !ok {
        return serde_json::Value::Null;
    }
    serde_json::from_str::<serde_json::Value>(&out)
        .map(|m| m["status"]["ca"].clone())
        .unwrap_or_default()
}

/// Requests to `listen`, each on a new app connection, until `stop`: (answered,
/// failures).
async fn load_until(
    listen: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u32, Vec<String>) {
    let (mut ok, mut failed) = (0u32, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match weft_testkit::client::http1_get(listen, "echo", "/load").await {
            Ok(resp) if resp.status() == 200 => ok += 1,
            Ok(resp) => failed.push(format!("status {}", resp.status())),
            Err(e) => failed.push(e.to_string()),
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_renewal_under_load_loses_no_request() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    // Four-second certificates: a renewal every two seconds on each proxy.
    let cp = mesh
        .control_plane_with(|o| {
            o.certificates.default_ttl = Duration::from_secs(4);
            o.certificates.max_ttl = Duration::from_secs(4);
        })
        .await;
    let pair = issued_pair(&mesh, &cp, &client, &server).await;
    let first_serial = hbone_serial(&mesh, &server)
        .await
        .expect("the server proxy's certificate");

    // Ten seconds of requests, each on a new app connection, across several renewals.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load_until(mesh.listen(&client), stop.clone()));
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load task");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests in 10 s");
    for (name, proxy) in [("server", &pair.server), ("client", &pair.client)] {
        let renewals = proxy
            .logs()
            .matches("workload certificate issued by the control plane")
            .count();
        assert!(
            renewals >= 4,
            "the {name} proxy renewed {renewals} times in 10 s:\n{}",
            proxy.logs()
        );
    }
    let last_serial = hbone_serial(&mesh, &server)
        .await
        .expect("the server proxy's certificate");
    assert_ne!(
        first_serial, last_serial,
        "new handshakes get the renewed certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_rotated_to_an_openssl_made_intermediate_issues_leaves_that_verify_against_its_root_alone(
) {
    let mesh = Mesh::new();
    let server = mesh.host("server");
    // The operator's PKI, made with openssl: a root, and an intermediate for the mesh.
    let pki = mesh.dir.path().join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    sh(&format!(
        "cd {dir} && \
         openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key && \
         openssl req -x509 -new -key root.key -subj '/CN=Example Root CA' -days 30 -out root.crt \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign && \
         openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out mesh.key && \
         openssl req -new -key mesh.key -subj '/CN=Example Mesh Intermediate' -out mesh.csr && \
         printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectAltName=URI:spiffe://cluster.local\\n' > mesh.ext && \
         openssl x509 -req -in mesh.csr -CA root.crt -CAkey root.key -CAcreateserial -days 7 \
           -extfile mesh.ext -out mesh.crt",
        dir = pki.display()
    ))
    .await;
    // A mesh that started on the builtin CA moves to the operator's by a rotation.
    let cp = mesh.control_plane().await;
    let cp_ip = cp.api().ip();
    cp.apply(
        &mesh,
        "mesh",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{ name: default }}\nspec:\n  ca:\n    type: provided\n    provided:\n      certFile: {d}/mesh.crt\n      keyFile: {d}/mesh.key\n      chainFile: {d}/root.crt\n",
            d = pki.display()
        ),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            let status = ca_status(&cp).await;
            status["phase"] == "Ready"
                && status["signer"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("provided:"))
        })
        .await,
        "the rotation to the provided CA did not complete: {}",
        ca_status(&cp).await
    );
    // The control plane's own certificate follows within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _server = mesh.meshed_echo(&cp, &server, "v1").await;

    // An openssl client that trusts only the operator's root verifies the workload's
    // chain (leaf + intermediate) on its HBONE port...
    let root = pki.join("root.crt");
    let hbone_addr = server.addr(mesh.ports.hbone);
    let hbone = sh(&format!(
        "openssl s_client -connect {hbone_addr} -alpn h2 -CAfile {} -verify_return_error -brief </dev/null 2>&1 || true",
        root.display()
    ))
    .await;
    assert!(
        hbone.contains("Verification: OK") || hbone.contains("Verify return code: 0 (ok)"),
        "the mesh leaf chain does not verify against the operator's root:\n{hbone}"
    );
    let leaf = sh(&format!(
        "openssl s_client -connect {hbone_addr} -alpn h2 -showcerts </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName -issuer"
    ))
    .await;
    assert!(
        leaf.contains("URI:spiffe://cluster.local/ns/default/sa/echo-v1"),
        "{leaf}"
    );
    assert!(leaf.contains("Example Mesh Intermediate"), "{leaf}");
    // ...and the control plane's own API certificate, by IP address.
    let api = sh(&format!(
        "openssl s_client -connect {} -CAfile {} -verify_return_error -verify_ip {cp_ip} -brief </dev/null 2>&1",
        cp.api(),
        root.display(),
    ))
    .await;
    assert!(api.contains("Verification: OK"), "{api}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_under_load_reissues_every_leaf_and_retires_the_old_root_losing_no_request() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let late = mesh.host("late");
    let cp = mesh.control_plane().await;
    let pair = issued_pair(&mesh, &cp, &client, &server).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            ca_status(&cp).await["phase"] == "Ready"
        })
        .await,
        "the control plane records its CA in Mesh.status.ca: {:?}",
        cp.cli(&["get", "mesh", "default", "-o", "json"]).await
    );
    let before = ca_status(&cp).await;
    assert_eq!(before["signer"], "builtin:0", "{before}");
    let old_root = before["roots"][0].as_str().expect("a root").to_owned();

    // Continuous requests, each on a new app connection, for the whole rotation.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load_until(mesh.listen(&client), stop.clone()));
    cp.apply(
        &mesh,
        "mesh",
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec:\n  ca: { type: builtin, builtin: { generation: 1 } }\n",
    )
    .await;
    let mut phases: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let status = ca_status(&cp).await;
        let phase = status["phase"].as_str().unwrap_or_default().to_owned();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if phase == "Ready" && status["signer"] == "builtin:1" {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.expect("load task");
    assert!(
        done,
        "the rotation did not complete; phases {phases:?}, now {}\nworkloads: {}\nproxy: {}",
        ca_status(&cp).await,
        cp.cli(&["get", "workloads", "-o", "json"]).await.1,
        cp.cli(&["inspect", "proxy", "echo-v1"]).await.1
    );
    assert_eq!(phases.first().map(String::as_str), Some("Ready"));
    assert!(
        phases.iter().any(|p| p == "Distributing") && phases.iter().any(|p| p == "Reissuing"),
        "phases seen: {phases:?}"
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rotation: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests during the rotation");
    let after = ca_status(&cp).await;
    let roots = after["roots"].as_array().expect("roots");
    assert_eq!(roots.len(), 1, "the old root is retired: {after}");
    assert_ne!(roots[0].as_str(), Some(old_root.as_str()), "a new root");
    assert!(
        pair.server
            .logs()
            .matches("workload certificate issued by the control plane")
            .count()
            >= 2,
        "the server proxy was reissued a certificate:\n{}",
        pair.server.logs()
    );

    // A proxy that joins now trusts the new root only, and reaches the reissued server
    // over a fresh handshake; the server's certificate verifies against the new root.
    let files = mesh
        .meshed(
            &cp,
            &late,
            "late",
            &[],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    let _late_proxy = mesh.meshed_proxy(&cp, &late, &files).await;
    let late_listen = mesh.listen(&late);
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(late_listen, "/").await == (200, Some("v1".into()))
        })
        .await,
        "a proxy with only the new root cannot reach the reissued server"
    );
    let new_root = mesh.dir.path().join("new-root.pem");
    std::fs::write(&new_root, roots[0].as_str().expect("pem")).expect("write root");
    let text = sh(&format!(
        "openssl s_client -connect {} -alpn h2 -CAfile {} -verify_return_error -brief </dev/null 2>&1 || true",
        server.addr(mesh.ports.hbone),
        new_root.display()
    ))
    .await;
    assert!(text.contains("Verification: OK"), "{text}");
}
