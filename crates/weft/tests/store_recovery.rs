//! The real `weft control-plane` and its SQLite store when things go wrong (ADR 0024):
//!
//! - killed with SIGKILL in the middle of a large `weft apply`, then restarted on the
//!   same data directory: the apply is one store transaction, so either every object
//!   is stored or none is. No root needed.
//! - its database on a small tmpfs (mounted in a private mount namespace: needs root;
//!   skipped otherwise unless `WEFT_E2E=required`) that fills up: writes fail,
//!   `/readyz` says why, and once the tmpfs grows writes resume without a restart.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/control_plane.rs"]
mod control_plane;
use control_plane::{admin_token, free_port};

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
        ControlPlane::start_in(Command::new(env!("CARGO_BIN_EXE_weft")), data_dir, log, &[])
    }

    /// [`ControlPlane::start`] with the SQLite database in `db_dir`, on a tmpfs of
    /// `size` mounted there in a mount namespace of the control plane's own.
    fn start_on_tmpfs(data_dir: &Path, db_dir: &Path, size: &str) -> ControlPlane {
        let mut command = Command::new("unshare");

        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o "size=$1,mode=0700" weft-test "$2" && shift 2 && exec "$@""#)
            .args(["sh", size])
            .arg(db_dir)
            .arg(env!("CARGO_BIN_EXE_weft"));
        let store = format!("sqlite://{}", db_dir.join("weft.db").display());
        ControlPlane::start_in(command, data_dir, "tmpfs.log", &["--store", &store])
    }

    fn start_in(mut command: Command, data_dir: &Path, log: &str, extra: &[&str]) -> ControlPlane {
        let api = free_port();
        let xds = free_port();
        let child = command
            .args(["control-plane", "--data-dir"])
            .arg(data_dir)
            .args(["--api-listen", &api.to_string()])
            .args(["--xds-listen", &xds.to_string()])
            .args(extra)
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

/// `/readyz`'s status code and body, through curl.
fn readyz(cp: &ControlPlane) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(&cp.ca_file)
        .arg(format!("https://{}/readyz", cp.api))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A manifest of `count` services named `{prefix}-{i}` in namespace `bulk`.
fn services(prefix: &str, count: usize) -> String {
    let mut manifest = String::new();
    for i in 0..count {
        write!(
            manifest,
            "---\napiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{name: {prefix}-{i}, \
             namespace: bulk}}\nspec: {{selector: {{app: a{i}}}, ports: [{{name: http, port: 80, \
             targetPort: 8080, protocol: http}}]}}\n"
        )
        .unwrap();
    }
    manifest
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
    let file = home.path().join("bulk.yaml");
    std::fs::write(&file, services("svc", OBJECTS)).unwrap();

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

#[test]
fn a_full_disk_fails_writes_and_readiness_until_space_returns_without_a_restart() {
    if !weft_testkit::netns::e2e_guard("a_full_disk_fails_writes_and_readiness") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let db_dir = data.path().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    let cp = ControlPlane::start_on_tmpfs(data.path(), &db_dir, "1m");
    let token = admin_token(home.path(), data.path());
    let apply = |name: &str, manifest: String| {
        let file = home.path().join(format!("{name}.yaml"));
        std::fs::write(&file, manifest).unwrap();
        cp.weft(
            home.path(),
            &["apply", "-f", file.to_str().unwrap()],
            &token,
        )
        .output()
        .unwrap()
    };

    // Fill the tmpfs.
    let mut batch = 0;
    loop {
        let output = apply(
            &format!("fill-{batch}"),
            services(&format!("fill-{batch}"), 100),
        );
        if !output.status.success() {
            break;
        }
        batch += 1;
        assert!(batch < 100, "a 1 MiB tmpfs took 10,000 services");
    }
    let (code, body) = readyz(&cp);
    assert_eq!(code, 503, "/readyz while writes fail: {body}");
    assert!(
        body.contains("StoreCannotWrite") && body.contains("full"),
        "{body}"
    );
    assert!(body.contains("free disk space"), "{body}");

    // Still full: a write fails for that reason, not for a connection left broken.
    let output = apply("still-full", services("still-full", 100));
    assert!(
        !output.status.success(),
        "a write into a full tmpfs succeeded"
    );
    // Over several probe intervals: the probe's no-op write can succeed on a full disk
    // (SQLite reuses its log), which must not make readiness claim room it lacks.
    let until = Instant::now() + Duration::from_millis(3_500);
    while Instant::now() < until {
        let (code, body) = readyz(&cp);
        assert_eq!(code, 503, "/readyz while the disk is still full: {body}");
        assert!(body.contains("full"), "{body}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Space returns: readiness and writes come back, same process.
    let grown = Command::new("nsenter")
        .args([
            "-t",
            &cp.child.id().to_string(),
            "-m",
            "mount",
            "-o",
            "remount,size=64m",
        ])
        .arg(&db_dir)
        .status()
        .unwrap();
    assert!(grown.success(), "remounting the tmpfs larger");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = readyz(&cp);
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {code} after space returned: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = apply("after", services("after", 100));
    assert!(
        output.status.success(),
        "writes resume without a restart: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = std::fs::read_to_string(data.path().join("tmpfs.log")).unwrap_or_default();
    assert!(!log.contains("transaction depth"), "{log}");
}
