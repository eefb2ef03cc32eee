//! The real `weft control-plane` on 127.0.0.1 with a temporary data directory, and
//! the real `weft` CLI against it: the operator admin token as users meet it, and the
//! service VIPs the control plane allocates. No root needed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/control_plane.rs"]
mod control_plane;
use control_plane::{admin_token, free_port};

/// A running `weft control-plane`, killed on drop.
struct ControlPlane {
    child: Child,
    api: SocketAddr,
    ca_file: std::path::PathBuf,
}

impl ControlPlane {
    /// Starts the control plane on free loopback ports with `data_dir`, and waits for
    /// `/readyz`.
    fn start(data_dir: &Path) -> ControlPlane {
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
            .stderr(std::fs::File::create(data_dir.join("control-plane.log")).unwrap())
            .spawn()
            .unwrap();
        let ca_file = data_dir.join("ca.crt");
        let mut cp = ControlPlane {
            child,
            api,
            ca_file,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(why) = weft_testkit::process::https_ready(api, "/readyz", &cp.ca_file) {
            if let Some(status) = cp.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(data_dir.join("control-plane.log"));
                panic!(
                    "weft control-plane exited early: {status}\n{}",
                    log.unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "/readyz not 200 within 30s: {why}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cp
    }

    /// Runs `weft ARGS` against this control plane, with an empty HOME and `token` as
    /// `WEFT_TOKEN` if given.
    fn weft(&self, home: &Path, args: &[&str], token: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .args(args)
            .env("WEFT_CONTROL_PLANE", format!("https://{}", self.api))
            .env("WEFT_CA_FILE", &self.ca_file)
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("WEFT_TOKEN");
        if let Some(token) = token {
            command.env("WEFT_TOKEN", token);
        }
        command.output().unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The answer to a plaintext `GET /readyz`, or `None` if the connection was closed
/// without one.
fn plaintext_readyz(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
}

#[test]
fn the_admin_token_is_created_on_first_start_and_required_by_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(data.path());

    let token = admin_token(home.path(), data.path());
    assert!(token.starts_with("weft-admin-"), "{token}");
    let mode = std::fs::metadata(data.path().join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");

    let without = cp.weft(home.path(), &["get", "services"], None);
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("weft token admin"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let wrong = cp.weft(home.path(), &["get", "services"], Some("weft-admin-wrong"));
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("weft token admin"),
        "{stderr}"
    );

    let with = cp.weft(home.path(), &["get", "services"], Some(&token));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
}

#[test]
fn the_cli_reads_the_token_from_its_config_file() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(data.path());
    let token = admin_token(home.path(), data.path());
    let config = home.path().join(".config/weft");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.yaml"), format!("token: {token}\n")).unwrap();
    let output = cp.weft(home.path(), &["get", "services"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_restart_on_the_same_data_dir_keeps_the_same_token_valid() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let first = ControlPlane::start(data.path());
    let token = admin_token(home.path(), data.path());
    drop(first);

    let second = ControlPlane::start(data.path());
    assert_eq!(admin_token(home.path(), data.path()), token);
    let output = second.weft(home.path(), &["get", "services"], Some(&token));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_api_serves_tls_only_with_a_certificate_generic_clients_verify_by_host_name() {
    let data = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(data.path());
    // Plaintext gets no HTTP answer.
    if let Some(answer) = plaintext_readyz(cp.api) {
        assert!(
            !answer.starts_with("HTTP/1.1 200"),
            "plaintext was served: {answer}"
        );
    }
    // curl with only the mesh CA verifies the certificate by IP address.
    let url = format!("https://{}/readyz", cp.api);
    let ok = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
        .arg(&cp.ca_file)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Without the CA, the certificate is not trusted.
    let untrusted = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "--cacert",
            "/dev/null",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        !untrusted.status.success(),
        "a client without the mesh CA trusted the API"
    );
    // The CLI refuses http:// with a hint.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "get",
            "services",
            "--control-plane",
            &format!("http://{}", cp.api),
        ])
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS only; use https://"), "{stderr}");
}

#[test]
fn the_cli_refuses_a_control_plane_whose_certificate_is_from_another_ca() {
    let data = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(data.path());
    let home = tempfile::tempdir().unwrap();
    let token = admin_token(home.path(), data.path());
    let foreign =
        weft_tls::ca::Authority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
    let foreign_ca = other.path().join("ca.crt");
    std::fs::write(&foreign_ca, foreign.cert_pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["get", "services"])
        .env("WEFT_CONTROL_PLANE", format!("https://{}", cp.api))
        .env("WEFT_CA_FILE", &foreign_ca)
        .env("WEFT_TOKEN", &token)
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a control plane of another CA was trusted"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The address is right; the hint names the CA file, not reachability.
    assert!(
        stderr.contains(
            "presented a certificate for spiffe://cluster.local/ns/weft-system/sa/weft-control-plane"
        ) && stderr.contains(&format!("the CA file {} did not sign", foreign_ca.display()))
            && stderr.contains("copy <data-dir>/ca.crt")
            && !stderr.contains("is `weft control-plane` running"),
        "{stderr}"
    );
}

#[test]
fn token_admin_without_a_token_file_says_where_to_run_it() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "admin", "--data-dir"])
        .arg(empty.path())
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("run this on the control-plane host, or pass --data-dir"),
        "{stderr}"
    );
}

