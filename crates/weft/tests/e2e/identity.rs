//! Workload identity from the control plane: proxies whose bootstraps name no
//! certificate files generate a key, send a CSR with their workload token, and talk
//! mTLS with the leaf the control plane's CA signs. What stays here watches the wire
//! (`tshark`), reaches HBONE with `openssl` from another host, or renews and rotates
//! under a control plane run with other flags; registration refusals, revocation and
//! restarts are in the in-process suite, `tests/mesh/identity.rs`.

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

/// The serial number of the certificate `host`'s proxy presents on its HBONE port, as
/// `openssl s_client` (run from `from`) sees it.
fn hbone_serial(from: &weft_testkit::Host, host: &weft_testkit::Host) -> Option<String> {
    let out = from
        .command("sh")
        .args([
            "-c",
            &format!(
                "openssl s_client -connect {}:15008 -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -serial",
                host.ip()
            ),
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("serial=")
        .map(str::to_owned)
}

#[test]
fn leaf_renewal_under_load_loses_no_request() {
    let Some(mesh) = Mesh::new("leaf_renewal_under_load_loses_no_request") else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let server = mesh.host("server");
    // Four-second certificates: a renewal every two seconds on each proxy.
    let _cp = mesh.control_plane(&cp, &["--certificate-ttl", "4s"]);
    let pair = issued_pair(&mesh, &cp, &client, &server);
    let (server_proxy, client_proxy) = (&pair.server, &pair.client);
    let first_serial = hbone_serial(&client, &server).expect("the server proxy's certificate");

    // Ten seconds of requests, each on a new app connection, across several renewals.
    let (ok, failed) = client.run(|| async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (mut ok, mut failed) = (0u32, Vec::new());
        while std::time::Instant::now() < deadline {
            match weft_testkit::client::http1_get(local(18080), "echo", "/load").await {
                Ok(resp) if resp.status() == 200 => ok += 1,
                Ok(resp) => failed.push(format!("status {}", resp.status())),
                Err(e) => failed.push(e.to_string()),
            }
        }
        (ok, failed)
    });
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests in 10 s");
    for (name, proxy) in [("server", &server_proxy), ("client", &client_proxy)] {
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
    let last_serial = hbone_serial(&client, &server).expect("the server proxy's certificate");
    assert_ne!(
        first_serial, last_serial,
        "new handshakes get the renewed certificate"
    );
}

/// Runs `sh -c script` on `host`; panics with its output if it fails.
fn sh(host: &weft_testkit::Host, script: &str) -> String {
    let out = host
        .command("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}:\n{text}");
    text
}

#[test]
fn a_mesh_rotated_to_an_openssl_made_intermediate_issues_leaves_that_verify_against_its_root_alone()
{
    let Some(mesh) = Mesh::new(
        "a_mesh_rotated_to_an_openssl_made_intermediate_issues_leaves_that_verify_against_its_root_alone",
    ) else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let server = mesh.host("server");
    // The operator's PKI, made with openssl: a root, and an intermediate for the mesh.
    let pki = mesh.dir.path().join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    sh(
        &cp,
        &format!(
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
        ),
    );
    // A mesh that started on the builtin CA moves to the operator's by a rotation.
    let cp_ip = cp.ip().to_string();
    let _cp = mesh.control_plane(&cp, &["--tls-san", &cp_ip]);
    mesh.apply(
        &cp,
        "mesh",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{ name: default }}\nspec:\n  ca:\n    type: provided\n    provided:\n      certFile: {d}/mesh.crt\n      keyFile: {d}/mesh.key\n      chainFile: {d}/root.crt\n",
            d = pki.display()
        ),
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            let status = ca_status(&mesh, &cp);
            status["phase"] == "Ready"
                && status["signer"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("provided:"))
        }),
        "the rotation to the provided CA did not complete: {}",
        ca_status(&mesh, &cp)
    );
    // The control plane's own certificate follows within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let _server = crate::support::issued_echo(&mesh, &cp, &server);

    // An openssl client that trusts only the operator's root verifies the workload's
    // chain (leaf + intermediate) on its HBONE port...
    let root = pki.join("root.crt");
    let hbone = sh(
        &client,
        &format!(
            "openssl s_client -connect {}:15008 -alpn h2 -CAfile {} -verify_return_error -brief </dev/null 2>&1 || true",
            server.ip(),
            root.display()
        ),
    );
    assert!(
        hbone.contains("Verification: OK") || hbone.contains("Verify return code: 0 (ok)"),
        "the mesh leaf chain does not verify against the operator's root:\n{hbone}"
    );
    let leaf = sh(
        &client,
        &format!(
            "openssl s_client -connect {}:15008 -alpn h2 -showcerts </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName -issuer",
            server.ip()
        ),
    );
    assert!(
        leaf.contains("URI:spiffe://cluster.local/ns/default/sa/echo-v1"),
        "{leaf}"
    );
    assert!(leaf.contains("Example Mesh Intermediate"), "{leaf}");
    // ...and the control plane's own API certificate, by IP address.
    let api = sh(
        &client,
        &format!(
            "openssl s_client -connect {}:5681 -CAfile {} -verify_return_error -verify_ip {} -brief </dev/null 2>&1",
            cp.ip(),
            root.display(),
            cp.ip()
        ),
    );
    assert!(api.contains("Verification: OK"), "{api}");
}

