//! A TLS 1.3 handshake load generator: new mTLS connections per second, one request each.
//!
//! `C` concurrent loops run for `--duration` seconds (after `--warmup`); each iteration
//! is TCP connect → full TLS 1.3 handshake presenting a client certificate (aws-lc-rs
//! provider, session resumption off, so every connection is a full handshake) → one
//! request → close:
//!
//! - `--mode weft`: ALPN `h2` to a Weft HBONE listener, the server's SPIFFE ID checked
//!   (`--server-id`), an HTTP/2 `CONNECT` to `--target` (the workload's `address:port`),
//!   then an HTTP/1.1 `GET --path` inside the tunnel;
//! - `--mode http1`: ALPN `http/1.1` to a TLS-terminating HTTP proxy (HAProxy), the
//!   server chain checked against the CA for `--server-name`, then an HTTP/1.1 `GET`.
//!
//! Every response must be `200`. With `--pid`, the server's CPU time (utime + stime from
//! `/proc/PID/stat`) over the measured window gives handshakes per CPU-second, i.e. per
//! core; the generator's own CPU time is reported too (if it is near 1 s per second,
//! the generator is what limits the rate, and only the per-CPU-second figure compares).
//!
//! ```sh
//! taskset -c 1 target/release/examples/handshake_load --mode http1 --addr 127.0.0.1:8443 \
//!     --cert client.crt --key client.key --ca ca.crt -c 16 --duration 10 --pid "$HAPROXY_PID"
//! ```
//!
//! The last line of the output is `RESULT key=value ...` for scripts (`bench/handshakes.sh`).
//! The exit status is non-zero if no iteration succeeded.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use weft_tls::{Credentials, SpiffeId};

/// How many distinct error messages are kept verbatim for the report.
const KEPT_ERRORS: usize = 5;

/// What kind of server is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A Weft HBONE listener: ALPN h2, HTTP/2 CONNECT, HTTP/1.1 GET in the tunnel.
    Weft,
    /// A TLS-terminating HTTP/1.1 proxy (HAProxy): ALPN http/1.1, one GET.
    Http1,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "New TLS 1.3 mTLS connections per second, one request each")]
struct Args {
    /// Server kind.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Server address (TCP).
    #[arg(long)]
    addr: SocketAddr,
    /// Client certificate chain (PEM, leaf first).
    #[arg(long)]
    cert: PathBuf,
    /// Client private key (PEM, PKCS#8 or SEC1).
    #[arg(long)]
    key: PathBuf,
    /// CA certificate(s) the server must chain to (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// `--mode http1`: TLS server name (a DNS SAN of the server certificate).
    #[arg(long, default_value = "server")]
    server_name: String,
    /// `--mode weft`: the SPIFFE ID the server must present.
    #[arg(long, default_value = "spiffe://cluster.local/ns/default/sa/server")]
    server_id: String,
    /// `--mode weft`: the CONNECT authority (the workload's address:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: String,
    /// Path of the GET request.
    #[arg(long, default_value = "/100b")]
    path: String,
    /// Concurrent connection loops.
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Per-iteration timeout in milliseconds (counts as an error).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Server process whose CPU time is measured over the window.
    #[arg(long)]
    pid: Option<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

/// What every loop shares.
struct Setup {
    mode: Mode,
    addr: SocketAddr,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    target: String,
    path: String,
    timeout: Duration,
}

/// Counters and samples of the measured window.
#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    errors: AtomicU64,
    warmup_ok: AtomicU64,
    warmup_errors: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    kept_errors: Mutex<Vec<String>>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.duration > 0, "--duration must be at least 1");
    ensure!(args.clk_tck > 0, "--clk-tck must be positive");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

