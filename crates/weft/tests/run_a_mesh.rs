//! The README's "Run a mesh", run as a newcomer would: `examples/run-a-mesh/run.sh` with
//! this build's `weft` (a control plane, two proxies with certificates from its CA,
//! `weft apply`, one request through the mesh). Needs python3 and curl (skipped with a
//! message without them), no root; binds the example's ports on 127.0.0.1 and
//! 127.0.0.2 (5678, 5681, 9090, 15000, 15008, 15020, 18080).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_readme_run_a_mesh_example_answers_through_the_mesh_with_verified_identities() {
    for tool in ["python3", "curl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            weft_testkit::wait::skip(
                "the_readme_run_a_mesh_example_answers_through_the_mesh_with_verified_identities",
                &format!("{tool} not found (the example needs it)"),
            );
            return;
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/run-a-mesh/run.sh");
    let mut child = Command::new(&script)
        .env("WEFT", env!("CARGO_BIN_EXE_weft"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the example");
    let started = Instant::now();
    while child.try_wait().expect("wait for the example").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            // SIGTERM: the script's trap stops what it started.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let out = child.wait_with_output().expect("collect the output");
            panic!(
                "the example did not finish in 120 s:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("collect the output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "\"x-forwarded-client-cert\": \"By=spiffe://cluster.local/ns/default/sa/api;\
             URI=spiffe://cluster.local/ns/default/sa/web\""
        ),
        "{stdout}\n{stderr}"
    );
}
