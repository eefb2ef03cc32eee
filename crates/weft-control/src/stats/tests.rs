#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

const BOUNDS: [f64; 3] = [1.0, 10.0, 100.0];

fn series(
    inbound: bool,
    source: &str,
    destination: &str,
    requests: u64,
    failed: u64,
) -> pb::Series {
    pb::Series {
        inbound,
        source_workload: if inbound {
            String::new()
        } else {
            source.into()
        },
        source_namespace: "shop".into(),
        source_identity: format!("spiffe://cluster.local/ns/shop/sa/{source}"),
        destination_service: if inbound {
            String::new()
        } else {
            "api.shop".into()
        },
        destination_workload: destination.into(),
        destination_namespace: "shop".into(),
        destination_identity: format!("spiffe://cluster.local/ns/shop/sa/{destination}"),
        security: "mutual_tls".into(),
        requests,
        successes: requests - failed,
        // All in the second bucket, (1, 10] ms.
        latency: vec![0, requests, 0, 0],
        latency_bounds_ms: BOUNDS.to_vec(),
        ..Default::default()
    }
}

fn window(series: Vec<pb::Series>) -> pb::Window {
    pb::Window {
        seconds: 5,
        series,
        dropped_series: 0,
    }
}

/// Each request is seen by both proxies; every grouping counts it once, from one side.
#[test]
fn each_grouping_counts_a_request_once_from_one_side() {
    let stats = Stats::default();
    let web = ("shop".to_owned(), "web-1".to_owned());
    let api = ("shop".to_owned(), "api-1".to_owned());
    let (web_session, _web_rx) = stats.connect(web.clone());
    let (api_session, _api_rx) = stats.connect(api.clone());
    // web called api 10 times (2 failed), over two windows; api saw the same.
    for (n, failed) in [(6, 0), (4, 2)] {
        stats.window(
            &web,
            web_session,
            window(vec![series(false, "web-1", "api-1", n, failed)]),
        );
        stats.window(
            &api,
            api_session,
            window(vec![series(true, "web", "api-1", n, failed)]),
        );
    }
    let answer = stats.query(By::Service, Duration::from_secs(60), None);
    assert_eq!(answer.rows.len(), 1, "{answer:#?}");
    let row = &answer.rows[0];
    assert_eq!(row.destination.service, "api.shop");
    assert_eq!((row.requests, row.successes), (10, 8));
    assert_eq!(row.success_rate, Some(0.8));
    assert!((row.rps - 10.0 / 60.0).abs() < 1e-9);
    let latency = row.latency_ms.as_ref().unwrap();
    assert!(latency.p50 > 1.0 && latency.p99 <= 10.0, "{latency:?}");

    let workloads = stats.query(By::Workload, Duration::from_secs(60), None);
    assert_eq!(workloads.rows.len(), 1);
    assert_eq!(workloads.rows[0].destination.workload, "api-1");
    assert_eq!(workloads.rows[0].requests, 10);

    let edges = stats.query(By::Edge, Duration::from_secs(60), None);
    assert_eq!(edges.rows.len(), 1, "{edges:#?}");
    let edge = &edges.rows[0];
    assert_eq!(edge.source.as_ref().unwrap().workload, "web-1");
    assert_eq!(edge.destination.workload, "api-1");
    assert_eq!(edge.security.as_deref(), Some("mutual_tls"));
    assert_eq!(edge.requests, 10);

    assert!(stats
        .query(By::Service, Duration::from_secs(60), Some("other"))
        .rows
        .is_empty());
    stats.disconnect(&web, web_session);
    assert!(
        stats
            .query(By::Service, Duration::from_secs(60), None)
            .rows
            .is_empty(),
        "a proxy that left takes its windows with it"
    );
}

/// A stream that was replaced cannot report into its successor, nor end it.
#[test]
fn a_replaced_session_neither_reports_nor_disconnects_its_successor() {
    let stats = Stats::default();
    let key = ("shop".to_owned(), "web-1".to_owned());
    let (old, _rx1) = stats.connect(key.clone());
    let (new, _rx2) = stats.connect(key.clone());
    stats.window(
        &key,
        old,
        window(vec![series(false, "web-1", "api-1", 5, 0)]),
    );
    assert!(stats
        .query(By::Service, Duration::from_secs(60), None)
        .rows
        .is_empty());
    stats.disconnect(&key, old);
    stats.window(
        &key,
        new,
        window(vec![series(false, "web-1", "api-1", 5, 0)]),
    );
    assert_eq!(
        stats.query(By::Service, Duration::from_secs(60), None).rows[0].requests,
        5
    );
}

/// Quantiles interpolate inside their bucket, as Prometheus's `histogram_quantile`.
#[test]
fn quantiles_interpolate_within_buckets() {
    let mut sum = Sum::default();
    let mut s = series(false, "a", "b", 100, 0);
    s.latency = vec![50, 40, 10, 0];
    sum.add(&s);
    assert_eq!(sum.quantile(0.5), Some(1.0));
    assert!((sum.quantile(0.7).unwrap() - 5.5).abs() < 1e-9);
    assert!((sum.quantile(0.95).unwrap() - 55.0).abs() < 1e-9);
    s.latency = vec![0, 0, 0, 100];
    let mut slow = Sum::default();
    slow.add(&s);
    assert_eq!(
        slow.quantile(0.99),
        Some(100.0),
        "the open bucket answers its lower bound"
    );
    assert_eq!(Sum::default().quantile(0.5), None);
}

/// A tap starts on its proxies, including one that connects later, passes only the
/// events of the proxies it names, and stops on them when dropped.
#[test]
fn a_tap_reaches_its_proxies_and_only_their_events_reach_it() {
    let stats = Stats::default();
    let web = ("shop".to_owned(), "web-1".to_owned());
    let other = ("shop".to_owned(), "other".to_owned());
    let (_s, mut web_rx) = stats.connect(web.clone());
    let (id, mut events) = stats.start_tap(
        pb::TapStart::default(),
        vec![web.clone(), ("shop".into(), "late".into())],
    );
    assert!(matches!(
        web_rx.try_recv().unwrap().request,
        Some(pb::control_request::Request::TapStart(pb::TapStart { id: got, .. })) if got == id
    ));
    let (_s, mut late_rx) = stats.connect(("shop".into(), "late".into()));
    assert!(
        late_rx.try_recv().is_ok(),
        "a proxy connecting later starts the tap too"
    );
    stats.tap_event(
        &web,
        pb::TapEvent {
            tap_id: id,
            path: "/a".into(),
            ..Default::default()
        },
    );
    stats.tap_event(
        &other,
        pb::TapEvent {
            tap_id: id,
            path: "/b".into(),
            ..Default::default()
        },
    );
    assert_eq!(events.try_recv().unwrap().path, "/a");
    assert!(
        events.try_recv().is_err(),
        "not from a proxy the tap does not name"
    );
    stats.stop_tap(id);
    assert!(matches!(
        web_rx.try_recv().unwrap().request,
        Some(pb::control_request::Request::TapStop(_))
    ));
}
