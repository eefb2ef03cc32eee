//! `weft quickstart`: a whole mesh on this machine's loopback, in one command, no root.
//!
//! It starts a control plane (embedded SQLite store in a fresh temporary directory,
//! builtin mesh CA), the demo apps and a sidecar proxy for each workload in
//! control-plane mode (a bootstrap file, a workload token from the API, a certificate
//! from the mesh CA, explicit outbound listeners on loopback), applies Services and a
//! 90/10 canary HTTPRoute through `POST /v1/apply` as `weft apply` does, sends requests
//! through the mesh, prints what they showed and what to try next, and runs until
//! SIGINT or SIGTERM. Then the sidecars drain, the apps and the control plane stop, and
//! the temporary directory is removed.
//!
//! ```text
//! quickstart / curl ─► client sidecar ══HBONE══► frontend sidecar ─► frontend app
//!   frontend app ─► its sidecar ══HBONE══► catalog-v1 | catalog-v2 sidecar ─► catalog app  (HTTP, 90/10)
//!                               ══HBONE══► inventory sidecar ─► inventory app              (TCP)
//! ```
//!
//! Everything runs in this one process, on one tokio runtime (ADR 15): the control
//! plane and the proxies are the library code `weft control-plane` and `weft proxy`
//! run, fed the same options and files, so nothing can outlive quickstart, however it
//! ends. Where everything listens is in [`mesh`]; the apps are in [`apps`].

mod apps;
mod mesh;
mod traffic;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::Method;
use serde_json::json;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_control::store::StoreSpec;

use self::mesh::{App, Layout, Workload, WORKLOADS};
use super::client::{Client, ConnectArgs};
use crate::logging;

/// How long the control plane may take to answer `/readyz`.
const CONTROL_PLANE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the sidecars may take to get a certificate, register and get their config.
const SIDECAR_TIMEOUT: Duration = Duration::from_secs(30);

/// How long stopping waits for the sidecars to drain (their drainTimeout is 2 s) and
/// for the control plane.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);

/// Arguments of `weft quickstart`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many requests to send through the mesh once it is up (0: none).
    #[arg(long, default_value_t = 40, value_name = "N")]
    requests: u32,
    /// First port quickstart uses: it listens on ports PORT to PORT+681 (control plane
    /// API on PORT+681, xDS on PORT+678, each sidecar's admin on PORT, HBONE on PORT+8,
    /// metrics on PORT+20, apps on PORT+80 and PORT+90), on loopback addresses only.
    #[arg(long, default_value_t = mesh::DEFAULT_PORT_BASE, value_name = "PORT")]
    port_base: u16,
    /// Keep the temporary directory (control-plane store, bootstraps, tokens, proxy
    /// state) when quickstart exits, instead of removing it.
    #[arg(long)]
    keep_data: bool,
    /// Log filter of the control plane and the sidecars (`info`, `debug`); `RUST_LOG`
    /// overrides it. The default leaves the terminal to quickstart's own lines.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

/// Runs the quickstart until SIGINT or SIGTERM; everything it started is stopped and
/// its temporary directory removed (unless `--keep-data`) before it returns.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let _log = logging::init(&args.log_level, logging::Format::Text)?;
    // Listener connection caps are sized below the open-file limit (ADR 0023).
    weft_tls::listener::raise_fd_limit();
    let layout = Layout::new(args.port_base)?;
    mesh::check_ports(layout)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut workspace = None;
    let result = runtime.block_on(async {
        // Signals first: from here on, a Ctrl-C reaches the cleanup below.
        let mut signals = Signals::install()?;
        let dir = workspace.insert(Workspace::create()?);
        session(args, layout, dir.path(), &mut signals).await
    });
    // What the drained proxies leave (their admin listeners, idle pooled connections)
    // ends with the runtime, before the directory goes.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(workspace) = workspace {
        workspace.finish(args.keep_data);
    }
    result
}

