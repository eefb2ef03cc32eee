//! A control-plane scale simulator: N lightweight xDS clients in one process.
//!
//! Each simulated proxy opens its own TCP/HTTP/2 connection to the control plane's
//! delta ADS endpoint, registers a distinct workload (`weft-registration-bin` metadata,
//! `node.id = default/sim-<i>`), subscribes to the `Service` and `RouteTable` named
//! `target.default`, and ACKs every response at once. Nothing else is kept per client:
//! a task, its connection and two atomics.
//!
//! The first `--targets` clients also carry `role: target` (the first half of them
//! `shard: a` as well), so they are the endpoints of Service `target`, which the
//! simulator creates before connecting anyone. Once every client holds `target` with all
//! its endpoints (the "sync"), each round makes ONE API write, a `PUT` of the Service
//! whose selector alternates between `{role: target, shard: a}` and `{role: target}`,
//! so the endpoint count alternates between `targets / 2` and `targets`. `t0` is when
//! that write returns; each client's latency is the moment it sent the ACK of the first
//! `Service` response with the round's endpoint count, minus `t0`.
//!
//! ```sh
//! cargo run --release -p weft-control --example xds_sim -- \
//!     --xds https://127.0.0.1:15678 --api https://127.0.0.1:15681 --ca-file DIR/ca.crt -n 1000 --rounds 5
//! ```
//!
//! The last line of the output is `RESULT key=value ...` for scripts (`bench/xds.sh`).
//! With `--cp-pid`, the control plane's RSS (from `/proc/PID/status`) is read once every
//! client is synced, and its CPU time (utime + stime, `/proc/PID/stat`) over the rounds.
//! The exit status is non-zero if any stream failed or any client missed a round.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;
use weft_api::pb::v1 as pb;
use weft_proxy::control_plane::channel::Connector;

/// Namespace of every simulated workload and of the target service.
const NAMESPACE: &str = "default";
/// Name of the service every client subscribes to.
const TARGET: &str = "target";
/// How many errors are kept verbatim for the report.
const KEPT_ERRORS: usize = 5;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Simulates N xDS clients and times API write -> last ACK")]
struct Args {
    /// Control-plane xDS URL.
    #[arg(long, default_value = "https://127.0.0.1:5678")]
    xds: String,
    /// Control-plane HTTP API URL.
    #[arg(long, default_value = "https://127.0.0.1:5681")]
    api: String,
    /// The mesh CA certificate the control plane's TLS certificate chains to
    /// (`<data-dir>/ca.crt`).
    #[arg(long, env = "WEFT_CA_FILE")]
    ca_file: std::path::PathBuf,
    /// Number of simulated proxies (streams), targets included.
    #[arg(short = 'n', long, default_value_t = 1000)]
    clients: usize,
    /// How many of the clients are endpoints of the target service (even, >= 2).
    #[arg(long, default_value_t = 4)]
    targets: usize,
    /// Measured rounds (API writes).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Connections being set up at once (held until a client's first response).
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Attempts per client to connect and open its stream.
    #[arg(long, default_value_t = 8)]
    connect_attempts: u32,
    /// Give up on the initial sync (every client holding the target) after this long.
    #[arg(long, default_value = "150s", value_parser = humantime::parse_duration)]
    sync_timeout: Duration,
    /// Give up on a round after this long (its stragglers count as not converged).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    round_timeout: Duration,
    /// Quiet time after the sync (the control plane's idle CPU is measured over it)
    /// and between rounds.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// Control-plane process id, to read its RSS and CPU time from /proc.
    #[arg(long)]
    cp_pid: Option<u32>,
    /// Kernel clock ticks per second (`getconf CLK_TCK`), to convert /proc CPU times.
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Tokio worker threads. Default: the CPUs this process may run on.
    #[arg(long)]
    threads: Option<usize>,
    /// Operator admin token for the API (`weft token admin`). The simulator issues
    /// itself three workload tokens for `default/sim` with it, one per label set its
    /// registrations carry (a workload's labels come from its token).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

/// What the coordinator and every client share.
struct Shared {
    /// When the simulator started; every timestamp is nanoseconds since this.
    epoch: Instant,
    /// Current round (high 32 bits) and the endpoint count that completes it (low 32).
    target: AtomicU64,
    /// Clients that completed the current round.
    converged: AtomicUsize,
    /// Per client: the last round it completed, and when it sent that round's ACK.
    round_done: Vec<AtomicU32>,
    ack_ns: Vec<AtomicU64>,
    /// Streams that ended or could not be opened.
    failed: AtomicUsize,
    /// Streams currently open.
    open: AtomicUsize,
    /// When the last client to get its first response got it (ns since `epoch`).
    last_first_response: AtomicU64,
    /// Connection retries (a connect or stream open that failed and was retried).
    retries: AtomicUsize,
    /// The first few errors, verbatim.
    errors: Mutex<Vec<String>>,
    /// The workload tokens streams present, by label set: [`LabelSet::index`].
    workload_tokens: [Option<String>; 3],
}

/// The labels a simulated proxy carries: every one `app: sim`; the targets also
/// `role: target`, and half of them `shard: a`.
#[derive(Clone, Copy, Debug)]
enum LabelSet {
    Plain,
    Target,
    Shard,
}

impl LabelSet {
    const ALL: [LabelSet; 3] = [LabelSet::Plain, LabelSet::Target, LabelSet::Shard];

