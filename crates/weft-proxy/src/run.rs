//! Wiring for `weft proxy`: bind every listener, watch the config, drain on SIGTERM.
//!
//! Startup binds the admin, metrics, HBONE, capture and explicit outbound listeners
//! (any bind failure is fatal and names the listener), then reports ready. A config
//! change reconciles the explicit outbound listeners (new ones bound, removed ones stop
//! accepting while their connections finish). SIGTERM or SIGINT starts the drain:
//! listeners stop accepting, `/ready` turns 503, HTTP connections finish their in-flight
//! requests and close, and the process exits once all are done or the drain deadline
//! passes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin, LogControl};
use crate::control_plane::compose::{Composer, Dynamic};
use crate::control_plane::{self as control, identity};
use crate::drain::Drain;
use crate::hbone;
use crate::inbound::Inbound;
use crate::outbound::Outbound;
use crate::state::{file, Snapshot, Store};
use crate::telemetry::Metrics;
use crate::transport::listen;
use weft_api::proxy::References;

pub use crate::control_plane::ControlPlane;

/// How to run the proxy.
pub struct Options {
    /// The YAML config file: the whole config, or with `control_plane` the bootstrap.
    pub config: PathBuf,
    /// Take services and routes from a control plane.
    pub control_plane: Option<ControlPlane>,
    /// How often the file is checked for changes. Default 1 s.
    pub watch_interval: Duration,
    /// Run-time log filter control for `/logging`.
    pub log: Option<Box<dyn LogControl>>,
    /// Whether `POST /shutdown` on the admin API is allowed.
    pub admin_shutdown: bool,
    /// Drain when this is cancelled instead of on SIGTERM/SIGINT (`weft run` owns the
    /// signals: they go to the app, and the proxy drains once the app has exited).
    /// `None` (default for `weft proxy`): the proxy handles the signals itself.
    pub stop: Option<CancellationToken>,
}

/// What the proxy starts from.
pub struct Initial {
    /// The first snapshot.
    pub snapshot: Snapshot,
    /// In control-plane mode: the bootstrap, the persisted resources and the persisted
    /// issued certificate it was built from.
    composed: Option<(file::Loaded, Dynamic, Option<Arc<weft_tls::Credentials>>)>,
}

