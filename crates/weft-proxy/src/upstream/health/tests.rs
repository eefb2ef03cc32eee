//! Tests of the health checker: the state machine, each kind of check against loopback
//! servers, and the checker task.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, TE, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::http::pool::{DialFuture, Io};

/// Generous deadline for conditions tests wait on, so a bug fails instead of hangs.
const WAIT: Duration = Duration::from_secs(10);

fn check(kind: Kind) -> Check {
    Check {
        kind,
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        ..Check::default()
    }
}

fn tcp_dialer(addr: SocketAddr) -> Dialer {
    Arc::new(move || -> DialFuture {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    })
}

/// A loopback port that refuses connections: bound, so no other test takes it, but
/// not listening.
fn refusing_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

/// Serves one HTTP/1 connection, answering `status` and reporting each request head.
async fn serve_http1(stream: TcpStream, status: u16, seen: mpsc::UnboundedSender<Parts>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let _ = seen.send(request.into_parts().0);
        let mut response = Response::new(Full::new(Bytes::from_static(b"body")));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A loopback HTTP/1 server answering every request with `status`.
async fn http_server(status: u16) -> (SocketAddr, mpsc::UnboundedReceiver<Parts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_http1(stream, status, seen.clone()));
        }
    });
    (addr, requests)
}

/// What the test gRPC server answers.
#[derive(Clone, Copy)]
enum Answer {
    /// A `HealthCheckResponse` with this status, then `grpc-status: 0`.
    Status(i32),
    /// A trailers-only response with this `grpc-status`.
    TrailersOnly(u32),
}

fn grpc_answer(answer: Answer) -> Response<BoxBody<Bytes, Infallible>> {
    let response = Response::builder().header(CONTENT_TYPE, "application/grpc");
    match answer {
        Answer::Status(status) => {
            let message = grpc::HealthCheckResponse { status }.encode_to_vec();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let body = Full::new(grpc::frame(&message).unwrap())
                .with_trailers(std::future::ready(Some(Ok(trailers))));
            response.body(body.boxed()).unwrap()
        }
        Answer::TrailersOnly(code) => response
            .header("grpc-status", code.to_string())
            .header("grpc-message", "unknown%20service")
            .body(Empty::new().boxed())
            .unwrap(),
    }
}

/// A loopback h2c server answering every call with `answer`, reporting each request
/// head and body.
async fn grpc_server(answer: Answer) -> (SocketAddr, mpsc::UnboundedReceiver<(Parts, Bytes)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let seen = seen.clone();
                async move {
                    let (head, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    let _ = seen.send((head, body));
                    Ok::<_, Infallible>(grpc_answer(answer))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, requests)
}

// --- State ---

#[test]
fn defaults_match_the_documentation() {
    let check = Check::default();
    assert_eq!(check.kind, Kind::Tcp);
    assert_eq!(check.interval, Duration::from_secs(10));
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!((check.unhealthy_threshold, check.healthy_threshold), (3, 2));
    assert_eq!(
        Kind::http("/", "svc"),
        Kind::Http {
            path: "/".into(),
            host: "svc".into(),
            expected: vec![200..=399]
        }
    );
}

#[test]
fn new_endpoint_starts_unhealthy() {
    assert!(!State::new().is_healthy());
}

#[test]
fn new_endpoint_becomes_healthy_on_first_pass() {
    let state = State::new();
    let check = Check::default();
    assert_eq!(state.observe(&check, false), None);
    assert_eq!(state.observe(&check, false), None);
    assert!(!state.is_healthy());
    assert_eq!(state.observe(&check, true), Some(true));
    assert!(state.is_healthy());
}

#[test]
fn healthy_endpoint_turns_unhealthy_on_third_consecutive_failure() {
    let state = State::new();
    let check = Check::default();
    state.observe(&check, true);
    assert_eq!(state.observe(&check, false), None);
    assert_eq!(state.observe(&check, false), None);
    assert!(state.is_healthy());
    assert_eq!(state.observe(&check, false), Some(false));
    assert!(!state.is_healthy());
}

#[test]
fn a_pass_resets_the_failure_count() {
    let state = State::new();
    let check = Check::default();
    for passed in [true, false, false, true, false, false] {
        state.observe(&check, passed);
    }
    assert!(state.is_healthy());
}

#[test]
fn unhealthy_endpoint_needs_two_consecutive_passes_to_return() {
    let state = State::new();
    let check = Check::default();
    for passed in [true, false, false, false] {
        state.observe(&check, passed);
    }
    assert_eq!(state.observe(&check, true), None);
    assert_eq!(state.observe(&check, false), None);
    assert_eq!(state.observe(&check, true), None);
    assert!(!state.is_healthy());
    assert_eq!(state.observe(&check, true), Some(true));
    assert!(state.is_healthy());
}

#[test]
fn zero_thresholds_count_as_one() {
    let state = State::new();
    let check = Check {
        unhealthy_threshold: 0,
        healthy_threshold: 0,
        ..Check::default()
    };
    assert_eq!(state.observe(&check, true), Some(true));
    assert_eq!(state.observe(&check, false), Some(false));
    assert_eq!(state.observe(&check, true), Some(true));
}

// --- Tcp ---

#[tokio::test]
async fn tcp_check_passes_on_listening_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dialer = tcp_dialer(listener.local_addr().unwrap());
    probe(&check(Kind::Tcp), &dialer).await.unwrap();
}

