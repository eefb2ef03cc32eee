//! Secrets through a real control plane and the real `weft` CLI:
//! `weft_control::server::run` in this process on 127.0.0.1 with a SQLite store (and its
//! `secret.key`) in a temporary directory, resources applied with `weft apply`. Reading
//! a Secret (`get -o yaml`, `get -o json`, `describe`) shows its description and never
//! its material; `describe gateway` shows each certificate's resolution and expiry. No
//! root needed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "support/control_plane.rs"]
mod control_plane;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use control_plane::{admin_token, free_port};

/// A throwaway self-signed certificate for `example.invalid` and `*.example.invalid`
/// (P-256, valid until 2126), as in docs/gateways.md.
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBvTCCAWKgAwIBAgIUFcGXAve7lx4unkhcdeYJnb2QfUswCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPZXhhbXBsZS5pbnZhbGlkMCAXDTI2MTIwODAxMjUwN1oYDzIx\nMjYxMTE0MDEyNTA3WjAaMRgwFgYDVQQDDA9leGFtcGxlLmludmFsaWQwWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAATZWFAYbEie1JkIwB0IV7N5ntI1EFqoP6j9st0t\nZ+upoS8sh1/7emlqzBDo8SKqkYPSVMwjpfob1RljywcH0PBQo4GDMIGAMB0GA1Ud\nDgQWBBSQcpnndblScDL+IzhBRAB4biKy4TAfBgNVHSMEGDAWgBSQcpnndblScDL+\nIzhBRAB4biKy4TAPBgNVHRMBAf8EBTADAQH/MC0GA1UdEQQmMCSCD2V4YW1wbGUu\naW52YWxpZIIRKi5leGFtcGxlLmludmFsaWQwCgYIKoZIzj0EAwIDSQAwRgIhAKLN\nk8HhkB/oSrQb5PTKTis/JdJ2QpRaW3/o+Ul1dm3uAiEAm8S9fyGg9gwG1+myL9+x\nFiHzUTSDykST28XJZh8n1Fg=\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtJvIq/3BuqvXd5o3\n1EK3zk/HThb/4Tym7j8u6DWx6oShRANCAATZWFAYbEie1JkIwB0IV7N5ntI1EFqo\nP6j9st0tZ+upoS8sh1/7emlqzBDo8SKqkYPSVMwjpfob1RljywcH0PBQ\n-----END PRIVATE KEY-----\n";
const FINGERPRINT: &str =
    "C0:F9:1E:DE:1B:9F:B1:D3:24:43:2B:CF:79:D2:F6:51:11:99:6E:1E:03:76:B5:6F:DC:F7:F8:D0:CD:92:7D:B4";

fn resources() -> String {
    let indent = |pem: &str| {
        pem.lines()
            .flat_map(|l| ["    ", l, "\n"])
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: example-cert, namespace: shop }}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata: {{ name: edge, namespace: shop }}\nspec:\n  gatewayClassName: weft\n\
         \x20 listeners:\n    - name: https\n      port: 443\n      protocol: HTTPS\n\
         \x20     hostname: shop.example.invalid\n      tls:\n\
         \x20       certificateRefs: [{{ kind: Secret, name: example-cert }}]\n",
        indent(CERT),
        indent(KEY)
    )
}