impl Initial {
    /// The snapshot the proxy starts with.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] Box<file::Error>),
    /// The bootstrap could not be compiled.
    #[error("{0}")]
    Compose(String),
    /// The control-plane client cannot start: a misconfiguration no retry fixes.
    #[error("cannot use the control plane: {0}")]
    ControlPlane(#[source] crate::control_plane::xds::Error),
    /// Listeners could not bind: every one that failed, so one fix covers them all.
    #[error("{0}")]
    Bind(BindFailures),
}

/// One listener that could not bind.
#[derive(Debug)]
pub struct BindFailure {
    /// Which listener, by its config path (`listeners.admin`, `outbound[].listen`).
    pub what: &'static str,
    /// Its address.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

/// The listeners that could not bind, in the order the proxy tried them.
#[derive(Debug, Default)]
pub struct BindFailures(pub Vec<BindFailure>);

impl std::fmt::Display for BindFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = || self.0.iter().map(|one| one.source.kind());
        let mut hints = Vec::new();
        if kinds().any(|k| k == std::io::ErrorKind::AddrInUse) {
            hints.push(
                "another proxy on this host? give each its own ports with \
                 listeners.portOffset (e.g. 100 moves every default port)",
            );
        }
        if kinds().any(|k| k == std::io::ErrorKind::AddrNotAvailable) {
            hints.push("an address that is not on this host cannot be bound");
        }
        let hints = hints.join("; ");
        match self.0.as_slice() {
            [one] => {
                write!(
                    f,
                    "cannot bind {} on {}: {}",
                    one.what, one.addr, one.source
                )?;
                if !hints.is_empty() {
                    write!(f, " ({hints})")?;
                }
            }
            all => {
                write!(f, "cannot bind {} listeners:", all.len())?;
                for one in all {
                    write!(f, "\n  {} on {}: {}", one.what, one.addr, one.source)?;
                }
                if !hints.is_empty() {
                    write!(f, "\n{hints}")?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for BindFailures {}

impl From<BindFailure> for Error {
    fn from(one: BindFailure) -> Self {
        Error::Bind(BindFailures(vec![one]))
    }
}

/// Loads the initial config (before the runtime starts, so worker count can come from
/// it). In control-plane mode the file is a bootstrap, and the last config accepted
/// from the control plane (if persisted) is applied on top, so a proxy restarted
/// during a control-plane outage serves what it served before.
pub fn load(
    path: &std::path::Path,
    control_plane: Option<&ControlPlane>,
) -> Result<Initial, Error> {
    let Some(cp) = control_plane else {
        let snapshot = file::load(path, None).map_err(|e| Error::Config(Box::new(e)))?;
        return Ok(Initial {
            snapshot,
            composed: None,
        });
    };
    let boot =
        file::read_config(path, References::Deferred).map_err(|e| Error::Config(Box::new(e)))?;
    let dynamic = control::load_persisted(&cp.state_dir, &boot.config).unwrap_or_default();
    let dynamic = if dynamic.is_empty() {
        Dynamic::default()
    } else {
        dynamic
    };
    // Without certificate files in the bootstrap, the certificate comes from the
    // control plane; one issued before a restart serves until it expires.
    let workload = &boot.config.workload;
    let issued = match weft_tls::SpiffeId::new(
        &workload.trust_domain,
        &workload.namespace,
        &workload.service_account,
    ) {
        Ok(id) if boot.creds.is_none() => {
            identity::load_persisted(&control::identity_dir(&cp.state_dir, &boot.config), &id)
        }
        _ => None,
    };
    let snapshot = match Composer::initial(&boot, &dynamic, issued.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the persisted control-plane config does not apply; starting from the bootstrap alone");
            Composer::initial(&boot, &Dynamic::default(), issued.as_ref())
                .map_err(Error::Compose)?
        }
    };
    Ok(Initial {
        snapshot,
        composed: Some((boot, dynamic, issued)),
    })
}

fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, BindFailure> {
    listen::bind(addr).map_err(|source| BindFailure { what, addr, source })
}

/// Binds `addr` if set; a failure is noted in `failed` so startup can report them all.
fn bind_noting(
    failed: &mut Vec<BindFailure>,
    what: &'static str,
    addr: Option<SocketAddr>,
) -> Option<tokio::net::TcpListener> {
    bind(what, addr?).map_err(|e| failed.push(e)).ok()
}

fn udp_bind(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}

/// The IPv6 loopback twin (`[::1]:PORT`) of a loopback IPv4 capture address: where
/// the ip6tables rules of `weft redirect install` send IPv6 traffic.
fn ipv6_twin(addr: SocketAddr) -> Option<SocketAddr> {
    (addr.is_ipv4() && addr.ip().is_loopback())
        .then(|| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())))
}

/// A twin listener is best effort: a host without IPv6 has nothing to capture there.
fn optional_bind<T>(bound: std::io::Result<T>, what: &str, addr: SocketAddr) -> Option<T> {
    match bound {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            tracing::debug!(%addr, what, "no IPv6 loopback; IPv6 is not captured");
            None
        }
        Err(e) => {
            tracing::warn!(%addr, what, error = %e, "could not bind the IPv6 twin listener; IPv6 traffic redirected here is refused");
            None
        }
    }
}

/// Runs the proxy until it has drained after SIGTERM/SIGINT (or `POST /shutdown`).
pub async fn run(options: Options, initial: Initial) -> Result<(), Error> {
    let metrics = Metrics::new();
    let Initial { snapshot, composed } = initial;
    let snapshot = snapshot.with_telemetry(&metrics, None).map_err(|e| {
        Error::Config(Box::new(file::Error::Snapshot {
            path: options.config.clone(),
            source: Box::new(e),
        }))
    })?;
    let store = Store::new(snapshot);
    let drain = Drain::new();
    let snap = store.load();
    let settings = snap.settings().clone();
    let listeners = snap.config.listeners.clone();

    let admin = Arc::new(Admin {
        store: store.clone(),
        metrics: metrics.clone(),
        drain: drain.clone(),
        ready: crate::admin::Readiness::default(),
        log: options.log,
        shutdown_enabled: options.admin_shutdown,
    });
    // Bind every listener before serving any, so a conflict is reported for all of
    // them at once and a failed start leaves nothing running.
    let mut failed = Vec::new();
    let admin_listener = bind_noting(&mut failed, "listeners.admin", Some(listeners.admin));
    let metrics_listener = bind_noting(&mut failed, "listeners.metrics", listeners.metrics);
    let hbone_listener = bind_noting(&mut failed, "listeners.hbone", listeners.hbone);
    let capture_listener = bind_noting(
        &mut failed,
        "listeners.outboundCapture",
        listeners.outbound_capture,
    );
    let dns_sockets = listeners.dns.and_then(|addr| {
        let udp = udp_bind(addr)
            .map_err(|source| {
                failed.push(BindFailure {
                    what: "listeners.dns",
                    addr,
                    source,
                });
            })
            .ok();
        let tcp = bind_noting(&mut failed, "listeners.dns", Some(addr));
        Some((addr, udp?, tcp?))
    });

    let pool = hbone::Pool::counted(
        hbone::PoolConfig {
            connect_timeout: settings.connect_timeout,
            max_streams_per_connection: settings.max_hbone_streams,
            ..hbone::PoolConfig::default()
        },
        Some(metrics.clone()),
    );
    let outbound = Outbound::new(store.clone(), metrics.clone(), pool, drain.clone());
    let inbound = Inbound::new(store.clone(), metrics.clone(), drain.clone());
    let max_connections = settings.max_connections as usize;

    let explicit = Arc::new(Explicit {
        running: Mutex::new(HashMap::new()),
        plaintext: Mutex::new(None),
        inbound: inbound.clone(),
        outbound: outbound.clone(),
        drain: drain.clone(),
        metrics: metrics.clone(),
        max_connections,
    });
    match explicit.reconcile(&snap, true) {
        Ok(()) => {}
        Err(Error::Bind(more)) => failed.extend(more.0),
        Err(other) => return Err(other),
    }
    if !failed.is_empty() {
        explicit.stop();
        return Err(Error::Bind(BindFailures(failed)));
    }

    // Not a drained task: checks simply stop when draining starts.
    tokio::spawn(outbound.clone().supervise_health(drain.token()));

    if let Some(l) = admin_listener {
        tokio::spawn(admin::serve(admin.clone(), l, admin::Kind::Admin));
    }
    if let Some(l) = metrics_listener {
        tokio::spawn(admin::serve(admin.clone(), l, admin::Kind::Metrics));
    }

    if let Some(l) = hbone_listener {
        let creds_store = store.clone();
        let authorize_inbound = inbound.clone();
        let handle_inbound = inbound.clone();
        let server = hbone::Server::new(
            hbone::ServerConfig {
                max_concurrent_streams: settings.max_concurrent_streams,
                // Below the open-file limit, with room for the upstream side of each
                // connection (ADR 0023).
                max_connections: max_connections
                    .min(weft_tls::listener::current_fd_limit().connection_budget() / 2)
                    .max(1),
                ..hbone::ServerConfig::default()
            },
            Arc::new(move || creds_store.load().creds.clone()),
            Arc::new(move |peer, target| authorize_inbound.authorize(peer, target)),
            Arc::new(move |accepted| {
                let inbound = handle_inbound.clone();
                Box::pin(inbound.handle(accepted))
            }),
            metrics.clone(),
        );
        let token = drain.token();
        let tracker = drain.clone();
        drain.spawn(async move {
            server.serve(l, token).await;
            drop(tracker);
        });
    }

    if let (Some(addr), Some(l)) = (listeners.outbound_capture, capture_listener) {
        let mut bound = vec![l];
        bound.extend(
            ipv6_twin(addr).and_then(|twin| {
                optional_bind(listen::bind(twin), "listeners.outboundCapture", twin)
            }),
        );
        for l in bound {
            let outbound = outbound.clone();
            let m = metrics.clone();
            tokio::spawn(listen::serve(
                l,
                max_connections,
                drain.clone(),
                CancellationToken::new(),
                move || m.failure("connection_limit"),
                move |stream, _peer| outbound.clone().captured(stream),
            ));
        }
    }

    if let Some((addr, udp, tcp)) = dns_sockets {
        let system = crate::dns::system_upstreams();
        if snap.config.dns.upstreams.is_empty() && system.is_empty() {
            tracing::warn!("mesh DNS: no dns.upstreams and no nameserver in /etc/resolv.conf; names outside the mesh get SERVFAIL");
        }
        crate::dns::serve(udp, tcp, store.clone(), system.clone(), metrics.clone());
        if let Some(twin) = ipv6_twin(addr) {
            let udp = optional_bind(udp_bind(twin), "listeners.dns", twin);
            let tcp = optional_bind(listen::bind(twin), "listeners.dns", twin);
            if let (Some(udp), Some(tcp)) = (udp, tcp) {
                crate::dns::serve(udp, tcp, store.clone(), system, metrics.clone());
            }
        }
    }

    let applied = snap.version.clone();
    let control_mode = composed.is_some() && options.control_plane.is_some();
    if let (Some((boot, dynamic, issued)), Some(cp)) = (composed, options.control_plane) {
        let boot_version = boot.version.clone();
        let restored = !dynamic.is_empty();
        let explicit = explicit.clone();
        let composer = Arc::new(Composer::new(
            store.clone(),
            boot,
            dynamic,
            issued,
            Box::new(move |snap| {
                if let Err(e) = explicit.reconcile(snap, false) {
                    tracing::error!(error = %e, "outbound listener could not be bound");
                }
            }),
            metrics.clone(),
        ));
        let c = composer.clone();
        tokio::spawn(file::watch(
            options.config.clone(),
            References::Deferred,
            boot_version,
            metrics.clone(),
            options.watch_interval,
            move |loaded| c.set_bootstrap(loaded),
        ));
        if restored {
            tracing::info!("serving the config persisted from the control plane until it answers");
        }
        if let Err(e) = control::spawn(
            &cp,
            composer,
            admin.clone(),
            metrics.clone(),
            restored,
            drain.token(),
        ) {
            return Err(Error::ControlPlane(e));
        }
    } else {
        let explicit = explicit.clone();
        let store = store.clone();
        let m = metrics.clone();
        tokio::spawn(file::watch(
            options.config.clone(),
            References::Required,
            applied,
            metrics.clone(),
            options.watch_interval,
            move |loaded| {
                let previous = store.load();
                let next =
                    Snapshot::build(loaded.config, loaded.creds, loaded.version, Some(&previous))
                        .and_then(|next| next.with_telemetry(&m, Some(&previous)))
                        .map_err(|e| e.to_string())?;
                store.swap(next);
                if let Err(e) = explicit.reconcile(&store.load(), false) {
                    tracing::error!(error = %e, "outbound listener could not be bound");
                }
                Ok(())
            },
        ));
    }

    if control_mode {
        // "proxy ready" is logged by the control-plane client when `/ready` turns 200:
        // once the config (and the certificate, when the control plane issues it) is in.
        tracing::info!(
            admin = %listeners.admin,
            hbone = ?listeners.hbone,
            "proxy listening; waiting for config from the control plane (/ready answers 503 until then)"
        );
    } else {
        admin.ready.set();
        tracing::info!(
            version = %snap.version,
            identity = ?snap.creds.as_ref().map(|c| c.identity().to_string()),
            admin = %listeners.admin,
            hbone = ?listeners.hbone,
            "proxy ready"
        );
    }
    drop(snap);
    release_startup_pages_once_ready(admin.clone());

    match &options.stop {
        Some(stop) => tokio::select! {
            () = stop.cancelled() => tracing::info!("stop requested"),
            () = drain.started() => {}
        },
        None => wait_for_signal(&drain).await,
    }
    let deadline = settings.drain_timeout;
    tracing::info!(?deadline, active = drain.active(), "draining");
    drain.start();
    if drain.wait(deadline).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            active = drain.active(),
            "drain deadline passed; closing remaining connections"
        );
    }
    // The last requests' lines, before the runtime (and the writer task) goes.
    if let Some(log) = store.load().telemetry().access_log() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), log.flush()).await;
    }
    Ok(())
}

