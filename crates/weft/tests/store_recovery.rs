//! The real `weft control-plane` killed with SIGKILL in the middle of a large
//! `weft apply`, then restarted on the same data directory: the apply is one store
//! transaction, so either every object is stored or none is (ADR 0024). No root needed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Objects in the apply: enough that writing them takes a while.
const OBJECTS: usize = 5_000;

/// A running `weft control-plane`, killed on drop.
struct ControlPlane {
    child: Child,
    api: SocketAddr,
    ca_file: std::path::PathBuf,
}

impl ControlPlane {
    /// Starts the control plane on free loopback ports with `data_dir` and waits for
    /// `/readyz`.
    fn start(data_dir: &Path, log: &str) -> ControlPlane {
        let api = free_port();
        let xds = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["control-plane", "--data-dir"])
            .arg(data_dir)
            .args(["--api-listen", &api.to_string()])
            .args(["--xds-listen", &xds.to_string()])
            .env_remove("WEFT_STORE")
            .env_remove("WEFT_ADMIN_TOKEN_FILE")
            .env_remove("WEFT_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data_dir.join(log)).unwrap())
            .spawn()
            .unwrap();
        let mut cp = ControlPlane {
            child,
            api,
            ca_file: data_dir.join("ca.crt"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(why) = weft_testkit::process::https_ready(api, "/readyz", &cp.ca_file) {
            if let Some(status) = cp.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(data_dir.join(log)).unwrap_or_default();
                panic!("weft control-plane exited early: {status}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "/readyz not 200 within 30s: {why}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cp
    }

    /// `weft ARGS` against this control plane, with `token`.
    fn weft(&self, home: &Path, args: &[&str], token: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .args(args)
            .env("WEFT_CONTROL_PLANE", format!("https://{}", self.api))
            .env("WEFT_CA_FILE", &self.ca_file)
            .env("HOME", home)
            .env("WEFT_TOKEN", token)
            .env_remove("XDG_CONFIG_HOME");
        command
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()))
}

fn admin_token(home: &Path, data_dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "admin", "--data-dir"])
        .arg(data_dir)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn wal_size(data_dir: &Path) -> u64 {
    std::fs::metadata(data_dir.join("weft.db-wal")).map_or(0, |m| m.len())
}

fn services_in(output: &Output) -> usize {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    list.get("items")
        .and_then(serde_json::Value::as_array)
        .or_else(|| list.as_array())
        .map_or(0, Vec::len)
}

#[test]
fn kill_9_during_a_large_apply_leaves_all_or_nothing() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut manifest = String::new();
    for i in 0..OBJECTS {
        write!(
            manifest,
            "---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{name: svc-{i}, \
             namespace: bulk}}\nspec: {{selector: {{app: a{i}}}, ports: [{{name: http, port: 80, \
             targetPort: 8080, protocol: http}}]}}\n"
        )
        .unwrap();
    }
    let file = home.path().join("bulk.yaml");
    std::fs::write(&file, manifest).unwrap();

    let mut cp = ControlPlane::start(data.path(), "first.log");
    let token = admin_token(home.path(), data.path());
    // Let the start-up writes (CA, mesh status) settle before watching the journal.
    std::thread::sleep(Duration::from_millis(500));
    let baseline = wal_size(data.path());
    let mut apply = cp
        .weft(
            home.path(),
            &["apply", "-f", file.to_str().unwrap()],
            &token,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the store has written a good part of the apply to its journal (512 KiB:
    // a few hundred objects one by one; spilled pages of the one transaction), or when
    // the apply is over.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished = false;
    while wal_size(data.path()) <= baseline + 512 * 1024 {
        if apply.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the apply neither wrote nor ended in 60s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    cp.child.kill().unwrap(); // SIGKILL
    cp.child.wait().unwrap();
    let _ = apply.wait();
    drop(cp);

    let cp = ControlPlane::start(data.path(), "second.log");
    let output = cp
        .weft(
            home.path(),
            &["get", "services", "-n", "bulk", "-o", "json"],
            &token,
        )
        .output()
        .unwrap();
    let stored = services_in(&output);
    eprintln!(
        "killed {} the apply ended; {stored} of {OBJECTS} stored",
        if finished { "after" } else { "before" }
    );
    assert!(
        stored == 0 || stored == OBJECTS,
        "{stored} of {OBJECTS} objects survived the kill: the apply was not all-or-nothing"
    );
}
