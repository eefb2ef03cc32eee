//! A small mesh builder for end-to-end tests: hosts in network namespaces, a test PKI,
//! proxy configs written from short YAML fragments, and real `weft proxy` processes.

use std::net::SocketAddr;
use std::path::PathBuf;

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
        format!(
            "workload:\n  name: {sa}\n  serviceAccount: {sa}\n  address: {ip}\n  ports: [{ports}]\n{certificates}",
            ip = host.ip(),
            ports = crate::config::ports(ports),
            certificates = crate::config::certificates(certs),
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

/// Runs `args` on `host` as an unprivileged app (uid 65534, not the proxies' uid 0,
/// so transparent-mode rules apply to it); its stdout, or its stderr if it failed.
pub fn as_app(host: &Host, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = host
        .command("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
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

pub use weft_testkit::eventually;

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
    weft_testkit::postgres::bin_dir()
}

/// A throw-away PostgreSQL server on 127.0.0.1:5432 inside a host, with trust
/// authentication (see [`weft_testkit::postgres`]). Stopped when dropped.
pub struct Postgres {
    _server: weft_testkit::postgres::Postgres,
}

impl Postgres {
    /// Initialises a cluster and starts it; waits until it accepts connections.
    pub fn start(host: &Host, bin: &std::path::Path, _scratch: &std::path::Path) -> Self {
        let server = weft_testkit::postgres::Postgres::builder()
            .bin_dir(bin)
            .host(host)
            .port(5432)
            .start()
            .expect("postgres starts");
        Self { _server: server }
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

/// Where a control plane in a test serves its API and xDS inside its host.
pub const API_PORT: u16 = 5681;
/// xDS port of a test control plane.
pub const XDS_PORT: u16 = 5678;

impl Mesh {
    /// Starts `weft control-plane` on `host` (embedded SQLite in a per-host data dir
    /// unless `extra` names `--store`), with a short grace period; waits for `/readyz`.
    pub fn control_plane(&self, host: &Host, extra: &[&str]) -> WeftProcess {
        let data = self.dir.path().join(format!("cp-{}", host.name()));
        let data = data.to_str().expect("utf-8 path").to_owned();
        let api = format!("0.0.0.0:{API_PORT}");
        let xds = format!("0.0.0.0:{XDS_PORT}");
        let mut args = vec![
            "control-plane",
            "--data-dir",
            &data,
            "--api-listen",
            &api,
            "--xds-listen",
            &xds,
            "--instance",
            host.name(),
            "--grace-period",
            "3s",
            "--log-level",
            "info,weft_control=debug",
        ];
        args.extend_from_slice(extra);
        let ca_file = std::path::Path::new(&data).join("ca.crt");
        WeftProcess::spawn_probing_tls(
            host,
            &weft(),
            &args,
            &[],
            local(API_PORT),
            "/readyz",
            &ca_file,
        )
        .expect("weft control-plane starts and becomes ready")
    }

    /// The mesh CA file the control plane on `cp` wrote (any instance's, when several
    /// share one store: they share the CA).
    pub fn ca_file(&self, cp: &Host) -> PathBuf {
        let own = self
            .dir
            .path()
            .join(format!("cp-{}", cp.name()))
            .join("ca.crt");
        if own.exists() {
            return own;
        }
        std::fs::read_dir(self.dir.path())
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("cp-"))
            .map(|e| e.path().join("ca.crt"))
            .find(|p| p.exists())
            .unwrap_or(own)
    }

    /// `https://<cp>:5678`, the xDS endpoint proxies dial.
    pub fn xds_endpoint(cp: &Host) -> String {
        format!("https://{}:{XDS_PORT}", cp.ip())
    }

    /// Runs `weft ARGS…` (the CLI) inside `host` against the control plane's API on
    /// that host; returns (success, stdout + stderr).
    pub fn cli(&self, host: &Host, args: &[&str]) -> (bool, String) {
        let mut command = host.command(weft());
        command
            .args(args)
            .env(
                "WEFT_CONTROL_PLANE",
                format!("https://127.0.0.1:{API_PORT}"),
            )
            .env("WEFT_CA_FILE", self.ca_file(host))
            .env("HOME", self.dir.path());
        if let Some(token) = self.admin_token() {
            command.env("WEFT_TOKEN", token);
        }
        let out = command.output().expect("run the weft CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The operator admin token a control plane of this mesh wrote to its data dir
    /// (with several instances on one database, only the first writes it).
    pub fn admin_token(&self) -> Option<String> {
        std::fs::read_dir(self.dir.path())
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("cp-"))
            .find_map(|e| std::fs::read_to_string(e.path().join("admin-token")).ok())
            .map(|t| t.trim().to_owned())
    }

    /// `weft apply -f` of `yaml` (written to `<name>.yaml`) inside `host`; panics with
    /// the CLI's output if it fails.
    pub fn apply(&self, host: &Host, name: &str, yaml: &str) -> String {
        let path = self.write(name, yaml);
        let (ok, out) = self.cli(host, &["apply", "-f", path.to_str().expect("utf-8 path")]);
        assert!(ok, "weft apply -f {name} failed:\n{out}");
        out
    }

    /// A bootstrap for control-plane mode: workload `name` (service account `name`)
    /// with `labels`, serving `ports`, with explicit outbound listeners `outbound`
    /// (`(listen port, service, service port)`).
    pub fn bootstrap(
        &self,
        host: &Host,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[(u16, &str)],
        outbound_listeners: &[(u16, &str, u16)],
    ) -> PathBuf {
        let mut yaml = self.identity_yaml(host, name, ports);
        if !labels.is_empty() {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            yaml = yaml.replacen(
                "workload:\n",
                &format!("workload:\n  labels: {{ {} }}\n", labels.join(", ")),
                1,
            );
        }
        if !outbound_listeners.is_empty() {
            yaml.push_str("outbound:\n");
            for (listen, service, port) in outbound_listeners {
                yaml.push_str(&outbound(*listen, service, *port));
            }
        }
        self.write(&format!("bootstrap-{name}"), &yaml)
    }

    /// Starts `weft proxy` in control-plane mode on `host`, talking to the control
    /// plane on `cp`, persisting to a per-proxy state dir; waits for `/ready`.
    pub fn meshed_proxy(&self, host: &Host, bootstrap: &std::path::Path, cp: &Host) -> WeftProcess {
        let yaml = std::fs::read_to_string(bootstrap).expect("read bootstrap");
        let sa = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("serviceAccount: "))
            .expect("bootstrap names a service account")
            .to_owned();
        let labels = bootstrap_labels(&yaml);
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let token = self.workload_token(cp, &sa, &labels);
        self.tokened_proxy(host, bootstrap, &token, cp)
    }

    /// Mints a workload token for `default/<sa>` granting `labels` with `weft token
    /// workload` on `cp`; returns the file it was written to.
    pub fn workload_token(&self, cp: &Host, sa: &str, labels: &[(&str, &str)]) -> PathBuf {
        let args = crate::config::workload_token_args(sa, labels);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = self.cli(cp, &args);
        assert!(ok, "weft token workload failed:\n{out}");
        crate::config::save_workload_token(&out, self.dir.path(), sa)
    }
}

/// The `labels: { k: v, … }` line [`Mesh::bootstrap`] writes, as pairs.
fn bootstrap_labels(yaml: &str) -> Vec<(String, String)> {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("labels: {"))
        .map(|rest| {
            rest.trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The echo service family the control-plane tests use: `echo` (port 80 → 8080) over
/// every `app: echo` workload, and `echo-v1` / `echo-v2` over each version.
pub const ECHO_SERVICES: &str = "\
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: echo }
spec:
  selector: { app: echo }
  ports: [{ port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: echo-v1 }
spec:
  selector: { app: echo, version: v1 }
  ports: [{ port: 80, targetPort: 8080, protocol: http }]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: echo-v2 }
spec:
  selector: { app: echo, version: v2 }
  ports: [{ port: 80, targetPort: 8080, protocol: http }]
";

/// An echo app on `host`:8080 answering as `name`, with a control-plane-mode proxy
/// registered with labels `app: echo, version: <version>`.
pub fn meshed_echo(
    mesh: &Mesh,
    host: &Host,
    cp: &Host,
    version: &str,
) -> (
    weft_testkit::netns::Hosted<weft_testkit::echo::Server>,
    WeftProcess,
) {
    let app_name = version.to_owned();
    let app = host
        .spawn_server(move || async move {
            weft_testkit::echo::spawn_http(local(8080), &app_name).await
        })
        .expect("echo app starts");
    let boot = mesh.bootstrap(
        host,
        &format!("echo-{version}"),
        &[("app", "echo"), ("version", version)],
        &[(8080, "http")],
        &[],
    );
    (app, mesh.meshed_proxy(host, &boot, cp))
}

impl Mesh {
    /// A bootstrap with no certificate files: the proxy gets its certificate from the
    /// control plane with the workload token in `<dir>/<name>.token`, minted here with
    /// `weft token workload` on `cp`.
    pub fn tokened_bootstrap(
        &self,
        cp: &Host,
        host: &Host,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[(u16, &str)],
        outbound_listeners: &[(u16, &str, u16)],
    ) -> (PathBuf, PathBuf) {
        let with_certs = self.bootstrap(host, name, labels, ports, outbound_listeners);
        let yaml = std::fs::read_to_string(&with_certs).expect("read bootstrap");
        let mut kept = Vec::new();
        let mut skipping = false;
        for line in yaml.lines() {
            if line.starts_with("certificates:") {
                skipping = true;
                continue;
            }
            if skipping && line.starts_with("  ") {
                continue;
            }
            skipping = false;
            kept.push(line);
        }
        let path = self.write(&format!("bootstrap-{name}"), &(kept.join("\n") + "\n"));
        (path, self.workload_token(cp, name, labels))
    }

    /// Like [`Mesh::meshed_proxy`], presenting `token`.
    pub fn tokened_proxy(
        &self,
        host: &Host,
        bootstrap: &std::path::Path,
        token: &std::path::Path,
        cp: &Host,
    ) -> WeftProcess {
        let state = self.dir.path().join(format!("state-{}", host.name()));
        let endpoint = Self::xds_endpoint(cp);
        let ca_file = self.ca_file(cp);
        WeftProcess::spawn(
            host,
            &weft(),
            &[
                "proxy",
                "--config",
                bootstrap.to_str().expect("utf-8 path"),
                "--control-plane",
                &endpoint,
                "--state-dir",
                state.to_str().expect("utf-8 path"),
                "--token-file",
                token.to_str().expect("utf-8 path"),
                "--control-plane-ca",
                ca_file.to_str().expect("utf-8 path"),
                "--log-level",
                "info,weft_proxy=debug",
            ],
            &[],
            ADMIN.parse().expect("admin addr"),
        )
        .expect("weft proxy (control-plane certificate) starts and becomes ready")
    }
}

/// An echo app answering as `v1` on `host`:8080 behind workload `echo-v1` (labels
/// `app: echo, version: v1`), whose proxy gets its certificate from the control plane
/// on `cp`. Keep both values alive for the test.
pub fn issued_echo(
    mesh: &Mesh,
    cp: &Host,
    host: &Host,
) -> (
    weft_testkit::netns::Hosted<weft_testkit::echo::Server>,
    WeftProcess,
) {
    let app = host
        .spawn_server(|| weft_testkit::echo::spawn_http(local(8080), "v1"))
        .expect("echo app");
    let (boot, token) = mesh.tokened_bootstrap(
        cp,
        host,
        "echo-v1",
        &[("app", "echo"), ("version", "v1")],
        &[(8080, "http")],
        &[],
    );
    (app, mesh.tokened_proxy(host, &boot, &token, cp))
}
