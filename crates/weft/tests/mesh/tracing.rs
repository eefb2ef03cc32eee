//! Spans through two real proxies into an OTLP/gRPC receiver built from the official
//! OpenTelemetry protobuf definitions (`opentelemetry-proto`): a client span on the
//! caller's side, a server span on the callee's, parent and child in one trace, with
//! the HTTP attributes and the mesh's identities; W3C and B3 context in, the same
//! trace out; the sampling decision of the caller kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use weft_testkit::client::Http1Client;
use weft_testkit::echo::{self, EchoReply};

use crate::harness::{eventually, Host, Mesh, Proxy};

/// The spans a receiver was sent, with their resource's `service.name`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

/// An OTLP/gRPC receiver on loopback.
async fn receiver() -> (Received, SocketAddr) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream(listener)),
    );
    (received, addr)
}

fn tokio_stream(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(s, _)| s);
        Some((accepted, l))
    })
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `echo` on `server`, called from `client`, both proxies tracing to `collector`, the
/// client's at `sampling` percent and the server's at `server_sampling`.
async fn traced_pair(
    mesh: &Mesh,
    collector: SocketAddr,
    sampling: u32,
    server_sampling: u32,
) -> (Host, Host, Vec<Proxy>, echo::Server) {
    let client = mesh.host("client");
    let server = mesh.host("server");
    let telemetry = |sampling: u32| {
        format!(
            "telemetry:\n  tracing: {{ endpoint: \"http://{collector}\", sampling: {sampling} }}\n"
        )
    };
    let server_cfg = mesh.write(
        "server",
        &format!(
            "{}{}",
            mesh.identity_yaml(&server, "echo", &[(mesh.ports.app, "http")]),
            telemetry(server_sampling)
        ),
    );
    let services = mesh.service("echo", 80, "http", &[mesh.endpoint(&server, "echo")]);
    let client_cfg = mesh.write(
        "client",
        &mesh.client_config(&client, "client", &services, &telemetry(sampling)),
    );
    let sp = mesh.proxy(&server, &server_cfg).await;
    let cp = mesh.proxy(&client, &client_cfg).await;
    let app = echo::spawn_http(mesh.app(&server), "echo").await.unwrap();
    (client, server, vec![cp, sp], app)
}

