//! A throw-away PostgreSQL server for tests: a fresh cluster (`initdb`) in a temporary
//! directory, trust authentication, listening on `127.0.0.1` and on a unix socket in
//! that directory; stopped and deleted when dropped.
//!
//! It runs on this machine's loopback (a free port, for store tests) or inside a
//! [`Host`] (port 5432 of the host's own network, for end-to-end tests). PostgreSQL
//! refuses to run as root, so as root the cluster belongs to the `postgres` OS user and
//! its programs are started through `setpriv`; as any other user they run as that user.
//!
//! It is not a fixture manager: one [`Postgres`] is one cluster, and tests that want
//! isolation start their own (`initdb` takes about a second).
//!
//! ```no_run
//! # fn demo() -> Result<(), weft_testkit::postgres::Error> {
//! use weft_testkit::postgres::{self, Postgres};
//! if !postgres::guard("stores_objects_in_postgres") {
//!     return Ok(());
//! }
//! let pg = Postgres::start()?;
//! let url = pg.url(); // postgres://postgres@127.0.0.1:<port>/postgres
//! # let _ = url; Ok(()) }
//! ```

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::netns::Host;
use crate::process::{self, Child};

/// How long [`Builder::start`] waits for the server to accept connections: 30 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long dropping a [`Postgres`] waits for a fast shutdown before killing it: 10 s.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Debian installs server binaries (`/usr/lib/postgresql/<major>/bin`).
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The OS user that owns the cluster when the tests run as root.
const OS_USER: &str = "postgres";

/// The database superuser `initdb` creates (and [`Postgres::url`] connects as).
pub const SUPERUSER: &str = "postgres";

/// The port used inside a [`Host`] when none is given.
pub const DEFAULT_HOST_PORT: u16 = 5432;

/// How many free loopback ports are tried before giving up (another process may take
/// the port between our probe and the server's bind).
const PORT_ATTEMPTS: usize = 3;

/// Errors from preparing, starting or probing the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No server binaries were found.
    #[error(
        "PostgreSQL server binaries not found under {DEBIAN_ROOT}/*/bin (apt-get install postgresql)"
    )]
    NotInstalled,
    /// Running as root, but there is no `postgres` OS user to run the server as.
    #[error("running as root and the `{OS_USER}` OS user does not exist (PostgreSQL refuses to run as root)")]
    NoOsUser,
    /// The data directory could not be prepared.
    #[error("preparing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Looking up the `postgres` OS user or changing ownership failed.
    #[error("{action}: {source}")]
    Os {
        /// What was being done.
        action: String,
        /// The OS error.
        source: nix::Error,
    },
    /// `initdb` failed.
    #[error("`{command}` failed with {status}:\n{output}")]
    Initdb {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard output and error.
        output: String,
    },
    /// Starting the server failed, it exited, or it did not become ready.
    #[error(transparent)]
    Process(#[from] process::Error),
}

/// A result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to start a server; see [`Postgres::builder`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    bin_dir: Option<PathBuf>,
    host: Option<Host>,
    port: Option<u16>,
}

/// A running throw-away PostgreSQL server. Dropping it stops the server (fast shutdown:
/// open sessions are disconnected) and deletes the cluster.
pub struct Postgres {
    // Declared before `dir`: the server stops before its data directory goes.
    child: Child,
    addr: SocketAddr,
    bin_dir: PathBuf,
    host: Option<Host>,
    dir: tempfile::TempDir,
}

/// Who the server's programs run as.
#[derive(Clone, Copy)]
enum RunAs {
    /// This process's own user (not root).
    Myself,
    /// The `postgres` OS user (we are root).
    OsUser {
        uid: nix::unistd::Uid,
        gid: nix::unistd::Gid,
    },
}

// === impl Builder ===

impl Builder {
    /// The directory holding `initdb`, `postgres` and `pg_isready`. Default: the newest
    /// `/usr/lib/postgresql/<major>/bin` ([`bin_dir`]).
    #[must_use]
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Runs the server inside `host`, listening on every address of the host and
    /// trusting clients from the test network (other hosts). Default: this machine's
    /// loopback only.
    #[must_use]
    pub fn host(mut self, host: &Host) -> Self {
        self.host = Some(host.clone());
        self
    }