/// How long after becoming ready the start-up code's pages are released: long enough
/// for the first config's follow-up work (health checks, the first pushes) to run.
const RELEASE_AFTER_READY: Duration = Duration::from_secs(2);

/// Once the proxy is ready, gives back the pages of code it ran only to start
/// ([`crate::memory`], ADR 34).
fn release_startup_pages_once_ready(admin: Arc<Admin>) {
    tokio::spawn(async move {
        admin.ready.wait().await;
        tokio::time::sleep(RELEASE_AFTER_READY).await;
        match crate::memory::release_startup_pages() {
            Ok(released) => tracing::debug!(
                mappings = released.mappings,
                resident_kib = released.resident_bytes / 1024,
                "released the start-up code's pages"
            ),
            Err(e) => tracing::debug!(error = %e, "cannot release the start-up code's pages"),
        }
    });
}

async fn wait_for_signal(drain: &Drain) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
            tracing::info!("SIGTERM received");
        }
        Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
            tracing::info!("SIGINT received");
        }
        () = drain.started() => {}
    }
}

/// The listeners that follow the config: the explicit outbound listeners, by address,
/// and the inbound plaintext capture, bound only while some port is permissive.
struct Explicit {
    running: Mutex<HashMap<SocketAddr, CancellationToken>>,
    plaintext: Mutex<Option<(SocketAddr, CancellationToken)>>,
    inbound: Arc<Inbound>,
    outbound: Arc<Outbound>,
    drain: Drain,
    metrics: Arc<Metrics>,
    max_connections: usize,
}

