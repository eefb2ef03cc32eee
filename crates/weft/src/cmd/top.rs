//! `weft top SERVICE[.NS]` (or `--workload NS/NAME`): the busiest paths right now, by
//! method and path, with their count, success rate and latency, from a tap
//! (`GET /v1/tap`, as `weft tap` runs it). On a terminal the table is redrawn every
//! second until Ctrl-C or `--duration`; otherwise (or with `--once`) one table is
//! printed after `--duration` (default 5s).
//!
//! A tap samples at most `--max-rps` requests a second per proxy, so on a busy service
//! the counts are a sample: their order, not their sum, is what to read.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use weft_api::resource::DEFAULT_NAMESPACE;

use super::client::{self, Client, ConnectArgs};
use super::output;
use super::stat;
use super::tap::{self, Event, Filters, Kind, Stream, Target};

/// The one-shot period when `--duration` is not given.
const ONCE: Duration = Duration::from_secs(5);

/// How often the live table is redrawn.
const REFRESH: Duration = Duration::from_secs(1);

/// Distinct method and path pairs counted, at most; more count as `(other paths)`.
const MAX_PATHS: usize = 10_000;

/// Arguments of `weft top`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["service", "workload"])))]
pub(crate) struct Args {
    /// The service, `NAME` (in `--namespace`) or `NAME.NAMESPACE`.
    service: Option<String>,
    /// A workload instead, `NAMESPACE/NAME` (or `NAME` in `--namespace`).
    #[arg(long, value_name = "NAMESPACE/NAME")]
    workload: Option<String>,
    /// The namespace of a name given without one.
    #[arg(short = 'n', long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Count the requests its workloads send, instead of those they serve.
    #[arg(long)]
    outbound: bool,
    #[command(flatten)]
    filters: Filters,
    /// At most this many requests a second are sampled, per proxy (1 to 1000).
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_rps: u32,
    /// Stop after this long (e.g. `30s`). Default: on a terminal, until Ctrl-C;
    /// otherwise (or with `--once`) 5s.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Print one table at the end instead of redrawing it every second.
    #[arg(long)]
    once: bool,
    /// Rows shown, at most.
    #[arg(long, default_value_t = 20, value_name = "N")]
    rows: usize,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Counts by method and path.
#[derive(Debug, Default)]
pub(crate) struct Paths {
    by: HashMap<(String, String), Counts>,
    /// Requests counted.
    requests: u64,
}

/// What one method and path saw.
#[derive(Clone, Debug, Default)]
struct Counts {
    count: u64,
    successes: u64,
    best: f64,
    worst: f64,
    last: f64,
}

/// Watches the target's busiest paths.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let target = match (&args.service, &args.workload) {
        (_, Some(workload)) => Target::parse(Kind::Workload, workload, &args.namespace)?,
        (Some(service), None) => Target::parse(Kind::Service, service, &args.namespace)?,
        (None, None) => anyhow::bail!("name a service, or a workload with --workload NS/NAME"),
    };
    let live = !args.once && std::io::stdout().is_terminal();
    let limit = args.duration.or((!live).then_some(ONCE));
    let direction = if args.outbound { "outbound" } else { "inbound" };
    let client = Client::new(&args.connect)?;
    let query = tap::query(&target, &args.filters, args.max_rps, &[]);
    client::block_on(async {
        let mut stream = Stream::open(&client, &query).await?;
        let started = Instant::now();
        let mut paths = Paths::default();
        let deadline = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let mut refresh = tokio::time::interval(REFRESH);
        let heading = |paths: &Paths| {
            format!(
                "{target}, requests it {}: {} in {}s (a sample of at most {}/s per proxy)\n",
                if args.outbound { "sends" } else { "serves" },
                paths.requests,
                started.elapsed().as_secs(),
                args.max_rps
            )
        };
        let ended = loop {
            tokio::select! {
                line = stream.next_line() => match line {
                    Ok(line) => {
                        if let Ok(event) = serde_json::from_str::<Event>(&line) {
                            if event.direction == direction {
                                paths.add(&event);
                            }
                        }
                    }
                    // What was seen until then is still shown.
                    Err(e) => break Some(e),
                },
                _ = refresh.tick(), if live => {
                    // Clear the screen, then draw from its top.
                    let screen = format!("\x1b[2J\x1b[H{}{}", heading(&paths), paths.render(args.rows));
                    if !output::write_now(&screen)? {
                        return Ok(());
                    }
                }
                () = &mut deadline => break None,
                _ = tokio::signal::ctrl_c() => break None,
            }
        };
        if paths.requests == 0 {
            eprintln!(
                "no requests {} by {target} in {}s: send it some traffic while this runs (the \
                 tap starts on its proxies within a second)",
                if args.outbound { "sent" } else { "served" },
                started.elapsed().as_secs()
            );
        } else {
            let clear = if live { "\x1b[2J\x1b[H" } else { "" };
            output::write_now(&format!(
                "{clear}{}{}",
                heading(&paths),
                paths.render(args.rows)
            ))?;
        }
        match ended {
            Some(error) => Err(error),
            None => Ok(()),
        }
    })
}