    /// The TCP port on 127.0.0.1. Default: [`DEFAULT_HOST_PORT`] inside a host, a free
    /// port on this machine's loopback otherwise.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Initialises a cluster, starts the server and waits (up to [`READY_TIMEOUT`])
    /// until it accepts connections.
    pub fn start(self) -> Result<Postgres> {
        let bin_dir = match self.bin_dir {
            Some(dir) => dir,
            None => bin_dir().ok_or(Error::NotInstalled)?,
        };
        let run_as = RunAs::detect()?;
        let fixed_port = self.port.or(self.host.as_ref().map(|_| DEFAULT_HOST_PORT));
        let attempts = if fixed_port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = match fixed_port {
                Some(port) => port,
                None => crate::ports::free_loopback_port(),
            };
            match Postgres::launch(&bin_dir, self.host.clone(), port, run_as) {
                Ok(server) => return Ok(server),
                // Most likely the port was taken in the meantime: try another one.
                Err(e @ Error::Process(process::Error::Exited { .. })) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(Error::NotInstalled))
    }
}

// === impl Postgres ===

impl Postgres {
    /// Starts a server on this machine's loopback on a free port, with the default
    /// binaries. Shorthand for `Postgres::builder().start()`.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// A builder to choose the binaries, the host and the port.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (reachable from where the server
    /// runs: this machine, or inside its host).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database on this server (create it first).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@{}/{database}", self.addr)
    }

    /// The TCP address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory holding the unix socket (`.s.PGSQL.<port>`); usable from any
    /// network namespace.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host the server runs in (`None` on this machine's network).
    pub fn host(&self) -> Option<&Host> {
        self.host.as_ref()
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        self.child.logs()
    }

    fn launch(bin_dir: &Path, host: Option<Host>, port: u16, run_as: RunAs) -> Result<Self> {
        let dir = crate::tempdir().map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        run_as.take_ownership(dir.path())?;
        let data = dir.path().join("data");
        initdb(bin_dir, &data, run_as, dir.path())?;
        // Inside a simulated host the server is there for the other hosts: listen on
        // every address and trust the test network (198.18.0.0/15).
        let listen = if host.is_some() {
            let hba = data.join("pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba).map_err(|source| Error::Io {
                path: hba.clone(),
                source,
            })?;
            rules.push_str("host all all 198.18.0.0/15 trust\n");
            std::fs::write(&hba, rules).map_err(|source| Error::Io {
                path: hba.clone(),
                source,
            })?;
            "listen_addresses=*"
        } else {
            "listen_addresses=127.0.0.1"
        };

        let mut command = run_as.command(host.as_ref(), &bin_dir.join("postgres"));
        command
            .current_dir(dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-c", listen, "-p", &port.to_string()])
            .arg("-k")
            .arg(dir.path())
            // A test cluster trades durability for speed; it is deleted afterwards.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"]);
        let label = match &host {
            Some(host) => format!("postgres@{}", host.name()),
            None => "postgres".to_owned(),
        };
        let child = Child::spawn(command, &label)?;
        let mut server = Self {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            bin_dir: bin_dir.to_owned(),
            host,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Polls `pg_isready` over TCP (from inside the host, if any) until it succeeds.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(process::Error::Exited {
                    label: self.child.label().to_owned(),
                    status,
                    tail: self.child.log_tail(40),
                }
                .into());
            }
            let program = self.bin_dir.join("pg_isready");
            let mut probe = match &self.host {
                Some(host) => host.command(&program),
                None => Command::new(&program),
            };
            let ready = probe
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.addr.port().to_string(),
                    "-t",
                    "1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(process::Error::NotReady {
                    label: self.child.label().to_owned(),
                    after: READY_TIMEOUT,
                    last: format!("pg_isready -h 127.0.0.1 -p {} failed", self.addr.port()),
                    tail: self.child.log_tail(40),
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: SIGTERM ("smart") would wait for every
        // client (e.g. a pool the test still holds) to disconnect first.
        if self.child.signal(Signal::SIGINT).is_ok() {
            let _ = self.child.wait_exit(STOP_TIMEOUT);
        }
        // Child's own Drop kills it if it is still running.
    }
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("addr", &self.addr)
            .field("host", &self.host.as_ref().map(Host::name))
            .field("dir", &self.dir.path())
            .field("child", &self.child)
            .finish_non_exhaustive()
    }
}

