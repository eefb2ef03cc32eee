//! Real gRPC through the mesh: the Python `grpcio` echo server and client in
//! `python/grpc_echo.py` (generic handlers on raw bytes, no generated code), and helpers
//! to run them inside a host.
//!
//! The service is `weft.test.Echo` with one method per RPC kind (unary, server
//! streaming, client streaming, bidi); every call ends with the trailing metadata
//! `x-echo-trailer`, which the client checks, so a proxy that loses HTTP/2 trailers fails.
//!
//! Needs a Python with `grpcio`: `$WEFT_PYTHON`, or `<workspace>/.venv/bin/python`
//! (`python3 -m venv .venv && .venv/bin/pip install grpcio`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::netns::Host;
use crate::process::{self, Child};

/// How long [`GrpcServer::spawn`] waits for the server to listen: 15 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The trailing-metadata key the server sets on every call.
pub const TRAILER_KEY: &str = "x-echo-trailer";

/// Environment variable naming the Python interpreter to use.
const PYTHON_ENV: &str = "WEFT_PYTHON";

/// Errors from the gRPC helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable Python interpreter.
    #[error(
        "no Python for the gRPC tests at {path}: set {PYTHON_ENV}, or run \
         `python3 -m venv .venv && .venv/bin/pip install grpcio` in the workspace root"
    )]
    NoPython {
        /// Where we looked.
        path: PathBuf,
    },
    /// Starting or probing the server or client process failed.
    #[error(transparent)]
    Process(#[from] process::Error),
    /// The client could not be run at all.
    #[error("running the gRPC client: {0}")]
    Exec(#[from] crate::netns::Error),
    /// The client ran, but a call or a check failed.
    #[error("gRPC client against {target} failed ({status}): {report}\nstderr:\n{stderr}")]
    ClientFailed {
        /// The target dialled.
        target: SocketAddr,
        /// The client's exit status.
        status: std::process::ExitStatus,
        /// The client's stdout (its JSON report, if it got that far).
        report: String,
        /// The client's stderr.
        stderr: String,
    },
}

/// A result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `grpc_echo.py` server, killed on drop.
#[derive(Debug)]
pub struct GrpcServer {
    child: Child,
    addr: SocketAddr,
}

/// What a successful client run reports (its one-line JSON summary).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClientReport {
    /// The name of the server that answered.
    pub server: String,
    /// The unary reply, `NAME|hello`.
    pub unary: String,
    /// How many server-streaming replies arrived (3).
    pub server_streaming: usize,
    /// The client-streaming reply, `NAME|a,b,c`.
    pub client_streaming: String,
    /// How many bidi replies arrived (2).
    pub bidi: usize,
    /// How the server stream that fails after one message ended, as the client saw
    /// it (`UNAVAILABLE after 1`): the status came in trailers, after data.
    pub streamed_failure: String,
}

/// The Python interpreter: `$WEFT_PYTHON`, else `<workspace>/.venv/bin/python`; an error
/// with the setup hint if it does not exist.
pub fn python() -> Result<PathBuf> {
    let path = std::env::var_os(PYTHON_ENV)
        .map_or_else(|| workspace_root().join(".venv/bin/python"), PathBuf::from);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::NoPython { path })
    }
}

/// Decides whether a test that needs Python `grpcio` runs here: `true` if [`python()`]
/// finds an interpreter; otherwise prints `skipping <test>: <why>` and returns `false`,
/// or panics with that message if `WEFT_E2E=required` (as CI sets).
pub fn available(test: &str) -> bool {
    let Err(e) = python() else {
        return true;
    };
    crate::wait::skip(test, &e.to_string())
}

/// The path of `grpc_echo.py`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/grpc_echo.py")
}

/// The Cargo workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

// === impl GrpcServer ===

impl GrpcServer {
    /// Starts `grpc_echo.py server --listen LISTEN --name NAME` inside `host` (or on this
    /// machine's network if `None`) and waits until it accepts connections.
    pub fn spawn(host: Option<&Host>, listen: SocketAddr, name: &str) -> Result<Self> {
        let python = python()?;
        let mut command = match host {
            Some(host) => host.command(&python),
            None => Command::new(&python),
        };
        command
            .arg(script())
            .args(["server", "--listen", &listen.to_string(), "--name", name])
            .env("PYTHONUNBUFFERED", "1");
        let label = match host {
            Some(host) => format!("grpc-echo-{name}@{}", host.name()),
            None => format!("grpc-echo-{name}"),
        };
        let mut child = Child::spawn(command, &label)?;
        process::wait_for_listener(&mut child, host, listen, READY_TIMEOUT)?;
        Ok(Self {
            child,
            addr: listen,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server process (logs, pid, signals).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// Runs `grpc_echo.py client --target TARGET [--authority AUTHORITY]` inside `host` (or
/// locally if `None`): all four calls, with replies and trailers checked.
pub fn run_client(
    host: Option<&Host>,
    target: SocketAddr,
    authority: Option<&str>,
) -> Result<ClientReport> {
    let python = python()?;
    let mut args = vec![
        python.into_os_string(),
        script().into_os_string(),
        "client".into(),
        "--target".into(),
        target.to_string().into(),
    ];
    if let Some(authority) = authority {
        args.extend(["--authority".into(), authority.into()]);
    }
    let output = if let Some(host) = host {
        host.exec(&args)?
    } else {
        let mut command = Command::new(&args[0]);
        command.args(&args[1..]);
        command
            .output()
            .map_err(|source| crate::netns::Error::Spawn {
                command: format!("{command:?}"),
                source,
            })?
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = stdout.lines().last().unwrap_or_default();
    match serde_json::from_str::<ClientReport>(report) {
        Ok(parsed) if output.status.success() => Ok(parsed),
        _ => Err(Error::ClientFailed {
            target,
            status: output.status,
            report: stdout.trim().to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }),
    }
}
