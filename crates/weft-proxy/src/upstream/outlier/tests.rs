use super::*;
use std::sync::Arc;

const S: Duration = Duration::from_secs(1);

fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
    (0..n).map(|_| Arc::default()).collect()
}

/// A detector with `config`, its endpoints, and a start time after both exist.
fn setup(config: Config, n: usize) -> (Detector, Vec<Arc<Endpoint>>, Instant) {
    let eps = endpoints(n);
    let t0 = Instant::now();
    (Detector::new(config, t0), eps, t0)
}

fn fail(
    d: &Detector,
    eps: &[Arc<Endpoint>],
    i: usize,
    times: usize,
    now: Instant,
) -> Vec<Ejection> {
    (0..times)
        .flat_map(|_| d.record(eps, i, Outcome::Status(503), now))
        .collect()
}

#[test]
fn five_consecutive_5xx_eject_for_the_base_time() {
    let (d, eps, t0) = setup(Config::default(), 10);
    assert!(fail(&d, &eps, 0, 4, t0).is_empty());
    let ejected = fail(&d, &eps, 0, 1, t0);
    assert_eq!(
        ejected,
        vec![Ejection {
            index: 0,
            duration: 30 * S,
            reason: Reason::Consecutive5xx
        }]
    );
    assert!(eps[0].is_ejected(t0));
    assert!(eps[0].is_ejected(t0 + 29 * S));
    assert!(!eps[0].is_ejected(t0 + 30 * S), "usable again at once");
    assert_eq!(ejected_count(&eps, t0 + S), 1);
    assert_eq!(ejected_count(&eps, t0 + 30 * S), 0);
}

#[test]
fn four_5xx_then_a_success_do_not_eject() {
    let (d, eps, t0) = setup(Config::default(), 10);
    fail(&d, &eps, 0, 4, t0);
    assert!(d.record(&eps, 0, Outcome::Success, t0).is_empty());
    assert!(fail(&d, &eps, 0, 4, t0).is_empty());
    assert!(
        d.record(&eps, 0, Outcome::Status(404), t0).is_empty(),
        "a 4xx is a success here"
    );
    assert!(fail(&d, &eps, 0, 4, t0).is_empty());
    assert!(!eps[0].is_ejected(t0));
}

#[test]
fn the_second_ejection_lasts_twice_as_long() {
    let (d, eps, t0) = setup(Config::default(), 10);
    fail(&d, &eps, 0, 5, t0);
    let back = t0 + 30 * S;
    let second = fail(&d, &eps, 0, 5, back);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].duration, 60 * S);
    assert_eq!(eps[0].times_ejected(), 2);
    assert!(eps[0].is_ejected(back + 59 * S));
    assert!(!eps[0].is_ejected(back + 60 * S));
}

#[test]
fn the_multiplier_decays_one_step_per_interval_back_in_service() {
    let (d, eps, t0) = setup(Config::default(), 10);
    fail(&d, &eps, 0, 5, t0);
    fail(&d, &eps, 0, 5, t0 + 30 * S);
    // Out until t0 + 90s. Traffic on another endpoint drives the sweeps.
    let back = t0 + 90 * S;
    for tick in 1..=9 {
        d.record(&eps, 1, Outcome::Success, t0 + tick * 10 * S);
    }
    assert_eq!(eps[0].times_ejected(), 2, "no decay while ejected");
    d.record(&eps, 1, Outcome::Success, back + 10 * S);
    assert_eq!(eps[0].times_ejected(), 1, "one interval back");
    // A sweep that runs late still counts every whole interval.
    d.record(&eps, 1, Outcome::Success, back + 35 * S);
    assert_eq!(eps[0].times_ejected(), 0);
    let next = fail(&d, &eps, 0, 5, back + 36 * S);
    assert_eq!(next[0].duration, 30 * S, "back to the base time");
}

#[test]
fn ejection_time_is_capped_at_the_maximum() {
    let config = Config {
        max_ejection_time: 70 * S,
        ..Config::default()
    };
    let (d, eps, t0) = setup(config, 10);
    let mut now = t0;
    let mut durations = Vec::new();
    for _ in 0..5 {
        let e = fail(&d, &eps, 0, 5, now);
        durations.push(e[0].duration);
        now += e[0].duration;
    }
    assert_eq!(durations, vec![30 * S, 60 * S, 70 * S, 70 * S, 70 * S]);
    assert_eq!(eps[0].times_ejected(), 3, "the multiplier stops at the cap");
}

