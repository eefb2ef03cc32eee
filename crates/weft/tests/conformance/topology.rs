//! The two paths every conformance vector crosses, on loopback and without root:
//!
//! - [`Hops::One`]: client → `weft proxy` explicit outbound listener (127.0.0.1) →
//!   origin, the service's endpoint having no `identity`, so the proxy dials it in
//!   plaintext.
//! - [`Hops::Two`]: client → outbound proxy (127.0.0.1) → HBONE mTLS → inbound proxy
//!   (127.0.0.2) → origin on 127.0.0.1, as in `tests/loopback.rs`.
//!
//! The origins are the caller's: [`Topology::start`] takes their addresses (each on
//! 127.0.0.1) and gives each one a *lane*: its own service (`origin-<i>`), its own
//! outbound listener and, on two hops, its own port of the inbound workload. Lanes never
//! share an upstream connection, so vectors in different lanes can run at the same time
//! and each origin's log belongs to one lane. The service port's protocol is the
//! caller's choice ([`PortProtocol`]), on both proxies.
//!
//! Not a general mesh fixture: no control plane, no routes, no policies; just the
//! framing and identity path an HTTP request takes.

use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use weft_testkit::ca::TestPki;
use weft_testkit::process::WeftProcess;

/// The trust domain of the test PKI.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The client workload's service account (the outbound proxy's identity).
pub const CLIENT_SA: &str = "client";

/// The server workload's service account (the inbound proxy's identity).
pub const SERVER_SA: &str = "origin";

/// The port every lane's service is declared on (what the client "dials").
pub const SERVICE_PORT: u16 = 80;

/// Which path a request takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hops {
    /// Outbound proxy → plaintext endpoint.
    One,
    /// Outbound proxy → HBONE → inbound proxy → app.
    Two,
}

/// The `protocol` declared on the service port (and, on two hops, the workload port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// `http`: HTTP/1.x or the HTTP/2 preface, parsed strictly.
    Http,
    /// `http2`: HTTP/2 only.
    Http2,
    /// `auto`: detected per connection.
    Auto,
}

/// One origin's path through the topology.
#[derive(Clone, Debug)]
pub struct Lane {
    /// Lane index (the `i` in `origin-<i>`).
    pub index: usize,
    /// The service name the outbound listener routes to.
    pub service: String,
    /// The outbound listener the client dials.
    pub listen: SocketAddr,
    /// The origin this lane ends at.
    pub app: SocketAddr,
}

/// Running proxies for one [`Hops`] × [`PortProtocol`], one [`Lane`] per origin.
/// Dropping it kills the proxies.
pub struct Topology {
    hops: Hops,
    protocol: PortProtocol,
    lanes: Vec<Lane>,
    // Declared before the directories: processes die before their files go.
    outbound: WeftProcess,
    inbound: Option<WeftProcess>,
    _dir: weft_testkit::TempDir,
    _pki: TestPki,
}

// === impl Hops ===

impl Hops {
    /// Both paths, in report order.
    pub const ALL: [Hops; 2] = [Hops::One, Hops::Two];

    /// `one hop` / `two hops`.
    pub fn label(self) -> &'static str {
        match self {
            Hops::One => "one hop",
            Hops::Two => "two hops",
        }
    }
}

impl fmt::Display for Hops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

// === impl PortProtocol ===

impl PortProtocol {
    /// The value of `protocol:` in the proxy config.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Http => "http",
            PortProtocol::Http2 => "http2",
            PortProtocol::Auto => "auto",
        }
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Topology ===

