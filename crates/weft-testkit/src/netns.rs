//! Simulated hosts for end-to-end tests: one Linux network namespace per host, all
//! plugged into a bridge that lives in a private "hub" namespace.
//!
//! This is not a container runtime: hosts share the file system, users and processes of
//! the test machine; only the network stack is separate. Each host gets one interface,
//! `eth0`, with the next address in 198.18.0.0/24 (the RFC 2544 benchmark range, so it
//! never clashes with a real network), starting at `198.18.0.2`.
//!
//! Every test process may build several topologies at once: names carry the process id
//! and a per-process counter, and veth interfaces are created inside the hub namespace,
//! so nothing is ever added to the machine's own network namespace. A [`Topology`]
//! deletes its namespaces on drop, also while a test panics; namespaces left behind by a
//! killed test process (whose pid is gone) are removed by the next [`Topology::new`].
//!
//! Code runs inside a host in two ways: child processes through [`Host::command`] /
//! [`Host::exec`] (`ip netns exec`), and Rust futures through [`Host::run`],
//! [`Host::spawn`] and [`Host::spawn_server`], which move a fresh OS thread into the
//! namespace (`setns`) and give it its own current-thread tokio runtime, so every socket
//! the future creates belongs to the host.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread::JoinHandle;

use nix::fcntl::{Flock, FlockArg};
use nix::sched::CloneFlags;
use tokio::sync::oneshot;

/// Where `ip netns` keeps the bind mounts that name network namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Every namespace this crate creates starts with this, followed by the creator's pid.
const NAME_PREFIX: &str = "wft";

/// The /24 that hosts are numbered in; hosts get `.2` upwards.
const SUBNET: [u8; 3] = [198, 18, 0];
const FIRST_HOST_OCTET: u8 = 2;
const LAST_HOST_OCTET: u8 = 254;

static TOPOLOGY_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Errors from building a topology or running something inside a host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command (usually `ip`) could not be started at all.
    #[error("failed to start `{command}`: {source} (is iproute2 installed and are we root?)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{command}` failed with {status}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The lock that serializes namespace creation could not be taken.
    #[error("failed to lock {path}: {source} (are we root?)")]
    Lock {
        /// The lock file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A host name that cannot be used in a namespace name.
    #[error("invalid host name {name:?}: use 1-20 characters of [a-z0-9-]")]
    InvalidHostName {
        /// The rejected name.
        name: String,
    },
    /// Two hosts with the same name in one topology.
    #[error("host {name:?} already exists in this topology")]
    DuplicateHost {
        /// The repeated name.
        name: String,
    },
    /// All addresses of the /24 are taken.
    #[error("no addresses left in 198.18.0.0/24 (at most 253 hosts per topology)")]
    AddressesExhausted,
    /// The thread for a host could not enter its namespace or build its runtime.
    #[error("failed to enter host {host:?}: {message}")]
    Enter {
        /// The host's name.
        host: String,
        /// What went wrong.
        message: String,
    },
}

/// A result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A set of hosts on one shared L2 segment. Dropping it deletes every namespace.
///
/// Drop processes running inside the hosts (e.g. [`WeftProcess`](crate::process::WeftProcess))
/// before the topology; declaring the topology first in a test does that.
pub struct Topology {
    prefix: String,
    hub: String,
    hosts: Mutex<Vec<Host>>,
}

/// One simulated host: a network namespace with `lo` and `eth0` up.
///
/// A cheap handle (clone it freely); the namespace itself belongs to the [`Topology`]
/// and disappears when the topology is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    name: String,
    netns: String,
    ip: Ipv4Addr,
}

/// A future running on its own thread inside a host; see [`Host::spawn`].
///
/// Dropping the handle signals shutdown (the future is dropped at its next await point,
/// as is everything it spawned on the thread's runtime) and joins the thread.
pub struct ThreadHandle<T = ()> {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Option<T>>>,
}

/// A value produced by setup code inside a host, together with the thread that keeps the
/// tasks it spawned running; see [`Host::spawn_server`]. Derefs to the value.
///
/// Dropping it drops the value first, then stops the thread.
pub struct Hosted<T> {
    value: Option<T>,
    thread: ThreadHandle,
}

// === impl Topology ===