#[tokio::test]
async fn tcp_check_fails_on_closed_port() {
    let (_socket, addr) = refusing_port();
    let result = probe(&check(Kind::Tcp), &tcp_dialer(addr)).await;
    assert!(matches!(result, Err(Failure::Dial(_))), "{result:?}");
}

// --- Http ---

#[tokio::test]
async fn http_check_passes_on_200() {
    let (addr, _requests) = http_server(200).await;
    probe(&check(Kind::http("/healthz", "svc")), &tcp_dialer(addr))
        .await
        .unwrap();
}

#[tokio::test]
async fn http_check_fails_on_503() {
    let (addr, _requests) = http_server(503).await;
    let result = probe(&check(Kind::http("/healthz", "svc")), &tcp_dialer(addr)).await;
    assert!(
        matches!(
            result,
            Err(Failure::Status(StatusCode::SERVICE_UNAVAILABLE))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn http_check_honours_expected_ranges() {
    let cases: [(u16, Vec<RangeInclusive<u16>>, bool); 5] = [
        (204, vec![204..=204], true),
        (200, vec![204..=204, 300..=302], false),
        (301, vec![204..=204, 300..=302], true),
        (418, vec![400..=499], true),
        (404, vec![], false),
    ];
    for (status, expected, passes) in cases {
        let (addr, _requests) = http_server(status).await;
        let kind = Kind::Http {
            path: "/".into(),
            host: "svc".into(),
            expected: expected.clone(),
        };
        let result = probe(&check(kind), &tcp_dialer(addr)).await;
        assert_eq!(
            result.is_ok(),
            passes,
            "{status} against {expected:?}: {result:?}"
        );
    }
}

#[tokio::test]
async fn http_check_sends_path_host_and_identifying_headers() {
    let (addr, mut requests) = http_server(200).await;
    let kind = Kind::http("/ready?deep=1", "reviews.default.svc");
    probe(&check(kind), &tcp_dialer(addr)).await.unwrap();
    let request = requests.recv().await.unwrap();
    assert_eq!(request.method, Method::GET);
    assert_eq!(request.uri.path_and_query().unwrap(), "/ready?deep=1");
    assert_eq!(request.version, Version::HTTP_11);
    assert_eq!(request.headers[HOST], "reviews.default.svc");
    assert_eq!(request.headers[USER_AGENT], "weft-health-check");
    assert_eq!(request.headers[CONNECTION], "close");
}

#[tokio::test]
async fn http_check_fails_within_timeout_when_server_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (read, mut got_request) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        let _ = read.send(());
        // Hold the connection open without answering.
        std::future::pending::<()>().await;
    });
    let check = Check {
        timeout: Duration::from_millis(200),
        ..check(Kind::http("/", "svc"))
    };
    let started = std::time::Instant::now();
    let result = probe(&check, &tcp_dialer(addr)).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(Failure::Timeout(t)) if t == check.timeout),
        "{result:?}"
    );
    assert!(
        took >= check.timeout && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(got_request.try_recv().is_ok(), "the request was not sent");
}

#[tokio::test]
async fn invalid_check_fails_without_dialing() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let dialer: Dialer = {
        let attempts = attempts.clone();
        Arc::new(move || -> DialFuture {
            attempts.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Err::<Box<dyn Io>, DialError>("unreachable".into()) })
        })
    };
    for kind in [
        Kind::http("healthz", "svc"),
        Kind::http("/", "bad\nhost"),
        Kind::grpc("", "not an authority"),
    ] {
        let result = probe(&check(kind), &dialer).await;
        assert!(
            matches!(result, Err(Failure::InvalidRequest(_))),
            "{result:?}"
        );
    }
    assert_eq!(attempts.load(Ordering::Relaxed), 0);
}

// --- Grpc ---

#[tokio::test]
async fn grpc_check_passes_when_serving() {
    let (addr, _requests) = grpc_server(Answer::Status(1)).await;
    probe(&check(Kind::grpc("", "")), &tcp_dialer(addr))
        .await
        .unwrap();
}

