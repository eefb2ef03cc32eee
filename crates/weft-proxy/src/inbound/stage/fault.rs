//! Stage 3, faults: the first fault (`inbound.faults`, or the mesh's
//! `FaultInjection` objects) that covers a request delays it, aborts it, or both, each
//! with its own share of requests.

use http::{Request, StatusCode};

use crate::error::Error;
use crate::outbound::stage::route::view;
use crate::state::InboundTraffic;
use crate::telemetry::Metrics;

/// Applies the fault covering a request to the app's `port`: waits out its delay, and
/// refuses the request if it aborts it.
pub async fn inject<B>(
    traffic: &InboundTraffic,
    req: &Request<B>,
    port: u16,
    metrics: &Metrics,
) -> Result<(), Error> {
    if traffic.faults.is_empty() {
        return Ok(());
    }
    let authority = crate::outbound::authority(req);
    let view = view(req, authority.as_ref());
    let Some((_, fault)) = traffic.faults.iter().find(|(s, _)| s.covers(port, &view)) else {
        return Ok(());
    };
    let hit = |percent: f64| fastrand::f64() * 100.0 < percent;
    if let Some(delay) = fault.delay.as_ref().filter(|d| hit(d.percent)) {
        metrics.failure("fault_delay");
        tokio::time::sleep(delay.duration).await;
    }
    let Some(abort) = fault.abort.as_ref().filter(|a| hit(a.percent)) else {
        return Ok(());
    };
    Err(Error::Fault {
        status: StatusCode::from_u16(abort.http_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        grpc_status: abort.grpc_status,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::inbound::stage::test_config::snapshot;

    /// Faults, port and path → the delay waited and the status of the abort (if any).
    #[tokio::test(start_paused = true)]
    async fn delays_and_aborts_what_the_first_covering_fault_says() {
        let faults = ", faults: [
            { matches: [{ path: { prefix: /slow } }], delay: { percent: 100, duration: 2s } },
            { ports: [8080], abort: { percent: 100, httpStatus: 418 } },
            { abort: { percent: 0, httpStatus: 500 } }]";
        #[rustfmt::skip]
        let cases: Vec<(&str, u16, &str, u64, Option<u16>)> = vec![
            ("", 8080, "/", 0, None),
            (faults, 9090, "/slow/x", 2, None),
            (faults, 8080, "/", 0, Some(418)),
            (faults, 9090, "/", 0, None),
        ];
        for (config, port, path, delay, abort) in cases {
            let snap = snapshot(config);
            let metrics = Metrics::new();
            let req = Request::get(path).body(()).expect("request");
            let clock = tokio::time::Instant::now();
            let got = inject(snap.inbound_traffic(), &req, port, &metrics).await;
            assert_eq!(
                clock.elapsed(),
                Duration::from_secs(delay),
                "{port} {path}: delay"
            );
            assert_eq!(
                got.err().map(|e| e.status().as_u16()),
                abort,
                "{port} {path}: abort"
            );
        }
    }
}
