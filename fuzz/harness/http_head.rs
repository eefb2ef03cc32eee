// Target `http_head`: request heads as the proxy's HTTP servers judge them. The bytes
// are a connection's opening: detection classifies them (weft_proxy::transport::detect)
// and judges the request line (weft_proxy::http::strict::request_line); what it calls
// HTTP/1 or HTTP/2 is served by the proxy's own server (weft_proxy::http::server::serve:
// hyper's parser with Weft's limits, then strict::check and strict::normalize) with a
// handler that checks what reaches it. Included by fuzz_targets/http_head.rs and
// crates/weft-proxy/tests/fuzz_corpus.rs.

use std::time::Duration;

use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_api::proxy::Settings;
use weft_proxy::http::{forward, server, strict};
use weft_proxy::telemetry::Metrics;
use weft_proxy::transport::detect::{self, Detected};
use weft_proxy::drain::Drain;

/// Classifies `data`, then serves it as one client connection that sends it and closes.
pub(crate) fn run(data: &[u8]) {
    let _ = strict::request_line(data);
    let http2 = match detect::classify(data) {
        Some(Detected::Http1) => false,
        Some(Detected::Http2) => true,
        // Refused during detection, copied as opaque TCP, or undecided: no HTTP server
        // sees these bytes.
        _ => return,
    };
    // The client stays connected (the server does not take half-closed connections),
    // so the serving ends at the server's header timeout or at this bound, on the
    // runtime's paused clock: at once, in real time.
    head_runtime().block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(600), serve_once(data, http2)).await;
    });
}

async fn serve_once(data: &[u8], http2: bool) {
    let settings = Settings::default();
    let drain = Drain::new();
    let metrics = Metrics::new();
    let conn = server::Connection {
        http2,
        settings: &settings,
        drain: &drain,
        metrics: &metrics,
        routed_by: Some(HeaderValue::from_static("api.default:80")),
    };
    // The handler sees heads that passed the checks and were normalised: the one
    // reading must still pass them.
    let handle = |req: http::Request<_>| async move {
        if let Err(refusal) = strict::check(&req) {
            panic!(
                "a normalised head fails the checks ({}): {req:?}",
                refusal.reason
            );
        }
        forward::local(StatusCode::OK, "ok")
    };
    let (mut client, io) = tokio::io::duplex(1 << 20);
    let client_side = async move {
        let _ = client.write_all(data).await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
    };
    tokio::join!(server::serve(io, conn, handle), client_side);
}

/// One current-thread runtime per process, its clock paused (it jumps to the next timer
/// whenever every task waits): hyper needs a timer and an executor.
fn head_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("tokio runtime")
    })
}
