//! `weft run` with a control plane: the app starts only once the proxy has its
//! certificate and config, so its first request — made the moment it starts — succeeds.

use crate::support::{local, Mesh, ECHO_SERVICES, XDS_PORT};

#[test]
fn with_a_control_plane_the_apps_first_request_at_startup_succeeds() {
    let Some(mesh) = Mesh::new("with_a_control_plane_the_apps_first_request_at_startup_succeeds")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let server = mesh.host("server");
    let _cp = mesh.control_plane(&cp, &[]);
    mesh.apply(&cp, "services", ECHO_SERVICES);
    let _server = crate::support::issued_echo(&mesh, &cp, &server);
    let (boot, token) =
        mesh.tokened_bootstrap(&cp, &client, "client", &[], &[], &[(18080, "echo", 80)]);
    let state = mesh.dir.path().join("state-client");
    let ca = mesh.ca_file(&cp);
    let endpoint = format!("https://{}:{XDS_PORT}", cp.ip());
    let url = format!("http://{}/first", local(18080));
    // No retry and no wait in the app: its first action is the request.
    let out = client
        .command(crate::support::weft())
        .args([
            "run",
            "--config",
            boot.to_str().expect("utf-8"),
            "--control-plane",
            &endpoint,
            "--control-plane-ca",
            ca.to_str().expect("utf-8"),
            "--token-file",
            token.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--ready-timeout",
            "20s",
            "--",
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "-H",
            "host: echo",
            &url,
        ])
        .output()
        .expect("weft run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the app's first request failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("/first") && stdout.contains("sa/client"),
        "{stdout}"
    );
}
