//! Where a proxy's requests are recorded beyond its counters, as its config's
//! `telemetry` says: the tracer and whether request metrics are kept. Built with each
//! snapshot; a tracer whose config did not change is carried over, so a reload
//! neither loses queued spans nor reconnects to the collector.

use std::sync::Arc;

use super::trace::Tracer;
use super::Metrics;

/// The telemetry of one snapshot.
#[derive(Debug)]
pub struct Sinks {
    /// Spans, when tracing is configured.
    pub tracer: Option<Arc<Tracer>>,
    /// Whether request metrics are counted.
    pub metrics: bool,
}

impl Default for Sinks {
    /// Request metrics, no spans.
    fn default() -> Self {
        Self {
            tracer: None,
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
        Ok(Self {
            tracer,
            metrics: config.metrics.enabled,
        })
    }
}