impl Explicit {
    /// Binds listeners new in `snap` and stops those it no longer has. Every bind
    /// failure is returned (at startup they are fatal, listed together with the other
    /// listeners'); on reload each is logged and the rest still apply.
    fn reconcile(&self, snap: &Snapshot, startup: bool) -> Result<(), Error> {
        let mut failed = Vec::new();
        if let Err(e) = self.reconcile_plaintext(snap, startup) {
            failed.push(e);
        }
        failed.extend(self.reconcile_outbound(snap, startup));
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Bind(BindFailures(failed)))
        }
    }

    /// Stops every listener this started (a failed startup leaves nothing serving).
    fn stop(&self) {
        for token in self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            token.cancel();
        }
        if let Some((_, token)) = self
            .plaintext
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            token.cancel();
        }
    }

    /// The inbound capture listener runs while a port is permissive; when the last one
    /// turns strict it stops accepting (open plaintext HTTP connections get 403 on
    /// their next request).
    fn reconcile_plaintext(&self, snap: &Snapshot, startup: bool) -> Result<(), BindFailure> {
        let wanted = snap
            .config
            .accepts_plaintext()
            .then_some(snap.config.listeners.inbound_capture)
            .flatten();
        let mut plaintext = self
            .plaintext
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if plaintext.as_ref().map(|(addr, _)| *addr) == wanted {
            return Ok(());
        }
        if let Some((addr, token)) = plaintext.take() {
            tracing::info!(%addr, "no permissive port left; inbound plaintext capture stopped");
            token.cancel();
        }
        let Some(addr) = wanted else { return Ok(()) };
        let listener = match bind("listeners.inboundCapture", addr) {
            Ok(l) => l,
            Err(e) => {
                if !startup {
                    tracing::error!(%addr, error = %e.source, "inbound plaintext capture not started; plaintext clients are refused");
                }
                return Err(e);
            }
        };
        let token = CancellationToken::new();
        *plaintext = Some((addr, token.clone()));
        let inbound = self.inbound.clone();
        let m = self.metrics.clone();
        tokio::spawn(listen::serve(
            listener,
            self.max_connections,
            self.drain.clone(),
            token,
            move || m.failure("connection_limit"),
            move |stream, _peer| inbound.clone().plaintext(stream),
        ));
        tracing::info!(%addr, "inbound plaintext capture started (permissive ports)");
        Ok(())
    }

    fn reconcile_outbound(&self, snap: &Snapshot, startup: bool) -> Vec<BindFailure> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wanted: Vec<SocketAddr> = snap.config.outbound.iter().map(|o| o.listen).collect();
        running.retain(|addr, token| {
            let keep = wanted.contains(addr);
            if !keep {
                tracing::info!(%addr, "outbound listener removed; existing connections continue");
                token.cancel();
            }
            keep
        });
        let mut failed = Vec::new();
        for addr in wanted {
            if running.contains_key(&addr) {
                continue;
            }
            let listener = match bind("outbound[].listen", addr) {
                Ok(l) => l,
                Err(e) => {
                    if !startup {
                        tracing::error!(%addr, error = %e.source, "outbound listener not started");
                    }
                    failed.push(e);
                    continue;
                }
            };
            let token = CancellationToken::new();
            running.insert(addr, token.clone());
            let outbound = self.outbound.clone();
            let m = self.metrics.clone();
            tokio::spawn(listen::serve(
                listener,
                self.max_connections,
                self.drain.clone(),
                token,
                move || m.failure("connection_limit"),
                move |stream, _peer| outbound.clone().explicit(stream, addr),
            ));
            tracing::debug!(%addr, "outbound listener started");
        }
        failed
    }
}
