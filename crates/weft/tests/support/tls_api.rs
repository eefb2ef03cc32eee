//! The control plane's HTTP API router served in this process over TLS, as `weft
//! control-plane` serves it: a certificate for the control plane's identity from a CA
//! made for the test, whose certificate is written where the CLI's config file points.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// An API served over TLS on 127.0.0.1.
pub(crate) struct TlsApi {
    pub(crate) addr: SocketAddr,
    /// The CA certificate (PEM) that vouches for it.
    pub(crate) ca_file: PathBuf,
}

/// Serves `router` over TLS; the CA file is written into `dir`.
pub(crate) async fn serve(router: axum::Router, dir: &Path) -> TlsApi {
    let ca = weft_tls::ca::Authority::generate("cluster.local", Duration::from_secs(86_400))
        .expect("test CA");
    let id = weft_tls::control::identity("cluster.local").expect("control-plane identity");
    let leaf = ca
        .issue_server(
            &id,
            &["127.0.0.1".into()],
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .expect("serving certificate");
    let serving = Arc::new(
        weft_tls::control::ServingCert::new(&leaf.chain, &leaf.key_der).expect("serving key"),
    );
    let config =
        weft_tls::control::server_config(serving, weft_tls::control::ALPN_API).expect("TLS config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let incoming = weft_control::tls::incoming(
        listener,
        config,
        "test API",
        &weft_tls::listener::Limits::default(),
        CancellationToken::new(),
    );
    tokio::spawn(async move { axum::serve(incoming, router).await });
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).expect("write CA file");
    TlsApi { addr, ca_file }
}

/// Writes `~/.config/weft/config.yaml` under `home` naming `ca_file`.
pub(crate) fn configure_ca(home: &Path, ca_file: &Path) {
    let dir = home.join(".config/weft");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(
        dir.join("config.yaml"),
        format!("caFile: {}\n", ca_file.display()),
    )
    .expect("write CLI config");
}
