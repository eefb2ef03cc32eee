//! `weft proxy`: run the sidecar proxy from a local config file.

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
    /// Validate the config (and load its certificates), print the result, and exit.
    #[arg(long)]
    check: bool,
    /// Worker threads; overrides settings.workerThreads (0 = one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// How often to check the config file for changes.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    watch_interval: Duration,
    /// Log filter (`info`, `debug`, `info,weft_proxy=trace`). `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: logging::Format,
    /// Allow `POST /shutdown` on the admin API.
    #[arg(long)]
    admin_shutdown: bool,
}

/// Runs the proxy until it has drained.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let log = logging::init(&args.log_level, args.log_format)?;
    let initial = weft_proxy::run::load(&args.config)?;
    if args.check {
        println!(
            "{}: valid (version {}, {} services, {} routes)",
            args.config.display(),
            initial.version,
            initial.config.services.len(),
            initial.config.routes.len()
        );
        return Ok(());
    }
    let workers = match args
        .workers
        .unwrap_or(usize::from(initial.settings().worker_threads))
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
        watch_interval: args.watch_interval,
        log: Some(log),
        admin_shutdown: args.admin_shutdown,
    };
    runtime.block_on(weft_proxy::run::run(options, initial))?;
    // Connections still open after the drain deadline are closed with the runtime.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