// === impl Paths ===

impl Paths {
    /// Counts one request.
    pub(crate) fn add(&mut self, e: &Event) {
        let mut key = (e.method.clone(), e.path.clone());
        if !self.by.contains_key(&key) && self.by.len() >= MAX_PATHS {
            key = ("*".to_owned(), "(other paths)".to_owned());
        }
        let counts = self.by.entry(key).or_default();
        if counts.count == 0 || e.duration_ms < counts.best {
            counts.best = e.duration_ms;
        }
        counts.worst = counts.worst.max(e.duration_ms);
        counts.last = e.duration_ms;
        counts.count += 1;
        if e.status < 500 {
            counts.successes += 1;
        }
        self.requests += 1;
    }

    /// The `rows` busiest, busiest first (then by path).
    pub(crate) fn render(&self, rows: usize) -> String {
        let mut all: Vec<(&(String, String), &Counts)> = self.by.iter().collect();
        all.sort_by(|(ka, a), (kb, b)| b.count.cmp(&a.count).then_with(|| ka.1.cmp(&kb.1)));
        let table: Vec<Vec<String>> = all
            .into_iter()
            .take(rows)
            .map(|((method, path), c)| {
                vec![
                    method.clone(),
                    path.clone(),
                    c.count.to_string(),
                    stat::success(Some(c.successes as f64 / c.count.max(1) as f64)),
                    stat::ms(c.best),
                    stat::ms(c.worst),
                    stat::ms(c.last),
                ]
            })
            .collect();
        output::table(
            &[
                "METHOD", "PATH", "COUNT", "SUCCESS", "BEST", "WORST", "LAST",
            ],
            &table,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn event(method: &str, path: &str, status: u32, ms: f64) -> Event {
        Event {
            direction: "inbound".into(),
            method: method.into(),
            path: path.into(),
            status,
            duration_ms: ms,
            ..Event::default()
        }
    }

    #[test]
    fn the_busiest_path_comes_first_with_its_success_and_latency() {
        let mut paths = Paths::default();
        for (status, ms) in [(200, 2.0), (503, 12.0), (200, 1.0), (200, 3.0)] {
            paths.add(&event("GET", "/busy", status, ms));
        }
        paths.add(&event("POST", "/quiet", 200, 0.5));
        let table = paths.render(10);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec!["METHOD", "PATH", "COUNT", "SUCCESS", "BEST", "WORST", "LAST"],
                vec!["GET", "/busy", "4", "75.00%", "1.0ms", "12ms", "3.0ms"],
                vec!["POST", "/quiet", "1", "100.00%", "0.5ms", "0.5ms", "0.5ms"],
            ]
        );
        assert_eq!(paths.render(1).lines().count(), 2, "one row at most");
    }

    #[test]
    fn paths_beyond_the_limit_count_together() {
        let mut paths = Paths::default();
        for i in 0..MAX_PATHS + 5 {
            paths.add(&event("GET", &format!("/p/{i}"), 200, 1.0));
        }
        assert_eq!(paths.by.len(), MAX_PATHS + 1);
        assert!(paths.render(1).contains("(other paths)   5"));
    }
}
