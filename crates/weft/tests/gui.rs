//! The GUI at `/gui`, end to end in a real browser: an in-process mesh (a control
//! plane, `echo-v1` behind its proxy, a `frontend` proxy sending it traffic the whole
//! time), a route whose status has a failing condition, and Debian's Chromium driven by
//! Playwright (`tests/gui/gui.mjs`) through login, a service with its endpoints and
//! conditions, workloads with their proxies, routes and policies, the live graph with
//! an edge, a live tap row, and logout, with no console error.
//!
//! Node is `$WEFT_NODE`, else `node` on `PATH`; Chromium `$WEFT_CHROMIUM`, else
//! `/usr/bin/chromium`; Playwright is `tests/gui/node_modules` (`npm ci` there; `.ci/run`
//! does it). Without one of them the test is skipped with a message, unless
//! `WEFT_E2E=required`. Screenshots go to `target/gui-artifacts/` (their paths are
//! printed); with `WEFT_GUI_DOCS_IMAGES=DIR` the script also writes the images
//! `docs/observability.md` shows (`WEFT_GUI_DOCS_IMAGES=$PWD/docs/images`).

#![allow(unreachable_pub, clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "support/config.rs"]
mod config;
#[allow(dead_code)] // the mesh suite's harness; this test uses a part of it
#[path = "support/harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::{eventually, ControlPlane, Host, Mesh, Proxy};

/// How long the browser script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// `echo-api` on `echo`: `/missing` goes to a service that does not exist (so the
/// route's `ResolvedRefs` condition is `False`, `BackendNotFound`), the rest to `echo`.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo-api }
spec:
  parentRefs: [{ kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /missing } }]
      backendRefs: [{ name: nowhere, port: 80 }]
    - backendRefs: [{ name: echo, port: 80 }]
";

/// What the browser script needs: node, Playwright beside the script, and Chromium.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    dir: PathBuf,
}

impl Tools {
    /// The tools, or `None` after saying what is missing (a failure with
    /// `WEFT_E2E=required`).
    fn find(test: &str) -> Option<Tools> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gui");
        let node = std::env::var_os("WEFT_NODE")
            .map(PathBuf::from)
            .or_else(|| on_path("node"));
        let chromium = std::env::var_os("WEFT_CHROMIUM")
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        let why = match node {
            None => "no node (set WEFT_NODE, or install nodejs)".to_owned(),
            Some(_) if !chromium.exists() => format!(
                "no Chromium at {} (apt-get install chromium, or set WEFT_CHROMIUM)",
                chromium.display()
            ),
            Some(_) if !dir.join("node_modules/playwright-core").is_dir() => format!(
                "no Playwright in {} (run `npm ci` there)",
                dir.join("node_modules").display()
            ),
            Some(node) => {
                return Some(Tools {
                    node,
                    chromium,
                    dir,
                })
            }
        };
        weft_testkit::wait::skip(test, &why);
        None
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `target/gui-artifacts/`, or `fallback` where the target directory cannot be written
/// (the suite's run as another user).
fn artifacts_dir(fallback: &Path) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|t| t.join("gui-artifacts"));
    let writable = |dir: &Path| {
        std::fs::create_dir_all(dir).is_ok() && std::fs::write(dir.join(".writable"), "").is_ok()
    };
    match target {
        Some(dir) if writable(&dir) => dir,
        _ => fallback.join("gui-artifacts"),
    }
}

/// The `frontend` workload's proxy on `host`, with a listener to `echo:80`.
async fn frontend(mesh: &Mesh, cp: &ControlPlane, host: &Host) -> Proxy {
    let files = mesh
        .meshed(
            cp,
            host,
            "frontend",
            &[("app", "frontend")],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    mesh.meshed_proxy(cp, host, &files).await
}

async fn get(listen: std::net::SocketAddr, path: &str) -> u16 {
    weft_testkit::client::http1_get(listen, "echo", path)
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gui_shows_a_service_its_endpoints_and_conditions_the_graph_and_a_tap_in_chromium() {
    let test =
        "the_gui_shows_a_service_its_endpoints_and_conditions_the_graph_and_a_tap_in_chromium";
    let Some(tools) = Tools::find(test) else {
        return;
    };
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let client_host = mesh.host("frontend");
    let cp = mesh.control_plane().await;
    let (_app, _server) = mesh.meshed_echo(&cp, &server_host, "v1").await;
    let _client = frontend(&mesh, &cp, &client_host).await;
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    cp.apply(&mesh, "route", ROUTE).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            cp.cli(&["get", "httproute", "echo-api", "-o", "json"])
                .await
                .1
                .contains("BackendNotFound")
        })
        .await,
        "the route's status never said BackendNotFound"
    );

    // A token the control plane knows but revoked: its 401 names it.
    let (ok, out) = cp.cli(&["token", "admin", "create", "gui-revoked"]).await;
    assert!(ok, "weft token admin create: {out}");
    let revoked = out
        .lines()
        .find(|l| l.starts_with("weft-read-"))
        .unwrap_or_else(|| panic!("no token in: {out}"))
        .to_owned();
    let (ok, out) = cp.cli(&["token", "admin", "revoke", "gui-revoked"]).await;
    assert!(ok, "weft token admin revoke: {out}");

    // Traffic the whole time, mostly answered, some 503s: the graph's edges and the
    // tap's rows.
    let listen = mesh.listen(&client_host);
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(listen, "/api/warm").await == 200
        })
        .await,
        "frontend never reached echo"
    );
    let traffic = tokio::spawn(async move {
        for i in 0u64.. {
            let path = if i % 10 == 9 {
                "/status/503"
            } else {
                "/api/items"
            };
            get(listen, path).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let artifacts = artifacts_dir(mesh.dir.path());
    let mut command = tokio::process::Command::new(&tools.node);
    command.arg(tools.dir.join("gui.mjs"));
    if let Some(docs) = std::env::var_os("WEFT_GUI_DOCS_IMAGES") {
        command.arg("--docs-images").arg(docs);
    }
    command
        .current_dir(&tools.dir)
        .env("WEFT_GUI_URL", format!("https://{}", cp.api()))
        .env("WEFT_GUI_TOKEN", cp.admin_token().expect("admin token"))
        .env("WEFT_GUI_REVOKED_TOKEN", &revoked)
        .env("WEFT_CHROMIUM", &tools.chromium)
        .env("WEFT_GUI_ARTIFACTS", &artifacts)
        .env("WEFT_GUI_SERVICE", "default/echo")
        .env("WEFT_GUI_ENDPOINT", "echo-v1")
        .env("WEFT_GUI_ROUTE", "echo-api")
        .env("WEFT_GUI_CONDITION", "BackendNotFound")
        // Loopback only: no proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command.spawn().expect("run node");
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await;
    traffic.abort();
    let output = output
        .unwrap_or_else(|_| panic!("the browser script did not finish within {SCRIPT_TIMEOUT:?}"))
        .expect("wait for node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{report}");
    assert!(
        output.status.success(),
        "the GUI in Chromium failed ({}, after {:.0?}); artifacts in {}:\n{report}",
        output.status,
        started.elapsed(),
        artifacts.display()
    );
    eprintln!(
        "gui: passed in {:.1?}; screenshots in {}",
        started.elapsed(),
        artifacts.display()
    );
}
