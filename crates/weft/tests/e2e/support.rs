//! A small mesh builder for end-to-end tests: hosts in network namespaces, a test PKI,
//! proxy configs written from short YAML fragments, and real `weft proxy` processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use weft_testkit::ca::TestPki;
use weft_testkit::process::WeftProcess;
use weft_testkit::{Host, TempDir, Topology};

/// The admin address every proxy uses inside its own host.
pub const ADMIN: &str = "127.0.0.1:15000";

/// The `weft` binary under test.
pub fn weft() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

/// A topology, a PKI and a scratch directory. Field order matters: processes and
/// servers are dropped by the test before the topology goes.
pub struct Mesh {
    pub pki: TestPki,
    pub dir: TempDir,
    pub topo: Topology,
}

impl Mesh {
    /// A new mesh, or `None` when end-to-end tests cannot run here (not root).
    pub fn new(test: &str) -> Option<Self> {
        if !weft_testkit::e2e_guard(test) {
            return None;
        }
        Some(Self {
            pki: TestPki::new("cluster.local").expect("test PKI"),
            dir: weft_testkit::tempdir().expect("tempdir"),
            topo: Topology::new().expect("topology"),
        })
    }

    /// Adds a host.
    pub fn host(&self, name: &str) -> Host {
        self.topo.add_host(name).expect("add host")
    }

    /// The `workload:` and `certificates:` blocks for a proxy on `host` whose service
    /// account is `sa`, serving `ports` (`"8080: http"` style entries).
    pub fn identity_yaml(&self, host: &Host, sa: &str, ports: &[(u16, &str)]) -> String {
        let certs = self.pki.issue("default", sa).expect("issue certificate");
        self.identity_yaml_with(host, sa, ports, &certs)
    }

    /// As [`Self::identity_yaml`] with given certificate files.
    pub fn identity_yaml_with(
        &self,
        host: &Host,
        sa: &str,
        ports: &[(u16, &str)],
        certs: &weft_tls::ca::IssuedPaths,
    ) -> String {
        let ports: Vec<String> = ports
            .iter()
            .map(|(p, proto)| format!("{{ port: {p}, protocol: {proto} }}"))
            .collect();
        format!(
            "workload:\n  name: {sa}\n  serviceAccount: {sa}\n  address: {ip}\n  ports: [{ports}]\n\
             certificates:\n  cert: {cert}\n  key: {key}\n  trustBundle: {bundle}\n",
            ip = host.ip(),
            ports = ports.join(", "),
            cert = certs.cert.display(),
            key = certs.key.display(),
            bundle = certs.trust_bundle.display(),
        )
    }

    /// An endpoint entry for a workload on `host` with service account `sa`.
    pub fn endpoint(host: &Host, sa: &str) -> String {
        format!(
            "{{ address: {}, identity: \"spiffe://cluster.local/ns/default/sa/{sa}\" }}",
            host.ip()
        )
    }

    /// Writes `yaml` to `<dir>/<name>.yaml`.
    pub fn write(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        // Write then rename, as config tools do, so the proxy never reads half a file.
        let tmp = self.dir.path().join(format!(".{name}.yaml.tmp"));
        std::fs::write(&tmp, yaml).expect("write config");
        std::fs::rename(&tmp, &path).expect("rename config");
        path
    }

    /// Starts `weft proxy` on `host` with the config at `path`; waits for `/ready`.
    pub fn proxy(&self, host: &Host, path: &std::path::Path) -> WeftProcess {
        let config = path.to_str().expect("utf-8 path");
        WeftProcess::spawn(
            host,
            &weft(),
            &[
                "proxy",
                "--config",
                config,
                "--watch-interval",
                "200ms",
                "--log-level",
                "info,weft_proxy=debug",
            ],
            &[],
            ADMIN.parse().expect("admin addr"),
        )
        .expect("weft proxy starts and becomes ready")
    }
}

/// `ip:port` on `host`.
pub fn addr(host: &Host, port: u16) -> SocketAddr {
    SocketAddr::new(host.ip().into(), port)
}

/// Local loopback address `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Polls `check` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// A GET through a client host's outbound listener, returning (status, echo server name).
pub async fn get(port: u16, path: &str) -> (u16, Option<String>) {
    match weft_testkit::client::http1_get(local(port), "echo", path).await {
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

/// One `services:` list item.
pub fn service(name: &str, port: u16, target: u16, protocol: &str, endpoints: &[String]) -> String {
    format!(
        "  - name: {name}\n    ports: [{{ port: {port}, targetPort: {target}, protocol: {protocol} }}]\n    endpoints: [{}]\n",
        endpoints.join(", ")
    )
}

/// One `outbound:` list item.
pub fn outbound(listen_port: u16, service: &str, port: u16) -> String {
    format!("  - {{ listen: \"127.0.0.1:{listen_port}\", service: {service}, port: {port} }}\n")
}

/// The directory holding Debian's PostgreSQL server binaries, if installed.
pub fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    found.sort();
    found.pop()
}

/// A throw-away PostgreSQL server on 127.0.0.1:5432 inside a host, run as the
/// `postgres` user with trust authentication.
pub struct Postgres {
    child: weft_testkit::process::Child,
    _dir: TempDir,
}

impl Postgres {
    /// Initialises a cluster and starts it; waits until it accepts connections.
    pub fn start(host: &Host, bin: &std::path::Path, _scratch: &std::path::Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = weft_testkit::tempdir().expect("pg dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let data = dir.path().join("data");
        let status = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["--auth=trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        // setpriv execs in place, so the pid we hold is the postmaster itself.
        let mut cmd = host.command("setpriv");
        cmd.args([
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--init-groups",
        ])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-p", "5432", "-k"])
        .arg(dir.path());
        let child = weft_testkit::process::Child::spawn(cmd, "postgres").expect("start postgres");
        let ready = eventually(Duration::from_secs(20), || {
            host.command(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", "5432"])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(ready, "postgres did not start: {}", child.logs());
        Self { child, _dir: dir }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.sigterm();
        let _ = self.child.wait_exit(Duration::from_secs(5));
    }
}

/// The app every simple test talks to: an HTTP echo server named `name` on
/// 127.0.0.1:8080 of `host`, behind a proxy whose service account is `echo`. Keep both
/// values alive for the test.
pub fn echo_workload(
    mesh: &Mesh,
    host: &Host,
    name: &str,
) -> (
    weft_testkit::netns::Hosted<weft_testkit::echo::Server>,
    WeftProcess,
) {
    let app_name = name.to_owned();
    let app = host
        .spawn_server(move || async move {
            weft_testkit::echo::spawn_http(local(8080), &app_name).await
        })
        .expect("echo app starts");
    let config = mesh.write(name, &mesh.identity_yaml(host, "echo", &[(8080, "http")]));
    (app, mesh.proxy(host, &config))
}

/// The client-side config most tests use: identity `client`, the explicit listener
/// 127.0.0.1:18080 → `echo:80`, then `services` (list items) and `extra` top-level YAML.
pub fn client_config(mesh: &Mesh, host: &Host, services: &str, extra: &str) -> String {
    format!(
        "{}outbound:\n{}services:\n{services}{extra}",
        mesh.identity_yaml(host, "client", &[]),
        outbound(18080, "echo", 80),
    )
}