    fn index(self) -> usize {
        self as usize
    }

    fn labels(self) -> HashMap<String, String> {
        let mut labels = HashMap::from([("app".to_owned(), "sim".to_owned())]);
        if matches!(self, LabelSet::Target | LabelSet::Shard) {
            labels.insert("role".to_owned(), TARGET.to_owned());
        }
        if matches!(self, LabelSet::Shard) {
            labels.insert("shard".to_owned(), "a".to_owned());
        }
        labels
    }
}

/// Latency figures of one set of samples, in milliseconds.
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.clients >= 1, "-n must be at least 1");
    ensure!(
        args.targets >= 2 && args.targets % 2 == 0 && args.targets <= args.clients,
        "--targets must be even, at least 2 and at most -n"
    );
    ensure!(
        args.connect_concurrency >= 1,
        "--connect-concurrency must be at least 1"
    );
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("starting the tokio runtime")?;
    let result = runtime.block_on(run(&args));
    // Dropping thousands of connections is not worth waiting for.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let n = args.clients;
    let pem = std::fs::read_to_string(&args.ca_file)
        .with_context(|| format!("--ca-file {}", args.ca_file.display()))?;
    let roots = || -> anyhow::Result<rustls::RootCertStore> {
        Ok(weft_tls::TrustBundle::from_pem(&pem)?.root_store())
    };
    let grpc_tls = weft_tls::control::client_config(roots()?, weft_tls::control::ALPN_GRPC)?;
    let api_tls = weft_tls::control::client_config(roots()?, &[b"http/1.1"])?;
    let api = Api::new(&args.api, args.admin_token.clone(), api_tls);
    let endpoint = Endpoint::from_shared(args.xds.clone())
        .with_context(|| format!("--xds {:?} is not a valid URL", args.xds))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);

    // The target service exists before anyone subscribes to it.
    api.put_target(false)
        .await
        .context("creating Service target")?;
    let mut workload_tokens = [None, None, None];
    if api.admin_token.is_some() {
        for set in LabelSet::ALL {
            workload_tokens[set.index()] = Some(
                api.workload_token(&set.labels())
                    .await
                    .with_context(|| format!("issuing the workload token for {set:?}"))?,
            );
        }
    }
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        target: AtomicU64::new(pack(0, args.targets)),
        converged: AtomicUsize::new(0),
        round_done: (0..n).map(|_| AtomicU32::new(u32::MAX)).collect(),
        ack_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
        failed: AtomicUsize::new(0),
        open: AtomicUsize::new(0),
        last_first_response: AtomicU64::new(0),
        retries: AtomicUsize::new(0),
        errors: Mutex::new(Vec::new()),
        workload_tokens,
    });
    println!(
        "xds_sim: {n} clients ({} targets) -> {}, api {}, {} rounds",
        args.targets, args.xds, args.api, args.rounds
    );

    // Connect: targets first (so they are endpoints early), at most
    // `connect_concurrency` clients between "connecting" and "first response".
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let started = Instant::now();
    for i in 0..n {
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .context("connect gate closed")?;
        let sim = SimClient {
            index: i,
            targets: args.targets,
            attempts: args.connect_attempts,
            endpoint: endpoint.clone(),
            tls: grpc_tls.clone(),
            shared: Arc::clone(&shared),
            stop: stop.clone(),
        };
        tokio::spawn(sim.run(permit));
    }
    let synced = wait_round(&shared, n, started, args.sync_timeout).await;
    let sync_time = started.elapsed();
    let connected = Duration::from_nanos(shared.last_first_response.load(Ordering::SeqCst))
        .saturating_sub(started - shared.epoch);
    let failed = shared.failed.load(Ordering::Relaxed);
    println!(
        "connect: {n} streams answered in {:.2} s; synced {synced}/{n} in {:.2} s ({} retries, {failed} failed)",
        connected.as_secs_f64(),
        sync_time.as_secs_f64(),
        shared.retries.load(Ordering::Relaxed),
    );
    if synced < n {
        report_errors(&shared);
        stop.cancel();
        bail!(
            "only {synced} of {n} clients synced within {:?}",
            args.sync_timeout
        );
    }

    // Let the control plane finish what the connects started (statuses), then weigh it.
    let idle_from = (Instant::now(), args.cp_pid.map(proc_cpu_ticks));
    tokio::time::sleep(args.pause).await;
    // CPU share of one core while every proxy is connected and nothing changes
    // (keepalive PINGs, periodic sweeps), over the pause.
    let cp_idle_cpu = match (args.cp_pid, idle_from.1) {
        (Some(pid), Some(Ok(before))) => proc_cpu_ticks(pid).ok().map(|after| {
            100.0 * after.saturating_sub(before) as f64
                / args.clk_tck as f64
                / idle_from.0.elapsed().as_secs_f64()
        }),
        _ => None,
    };
    if let Some(pct) = cp_idle_cpu {
        println!("control plane CPU with {n} proxies connected, no changes: {pct:.1} % of a core");
    }
    let rss_synced = args.cp_pid.map(|pid| proc_status_kb(pid, "VmRSS:"));
    if let Some(Ok(kb)) = rss_synced {
        println!(
            "control plane RSS with {n} proxies connected: {:.1} MB",
            mb(kb)
        );
    }

    // Rounds.
    let cpu_before = args.cp_pid.map(proc_cpu_ticks);
    let sim_cpu_before = proc_cpu_ticks(std::process::id());
    let rounds_started = Instant::now();
    let mut all = Vec::with_capacity(n * args.rounds as usize);
    let mut missed = 0usize;
    let mut early = 0usize;
    let mut write_ms = Vec::new();
    for round in 1..=args.rounds {
        let sharded = round % 2 == 1;
        let expected = if sharded {
            args.targets / 2
        } else {
            args.targets
        };
        shared.converged.store(0, Ordering::SeqCst);
        shared.target.store(pack(round, expected), Ordering::SeqCst);
        let sent = Instant::now();
        api.put_target(sharded)
            .await
            .with_context(|| format!("round {round}: API write"))?;
        let t0 = Instant::now();
        let t0_ns = since_epoch(&shared, t0);
        write_ms.push(ms(t0 - sent));
        let done = wait_round(&shared, n, t0, args.round_timeout).await;
        let mut latencies: Vec<u64> = Vec::with_capacity(done);
        for i in 0..n {
            if shared.round_done[i].load(Ordering::SeqCst) == round {
                let ack = shared.ack_ns[i].load(Ordering::SeqCst);
                if ack < t0_ns {
                    early += 1;
                }
                latencies.push(ack.saturating_sub(t0_ns));
            }
        }
        missed += n - latencies.len();
        latencies.sort_unstable();
        let summary = summarize(&latencies);
        println!(
            "round {round}: {} endpoints, write {:.1} ms, acked {}/{n}, p50 {:.1} ms, p99 {:.1} ms, last ACK {:.1} ms",
            expected,
            ms(t0 - sent),
            latencies.len(),
            summary.p50,
            summary.p99,
            summary.max
        );
        all.extend(latencies);
        if round < args.rounds {
            tokio::time::sleep(args.pause).await;
        }
    }
    let rounds_wall = rounds_started.elapsed();
    let cpu_rounds = match (args.cp_pid, cpu_before) {
        (Some(pid), Some(Ok(before))) => proc_cpu_ticks(pid)
            .ok()
            .map(|after| after.saturating_sub(before) as f64 / args.clk_tck as f64),
        _ => None,
    };
    let sim_cpu_rounds = match (sim_cpu_before, proc_cpu_ticks(std::process::id())) {
        (Ok(before), Ok(after)) => Some(after.saturating_sub(before) as f64 / args.clk_tck as f64),
        _ => None,
    };
    let rss_after = args.cp_pid.map(|pid| proc_status_kb(pid, "VmRSS:"));
    let hwm_after = args.cp_pid.map(|pid| proc_status_kb(pid, "VmHWM:"));

    all.sort_unstable();
    let total = summarize(&all);
    let failed = shared.failed.load(Ordering::Relaxed);
    println!(
        "push latency over {} ACKs ({} rounds x {n}): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {missed} missed, {failed} streams failed",
        all.len(),
        args.rounds,
        total.p50,
        total.p90,
        total.p99,
        total.max
    );
    if early > 0 {
        println!("note: {early} ACKs were sent before the API write returned (counted as 0 ms)");
    }
    if let Some(secs) = cpu_rounds {
        println!(
            "control plane CPU over the rounds: {secs:.2} s in {:.1} s wall",
            rounds_wall.as_secs_f64()
        );
    }
    if let Some(secs) = sim_cpu_rounds {
        println!("simulator CPU over the rounds: {secs:.2} s");
    }
    let self_rss = proc_status_kb(std::process::id(), "VmRSS:").unwrap_or(0);

    let mut line = format!(
        "RESULT n={n} targets={} rounds={} connect_s={:.2} sync_s={:.2} retries={} failed={failed} missed={missed} \
         p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} write_ms_max={:.1} sim_rss_mb={:.1}",
        args.targets,
        args.rounds,
        connected.as_secs_f64(),
        sync_time.as_secs_f64(),
        shared.retries.load(Ordering::Relaxed),
        total.p50,
        total.p90,
        total.p99,
        total.max,
        write_ms.iter().copied().fold(0.0, f64::max),
        mb(self_rss),
    );
    if let Some(Ok(kb)) = rss_synced {
        let _ = write!(line, " cp_rss_synced_kb={kb}");
    }
    if let Some(Ok(kb)) = rss_after {
        let _ = write!(line, " cp_rss_after_kb={kb}");
    }
    if let Some(Ok(kb)) = hwm_after {
        let _ = write!(line, " cp_hwm_kb={kb}");
    }
    if let Some(secs) = cpu_rounds {
        let _ = write!(
            line,
            " cp_cpu_rounds_s={secs:.2} rounds_wall_s={:.2}",
            rounds_wall.as_secs_f64()
        );
    }
    if let Some(secs) = sim_cpu_rounds {
        let _ = write!(line, " sim_cpu_rounds_s={secs:.2}");
    }
    if let Some(pct) = cp_idle_cpu {
        let _ = write!(line, " cp_idle_cpu_pct={pct:.1}");
    }
    println!("{line}");

    stop.cancel();
    if failed > 0 || missed > 0 {
        report_errors(&shared);
        bail!("{failed} streams failed and {missed} client-rounds did not converge");
    }
    Ok(())
}

