//! One `weft proxy` run as a library future on its own thread and tokio runtime, with
//! its logs captured. Dropping the runtime ends every task the proxy spawned (admin
//! listener, health checks, pooled connections), as a process exit would, so the same
//! addresses can be bound again at once by a restarted proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a proxy may take to answer `/ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The log filter of every proxy the harness runs.
const LOG_FILTER: &str = "info,weft_proxy=debug";

/// How often the config file is checked for changes (as `--watch-interval 200ms`).
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// A running proxy. [`Proxy::shutdown`] drains it as SIGTERM would; dropping it stops
/// it at once, as SIGKILL would.
pub struct Proxy {
    name: String,
    admin: SocketAddr,
    stop: CancellationToken,
    kill: CancellationToken,
    thread: Option<JoinHandle<Result<(), String>>>,
    logs: Logs,
}

/// Everything a proxy logged, shared with its log writer.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

// === impl Proxy ===

impl Proxy {
    /// Starts the proxy named `name` on `config` (in control-plane mode with
    /// `control_plane`) and waits until its admin API on `admin` reports ready.
    ///
    /// # Panics
    /// When the proxy fails to start or is not ready in time (with its logs).
    pub async fn start(
        name: &str,
        config: PathBuf,
        control_plane: Option<weft_proxy::run::ControlPlane>,
        admin: SocketAddr,
    ) -> Proxy {
        let proxy = Proxy::spawn(name, config, control_plane, admin);
        proxy.wait_ready().await;
        proxy
    }

    /// Starts the proxy without waiting for it to be ready.
    pub fn spawn(
        name: &str,
        config: PathBuf,
        control_plane: Option<weft_proxy::run::ControlPlane>,
        admin: SocketAddr,
    ) -> Proxy {
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        let logs = Logs::default();
        let thread = {
            let (stop, kill, logs) = (stop.clone(), kill.clone(), logs.clone());
            std::thread::Builder::new()
                .name(format!("proxy-{name}"))
                .spawn(move || run(config, control_plane, stop, &kill, logs))
                .expect("spawn the proxy thread")
        };
        Proxy {
            name: name.to_owned(),
            admin,
            stop,
            kill,
            thread: Some(thread),
            logs,
        }
    }

    /// Waits for `/ready` to answer 200.
    ///
    /// # Panics
    /// When the proxy stopped, or did not become ready within 20 s.
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if self.is_ready().await {
                return;
            }
            assert!(
                !self.thread.as_ref().is_some_and(JoinHandle::is_finished),
                "proxy {} stopped before it was ready:\n{}",
                self.name,
                self.logs()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "proxy {} not ready within {READY_TIMEOUT:?}:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether `/ready` answers 200 now.
    pub async fn is_ready(&self) -> bool {
        self.ready_status().await == 200
    }

    /// The status `/ready` answers (0 when nothing answers).
    pub async fn ready_status(&self) -> u16 {
        weft_testkit::client::http1_get(self.admin, "localhost", "/ready")
            .await
            .map_or(0, |r| r.status().as_u16())
    }

    /// What it has logged so far (text, without colours).
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// Waits until its logs contain `needle`; whether they did within `timeout`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.logs().contains(needle) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Drains it as SIGTERM does and waits for it to finish: `Err` with the reason
    /// when `weft proxy` would have exited non-zero.
    pub async fn shutdown(mut self) -> Result<(), String> {
        self.stop.cancel();
        let thread = self.thread.take().expect("the proxy thread");
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join the waiting task")
            .unwrap_or_else(|_| Err("the proxy thread panicked".to_owned()))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill.cancel();
        if let Some(thread) = self.thread.take() {
            // Ends within milliseconds: the runtime is dropped without waiting.
            let _ = thread.join();
        }
    }
}

/// The proxy thread: a runtime of its own, with the proxy's logs captured on it.
fn run(
    config: PathBuf,
    control_plane: Option<weft_proxy::run::ControlPlane>,
    stop: CancellationToken,
    kill: &CancellationToken,
    logs: Logs,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the proxy's runtime: {e}"))?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(LOG_FILTER))
        .with_ansi(false)
        .with_writer(move || logs.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let initial = weft_proxy::run::load(&config, control_plane.as_ref())
                .map_err(|e| e.to_string())?;
            let options = weft_proxy::run::Options {
                config,
                control_plane,
                watch_interval: WATCH_INTERVAL,
                log: None,
                admin_shutdown: false,
                stop: Some(stop),
            };
            tokio::select! {
                result = weft_proxy::run::run(options, initial) => result.map_err(|e| e.to_string()),
                () = kill.cancelled() => Ok(()),
            }
        })
    });
    // Every task the proxy spawned goes with the runtime: its sockets close now.
    runtime.shutdown_background();
    result
}

// === impl Logs ===

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
