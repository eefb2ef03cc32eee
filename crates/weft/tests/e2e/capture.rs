//! Transparent capture: an iptables REDIRECT sends traffic for a service VIP to the
//! proxy's capture listener, which recovers the original destination (SO_ORIGINAL_DST).

use weft_testkit::echo::EchoReply;

use crate::support::Mesh;

#[test]
fn captured_traffic_to_a_service_vip_is_routed_through_the_mesh() {
    let Some(mesh) = Mesh::new("captured_traffic_to_a_service_vip_is_routed_through_the_mesh")
    else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    let vip = "198.18.100.10";
    let cfg = format!(
        "{}services:\n  - name: echo\n    vip: {vip}\n    ports: [{{ port: 80, targetPort: 8080, protocol: http }}]\n    endpoints: [{}]\n",
        mesh.identity_yaml(&client, "client", &[]),
        Mesh::endpoint(&server, "echo"),
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg));
    // The hand-written rule `weft redirect install` will write later: VIP traffic from
    // the app goes to the capture listener. The VIP needs a route to be dialled at all.
    for args in [
        vec!["ip", "route", "add", "198.18.100.0/24", "dev", "eth0"],
        vec![
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            vip,
            "--dport",
            "80",
            "-j",
            "REDIRECT",
            "--to-ports",
            "15001",
        ],
    ] {
        let out = client.exec(&args).expect("exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = client
        .command("curl")
        .args(["-sS", "--max-time", "10", &format!("http://{vip}/captured")])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl through capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = EchoReply::from_body(&out.stdout).expect("echo reply");
    assert_eq!(reply.path, "/captured");
    let xfcc = reply
        .header("x-forwarded-client-cert")
        .expect("came through the mesh");
    assert!(xfcc.contains("sa/client"), "{xfcc}");
}
