//! `weft control-plane` run as a library future on its own thread and runtime
//! (embedded SQLite in the mesh's directory), the `weft` CLI pointed at it, and
//! control-plane-mode proxies that get their certificate from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Host, Mesh, Proxy};

/// How long the control plane may take to answer the CLI.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running control plane. Dropping it (or [`ControlPlane::kill`]) stops it at once,
/// as SIGKILL would; a new one started on the same directory and ports carries on.
pub struct ControlPlane {
    api: SocketAddr,
    xds: SocketAddr,
    data: PathBuf,
    home: PathBuf,
    kill: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl ControlPlane {
    /// Starts a control plane whose store lives in `data`, serving its API on `api` and
    /// xDS on `xds` (all loopback); waits until the CLI gets answers from it.
    /// `configure` changes the options first (what the flags of `weft control-plane`
    /// set, e.g. the certificate lifetime).
    pub async fn start(
        data: &Path,
        api: SocketAddr,
        xds: SocketAddr,
        configure: impl FnOnce(&mut weft_control::server::Options),
    ) -> ControlPlane {
        std::fs::create_dir_all(data).expect("control-plane data dir");
        let mut options = weft_control::server::Options {
            store: weft_control::store::StoreSpec::data_dir(data),
            api_listen: api,
            xds_listen: xds,
            instance: "harness".into(),
            grace_period: Duration::from_secs(3),
            debounce: Duration::from_millis(50),
            admin_token_file: Some(data.join(weft_control::api::auth::ADMIN_TOKEN_FILE)),
            ca_file: Some(data.join(weft_control::server::CA_FILE)),
            tls_hosts: vec!["localhost".into(), "127.0.0.1".into()],
            certificates: weft_control::identity::Options::default(),
            quotas: weft_control::controller::registry::Quotas::default(),
            xds_limits: weft_control::server::xds_limits(),
            secret_key_file: None,
        };
        configure(&mut options);
        let kill = CancellationToken::new();
        let thread = {
            let kill = kill.clone();
            std::thread::Builder::new()
                .name("control-plane".into())
                .spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    runtime.block_on(async {
                        let stop = CancellationToken::new();
                        tokio::select! {
                            result = weft_control::server::run(options, stop) => {
                                if let Err(e) = result {
                                    eprintln!("the control plane stopped: {e}");
                                }
                            }
                            () = kill.cancelled() => {}
                        }
                    });
                    runtime.shutdown_background();
                })
                .expect("spawn the control-plane thread")
        };
        let home = data.join("home");
        std::fs::create_dir_all(&home).expect("CLI home");
        let cp = ControlPlane {
            api,
            xds,
            data: data.to_owned(),
            home,
            kill,
            thread: Some(thread),
        };
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if cp.ca_file().exists() && cp.cli(&["get", "services"]).await.0 {
                return cp;
            }
            assert!(
                !cp.thread.as_ref().is_some_and(JoinHandle::is_finished),
                "the control plane stopped before it was ready"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "the control plane did not answer within {READY_TIMEOUT:?}: {}",
                cp.cli(&["get", "services"]).await.1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it at once (an outage).
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.kill.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Where its API listens.
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    /// The mesh CA certificate it wrote.
    pub fn ca_file(&self) -> PathBuf {
        self.data.join(weft_control::server::CA_FILE)
    }

    /// The operator admin token it wrote.
    pub fn admin_token(&self) -> Option<String> {
        std::fs::read_to_string(self.data.join(weft_control::api::auth::ADMIN_TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_owned())
    }

    /// `https://<xds>`, the endpoint proxies dial.
    pub fn xds_endpoint(&self) -> String {
        format!("https://{}", self.xds)
    }

    /// Runs `weft ARGS…` (the CLI, a child process) against this control plane's
    /// API; (success, stdout + stderr).
    pub async fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .args(args)
            .env("WEFT_CONTROL_PLANE", format!("https://{}", self.api))
            .env("WEFT_CA_FILE", self.ca_file())
            .env("HOME", &self.home)
            .env_remove("WEFT_TOKEN");
        if let Some(token) = self.admin_token() {
            command.env("WEFT_TOKEN", token);
        }
        let out = command.output().await.expect("run the weft CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `weft apply -f` of `yaml` (written to `<dir>/<name>.yaml`); panics with the
    /// CLI's output if it fails.
    pub async fn apply(&self, mesh: &Mesh, name: &str, yaml: &str) -> String {
        let path = mesh.write(name, yaml);
        let (ok, out) = self
            .cli(&["apply", "-f", path.to_str().expect("utf-8 path")])
            .await;
        assert!(ok, "weft apply -f {name} failed:\n{out}");
        out
    }

    /// Mints a workload token for `default/<sa>` granting `labels` with `weft token
    /// workload`; returns the file it was written to in `dir`.
    pub async fn workload_token(&self, dir: &Path, sa: &str, labels: &[(&str, &str)]) -> PathBuf {
        let args = crate::config::workload_token_args(sa, labels);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = self.cli(&args).await;
        assert!(ok, "weft token workload failed:\n{out}");
        crate::config::save_workload_token(&out, dir, sa)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A control-plane-mode proxy's files: its bootstrap and workload token.
pub struct Meshed {
    pub bootstrap: PathBuf,
    pub token: PathBuf,
}

impl Mesh {
    /// Starts a control plane on 127.0.0.1 with its store in `<dir>/cp`; the same
    /// ports for every control plane of this mesh, so a restart takes over.
    pub async fn control_plane(&self) -> ControlPlane {
        self.control_plane_with(|_| {}).await
    }

    /// As [`Mesh::control_plane`], with the options `configure` changes.
    pub async fn control_plane_with(
        &self,
        configure: impl FnOnce(&mut weft_control::server::Options),
    ) -> ControlPlane {
        let (api, xds) = self.control_plane_addrs();
        ControlPlane::start(&self.dir.path().join("cp"), api, xds, configure).await
    }

    fn control_plane_addrs(&self) -> (SocketAddr, SocketAddr) {
        let path = self.dir.path().join("cp-ports");
        let ports = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            let ports = format!("{} {}", self.port(), self.port());
            std::fs::write(&path, &ports).expect("write control-plane ports");
            ports
        });
        let mut it = ports.split(' ').map(|p| p.parse::<u16>().expect("a port"));
        let mut next = || SocketAddr::from(([127, 0, 0, 1], it.next().expect("two ports")));
        (next(), next())
    }

    /// A bootstrap (no certificate files: the control plane issues the certificate)
    /// for workload `name` (service account `name`) with `labels`, serving `ports`,
    /// with explicit outbound listeners `(listen port, service, service port)`, and its
    /// workload token from `cp`.
    pub async fn meshed(
        &self,
        cp: &ControlPlane,
        host: &Host,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[(u16, &str)],
        outbound: &[(u16, &str, u16)],
    ) -> Meshed {
        let mut yaml = self.workload_yaml(host, name, labels, ports);
        if !outbound.is_empty() {
            yaml.push_str("outbound:\n");
            for (listen, service, port) in outbound {
                yaml.push_str(&Mesh::outbound(host, *listen, service, *port));
            }
        }
        Meshed {
            bootstrap: self.write(&format!("bootstrap-{name}"), &yaml),
            token: cp.workload_token(self.dir.path(), name, labels).await,
        }
    }

    /// Starts a control-plane-mode proxy on `host` with `files`, persisting to a
    /// per-host state dir; waits for `/ready`.
    pub async fn meshed_proxy(&self, cp: &ControlPlane, host: &Host, files: &Meshed) -> Proxy {
        Proxy::start(
            host.name(),
            files.bootstrap.clone(),
            Some(self.proxy_control_plane(cp, host, files)),
            self.admin(host),
        )
        .await
    }

    /// What a control-plane-mode proxy on `host` is given.
    pub fn proxy_control_plane(
        &self,
        cp: &ControlPlane,
        host: &Host,
        files: &Meshed,
    ) -> weft_proxy::run::ControlPlane {
        weft_proxy::run::ControlPlane {
            endpoint: cp.xds_endpoint(),
            state_dir: self.dir.path().join(format!("state-{}", host.name())),
            token_file: Some(files.token.clone()),
            ca_file: Some(cp.ca_file()),
        }
    }

    /// An echo app on `host` answering as `version`, behind a control-plane-mode proxy
    /// registered as `echo-<version>` with labels `app: echo, version: <version>`.
    pub async fn meshed_echo(
        &self,
        cp: &ControlPlane,
        host: &Host,
        version: &str,
    ) -> (weft_testkit::echo::Server, Proxy) {
        let app = weft_testkit::echo::spawn_http(self.app(host), version)
            .await
            .expect("echo app starts");
        let files = self
            .meshed(
                cp,
                host,
                &format!("echo-{version}"),
                &[("app", "echo"), ("version", version)],
                &[(self.ports.app, "http")],
                &[],
            )
            .await;
        (app, self.meshed_proxy(cp, host, &files).await)
    }

    /// The echo service family: `echo` (port 80 → the app port) over every `app: echo`
    /// workload, and `echo-v1` / `echo-v2` over each version.
    pub fn echo_services(&self) -> String {
        let service = |name: &str, selector: &str| {
            format!(
                "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name} }}\nspec:\n  \
                 selector: {{ {selector} }}\n  ports: [{{ port: 80, targetPort: {}, protocol: http }}]\n",
                self.ports.app
            )
        };
        [
            service("echo", "app: echo"),
            service("echo-v1", "app: echo, version: v1"),
            service("echo-v2", "app: echo, version: v2"),
        ]
        .join("---\n")
    }
}

/// An HTTPRoute on `echo` splitting between v1 and v2 with the given weights.
pub fn echo_split(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: echo-split }}
spec:
  parentRefs: [{{ kind: Service, name: echo, port: 80 }}]
  rules:
    - backendRefs:
        - {{ name: echo-v1, port: 80, weight: {v1} }}
        - {{ name: echo-v2, port: 80, weight: {v2} }}
"
    )
}
