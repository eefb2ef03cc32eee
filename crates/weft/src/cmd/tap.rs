//! `weft tap workload NS/NAME | service NAME.NS`: each request a workload's proxy (or
//! the proxies of a service's workloads) handles, printed as it finishes, until Ctrl-C
//! or `--duration`. Also holds what `weft top` shares with it: the target, the tap's
//! query and the stream of its events.
//!
//! The control plane asks the proxies to send the requests that match
//! (`GET /v1/tap`, NDJSON), at most `--max-rps` a second per proxy, with header values
//! shown only for the headers the tap names. A tap shows requests, so it needs an admin
//! token, and the control plane logs who started it. The control plane ends a tap after
//! 15 minutes; `weft tap` and `weft top` then start another.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde::Deserialize;
use weft_api::resource::DEFAULT_NAMESPACE;

use super::client::{self, encode_query, Client, ConnectArgs};
use super::output;
use super::stat;

/// Arguments of `weft tap`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What to tap: `workload` (its proxy) or `service` (the proxies of the workloads
    /// it selects).
    #[arg(value_enum)]
    kind: Kind,
    /// `NAMESPACE/NAME` of a workload, `NAME.NAMESPACE` of a service, or a name in
    /// `--namespace`.
    name: String,
    /// The namespace of a name given without one.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    #[command(flatten)]
    filters: Filters,
    /// Also show the values of these request and response headers (repeat for more);
    /// the others read `[redacted]`. Default: content-type, content-length, user-agent,
    /// grpc-status, x-request-id and :authority.
    #[arg(long = "header", value_name = "NAME")]
    headers: Vec<String>,
    /// At most this many requests a second, per proxy (1 to 1000).
    #[arg(long, default_value_t = 10, value_name = "N")]
    max_rps: u32,
    /// Stop after this long (e.g. `30s`). Default: until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Output format: `text`, one line a request, or `json`, the API's line as it came.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: Format,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// What a tap covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// One workload's proxy.
    #[value(alias = "workloads")]
    Workload,
    /// The proxies of the workloads a service selects.
    #[value(alias = "services", alias = "svc")]
    Service,
}

/// Which requests a tap sends; shared with `weft top`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Filters {
    /// Only requests whose path starts with this.
    #[arg(long, value_name = "PREFIX")]
    path: Option<String>,
    /// Only requests with this method.
    #[arg(long)]
    method: Option<String>,
    /// Only answers with this status (`503`) or in this class (`5xx`).
    #[arg(long)]
    status: Option<String>,
    /// Only requests from this SPIFFE ID.
    #[arg(long, value_name = "SPIFFE_ID")]
    caller: Option<String>,
}

/// `-o` of `weft tap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One line a request.
    Text,
    /// The API's JSON line.
    Json,
}

/// A tap's target: the API's `workload=NS/NAME` or `service=NAME.NS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

/// One request a tap saw (a line of the stream).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Event {
    /// When it began, RFC 3339 with milliseconds.
    pub(crate) time: String,
    /// `inbound` or `outbound`.
    pub(crate) direction: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) status: u32,
    pub(crate) grpc_status: Option<u32>,
    pub(crate) duration_ms: f64,
    pub(crate) source_identity: String,
    pub(crate) destination_identity: String,
    pub(crate) destination_workload: String,
    pub(crate) destination_service: String,
    /// Names and values, `[redacted]` unless the tap names the header.
    pub(crate) request_headers: BTreeMap<String, String>,
}

/// The lines of a tap, as they arrive. The control plane ends a tap after a while
/// (15 minutes); the stream then starts another, so a tap runs until its user stops it.
pub(crate) struct Stream<'a> {
    client: &'a Client,
    query: String,
    body: hyper::body::Incoming,
    buffer: BytesMut,
    opened: Instant,
}

/// A tap that ends sooner than this after it began is not started again: the control
/// plane did not end it for its age (it restarted, or refused to go on).
const RESTART_AFTER: Duration = Duration::from_secs(60);

