//! Real processes under test: a [`Child`] runs any program inside a host (or on this
//! machine's own network), with stdout and stderr in a log file; a [`WeftProcess`] is a
//! `weft` child that has answered `200` on its admin `/ready`.
//!
//! Children are killed when dropped, and a test that panics gets the tail of each log on
//! stderr, which is usually the first thing one needs when an end-to-end test fails in CI.
//! The `weft` binary is passed in by the test (`env!("CARGO_BIN_EXE_weft")`), so this
//! crate never builds it.

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::client;
use crate::netns::Host;

/// How long [`WeftProcess::spawn`] waits for `/ready`: 15 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How many log lines errors and panic reports show.
const TAIL_LINES: usize = 40;

/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Errors from starting, probing or stopping a process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The temporary directory or log file could not be created.
    #[error("creating the log file for {label}: {source}")]
    Log {
        /// Which process.
        label: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("starting {label} (`{command}`): {source}")]
    Spawn {
        /// Which process.
        label: String,
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process exited while it was expected to run (e.g. before it became ready).
    #[error("{label} exited with {status} before it was ready; log tail:\n{tail}")]
    Exited {
        /// Which process.
        label: String,
        /// How it ended.
        status: ExitStatus,
        /// The last lines of its log.
        tail: String,
    },
    /// The process did not become ready in time.
    #[error("{label} not ready after {after:?} ({last}); log tail:\n{tail}")]
    NotReady {
        /// Which process.
        label: String,
        /// How long we waited.
        after: Duration,
        /// The last probe's outcome.
        last: String,
        /// The last lines of its log.
        tail: String,
    },
    /// The process did not exit in time.
    #[error("{label} still running after {after:?}; log tail:\n{tail}")]
    StillRunning {
        /// Which process.
        label: String,
        /// How long we waited.
        after: Duration,
        /// The last lines of its log.
        tail: String,
    },
    /// A log line did not appear in time.
    #[error("{label}: {needle:?} not logged within {after:?}; log tail:\n{tail}")]
    NotLogged {
        /// Which process.
        label: String,
        /// What was awaited.
        needle: String,
        /// How long we waited.
        after: Duration,
        /// The last lines of its log.
        tail: String,
    },
    /// Sending a signal failed.
    #[error("signalling {label} (pid {pid}): {source}")]
    Signal {
        /// Which process.
        label: String,
        /// Its pid.
        pid: u32,
        /// The OS error.
        source: nix::Error,
    },
    /// Waiting for the process failed.
    #[error("waiting for {label}: {source}")]
    Wait {
        /// Which process.
        label: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A program running as a child of the test, stdout and stderr in a log file. Killed on
/// drop; prints its log tail to stderr if dropped during a panic.
pub struct Child {
    label: String,
    process: std::process::Child,
    log_path: PathBuf,
    // Kept for the log file's lifetime; removed with the Child.
    _dir: tempfile::TempDir,
}

/// A `weft` process that has answered `200` on `GET /ready` of its admin address.
/// Derefs to [`Child`] for `pid`, `logs`, `sigterm`, `wait_exit`, `kill`, ....
pub struct WeftProcess {
    child: Child,
    admin: SocketAddr,
    host: Option<Host>,
}

// === impl Child ===

impl Child {
    /// Starts `command` with stdin closed and stdout/stderr going to
    /// `<tempdir>/<label>.log`. Build the command with [`Host::command`] to run it inside
    /// a host. `label` names the process in errors and reports.
    pub fn spawn(mut command: Command, label: &str) -> Result<Self> {
        let log_error = |source| Error::Log {
            label: label.to_owned(),
            source,
        };
        let dir = crate::tempdir().map_err(log_error)?;
        let file_name: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let log_path = dir.path().join(format!("{file_name}.log"));
        let stdout = File::create(&log_path).map_err(log_error)?;
        let stderr = stdout.try_clone().map_err(log_error)?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = command.spawn().map_err(|source| Error::Spawn {
            label: label.to_owned(),
            command: format!("{command:?}"),
            source,
        })?;
        Ok(Self {
            label: label.to_owned(),
            process: child,
            log_path,
            _dir: dir,
        })
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The process id (the program itself: `ip netns exec` execs it in place).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of [`Child::logs`].
    pub fn log_tail(&self, lines: usize) -> String {
        let logs = self.logs();
        let all: Vec<&str> = logs.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Where the log file is (deleted with the `Child`).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.logs().contains(needle) {
            if Instant::now() >= deadline {
                return Err(Error::NotLogged {
                    label: self.label.clone(),
                    needle: needle.to_owned(),
                    after: timeout,
                    tail: self.log_tail(TAIL_LINES),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self.pid();
        let raw = i32::try_from(pid).unwrap_or(i32::MAX);
        nix::sys::signal::kill(Pid::from_raw(raw), signal).map_err(|source| Error::Signal {
            label: self.label.clone(),
            pid,
            source,
        })
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.process.try_wait().map_err(|source| Error::Wait {
            label: self.label.clone(),
            source,
        })
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::StillRunning {
                    label: self.label.clone(),
                    after: timeout,
                    tail: self.log_tail(TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let wait_error = |source| Error::Wait {
            label: self.label.clone(),
            source,
        };
        self.process.kill().map_err(wait_error)?;
        self.process.wait().map_err(wait_error)
    }

    fn exited(&self, status: ExitStatus) -> Error {
        Error::Exited {
            label: self.label.clone(),
            status,
            tail: self.log_tail(TAIL_LINES),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} (pid {}) log tail -----\n{}\n----- end of {} log -----",
                self.label,
                self.pid(),
                self.log_tail(TAIL_LINES),
                self.label
            );
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("label", &self.label)
            .field("pid", &self.pid())
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

// === impl WeftProcess ===

impl WeftProcess {
    /// Starts `bin args...` inside `host` with the extra environment `env`, and waits
    /// (up to [`READY_TIMEOUT`]) until `GET http://{admin}/ready`, made from inside the
    /// host, answers `200`. Errors carry the log tail.
    pub fn spawn(
        host: &Host,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        admin: SocketAddr,
    ) -> Result<Self> {
        let mut command = host.command(bin);
        command.args(args).envs(env.iter().copied());
        let label = format!("weft@{}", host.name());
        Self::start(command, &label, admin, "/ready", Some(host.clone()))
    }

    /// Like [`WeftProcess::spawn`], probing `GET http://{addr}{path}` instead of the
    /// proxy admin's `/ready` (e.g. a control plane's `/readyz`).
    pub fn spawn_probing(
        host: &Host,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        addr: SocketAddr,
        path: &'static str,
    ) -> Result<Self> {
        let mut command = host.command(bin);
        command.args(args).envs(env.iter().copied());
        let label = format!("weft@{}", host.name());
        Self::start(command, &label, addr, path, Some(host.clone()))
    }

    /// Like [`WeftProcess::spawn_probing`] over TLS, for the control plane's API: the
    /// probe waits for `ca_file` (written by the control plane at start) and verifies
    /// the server with it and the control plane's SPIFFE identity, as Weft's clients do.
    pub fn spawn_probing_tls(
        host: &Host,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        addr: SocketAddr,
        path: &'static str,
        ca_file: &Path,
    ) -> Result<Self> {
        let mut command = host.command(bin);
        command.args(args).envs(env.iter().copied());
        let label = format!("weft@{}", host.name());
        Self::start_with(
            command,
            &label,
            addr,
            &Probe::Tls {
                path,
                ca_file: ca_file.to_owned(),
            },
            Some(host.clone()),
        )
    }

    /// Like [`WeftProcess::spawn`], on this machine's own network (no namespace, no
    /// root needed): for loopback tests.
    pub fn spawn_local(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        admin: SocketAddr,
    ) -> Result<Self> {
        let mut command = Command::new(bin);
        command.args(args).envs(env.iter().copied());
        Self::start(command, "weft", admin, "/ready", None)
    }

    /// The admin address it was probed on.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The host it runs in (`None` for [`WeftProcess::spawn_local`]).
    pub fn host(&self) -> Option<&Host> {
        self.host.as_ref()
    }

    fn start(
        command: Command,
        label: &str,
        admin: SocketAddr,
        path: &'static str,
        host: Option<Host>,
    ) -> Result<Self> {
        Self::start_with(command, label, admin, &Probe::Plain(path), host)
    }

    fn start_with(
        command: Command,
        label: &str,
        admin: SocketAddr,
        probe_kind: &Probe,
        host: Option<Host>,
    ) -> Result<Self> {
        let mut child = Child::spawn(command, label)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let probing = &mut child;
        let probe = move || async move {
            let child = probing;
            loop {
                if let Some(status) = child.try_wait()? {
                    return Err(child.exited(status));
                }
                let outcome = match probe_kind {
                    Probe::Plain(path) => probe_ready(admin, path).await,
                    Probe::Tls { path, ca_file } => probe_ready_tls(admin, path, ca_file).await,
                };
                let last = match outcome {
                    Ok(()) => return Ok(()),
                    Err(outcome) => outcome,
                };
                if Instant::now() >= deadline {
                    return Err(Error::NotReady {
                        label: child.label.clone(),
                        after: READY_TIMEOUT,
                        last,
                        tail: child.log_tail(TAIL_LINES),
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        };
        match &host {
            Some(host) => host.run(probe)?,
            None => run_local(probe)?,
        }
        Ok(Self { child, admin, host })
    }
}

impl Deref for WeftProcess {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for WeftProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl fmt::Debug for WeftProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeftProcess")
            .field("child", &self.child)
            .field("admin", &self.admin)
            .field("host", &self.host.as_ref().map(Host::name))
            .finish()
    }
}

/// One `GET /ready`; `Err` describes what happened instead of a 200.
/// How readiness is probed.
enum Probe {
    /// `GET path` over plain HTTP/1.1.
    Plain(&'static str),
    /// `GET path` over TLS, verifying the control plane with `ca_file`.
    Tls {
        path: &'static str,
        ca_file: std::path::PathBuf,
    },
}

/// `GET https://{addr}{path}` answers 200, verified with `ca_file` and the control
/// plane's SPIFFE identity; the error says what happened instead. Blocking.
pub fn https_ready(
    addr: SocketAddr,
    path: &str,
    ca_file: &Path,
) -> std::result::Result<(), String> {
    run_local(|| probe_ready_tls(addr, path, ca_file))
}

async fn probe_ready_tls(
    addr: SocketAddr,
    path: &str,
    ca_file: &Path,
) -> std::result::Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pem = std::fs::read_to_string(ca_file)
        .map_err(|e| format!("{} not written yet: {e}", ca_file.display()))?;
    let roots = weft_tls::TrustBundle::from_pem(&pem)
        .map_err(|e| e.to_string())?
        .root_store();
    let config =
        weft_tls::control::client_config(roots, &[b"http/1.1"]).map_err(|e| e.to_string())?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::from(addr.ip());
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        tls.read_to_end(&mut head)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&head);
        if text.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!(
                "{path} answered {:?}",
                text.lines().next().unwrap_or_default()
            ))
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("{path} timed out")),
    }
}

async fn probe_ready(admin: SocketAddr, path: &str) -> std::result::Result<(), String> {
    let attempt = async {
        let client = client::Http1Client::connect(admin).await?;
        let mut client = client.with_timeout(Duration::from_secs(1));
        client
            .send(
                http::Request::get(path)
                    .header(http::header::HOST, "localhost")
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .map_err(|e| client::Error::Protocol {
                        addr: admin,
                        message: e.to_string(),
                    })?,
            )
            .await
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(response)) if response.status() == StatusCode::OK => Ok(()),
        Ok(Ok(response)) => Err(format!("{path} answered {}", response.status())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("{path} timed out")),
    }
}

/// Runs a future on a throw-away current-thread runtime on a scoped thread (so it works
/// whether or not the caller is inside a runtime).
pub(crate) fn run_local<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = T>,
    T: Send,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a tokio runtime for a local probe")
                .block_on(f())
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Waits until a TCP connection to `addr` succeeds, from inside `host` if given.
pub(crate) fn wait_for_listener(
    child: &mut Child,
    host: Option<&Host>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let probe = move || async move {
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(child.exited(status));
            }
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::NotReady {
                        label: child.label.clone(),
                        after: timeout,
                        last: format!("connect {addr}: {e}"),
                        tail: child.log_tail(TAIL_LINES),
                    })
                }
                Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    };
    match host {
        Some(host) => host.run(probe),
        None => run_local(probe),
    }
}
