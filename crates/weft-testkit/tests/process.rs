//! Processes under test: readiness, logs, signals and cleanup, with a fake `weft` (a
//! Python HTTP server that answers `/ready`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use weft_testkit::process::{Error, WeftProcess};
use weft_testkit::{e2e_guard, Topology};

/// Answers 200 on /ready after a short start-up delay; exits 0 on SIGTERM.
const FAKE_WEFT: &str = r#"
import http.server, os, signal, sys, time
port = int(sys.argv[1])
class Admin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 404)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
def stop(*_):
    print("got sigterm", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(0.3)
print("fake weft starting with MODE=" + os.environ.get("MODE", "?"), flush=True)
http.server.HTTPServer(("127.0.0.1", port), Admin).serve_forever()
"#;

fn python() -> &'static Path {
    Path::new("python3")
}

fn free_local_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()))
}

#[test]
fn weft_process_waits_for_ready_inside_the_host() {
    if !e2e_guard("weft_process_waits_for_ready_inside_the_host") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let host = topology.add_host("proxy").expect("host");
    // Each host has its own loopback, so fixed ports are fine.
    let admin = SocketAddr::from(([127, 0, 0, 1], 15000));
    let mut weft = WeftProcess::spawn(
        &host,
        python(),
        &["-c", FAKE_WEFT, "15000"],
        &[("MODE", "test")],
        admin,
    )
    .expect("ready");
    assert!(
        weft.logs().contains("fake weft starting with MODE=test"),
        "{}",
        weft.logs()
    );
    assert_eq!(weft.host(), Some(&host));

    weft.sigterm().expect("sigterm");
    let status = weft.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}");
    weft.wait_for_log("got sigterm", Duration::from_secs(1))
        .expect("logged");
}

#[test]
fn weft_process_reports_early_exit_with_log_tail() {
    let err = WeftProcess::spawn_local(
        python(),
        &["-c", "print('config is broken'); raise SystemExit(3)"],
        &[],
        free_local_port(),
    )
    .expect_err("exits before ready");
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("config is broken"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
}

#[test]
fn weft_process_is_killed_on_drop() {
    let admin = free_local_port();
    let port = admin.port().to_string();
    let weft =
        WeftProcess::spawn_local(python(), &["-c", FAKE_WEFT, &port], &[], admin).expect("ready");
    let pid = weft.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(weft);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived"
    );
}