// === impl RunAs ===

impl RunAs {
    fn detect() -> Result<Self> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(Self::Myself);
        }
        let user = nix::unistd::User::from_name(OS_USER)
            .map_err(|source| Error::Os {
                action: format!("looking up the `{OS_USER}` OS user"),
                source,
            })?
            .ok_or(Error::NoOsUser)?;
        Ok(Self::OsUser {
            uid: user.uid,
            gid: user.gid,
        })
    }

    /// Gives the server's user the directory (the data directory must be its own).
    fn take_ownership(self, dir: &Path) -> Result<()> {
        if let Self::OsUser { uid, gid } = self {
            nix::unistd::chown(dir, Some(uid), Some(gid)).map_err(|source| Error::Os {
                action: format!("chown {} to {OS_USER}", dir.display()),
                source,
            })?;
        }
        Ok(())
    }

    /// A command running `program` as this user, inside `host` if given. `setpriv`
    /// and `ip netns exec` both exec in place, so the child's pid is the program's.
    fn command(self, host: Option<&Host>, program: &Path) -> Command {
        let (mut command, direct) = match (self, host) {
            (Self::Myself, Some(host)) => (host.command(program), true),
            (Self::Myself, None) => (Command::new(program), true),
            (Self::OsUser { .. }, Some(host)) => (host.command("setpriv"), false),
            (Self::OsUser { .. }, None) => (Command::new("setpriv"), false),
        };
        if !direct {
            command
                .args(["--reuid", OS_USER, "--regid", OS_USER, "--init-groups"])
                .arg(program);
        }
        command
    }
}

// === commands ===

/// The newest `/usr/lib/postgresql/<major>/bin` that holds a `postgres` binary.
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .ok()?
        .filter_map(std::result::Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Decides whether a test that needs a PostgreSQL server runs here.
///
/// Returns `true` when the server binaries are installed (and, as root, the `postgres`
/// OS user exists). Otherwise prints `skipping <test>: <why> (set WEFT_E2E=required to
/// fail instead)` and returns `false`, or panics with that message if
/// `WEFT_E2E=required` (as CI sets).
pub fn guard(test: &str) -> bool {
    let missing = if bin_dir().is_none() {
        Some(Error::NotInstalled)
    } else {
        RunAs::detect().err()
    };
    let Some(why) = missing else {
        return true;
    };
    crate::wait::skip(test, &why.to_string())
}

fn initdb(bin_dir: &Path, data: &Path, run_as: RunAs, cwd: &Path) -> Result<()> {
    let mut command = run_as.command(None, &bin_dir.join("initdb"));
    command
        .current_dir(cwd)
        .args([
            "--auth=trust",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
        ])
        .arg("--no-sync")
        .arg("-D")
        .arg(data)
        .stdin(Stdio::null());
    let line = format!("{command:?}");
    let output = command.output().map_err(|source| {
        Error::Process(process::Error::Spawn {
            label: "initdb".to_owned(),
            command: line.clone(),
            source,
        })
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Initdb {
        command: line,
        status: output.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names_superuser_address_and_database() {
        if !guard("url_names_superuser_address_and_database") {
            return;
        }
        let pg = Postgres::start().expect("postgres starts");
        let port = pg.addr().port();
        assert_eq!(
            pg.url(),
            format!("postgres://postgres@127.0.0.1:{port}/postgres")
        );
        assert_eq!(
            pg.url_for("weft"),
            format!("postgres://postgres@127.0.0.1:{port}/weft")
        );
        assert!(pg.socket_dir().join(format!(".s.PGSQL.{port}")).exists());
    }
}
