//! `weft proxy`: run the sidecar proxy from a local config file, or from a bootstrap
//! file plus a control plane (`--control-plane`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::logging;

/// Arguments of `weft proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The proxy config (YAML). Re-read when it changes.
    #[arg(long, short = 'c', env = "WEFT_PROXY_CONFIG")]
    config: PathBuf,
    /// Control-plane xDS address (`https://HOST:5678`): the config file is then a
    /// bootstrap (identity, certificates, listeners, outbound ports) and services and
    /// routes come from the control plane.
    #[arg(long, env = "WEFT_CONTROL_PLANE_XDS")]
    control_plane: Option<String>,
    /// The mesh CA certificate (PEM) that vouches for the control plane: the control
    /// plane writes it to `<data-dir>/ca.crt`. Once the proxy has a certificate from the
    /// control plane, the trust bundle issued with it is trusted as well.
    #[arg(long, env = "WEFT_CONTROL_PLANE_CA", value_name = "FILE")]
    control_plane_ca: Option<PathBuf>,
    /// Where the last config accepted from the control plane is kept, to boot from
    /// during a control-plane outage. Default: /var/lib/weft as root, else
    /// $XDG_STATE_HOME/weft (~/.local/state/weft).
    #[arg(long, env = "WEFT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// File holding this workload's token (`weft token workload`), presented to the
    /// control plane; re-read on every reconnect.
    #[arg(long, env = "WEFT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Validate the config (and load its certificates), print the result, and exit.
    #[arg(long)]
    check: bool,
    /// Runtime threads; overrides settings.workerThreads (default 1; 0 = one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// How often to check the config file for changes.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    watch_interval: Duration,
    /// Log filter (`info`, `debug`, `info,weft_proxy=debug`; release builds compile out
    /// the `trace` level). `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: logging::Format,
    /// Allow `POST /shutdown` on the admin API.
    #[arg(long)]
    admin_shutdown: bool,
}

/// A proxy ready to run: its runtime, options and initial config.
pub(crate) struct Prepared {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) options: weft_proxy::run::Options,
    pub(crate) initial: weft_proxy::run::Initial,
}

/// `--check` without `--control-plane`: a complete local config, or else a bootstrap
/// (services and certificates to come from a control plane) is valid too, and says so.
/// A file that is neither reports the local-config errors, which name every problem.
fn check_without_control_plane(path: &std::path::Path) -> anyhow::Result<()> {
    let full = match weft_proxy::run::load(path, None) {
        Ok(initial) => {
            let snap = initial.snapshot();
            println!(
                "{}: valid (version {}, {} services, {} routes)",
                path.display(),
                snap.version,
                snap.config.services.len(),
                snap.config.routes.len()
            );
            return Ok(());
        }
        Err(e) => e,
    };
    match weft_proxy::state::file::read_config(path, weft_api::proxy::References::Deferred) {
        Ok(_) => {
            println!(
                "{}: valid as a bootstrap: the services, routes and certificates it leaves \
                 out come from the control plane (run it with --control-plane; as a \
                 local config on its own it is incomplete: {full})",
                path.display()
            );
            Ok(())
        }
        Err(_) => Err(full.into()),
    }
}

/// Runs the proxy until it has drained.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let Some(Prepared {
        runtime,
        options,
        initial,
    }) = prepare(args)?
    else {
        return Ok(());
    };
    runtime.block_on(weft_proxy::run::run(options, initial))?;
    // Connections still open after the drain deadline are closed with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Sets up logging, loads the config and builds the runtime; `None` after `--check`.
pub(crate) fn prepare(args: Args) -> anyhow::Result<Option<Prepared>> {
    let log = logging::init(&args.log_level, args.log_format)?;
    // Listener connection caps are sized below the open-file limit (ADR 0023).
    weft_tls::listener::raise_fd_limit();
    if let Some(url) = args.control_plane.as_deref() {
        if url.starts_with("http://") {
            // Plaintext only ever reaches test fakes: fail now, not on every reconnect.
            anyhow::bail!(
                "--control-plane {url}: the control plane serves TLS only; use https:// \
                 (with --control-plane-ca <data-dir>/ca.crt)"
            );
        }
    }
    let control_plane = args
        .control_plane
        .clone()
        .map(|endpoint| weft_proxy::run::ControlPlane {
            endpoint,
            state_dir: args.state_dir.clone().unwrap_or_else(default_state_dir),
            token_file: args.token_file.clone(),
            ca_file: args.control_plane_ca.clone(),
        });
    if args.check && control_plane.is_none() {
        check_without_control_plane(&args.config)?;
        return Ok(None);
    }
    let initial = weft_proxy::run::load(&args.config, control_plane.as_ref())?;
    if args.check {
        let snap = initial.snapshot();
        println!(
            "{}: valid (version {}, {} services, {} routes)",
            args.config.display(),
            snap.version,
            snap.config.services.len(),
            snap.config.routes.len()
        );
        return Ok(None);
    }
    let workers = match args
        .workers
        .unwrap_or(usize::from(initial.snapshot().settings().worker_threads))
    {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .context("starting the async runtime")?;
    let options = weft_proxy::run::Options {
        config: args.config,
        control_plane,
        watch_interval: args.watch_interval,
        log: Some(log),
        admin_shutdown: args.admin_shutdown,
        stop: None,
    };
    Ok(Some(Prepared {
        runtime,
        options,
        initial,
    }))
}

/// `/var/lib/weft` as root; `$XDG_STATE_HOME/weft` (or `~/.local/state/weft`) otherwise.
pub(crate) fn default_state_dir() -> PathBuf {
    if effective_uid_is_root() {
        return PathBuf::from("/var/lib/weft");
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("weft");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".weft-state"),
        |home| PathBuf::from(home).join(".local/state/weft"),
    )
}

/// Reads the effective uid from `/proc/self/status` (`Uid: real effective …`).
fn effective_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}
