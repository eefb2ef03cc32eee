//! The exporter task: finished spans, batched, to an OTLP/gRPC collector through
//! `opentelemetry-otlp`. Spans are turned into the SDK's form here, off the request
//! path.

use std::borrow::Cow;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::{Finished, Kind};

/// Spans waiting for export, at most; more are dropped and counted.
pub const QUEUE_SPANS: usize = 4096;

/// Spans sent in one export, at most.
const BATCH_SPANS: usize = 512;

/// Longest a finished span waits for its batch to fill.
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// Counters of spans by what became of them.
#[derive(Clone, Debug, Default)]
pub struct Exported {
    /// Accepted by the collector.
    pub exported: Counter,
    /// Dropped because the queue was full.
    pub dropped: Counter,
    /// Refused by the collector, or it could not be reached.
    pub failed: Counter,
}

/// Starts the exporter for `config` on the current runtime; returns its queue.
pub(super) fn spawn(
    config: &weft_api::proxy::Tracing,
    counters: &Exported,
    (workload, namespace): (&str, &str),
    identity: Option<&str>,
) -> Result<mpsc::Sender<Finished>, String> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("tracing: the exporter needs the proxy's runtime".into());
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.timeout)
        .build()
        .map_err(|e| format!("tracing: the OTLP exporter for {}: {e}", config.endpoint))?;
    let mut attributes = vec![
        KeyValue::new("service.namespace", namespace.to_owned()),
        KeyValue::new("weft.workload", workload.to_owned()),
    ];
    if let Some(id) = identity {
        attributes.push(KeyValue::new("weft.identity", id.to_owned()));
    }
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(workload.to_owned())
            .with_attributes(attributes)
            .build(),
    );
    let (tx, rx) = mpsc::channel(QUEUE_SPANS);
    let endpoint = config.endpoint.clone();
    tokio::spawn(run(rx, exporter, counters.clone(), endpoint));
    Ok(tx)
}

/// Batches the queue until every sender is gone, then sends what is left.
async fn run(
    mut rx: mpsc::Receiver<Finished>,
    exporter: opentelemetry_otlp::SpanExporter,
    counters: Exported,
    endpoint: String,
) {
    let scope = InstrumentationScope::builder("weft-proxy")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    let mut failures_logged = 0u32;
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        batch.push(span_data(&first, &scope));
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH_SPANS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span_data(&span, &scope)),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match exporter.export(std::mem::take(&mut batch)).await {
            Ok(()) => {
                counters.exported.inc_by(n);
                failures_logged = 0;
            }
            Err(e) => {
                counters.failed.inc_by(n);
                // One line per failure streak, then one in a hundred: a collector that
                // is down must not flood the log.
                if failures_logged.is_multiple_of(100) {
                    tracing::warn!(%endpoint, error = %e, spans = n, "tracing: export failed; the spans are dropped");
                }
                failures_logged = failures_logged.wrapping_add(1);
            }
        }
        batch = Vec::with_capacity(BATCH_SPANS);
    }
}

/// The SDK's form of a finished span, with the OpenTelemetry HTTP attributes and the
/// mesh's own (`weft.*`).
fn span_data(f: &Finished, scope: &InstrumentationScope) -> SpanData {
    let s = &f.started;
    let peer = &*f.peer.counted;
    let kind = match s.kind {
        Kind::Client => SpanKind::Client,
        Kind::Server => SpanKind::Server,
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", s.method.as_str().to_owned()),
        KeyValue::new("url.path", s.path.to_string()),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("server.address", host(&s.authority)),
        KeyValue::new("network.protocol.name", "http"),
        KeyValue::new("network.protocol.version", version(s.version)),
        KeyValue::new("http.response.status_code", i64::from(f.status)),
        KeyValue::new(
            "http.request.body.size",
            i64::try_from(f.request_bytes).unwrap_or(i64::MAX),
        ),
        KeyValue::new(
            "http.response.body.size",
            i64::try_from(f.response_bytes).unwrap_or(i64::MAX),
        ),
        KeyValue::new(
            "weft.direction",
            match s.kind {
                Kind::Client => "outbound",
                Kind::Server => "inbound",
            },
        ),
        KeyValue::new(
            "weft.connection_security",
            security(peer.connection_security),
        ),
    ];
    for (key, value) in [
        ("weft.source.workload", &peer.source_workload),
        ("weft.source.namespace", &peer.source_namespace),
        ("weft.source.identity", &peer.source_identity),
        ("weft.destination.service", &peer.destination_service),
        ("weft.destination.workload", &peer.destination_workload),
        ("weft.destination.namespace", &peer.destination_namespace),
        ("weft.destination.identity", &peer.destination_identity),
    ] {
        if !value.0.is_empty() {
            attributes.push(KeyValue::new(key, value.0.to_string()));
        }
    }
    if let Some(route) = &f.route {
        attributes.push(KeyValue::new("weft.route", route.route.0.to_string()));
        attributes.push(KeyValue::new(
            "weft.route_rule",
            i64::from(route.route_rule),
        ));
    }
    if let Some(code) = f.grpc {
        attributes.push(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
    }
    // HTTP semantic conventions: a client span fails on 4xx and 5xx, a server span on
    // 5xx only (a 4xx is the caller's error, not the server's).
    let failed = match s.kind {
        Kind::Client => f.status >= 400,
        Kind::Server => f.status >= 500,
    };
    let target = match s.kind {
        Kind::Client if !peer.destination_service.0.is_empty() => &peer.destination_service.0,
        _ => &peer.destination_workload.0,
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(s.trace_id),
            SpanId::from_bytes(s.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: s.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: s.parent.is_some(),
        span_kind: kind,
        name: Cow::Owned(format!("{} {target}", s.method)),
        start_time: s.start,
        end_time: f.end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if failed {
            Status::error(format!("HTTP {}", f.status))
        } else {
            Status::Unset
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The host of an authority (`name:port` → `name`).
fn host(authority: &str) -> String {
    authority
        .parse::<http::uri::Authority>()
        .map_or_else(|_| authority.to_owned(), |a| a.host().to_owned())
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn security(s: super::super::Security) -> &'static str {
    match s {
        super::super::Security::MutualTls => "mutual_tls",
        super::super::Security::None => "none",
        super::super::Security::Unknown => "unknown",
    }
}
