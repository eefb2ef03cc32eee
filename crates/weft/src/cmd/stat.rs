//! `weft stat services|workloads|routes`: success rate, requests per second and latency
//! of each, over the last minute, from the proxies' live reports (`GET /v1/stats`).
//! Also holds what `weft edges` shares with it: the query, the answer's types and how
//! its numbers read in a cell.
//!
//! The control plane sums the windows each proxy reports every 5 s; nothing is stored,
//! so these are live views (Prometheus keeps the history). Services and routes are
//! counted by the callers' proxies, workloads by their own (see `docs/observability.md`).

use serde::Deserialize;
use weft_api::resource::DEFAULT_NAMESPACE;

use super::client::{self, encode_query, Client, ConnectArgs};
use super::output;

/// Arguments of `weft stat`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What to show: `services` (as their callers saw them), `workloads` (as they
    /// answered) or `routes` (each route rule and the backend it sent to).
    kind: String,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// The period summed; shared with `weft edges`.
#[derive(Debug, clap::Args)]
pub(crate) struct ViewArgs {
    /// Namespace of what is shown (the service, workload, backend or destination).
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The period to sum, from 1s to 5m (what the control plane keeps), in whole
    /// seconds.
    #[arg(long, default_value = "60s", value_parser = parse_window)]
    pub(crate) window: std::time::Duration,
    /// Output format: `table`, or `json` (the API's answer as it came).
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub(crate) output: Format,
}

impl ViewArgs {
    /// The namespace asked for; `None` with `-A`.
    pub(crate) fn namespace(&self) -> Option<&str> {
        (!self.all_namespaces).then_some(self.namespace.as_str())
    }
}

/// `-o` values of the live views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// An aligned table.
    Table,
    /// The API's JSON.
    Json,
}

/// What rows are grouped by: the API's `by`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    Service,
    Workload,
    Route,
    Edge,
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Deserialize)]
pub(crate) struct Answer {
    /// The period summed, seconds.
    pub(crate) window_seconds: u64,
    /// Proxies whose windows were summed.
    pub(crate) proxies: usize,
    /// The rows, busiest first.
    pub(crate) rows: Vec<Row>,
}

/// One row of an answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Row {
    /// The caller (edges).
    pub(crate) source: Option<Party>,
    /// What was called.
    pub(crate) destination: Party,
    /// The route rule (routes).
    pub(crate) route: Option<RouteRef>,
    /// `mutual_tls`, `none` or `unknown` (edges).
    pub(crate) security: Option<String>,
    /// Requests answered in the period.
    pub(crate) requests: u64,
    /// `successes / requests` (not 5xx); `None` without requests.
    pub(crate) success_rate: Option<f64>,
    /// Requests per second over the period.
    pub(crate) rps: f64,
    /// Latency to the answer's headers.
    pub(crate) latency_ms: Option<Latency>,
}

/// One side of a row.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Party {
    /// `name.namespace` (destinations only).
    pub(crate) service: String,
    pub(crate) workload: String,
    pub(crate) namespace: String,
    /// SPIFFE ID.
    pub(crate) identity: String,
}

/// A route rule.
#[derive(Debug, Deserialize)]
pub(crate) struct RouteRef {
    /// `HTTPRoute/namespace/name`.
    pub(crate) name: String,
    /// The rule's index in `spec.rules`.
    pub(crate) rule: u32,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Deserialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

/// Prints the table (or the JSON).
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let by = parse_by(&args.kind)?;
    let client = Client::new(&args.connect)?;
    let namespace = args.view.namespace();
    client::block_on(async {
        let (answer, raw) = query(&client, by, args.view.window, namespace).await?;
        if args.view.output == Format::Json {
            println!("{}", serde_json::to_string_pretty(&raw)?);
            return Ok(());
        }
        if answer.rows.is_empty() {
            eprintln!("{}", no_traffic(&answer, namespace));
            return Ok(());
        }
        print!("{}", render(by, &answer, namespace.is_none()));
        Ok(())
    })
}