/// The client configuration: aws-lc-rs, TLS 1.3 only, client certificate, no resumption.
fn client_config(args: &Args) -> anyhow::Result<Arc<ClientConfig>> {
    match args.mode {
        Mode::Weft => {
            // The HBONE client configuration Weft itself uses (ALPN h2, resumption off,
            // the server's SPIFFE ID checked after chain verification).
            let creds = Credentials::from_pem_files(&args.cert, &args.key, &args.ca)
                .context("loading the client credentials")?;
            let expected: SpiffeId = args
                .server_id
                .parse()
                .with_context(|| format!("--server-id {:?}", args.server_id))?;
            Ok(creds.client_config(&expected)?)
        }
        Mode::Http1 => {
            let chain = CertificateDer::pem_file_iter(&args.cert)
                .with_context(|| format!("reading {}", args.cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", args.cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&args.key)
                .with_context(|| format!("reading {}", args.key.display()))?;
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(&args.ca)
                .with_context(|| format!("reading {}", args.ca.display()))?
            {
                roots
                    .add(ca.with_context(|| format!("parsing {}", args.ca.display()))?)
                    .context("adding a CA certificate")?;
            }
            let mut config = ClientConfig::builder_with_provider(weft_tls::crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .context("TLS 1.3 with the aws-lc-rs provider")?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .context("client certificate")?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config.resumption = rustls::client::Resumption::disabled();
            Ok(Arc::new(config))
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = client_config(&args)?;
    let server_name = match args.mode {
        // Weft does not check the name (SPIFFE IDs are not DNS names).
        Mode::Weft => ServerName::IpAddress(args.addr.ip().into()),
        Mode::Http1 => ServerName::try_from(args.server_name.clone())
            .with_context(|| format!("--server-name {:?}", args.server_name))?,
    };
    let setup = Arc::new(Setup {
        mode: args.mode,
        addr: args.addr,
        connector: TlsConnector::from(config),
        server_name,
        target: args.target.clone(),
        path: args.path.clone(),
        timeout: Duration::from_millis(args.timeout_ms),
    });

    // One checked iteration first: a broken setup fails loudly instead of as a rate of 0.
    let negotiated = tokio::time::timeout(setup.timeout, describe(&setup))
        .await
        .context("the first connection timed out")?
        .context("the first connection failed")?;
    println!("negotiated: {negotiated}");
    one_iteration(&setup)
        .await
        .context("the first connection failed")?;

    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let measure_to = measure_from + Duration::from_secs(args.duration);

    let mut loops = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let setup = setup.clone();
        let stats = stats.clone();
        loops.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let t0 = Instant::now();
                if t0 >= measure_to {
                    break;
                }
                let result = one_iteration(&setup).await;
                let t1 = Instant::now();
                let measured = t0 >= measure_from && t1 <= measure_to;
                match result {
                    Ok(()) if measured => {
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        let us = t1.duration_since(t0).as_micros();
                        lat.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    Ok(()) => {
                        stats.warmup_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if measured {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                        } else {
                            stats.warmup_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        keep_error(&stats, format!("{e:#}"));
                        // Do not spin on a refused port.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            stats
                .latencies_us
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(lat);
        }));
    }

    // CPU times at the edges of the measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let srv0 = args.pid.map(proc_cpu_ticks).transpose()?;
    let me0 = proc_cpu_ticks_self()?;
    let wall0 = Instant::now();
    tokio::time::sleep_until(measure_to.into()).await;
    let srv1 = args.pid.map(proc_cpu_ticks).transpose()?;
    let me1 = proc_cpu_ticks_self()?;
    let wall = wall0.elapsed().as_secs_f64();

    for handle in loops {
        handle.await.context("a load loop panicked")?;
    }

    let ok = stats.ok.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let mut lat = std::mem::take(
        &mut *stats
            .latencies_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * lat.len() as f64).ceil().max(1.0) as usize;
        lat[rank.min(lat.len()) - 1]
    };
    let rate = ok as f64 / wall;
    let tck = args.clk_tck as f64;
    let me_cpu = (me1 - me0) as f64 / tck;

    println!(
        "mode={:?} addr={} c={} duration={}s warmup={}s threads={}",
        args.mode, args.addr, args.concurrency, args.duration, args.warmup, args.threads
    );
    println!(
        "connections: {ok} ok, {errors} errors in {wall:.2} s = {rate:.0} conn/s \
         (warm-up: {} ok, {} errors)",
        stats.warmup_ok.load(Ordering::Relaxed),
        stats.warmup_errors.load(Ordering::Relaxed)
    );
    println!(
        "latency per connect+handshake+request+close: p50 {} us, p90 {} us, p99 {} us, max {} us",
        pct(50.0),
        pct(90.0),
        pct(99.0),
        lat.last().copied().unwrap_or(0)
    );
    println!(
        "load generator CPU: {me_cpu:.2} s ({:.0} % of one core)",
        100.0 * me_cpu / wall
    );
    let mut result = format!(
        "RESULT ok={ok} errors={errors} wall_s={wall:.3} conns_per_s={rate:.1} \
         p50_us={} p99_us={} gen_cpu_s={me_cpu:.2}",
        pct(50.0),
        pct(99.0)
    );
    if let (Some(a), Some(b)) = (srv0, srv1) {
        let cpu = (b - a) as f64 / tck;
        let per_cpu_s = if cpu > 0.0 { ok as f64 / cpu } else { 0.0 };
        println!(
            "server CPU: {cpu:.2} s ({:.0} % of one core) -> {per_cpu_s:.0} conns per CPU-second",
            100.0 * cpu / wall
        );
        write!(
            result,
            " server_cpu_s={cpu:.2} conns_per_cpu_s={per_cpu_s:.1}"
        )
        .context("formatting the result")?;
    }
    for e in stats
        .kept_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        println!("error: {e}");
    }
    println!("{result}");
    if ok == 0 {
        bail!("no connection succeeded in the measured window");
    }
    Ok(())
}

/// One handshake, reporting what was negotiated (version, cipher suite, key exchange
/// group, ALPN) so that a difference between servers shows.
async fn describe(setup: &Setup) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(setup.addr).await.context("connect")?;
    let tls = setup
        .connector
        .connect(setup.server_name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    let conn = tls.get_ref().1;
    Ok(format!(
        "version={:?} suite={:?} group={:?} alpn={:?}",
        conn.protocol_version(),
        conn.negotiated_cipher_suite().map(|suite| suite.suite()),
        conn.negotiated_key_exchange_group()
            .map(rustls::crypto::SupportedKxGroup::name),
        conn.alpn_protocol().map(String::from_utf8_lossy)
    ))
}

/// Keeps the first few distinct error messages for the report.
fn keep_error(stats: &Stats, msg: String) {
    let mut kept = stats
        .kept_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if kept.len() < KEPT_ERRORS && !kept.contains(&msg) {
        kept.push(msg);
    }
}

/// One connection: connect, handshake, one request, close; bounded by the timeout.
async fn one_iteration(setup: &Setup) -> anyhow::Result<()> {
    tokio::time::timeout(setup.timeout, connection(setup))
        .await
        .context("timed out")?
}

async fn connection(setup: &Setup) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(setup.addr).await.context("connect")?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let tls = setup
        .connector
        .connect(setup.server_name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    match setup.mode {
        Mode::Http1 => http1_get(TokioIo::new(tls), &setup.path, "server").await,
        Mode::Weft => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .context("HTTP/2 handshake")?;
            let conn = tokio::spawn(conn);
            let request = Request::builder()
                .method(Method::CONNECT)
                .uri(setup.target.as_str())
                .body(Empty::<Bytes>::new())
                .context("building the CONNECT request")?;
            let response = sender.send_request(request).await.context("CONNECT")?;
            if response.status() != StatusCode::OK {
                bail!("CONNECT answered {}", response.status());
            }
            let tunnel = hyper::upgrade::on(response)
                .await
                .context("CONNECT tunnel")?;
            let result = http1_get(tunnel, &setup.path, &setup.target).await;
            // Close: no more streams; hyper sends GOAWAY and shuts the connection down.
            drop(sender);
            finish(conn).await;
            result
        }
    }
}

/// An HTTP/1.1 GET over `io`; the response must be 200. Closes the connection after.
async fn http1_get<T>(io: T, path: &str, host: &str) -> anyhow::Result<()>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP/1.1 handshake")?;
    let conn = tokio::spawn(conn);
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, host)
        .body(Empty::<Bytes>::new())
        .context("building the GET request")?;
    let response = sender.send_request(request).await.context("GET")?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .context("reading the response body")?;
    ensure!(status == StatusCode::OK, "GET {path} answered {status}");
    // Dropping the sender lets the idle connection finish, which shuts the stream down
    // (TLS close_notify, then FIN).
    drop(sender);
    finish(conn).await;
    Ok(())
}

/// Waits briefly for a connection task to end on its own, then aborts it.
async fn finish<T>(conn: tokio::task::JoinHandle<T>) {
    let abort = conn.abort_handle();
    if tokio::time::timeout(Duration::from_millis(200), conn)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// utime + stime of a process, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// utime + stime of this process, in clock ticks.
fn proc_cpu_ticks_self() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    parse_cpu_ticks(&stat).context("parsing /proc/self/stat")
}

fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    // The command name (field 2) may hold spaces: fields from 3 on follow the last ')'.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .context("no ') ' in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. indices 11 and 12 from field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}