/// `status.vip` of each named service once every one has one (10 s at most).
fn vips(cp: &ControlPlane, home: &Path, token: &str, names: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Option<String>> = names
            .iter()
            .map(|name| {
                let out = cp.weft(home, &["get", "service", name, "-o", "json"], Some(token));
                serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v["status"]["vip"].as_str().map(str::to_owned))
            })
            .collect();
        if got.iter().all(Option::is_some) {
            return got.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "no VIP for some of {names:?}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn apply(cp: &ControlPlane, home: &Path, token: &str, yaml: &str) {
    let path = home.join("apply.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = cp.weft(home, &["apply", "-f", path.to_str().unwrap()], Some(token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn service(name: &str, vip: Option<&str>) -> String {
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name} }}\nspec:\n  \
         ports: [{{ port: 80 }}]\n{}---\n",
        vip.map(|v| format!("  vip: {v}\n")).unwrap_or_default()
    )
}

#[test]
fn service_vips_are_allocated_once_and_survive_a_control_plane_restart() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let first = ControlPlane::start(data.path());
    let token = admin_token(home.path(), data.path());
    let yaml = [
        service("catalog", None),
        service("orders", None),
        service("pinned", Some("10.0.0.50")),
    ]
    .concat();
    apply(&first, home.path(), &token, &yaml);
    let names = ["catalog", "orders", "pinned"];
    let before = vips(&first, home.path(), &token, &names);
    let range: weft_api::cidr::Cidr = "240.240.0.0/16".parse().unwrap();
    for vip in &before[..2] {
        assert!(
            range.contains(vip.parse().unwrap()),
            "{vip} is in the default range"
        );
    }
    assert_ne!(before[0], before[1], "distinct addresses");
    assert_eq!(before[2], "10.0.0.50", "spec.vip is honoured");
    let described = first.weft(
        home.path(),
        &["describe", "service", "catalog"],
        Some(&token),
    );
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains(&format!("VIP:          {} (allocated", before[0]))
            && described.contains("DNS name:     catalog.default.svc.cluster.local"),
        "{described}"
    );
    drop(first);

    let second = ControlPlane::start(data.path());
    assert_eq!(
        vips(&second, home.path(), &token, &names),
        before,
        "kept across the restart"
    );

    // A new range moves every allocation into it; explicit VIPs stay.
    apply(
        &second,
        home.path(),
        &token,
        "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n\
         spec: { dns: { vipRange: 198.18.7.0/24 } }\n",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = vips(&second, home.path(), &token, &names);
        if now[..2].iter().all(|v| v.starts_with("198.18.7.")) {
            assert_eq!(now[2], "10.0.0.50");
            break;
        }
        assert!(Instant::now() < deadline, "never moved: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `output`'s stdout and stderr, for assertion messages.
fn both(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn succeeded(output: Output) -> Output {
    assert!(output.status.success(), "{}", both(&output));
    output
}

#[track_caller]
fn failed_with(output: &Output, words: &[&str]) {
    assert!(!output.status.success(), "{}", both(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for word in words {
        assert!(stderr.contains(word), "no {word:?} in {stderr}");
    }
}

#[test]
fn token_admin_create_list_and_revoke_round_trip_against_the_control_plane() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(data.path());
    let admin = admin_token(home.path(), data.path());
    let shown = succeeded(cp.weft(
        home.path(),
        &[
            "token",
            "admin",
            "show",
            "--data-dir",
            &data.path().display().to_string(),
        ],
        None,
    ));
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        admin,
        "`show` is `weft token admin`"
    );

    // Read-only by default: it reads, and its writes are refused naming the role.
    let created = succeeded(cp.weft(
        home.path(),
        &["token", "admin", "create", "viewer", "--ttl", "1h"],
        Some(&admin),
    ));
    let stdout = String::from_utf8(created.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout}"
    );
    let viewer = stdout.trim().to_owned();
    assert!(viewer.starts_with("weft-read-"), "{viewer}");
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains("\"viewer\" (role read-only") && stderr.contains("expires at"),
        "{stderr}"
    );
    succeeded(cp.weft(home.path(), &["get", "services"], Some(&viewer)));
    let write = cp.weft(
        home.path(),
        &["token", "admin", "create", "mine"],
        Some(&viewer),
    );
    failed_with(&write, &["403", "read-only", "--role admin"]);

    let ops = succeeded(cp.weft(
        home.path(),
        &["token", "admin", "create", "ops", "--role", "admin"],
        Some(&admin),
    ));
    let ops = String::from_utf8(ops.stdout).unwrap().trim().to_owned();
    assert!(ops.starts_with("weft-admin-"), "{ops}");

    let listed = succeeded(cp.weft(home.path(), &["token", "admin", "list"], Some(&ops)));
    let table = String::from_utf8(listed.stdout).unwrap();
    for secret in [&admin, &viewer, &ops] {
        assert!(!table.contains(secret.as_str()), "{table}");
    }
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "ROLE", "STATUS"],
            vec!["bootstrap", "admin", "active"],
            vec!["ops", "admin", "active"],
            vec!["viewer", "read-only", "active"],
        ],
        "{table}"
    );

    succeeded(cp.weft(
        home.path(),
        &["token", "admin", "revoke", "viewer"],
        Some(&ops),
    ));
    let refused = cp.weft(home.path(), &["get", "services"], Some(&viewer));
    failed_with(&refused, &["401", "\"viewer\" was revoked"]);
    let unknown = cp.weft(
        home.path(),
        &["token", "admin", "revoke", "nobody"],
        Some(&ops),
    );
    failed_with(&unknown, &["404", "\"nobody\""]);
    let listed = succeeded(cp.weft(home.path(), &["token", "admin", "list"], Some(&admin)));
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("viewer") && l.contains("revoked")),
        "{table}"
    );
}