#[tokio::test]
async fn grpc_check_fails_when_not_serving() {
    let (addr, _requests) = grpc_server(Answer::Status(2)).await;
    let result = probe(&check(Kind::grpc("reviews", "")), &tcp_dialer(addr)).await;
    assert!(matches!(result, Err(Failure::NotServing(2))), "{result:?}");
}

#[tokio::test]
async fn grpc_check_fails_on_grpc_status_unimplemented() {
    let (addr, _requests) = grpc_server(Answer::TrailersOnly(12)).await;
    let result = probe(&check(Kind::grpc("", "")), &tcp_dialer(addr)).await;
    let Err(Failure::GrpcStatus { code, message }) = &result else {
        panic!("{result:?}");
    };
    assert_eq!((*code, message.as_str()), (12, "unknown%20service"));
    assert!(result.unwrap_err().to_string().contains("UNIMPLEMENTED"));
}

#[tokio::test]
async fn grpc_check_sends_service_name_and_grpc_headers() {
    let (addr, mut requests) = grpc_server(Answer::Status(1)).await;
    let kind = Kind::grpc("reviews.v1.Reviews", "reviews.default.svc:9090");
    probe(&check(kind), &tcp_dialer(addr)).await.unwrap();
    let (head, body) = requests.recv().await.unwrap();
    assert_eq!(head.method, Method::POST);
    assert_eq!(head.uri.path(), "/grpc.health.v1.Health/Check");
    assert_eq!(head.uri.authority().unwrap(), "reviews.default.svc:9090");
    assert_eq!(head.headers[CONTENT_TYPE], "application/grpc");
    assert_eq!(head.headers[TE], "trailers");
    let mut frame = vec![0, 0, 0, 0, 20, 0x0a, 18];
    frame.extend_from_slice(b"reviews.v1.Reviews");
    assert_eq!(body.as_ref(), frame.as_slice());
}

// --- spawn ---

#[tokio::test]
async fn endpoint_turns_unhealthy_after_threshold_failures_when_server_goes_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, _requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        serve_http1(first, 200, seen.clone()).await;
        let (second, _) = listener.accept().await.unwrap();
        // Down before the second answer, so every later check is refused.
        drop(listener);
        serve_http1(second, 200, seen).await;
    });
    let state = Arc::new(State::new());
    // Before each check, record what load balancing would see.
    let history = Arc::new(Mutex::new(Vec::new()));
    let dialer: Dialer = {
        let (history, state, inner) = (history.clone(), state.clone(), tcp_dialer(addr));
        Arc::new(move || {
            history.lock().unwrap().push(state.is_healthy());
            inner()
        })
    };
    let _handle = spawn(
        check(Kind::http("/", "svc")),
        dialer,
        state.clone(),
        "test".into(),
    );
    until("six checks", || history.lock().unwrap().len() >= 6).await;
    let history = history.lock().unwrap()[..6].to_vec();
    // pass, pass, then three failures: unhealthy from the third on.
    assert_eq!(history, [false, true, true, true, true, false]);
    assert!(!state.is_healthy());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_checks() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            while listener.accept().await.is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let state = Arc::new(State::new());
    let handle = spawn(
        check(Kind::Tcp),
        tcp_dialer(addr),
        state.clone(),
        "test".into(),
    );
    until("three checks", || accepted.load(Ordering::Relaxed) >= 3).await;
    assert!(state.is_healthy());
    drop(handle);
    // Let a connection already on its way arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let settled = accepted.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted.load(Ordering::Relaxed), settled);
}

#[tokio::test(start_paused = true)]
async fn first_check_is_jittered_and_later_ones_are_an_interval_apart() {
    let started = tokio::time::Instant::now();
    let dials = Arc::new(Mutex::new(Vec::new()));
    let dialer: Dialer = {
        let dials = dials.clone();
        Arc::new(move || -> DialFuture {
            dials.lock().unwrap().push(tokio::time::Instant::now());
            Box::pin(async { Ok(Box::new(tokio::io::duplex(64).0) as Box<dyn Io>) })
        })
    };
    let check = Check::default();
    let _handle = spawn(check.clone(), dialer, Arc::new(State::new()), "test".into());
    tokio::time::sleep(Duration::from_secs(40)).await;
    let dials = dials.lock().unwrap().clone();
    assert!((4..=5).contains(&dials.len()), "{} checks", dials.len());
    assert!(dials[0] - started <= check.interval / 10);
    for pair in dials.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= check.interval * 9 / 10 && gap <= check.interval * 11 / 10,
            "{gap:?}"
        );
    }
}
