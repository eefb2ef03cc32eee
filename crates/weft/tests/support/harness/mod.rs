//! An in-process mesh for tests that need no root: proxies run as library futures
//! ([`proxy::Proxy`]), a control plane runs in the test process
//! ([`control_plane::ControlPlane`]) or a scripted fake stands in for it
//! ([`fake_xds::FakeXds`]), and apps are `weft_testkit::echo` servers. Every piece
//! listens on a loopback address of its own "host" (127.0.0.2, 127.0.0.3, …) on ports
//! reserved for the mesh (`weft_testkit::ports`), so tests run in parallel, in one
//! process or many. ADR 0029 says why it lives here and not in `weft-testkit`.
//!
//! It mirrors the network-namespace suite's `Mesh` (`tests/e2e/support.rs`): a host
//! is an address instead of a namespace, and the ports every host shares there (app
//! 8080, admin 15000, HBONE 15008, metrics 15020, client listener 18080) are the
//! mesh's reserved [`Ports`] here.

#![allow(unreachable_pub)] // pub within the test crate that includes it

pub mod control_plane;
pub mod fake_xds;
pub mod proxy;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use weft_testkit::ca::TestPki;
use weft_testkit::TempDir;

pub use control_plane::ControlPlane;
pub use proxy::Proxy;

/// The ports every host of one mesh uses on its own address (the namespace suite's
/// fixed ports), reserved for this test process.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Where apps listen (8080 in the namespace suite).
    pub app: u16,
    /// Proxies' admin API (15000).
    pub admin: u16,
    /// Proxies' HBONE listener (15008).
    pub hbone: u16,
    /// Proxies' metrics listener (15020).
    pub metrics: u16,
    /// The client proxies' explicit outbound listener (18080).
    pub listen: u16,
}

/// A simulated host: a loopback address of its own.
#[derive(Clone, Debug)]
pub struct Host {
    name: String,
    ip: Ipv4Addr,
}

/// A PKI, a scratch directory, the mesh's ports and its hosts.
pub struct Mesh {
    pub pki: TestPki,
    pub dir: TempDir,
    pub ports: Ports,
    next_host: AtomicU8,
}

// === impl Host ===

impl Host {
    /// Its name (for file names and messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address.
    pub fn ip(&self) -> IpAddr {
        IpAddr::V4(self.ip)
    }

    /// `ip:port` on this host.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(), port)
    }
}

// === impl Mesh ===

impl Mesh {
    /// A new mesh with its own PKI (trust domain `cluster.local`) and ports.
    pub fn new() -> Mesh {
        let port = || weft_testkit::ports::free_loopback_port();
        Mesh {
            pki: TestPki::new("cluster.local").expect("test PKI"),
            dir: weft_testkit::tempdir().expect("tempdir"),
            ports: Ports {
                app: port(),
                admin: port(),
                hbone: port(),
                metrics: port(),
                listen: port(),
            },
            next_host: AtomicU8::new(2),
        }
    }

    /// Adds a host on the next loopback address (127.0.0.2 first).
    pub fn host(&self, name: &str) -> Host {
        let last = self.next_host.fetch_add(1, Ordering::Relaxed);
        assert!(last < 255, "too many hosts in one mesh");
        Host {
            name: name.to_owned(),
            ip: Ipv4Addr::new(127, 0, 0, last),
        }
    }

    /// Another port reserved for this mesh (an extra listener).
    #[allow(clippy::unused_self)] // a method, so call sites read as the mesh's port
    pub fn port(&self) -> u16 {
        weft_testkit::ports::free_loopback_port()
    }

    /// Where the app on `host` listens.
    pub fn app(&self, host: &Host) -> SocketAddr {
        host.addr(self.ports.app)
    }

    /// The client proxy's explicit listener on `host` (18080 in the namespace suite).
    pub fn listen(&self, host: &Host) -> SocketAddr {
        host.addr(self.ports.listen)
    }

    /// The admin API of the proxy on `host`.
    pub fn admin(&self, host: &Host) -> SocketAddr {
        host.addr(self.ports.admin)
    }

    /// The metrics listener of the proxy on `host`.
    pub fn metrics(&self, host: &Host) -> SocketAddr {
        host.addr(self.ports.metrics)
    }

    /// The `workload:`, `certificates:` and `listeners:` blocks for a proxy on `host`
    /// whose service account is `sa`, serving `ports` (`(port, protocol)`).
    pub fn identity_yaml(&self, host: &Host, sa: &str, ports: &[(u16, &str)]) -> String {
        let certs = self.pki.issue("default", sa).expect("issue certificate");
        self.identity_yaml_with(host, sa, ports, &certs)
    }

    /// As [`Mesh::identity_yaml`] with given certificate files.
    pub fn identity_yaml_with(
        &self,
        host: &Host,
        sa: &str,
        ports: &[(u16, &str)],
        certs: &weft_tls::ca::IssuedPaths,
    ) -> String {
        self.workload_yaml(host, sa, &[], ports) + &crate::config::certificates(certs)
    }