/// `GET /v1/stats` by `by` over `window`, within `namespace` (all when `None`): the
/// answer, and its JSON as it came.
pub(crate) async fn query(
    client: &Client,
    by: By,
    window: std::time::Duration,
    namespace: Option<&str>,
) -> anyhow::Result<(Answer, serde_json::Value)> {
    let mut path = format!("/v1/stats?by={}&window={}s", by.as_str(), window.as_secs());
    if let Some(ns) = namespace {
        path.push_str("&namespace=");
        path.push_str(&encode_query(ns));
    }
    let raw = client.get_json(&path).await.map_err(|e| {
        // A control plane built without live statistics answers 404.
        match e.downcast_ref::<client::ApiError>() {
            Some(api) if api.is_not_found() => e.context(
                "this control plane serves no live statistics (GET /v1/stats); is it older than \
                 this CLI? Upgrade it, or read the proxies' metrics with Prometheus",
            ),
            _ => e,
        }
    })?;
    let answer = serde_json::from_value(raw.clone()).map_err(|e| {
        anyhow::anyhow!("the control plane's stats are not what this CLI reads: {e}")
    })?;
    Ok((answer, raw))
}

/// What to say when an answer has no rows.
pub(crate) fn no_traffic(answer: &Answer, namespace: Option<&str>) -> String {
    if answer.proxies == 0 {
        return "no proxy reports to this control plane: statistics come from the proxies \
                connected to it (`weft get workloads` lists them)"
            .to_owned();
    }
    let scope = match namespace {
        Some(ns) => format!(" to namespace {ns}"),
        None => String::new(),
    };
    let mut text = format!(
        "no traffic{scope} reported in the last {}s; proxies report every 5s",
        answer.window_seconds
    );
    if namespace.is_some() {
        text.push_str(" (-A for every namespace)");
    }
    text
}

/// The table of `answer`, rows as the API ordered them (busiest first).
pub(crate) fn render(by: By, answer: &Answer, all_namespaces: bool) -> String {
    let mut headers: Vec<&str> = Vec::new();
    if all_namespaces && by != By::Route {
        headers.push("NAMESPACE");
    }
    match by {
        By::Route => headers.extend(["ROUTE", "RULE", "BACKEND"]),
        _ => headers.push("NAME"),
    }
    headers.extend(["SUCCESS", "RPS", "P50", "P95", "P99", "REQUESTS"]);
    let rows: Vec<Vec<String>> = answer
        .rows
        .iter()
        .map(|row| {
            let d = &row.destination;
            let mut cells = Vec::new();
            if all_namespaces && by != By::Route {
                cells.push(output::or_none(Some(&d.namespace)));
            }
            match by {
                By::Service => cells.push(service_name(d)),
                By::Workload | By::Edge => cells.push(output::or_none(Some(&d.workload))),
                By::Route => {
                    let (route, rule) = row
                        .route
                        .as_ref()
                        .map_or(("<none>".to_owned(), String::new()), |r| {
                            (r.name.clone(), r.rule.to_string())
                        });
                    cells.extend([route, rule, output::or_none(Some(&d.service))]);
                }
            }
            let latency =
                |f: fn(&Latency) -> f64| row.latency_ms.as_ref().map_or_else(dash, |l| ms(f(l)));
            cells.extend([
                success(row.success_rate),
                rps(row.rps),
                latency(|l| l.p50),
                latency(|l| l.p95),
                latency(|l| l.p99),
                row.requests.to_string(),
            ]);
            cells
        })
        .collect();
    output::table(&headers, &rows)
}

/// A service's name without its namespace (`echo` of `echo.default`).
fn service_name(d: &Party) -> String {
    let name = d
        .service
        .strip_suffix(&format!(".{}", d.namespace))
        .unwrap_or(&d.service);
    output::or_none(Some(name))
}

/// `80.00%`, or `-` without requests.
pub(crate) fn success(rate: Option<f64>) -> String {
    rate.map_or_else(dash, |r| format!("{:.2}%", r * 100.0))
}

/// Requests per second, two decimals.
pub(crate) fn rps(rps: f64) -> String {
    format!("{rps:.2}")
}

/// Milliseconds: one decimal below 10 ms, whole above.
pub(crate) fn ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

fn dash() -> String {
    "-".to_owned()
}

