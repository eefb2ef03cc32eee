//! Where a proxy's requests are recorded beyond its counters, as its config's
//! `telemetry` says: the tracer and whether request metrics are kept. Built with each
//! snapshot; a tracer whose config did not change is carried over, so a reload
//! neither loses queued spans nor reconnects to the collector.

use std::sync::Arc;

use super::access_log::{self, AccessLog, Destination, Format, Template};
use super::trace::Tracer;
use super::Metrics;

/// The telemetry of one snapshot.
#[derive(Debug)]
pub struct Sinks {
    /// Spans, when tracing is configured.
    pub tracer: Option<Arc<Tracer>>,
    /// The access log, when configured, with the settings it was opened with.
    access_log: Option<(weft_api::proxy::AccessLog, AccessLog)>,
    /// Whether request metrics are counted.
    pub metrics: bool,
}

impl Default for Sinks {
    /// Request metrics, no spans.
    fn default() -> Self {
        Self {
            tracer: None,
            access_log: None,
            metrics: true,
        }
    }
}

impl Sinks {
    /// The sinks of `config` for the workload `(name, namespace)` with `identity`,
    /// reusing what `previous` had for the same settings.
    pub fn build(
        config: &weft_api::proxy::Telemetry,
        previous: Option<&Self>,
        metrics: &Metrics,
        workload: (&str, &str),
        identity: Option<&str>,
    ) -> Result<Self, String> {
        let tracer = match &config.tracing {
            None => None,
            Some(tracing) => match previous.and_then(|p| p.tracer.as_ref()) {
                Some(t) if t.is_for(tracing) => Some(t.clone()),
                _ => Some(Tracer::start(tracing, &metrics.spans, workload, identity)?),
            },
        };
        let access_log = match &config.access_log {
            None => None,
            Some(settings) => match previous.and_then(|p| p.access_log.as_ref()) {
                Some((open, log)) if open == settings => Some((open.clone(), log.clone())),
                _ => Some((settings.clone(), open_log(settings, metrics)?)),
            },
        };
        Ok(Self {
            tracer,
            access_log,
            metrics: config.metrics.enabled,
        })
    }

    /// The access log, when configured.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref().map(|(_, log)| log)
    }
}

/// Opens the access log `settings` describe (the file now, so a path that cannot be
/// written refuses the config, naming it).
fn open_log(settings: &weft_api::proxy::AccessLog, metrics: &Metrics) -> Result<AccessLog, String> {
    let format = match settings.format {
        weft_api::proxy::AccessLogFormat::Json => Format::Json,
        weft_api::proxy::AccessLogFormat::Text => Format::Text(
            Template::parse(
                settings
                    .template
                    .as_deref()
                    .unwrap_or(access_log::DEFAULT_TEXT_TEMPLATE),
            )
            .map_err(|e| format!("accessLog.template: {e}"))?,
        ),
    };
    let destination = match &settings.path {
        None => Destination::Stdout,
        Some(path) => Destination::File {
            path: path.clone(),
            max_bytes: settings.max_bytes,
            max_files: settings.max_files,
        },
    };
    AccessLog::open(destination, format, metrics.access_log_dropped.clone())
        .map_err(|e| format!("accessLog: {e}"))
}
