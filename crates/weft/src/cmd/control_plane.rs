//! `weft control-plane`: the resource store, the HTTP API (:5681) and the delta xDS
//! server (:5678) in one process.
//!
//! `weft control-plane admin-token reset`: the recovery path when the bootstrap admin
//! token is lost. It works on the store directly (no API, so no token needed), on the
//! control-plane host, whether the control plane runs or not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use weft_control::store::StoreSpec;

use crate::logging;

/// Arguments of `weft control-plane`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory for local files, created if missing: the embedded SQLite store
    /// (`DIR/weft.db`, unless --store names another), the admin token
    /// (`DIR/admin-token`) and the mesh CA certificate clients verify the control plane
    /// with (`DIR/ca.crt`). Default: /var/lib/weft/control-plane as root, else
    /// $XDG_STATE_HOME/weft/control-plane.
    #[arg(long, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where to write the operator admin token when this instance creates it (the
    /// store's first start; mode 0600). Default: DIR/admin-token in --data-dir.
    #[arg(long, env = "WEFT_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// The key Secret material is encrypted with at rest: 32 bytes, mode 0600, which
    /// must exist (e.g. `head -c 32 /dev/urandom > FILE; chmod 600 FILE`). Default:
    /// secret.key beside a SQLite store, created on first start; with PostgreSQL, give
    /// every instance the same file, or no Secret can be stored.
    #[arg(long, env = "WEFT_SECRET_KEY_FILE", value_name = "PATH")]
    secret_key_file: Option<PathBuf>,
    /// Store URL instead of the data directory: `postgres://user@host/db` to run
    /// several instances against one PostgreSQL, or `sqlite://FILE`.
    #[arg(long, env = "WEFT_STORE")]
    store: Option<String>,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:5681", env = "WEFT_API_LISTEN")]
    api_listen: SocketAddr,
    /// xDS and CSR-signing (gRPC over TLS) address proxies connect to.
    #[arg(long, default_value = "127.0.0.1:5678", env = "WEFT_XDS_LISTEN")]
    xds_listen: SocketAddr,
    /// Extra host names or IP addresses for the control plane's serving certificate,
    /// for clients that verify by host name (curl, browsers); repeatable. Weft's own
    /// clients verify the control plane's SPIFFE identity instead. Always included:
    /// localhost, 127.0.0.1, ::1, this host's name and the listen addresses.
    #[arg(long = "tls-san", value_name = "HOST")]
    tls_sans: Vec<String>,
    /// This instance's name, shown in `weft get workloads -o wide`. Default: the host
    /// name and API port.
    #[arg(long, env = "WEFT_INSTANCE")]
    instance: Option<String>,
    /// How long a workload whose proxy disconnected stays an endpoint.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    grace_period: Duration,
    /// Workloads one identity (namespace and service account) may register at once;
    /// past it a proxy's registration is refused (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_workloads_per_identity: u32,
    /// Workloads proxies may register with one workload token.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_workloads_per_token: u32,
    /// Connections the xDS listener accepts in total (one per proxy); lowered at start
    /// to fit the open-file limit.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    xds_max_connections: u32,
    /// Connections the xDS listener accepts from one address: raise it when many
    /// proxies reach the control plane through one NAT address.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    xds_max_connections_per_source: u32,
    /// How long a workload whose proxy is gone stays listed as `Unhealthy` before it
    /// is deleted.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    workload_retention: Duration,
    /// Lifetime of the workload certificates the mesh CA signs; proxies renew them at
    /// half-life. Also the longest a proxy may ask for.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    certificate_ttl: Duration,
    /// How long compilation waits after a change to collect more changes.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// Log filter (`info`, `debug`, `info,weft_control=debug`). `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: logging::Format,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The bootstrap admin token, through the store itself (run on the control-plane
    /// host; no API token needed).
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum AdminTokenCommand {
    /// Replace the admin token `bootstrap` with a new one and write it to
    /// DIR/admin-token (mode 0600): for when the token file is lost. Every other
    /// operator token stays as it is. Works whether the control plane runs or not;
    /// running instances refuse the old token within 2 s. Run it as the control
    /// plane's user.
    Reset(ResetArgs),
}

#[derive(Debug, clap::Args)]
struct ResetArgs {
    /// The control plane's data directory: its store (`DIR/weft.db`, unless --store
    /// names another) and where the token is written (`DIR/admin-token`). Default: as
    /// for `weft control-plane`.
    #[arg(long, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where to write the token instead (mode 0600). Default: DIR/admin-token.
    #[arg(long, env = "WEFT_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// The control plane's store URL, when it is not the data directory's:
    /// `postgres://user@host/db` or `sqlite://FILE`.
    #[arg(long, env = "WEFT_STORE")]
    store: Option<String>,
}