impl Topology {
    /// Creates the hub namespace and its bridge (`br0`). Removes stale namespaces of dead
    /// test processes first (best effort).
    pub fn new() -> Result<Self> {
        remove_stale_namespaces();
        let n = TOPOLOGY_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NAME_PREFIX}{}x{n}", std::process::id());
        let hub = format!("{prefix}-hub");
        add_namespace(&hub)?;
        // From here on, Drop cleans up whatever part of the setup succeeded.
        let topology = Self {
            prefix,
            hub,
            hosts: Mutex::new(Vec::new()),
        };
        run_ip(["-n", &topology.hub, "link", "add", "br0", "type", "bridge"])?;
        run_ip(["-n", &topology.hub, "link", "set", "br0", "up"])?;
        run_ip(["-n", &topology.hub, "link", "set", "lo", "up"])?;
        Ok(topology)
    }

    /// Adds a host named `name` (1-20 characters of `[a-z0-9-]`, unique in this
    /// topology) with the next free address.
    pub fn add_host(&self, name: &str) -> Result<Host> {
        let valid = !name.is_empty()
            && name.len() <= 20
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(Error::InvalidHostName { name: name.into() });
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if hosts.iter().any(|h| h.name == name) {
            return Err(Error::DuplicateHost { name: name.into() });
        }
        let index = u8::try_from(hosts.len()).map_err(|_| Error::AddressesExhausted)?;
        let octet = FIRST_HOST_OCTET
            .checked_add(index)
            .filter(|o| *o <= LAST_HOST_OCTET)
            .ok_or(Error::AddressesExhausted)?;
        let ip = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], octet);
        let host = Host {
            name: name.into(),
            netns: format!("{}-{name}", self.prefix),
            ip,
        };
        add_namespace(&host.netns)?;
        // Registered before the rest of the setup so that Drop removes it on failure.
        hosts.push(host.clone());
        drop(hosts);

        // The veth pair is created inside the hub with its peer moved straight into the
        // host, so interface names only need to be unique within this topology.
        let port = format!("veth{index}");
        run_ip([
            "-n",
            &self.hub,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.netns,
        ])?;
        run_ip(["-n", &self.hub, "link", "set", &port, "master", "br0", "up"])?;
        let cidr = format!("{ip}/24");
        run_ip(["-n", &host.netns, "addr", "add", &cidr, "dev", "eth0"])?;
        run_ip(["-n", &host.netns, "link", "set", "eth0", "up"])?;
        run_ip(["-n", &host.netns, "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// The hosts added so far, in order.
    pub fn hosts(&self) -> Vec<Host> {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The name of the hub namespace that holds the bridge.
    pub fn hub_netns_name(&self) -> &str {
        &self.hub
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let hosts = std::mem::take(self.hosts.get_mut().unwrap_or_else(PoisonError::into_inner));
        for host in hosts.iter().rev() {
            delete_namespace(&host.netns);
        }
        delete_namespace(&self.hub);
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("hub", &self.hub)
            .field("hosts", &self.hosts())
            .finish_non_exhaustive()
    }
}

// === impl Host ===

impl Host {
    /// The name given to [`Topology::add_host`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on the shared segment (on `eth0`).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The network namespace's name, as `ip netns` knows it.
    pub fn netns_name(&self) -> &str {
        &self.netns
    }

    /// The bind mount that names the namespace (`/run/netns/<name>`).
    pub fn netns_path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.netns)
    }

    /// A command that runs `program` inside the host (`ip netns exec NS program`). Add
    /// arguments, environment and stdio as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .arg("netns")
            .arg("exec")
            .arg(&self.netns)
            .arg(program);
        command
    }

    /// Runs `args[0]` with the remaining arguments inside the host and waits for it.
    /// The output is returned whatever the exit status; check `output.status`.
    pub fn exec<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output> {
        let mut command = Command::new("ip");
        command.arg("netns").arg("exec").arg(&self.netns).args(args);
        let line = format!("{command:?}");
        command.output().map_err(|source| Error::Spawn {
            command: line,
            source,
        })
    }

    /// Runs the future made by `f` to completion on a fresh thread inside the host, on a
    /// current-thread tokio runtime (time and I/O enabled), and returns its output.
    ///
    /// # Panics
    ///
    /// If the thread cannot enter the namespace (a broken test setup), and re-raises any
    /// panic of the future.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(format!("netns-{}", self.name))
                .spawn_scoped(scope, || {
                    let runtime = self.enter().unwrap_or_else(|e| panic!("{e}"));
                    runtime.block_on(f())
                })
                .unwrap_or_else(|e| panic!("failed to start a thread for host {}: {e}", self.name));
            match thread.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts the future made by `f` on its own thread inside the host and returns once
    /// the thread is inside the namespace. The future runs until it completes or the
    /// handle is dropped or shut down.
    ///
    /// # Panics
    ///
    /// If the thread cannot be started or cannot enter the namespace (a broken test
    /// setup).
    pub fn spawn<F, Fut, T>(&self, f: F) -> ThreadHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let (entered_tx, entered_rx) = mpsc::channel::<Result<()>>();
        let host = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                let runtime = match host.enter() {
                    Ok(runtime) => {
                        let _ = entered_tx.send(Ok(()));
                        runtime
                    }
                    Err(e) => {
                        let _ = entered_tx.send(Err(e));
                        return None;
                    }
                };
                runtime.block_on(async move {
                    tokio::select! {
                        value = f() => Some(value),
                        _ = shutdown_rx => None,
                    }
                })
            })
            .unwrap_or_else(|e| panic!("failed to start a thread for host {}: {e}", self.name));
        let handle = ThreadHandle {
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        match entered_rx.recv() {
            Ok(Ok(())) => handle,
            Ok(Err(e)) => panic!("{e}"),
            Err(mpsc::RecvError) => panic!(
                "the thread for host {} exited before entering it",
                self.name
            ),
        }
    }

    /// Runs setup code (typically binding a server, e.g.
    /// [`echo::spawn_http`](crate::echo::spawn_http)) inside the host, returns its
    /// output once it has completed, and keeps the thread's runtime alive (driving every
    /// task the setup spawned) until the returned [`Hosted`] is dropped.
    ///
    /// ```no_run
    /// # fn demo(host: &weft_testkit::netns::Host) -> Result<(), weft_testkit::echo::Error> {
    /// use weft_testkit::echo;
    /// let addr = std::net::SocketAddr::from((host.ip(), 8080));
    /// let server = host.spawn_server(move || echo::spawn_http(addr, "b"))?;
    /// assert_eq!(server.recorder().count(), 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Host::spawn`], and re-raises a panic of the setup code.
    pub fn spawn_server<F, Fut, T, E>(&self, f: F) -> Result<Hosted<T>, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<T, E>>();
        let thread = self.spawn(move || async move {
            let value = f().await;
            let failed = value.is_err();
            let _ = ready_tx.send(value);
            if !failed {
                // Keep the runtime (and the server's tasks) alive until shutdown.
                std::future::pending::<()>().await;
            }
        });
        let Ok(value) = ready_rx.recv() else {
            // The setup panicked; joining re-raises its panic here.
            thread.join();
            panic!("setup code in host {} ended without a result", self.name)
        };
        value.map(|value| Hosted {
            value: Some(value),
            thread,
        })
    }

    /// Moves the current thread into the namespace and builds its runtime.
    fn enter(&self) -> Result<tokio::runtime::Runtime> {
        let path = self.netns_path();
        let file = File::open(&path).map_err(|e| Error::Enter {
            host: self.name.clone(),
            message: format!("open {}: {e}", path.display()),
        })?;
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Enter {
            host: self.name.clone(),
            message: format!("setns({}): {e}", path.display()),
        })?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Enter {
                host: self.name.clone(),
                message: format!("tokio runtime: {e}"),
            })
    }
}