#[test]
fn gateway_errors_count_only_when_configured() {
    let off = Config {
        consecutive_5xx: None,
        ..Config::default()
    };
    let (d, eps, t0) = setup(off, 10);
    assert!(fail(&d, &eps, 0, 20, t0).is_empty());

    let on = Config {
        consecutive_5xx: None,
        consecutive_gateway_errors: Some(3),
        ..Config::default()
    };
    let (d, eps, t0) = setup(on, 10);
    let e = fail(&d, &eps, 0, 3, t0);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason, Reason::ConsecutiveGatewayErrors);
    assert_eq!(e[0].reason.as_str(), "consecutive_gateway_errors");
}

#[test]
fn a_500_counts_toward_5xx_but_not_gateway_errors() {
    let config = Config {
        consecutive_5xx: Some(3),
        consecutive_gateway_errors: Some(3),
        ..Config::default()
    };
    let (d, eps, t0) = setup(config, 10);
    d.record(&eps, 0, Outcome::Status(502), t0);
    d.record(&eps, 0, Outcome::Status(504), t0);
    // A 500 extends the 5xx run and ends the gateway run.
    let e = d.record(&eps, 0, Outcome::Status(500), t0);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason, Reason::Consecutive5xx);

    let gateway_only = Config {
        consecutive_5xx: None,
        consecutive_gateway_errors: Some(3),
        ..Config::default()
    };
    let (d, eps, t0) = setup(gateway_only, 10);
    for _ in 0..10 {
        assert!(d.record(&eps, 0, Outcome::Status(500), t0).is_empty());
    }
}

#[test]
fn a_local_failure_counts_toward_both() {
    let five_xx = Config {
        consecutive_5xx: Some(2),
        ..Config::default()
    };
    let (d, eps, t0) = setup(five_xx, 10);
    d.record(&eps, 0, Outcome::LocalFailure, t0);
    let e = d.record(&eps, 0, Outcome::LocalFailure, t0);
    assert_eq!(e[0].reason, Reason::Consecutive5xx);

    let gateway = Config {
        consecutive_5xx: None,
        consecutive_gateway_errors: Some(2),
        ..Config::default()
    };
    let (d, eps, t0) = setup(gateway, 10);
    d.record(&eps, 0, Outcome::LocalFailure, t0);
    let e = d.record(&eps, 0, Outcome::LocalFailure, t0);
    assert_eq!(e[0].reason, Reason::ConsecutiveGatewayErrors);
}

#[test]
fn max_ejection_percent_stops_a_second_ejection_and_leaves_it_usable() {
    let (d, eps, t0) = setup(Config::default(), 10);
    assert_eq!(fail(&d, &eps, 0, 5, t0).len(), 1);
    assert!(fail(&d, &eps, 1, 5, t0).is_empty(), "10% of 10 is one");
    assert!(!eps[1].is_ejected(t0));
    assert_eq!(ejected_count(&eps, t0), 1);
    // Once the first is back, the next run of failures ejects the second.
    assert_eq!(fail(&d, &eps, 1, 5, t0 + 30 * S).len(), 1);
}

#[test]
fn half_of_two_endpoints_allows_one_ejection() {
    let config = Config {
        max_ejection_percent: 50,
        ..Config::default()
    };
    let (d, eps, t0) = setup(config, 2);
    assert_eq!(fail(&d, &eps, 0, 5, t0).len(), 1);
    assert!(fail(&d, &eps, 1, 5, t0).is_empty());
    assert_eq!(ejected_count(&eps, t0), 1);
}

#[test]
fn one_endpoint_may_be_ejected_when_the_share_rounds_to_zero() {
    let (d, eps, t0) = setup(Config::default(), 3);
    assert_eq!(fail(&d, &eps, 0, 5, t0).len(), 1, "10% of 3 rounds to 0");
    assert!(fail(&d, &eps, 1, 5, t0).is_empty());

    let off = Config {
        max_ejection_percent: 0,
        ..Config::default()
    };
    let (d, eps, t0) = setup(off, 3);
    assert!(fail(&d, &eps, 0, 5, t0).is_empty(), "0% turns ejection off");
}

