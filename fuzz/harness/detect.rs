// Target `detect`: protocol detection from a connection's first bytes, and the TLS
// ClientHello reader behind it (weft_proxy::transport::detect). Included by
// fuzz_targets/detect.rs and crates/weft-proxy/tests/fuzz_corpus.rs.

use std::time::Duration;

use weft_proxy::transport::detect::{self, Plan, Sniff};

/// Classifies `data` as one buffer, then as a connection that sends `data` and closes,
/// on a port of any protocol and on one declared `http`: `detect` reads it in chunks,
/// classifies after each read and decides at EOF.
pub(crate) fn run(data: &[u8]) {
    let _ = detect::classify(data);
    for http_only in [false, true] {
        let sniff = Sniff {
            first_byte: Duration::from_secs(5),
            rest: Duration::from_secs(5),
            http_only,
        };
        let mut io = data;
        let outcome = detect_runtime()
            .block_on(detect::detect(&mut io, Plan::Sniff(sniff)))
            .expect("reading a byte slice cannot fail");
        if let Some(outcome) = outcome {
            // What was consumed is replayed to the app: it must be the bytes read.
            assert!(
                data.starts_with(&outcome.prefix),
                "the detection prefix is not what the client sent"
            );
        } else {
            assert!(data.is_empty(), "EOF reported on {} bytes", data.len());
        }
    }
}

/// One current-thread runtime per process: `detect` needs a timer.
fn detect_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime")
    })
}