async fn send(conn: &mut Http1Client, path: &str, headers: &[(&str, &str)]) -> EchoReply {
    let mut req = Request::get(path).header("host", "echo");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = conn
        .send(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("a response through the mesh");
    assert_eq!(resp.status(), 200);
    EchoReply::from_body(resp.body()).expect("an echo report")
}

/// The spans of `trace`, once both hops exported theirs: (client, server).
async fn hops(received: &Received, trace: &str) -> (Span, Span) {
    let both = eventually(Duration::from_secs(10), || async {
        received
            .spans()
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace)
            .count()
            >= 2
    })
    .await;
    let spans: Vec<(String, Span)> = received
        .spans()
        .into_iter()
        .filter(|(_, s)| hex(&s.trace_id) == trace)
        .collect();
    assert!(both, "two spans of trace {trace}: {spans:#?}");
    assert_eq!(spans.len(), 2, "one span per hop: {spans:#?}");
    let kind = |k: SpanKind| {
        spans.iter().find(|(_, s)| s.kind == k as i32).map_or_else(
            || panic!("a {k:?} span: {spans:#?}"),
            |(service, s)| (service.clone(), s.clone()),
        )
    };
    let (client_service, client) = kind(SpanKind::Client);
    let (server_service, server) = kind(SpanKind::Server);
    assert_eq!(
        client_service, "client",
        "the caller's workload names its spans"
    );
    assert_eq!(server_service, "echo");
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_export_a_client_and_a_server_span_of_one_trace_over_otlp() {
    let mesh = Mesh::new();
    let (collector, addr) = receiver().await;
    let (client, server, _proxies, _app) = traced_pair(&mesh, addr, 100, 100).await;
    let mut conn = Http1Client::connect(mesh.listen(&client)).await.unwrap();

    // No context in: the caller's proxy starts the trace.
    let reply = send(&mut conn, "/items/7?secret=1", &[]).await;
    let traceparent = reply
        .headers
        .get("traceparent")
        .expect("the app gets context");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[3]), (4, "01"), "{traceparent}");
    let (client_span, server_span) = hops(&collector, parts[1]).await;
    assert!(client_span.parent_span_id.is_empty(), "the trace's root");
    assert_eq!(
        server_span.parent_span_id, client_span.span_id,
        "the server span is the client span's child"
    );
    assert_eq!(
        hex(&server_span.span_id),
        parts[2],
        "the app's parent is the server span"
    );
    let expect: BTreeMap<&str, &str> = [
        ("http.request.method", "GET"),
        ("url.path", "/items/7"),
        ("http.response.status_code", "200"),
        ("network.protocol.version", "1.1"),
        ("weft.connection_security", "mutual_tls"),
        (
            "weft.source.identity",
            "spiffe://cluster.local/ns/default/sa/client",
        ),
        (
            "weft.destination.identity",
            "spiffe://cluster.local/ns/default/sa/echo",
        ),
    ]
    .into();
    for span in [&client_span, &server_span] {
        for (key, value) in &expect {
            assert_eq!(
                attribute(span, key).as_deref(),
                Some(*value),
                "{key} of {}",
                span.name
            );
        }
    }
    assert_eq!(
        attribute(&client_span, "weft.destination.service").as_deref(),
        Some("echo.default")
    );
    assert_eq!(client_span.name, "GET echo.default");
    // The sampled request's latency carries its trace as an exemplar, on both sides.
    for host in [&client, &server] {
        let text = crate::telemetry::metrics(&mesh, host).await;
        assert!(
            text.lines().any(
                |l| l.starts_with("weft_proxy_request_duration_seconds_bucket")
                    && l.contains(&format!("# {{trace_id=\"{}\"}}", parts[1]))
            ),
            "{text}"
        );
    }
    assert!(client_span.end_time_unix_nano >= server_span.end_time_unix_nano);
    assert!(client_span.start_time_unix_nano <= server_span.start_time_unix_nano);

    // W3C context in: the same trace, the caller's span as the client span's parent,
    // its tracestate passed on.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let reply = send(
        &mut conn,
        "/w3c",
        &[
            ("traceparent", &format!("00-{trace}-{parent}-01")),
            ("tracestate", "vendor=opaque"),
        ],
    )
    .await;
    assert_eq!(
        reply.headers.get("tracestate").map(String::as_str),
        Some("vendor=opaque")
    );
    let (client_span, _) = hops(&collector, trace).await;
    assert_eq!(hex(&client_span.parent_span_id), parent);

    // B3 in (several headers): the same trace, and B3 out to the app as well.
    let b3_trace = "a3ce929d0e0e47364bf92f3577b34da6";
    let reply = send(
        &mut conn,
        "/b3",
        &[
            ("x-b3-traceid", b3_trace),
            ("x-b3-spanid", parent),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    let (_, server_span) = hops(&collector, b3_trace).await;
    assert_eq!(
        reply.headers.get("x-b3-spanid").map(String::as_str),
        Some(hex(&server_span.span_id).as_str())
    );
    assert_eq!(
        reply.headers.get("x-b3-traceid").map(String::as_str),
        Some(b3_trace)
    );

    // The caller decided not to sample: no span, and its context passes on untouched.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let header = format!("00-{unsampled}-b7ad6b7169203331-00");
    let reply = send(&mut conn, "/unsampled", &[("traceparent", &header)]).await;
    assert_eq!(reply.headers.get("traceparent"), Some(&header));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !collector
            .spans()
            .iter()
            .any(|(_, s)| hex(&s.trace_id) == unsampled),
        "an unsampled request exports nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_proxy_decides_and_an_unsampled_request_carries_no_context() {
    let mesh = Mesh::new();
    let (collector, addr) = receiver().await;
    // The caller's proxy samples nothing; the server's would sample everything it
    // decides itself. It must not: a mesh peer that sent no context decided no.
    let (client, _server, _proxies, _app) = traced_pair(&mesh, addr, 0, 100).await;
    let mut conn = Http1Client::connect(mesh.listen(&client)).await.unwrap();
    for _ in 0..5 {
        let reply = send(&mut conn, "/", &[]).await;
        assert_eq!(
            reply.headers.get("traceparent"),
            None,
            "an unsampled request is left untouched"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
}

/// The `telemetry` section of the config the proxy on `host` runs (its admin
/// `/config_dump`); `null` for the defaults.
async fn telemetry_in_force(mesh: &Mesh, host: &Host) -> serde_json::Value {
    let req = Request::get("/config_dump")
        .header("host", "admin")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let Ok(resp) = weft_testkit::client::http1_request(mesh.admin(host), req).await else {
        return serde_json::Value::Null;
    };
    let dump: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
    dump["config"]["telemetry"].clone()
}

/// `weft_proxy_requests_total` of the proxy on `host` on `direction`, all series.
async fn requests(mesh: &Mesh, host: &Host, direction: &str) -> u64 {
    let text = crate::telemetry::metrics(mesh, host).await;
    let prefix = "weft_proxy_requests_total{";
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .filter(|rest| rest.contains(&format!("direction=\"{direction}\"")))
        .filter_map(|rest| rest.rsplit_once("} ")?.1.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telemetry_object_traces_both_hops_and_a_narrower_one_stops_the_servers_request_counts() {
    let (collector, addr) = receiver().await;
    let s = crate::telemetry::setup().await;
    let (client, server) = (&s.client_host, &s.server_host);

    // The namespace's workloads, both proxies, trace every new trace to the receiver.
    s.cp.apply(
        &s.mesh,
        "telemetry-namespace",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: {{ name: traced }}\n\
             spec:\n  targetRefs: [{{ kind: Namespace }}]\n\
             \x20 tracing: {{ endpoint: \"http://{addr}\", sampling: 100 }}\n"
        ),
    )
    .await;
    let arrived = eventually(Duration::from_secs(15), || async {
        let endpoint = format!("http://{addr}");
        telemetry_in_force(&s.mesh, client).await["tracing"]["endpoint"] == endpoint.as_str()
            && telemetry_in_force(&s.mesh, server).await["tracing"]["endpoint"] == endpoint.as_str()
    })
    .await;
    assert!(arrived, "the Telemetry never reached both proxies");

    let resp = weft_testkit::client::http1_get(s.listen, "echo", "/traced")
        .await
        .expect("a response through the mesh");
    assert_eq!(resp.status(), 200);
    let reply = EchoReply::from_body(resp.body()).expect("an echo report");
    let traceparent = reply
        .headers
        .get("traceparent")
        .expect("the app gets context");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[3]), (4, "01"), "sampled: {traceparent}");
    let trace = parts[1];
    let both = eventually(Duration::from_secs(10), || async {
        collector
            .spans()
            .iter()
            .filter(|(_, span)| hex(&span.trace_id) == trace)
            .count()
            >= 2
    })
    .await;
    let spans: Vec<(String, Span)> = collector
        .spans()
        .into_iter()
        .filter(|(_, span)| hex(&span.trace_id) == trace)
        .collect();
    assert!(both, "a span per hop of trace {trace}: {spans:#?}");
    let kind = |k: SpanKind| {
        spans
            .iter()
            .find(|(_, span)| span.kind == k as i32)
            .cloned()
            .unwrap_or_else(|| panic!("a {k:?} span: {spans:#?}"))
    };
    let (client_service, client_span) = kind(SpanKind::Client);
    let (server_service, server_span) = kind(SpanKind::Server);
    assert_eq!(
        (client_service.as_str(), server_service.as_str()),
        ("frontend", "echo-v1")
    );
    assert_eq!(server_span.parent_span_id, client_span.span_id);

    // Both sides count requests until a Telemetry of the server's service says not to.
    let (client_before, server_before) = (
        requests(&s.mesh, client, "outbound").await,
        requests(&s.mesh, server, "inbound").await,
    );
    assert_eq!(crate::telemetry::get(s.listen, "/counted").await, 200);
    let counted = eventually(Duration::from_secs(5), || async {
        requests(&s.mesh, client, "outbound").await > client_before
            && requests(&s.mesh, server, "inbound").await > server_before
    })
    .await;
    assert!(counted, "both proxies count a request before the change");

    s.cp.apply(
        &s.mesh,
        "telemetry-service",
        "apiVersion: weft.dev/v1alpha1\nkind: Telemetry\nmetadata: { name: echo-uncounted }\n\
         spec:\n  targetRefs: [{ kind: Service, name: echo }]\n  metrics: { enabled: false }\n",
    )
    .await;
    let arrived = eventually(Duration::from_secs(15), || async {
        telemetry_in_force(&s.mesh, server).await["metrics"]["enabled"] == false
    })
    .await;
    assert!(
        arrived,
        "the service's Telemetry never reached the server's proxy"
    );
    let in_force = telemetry_in_force(&s.mesh, server).await;
    assert_eq!(
        in_force["tracing"]["endpoint"],
        format!("http://{addr}").as_str(),
        "the namespace's tracing still applies: {in_force}"
    );
    assert_eq!(
        telemetry_in_force(&s.mesh, client).await["metrics"],
        serde_json::Value::Null,
        "the client's proxy keeps counting (the default)"
    );

    let (client_before, server_before) = (
        requests(&s.mesh, client, "outbound").await,
        requests(&s.mesh, server, "inbound").await,
    );
    for _ in 0..5 {
        assert_eq!(crate::telemetry::get(s.listen, "/uncounted").await, 200);
    }
    let client_counted = eventually(Duration::from_secs(5), || async {
        requests(&s.mesh, client, "outbound").await == client_before + 5
    })
    .await;
    assert!(client_counted, "the client's proxy counts all five");
    // Exchanges are recorded when their answer's body ends; the client's five are in,
    // so the server's would be too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        requests(&s.mesh, server, "inbound").await,
        server_before,
        "the server's proxy counts none"
    );
}
