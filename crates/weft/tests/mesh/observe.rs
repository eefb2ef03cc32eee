//! The live views as operators run them: `weft stat`, `weft edges`, `weft tap` and
//! `weft top` (the real binary) against a control plane fed by two real proxies'
//! reports, each number checked against the requests the test sent.
//!
//! Proxies report every 5 s, so each test waits for a report (at most ~12 s). Tests
//! that count wait for the frontend's config without sending a request, so every
//! request counted is one they sent, and the counts must match exactly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use serde_json::Value;

use crate::harness::control_plane::ControlPlane;
use crate::harness::{eventually, Mesh, Proxy};

/// How long a report may take to reach the control plane: two report intervals and
/// some slack.
const REPORTED: Duration = Duration::from_secs(12);

const FRONTEND: &str = "spiffe://cluster.local/ns/default/sa/frontend";
const ECHO: &str = "spiffe://cluster.local/ns/default/sa/echo-v1";

struct Setup {
    _mesh: Mesh,
    cp: ControlPlane,
    listen: SocketAddr,
    /// The frontend proxy's admin listener.
    admin: SocketAddr,
    home: PathBuf,
    _proxies: Vec<Proxy>,
    _app: weft_testkit::echo::Server,
}

/// `echo-v1` serving `echo`, and `frontend` with a listener to `echo:80`, in namespace
/// `default` under a control plane; `route` applied too when given.
async fn setup(route: Option<&str>) -> Setup {
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let client_host = mesh.host("frontend");
    let cp = mesh.control_plane().await;
    let (app, server) = mesh.meshed_echo(&cp, &server_host, "v1").await;
    let files = mesh
        .meshed(
            &cp,
            &client_host,
            "frontend",
            &[("app", "frontend")],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    let client = mesh.meshed_proxy(&cp, &client_host, &files).await;
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    if let Some(route) = route {
        cp.apply(&mesh, "route", route).await;
    }
    let home = mesh.dir.path().join("home-observe");
    std::fs::create_dir_all(&home).unwrap();
    Setup {
        listen: mesh.listen(&client_host),
        admin: mesh.admin(&client_host),
        _mesh: mesh,
        cp,
        home,
        _proxies: vec![server, client],
        _app: app,
    }
}

impl Setup {
    /// `weft ARGS…` against the control plane, with `token` (the admin token when
    /// `None`); not started.
    fn weft(&self, token: Option<&str>, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"));
        let admin = self.cp.admin_token().expect("an admin token");
        command
            .args(args)
            .env("WEFT_CONTROL_PLANE", format!("https://{}", self.cp.api()))
            .env("WEFT_CA_FILE", self.cp.ca_file())
            .env("WEFT_TOKEN", token.unwrap_or(&admin))
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `weft ARGS…` to the end: (success, stdout, stderr).
    async fn run(&self, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
        let out = self.weft(token, args).output().await.expect("weft runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// stdout of `weft ARGS…`, which must succeed.
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(None, args).await;
        assert!(ok, "weft {args:?} failed:\n{stdout}{stderr}");
        stdout
    }

    /// The rows of `weft stat|edges … -o json`.
    async fn rows(&self, args: &[&str]) -> Vec<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let answer: Value = serde_json::from_str(&self.ok(&all).await).expect("JSON");
        answer["rows"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the warm-up request through the frontend is answered.
    async fn warm_up(&self) {
        assert!(
            eventually(Duration::from_secs(10), || async {
                send(self.listen, "/warm", &[]).await == 200
            })
            .await,
            "the mesh never served"
        );
    }

    /// Waits, sending nothing (so that every request counted is the test's), until
    /// the frontend's proxy has an endpoint of `echo` and, if `routed`, its route.
    async fn wait_for_config(&self, routed: bool) {
        let url = format!("http://{}/config_dump", self.admin);
        let ready = eventually(Duration::from_secs(10), || async {
            let request = http::Request::get(&url)
                .header("host", "admin")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let Ok(response) = weft_testkit::client::http1_request(self.admin, request).await
            else {
                return false;
            };
            let dump: Value = serde_json::from_slice(response.body()).unwrap_or_default();
            let config = &dump["config"];
            let endpoint = config["services"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["name"] == "echo" && s["endpoints"].as_array().is_some_and(|e| !e.is_empty())
                });
            let route = config["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["service"] == "echo.default");
            endpoint && (route || !routed)
        })
        .await;
        assert!(ready, "the frontend's proxy never got echo's config");
    }
}

/// The status of `GET path` to `echo` through `listen`, with `headers` (0: no answer).
async fn send(listen: SocketAddr, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = http::Request::get(path).header("host", "echo");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    weft_testkit::client::http1_request(listen, request)
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// `(requests, successes)` of the row `pick` chooses, `(0, 0)` when there is none.
fn counts(rows: &[Value], pick: impl Fn(&Value) -> bool) -> (u64, u64) {
    rows.iter().find(|r| pick(r)).map_or((0, 0), |r| {
        (
            r["requests"].as_u64().unwrap_or(0),
            r["successes"].as_u64().unwrap_or(0),
        )
    })
}

/// The cells of the table line whose first cell is `first`.
fn line<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first} in\n{table}"))
}

fn service_row(r: &Value) -> bool {
    r["destination"]["service"] == "echo.default"
}

fn workload_row(r: &Value) -> bool {
    r["destination"]["workload"] == "echo-v1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_services_and_workloads_count_exactly_the_requests_sent_and_their_success() {
    let s = setup(None).await;
    // Before any request: nothing to show, and what to expect.
    let (ok, stdout, stderr) = s.run(None, &["stat", "services"]).await;
    assert!(ok && stdout.is_empty(), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "no traffic to namespace default reported in the last 60s; proxies report every 5s"
        ),
        "{stderr}"
    );

    s.wait_for_config(false).await;
    for _ in 0..7 {
        assert_eq!(send(s.listen, "/items", &[]).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(send(s.listen, "/status/503", &[]).await, 503);
    }
    let (requests, successes) = (10, 7);
    assert!(
        eventually(REPORTED, || async {
            counts(&s.rows(&["stat", "services"]).await, service_row).0 == requests
                && counts(&s.rows(&["stat", "workloads"]).await, workload_row).0 == requests
        })
        .await,
        "the ten requests were never reported:\n{}\n{}",
        s.ok(&["stat", "services"]).await,
        s.ok(&["stat", "workloads"]).await
    );

    // The callers' view of the service: exact counts, success and rate over 60s.
    let rows = s.rows(&["stat", "services"]).await;
    assert_eq!(
        counts(&rows, service_row),
        (requests, successes),
        "{rows:#?}"
    );
    let row = rows.iter().find(|r| service_row(r)).unwrap();
    let rps = row["rps"].as_f64().unwrap();
    assert!(
        (rps - requests as f64 / 60.0).abs() < 1e-9,
        "{rps} is not {requests}/60"
    );
    let table = s.ok(&["stat", "services"]).await;
    assert_eq!(
        line(&table, "NAME"),
        ["NAME", "SUCCESS", "RPS", "P50", "P95", "P99", "REQUESTS"]
    );
    let echo = line(&table, "echo");
    let rate = successes as f64 * 100.0 / requests as f64;
    assert_eq!(echo[1], format!("{rate:.2}%"), "{table}");
    assert_eq!(echo[2], format!("{:.2}", requests as f64 / 60.0), "{table}");
    assert!(echo[3..6].iter().all(|c| c.ends_with("ms")), "{table}");
    assert_eq!(echo[6], requests.to_string(), "{table}");

    // The workload's own view: the same requests, as it answered them.
    let rows = s.rows(&["stat", "workloads"]).await;
    assert_eq!(
        counts(&rows, workload_row),
        (requests, successes),
        "{rows:#?}"
    );
    let table = s.ok(&["stat", "workloads", "-A"]).await;
    let echo = line(&table, "default");
    assert_eq!(echo[1], "echo-v1", "{table}");
    assert_eq!(echo[7], requests.to_string(), "{table}");

    // Another namespace saw none of it.
    let (_, stdout, stderr) = s.run(None, &["stat", "services", "-n", "shop"]).await;
    assert!(
        stdout.is_empty() && stderr.contains("(-A for every namespace)"),
        "{stderr}"
    );
}

/// `echo-api` on `echo`: `/api` and `/status` by rule 0, the rest by rule 1.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
     metadata: { name: echo-api }\nspec:\n  parentRefs: [{ kind: Service, name: echo, port: 80 }]\n\
     \x20 rules:\n\
     \x20   - matches: [{ path: { type: PathPrefix, value: /api } }, { path: { type: PathPrefix, value: /status } }]\n\
     \x20     backendRefs: [{ name: echo, port: 80 }]\n\
     \x20   - backendRefs: [{ name: echo, port: 80 }]\n";

fn rule(i: u64) -> impl Fn(&Value) -> bool {
    move |r: &Value| r["route"]["name"] == "HTTPRoute/default/echo-api" && r["route"]["rule"] == i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_routes_count_each_rule_of_the_route_that_sent_the_requests() {
    let s = setup(Some(ROUTE)).await;
    s.wait_for_config(true).await;
    for _ in 0..5 {
        assert_eq!(send(s.listen, "/api/items", &[]).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(s.listen, "/status/503", &[]).await, 503);
    }
    for _ in 0..3 {
        assert_eq!(send(s.listen, "/other", &[]).await, 200);
    }
    assert!(
        eventually(REPORTED, || async {
            let rows = s.rows(&["stat", "routes"]).await;
            counts(&rows, rule(0)).0 == 7 && counts(&rows, rule(1)).0 == 3
        })
        .await,
        "the requests were never reported by rule:\n{}",
        s.ok(&["stat", "routes"]).await
    );
    let rows = s.rows(&["stat", "routes"]).await;
    assert_eq!(counts(&rows, rule(0)), (7, 5), "{rows:#?}");
    assert_eq!(counts(&rows, rule(1)), (3, 3), "{rows:#?}");
    let table = s.ok(&["stat", "routes"]).await;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["ROUTE", "RULE", "BACKEND", "SUCCESS", "RPS", "P50", "P95", "P99", "REQUESTS"]
    );
    let row = |i: &str| {
        rows.iter()
            .find(|r| r[0] == "HTTPRoute/default/echo-api" && r[1] == i)
            .unwrap_or_else(|| panic!("no row of rule {i}:\n{table}"))
    };
    assert_eq!(
        [row("0")[2], row("0")[3], row("0")[4], row("0")[8]],
        ["echo.default", "71.43%", "0.12", "7"],
        "{table}"
    );
    assert_eq!(
        [row("1")[3], row("1")[4], row("1")[8]],
        ["100.00%", "0.05", "3"],
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_show_the_frontend_calling_echo_over_mutual_tls_with_both_identities() {
    let s = setup(None).await;
    s.warm_up().await;
    let frontend_to_echo = |r: &Value| {
        r["source"]["workload"] == "frontend" && r["destination"]["workload"] == "echo-v1"
    };
    assert!(
        eventually(REPORTED, || async {
            counts(&s.rows(&["edges"]).await, frontend_to_echo).0 > 0
        })
        .await,
        "no edge was reported:\n{}",
        s.ok(&["edges"]).await
    );
    let rows = s.rows(&["edges"]).await;
    let edge = rows.iter().find(|r| frontend_to_echo(r)).unwrap();
    assert_eq!(edge["security"], "mutual_tls", "{edge}");
    assert_eq!(edge["source"]["identity"], FRONTEND, "{edge}");
    assert_eq!(edge["destination"]["identity"], ECHO, "{edge}");
    let table = s.ok(&["edges"]).await;
    assert_eq!(
        line(&table, "SRC"),
        [
            "SRC",
            "DST",
            "SECURITY",
            "RPS",
            "SUCCESS",
            "SRC-IDENTITY",
            "DST-IDENTITY"
        ]
    );
    let cells = line(&table, "frontend");
    assert_eq!(
        (cells[1], cells[2], cells[5], cells[6]),
        ("echo-v1", "mTLS", FRONTEND, ECHO),
        "{table}"
    );
}

/// Sends `/ok` and `/status/503` with `headers` through `listen` every 50 ms until
/// `tap` exits; its (success, stdout, stderr).
async fn send_while(
    listen: SocketAddr,
    headers: &[(&str, &str)],
    tap: tokio::process::Child,
) -> (bool, String, String) {
    let out = tap.wait_with_output();
    tokio::pin!(out);
    loop {
        tokio::select! {
            out = &mut out => {
                let out = out.expect("the tap runs");
                return (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                );
            }
            () = async {
                send(listen, "/ok", headers).await;
                send(listen, "/status/503", headers).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            } => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_shows_only_the_5xx_asked_for_with_headers_redacted_unless_allowed() {
    let s = setup(None).await;
    s.warm_up().await;
    let args = |output: &'static str| {
        [
            "tap",
            "workload",
            "default/echo-v1",
            "--status",
            "5xx",
            "--header",
            "user-agent",
            "--max-rps",
            "100",
            "--duration",
            "3s",
            "-o",
            output,
        ]
    };
    let json = s.weft(None, &args("json")).spawn().expect("weft tap");
    let text = s.weft(None, &args("text")).spawn().expect("weft tap");
    let headers = [
        ("user-agent", "observe-test/1"),
        ("authorization", "Bearer secret"),
    ];
    let ((ok, stdout, stderr), (text_ok, text_out, text_err)) = tokio::join!(
        send_while(s.listen, &headers, json),
        send_while(s.listen, &headers, text)
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("tapping workload default/echo-v1 for 3s"),
        "{stderr}"
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!events.is_empty(), "no request was tapped:\n{stderr}");
    for e in &events {
        assert_eq!(e["status"], 503, "{e}");
        assert_eq!(e["path"], "/status/503", "{e}");
        assert_eq!(e["direction"], "inbound", "{e}");
        assert_eq!(e["source_identity"], FRONTEND, "{e}");
        assert_eq!(e["destination_workload"], "echo-v1", "{e}");
        assert_eq!(e["request_headers"]["user-agent"], "observe-test/1", "{e}");
        assert_eq!(e["request_headers"]["authorization"], "[redacted]", "{e}");
    }
    assert!(text_ok, "{text_out}{text_err}");
    let lines: Vec<&str> = text_out.lines().collect();
    assert!(!lines.is_empty(), "no request was tapped:\n{text_err}");
    for l in lines {
        assert!(
            l.contains(" inbound  GET /status/503 503 ")
                && l.contains(&format!("{FRONTEND} → echo-v1"))
                && l.ends_with(" user-agent=\"observe-test/1\"")
                && !l.contains("secret"),
            "{l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_refuses_a_read_only_token_and_says_how_to_get_an_admin_one() {
    let s = setup(None).await;
    let (ok, out) =
        s.cp.cli(&["token", "admin", "create", "viewer", "--role", "read-only"])
            .await;
    assert!(ok, "{out}");
    let token = out.lines().next().unwrap().trim().to_owned();
    // Stats need any operator token; a tap needs an admin one.
    let (ok, stdout, stderr) = s.run(Some(&token), &["stat", "services"]).await;
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = s
        .run(
            Some(&token),
            &["tap", "workload", "default/echo-v1", "--duration", "1s"],
        )
        .await;
    assert!(!ok && stdout.is_empty(), "{stdout}{stderr}");
    assert!(
        stderr.contains("has role read-only")
            && stderr.contains("403")
            && stderr.contains("hint: this needs an admin token")
            && stderr.contains("`weft token admin create NAME --role admin`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_lists_the_busiest_path_first() {
    let s = setup(None).await;
    s.warm_up().await;
    let top = s
        .weft(None, &["top", "echo", "--duration", "3s"])
        .spawn()
        .expect("weft top");
    let out = top.wait_with_output();
    tokio::pin!(out);
    let out = loop {
        tokio::select! {
            out = &mut out => break out.expect("weft top runs"),
            () = async {
                for _ in 0..3 {
                    send(s.listen, "/busy", &[]).await;
                }
                send(s.listen, "/quiet", &[]).await;
                send(s.listen, "/status/503", &[]).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            } => {}
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // Not a terminal: one table, no screen control.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines[0]
            .join(" ")
            .starts_with("service echo.default, requests it serves:"),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        ["METHOD", "PATH", "COUNT", "SUCCESS", "BEST", "WORST", "LAST"],
        "{stdout}"
    );
    assert_eq!(
        (lines[2][0], lines[2][1], lines[2][3]),
        ("GET", "/busy", "100.00%"),
        "{stdout}"
    );
    let count = |path: &str| -> u64 {
        lines
            .iter()
            .find(|l| l.get(1) == Some(&path))
            .map_or(0, |l| l[2].parse().unwrap())
    };
    assert!(
        count("/busy") > count("/quiet") && count("/quiet") > 0,
        "{stdout}"
    );
    let failed = lines
        .iter()
        .find(|l| l.get(1) == Some(&"/status/503"))
        .unwrap();
    assert_eq!(failed[3], "0.00%", "{stdout}");
}