/// Starts the mesh, runs it until a signal (or a component fails), and stops it.
async fn session(
    args: &Args,
    layout: Layout,
    dir: &Path,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    println!(
        "weft quickstart: a demo mesh on this machine's loopback (files in {})",
        dir.display()
    );
    let mut mesh = Mesh::new(layout, dir);
    let started = tokio::select! {
        started = mesh.start(args.requests) => started.map(Some),
        signal = signals.recv() => {
            println!("\n{signal}: stopping before the mesh was up");
            Ok(None)
        }
    };
    let outcome = match started {
        Ok(Some(guide)) => {
            println!("{guide}");
            tokio::select! {
                signal = signals.recv() => {
                    println!("\n{signal}: stopping the mesh (once more to stop without waiting)");
                    Ok(())
                }
                failure = mesh.failures.wait() => Err(failure),
            }
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    mesh.stop(signals).await;
    outcome
}

/// SIGTERM and SIGINT, handled (not fatal) from [`Signals::install`] on.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("handling SIGINT")?,
        })
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The temporary directory quickstart owns (mode 0700).
struct Workspace {
    path: PathBuf,
}

/// The file in a workspace naming the quickstart that owns it; a workspace whose owner
/// is gone (killed with SIGKILL) is removed by the next quickstart.
const OWNER_FILE: &str = "quickstart.pid";

/// Names of workspaces in the temporary directory start with this.
const WORKSPACE_PREFIX: &str = "weft-quickstart-";

impl Workspace {
    fn create() -> anyhow::Result<Workspace> {
        sweep_abandoned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{WORKSPACE_PREFIX}{}-{nanos:08x}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| {
                format!(
                    "creating the temporary directory {} (set TMPDIR to a writable directory)",
                    path.display()
                )
            })?;
        write_private(&path.join(OWNER_FILE), &format!("{}\n", std::process::id()))?;
        Ok(Workspace { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory, or says where it stays.
    fn finish(self, keep: bool) {
        if keep {
            // No owner file: a kept directory is never swept.
            let _ = std::fs::remove_file(self.path.join(OWNER_FILE));
            println!(
                "  ✓ kept {} (--keep-data); remove it when done",
                self.path.display()
            );
            return;
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => println!("  ✓ removed {}", self.path.display()),
            Err(e) => eprintln!(
                "warning: could not remove {}: {e}; remove it by hand",
                self.path.display()
            ),
        }
    }
}

/// Removes workspaces of this user whose quickstart no longer runs: it was killed
/// before it could clean up. Best effort; anything unclear is left alone.
fn sweep_abandoned() {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(WORKSPACE_PREFIX))
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !ours {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            println!(
                "  ✓ removed {}, left by a quickstart that was killed",
                path.display()
            );
        }
    }
}

/// A task quickstart started, and how to stop it.
struct Component {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Records the first component that stops on its own (before [`Failures::stopping`]),
/// so the session can end with its error.
#[derive(Clone, Default)]
struct Failures {
    stopping: CancellationToken,
    failed: CancellationToken,
    first: Arc<Mutex<Option<String>>>,
}

impl Failures {
    /// Spawns `run` as `what`; if it ends (or panics) before stopping began, that is
    /// recorded as a failure.
    fn spawn<E>(
        &self,
        what: String,
        run: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    ) -> JoinHandle<()>
    where
        E: std::fmt::Display + Send + 'static,
    {
        let failures = self.clone();
        tokio::spawn(async move {
            let outcome = tokio::spawn(run).await;
            let message = match outcome {
                Ok(Ok(())) if failures.stopping.is_cancelled() => return,
                Ok(Err(e)) if failures.stopping.is_cancelled() => {
                    tracing::warn!(error = %e, "{what} failed while stopping");
                    return;
                }
                Ok(Ok(())) => format!("{what} stopped unexpectedly"),
                Ok(Err(e)) => format!("{what} failed: {e}"),
                Err(e) => format!("{what} crashed: {e}"),
            };
            let mut first = failures
                .first
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            first.get_or_insert(message);
            failures.failed.cancel();
        })
    }

    /// Waits for a failure and returns it.
    async fn wait(&self) -> anyhow::Error {
        self.failed.cancelled().await;
        let first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        anyhow::anyhow!(
            "{}\nhint: if another program took one of quickstart's ports, move them all with \
             --port-base; `weft quickstart --log-level info` shows the components' logs",
            first.as_deref().unwrap_or("a component failed")
        )
    }
}

/// The running demo mesh.
struct Mesh {
    layout: Layout,
    dir: PathBuf,
    http: traffic::Http,
    failures: Failures,
    control_plane: Option<Component>,
    apps: Option<apps::Apps>,
    sidecars: Vec<Component>,
}

/// What the next-steps text needs.
struct Started {
    api: Client,
    token: String,
    ca_file: PathBuf,
}

impl Mesh {
    fn new(layout: Layout, dir: &Path) -> Mesh {
        Mesh {
            layout,
            dir: dir.to_owned(),
            http: traffic::Http::new(),
            failures: Failures::default(),
            control_plane: None,
            apps: None,
            sidecars: Vec::new(),
        }
    }