impl Topology {
    /// Starts the proxies of `hops` with every service port declared `protocol`, one lane
    /// per address in `apps` (each must listen on 127.0.0.1 already), and waits until
    /// each proxy's admin `/ready` answers.
    pub async fn start(hops: Hops, protocol: PortProtocol, apps: &[SocketAddr]) -> Self {
        assert!(!apps.is_empty(), "a topology needs at least one origin");
        for app in apps {
            assert_eq!(
                app.ip(),
                std::net::Ipv4Addr::LOCALHOST,
                "origins listen on 127.0.0.1 (the inbound proxy's appAddress)"
            );
        }
        let pki = TestPki::new(TRUST_DOMAIN).expect("test PKI");
        let dir = weft_testkit::tempdir().expect("tempdir");
        let lanes: Vec<Lane> = apps
            .iter()
            .enumerate()
            .map(|(index, app)| Lane {
                index,
                service: format!("origin-{index}"),
                listen: SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1"))),
                app: *app,
            })
            .collect();

        let inbound = match hops {
            Hops::One => None,
            Hops::Two => {
                let (admin, hbone) = (free_port("127.0.0.2"), free_port("127.0.0.2"));
                let certs = pki.issue("default", SERVER_SA).expect("server certs");
                let ports: Vec<String> = lanes
                    .iter()
                    .map(|l| format!("{{ port: {}, protocol: {protocol} }}", l.app.port()))
                    .collect();
                let yaml = format!(
                    "workload: {{ name: {SERVER_SA}, serviceAccount: {SERVER_SA}, address: 127.0.0.2, ports: [{}] }}\n\
                     certificates: {{ cert: {}, key: {}, trustBundle: {} }}\n\
                     listeners: {{ admin: 127.0.0.2:{admin}, hbone: 127.0.0.2:{hbone}, metrics: null, outboundCapture: null }}\n\
                     settings: {{ drainTimeout: 1s }}\n",
                    ports.join(", "),
                    certs.cert.display(),
                    certs.key.display(),
                    certs.trust_bundle.display(),
                );
                let path = write(dir.path(), "inbound.yaml", &yaml);
                let admin = SocketAddr::from(([127, 0, 0, 2], admin));
                Some((spawn(path, admin).await, hbone))
            }
        };

        let (admin, hbone) = (free_port("127.0.0.1"), inbound.as_ref().map(|(_, h)| *h));
        let mut yaml = format!(
            "workload: {{ name: {CLIENT_SA}, serviceAccount: {CLIENT_SA}, address: 127.0.0.1 }}\n"
        );
        if hops == Hops::Two {
            let certs = pki.issue("default", CLIENT_SA).expect("client certs");
            let _ = writeln!(
                yaml,
                "certificates: {{ cert: {}, key: {}, trustBundle: {} }}",
                certs.cert.display(),
                certs.key.display(),
                certs.trust_bundle.display(),
            );
        }
        let _ = writeln!(
            yaml,
            "listeners: {{ admin: 127.0.0.1:{admin}, hbone: null, metrics: null, outboundCapture: null }}\n\
             settings: {{ drainTimeout: 1s }}\noutbound:"
        );
        for lane in &lanes {
            let _ = writeln!(
                yaml,
                "  - {{ listen: \"{}\", service: {}, port: {SERVICE_PORT} }}",
                lane.listen, lane.service
            );
        }
        yaml.push_str("services:\n");
        for lane in &lanes {
            let endpoint = match hbone {
                None => "{ address: 127.0.0.1 }".to_owned(),
                Some(hbone) => format!(
                    "{{ address: 127.0.0.2, hbone: \"127.0.0.2:{hbone}\", identity: {} }}",
                    spiffe(SERVER_SA)
                ),
            };
            let _ = writeln!(
            yaml,
                "  - name: {}\n    ports: [{{ port: {SERVICE_PORT}, targetPort: {}, protocol: {protocol} }}]\n    \
                 policy: {{ outlierDetection: null }}\n    endpoints: [{endpoint}]",
                lane.service,
                lane.app.port(),
            );
        }
        let path = write(dir.path(), "outbound.yaml", &yaml);
        let outbound = spawn(path, SocketAddr::from(([127, 0, 0, 1], admin))).await;

        Self {
            hops,
            protocol,
            lanes,
            outbound,
            inbound: inbound.map(|(p, _)| p),
            _dir: dir,
            _pki: pki,
        }
    }

    /// Which path this is.
    pub fn hops(&self) -> Hops {
        self.hops
    }

    /// The declared port protocol.
    pub fn protocol(&self) -> PortProtocol {
        self.protocol
    }

    /// One lane per origin, in the order the origins were given.
    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The `x-forwarded-client-cert` the origin must see: on two hops exactly the one
    /// the inbound proxy sets for the client workload; on one hop none at all.
    pub fn expected_xfcc(&self) -> Option<String> {
        match self.hops {
            Hops::One => None,
            Hops::Two => Some(format!(
                "By={};URI={}",
                spiffe(SERVER_SA),
                spiffe(CLIENT_SA)
            )),
        }
    }

    /// The last `lines` log lines of each proxy, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = format!(
            "--- outbound proxy ---\n{}\n",
            self.outbound.log_tail(lines)
        );
        if let Some(inbound) = &self.inbound {
            let _ = writeln!(out, "--- inbound proxy ---\n{}", inbound.log_tail(lines));
        }
        out
    }

    /// Whether both proxies are still running (a crash is a finding of its own).
    pub fn alive(&mut self) -> bool {
        let outbound = matches!(self.outbound.try_wait(), Ok(None));
        let inbound = self
            .inbound
            .as_mut()
            .is_none_or(|p| matches!(p.try_wait(), Ok(None)));
        outbound && inbound
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("hops", &self.hops)
            .field("protocol", &self.protocol)
            .field("lanes", &self.lanes)
            .finish_non_exhaustive()
    }
}

/// `spiffe://cluster.local/ns/default/sa/<sa>`.
pub fn spiffe(sa: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/default/sa/{sa}")
}

/// A port free on `ip`, reserved for this test process.
pub fn free_port(ip: &str) -> u16 {
    weft_testkit::ports::free_port(ip.parse::<std::net::IpAddr>().expect("an IP address"))
}

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// The proxy under test: this build's `weft`, or `WEFT_CONFORMANCE_BIN` (to measure
/// another build, e.g. an earlier release, against the same vectors).
fn weft_binary() -> PathBuf {
    std::env::var_os("WEFT_CONFORMANCE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weft")), PathBuf::from)
}

async fn spawn(config: PathBuf, admin: SocketAddr) -> WeftProcess {
    let weft = weft_binary();
    tokio::task::spawn_blocking(move || {
        WeftProcess::spawn_local(
            &weft,
            &["proxy", "--config", config.to_str().expect("utf-8 path")],
            &[],
            admin,
        )
    })
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("proxy did not start: {e}"))
}
