//! The proxy's mesh DNS on loopback, without root: a `weft proxy` with `listeners.dns`,
//! a fake upstream resolver, and a stub client asking over UDP and TCP.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weft_testkit::dns::{self, Rcode, Type};
use weft_testkit::process::WeftProcess;

/// A port free for TCP and UDP, reserved for this test process.
fn free_port() -> u16 {
    weft_testkit::ports::free_port_tcp_udp(std::net::Ipv4Addr::LOCALHOST)
}

/// The proxy's loopback ports.
#[derive(Clone, Copy)]
struct Ports {
    admin: u16,
    metrics: u16,
}

impl Ports {
    fn pick() -> Self {
        Self {
            admin: free_port(),
            metrics: free_port(),
        }
    }
}

fn config(dns: SocketAddr, upstream: SocketAddr, ports: Ports, extra_service: &str) -> String {
    let Ports { admin, metrics } = ports;
    format!(
        "workload: {{ name: web, namespace: shop, address: 127.0.0.1 }}\n\
         listeners: {{ admin: 127.0.0.1:{admin}, hbone: null, metrics: \"127.0.0.1:{metrics}\", outboundCapture: null, dns: \"{dns}\" }}\n\
         dns: {{ upstreams: [\"{upstream}\"], ttl: 5s }}\n\
         services:\n\
         \x20 - {{ name: catalog, namespace: shop, vip: 240.240.0.7, hostnames: [catalog.shop.svc.cluster.local], ports: [{{ port: 8080 }}] }}\n\
         \x20 - {{ name: ledger, namespace: bank, vip: \"fd00:10::9\", hostnames: [ledger.bank.svc.cluster.local], ports: [{{ port: 80 }}] }}\n\
         {extra_service}"
    )
}

/// `weft_proxy_dns_queries_total{result="…"}` on the proxy's metrics listener.
async fn dns_count(ports: Ports, result: &str) -> u64 {
    let addr = SocketAddr::from(([127, 0, 0, 1], ports.metrics));
    let response = weft_testkit::client::http1_get(addr, "metrics", "/metrics")
        .await
        .expect("metrics");
    let body = String::from_utf8_lossy(response.body()).into_owned();
    let prefix = format!("weft_proxy_dns_queries_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

fn spawn(path: &Path, admin: u16) -> WeftProcess {
    WeftProcess::spawn_local(
        Path::new(env!("CARGO_BIN_EXE_weft")),
        &[
            "proxy",
            "--config",
            path.to_str().expect("utf-8"),
            "--watch-interval",
            "100ms",
        ],
        &[],
        SocketAddr::from(([127, 0, 0, 1], admin)),
    )
    .expect("proxy")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_dns_answers_service_names_itself_and_forwards_every_other_name() {
    let upstream = dns::spawn_upstream(&[("db.example.test", ip("192.0.2.10"))])
        .await
        .expect("upstream");
    let dir = weft_testkit::tempdir().expect("tempdir");
    let (ports, port) = (Ports::pick(), free_port());
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let path: PathBuf = dir.path().join("proxy.yaml");
    std::fs::write(&path, config(server, upstream.addr(), ports, "")).expect("write");
    let _proxy = tokio::task::spawn_blocking({
        let path = path.clone();
        move || spawn(&path, ports.admin)
    })
    .await
    .expect("spawn");

    // Service names, full and short, over UDP and TCP: answered authoritatively.
    for name in [
        "catalog.shop.svc.cluster.local",
        "catalog.shop.svc",
        "catalog.shop",
        "catalog",
    ] {
        for answer in [
            dns::query_udp(server, name, Type::A).await.expect("udp"),
            dns::query_tcp(server, name, Type::A).await.expect("tcp"),
        ] {
            assert_eq!(answer.code, Rcode::NoError, "{name}");
            assert_eq!(answer.addresses, [ip("240.240.0.7")], "{name}");
            assert!(answer.authoritative, "{name}");
        }
    }
    let v6 = dns::query_udp(server, "ledger.bank.svc.cluster.local", Type::AAAA)
        .await
        .expect("aaaa");
    assert_eq!(v6.addresses, [ip("fd00:10::9")]);
    // The other family: the name exists, with no address of that type.
    let other = dns::query_udp(server, "catalog.shop", Type::AAAA)
        .await
        .expect("aaaa");
    assert_eq!((other.code, other.addresses.len()), (Rcode::NoError, 0));
    // A name in the mesh zone that no service has: NXDOMAIN, never asked upstream.
    let unknown = dns::query_udp(server, "gone.shop.svc.cluster.local", Type::A)
        .await
        .expect("nx");
    assert_eq!(unknown.code, Rcode::NXDomain);
    assert_eq!(upstream.asked(), 0, "mesh names stay on the host");

    // Everything else: the upstream's answer, over both transports.
    let udp = dns::query_udp(server, "db.example.test", Type::A)
        .await
        .expect("udp");
    assert_eq!(
        (udp.code, udp.addresses.clone(), udp.authoritative),
        (Rcode::NoError, vec![ip("192.0.2.10")], false)
    );
    let tcp = dns::query_tcp(server, "db.example.test", Type::A)
        .await
        .expect("tcp");
    assert_eq!(tcp.addresses, [ip("192.0.2.10")]);
    let missing = dns::query_udp(server, "nope.example.test", Type::A)
        .await
        .expect("nx upstream");
    assert_eq!(missing.code, Rcode::NXDomain);
    assert_eq!(upstream.asked(), 3);
    // 8 service answers, the AAAA pair, one NXDOMAIN of ours; three forwarded.
    assert_eq!(dns_count(ports, "service").await, 10);
    assert_eq!(dns_count(ports, "nxdomain").await, 1);
    assert_eq!(dns_count(ports, "forwarded").await, 3);

    // A service added to the config is answered once the proxy has reloaded it.
    std::fs::write(
        &path,
        config(
            server,
            upstream.addr(),
            ports,
            "  - { name: orders, namespace: shop, vip: 240.240.0.8, hostnames: [orders.shop.svc.cluster.local], ports: [{ port: 80 }] }\n",
        ),
    )
    .expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = dns::query_udp(server, "orders", Type::A)
            .await
            .expect("udp");
        if answer.addresses == [ip("240.240.0.8")] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orders never resolved: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_dns_answers_servfail_promptly_when_no_upstream_answers() {
    let dir = weft_testkit::tempdir().expect("tempdir");
    let (ports, port, dead) = (Ports::pick(), free_port(), free_port());
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let path = dir.path().join("proxy.yaml");
    let upstream = SocketAddr::from(([127, 0, 0, 1], dead));
    std::fs::write(&path, config(server, upstream, ports, "")).expect("write");
    let _proxy = tokio::task::spawn_blocking({
        let path = path.clone();
        move || spawn(&path, ports.admin)
    })
    .await
    .expect("spawn");

    for transport in ["udp", "tcp"] {
        let started = Instant::now();
        let answer = match transport {
            "udp" => dns::query_udp(server, "db.example.test", Type::A).await,
            _ => dns::query_tcp(server, "db.example.test", Type::A).await,
        }
        .expect("an answer, not silence");
        assert_eq!(answer.code, Rcode::ServFail, "{transport}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{transport}: SERVFAIL took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(dns_count(ports, "servfail").await, 2);
    // Mesh names do not depend on the upstream.
    let answer = dns::query_udp(server, "catalog", Type::A)
        .await
        .expect("udp");
    assert_eq!(answer.addresses, [ip("240.240.0.7")]);
}