    /// The `workload:` and `listeners:` blocks, without certificates (a proxy that
    /// gets its certificate from the control plane).
    pub fn workload_yaml(
        &self,
        host: &Host,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[(u16, &str)],
    ) -> String {
        let ports = crate::config::ports(ports);
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(
            "workload:\n  name: {name}\n  serviceAccount: {name}\n  address: {ip}\n  appAddress: {ip}\n  \
             labels: {{ {labels} }}\n  ports: [{ports}]\n\
             listeners:\n  admin: {ip}:{admin}\n  metrics: {ip}:{metrics}\n  hbone: {ip}:{hbone}\n  \
             outboundCapture: null\n  inboundCapture: null\n",
            ip = host.ip(),
            labels = labels.join(", "),
            ports = ports,
            admin = self.ports.admin,
            metrics = self.ports.metrics,
            hbone = self.ports.hbone,
        )
    }

    /// An endpoint entry for a meshed workload on `host` with service account `sa`.
    pub fn endpoint(&self, host: &Host, sa: &str) -> String {
        format!(
            "{{ address: {ip}, hbone: \"{ip}:{hbone}\", identity: \"spiffe://cluster.local/ns/default/sa/{sa}\" }}",
            ip = host.ip(),
            hbone = self.ports.hbone,
        )
    }

    /// A plaintext endpoint outside the mesh on `host` (dialled on the target port).
    pub fn direct(host: &Host) -> String {
        format!("{{ address: {} }}", host.ip())
    }

    /// One `outbound:` list item: a listener on `host`:`port` for `service:svc_port`.
    pub fn outbound(host: &Host, port: u16, service: &str, svc_port: u16) -> String {
        format!(
            "  - {{ listen: \"{}\", service: {service}, port: {svc_port} }}\n",
            host.addr(port)
        )
    }

    /// One `services:` list item whose `port` targets the mesh's app port.
    pub fn service(&self, name: &str, port: u16, protocol: &str, endpoints: &[String]) -> String {
        Mesh::service_on(name, port, self.ports.app, protocol, endpoints)
    }

    /// One `services:` list item whose `port` targets `target`.
    pub fn service_on(
        name: &str,
        port: u16,
        target: u16,
        protocol: &str,
        endpoints: &[String],
    ) -> String {
        format!(
            "  - name: {name}\n    ports: [{{ port: {port}, targetPort: {target}, protocol: {protocol} }}]\n    endpoints: [{}]\n",
            endpoints.join(", "),
        )
    }

    /// The client config most tests use: identity `sa` on `host`, the explicit
    /// listener → `echo:80`, then `services` (list items) and `extra` top-level YAML.
    pub fn client_config(&self, host: &Host, sa: &str, services: &str, extra: &str) -> String {
        format!(
            "{}outbound:\n{}services:\n{services}{extra}",
            self.identity_yaml(host, sa, &[]),
            Mesh::outbound(host, self.ports.listen, "echo", 80),
        )
    }

    /// Writes `yaml` to `<dir>/<name>.yaml` (write, then rename, as config tools do,
    /// so a proxy never reads half a file).
    pub fn write(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        let tmp = self.dir.path().join(format!(".{name}.yaml.tmp"));
        std::fs::write(&tmp, yaml).expect("write config");
        std::fs::rename(&tmp, &path).expect("rename config");
        path
    }

    /// Starts a proxy (file mode) on `host` with the config at `path`; waits for
    /// `/ready`.
    pub async fn proxy(&self, host: &Host, path: &Path) -> Proxy {
        Proxy::start(host.name(), path.to_owned(), None, self.admin(host)).await
    }

    /// An HTTP echo app named `name` on `host` with a proxy in front (service account
    /// `echo`). Keep both alive for the test.
    pub async fn echo_workload(
        &self,
        host: &Host,
        name: &str,
    ) -> (weft_testkit::echo::Server, Proxy) {
        let app = weft_testkit::echo::spawn_http(self.app(host), name)
            .await
            .expect("echo app starts");
        let config = self.write(
            &format!("app-{}", host.name()),
            &self.identity_yaml(host, "echo", &[(self.ports.app, "http")]),
        );
        (app, self.proxy(host, &config).await)
    }
}

/// A GET to `addr` with `Host: echo`: (status, the echo server's name); status 0 when
/// the exchange failed.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    match weft_testkit::client::http1_get(addr, "echo", path).await {
        Ok(resp) => (
            resp.status().as_u16(),
            resp.headers()
                .get(weft_testkit::echo::SERVER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (0, None),
    }
}

/// Polls the async `check` every 50 ms until it holds or `timeout` passes; whether it
/// held. The async twin of `weft_testkit::eventually`.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check().await
}