#[test]
fn admin_token_reset_recovers_access_after_the_token_file_is_lost() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let cp = ControlPlane::start(data.path());
    let old = admin_token(home.path(), data.path());
    let ci = succeeded(cp.weft(home.path(), &["token", "admin", "create", "ci"], Some(&old)));
    let ci = String::from_utf8(ci.stdout).unwrap().trim().to_owned();
    std::fs::remove_file(data.path().join("admin-token")).unwrap();

    // While the control plane runs.
    let reset = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "control-plane",
            "admin-token",
            "reset",
            "--data-dir",
            &data_dir,
        ])
        .env("HOME", home.path())
        .env_remove("WEFT_STORE")
        .env_remove("WEFT_ADMIN_TOKEN_FILE")
        .output()
        .unwrap();
    let reset = succeeded(reset);
    let said = String::from_utf8_lossy(&reset.stdout);
    assert!(
        said.contains(&data.path().join("admin-token").display().to_string()),
        "{said}"
    );
    let new = admin_token(home.path(), data.path());
    assert_ne!(new, old);
    assert!(new.starts_with("weft-admin-"), "{new}");
    let mode = std::fs::metadata(data.path().join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");

    succeeded(cp.weft(home.path(), &["get", "services"], Some(&new)));
    succeeded(cp.weft(home.path(), &["get", "services"], Some(&ci)));
    // The running instance refuses the old token within its refresh interval (2 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let output = cp.weft(home.path(), &["get", "services"], Some(&old));
        if !output.status.success() {
            failed_with(&output, &["401", "\"bootstrap\" was revoked"]);
            break;
        }
        assert!(Instant::now() < deadline, "the old token still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(cp);

    // And while it is stopped.
    std::fs::remove_file(data.path().join("admin-token")).unwrap();
    succeeded(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "control-plane",
                "admin-token",
                "reset",
                "--data-dir",
                &data_dir,
            ])
            .env("HOME", home.path())
            .env_remove("WEFT_STORE")
            .env_remove("WEFT_ADMIN_TOKEN_FILE")
            .output()
            .unwrap(),
    );
    let newest = admin_token(home.path(), data.path());
    let cp = ControlPlane::start(data.path());
    succeeded(cp.weft(home.path(), &["get", "services"], Some(&newest)));
    succeeded(cp.weft(home.path(), &["get", "services"], Some(&ci)));
    let output = cp.weft(home.path(), &["get", "services"], Some(&new));
    failed_with(&output, &["401", "revoked"]);

    // A data directory with no store is an error, not a new empty store.
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["control-plane", "admin-token", "reset", "--data-dir"])
        .arg(empty.path())
        .env_remove("WEFT_STORE")
        .output()
        .unwrap();
    failed_with(&output, &["no control-plane store"]);
    assert!(!empty.path().join("weft.db").exists());
}
