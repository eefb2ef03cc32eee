//! Workload identity from the control plane: proxies whose bootstraps name no
//! certificate files generate a key, send a CSR with their workload token, and talk
//! mTLS with the leaf the control plane's CA signs.

use std::time::Duration;

use crate::support::{eventually, get, local, Mesh, ECHO_SERVICES};

#[test]
fn proxies_talk_mtls_with_certificates_the_control_plane_issued() {
    let Some(mesh) = Mesh::new("proxies_talk_mtls_with_certificates_the_control_plane_issued")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let server = mesh.host("server");
    let _cp = mesh.control_plane(&cp, &[]);
    let _app = server
        .spawn_server(|| weft_testkit::echo::spawn_http(local(8080), "v1"))
        .expect("echo app");
    let (boot, token) = mesh.tokened_bootstrap(
        &cp,
        &server,
        "echo-v1",
        &[("app", "echo"), ("version", "v1")],
        &[(8080, "http")],
        &[],
    );
    let _server = mesh.tokened_proxy(&server, &boot, &token, &cp);
    let (boot, token) =
        mesh.tokened_bootstrap(&cp, &client, "client", &[], &[], &[(18080, "echo", 80)]);
    let _client = mesh.tokened_proxy(&client, &boot, &token, &cp);
    mesh.apply(&cp, "services", ECHO_SERVICES);
    assert!(
        eventually(Duration::from_secs(10), || client.run(|| get(18080, "/"))
            == (200, Some("v1".into()))),
        "no request crossed the mesh"
    );
    // The caller's identity the server proxy verified is the control-plane-issued one.
    let resp = client.run(|| async {
        weft_testkit::client::http1_get(local(18080), "echo", "/who")
            .await
            .expect("request")
    });
    let echoed = String::from_utf8_lossy(resp.body()).to_string();
    assert!(
        echoed.contains("URI=spiffe://cluster.local/ns/default/sa/client"),
        "{echoed}"
    );
}

#[test]
fn a_proxy_cannot_register_an_identity_its_token_does_not_name() {
    let Some(mesh) = Mesh::new("a_proxy_cannot_register_an_identity_its_token_does_not_name")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let mallory = mesh.host("mallory");
    let _cp = mesh.control_plane(&cp, &[]);
    // A token for `client`, presented by a proxy that claims to be `echo-v1`.
    let token = mesh.workload_token(&cp, "client");
    let boot = mesh.bootstrap(
        &mallory,
        "echo-v1",
        &[("app", "echo")],
        &[(8080, "http")],
        &[],
    );
    let state = mesh.dir.path().join("state-mallory");
    let ca_file = mesh.ca_file(&cp);
    let mut proxy = weft_testkit::process::Child::spawn(
        {
            let mut c = mallory.command(crate::support::weft());
            c.args([
                "proxy",
                "--config",
                boot.to_str().expect("utf-8"),
                "--control-plane",
                &crate::support::Mesh::xds_endpoint(&cp),
                "--control-plane-ca",
                ca_file.to_str().expect("utf-8"),
                "--state-dir",
                state.to_str().expect("utf-8"),
                "--token-file",
                token.to_str().expect("utf-8"),
            ]);
            c
        },
        "weft@mallory",
    )
    .expect("spawn proxy");
    assert!(
        proxy
            .wait_for_log("permission", Duration::from_secs(10))
            .is_ok(),
        "the proxy was not told why it was refused:\n{}",
        proxy.logs()
    );
    let (_, workloads) = mesh.cli(&cp, &["get", "workloads"]);
    assert!(
        !workloads.contains("echo-v1"),
        "nothing registered:\n{workloads}"
    );
    proxy.kill().expect("stop proxy");
}

#[test]
fn revoking_a_workload_token_ends_its_proxy_stream_and_refuses_its_return() {
    let Some(mesh) =
        Mesh::new("revoking_a_workload_token_ends_its_proxy_stream_and_refuses_its_return")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let server = mesh.host("server");
    let _cp = mesh.control_plane(&cp, &[]);
    let _app = server
        .spawn_server(|| weft_testkit::echo::spawn_http(local(8080), "v1"))
        .expect("echo app");
    let (boot, _) = mesh.tokened_bootstrap(
        &cp,
        &server,
        "echo-v1",
        &[("app", "echo")],
        &[(8080, "http")],
        &[],
    );
    // A token of our own, to know its id.
    let (ok, out) = mesh.cli(
        &cp,
        &[
            "token",
            "workload",
            "--namespace",
            "default",
            "--service-account",
            "echo-v1",
        ],
    );
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
    let proxy = mesh.tokened_proxy(&server, &boot, &token_file, &cp);
    let phase = || mesh.cli(&cp, &["get", "workloads"]).1;
    assert!(
        eventually(Duration::from_secs(10), || phase().contains("Healthy")),
        "the proxy registered:\n{}",
        phase()
    );

    let (ok, out) = mesh.cli(&cp, &["token", "revoke", &id]);
    assert!(ok, "{out}");
    assert!(
        proxy
            .wait_for_log("has been revoked", Duration::from_secs(10))
            .is_ok(),
        "the open stream was not ended with the reason:\n{}",
        proxy.logs()
    );
    // Its reconnects are refused: the workload never comes back.
    assert!(
        eventually(Duration::from_secs(10), || !phase().contains("Healthy")),
        "the workload is still healthy:\n{}",
        phase()
    );
    std::thread::sleep(Duration::from_secs(3));
    let now = phase();
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
