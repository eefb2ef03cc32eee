//! `weft edges`: who called whom over the last minute, whether the connection was
//! mutual TLS, with the identities each side proved, from the proxies' live reports
//! (`GET /v1/stats?by=edge`). An edge is counted by the caller's proxy; a caller
//! without a proxy of its own shows up as a plaintext edge the callee's proxy counted.

use super::client::{self, Client, ConnectArgs};
use super::output;
use super::stat::{self, Answer, By, Format, Party, ViewArgs};

/// Arguments of `weft edges`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Prints the edges.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let client = Client::new(&args.connect)?;
    let namespace = args.view.namespace();
    client::block_on(async {
        let (answer, raw) = stat::query(&client, By::Edge, args.view.window, namespace).await?;
        if args.view.output == Format::Json {
            println!("{}", serde_json::to_string_pretty(&raw)?);
            return Ok(());
        }
        if answer.rows.is_empty() {
            eprintln!("{}", stat::no_traffic(&answer, namespace));
            return Ok(());
        }
        print!("{}", render(&answer, namespace));
        Ok(())
    })
}

/// The table of `answer`; workloads outside `namespace` (every one when `None`) are
/// written `namespace/name`.
pub(crate) fn render(answer: &Answer, namespace: Option<&str>) -> String {
    let headers = [
        "SRC",
        "DST",
        "SECURITY",
        "RPS",
        "SUCCESS",
        "SRC-IDENTITY",
        "DST-IDENTITY",
    ];
    let rows: Vec<Vec<String>> = answer
        .rows
        .iter()
        .map(|row| {
            let source = row.source.as_ref();
            vec![
                source.map_or_else(|| "<none>".to_owned(), |s| source_name(s, namespace)),
                destination_name(&row.destination, namespace),
                security(row.security.as_deref()),
                stat::rps(row.rps),
                stat::success(row.success_rate),
                output::or_none(source.map(|s| s.identity.as_str())),
                output::or_none(Some(&row.destination.identity)),
            ]
        })
        .collect();
    output::table(&headers, &rows)
}

/// The caller: its workload, or `(no proxy)` for a plaintext caller outside the mesh.
fn source_name(party: &Party, namespace: Option<&str>) -> String {
    if party.workload.is_empty() {
        return "(no proxy)".to_owned();
    }
    qualified(&party.workload, &party.namespace, namespace)
}

/// The callee: the workload that answered, else the service (no endpoint reached).
fn destination_name(party: &Party, namespace: Option<&str>) -> String {
    if party.workload.is_empty() {
        return output::or_none(Some(&party.service));
    }
    qualified(&party.workload, &party.namespace, namespace)
}

fn qualified(name: &str, of: &str, namespace: Option<&str>) -> String {
    if namespace == Some(of) || of.is_empty() {
        name.to_owned()
    } else {
        format!("{of}/{name}")
    }
}

/// `mTLS`, `plaintext`, or `unknown` (no endpoint was reached).
fn security(value: Option<&str>) -> String {
    match value {
        Some("mutual_tls") => "mTLS".to_owned(),
        Some("none") => "plaintext".to_owned(),
        Some(other) if !other.is_empty() => other.to_owned(),
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn edges_show_both_sides_their_security_and_identities() {
        let answer: Answer = serde_json::from_value(json!({
            "window_seconds": 60, "by": "edge", "proxies": 2,
            "rows": [
                {
                    "source": {"workload": "frontend", "namespace": "default", "identity": "spiffe://cluster.local/ns/default/sa/frontend"},
                    "destination": {"service": "echo.default", "workload": "echo-v1", "namespace": "default", "identity": "spiffe://cluster.local/ns/default/sa/echo-v1"},
                    "route": null, "security": "mutual_tls",
                    "requests": 12, "successes": 12, "success_rate": 1.0, "rps": 0.2,
                    "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 2.4}
                },
                {
                    "source": {"workload": "", "namespace": "", "identity": ""},
                    "destination": {"workload": "echo-v1", "namespace": "default", "identity": "spiffe://cluster.local/ns/default/sa/echo-v1"},
                    "route": null, "security": "none",
                    "requests": 1, "successes": 0, "success_rate": 0.0, "rps": 0.0166,
                    "latency_ms": null
                }
            ]
        }))
        .unwrap();
        let table = render(&answer, Some("default"));
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "SRC",
                "DST",
                "SECURITY",
                "RPS",
                "SUCCESS",
                "SRC-IDENTITY",
                "DST-IDENTITY"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "frontend",
                "echo-v1",
                "mTLS",
                "0.20",
                "100.00%",
                "spiffe://cluster.local/ns/default/sa/frontend",
                "spiffe://cluster.local/ns/default/sa/echo-v1"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "(no",
                "proxy)",
                "echo-v1",
                "plaintext",
                "0.02",
                "0.00%",
                "<none>",
                "spiffe://cluster.local/ns/default/sa/echo-v1"
            ]
        );
        let all = render(&answer, None);
        assert!(all.contains("default/frontend   default/echo-v1"), "{all}");
    }
}
