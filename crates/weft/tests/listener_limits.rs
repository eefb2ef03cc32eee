//! The real `weft control-plane` on 127.0.0.1 under an open-file limit of 1024 (as on
//! many hosts), attacked with 2,000 idle TCP connections, 1,000 idle TLS connections
//! without a token and a slowloris trickling a request head, each from its own loopback source
//! address; a legitimate operator from 127.0.0.1 is still served promptly (ADR 0023).
//! No root needed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

#[path = "support/control_plane.rs"]
mod control_plane;
use control_plane::{admin_token, free_port};

/// A running `weft control-plane`, killed on drop.
struct ControlPlane {
    child: Child,
    api: SocketAddr,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();

        let _ = self.child.wait();
    }
}

/// Starts the control plane with soft and hard open-file limits of 1024 (so it cannot
/// raise them) and waits for `/readyz`.
fn start(data_dir: &Path) -> ControlPlane {
    let api = free_port();
    let xds = free_port();
    let child = Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_weft"))
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
    let mut cp = ControlPlane { child, api };
    let ca_file = data_dir.join("ca.crt");
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(why) = weft_testkit::process::https_ready(api, "/readyz", &ca_file) {
        if let Some(status) = cp.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(data_dir.join("control-plane.log"));
            panic!(
                "control plane exited: {status}\n{}",
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

fn tls_config(ca_file: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read_to_string(ca_file).unwrap();
    let roots = weft_tls::TrustBundle::from_pem(&pem).unwrap().root_store();
    weft_tls::control::client_config(roots, &[b"http/1.1"]).unwrap()
}

async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

async fn tls_from(
    from: [u8; 4],
    to: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = connect_from(from, to).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::from(to.ip());
    let connect = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(format!("TLS: {e}")),
        Err(_) => Err("TLS handshake timed out".to_owned()),
    }
}

/// `GET path` from 127.0.0.1 with `token`; the status line, or what went wrong.
async fn get(
    api: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
    token: &str,
) -> Result<String, String> {
    let mut tls = tls_from([127, 0, 0, 1], api, config).await?;
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[test]
fn an_operator_is_served_while_idle_connections_and_a_slowloris_hold_the_api() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cp = start(data.path());
    let token = admin_token(home.path(), data.path());
    let config = tls_config(&data.path().join("ca.crt"));
    let api = cp.api;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        // 1,000 idle TLS connections without a token (the report: enough to
        // exhaust 1024 descriptors when each is held forever)...
        let mut idle_tls = Vec::new();
        for _ in 0..1000 {
            if let Ok(tls) = tls_from([127, 0, 0, 3], api, &config).await {
                idle_tls.push(tls);
            }
        }
        // ...and 2,000 connections that never start TLS.
        let mut idle = Vec::new();
        for _ in 0..2000 {
            let connect = connect_from([127, 0, 0, 2], api);
            if let Ok(Ok(tcp)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
                idle.push(tcp);
            }
        }
        // A slowloris: a request head, one header line every 500 ms, never finished.
        let mut slow = tls_from([127, 0, 0, 4], api, &config).await.unwrap();
        let slow_started = Instant::now();
        let slowloris = tokio::spawn(async move {
            slow.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n")
                .await
                .unwrap();
            for n in 0..60 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let line = format!("X-Slow-{n}: 1\r\n");
                if slow.write_all(line.as_bytes()).await.is_err() {
                    return slow_started.elapsed();
                }
            }
            slow_started.elapsed()
        });

        // The operator (127.0.0.1) is served promptly.
        let started = Instant::now();
        let ready =
            tokio::time::timeout(Duration::from_secs(5), get(api, &config, "/readyz", &token))
                .await
                .expect("/readyz answers within 5s under attack");
        assert_eq!(
            ready.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "/readyz under attack"
        );
        let proxies = tokio::time::timeout(
            Duration::from_secs(5),
            get(api, &config, "/v1/proxies", &token),
        )
        .await
        .expect("an API call answers within 5s under attack");
        assert_eq!(
            proxies.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "/v1/proxies under attack"
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // The slowloris is cut at the header-read timeout (10 s), not held forever.
        let held = tokio::time::timeout(Duration::from_secs(25), slowloris)
            .await
            .expect("the slowloris connection is closed")
            .unwrap();
        assert!(
            held < Duration::from_secs(20),
            "slowloris held for {held:?}"
        );
        drop((idle, idle_tls));
    });
    drop(cp);
}