/// Prints the requests until Ctrl-C or `--duration`.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let target = Target::parse(args.kind, &args.name, &args.namespace)?;
    let client = Client::new(&args.connect)?;
    let query = query(&target, &args.filters, args.max_rps, &args.headers);
    client::block_on(async {
        let mut stream = Stream::open(&client, &query).await?;
        eprintln!(
            "tapping {target}{} (Ctrl-C to stop)",
            args.duration
                .map(|d| format!(" for {}", humantime::format_duration(d)))
                .unwrap_or_default()
        );
        let tap = async {
            loop {
                let line = stream.next_line().await?;
                let shown = match args.output {
                    Format::Json => line,
                    Format::Text => {
                        let event: Event = serde_json::from_str(&line).with_context(|| {
                            format!("the tap sent a line that is not an event: {line}")
                        })?;
                        text(&event, &args.headers)
                    }
                };
                if !output::write_now(&format!("{shown}\n"))? {
                    return Ok(());
                }
            }
        };
        until(args.duration, tap).await
    })
}

/// Runs `work` until it ends, `limit` passes or Ctrl-C; the last two are a normal end.
pub(crate) async fn until(
    limit: Option<Duration>,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let deadline = async {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = work => result,
        () = deadline => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// The API path of a tap on `target`.
pub(crate) fn query(
    target: &Target,
    filters: &Filters,
    max_rps: u32,
    headers: &[String],
) -> String {
    let mut path = match target.kind {
        Kind::Workload => format!(
            "/v1/tap?workload={}",
            encode_query(&format!("{}/{}", target.namespace, target.name))
        ),
        Kind::Service => format!(
            "/v1/tap?service={}",
            encode_query(&format!("{}.{}", target.name, target.namespace))
        ),
    };
    let mut add = |key: &str, value: &str| {
        path.push('&');
        path.push_str(key);
        path.push('=');
        path.push_str(&encode_query(value));
    };
    for (key, value) in [
        ("path", &filters.path),
        ("method", &filters.method),
        ("status", &filters.status),
        ("caller", &filters.caller),
    ] {
        if let Some(value) = value {
            add(key, value);
        }
    }
    add("max_rps", &max_rps.to_string());
    if !headers.is_empty() {
        add("headers", &headers.join(","));
    }
    path
}

/// A request as a line: time, direction, method, path, status, duration, caller →
/// callee, and the values of the headers asked for.
pub(crate) fn text(e: &Event, headers: &[String]) -> String {
    // The time of day is enough to read a live stream by; the date is in `-o json`.
    let time = e.time.split_once('T').map_or(e.time.as_str(), |(_, t)| t);
    let mut line = format!(
        "{time} {:<8} {} {} {}",
        e.direction, e.method, e.path, e.status
    );
    if let Some(grpc) = e.grpc_status {
        let _ = write!(line, " grpc={grpc}");
    }
    let destination = [
        &e.destination_workload,
        &e.destination_service,
        &e.destination_identity,
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .map_or("?", String::as_str);
    let source = if e.source_identity.is_empty() {
        "(no identity)"
    } else {
        e.source_identity.as_str()
    };
    let _ = write!(
        line,
        " {} {source} → {destination}",
        stat::ms(e.duration_ms)
    );
    for name in headers {
        if let Some(value) = e.request_headers.get(&name.to_ascii_lowercase()) {
            let _ = write!(line, " {name}={value:?}");
        }
    }
    line
}

// === impl Target ===

impl Target {
    /// `NS/NAME` (workloads), `NAME.NS` (services), or `NAME` in `namespace`.
    pub(crate) fn parse(kind: Kind, text: &str, namespace: &str) -> anyhow::Result<Target> {
        let (namespace, name) = match kind {
            Kind::Workload => text.split_once('/').unwrap_or((namespace, text)),
            Kind::Service => text
                .split_once('.')
                .map_or((namespace, text), |(name, ns)| (ns, name)),
        };
        if name.is_empty() || namespace.is_empty() || name.contains(['/', '.']) {
            let form = match kind {
                Kind::Workload => "NAMESPACE/NAME, e.g. default/web-1",
                Kind::Service => "NAME.NAMESPACE, e.g. web.default",
            };
            anyhow::bail!("{text:?} names no {}: write {form}", kind.noun());
        }
        Ok(Target {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Workload => write!(f, "workload {}/{}", self.namespace, self.name),
            Kind::Service => write!(f, "service {}.{}", self.name, self.namespace),
        }
    }
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Workload => "workload",
            Kind::Service => "service",
        }
    }
}

// === impl Stream ===

impl<'a> Stream<'a> {
    /// Starts a tap: `GET query` (from [`query`]).
    pub(crate) async fn open(client: &'a Client, query: &str) -> anyhow::Result<Stream<'a>> {
        let body = client.stream(query).await?;
        Ok(Stream {
            client,
            query: query.to_owned(),
            body,
            buffer: BytesMut::new(),
            opened: Instant::now(),
        })
    }

    /// The next line.
    pub(crate) async fn next_line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == b'\n') {
                let line = self.buffer.split_to(at + 1);
                let text = String::from_utf8_lossy(&line[..at]).trim().to_owned();
                if text.is_empty() {
                    continue;
                }
                return Ok(text);
            }
            match self.body.frame().await {
                Some(frame) => {
                    let frame = frame.context("reading the tap from the control plane")?;
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                None if self.opened.elapsed() < RESTART_AFTER => anyhow::bail!(
                    "the control plane ended the tap after {}s (did it restart?); run the \
                     command again",
                    self.opened.elapsed().as_secs()
                ),
                None => {
                    self.body = self.client.stream(&self.query).await?;
                    self.buffer.clear();
                    self.opened = Instant::now();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn targets_read_with_or_without_their_namespace() {
        let w = Target::parse(Kind::Workload, "shop/web-1", "default").unwrap();
        assert_eq!((w.namespace.as_str(), w.name.as_str()), ("shop", "web-1"));
        let w = Target::parse(Kind::Workload, "web-1", "prod").unwrap();
        assert_eq!(w.to_string(), "workload prod/web-1");
        let s = Target::parse(Kind::Service, "web.shop", "default").unwrap();
        assert_eq!(s.to_string(), "service web.shop");
        let s = Target::parse(Kind::Service, "web", "default").unwrap();
        assert_eq!(s.to_string(), "service web.default");
        let error = Target::parse(Kind::Workload, "a/b/c", "default")
            .unwrap_err()
            .to_string();
        assert!(error.contains("NAMESPACE/NAME"), "{error}");
        assert!(Target::parse(Kind::Service, "web.", "default").is_err());
    }

    #[test]
    fn queries_carry_the_target_filters_rate_and_headers_encoded() {
        let target = Target::parse(Kind::Workload, "default/echo-v1", "default").unwrap();
        let filters = Filters {
            path: Some("/api v2".into()),
            status: Some("5xx".into()),
            caller: Some("spiffe://cluster.local/ns/default/sa/web".into()),
            ..Filters::default()
        };
        assert_eq!(
            query(
                &target,
                &filters,
                100,
                &["user-agent".into(), "x-id".into()]
            ),
            "/v1/tap?workload=default%2Fecho-v1&path=%2Fapi%20v2&status=5xx\
             &caller=spiffe%3A%2F%2Fcluster.local%2Fns%2Fdefault%2Fsa%2Fweb&max_rps=100\
             &headers=user-agent%2Cx-id"
        );
        let service = Target::parse(Kind::Service, "echo", "default").unwrap();
        assert_eq!(
            query(&service, &Filters::default(), 10, &[]),
            "/v1/tap?service=echo.default&max_rps=10"
        );
    }

    #[test]
    fn a_text_line_shows_who_called_whom_and_only_the_headers_asked_for() {
        let event: Event = serde_json::from_value(serde_json::json!({
            "time": "2025-01-02T10:00:01.250Z", "direction": "inbound", "method": "GET",
            "authority": "echo", "path": "/status/503", "status": 503, "grpc_status": null,
            "duration_ms": 1.234,
            "source_identity": "spiffe://cluster.local/ns/default/sa/frontend",
            "destination_identity": "spiffe://cluster.local/ns/default/sa/echo-v1",
            "destination_workload": "echo-v1", "destination_service": "",
            "request_headers": {"user-agent": "curl/8", "authorization": "[redacted]"},
            "response_headers": {}
        }))
        .unwrap();
        assert_eq!(
            text(&event, &["User-Agent".into()]),
            "10:00:01.250Z inbound  GET /status/503 503 1.2ms \
             spiffe://cluster.local/ns/default/sa/frontend → echo-v1 User-Agent=\"curl/8\""
        );
    }
}
