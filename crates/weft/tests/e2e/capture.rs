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

/// `curl URL` from `host` as an unprivileged app (uid 65534, not the proxy's uid 0);
/// the body, or why it failed.
fn app_curl(host: &weft_testkit::Host, url: &str) -> Result<Vec<u8>, String> {
    crate::support::as_app(host, &["curl", "-sS", "--fail", "--max-time", "5", url])
}

/// The app's request to `vip_url` is carried by the mesh (the server sees the client's
/// identity) and one to `direct_url` is passed through to `direct`; once `proxy` is
/// stopped, the app reaches nothing: the redirect fails closed.
fn captured_then_closed(
    client: &weft_testkit::Host,
    vip_url: &str,
    direct: &weft_testkit::netns::Hosted<weft_testkit::echo::Server>,
    direct_url: &str,
    proxy: weft_testkit::process::WeftProcess,
) {
    let body = app_curl(client, vip_url).expect("through the mesh");
    let reply = EchoReply::from_body(&body).expect("echo reply");
    assert!(
        reply
            .header("x-forwarded-client-cert")
            .is_some_and(|x| x.contains("sa/client")),
        "{reply:?}"
    );
    app_curl(client, &format!("{direct_url}/passthrough")).expect("passthrough");
    let seen = direct.recorder().count();
    assert_eq!(seen, 1);

    drop(proxy);
    let refused = app_curl(client, &format!("{direct_url}/bypass"));
    assert!(
        refused.is_err(),
        "the app went around the stopped proxy: {refused:?}"
    );
    assert_eq!(
        direct.recorder().count(),
        seen,
        "nothing reached the direct server"
    );
}

fn nat_rules(host: &weft_testkit::Host) -> String {
    let out = host
        .exec(&["iptables-save", "-t", "nat"])
        .expect("iptables-save");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn weft_redirect_sends_app_traffic_through_the_proxy_and_fails_closed_without_it() {
    let Some(mesh) =
        Mesh::new("weft_redirect_sends_app_traffic_through_the_proxy_and_fails_closed_without_it")
    else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    // Something outside the mesh the app could try to reach directly.
    let direct_addr = crate::support::addr(&server, 9000);
    let direct = server
        .spawn_server(
            move || async move { weft_testkit::echo::spawn_http(direct_addr, "direct").await },
        )
        .expect("direct server");
    let vip = "198.18.100.10";
    let cfg = format!(
        "{}services:\n  - name: echo\n    vip: {vip}\n    ports: [{{ port: 80, targetPort: 8080, protocol: http }}]\n    endpoints: [{}]\n",
        mesh.identity_yaml(&client, "client", &[]),
        Mesh::endpoint(&server, "echo"),
    );
    let proxy = mesh.proxy(&client, &mesh.write("client", &cfg));
    let out = client
        .exec(&["ip", "route", "add", "198.18.100.0/24", "dev", "eth0"])
        .expect("route");
    assert!(out.status.success());
    let weft = crate::support::weft();
    let weft = weft.to_str().expect("utf-8");
    let install = |extra: &[&str]| {
        let mut args = vec![weft, "redirect", "install", "--proxy-uid", "0"];
        args.extend_from_slice(extra);
        let out = client.exec(&args).expect("weft redirect install");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    install(&[]);
    let once = nat_rules(&client);
    install(&[]);
    assert_eq!(nat_rules(&client), once, "install is idempotent");
    assert_eq!(once.matches("-j WEFT_OUTPUT").count(), 1, "{once}");

    // The app dials the VIP as if it were the service: the mesh carries it; anything
    // else goes through the proxy too (passed through); without the proxy the app's
    // connections are refused, not sent around the mesh.
    captured_then_closed(
        &client,
        &format!("http://{vip}/through"),
        &direct,
        &format!("http://{direct_addr}"),
        proxy,
    );

    let out = client
        .exec(&[weft, "redirect", "remove"])
        .expect("weft redirect remove");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !nat_rules(&client).contains("WEFT"),
        "{}",
        nat_rules(&client)
    );
    app_curl(&client, &format!("http://{direct_addr}/after-remove")).expect("direct again");
}

/// The host's IPv6 address on the test segment (added by [`add_ipv6`]).
fn ipv6(host: &weft_testkit::Host) -> std::net::Ipv6Addr {
    let last = host.ip().octets()[3];
    std::net::Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, u16::from(last))
}

fn add_ipv6(host: &weft_testkit::Host) {
    let addr = format!("{}/64", ipv6(host));
    for args in [
        vec![
            "ip",
            "-6",
            "addr",
            "add",
            addr.as_str(),
            "dev",
            "eth0",
            "nodad",
        ],
        vec!["ip", "-6", "route", "add", "fd00:240::/64", "dev", "eth0"],
    ] {
        let out = host.exec(&args).expect("exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn ipv6_connections_are_captured_too_so_the_app_cannot_step_around_the_mesh() {
    let Some(mesh) =
        Mesh::new("ipv6_connections_are_captured_too_so_the_app_cannot_step_around_the_mesh")
    else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    add_ipv6(&client);
    add_ipv6(&server);
    let (_app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    let direct_addr = std::net::SocketAddr::from((ipv6(&server), 9000));
    let direct = server
        .spawn_server(
            move || async move { weft_testkit::echo::spawn_http(direct_addr, "direct").await },
        )
        .expect("direct server");
    let vip = "fd00:240::10";
    let cfg = format!(
        "{}services:\n  - name: echo\n    vip: \"{vip}\"\n    ports: [{{ port: 80, targetPort: 8080, protocol: http }}]\n    endpoints: [{}]\n",
        mesh.identity_yaml(&client, "client", &[]),
        Mesh::endpoint(&server, "echo"),
    );
    let proxy = mesh.proxy(&client, &mesh.write("client", &cfg));
    let weft = crate::support::weft();
    let out = client
        .exec(&[
            weft.to_str().expect("utf-8"),
            "redirect",
            "install",
            "--proxy-uid",
            "0",
        ])
        .expect("weft redirect install");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An IPv6 VIP is routed through the mesh like an IPv4 one (captured on [::1]),
    // other IPv6 destinations are passed through, and without the proxy IPv6 is
    // refused too: no way around the mesh.
    captured_then_closed(
        &client,
        &format!("http://[{vip}]/v6"),
        &direct,
        &format!("http://{direct_addr}"),
        proxy,
    );
}
