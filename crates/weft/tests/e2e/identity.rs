//! Workload identity from the control plane: proxies whose bootstraps name no
//! certificate files generate a key, send a CSR with their workload token, and talk
//! mTLS with the leaf the control plane's CA signs, watched on the wire between hosts
//! with `tshark`. Registration refusals, revocation, restarts, renewal and CA rotation
//! are in the in-process suite, `tests/mesh/identity.rs`.

use std::time::Duration;

use crate::support::{eventually, get, local, Mesh, ECHO_SERVICES};

/// An echo app (`v1`) behind `echo-v1` on `server` and a `client` proxy whose listener
/// 18080 reaches it, both with certificates the control plane on `cp` issues; returns
/// once a request has crossed.
struct IssuedPair {
    _app: weft_testkit::netns::Hosted<weft_testkit::echo::Server>,
    server: weft_testkit::process::WeftProcess,
    client: weft_testkit::process::WeftProcess,
}

fn issued_pair(
    mesh: &Mesh,
    cp: &weft_testkit::Host,
    client: &weft_testkit::Host,
    server: &weft_testkit::Host,
) -> IssuedPair {
    let (app, server_proxy) = crate::support::issued_echo(mesh, cp, server);
    let (boot, token) =
        mesh.tokened_bootstrap(cp, client, "client", &[], &[], &[(18080, "echo", 80)]);
    let client_proxy = mesh.tokened_proxy(client, &boot, &token, cp);
    mesh.apply(cp, "services", ECHO_SERVICES);
    assert!(
        eventually(Duration::from_secs(10), || client.run(|| get(18080, "/"))
            == (200, Some("v1".into()))),
        "no request crossed the mesh"
    );
    IssuedPair {
        _app: app,
        server: server_proxy,
        client: client_proxy,
    }
}

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
    let pair = issued_pair(&mesh, &cp, &client, &server);
    let (_server, _client) = (&pair.server, &pair.client);
    // Everything that crosses the wire to the server from here on is captured.
    let pcap = mesh.dir.path().join("bridge.pcap");
    // On the server host's link to the bridge: a Linux bridge forwards unicast between
    // its ports without passing it up its own interface, so `br0` itself sees little.
    let mut capture = weft_testkit::process::Child::spawn(
        {
            let mut c = server.command("tshark");
            c.args([
                "-i",
                "eth0",
                "-f",
                "tcp",
                // Stops by itself, so the file is complete: after the first packets
                // of the exchange, or after five seconds.
                "-c",
                "40",
                "-a",
                "duration:5",
                "-w",
            ])
            .arg(&pcap);
            c
        },
        "tshark",
    )
    .expect("start tshark (Debian package tshark)");
    assert!(
        capture
            .wait_for_log("Capturing on", Duration::from_secs(20))
            .is_ok(),
        "tshark did not start:\n{}",
        capture.logs()
    );
    // The caller's identity the server proxy verified is the control-plane-issued one.
    // dumpcap reports the start a moment before packets flow: give it that moment, and
    // send the marked request a few times.
    std::thread::sleep(Duration::from_millis(500));
    let marker = "/plaintext-marker-5f3a9c";
    let resp = client.run(|| async {
        let mut last = None;
        for _ in 0..5 {
            last = Some(
                weft_testkit::client::http1_get(local(18080), "echo", marker)
                    .await
                    .expect("request"),
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last.expect("five requests")
    });
    let echoed = String::from_utf8_lossy(resp.body()).to_string();
    assert!(
        echoed.contains("URI=spiffe://cluster.local/ns/default/sa/client")
            && echoed.contains(marker),
        "{echoed}"
    );
    capture
        .wait_exit(Duration::from_secs(10))
        .expect("tshark stops by itself");
    let bytes = std::fs::read(&pcap).expect("read the capture");
    assert!(
        bytes.len() > 1000,
        "the capture holds the exchange ({} bytes):\n{}",
        bytes.len(),
        capture.logs()
    );
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the request path crossed the bridge in plaintext"
    );
    let fields = |filter: &str| {
        let out = std::process::Command::new("tshark")
            .args(["-r"])
            .arg(&pcap)
            .args([
                "-d",
                "tcp.port==15008,tls",
                "-Y",
                filter,
                "-T",
                "fields",
                "-e",
                "frame.number",
            ])
            .output()
            .expect("tshark -r");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(
        fields("http || http2.header"),
        0,
        "tshark decoded HTTP on the wire"
    );
    assert!(
        fields("tls.app_data") > 0,
        "the exchange crossed as TLS application data"
    );
}
