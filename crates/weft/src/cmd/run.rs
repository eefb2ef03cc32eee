//! `weft run [proxy flags] -- CMD ARGS…`: the proxy and the app as one unit.
//!
//! The proxy starts first, and the app only once the proxy's `/ready` answers 200
//! (certificate, config and listeners in place), so the app's first outbound request
//! never races the mesh. Signals (TERM, INT, HUP, QUIT) go to the app; the proxy keeps
//! serving while the app shuts down, then drains and exits. When the app exits by
//! itself (a batch job), the proxy drains too. The exit code is the app's (128 + the
//! signal number if a signal ended it).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Arguments of `weft run`.
#[derive(Debug, clap::Args)]
#[group(id = "run")]
pub(crate) struct Args {
    #[command(flatten)]
    proxy: super::proxy::Args,
    /// How long to wait for the proxy to become ready; past it the app is not started
    /// and `weft run` fails.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// The application to run, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Runs the proxy, then the app; returns the app's exit code.
pub(crate) fn run(args: Args) -> anyhow::Result<u8> {
    let Args {
        proxy,
        ready_timeout,
        command,
    } = args;
    let Some(super::proxy::Prepared {
        runtime,
        mut options,
        initial,
    }) = super::proxy::prepare(proxy)?
    else {
        return Ok(0);
    };
    let admin = initial.snapshot().config.listeners.admin;
    let stop = CancellationToken::new();
    options.stop = Some(stop.clone());
    let code = runtime.block_on(async move {
        let mut proxy = tokio::spawn(weft_proxy::run::run(options, initial));
        let deadline = Instant::now() + ready_timeout;
        loop {
            if proxy.is_finished() {
                return match (&mut proxy).await {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the proxy stopped before it was ready")),
                    Ok(Err(e)) => Err(anyhow::Error::new(e).context("the proxy failed to start")),
                    Err(e) => Err(anyhow::anyhow!("the proxy task failed: {e}")),
                };
            }
            if ready(admin).await {
                break;
            }
            if Instant::now() >= deadline {
                stop.cancel();
                let _ = proxy.await;
                anyhow::bail!(
                    "the proxy was not ready within {} (see its log above); the app was not started",
                    humantime::format_duration(ready_timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let code = supervise(&command).await;
        tracing::info!("the app has exited; draining the proxy");
        stop.cancel();
        match proxy.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the proxy failed while draining"),
            Err(e) => tracing::error!(error = %e, "the proxy task failed"),
        }
        code
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Starts the app, forwards signals to it, and returns its exit code.
async fn supervise(command: &[OsString]) -> anyhow::Result<u8> {
    let (program, args) = command
        .split_first()
        .context("no command to run after `--`")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(nix::unistd::Pid::from_raw);
    tracing::info!(app = %program.to_string_lossy(), pid = ?pid, "the proxy is ready; the app started");
    let kinds = [
        (SignalKind::terminate(), nix::sys::signal::Signal::SIGTERM),
        (SignalKind::interrupt(), nix::sys::signal::Signal::SIGINT),
        (SignalKind::hangup(), nix::sys::signal::Signal::SIGHUP),
        (SignalKind::quit(), nix::sys::signal::Signal::SIGQUIT),
    ];
    let mut streams = Vec::new();
    for (kind, sig) in kinds {
        let stream = signal(kind).with_context(|| format!("handling {sig}"))?;
        streams.push((stream, sig));
    }
    let [(term, term_sig), (int, int_sig), (hup, hup_sig), (quit, quit_sig)] = &mut streams[..]
    else {
        anyhow::bail!("signal handlers missing");
    };
    let status = loop {
        let forward = tokio::select! {
            status = child.wait() => break status.context("waiting for the app")?,
            Some(()) = term.recv() => *term_sig,
            Some(()) = int.recv() => *int_sig,
            Some(()) = hup.recv() => *hup_sig,
            Some(()) = quit.recv() => *quit_sig,
        };
        tracing::info!(signal = %forward, "forwarding to the app; the proxy keeps serving until it exits");
        if let Some(pid) = pid {
            if let Err(e) = nix::sys::signal::kill(pid, forward) {
                tracing::warn!(error = %e, "could not signal the app");
            }
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
        (None, None) => u8::MAX,
    })
}

/// Whether `GET /ready` on the admin listener answers 200.
async fn ready(admin: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await.ok()?;
        stream
            .write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}