/// Waits until `n` clients completed the current round, or `timeout` after `from`;
/// returns how many did.
async fn wait_round(shared: &Shared, n: usize, from: Instant, timeout: Duration) -> usize {
    let deadline = from + timeout;
    loop {
        let done = shared.converged.load(Ordering::SeqCst);
        if done >= n || Instant::now() >= deadline {
            return done;
        }
        // Everyone else failed: nobody will complete the round.
        if done + shared.failed.load(Ordering::Relaxed) >= n {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn report_errors(shared: &Shared) {
    let errors = shared.errors.lock().unwrap_or_else(PoisonError::into_inner);
    for error in errors.iter() {
        eprintln!("xds_sim: error: {error}");
    }
}

// === one simulated proxy ===

/// One simulated proxy; consumed by [`SimClient::run`].
struct SimClient {
    index: usize,
    targets: usize,
    attempts: u32,
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl SimClient {
    /// Connects (with retries), then serves the stream until it ends or the simulator
    /// stops. `permit` is released at the first response, or on giving up.
    async fn run(self, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut permit = Some(permit);
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        let (tx, mut responses) = loop {
            attempt += 1;
            match self.open().await {
                Ok(stream) => break stream,
                Err(error) if attempt >= self.attempts => {
                    self.fail(format!(
                        "sim-{}: giving up after {attempt} attempts: {error:#}",
                        self.index
                    ));
                    return;
                }
                Err(_) => {
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    let jitter = Duration::from_millis(fastrand_ms(self.index, attempt));
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(backoff + jitter) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(3));
                }
            }
        };
        self.shared.open.fetch_add(1, Ordering::Relaxed);
        let mut endpoints: Option<usize> = None;
        let error = loop {
            let message = tokio::select! {
                () = self.stop.cancelled() => return,
                message = responses.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => break "the control plane closed the stream".to_owned(),
                Err(status) => break format!("stream failed: {status}"),
            };
            if permit.take().is_some() {
                let now = since_epoch(&self.shared, Instant::now());
                self.shared
                    .last_first_response
                    .fetch_max(now, Ordering::SeqCst);
            }
            let is_service = response.type_url == pb::SERVICE_TYPE_URL;
            if is_service {
                if let Some(count) = endpoint_count(&response) {
                    endpoints = Some(count);
                }
            }
            let ack = DeltaDiscoveryRequest {
                type_url: response.type_url,
                response_nonce: response.nonce,
                ..DeltaDiscoveryRequest::default()
            };
            if tx.send(ack).is_err() {
                break "the request stream closed".to_owned();
            }
            if is_service {
                self.record(endpoints);
            }
        };
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        if !self.stop.is_cancelled() {
            self.fail(format!("sim-{}: {error}", self.index));
        }
    }

    /// Opens the connection and the stream, and sends the subscriptions.
    async fn open(
        &self,
    ) -> anyhow::Result<(
        mpsc::UnboundedSender<DeltaDiscoveryRequest>,
        tonic::Streaming<DeltaDiscoveryResponse>,
    )> {
        let channel = self
            .endpoint
            .connect_with_connector(Connector::new(self.tls.clone(), Duration::from_secs(5)))
            .await
            .context("connect")?;
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let (tx, rx) = mpsc::unbounded_channel();
        let name = format!("{TARGET}.{NAMESPACE}");
        let node_id = format!("{NAMESPACE}/sim-{}", self.index);
        for (first, type_url) in [
            (true, pb::SERVICE_TYPE_URL),
            (false, pb::ROUTE_TABLE_TYPE_URL),
        ] {
            let _ = tx.send(DeltaDiscoveryRequest {
                node: first.then(|| Node {
                    id: node_id.clone(),
                    ..Node::default()
                }),
                type_url: type_url.to_owned(),
                resource_names_subscribe: vec![name.clone()],
                ..DeltaDiscoveryRequest::default()
            });
        }
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let mut request = tonic::Request::new(requests);
        request.metadata_mut().insert_bin(
            pb::REGISTRATION_METADATA_KEY,
            MetadataValue::from_bytes(&self.registration().encode_to_vec()),
        );
        if let Some(token) = &self.shared.workload_tokens[self.label_set().index()] {
            request.metadata_mut().insert(
                pb::AUTHORIZATION_METADATA_KEY,
                format!("{}{token}", pb::BEARER_PREFIX)
                    .parse()
                    .context("the workload token is not a valid header value")?,
            );
        }
        let responses = client
            .delta_aggregated_resources(request)
            .await
            .context("opening the stream")?
            .into_inner();
        Ok((tx, responses))
    }

    /// This client's labels: targets first, the first half of them in shard `a`.
    fn label_set(&self) -> LabelSet {
        if self.index >= self.targets {
            LabelSet::Plain
        } else if self.index < self.targets / 2 {
            LabelSet::Shard
        } else {
            LabelSet::Target
        }
    }

    /// This client's registration: `sim-<i>` with a distinct 10.x.y.z address.
    fn registration(&self) -> pb::Registration {
        let i = self.index;
        let labels = self.label_set().labels();
        let host = i + 1;
        pb::Registration {
            name: format!("sim-{i}"),
            namespace: NAMESPACE.to_owned(),
            service_account: "sim".to_owned(),
            trust_domain: "cluster.local".to_owned(),
            address: format!(
                "10.{}.{}.{}",
                (host >> 16) & 0xff,
                (host >> 8) & 0xff,
                host & 0xff
            ),
            labels,
            ports: vec![pb::WorkloadPort {
                port: 8080,
                protocol: pb::Protocol::Http.into(),
            }],
            proxy_version: "xds-sim".to_owned(),
            issued_certificate: false,
            ..pb::Registration::default()
        }
    }

    /// Called right after ACKing a `Service` response: completes the current round if
    /// the client now holds the endpoint count that round expects.
    fn record(&self, endpoints: Option<usize>) {
        let now = since_epoch(&self.shared, Instant::now());
        let (round, expected) = unpack(self.shared.target.load(Ordering::SeqCst));
        if endpoints != Some(expected) {
            return;
        }
        let done = &self.shared.round_done[self.index];
        if done.load(Ordering::SeqCst) == round {
            return;
        }
        self.shared.ack_ns[self.index].store(now, Ordering::SeqCst);
        done.store(round, Ordering::SeqCst);
        self.shared.converged.fetch_add(1, Ordering::SeqCst);
    }

    fn fail(&self, error: String) {
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self
            .shared
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if errors.len() < KEPT_ERRORS {
            errors.push(error);
        }
    }
}

/// Endpoints of `target.default` in a `Service` response: `Some(0)` if it was removed,
/// `None` if the response does not mention it (or it does not decode).
fn endpoint_count(response: &DeltaDiscoveryResponse) -> Option<usize> {
    let name = format!("{TARGET}.{NAMESPACE}");
    if response.removed_resources.contains(&name) {
        return Some(0);
    }
    let body = response
        .resources
        .iter()
        .find(|r| r.name == name)?
        .resource
        .as_ref()?;
    pb::Service::decode(body.value.as_slice())
        .ok()
        .map(|s| s.endpoints.len())
}

// === the HTTP API ===

/// Minimal client of the control plane's HTTP API.
struct Api {
    base: String,
    admin_token: Option<String>,
    http: HttpClient<Connector, Full<Bytes>>,
}

impl Api {
    fn new(base: &str, admin_token: Option<String>, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            admin_token,
            http: HttpClient::builder(TokioExecutor::new())
                .build(Connector::new(tls, Duration::from_secs(5))),
        }
    }

    /// Issues a workload token for `default/sim` granting `labels`.
    async fn workload_token(&self, labels: &HashMap<String, String>) -> anyhow::Result<String> {
        let body = serde_json::json!({
            "namespace": NAMESPACE,
            "serviceAccount": "sim",
            "labels": labels,
        });
        let answer = self
            .send(http::Method::POST, "/v1/tokens/workload", &body)
            .await?;
        let reply: serde_json::Value =
            serde_json::from_slice(&answer).context("the token answer is not JSON")?;
        reply["token"]
            .as_str()
            .map(str::to_owned)
            .context("the token answer carries no token")
    }

    /// Creates or replaces Service `target`: selecting every target, or (`sharded`) the
    /// half labelled `shard: a`.
    async fn put_target(&self, sharded: bool) -> anyhow::Result<()> {
        let mut selector = serde_json::json!({ "role": TARGET });
        if sharded {
            selector["shard"] = "a".into();
        }
        let body = serde_json::json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "Service",
            "metadata": { "name": TARGET, "namespace": NAMESPACE },
            "spec": {
                "selector": selector,
                "ports": [{ "port": 80, "targetPort": 8080, "protocol": "http" }],
            },
        });
        let path = format!("/v1/namespaces/{NAMESPACE}/services/{TARGET}");
        self.send(http::Method::PUT, &path, &body).await?;
        Ok(())
    }

    /// Sends `body` as JSON to `path`; the answer's body, if the status is a success.
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Bytes> {
        let uri = format!("{}{path}", self.base);
        let mut request = http::Request::builder().method(method.clone()).uri(&uri);
        if let Some(token) = &self.admin_token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))
            .context("building the request")?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("{method} {uri}"))?;
        let status = response.status();
        let text = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{method} {uri}: reading the response"))?
            .to_bytes();
        ensure!(
            status.is_success(),
            "{method} {uri}: {status}: {}",
            String::from_utf8_lossy(&text)
        );
        Ok(text)
    }
}

// === /proc ===

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`).
fn proc_status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .with_context(|| format!("{path} has no {field} line"))
}

/// utime + stime of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn proc_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces: count fields after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path}: field {n} missing"))
    };
    Ok(field(14)? + field(15)?)
}

// === small helpers ===

fn pack(round: u32, expected: usize) -> u64 {
    (u64::from(round) << 32) | (expected as u64 & 0xffff_ffff)
}

fn unpack(packed: u64) -> (u32, usize) {
    ((packed >> 32) as u32, (packed & 0xffff_ffff) as usize)
}

fn since_epoch(shared: &Shared, at: Instant) -> u64 {
    at.saturating_duration_since(shared.epoch).as_nanos() as u64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Nearest-rank percentiles of sorted nanosecond samples, in milliseconds.
fn summarize(sorted: &[u64]) -> Summary {
    let Some(&max) = sorted.last() else {
        return Summary::default();
    };
    let at = |p: f64| {
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
    };
    Summary {
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: max as f64 / 1e6,
    }
}

/// A deterministic jitter of 0-99 ms for a retry, so retries do not arrive together.
fn fastrand_ms(index: usize, attempt: u32) -> u64 {
    let mut x = (index as u64) ^ (u64::from(attempt) << 40) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % 100
}