    /// Brings the mesh up step by step, printing each; returns the what-to-try-next
    /// text. A component that fails meanwhile ends it with that component's error.
    async fn start(&mut self, requests: u32) -> anyhow::Result<String> {
        let failures = self.failures.clone();
        tokio::select! {
            guide = self.start_steps(requests) => guide,
            failure = failures.wait() => Err(failure),
        }
    }

    async fn start_steps(&mut self, requests: u32) -> anyhow::Result<String> {
        let started = self.start_control_plane().await?;
        self.start_apps().await?;
        self.start_sidecars(&started).await?;
        self.apply(&started.api).await?;
        self.wait_for_config().await?;
        if requests > 0 {
            self.drive(requests).await?;
        }
        Ok(self.guide(&started))
    }

    async fn start_control_plane(&mut self) -> anyhow::Result<Started> {
        let dir = self.dir.join("control-plane");
        create_private_dir(&dir)?;
        let ca_file = dir.join(weft_control::server::CA_FILE);
        let token_file = dir.join(weft_control::api::auth::ADMIN_TOKEN_FILE);
        let options = weft_control::server::Options {
            store: StoreSpec::data_dir(&dir),
            api_listen: self.layout.api(),
            xds_listen: self.layout.xds(),
            instance: "quickstart".into(),
            grace_period: Duration::from_secs(30),
            debounce: Duration::from_millis(50),
            admin_token_file: Some(token_file.clone()),
            ca_file: Some(ca_file.clone()),
            tls_hosts: vec!["localhost".into(), "127.0.0.1".into()],
            certificates: weft_control::identity::Options::default(),
            quotas: weft_control::controller::registry::Quotas::default(),
            xds_limits: weft_control::server::xds_limits(),
            secret_key_file: None,
        };
        let stop = CancellationToken::new();
        let task = self.failures.spawn(
            "the control plane".into(),
            weft_control::server::run(options, stop.clone()),
        );
        self.control_plane = Some(Component { stop, task });

        let url = format!("https://{}", self.layout.api());
        let deadline = Instant::now() + CONTROL_PLANE_TIMEOUT;
        let (api, token) = loop {
            if let Some(ready) = control_plane_ready(&url, &token_file, &ca_file).await {
                break ready;
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the control plane did not answer {url}/readyz within {}",
                    humantime::format_duration(CONTROL_PLANE_TIMEOUT)
                );
            }
            tokio::time::sleep(POLL).await;
        };
        println!(
            "  ✓ control plane  {url} (xDS on {}), embedded SQLite store, builtin mesh CA",
            self.layout.xds()
        );
        Ok(Started {
            api,
            token,
            ca_file,
        })
    }

    async fn start_apps(&mut self) -> anyhow::Result<()> {
        let apps = self.apps.insert(apps::Apps::new());
        for w in &WORKLOADS {
            let Some((addr, _)) = self.layout.app(w) else {
                continue;
            };
            match w.app {
                App::Catalog(version) => apps.spawn_catalog(addr, version).await?,
                App::Inventory => apps.spawn_inventory(addr).await?,
                App::Frontend => {
                    let to = |service| {
                        self.layout
                            .outbound_to(w, service)
                            .with_context(|| format!("the frontend has no listener for {service}"))
                    };
                    apps.spawn_frontend(addr, to("catalog")?, to("inventory")?)
                        .await?;
                }
                App::Client => {}
            }
        }
        println!(
            "  ✓ demo apps      frontend (HTTP) calling catalog v1 and v2 (HTTP) and inventory (TCP)"
        );
        Ok(())
    }