// === impl ThreadHandle ===

impl<T> ThreadHandle<T> {
    /// Whether the future has completed (or the thread has ended otherwise).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Signals shutdown and waits for the thread. Returns the future's output if it
    /// completed before the signal arrived.
    ///
    /// # Panics
    ///
    /// Re-raises a panic of the future.
    pub fn shutdown(mut self) -> Option<T> {
        self.stop()
    }

    /// Waits for the future to complete by itself and returns its output (`None` only if
    /// it had been shut down).
    ///
    /// # Panics
    ///
    /// Re-raises a panic of the future.
    pub fn join(mut self) -> Option<T> {
        let thread = self.thread.take()?;
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn stop(&mut self) -> Option<T> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let thread = self.thread.take()?;
        match thread.join() {
            Ok(value) => value,
            // Do not panic inside a panic (drop during unwinding); report instead.
            Err(panic) if std::thread::panicking() => {
                eprintln!("weft-testkit: a host thread panicked: {panic:?}");
                None
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<T> Drop for ThreadHandle<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<T> fmt::Debug for ThreadHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

// === impl Hosted ===

impl<T> Hosted<T> {
    /// Stops the thread and returns the value (whose background tasks no longer run).
    pub fn into_inner(mut self) -> T {
        self.thread.stop();
        self.value
            .take()
            .expect("Hosted always holds its value until dropped")
    }
}

impl<T> Deref for Hosted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
            .as_ref()
            .expect("Hosted always holds its value until dropped")
    }
}

impl<T> Drop for Hosted<T> {
    fn drop(&mut self) {
        // The value first: servers cancel their tasks while the runtime still runs.
        drop(self.value.take());
        self.thread.stop();
    }
}

impl<T: fmt::Debug> fmt::Debug for Hosted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hosted").field(&self.value).finish()
    }
}