/// `Mesh.status.ca` as `weft get mesh default -o json` shows it.
fn ca_status(mesh: &Mesh, cp: &weft_testkit::Host) -> serde_json::Value {
    let (ok, out) = mesh.cli(cp, &["get", "mesh", "default", "-o", "json"]);
    if !ok {
        return serde_json::Value::Null;
    }
    serde_json::from_str::<serde_json::Value>(&out)
        .map(|m| m["status"]["ca"].clone())
        .unwrap_or_default()
}

#[test]
fn a_ca_rotation_under_load_reissues_every_leaf_and_retires_the_old_root_losing_no_request() {
    let Some(mesh) = Mesh::new(
        "a_ca_rotation_under_load_reissues_every_leaf_and_retires_the_old_root_losing_no_request",
    ) else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let server = mesh.host("server");
    let late = mesh.host("late");
    let _cp = mesh.control_plane(&cp, &[]);
    let pair = issued_pair(&mesh, &cp, &client, &server);
    let (server_proxy, _client_proxy) = (&pair.server, &pair.client);
    assert!(
        eventually(Duration::from_secs(10), || ca_status(&mesh, &cp)["phase"]
            == "Ready"),
        "the control plane records its CA in Mesh.status.ca: {:?}",
        mesh.cli(&cp, &["get", "mesh", "default", "-o", "json"])
    );
    let before = ca_status(&mesh, &cp);
    assert_eq!(before["signer"], "builtin:0", "{before}");
    let old_root = before["roots"][0].as_str().expect("a root").to_owned();

    // Continuous requests, each on a new app connection, for the whole rotation.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        client.spawn(move || async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match weft_testkit::client::http1_get(local(18080), "echo", "/load").await {
                    Ok(resp) if resp.status() == 200 => ok += 1,
                    Ok(resp) => failed.push(format!("status {}", resp.status())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };
    mesh.apply(
        &cp,
        "mesh",
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\nspec:\n  ca: { type: builtin, builtin: { generation: 1 } }\n",
    );
    let mut phases = Vec::new();
    let done = eventually(Duration::from_secs(60), || {
        let status = ca_status(&mesh, &cp);
        let phase = status["phase"].as_str().unwrap_or_default().to_owned();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        phase == "Ready" && status["signer"] == "builtin:1"
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.join().expect("load thread");
    assert!(
        done,
        "the rotation did not complete; phases {phases:?}, now {}\nworkloads: {}\nproxy: {}",
        ca_status(&mesh, &cp),
        mesh.cli(&cp, &["get", "workloads", "-o", "json"]).1,
        mesh.cli(&cp, &["inspect", "proxy", "echo-v1"]).1
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
    let after = ca_status(&mesh, &cp);
    let roots = after["roots"].as_array().expect("roots");
    assert_eq!(roots.len(), 1, "the old root is retired: {after}");
    assert_ne!(roots[0].as_str(), Some(old_root.as_str()), "a new root");
    assert!(
        server_proxy
            .logs()
            .matches("workload certificate issued by the control plane")
            .count()
            >= 2,
        "the server proxy was reissued a certificate:\n{}",
        server_proxy.logs()
    );

    // A proxy that joins now trusts the new root only, and reaches the reissued server
    // over a fresh handshake; the server's certificate verifies against the new root.
    let (boot, token) =
        mesh.tokened_bootstrap(&cp, &late, "late", &[], &[], &[(18080, "echo", 80)]);
    let _late_proxy = mesh.tokened_proxy(&late, &boot, &token, &cp);
    assert!(
        eventually(Duration::from_secs(10), || late.run(|| get(18080, "/"))
            == (200, Some("v1".into()))),
        "a proxy with only the new root cannot reach the reissued server"
    );
    let new_root = mesh.dir.path().join("new-root.pem");
    std::fs::write(&new_root, roots[0].as_str().expect("pem")).expect("write root");
    let verified = late
        .command("sh")
        .args([
            "-c",
            &format!(
                "openssl s_client -connect {}:15008 -alpn h2 -CAfile {} -verify_return_error -brief </dev/null 2>&1 || true",
                server.ip(),
                new_root.display()
            ),
        ])
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(text.contains("Verification: OK"), "{text}");
}
