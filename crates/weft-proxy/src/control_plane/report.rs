//! The report stream (`weft.proxy.v1.Reports/Report`, ADR 39): every
//! [`INTERVAL`] the window of request statistics goes to the control plane, and the
//! taps it asks for are started and stopped, their events sent as they come. The
//! stream reconnects with backoff; while it is down, windows are dropped (the control
//! plane's view is live, not a history) and taps stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;

use crate::telemetry::{window, Metrics};

/// How often a window is reported.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Where and how to report.
#[derive(Clone, Debug)]
pub struct Options {
    /// The control plane's gRPC endpoint.
    pub endpoint: String,
    /// How to verify it.
    pub trust: super::channel::Trust,
    /// The workload token.
    pub token_file: Option<PathBuf>,
    /// This workload's name.
    pub workload: String,
}

/// Reports until `shutdown`.
pub async fn run(options: Options, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = stream(&options, &metrics, &shutdown) => r,
        };
        metrics.taps.clear();
        match result {
            Ok(()) => backoff.reset(),
            Err(e) => tracing::debug!(error = %e, "report stream to the control plane ended"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One stream, until it ends.
async fn stream(
    options: &Options,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(options.endpoint.clone())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5));
    let channel = super::channel::connect(&options.endpoint, &endpoint, &options.trust)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = pb::reports_client::ReportsClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::ProxyReport>(64);
    let first = pb::ProxyReport {
        report: Some(pb::proxy_report::Report::Workload(options.workload.clone())),
    };
    tx.send(first).await.map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(tokio_stream(rx));
    if let Some(path) = &options.token_file {
        let value = super::token::authorization(path)?;
        request
            .metadata_mut()
            .insert(pb::AUTHORIZATION_METADATA_KEY, value);
    }
    let mut answers = client
        .report(request)
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    // Taps' events come through their own queue, so a busy tap cannot hold up a
    // window (or the other way round).
    let (events_tx, mut events) = mpsc::channel(crate::telemetry::tap::QUEUE_EVENTS);
    let mut taps: Vec<pb::TapStart> = Vec::new();
    // Start the first window now: what came before the stream is not reported.
    metrics.windows.take();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {
                let (series, dropped) = metrics.windows.take();
                let report = pb::ProxyReport {
                    report: Some(pb::proxy_report::Report::Window(pb::Window {
                        seconds: INTERVAL.as_secs() as u32,
                        series: series.iter().map(window::to_pb).collect(),
                        dropped_series: dropped,
                    })),
                };
                // A full queue means the control plane is not reading: skip the window.
                if tx.try_send(report).is_err() {
                    tracing::debug!("report stream is backed up; a window was dropped");
                }
            }
            Some(event) = events.recv() => {
                let report = pb::ProxyReport { report: Some(pb::proxy_report::Report::Tap(event)) };
                let _ = tx.try_send(report);
            }
            answer = answers.message() => {
                let Some(answer) = answer.map_err(|s| s.to_string())? else {
                    return Ok(());
                };
                match answer.request {
                    Some(pb::control_request::Request::TapStart(start)) => {
                        tracing::info!(tap = start.id, path = %start.path_prefix, "tap started by the control plane");
                        taps.retain(|t| t.id != start.id);
                        taps.push(start);
                    }
                    Some(pb::control_request::Request::TapStop(stop)) => {
                        taps.retain(|t| t.id != stop.id);
                    }
                    None => {}
                }
                metrics.taps.set(taps.clone(), events_tx.clone());
            }
        }
    }
}

fn tokio_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
