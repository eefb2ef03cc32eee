//! `weft run` as users run it, on loopback without root: a server proxy on 127.0.0.2 in
//! front of an echo app, and `weft run` starting a client proxy and then an app that
//! calls the echo app through it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_testkit::ca::TestPki;
use weft_testkit::echo;
use weft_testkit::process::WeftProcess;

/// A port free on `ip`, reserved for this test process.
fn free_port(ip: &str) -> u16 {
    weft_testkit::ports::free_port(ip.parse::<std::net::IpAddr>().expect("an IP address"))
}

fn weft() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

/// A server proxy and its echo app, and a client config whose outbound listener
/// reaches them.
struct Mesh {
    pki: TestPki,
    dir: weft_testkit::TempDir,
    app: echo::Server,
    _server: WeftProcess,
    hbone: u16,
}

impl Mesh {
    async fn start() -> Mesh {
        let pki = TestPki::new("cluster.local").expect("pki");
        let dir = weft_testkit::tempdir().expect("tempdir");
        let app = echo::spawn_http("127.0.0.1:0".parse().expect("addr"), "app")
            .await
            .expect("app");
        let app_port = app.addr().port();
        let (admin, hbone) = (free_port("127.0.0.2"), free_port("127.0.0.2"));
        let certs = pki.issue("default", "api").expect("certs");
        let config = dir.path().join("server.yaml");
        std::fs::write(
            &config,
            format!(
                "workload: {{ name: api, serviceAccount: api, address: 127.0.0.2, ports: [{{ port: {app_port}, protocol: http }}] }}\n\
                 certificates: {{ cert: {}, key: {}, trustBundle: {} }}\n\
                 listeners: {{ admin: 127.0.0.2:{admin}, hbone: 127.0.0.2:{hbone}, metrics: null, outboundCapture: null }}\n",
                certs.cert.display(),
                certs.key.display(),
                certs.trust_bundle.display(),
            ),
        )
        .expect("write server config");
        let server = tokio::task::spawn_blocking(move || {
            WeftProcess::spawn_local(
                &weft(),
                &["proxy", "--config", config.to_str().expect("utf-8")],
                &[],
                SocketAddr::from(([127, 0, 0, 2], admin)),
            )
        })
        .await
        .expect("join")
        .expect("server proxy ready");
        Mesh {
            pki,
            dir,
            app,
            _server: server,
            hbone,
        }
    }

    /// A client config (fresh ports) whose listener reaches the echo app; returns the
    /// file and the listener's port.
    fn client(&self, name: &str) -> (PathBuf, u16) {
        let (admin, listen) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
        let certs = self.pki.issue("default", "web").expect("certs");
        let path = self.dir.path().join(format!("{name}.yaml"));
        let app_port = self.app.addr().port();
        std::fs::write(
            &path,
            format!(
                "workload: {{ name: web, serviceAccount: web, address: 127.0.0.1 }}\n\
                 certificates: {{ cert: {}, key: {}, trustBundle: {} }}\n\
                 listeners: {{ admin: 127.0.0.1:{admin}, hbone: null, metrics: null, outboundCapture: null }}\n\
                 outbound: [{{ listen: \"127.0.0.1:{listen}\", service: api, port: 80 }}]\n\
                 services:\n  - name: api\n    ports: [{{ port: 80, targetPort: {app_port}, protocol: http }}]\n    \
                 endpoints: [{{ address: 127.0.0.2, hbone: \"127.0.0.2:{}\", identity: spiffe://cluster.local/ns/default/sa/api }}]\n",
                certs.cert.display(),
                certs.key.display(),
                certs.trust_bundle.display(),
                self.hbone,
            ),
        )
        .expect("write client config");
        (path, listen)
    }
}

fn weft_run(config: &Path, app: &[&str]) -> Command {
    let mut command = Command::new(weft());
    command
        .args(["run", "--config", config.to_str().expect("utf-8"), "--"])
        .args(app);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_first_request_succeeds_and_a_job_ends_weft_run_with_its_exit_code() {
    let mesh = Mesh::start().await;
    let (config, listen) = mesh.client("job");
    let url = format!("http://127.0.0.1:{listen}/first");
    let started = Instant::now();
    // The app's very first action is a request through the proxy: no retry, no wait.
    let out = tokio::task::spawn_blocking(move || {
        weft_run(&config, &["curl", "-sS", "--fail", "--max-time", "5", &url])
            .output()
            .expect("weft run")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "the first request failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/first"));
    assert_eq!(
        mesh.app.recorder().count(),
        1,
        "exactly one request reached the app"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "weft run took {:?} after a job that exited at once",
        started.elapsed()
    );

    let (config, _) = mesh.client("failing-job");
    let out = tokio::task::spawn_blocking(move || {
        weft_run(&config, &["sh", "-c", "exit 3"])
            .output()
            .expect("weft run")
    })
    .await
    .expect("join");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the app's exit code is weft run's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_goes_to_the_app_and_the_proxy_serves_until_it_exits() {
    let mesh = Mesh::start().await;
    let (config, listen) = mesh.client("stream");
    // An app that shuts down gracefully: on TERM it sends 20 more requests, then exits
    // with the number of requests that failed.
    let script = format!(
        "trap 'stopping=1' TERM; n=0; after=0; fails=0; \
         while :; do \
           curl -s --fail --max-time 5 -o /dev/null http://127.0.0.1:{listen}/ || fails=$((fails+1)); \
           n=$((n+1)); \
           if [ -n \"$stopping\" ]; then after=$((after+1)); [ $after -ge 20 ] && break; fi; \
         done; \
         echo \"requests=$n failed=$fails\"; exit $fails"
    );
    let mut child = weft_run(&config, &["sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("weft run");
    let deadline = Instant::now() + Duration::from_secs(20);
    while mesh.app.recorder().count() < 10 {
        assert!(Instant::now() < deadline, "the app never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = mesh.app.recorder().count();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let out = tokio::task::spawn_blocking(move || {
        let _ = child.stdin.take();
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "requests failed after SIGTERM: {stdout}"
    );
    assert!(stdout.contains("failed=0"), "{stdout}");
    // The shell runs its trap after the curl in flight at SIGTERM returns, and counts
    // that request among the 20; it may already have reached the app before `before`
    // was read. So at least 19 requests were sent after the signal.
    assert!(
        mesh.app.recorder().count() >= before + 19,
        "the proxy kept serving the app's shutdown requests: {} before, {} after",
        before,
        mesh.app.recorder().count()
    );
}