fn success_rate_config() -> Config {
    Config {
        consecutive_5xx: None,
        success_rate: Some(SuccessRate::default()),
        ..Config::default()
    }
}

/// Sends `requests` to endpoint `i`, failing one in `fail_every`.
fn traffic(
    d: &Detector,
    eps: &[Arc<Endpoint>],
    i: usize,
    requests: usize,
    fail_every: usize,
    now: Instant,
) {
    for r in 0..requests {
        let outcome = if r % fail_every == 0 {
            Outcome::Status(500)
        } else {
            Outcome::Success
        };
        assert!(d.record(eps, i, outcome, now).is_empty());
    }
}

#[test]
fn a_success_rate_outlier_is_ejected_at_the_sweep() {
    let (d, eps, t0) = setup(success_rate_config(), 6);
    for i in 0..5 {
        traffic(&d, &eps, i, 100, 100, t0 + S);
    }
    traffic(&d, &eps, 5, 100, 2, t0 + S);
    assert!(!eps[5].is_ejected(t0 + S), "nothing before the sweep");
    let e = d.record(&eps, 0, Outcome::Success, t0 + 10 * S);
    assert_eq!(
        e,
        vec![Ejection {
            index: 5,
            duration: 30 * S,
            reason: Reason::SuccessRate
        }]
    );
    assert!(eps[5].is_ejected(t0 + 10 * S));
    assert_eq!(ejected_count(&eps, t0 + 10 * S), 1);
}

#[test]
fn success_rate_needs_minimum_hosts_with_enough_requests() {
    let (d, eps, t0) = setup(success_rate_config(), 6);
    for i in 0..3 {
        traffic(&d, &eps, i, 100, 100, t0 + S);
    }
    // Below the request volume: not evaluated, so only four qualify.
    traffic(&d, &eps, 3, 50, 100, t0 + S);
    traffic(&d, &eps, 4, 50, 100, t0 + S);
    traffic(&d, &eps, 5, 100, 2, t0 + S);
    assert!(d.record(&eps, 0, Outcome::Success, t0 + 10 * S).is_empty());
    assert_eq!(ejected_count(&eps, t0 + 10 * S), 0);
}

#[test]
fn success_rate_counts_restart_each_interval() {
    let (d, eps, t0) = setup(success_rate_config(), 6);
    for i in 0..5 {
        traffic(&d, &eps, i, 60, 100, t0 + S);
    }
    traffic(&d, &eps, 5, 60, 2, t0 + S);
    d.record(&eps, 0, Outcome::Success, t0 + 10 * S);
    // 60 + 60 requests, but in two intervals: never enough volume in one.
    for i in 0..5 {
        traffic(&d, &eps, i, 60, 100, t0 + 11 * S);
    }
    traffic(&d, &eps, 5, 60, 2, t0 + 11 * S);
    assert!(d.record(&eps, 0, Outcome::Success, t0 + 20 * S).is_empty());
}

#[test]
fn after_returning_from_ejection_the_consecutive_count_restarts_from_zero() {
    let (d, eps, t0) = setup(Config::default(), 10);
    fail(&d, &eps, 0, 5, t0);
    // Stragglers that fail while it is out do not count.
    assert!(fail(&d, &eps, 0, 3, t0 + S).is_empty());
    let back = t0 + 30 * S;
    assert!(fail(&d, &eps, 0, 4, back).is_empty());
    assert!(!eps[0].is_ejected(back));
    assert_eq!(fail(&d, &eps, 0, 1, back).len(), 1);
}

#[test]
fn concurrent_failures_eject_an_endpoint_exactly_once() {
    let (d, eps, t0) = setup(Config::default(), 10);
    let ejections: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| fail(&d, &eps, 0, 200, t0).len()))
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(ejections, 1);
    assert_eq!(eps[0].times_ejected(), 1);
    assert!(eps[0].is_ejected(t0));
}

#[test]
fn an_index_out_of_range_is_ignored() {
    let (d, eps, t0) = setup(Config::default(), 2);
    assert!(fail(&d, &eps, 7, 10, t0).is_empty());
    assert_eq!(ejected_count(&eps, t0), 0);
}