/// Runs the control plane until SIGTERM or SIGINT, or a subcommand.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(Command::AdminToken(AdminTokenCommand::Reset(reset))) = &args.command {
        return reset_admin_token(reset);
    }
    let _log = logging::init(&args.log_level, args.log_format)?;
    // Listener connection caps are sized below the open-file limit (ADR 0023).
    weft_tls::listener::raise_fd_limit();
    if args.certificate_ttl < Duration::from_secs(2) {
        anyhow::bail!(
            "--certificate-ttl {} is too short: proxies renew at half-life; use at least 2s (e.g. 1h)",
            humantime::format_duration(args.certificate_ttl)
        );
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let store = match &args.store {
        Some(url) => url
            .parse::<StoreSpec>()
            .with_context(|| format!("--store {url:?}"))?,
        None => StoreSpec::data_dir(&data_dir),
    };
    let admin_token_file = args
        .admin_token_file
        .clone()
        .unwrap_or_else(|| data_dir.join(weft_control::api::auth::ADMIN_TOKEN_FILE));
    let instance = args.instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "weft".into(), |h| h.trim().to_owned());
        format!("{host}:{}", args.api_listen.port())
    });
    let options = weft_control::server::Options {
        store,
        api_listen: args.api_listen,
        xds_listen: args.xds_listen,
        instance,
        grace_period: args.grace_period,
        debounce: args.debounce,
        admin_token_file: Some(admin_token_file),
        secret_key_file: args.secret_key_file.clone(),
        ca_file: Some(data_dir.join(weft_control::server::CA_FILE)),
        tls_hosts: tls_hosts(args),
        certificates: weft_control::identity::Options {
            default_ttl: args.certificate_ttl,
            max_ttl: args.certificate_ttl,
        },
        quotas: weft_control::controller::registry::Quotas {
            workloads_per_identity: usize::try_from(args.max_workloads_per_identity)
                .unwrap_or(usize::MAX),
            workloads_per_token: usize::try_from(args.max_workloads_per_token)
                .unwrap_or(usize::MAX),
            retention: args.workload_retention,
        },
        xds_limits: weft_tls::listener::Limits {
            max_connections: usize::try_from(args.xds_max_connections).unwrap_or(usize::MAX),
            max_connections_per_source: usize::try_from(args.xds_max_connections_per_source)
                .unwrap_or(usize::MAX),
            ..weft_control::server::xds_limits()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signals.cancel();
        });
        weft_control::server::run(options, shutdown).await
    })?;
    runtime.shutdown_timeout(Duration::from_millis(500));
    Ok(())
}

/// `weft control-plane admin-token reset`.
fn reset_admin_token(args: &ResetArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let store = match &args.store {
        Some(url) => url
            .parse::<StoreSpec>()
            .with_context(|| format!("--store {url:?}"))?,
        None => StoreSpec::data_dir(&data_dir),
    };
    // Opening a store that is not there would create an empty one.
    if let StoreSpec::Sqlite { path } = &store {
        if !path.exists() {
            anyhow::bail!(
                "no control-plane store at {}: give the control plane's --data-dir (or its \
                 --store), and run this on the control-plane host",
                path.display()
            );
        }
    }
    let file = args
        .admin_token_file
        .clone()
        .unwrap_or_else(|| data_dir.join(weft_control::api::auth::ADMIN_TOKEN_FILE));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let created = runtime.block_on(async {
        let opened = weft_control::store::open(&store)
            .await
            .with_context(|| format!("opening the store {store}"))?;
        weft_control::api::auth::reset_bootstrap(opened.as_ref())
            .await
            .context("replacing the bootstrap admin token")
    })?;
    weft_control::api::auth::write_token_file(&file, &created.token).context(
        "the store has a new bootstrap admin token, but it could not be saved: fix the cause \
         and run `weft control-plane admin-token reset` again",
    )?;
    println!(
        "wrote a new admin token {:?} to {} (`weft token admin` prints it); the old one no \
         longer works (running control-plane instances refuse it within {}); other operator \
         tokens are unchanged",
        created.record.name,
        file.display(),
        humantime::format_duration(weft_control::api::auth::REFRESH_INTERVAL)
    );
    Ok(())
}

/// Host names and addresses for the serving certificate: the defaults, the listen
/// addresses that are not wildcards, and `--tls-san`.
fn tls_hosts(args: &Args) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            hosts.push(name.to_owned());
        }
    }
    for addr in [args.api_listen, args.xds_listen] {
        if !addr.ip().is_unspecified() {
            hosts.push(addr.ip().to_string());
        }
    }
    hosts.extend(args.tls_sans.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    hosts
}

/// The control plane's data directory when `--data-dir` is not given; `weft token
/// admin` looks there too.
pub(crate) fn default_data_dir() -> PathBuf {
    super::proxy::default_state_dir().join("control-plane")
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
