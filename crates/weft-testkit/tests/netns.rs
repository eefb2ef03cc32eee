//! The namespace topology: hosts reach each other, code runs inside them, and nothing is
//! left behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use weft_testkit::{client, e2e_guard, echo, Topology};

#[test]
fn topology_hosts_can_reach_each_other() {
    if !e2e_guard("topology_hosts_can_reach_each_other") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let a = topology.add_host("client").expect("host a");
    let b = topology.add_host("server").expect("host b");
    assert_eq!(a.ip().to_string(), "198.18.0.2");
    assert_eq!(b.ip().to_string(), "198.18.0.3");

    let listen = SocketAddr::from((b.ip(), 7000));
    let server = b
        .spawn_server(move || echo::spawn_tcp(listen, "b"))
        .expect("tcp echo in b");

    let echoed = a.run(|| client::tcp_roundtrip(listen, b"hello across the bridge"));
    assert_eq!(echoed.expect("round trip"), b"hello across the bridge");

    let connections = server.recorder().connections();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].peer.ip(), a.ip());
    assert_eq!(connections[0].local, listen);
}

#[test]
fn host_addresses_exist_only_inside_their_namespace() {
    if !e2e_guard("host_addresses_exist_only_inside_their_namespace") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let a = topology.add_host("a").expect("host a");
    let ip = a.ip();
    // Binding the host's address works in the host and fails outside it.
    let inside =
        a.run(move || async move { tokio::net::TcpListener::bind((ip, 0)).await.map(|_| ()) });
    assert!(inside.is_ok(), "{inside:?}");
    assert!(std::net::TcpListener::bind((ip, 0)).is_err());

    let output = a
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("198.18.0.2/24"));
}

#[test]
fn topology_is_removed_on_drop() {
    if !e2e_guard("topology_is_removed_on_drop") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let host = topology.add_host("gone").expect("host");
    let paths = [
        PathBuf::from("/run/netns").join(topology.hub_netns_name()),
        host.netns_path(),
    ];
    assert!(paths.iter().all(|p| p.exists()), "{paths:?}");
    drop(topology);
    assert!(paths.iter().all(|p| !p.exists()), "{paths:?} still exist");

    // Also when the test panics while the topology is alive.
    let seen = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let topology = Topology::new().expect("topology");
        let host = topology.add_host("panics").expect("host");
        let mut seen = seen.lock().expect("lock");
        seen.push(PathBuf::from("/run/netns").join(topology.hub_netns_name()));
        seen.push(host.netns_path());
        drop(seen);
        panic!("test failure while the topology is alive");
    }));
    assert!(result.is_err());
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|p| !p.exists()), "{seen:?} still exist");
}

#[test]
fn removes_stale_namespaces_of_dead_processes() {
    if !e2e_guard("removes_stale_namespaces_of_dead_processes") {
        return;
    }
    // A pid above the kernel's maximum can never be alive.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number");
    // Unique per test process, since several may run this test at once.
    let stale = format!("wft{}x{}-hub", pid_max + 1, std::process::id());
    weft_testkit::netns::add_namespace(&stale).expect("ip netns add");
    let path = PathBuf::from("/run/netns").join(&stale);

    let _topology = Topology::new().expect("topology");
    assert!(!path.exists(), "stale namespace {stale} was not removed");
}

#[test]
fn spawned_future_stops_when_its_handle_drops() {
    if !e2e_guard("spawned_future_stops_when_its_handle_drops") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let a = topology.add_host("a").expect("host a");
    let listen = SocketAddr::from((a.ip(), 7001));
    let handle = a.spawn(move || async move {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        loop {
            let _ = listener.accept().await;
        }
    });
    // `spawn` returns before the future has bound anything: retry for a while.
    let connects = a.run(move || async move {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    });
    assert!(connects);
    assert!(!handle.is_finished());
    assert_eq!(handle.shutdown(), None);
    let refused =
        a.run(move || async move { tokio::net::TcpStream::connect(listen).await.is_err() });
    assert!(refused, "listener still open after shutdown");

    let finished = a.spawn(|| async { 42 });
    assert_eq!(finished.join(), Some(42));
}

#[test]
fn e2e_guard_runs_as_root() {
    if nix_is_root() {
        assert!(e2e_guard("e2e_guard_runs_as_root"));
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}
