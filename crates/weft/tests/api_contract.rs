//! The control plane's HTTP API keeps the contract its `/openapi.json` states, as
//! Schemathesis judges it with every check it has: answers match their schemas, status
//! codes and content types are documented, requests the document refuses are refused,
//! requests it allows are accepted, undocumented methods get 405 with `Allow`, and
//! calls without the admin token are refused.
//!
//! The real `weft control-plane` runs on free loopback ports with a temporary data
//! directory; Schemathesis talks to it over TLS, verified with the CA the control plane
//! writes, with the admin token. Nothing leaves loopback. Schemathesis is
//! `$WEFT_SCHEMATHESIS`, else `<workspace>/.venv/bin/st` (`.ci/run` installs it there);
//! without it the test is skipped with a message, unless `WEFT_E2E=required`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_testkit::process::Child;

/// Schemathesis' configuration for this run, with why each setting is there.
const CONFIG: &str = r#"
# A generated `watch=true` streams until `timeoutSeconds`; pinned, every watch ends at
# once (and none waits for the day the document allows).
[parameters]
"query.timeoutSeconds" = 0.05

# Resource bodies carry rules no JSON Schema states: the name must match the path's,
# ports must be unique, a route needs a backend, a duration must parse, an apply must
# not name one object twice... The document states the shape; the server answers 400
# with the field path for the rest. So a schema-valid resource body may be refused with
# 400 here, and only here: parameters and every other body are held to the document.
[[operations]]
include-path-regex = "^/v1/(apply|meshes|namespaces/)"
include-method-regex = "^(POST|PUT)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# A schema-valid operator token may name a token that exists (409 AlreadyExists), and
# revoking the `bootstrap` token, the only admin one, is refused (409 Conflict).
[[operations]]
include-path-regex = "^/v1/tokens/operator"
include-method-regex = "^(POST|DELETE)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409"]

# The coverage phase walks every keyword of every schema once. /v1/apply's body is
# every kind's body again, and each PUT's is its POST's: covering them twice would
# double the run for nothing (the other phases still send them).
[[operations]]
include-path = "/v1/apply"
phases.coverage.enabled = false

# A tap names its target in one of two parameters, `workload` or `service`, which the
# document cannot require as a pair: a schema-valid tap naming neither or both is
# refused with 400 (and one naming what does not exist with 404).
[[operations]]
include-path = "/v1/tap"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]

[[operations]]
include-method = "PUT"
phases.coverage.enabled = false
"#;

/// How long the whole Schemathesis run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

#[test]
fn the_control_plane_api_keeps_its_openapi_contract() {
    let Some(schemathesis) = schemathesis("the_control_plane_api_keeps_its_openapi_contract")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api = free_port();
    let xds = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .args(["control-plane", "--data-dir"])
        .arg(&data)
        .args(["--api-listen", &api.to_string()])
        .args(["--xds-listen", &xds.to_string()])
        .env_remove("WEFT_STORE")
        .env_remove("WEFT_ADMIN_TOKEN_FILE")
        .env_remove("WEFT_DATA_DIR");
    let mut control_plane = Child::spawn(command, "weft control-plane").unwrap();
    let ca_file = data.join("ca.crt");
    wait_ready(&mut control_plane, api, &ca_file);
    let token = admin_token(&data);

    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let output = dir.path().join("schemathesis.out");
    let mut command = Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("https://{api}/openapi.json"))
        .args(["--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .arg("--tls-verify")
        .arg(&ca_file)
        // Reproducible and bounded: a fixed seed, a few examples per operation, no
        // example database carried between runs.
        .args(["--seed", "1", "--max-examples", "5"])
        .args(["--generation-database", "none"])
        // One worker: Python 3.11's parser is not thread-safe (CPython gh-106905), and
        // Hypothesis parses sources to describe its strategies, so several workers fail
        // now and then with "AST constructor recursion depth mismatch".
        .args(["--workers", "1"])
        .arg("--no-color")
        .current_dir(dir.path())
        // Loopback only: no proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::fs::File::create(dir.path().join("schemathesis.err")).unwrap());
    let started = Instant::now();
    let mut run = command.spawn().unwrap();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = format!(
        "{}{}",
        std::fs::read_to_string(&output).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("schemathesis.err")).unwrap_or_default()
    );
    match status {
        Some(status) if status.success() => {
            let summary = report.lines().rev().find(|l| l.contains("generated"));
            eprintln!(
                "schemathesis: {} in {:.0?}",
                summary.unwrap_or("passed").trim(),
                started.elapsed()
            );
        }
        Some(status) => panic!(
            "schemathesis found the API breaking its /openapi.json contract ({status}):\n{report}"
        ),
        None => panic!("schemathesis did not finish within {RUN_TIMEOUT:?}:\n{report}"),
    }
    drop(control_plane);
}

/// The Schemathesis executable, or `None` (after saying why) when the test cannot run
/// here; with `WEFT_E2E=required` a missing Schemathesis fails the test instead.
fn schemathesis(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("WEFT_SCHEMATHESIS")
        .map_or_else(|| workspace_root().join(".venv/bin/st"), PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    weft_testkit::wait::skip(
        test,
        &format!(
            "no Schemathesis at {} (install it with `python3 -m venv .venv && \
             .venv/bin/pip install schemathesis`, or point WEFT_SCHEMATHESIS at its `st`)",
            path.display()
        ),
    );
    None
}

/// The Cargo workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()))
}

/// Waits until `/readyz` answers 200 over TLS verified with `ca_file`.
fn wait_ready(control_plane: &mut Child, api: SocketAddr, ca_file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(why) = weft_testkit::process::https_ready(api, "/readyz", ca_file) {
        if let Some(status) = control_plane.try_wait().unwrap() {
            panic!(
                "weft control-plane exited early: {status}\n{}",
                control_plane.logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "/readyz not 200 within 30s: {why}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The admin token, as an operator gets it: `weft token admin` on the host.
fn admin_token(data: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "admin", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "weft token admin: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