// === e2e gate ===

/// Decides whether an end-to-end test that needs network namespaces runs here.
///
/// Returns `true` as root. Otherwise prints
/// `skipping <test>: needs root for network namespaces (set WEFT_E2E=required to fail instead)`
/// and returns `false`, or panics with that message if `WEFT_E2E=required` (as CI sets).
///
/// ```no_run
/// #[test]
/// fn proxies_http_between_hosts() {
///     if !weft_testkit::e2e_guard("proxies_http_between_hosts") {
///         return;
///     }
///     // ...
/// }
/// ```
pub fn e2e_guard(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    crate::wait::skip(test, "needs root for network namespaces")
}

// === commands ===

/// Where concurrent test processes serialize creating and reaping namespaces.
const NAMESPACE_LOCK: &str = "/run/weft-testkit-netns.lock";

/// Creates the named network namespace, as `ip netns add` does, serialized with every
/// other test process's creations and stale-namespace cleanup. Without the lock, a
/// cleanup in another process can delete a namespace file between `ip netns add`
/// creating it and mounting the namespace on it ("Bind /proc/self/ns/net -> ... No such
/// file or directory"), and two first-ever `ip netns add`s can race to set up
/// `/run/netns` itself.
pub fn add_namespace(name: &str) -> Result<()> {
    let _lock = lock_namespaces()?;
    run_ip(["netns", "add", name])
}

/// Takes the cross-process namespace lock; it is released when the file is closed.
fn lock_namespaces() -> Result<Flock<File>> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(NAMESPACE_LOCK)
        .map_err(|source| Error::Lock {
            path: NAMESPACE_LOCK,
            source,
        })?;
    Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Lock {
        path: NAMESPACE_LOCK,
        source: errno.into(),
    })
}

fn run_ip<const N: usize>(args: [&str; N]) -> Result<()> {
    let mut command = Command::new("ip");
    command.args(args);
    let line = format!("ip {}", args.join(" "));
    let output = command.output().map_err(|source| Error::Spawn {
        command: line.clone(),
        source,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: line,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn delete_namespace(name: &str) {
    if let Err(e) = run_ip(["netns", "delete", name]) {
        eprintln!("weft-testkit: could not delete network namespace {name}: {e}");
    }
}

/// Deletes namespaces named `wft<pid>x...` whose creating process no longer exists.
fn remove_stale_namespaces() {
    let _lock = match lock_namespaces() {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("weft-testkit: not removing stale namespaces: {e}");
            return;
        }
    };
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = creator_pid(name) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            // Best effort: a namespace we cannot delete now is retried by the next topology.
            let _ = run_ip(["netns", "delete", name]);
        }
    }
}

/// The pid encoded in a namespace name made by [`Topology`], if it is one.
fn creator_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    let (counter, _) = rest.split_once('-')?;
    if counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_pid_parses_only_our_names() {
        assert_eq!(creator_pid("wft123x0-hub"), Some(123));
        assert_eq!(creator_pid("wft123x17-client"), Some(123));
        assert_eq!(creator_pid("wft123x-client"), None);
        assert_eq!(creator_pid("wftabcx1-hub"), None);
        assert_eq!(creator_pid("other"), None);
        assert_eq!(creator_pid("wft123"), None);
    }
}