/// What `weft stat` shows, as users type it, or an error naming what it takes.
fn parse_by(text: &str) -> anyhow::Result<By> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "services" | "service" | "svc" => By::Service,
        "workloads" | "workload" => By::Workload,
        "routes" | "route" | "httproutes" | "httproute" => By::Route,
        "edges" | "edge" => anyhow::bail!("edges have a command of their own: `weft edges`"),
        _ => anyhow::bail!(
            "weft stat shows services, workloads or routes, not {text:?} (`weft edges` shows who \
             calls whom)"
        ),
    })
}

/// `--window`: whole seconds from 1s to 5m (what the control plane keeps).
fn parse_window(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.subsec_nanos() != 0 || d.as_secs() < 1 || d.as_secs() > 300 {
        return Err(format!(
            "{text:?}: write whole seconds from 1s to 5m (the control plane keeps 5 minutes)"
        ));
    }
    Ok(d)
}

// === impl By ===

impl By {
    /// The API's name for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            By::Service => "service",
            By::Workload => "workload",
            By::Route => "route",
            By::Edge => "edge",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(by: &str, rows: &serde_json::Value) -> Answer {
        serde_json::from_value(json!({"window_seconds": 60, "by": by, "proxies": 2, "rows": rows}))
            .unwrap()
    }

    #[test]
    fn service_rows_show_success_rps_latency_and_requests() {
        let a = answer(
            "service",
            &json!([{
                "source": null,
                "destination": {"service": "echo.default", "workload": "", "namespace": "default", "identity": ""},
                "route": null, "security": null,
                "requests": 10, "successes": 8, "success_rate": 0.8, "rps": 0.1666,
                "latency_ms": {"p50": 0.75, "p95": 4.0, "p99": 48.2}
            }]),
        );
        assert_eq!(
            render(By::Service, &a, false),
            "NAME   SUCCESS   RPS    P50     P95     P99    REQUESTS\n\
             echo   80.00%    0.17   0.8ms   4.0ms   48ms   10\n"
        );
        let all = render(By::Service, &a, true);
        assert!(all.starts_with("NAMESPACE   NAME"), "{all}");
        assert!(all.contains("\ndefault     echo"), "{all}");
    }

    #[test]
    fn route_rows_show_the_rule_and_its_backend_and_rows_without_latency_a_dash() {
        let a = answer(
            "route",
            &json!([{
                "destination": {"service": "echo-v2.default", "namespace": "default"},
                "route": {"name": "HTTPRoute/default/split", "rule": 1},
                "requests": 0, "successes": 0, "success_rate": null, "rps": 0.0, "latency_ms": null
            }]),
        );
        let table = render(By::Route, &a, true);
        let cells: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "HTTPRoute/default/split",
                "1",
                "echo-v2.default",
                "-",
                "0.00",
                "-",
                "-",
                "-",
                "0"
            ]
        );
    }

    #[test]
    fn no_rows_say_why_and_what_to_do() {
        let mut a = answer("service", &json!([]));
        assert_eq!(
            no_traffic(&a, Some("shop")),
            "no traffic to namespace shop reported in the last 60s; proxies report every 5s \
             (-A for every namespace)"
        );
        assert_eq!(
            no_traffic(&a, None),
            "no traffic reported in the last 60s; proxies report every 5s"
        );
        a.proxies = 0;
        assert!(no_traffic(&a, None).starts_with("no proxy reports"));
    }

    #[test]
    fn kinds_parse_loosely_and_edges_point_to_their_command() {
        assert_eq!(parse_by("svc").unwrap(), By::Service);
        assert_eq!(parse_by("Workloads").unwrap(), By::Workload);
        assert_eq!(parse_by("routes").unwrap(), By::Route);
        assert!(parse_by("edges")
            .unwrap_err()
            .to_string()
            .contains("`weft edges`"));
        let error = parse_by("gizmos").unwrap_err().to_string();
        assert!(error.contains("services, workloads or routes"), "{error}");
    }

    #[test]
    fn windows_are_whole_seconds_within_what_the_control_plane_keeps() {
        assert_eq!(
            parse_window("2m").unwrap(),
            std::time::Duration::from_secs(120)
        );
        for bad in ["0s", "500ms", "10m", "1.5s", "soon"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }
}