    /// A workload token, a bootstrap and a proxy per workload; waits until every proxy
    /// is ready (certificate and config) and its workload registered.
    async fn start_sidecars(&mut self, started: &Started) -> anyhow::Result<()> {
        let dir = self.dir.join("sidecars");
        create_private_dir(&dir)?;
        for w in &WORKLOADS {
            let token = workload_token(&started.api, w).await?;
            let token_file = dir.join(format!("{}.token", w.name));
            write_private(&token_file, &format!("{token}\n"))?;
            let config = dir.join(format!("{}.yaml", w.name));
            write_private(&config, &self.layout.bootstrap(w))?;
            let control_plane = weft_proxy::run::ControlPlane {
                endpoint: format!("https://{}", self.layout.xds()),
                state_dir: self.dir.join("state"),
                token_file: Some(token_file),
                ca_file: Some(started.ca_file.clone()),
            };
            let initial = weft_proxy::run::load(&config, Some(&control_plane))
                .with_context(|| format!("loading the {} sidecar's bootstrap", w.name))?;
            let stop = CancellationToken::new();
            let options = weft_proxy::run::Options {
                config,
                control_plane: Some(control_plane),
                watch_interval: Duration::from_secs(1),
                log: None,
                admin_shutdown: false,
                stop: Some(stop.clone()),
            };
            let task = self.failures.spawn(
                format!("the {} sidecar", w.name),
                weft_proxy::run::run(options, initial),
            );
            self.sidecars.push(Component { stop, task });
        }
        let deadline = Instant::now() + SIDECAR_TIMEOUT;
        for w in &WORKLOADS {
            let admin = self.layout.admin(w);
            while !self.http.ready(admin).await {
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "the {} sidecar was not ready within {} (no certificate or config from \
                         the control plane?); see http://{admin}/config_dump",
                        w.name,
                        humantime::format_duration(SIDECAR_TIMEOUT)
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        }
        wait_for_registration(&started.api, deadline).await?;
        println!(
            "  ✓ sidecars       {} proxies with certificates from the mesh CA; each registered its workload:",
            WORKLOADS.len()
        );
        for w in &WORKLOADS {
            // The identity the proxy's certificate carries, as the proxy reports it.
            let identity = match self.http.config_dump(self.layout.admin(w)).await {
                Ok(dump) => dump["identity"].as_str().unwrap_or("?").to_owned(),
                Err(_) => w.identity(),
            };
            let app = match self.layout.app(w) {
                Some((addr, protocol)) => format!("{protocol} app on :{}", addr.port()),
                None => "no app".to_owned(),
            };
            println!("      {:<11} {:<10} {identity}  ({app})", w.name, w.ip());
        }
        Ok(())
    }

    /// Applies the Services and the canary route as `weft apply -f` does: every object
    /// in one `POST /v1/apply`.
    async fn apply(&self, api: &Client) -> anyhow::Result<()> {
        let text = self.layout.resources();
        let file = self.dir.join("mesh.yaml");
        write_private(&file, &text)?;
        let objects = weft_policy::parse_documents(&text)
            .map_err(|e| anyhow::anyhow!("quickstart's own resources do not parse: {e:?}"))?;
        let body = Bytes::from(serde_json::to_vec(&objects)?);
        let answer = api
            .send(Method::POST, "/v1/apply", Some(("application/json", body)))
            .await?
            .json()
            .context("applying the Services and the canary route")?;
        let mut results: BTreeMap<String, u32> = BTreeMap::new();
        for result in answer["results"].as_array().into_iter().flatten() {
            *results
                .entry(result["result"].as_str().unwrap_or("applied").to_owned())
                .or_default() += 1;
        }
        let results: Vec<String> = results.iter().map(|(r, n)| format!("{n} {r}")).collect();
        println!(
            "  ✓ applied        5 Services and HTTPRoute {} (catalog-v1 90%, catalog-v2 10%): {}",
            mesh::CANARY_ROUTE,
            results.join(", ")
        );
        println!("                   the file: {}", file.display());
        Ok(())
    }

    /// Waits until the config reached the sidecars that route: the client's has the
    /// frontend's endpoints, the frontend's has the canary and both versions.
    async fn wait_for_config(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SIDECAR_TIMEOUT;
        for (name, services, routed) in [
            ("client", &["frontend"][..], &[][..]),
            (
                "frontend",
                &["catalog-v1", "catalog-v2", "inventory"][..],
                &["catalog"][..],
            ),
        ] {
            let w = mesh::workload(name).context("unknown workload")?;
            self.http
                .wait_for_config(self.layout.admin(w), services, routed, deadline)
                .await
                .with_context(|| format!("the {name} sidecar did not get its config"))?;
        }
        Ok(())
    }

    /// Sends `requests` requests to the frontend through the client sidecar and prints
    /// what the answers show.
    async fn drive(&self, requests: u32) -> anyhow::Result<()> {
        let url = self.layout.frontend_url();
        let tally = self.http.drive(&url, requests).await;
        if tally.ok == 0 {
            anyhow::bail!(
                "none of {requests} requests to the frontend ({url}) succeeded; the last: {}\n\
                 hint: run `weft quickstart --log-level info` to see the sidecars' logs",
                tally.last_error.as_deref().unwrap_or("no answer")
            );
        }
        println!(
            "  ✓ traffic        {} of {requests} requests answered, client → frontend → catalog + inventory",
            tally.ok
        );
        println!(
            "                   catalog-v1 answered {}, catalog-v2 {} (the route asks for 90/10)",
            tally.version("v1"),
            tally.version("v2")
        );
        let seen = |callers: &BTreeMap<String, u32>| {
            callers.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        println!(
            "                   mTLS on every hop: the frontend's caller was {}, the catalog's {}",
            seen(&tally.frontend_callers),
            seen(&tally.catalog_callers),
        );
        if let Some(xfcc) = &tally.catalog_xfcc {
            println!("                   (the catalog got x-forwarded-client-cert: {xfcc})");
        }
        if tally.failed > 0 {
            println!(
                "  ! {} requests failed; the last: {}",
                tally.failed,
                tally.last_error.as_deref().unwrap_or("?")
            );
        }
        Ok(())
    }

    /// What to try next, ending with the readiness line.
    fn guide(&self, started: &Started) -> String {
        let weft = weft_command();
        let frontend = mesh::workload("frontend").map(|w| self.layout.metrics(w));
        let mut text = String::new();
        let _ = writeln!(text, "\nTry it, in another terminal:");
        let _ = writeln!(
            text,
            "  export WEFT_CONTROL_PLANE=https://{}",
            self.layout.api()
        );
        let _ = writeln!(text, "  export WEFT_TOKEN={}", started.token);
        let _ = writeln!(text, "  export WEFT_CA_FILE={}", started.ca_file.display());
        for command in ["get workloads", "get services", "describe service catalog"] {
            let _ = writeln!(text, "  {weft} {command}");
        }
        let _ = writeln!(
            text,
            "  curl {}              # the frontend, through the client's sidecar",
            self.layout.frontend_url()
        );
        if let Some(metrics) = frontend {
            let _ = writeln!(
                text,
                "  curl -s http://{metrics}/metrics | grep ^weft_proxy_requests_total   # the frontend sidecar's metrics"
            );
        }
        let _ = writeln!(
            text,
            "\nWatch the traffic live (the sidecars report every 5s; curl the frontend for more):"
        );
        for (command, what) in [
            (
                "stat services",
                "success rate, requests/s and latency of each service, over the last minute",
            ),
            (
                "edges",
                "who called whom, over mTLS, with the identities each side proved",
            ),
            (
                "tap service catalog.default",
                "each request to the catalog as it happens (Ctrl-C to stop)",
            ),
            (
                "top catalog.default",
                "the catalog's busiest paths, redrawn every second",
            ),
        ] {
            let _ = writeln!(text, "  {weft} {command:<28} # {what}");
        }
        let _ = writeln!(
            text,
            "\nOpen the GUI at https://{}/gui and sign in with the WEFT_TOKEN above (the browser \
             does not know the mesh CA in WEFT_CA_FILE: accept its warning, or trust that file)",
            self.layout.api()
        );
        let _ = writeln!(
            text,
            "\nShift the canary: send every catalog request to v2 (weights 0/100), then curl the frontend again:"
        );
        let _ = write!(
            text,
            "{weft} apply -f - <<'EOF'\n{}EOF\n",
            mesh::canary(0, 100)
        );
        let _ = write!(
            text,
            "\nweft quickstart is ready. Press Ctrl-C to stop it; it stops everything it started."
        );
        text
    }

    /// Stops what was started, in the order that loses no request: the sidecars drain
    /// while the apps still answer, then the apps stop, then the control plane. A
    /// second signal stops waiting.
    async fn stop(&mut self, signals: &mut Signals) {
        self.failures.stopping.cancel();
        let graceful = async {
            if !self.sidecars.is_empty() {
                let count = self.sidecars.len();
                for sidecar in &self.sidecars {
                    sidecar.stop.cancel();
                }
                let drained = tokio::time::timeout(STOP_TIMEOUT, async {
                    for sidecar in &mut self.sidecars {
                        let _ = (&mut sidecar.task).await;
                    }
                })
                .await;
                match drained {
                    Ok(()) => println!("  ✓ {count} sidecars drained"),
                    Err(_) => println!("  ! the sidecars did not drain in time; closing them"),
                }
            }
            if let Some(apps) = self.apps.take() {
                apps.stop().await;
                println!("  ✓ demo apps stopped");
            }
            if let Some(control_plane) = &mut self.control_plane {
                control_plane.stop.cancel();
                match tokio::time::timeout(STOP_TIMEOUT, &mut control_plane.task).await {
                    Ok(_) => println!("  ✓ control plane stopped"),
                    Err(_) => println!("  ! the control plane did not stop in time; closing it"),
                }
            }
        };
        // A supervisor may deliver one stop request twice at once (`timeout` signals the
        // process and its group): only a signal that comes later means "hurry".
        let first = Instant::now();
        let hurry = async {
            loop {
                let signal = signals.recv().await;
                if first.elapsed() > Duration::from_millis(500) {
                    return signal;
                }
            }
        };
        tokio::select! {
            () = graceful => {}
            signal = hurry => println!("  {signal}: not waiting any longer"),
        }
    }
}

/// The API client and admin token once the control plane answers `/readyz`; `None`
/// while it does not yet.
async fn control_plane_ready(
    url: &str,
    token_file: &Path,
    ca_file: &Path,
) -> Option<(Client, String)> {
    let token = std::fs::read_to_string(token_file).ok()?.trim().to_owned();
    if token.is_empty() || !ca_file.exists() {
        return None;
    }
    let api = Client::new(&ConnectArgs::explicit(
        url.to_owned(),
        token.clone(),
        ca_file.to_owned(),
    ))
    .ok()?;
    let answer = api.send(Method::GET, "/readyz", None).await.ok()?;
    answer.is_success().then_some((api, token))
}

/// A workload token for `w`'s identity, from the API (as `weft token workload`).
async fn workload_token(api: &Client, w: &Workload) -> anyhow::Result<String> {
    let labels: serde_json::Map<String, serde_json::Value> = w
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let body = json!({
        "namespace": mesh::NAMESPACE,
        "serviceAccount": w.service_account,
        "labels": labels,
    });
    let issued = api
        .send(
            Method::POST,
            "/v1/tokens/workload",
            Some(("application/json", Bytes::from(serde_json::to_vec(&body)?))),
        )
        .await?
        .json()
        .with_context(|| format!("issuing the {} sidecar's workload token", w.name))?;
    issued["token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .context("the control plane answered without a token")
}

/// Waits until the control plane lists every workload as `Healthy`.
async fn wait_for_registration(api: &Client, deadline: Instant) -> anyhow::Result<()> {
    let path = format!("/v1/namespaces/{}/workloads", mesh::NAMESPACE);
    loop {
        let healthy: Vec<String> = match api.get_json(&path).await {
            Ok(list) => list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|w| w["status"]["phase"] == "Healthy")
                .filter_map(|w| w["metadata"]["name"].as_str().map(str::to_owned))
                .collect(),
            Err(_) => Vec::new(),
        };
        let missing: Vec<&str> = WORKLOADS
            .iter()
            .map(|w| w.name)
            .filter(|name| !healthy.iter().any(|h| h == name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the control plane does not list {} as Healthy workloads",
                missing.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes `text` to a new file only its owner can read (tokens, and files beside them).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// How to invoke this binary in the printed commands: `weft` when that is what `weft`
/// on `$PATH` runs, else this executable's path (relative when under the working
/// directory, e.g. `./target/release/weft`).
fn weft_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "weft".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("weft")).is_ok_and(|p| p == me))
    });
    if on_path {
        return "weft".to_owned();
    }
    if let Some(relative) = std::env::current_dir()
        .ok()
        .and_then(|cwd| me.strip_prefix(cwd).ok().map(Path::to_owned))
    {
        return format!("./{}", relative.display());
    }
    me.display().to_string()
}