/// A control plane running in this process, stopped on drop.
struct Plane {
    shutdown: CancellationToken,
    api: SocketAddr,
    ca_file: PathBuf,
    admin: String,
    home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Plane {
    async fn start() -> Plane {
        let data = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let (api, xds) = (free_port(), free_port());
        let options = weft_control::server::Options {
            store: weft_control::store::StoreSpec::data_dir(data.path()),
            api_listen: api,
            xds_listen: xds,
            instance: "secrets-test".to_owned(),
            grace_period: Duration::from_secs(30),
            debounce: Duration::from_millis(10),
            admin_token_file: None,
            ca_file: None,
            tls_hosts: Vec::new(),
            certificates: weft_control::identity::Options::default(),
            quotas: weft_control::controller::registry::Quotas::default(),
            xds_limits: weft_control::server::xds_limits(),
            secret_key_file: None,
        };
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(weft_control::server::run(options, shutdown.clone()));
        let ca_file = data.path().join(weft_control::server::CA_FILE);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = {
                let ca_file = ca_file.clone();
                tokio::task::spawn_blocking(move || {
                    weft_testkit::process::https_ready(api, "/readyz", &ca_file)
                })
                .await
                .unwrap()
            };
            match probe {
                Ok(()) => break,
                Err(why) => {
                    assert!(!run.is_finished(), "the control plane stopped: {why}");
                    assert!(
                        Instant::now() < deadline,
                        "/readyz not 200 within 30s: {why}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let admin = admin_token(home.path(), data.path());
        Plane {
            shutdown,
            api,
            ca_file,
            admin,
            home,
            _data: data,
        }
    }

    /// Runs `weft ARGS` as the operator; returns stdout, failing the test on an error.
    async fn weft(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .env("WEFT_CONTROL_PLANE", format!("https://{}", self.api))
            .env("WEFT_CA_FILE", &self.ca_file)
            .env("WEFT_TOKEN", &self.admin)
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "weft {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `weft ARGS` until its output contains `expected` (the control loop writes
    /// statuses after the write), failing after 20 s.
    async fn weft_until(&self, args: &[&str], expected: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.weft(args).await;
            if out.contains(expected) {
                return out;
            }
            assert!(Instant::now() < deadline, "{expected:?} never in:\n{out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Fails if `text` holds any line of the certificate's or key's PEM.
#[track_caller]
fn assert_no_material(what: &str, text: &str) {
    for line in CERT.lines().chain(KEY.lines()) {
        assert!(!text.contains(line), "{what} shows {line:?}:\n{text}");
    }
    for word in ["PRIVATE KEY", "sealed", "ciphertext", "stringData"] {
        assert!(!text.contains(word), "{what} shows {word:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_secret_shows_its_certificate_never_its_material_and_gateways_show_expiry() {
    let plane = Plane::start().await;
    let file = plane.home.path().join("secret.yaml");
    std::fs::write(&file, resources()).unwrap();
    plane.weft(&["apply", "-f", file.to_str().unwrap()]).await;

    let described = plane
        .weft_until(
            &["describe", "secret", "example-cert", "-n", "shop"],
            "Valid=True",
        )
        .await;
    for line in [
        "Type:         kubernetes.io/tls\n",
        "Keys:         tls.crt, tls.key\n",
        "  Subject:      CN=example.invalid\n",
        "  DNS names:    example.invalid, *.example.invalid\n",
        "  Issuer:       CN=example.invalid\n",
        "  Not before:   2026-12-08T01:25:07Z\n",
        "  Not after:    2126-11-14T01:25:07Z (",
        FINGERPRINT,
        "Referenced by:\n  Gateway shop/edge, listener https\n",
    ] {
        assert!(described.contains(line), "{line:?} not in:\n{described}");
    }
    assert_no_material("describe secret", &described);

    for format in ["yaml", "json"] {
        let out = plane
            .weft(&["get", "secret", "example-cert", "-n", "shop", "-o", format])
            .await;
        assert!(
            out.contains("example.invalid") && out.contains(FINGERPRINT),
            "{out}"
        );
        assert_no_material(&format!("get -o {format}"), &out);
    }
    let listed = plane.weft(&["get", "secrets", "-n", "shop"]).await;
    assert_no_material("get secrets", &listed);

    let gateway = plane
        .weft_until(
            &["describe", "gateway", "edge", "-n", "shop"],
            "ResolvedRefs=True",
        )
        .await;
    let line = "    certificate shop/example-cert: resolved; DNS names example.invalid, \
                *.example.invalid; notAfter 2126-11-14T01:25:07Z (";
    assert!(gateway.contains(line), "{line:?} not in:\n{gateway}");
    assert!(gateway.contains("d left)"), "{gateway}");
    assert_no_material("describe gateway", &gateway);
}
