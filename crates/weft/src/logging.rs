//! Log setup: `tracing` to stderr, text or JSON, with a filter that the admin API can
//! change at run time.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};
use weft_proxy::admin::LogControl;

/// Output format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

struct Control {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogControl for Control {
    fn get(&self) -> String {
        self.handle
            .with_current(ToString::to_string)
            .unwrap_or_default()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        let next = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        self.handle.reload(next).map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub(crate) fn init(level: &str, format: Format) -> anyhow::Result<Box<dyn LogControl>> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(f)?,
        _ => EnvFilter::try_new(level)?,
    };
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        Format::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(Box::new(Control { handle }))
}
