//! Proxy → control plane failures say which, with what to do next: nothing listening,
//! a control plane of another CA (naming the identity it presented), `http://` where
//! TLS is served, a refused workload token. In process on 127.0.0.1, no root.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use weft_api::pb::v1 as pb;
use weft_proxy::control_plane::channel::Trust;
use weft_proxy::control_plane::identity;
use weft_tls::ca::Authority;
use weft_tls::SpiffeId;

const HOUR: Duration = Duration::from_secs(3600);

/// A TLS server on 127.0.0.1 presenting the control plane's identity, signed by `ca`:
/// it completes handshakes and then says nothing.
async fn tls_server(ca: &Authority) -> String {
    let issued = ca
        .issue(&weft_tls::control::identity("cluster.local").unwrap(), HOUR)
        .unwrap();
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let cert = Arc::new(weft_tls::control::ServingCert::new(&chain, key.secret_der()).unwrap());
    let config = weft_tls::control::server_config(cert, weft_tls::control::ALPN_GRPC).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(tls);
                }
            });
        }
    });
    addr.to_string()
}

fn options(
    endpoint: String,
    ca_file: Option<&Path>,
    token_file: Option<&Path>,
    dir: &Path,
) -> identity::Options {
    identity::Options {
        endpoint,
        trust: Trust {
            ca_file: ca_file.map(Path::to_path_buf),
            issued_bundle: None,
        },
        token_file: token_file.map(Path::to_path_buf),
        identity: SpiffeId::new("cluster.local", "default", "web").unwrap(),
        dir: dir.to_path_buf(),
        ttl: None,
        workload: "web".into(),
    }
}

fn ca_file(dir: &Path, ca: &Authority) -> std::path::PathBuf {
    let path = dir.join("ca.crt");
    std::fs::write(&path, ca.cert_pem()).unwrap();
    path
}

async fn failure(options: &identity::Options) -> String {
    let err = tokio::time::timeout(Duration::from_secs(20), identity::request(options))
        .await
        .expect("the request ends promptly")
        .expect_err("the request must fail");
    err.to_string()
}

#[tokio::test]
async fn a_closed_port_says_nothing_is_listening() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::generate("cluster.local", HOUR).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ca = ca_file(dir.path(), &ca);
    let text = failure(&options(
        format!("https://127.0.0.1:{port}"),
        Some(&ca),
        None,
        dir.path(),
    ))
    .await;
    assert!(
        text.contains(&format!("nothing is listening at https://127.0.0.1:{port}"))
            && text.contains("is `weft control-plane` running"),
        "{text}"
    );
}

#[tokio::test]
async fn a_control_plane_of_another_ca_names_the_identity_and_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = Authority::generate("cluster.local", HOUR).unwrap();
    let ours = Authority::generate("cluster.local", HOUR).unwrap();
    let addr = tls_server(&theirs).await;
    let ca = ca_file(dir.path(), &ours);
    let text = failure(&options(
        format!("https://{addr}"),
        Some(&ca),
        None,
        dir.path(),
    ))
    .await;
    assert!(
        text.contains(
            "presented a certificate for spiffe://cluster.local/ns/weft-system/sa/weft-control-plane"
        ) && text.contains(&format!("the CA file {} did not sign", ca.display()))
            && text.contains("--control-plane-ca"),
        "{text}"
    );
}

#[tokio::test]
async fn plaintext_to_the_tls_control_plane_says_use_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::generate("cluster.local", HOUR).unwrap();
    let addr = tls_server(&ca).await;
    let ca = ca_file(dir.path(), &ca);
    let text = failure(&options(
        format!("http://{addr}"),
        Some(&ca),
        None,
        dir.path(),
    ))
    .await;
    assert!(
        text.contains(&format!(
            "http://{addr} is plaintext, but the control plane serves TLS only"
        )) && text.contains("use https://"),
        "{text}"
    );
}

/// A fake Identity service that refuses every token, as the control plane does an
/// expired one.
struct Refusing;

#[tonic::async_trait]
impl pb::identity_server::Identity for Refusing {
    async fn sign(
        &self,
        _request: tonic::Request<pb::SignRequest>,
    ) -> Result<tonic::Response<pb::SignResponse>, tonic::Status> {
        Err(tonic::Status::unauthenticated("workload token t-1 expired"))
    }
}

#[tokio::test]
async fn a_refused_token_names_the_token_file_and_how_to_get_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::identity_server::IdentityServer::new(Refusing))
            .serve_with_incoming(futures::stream::unfold(listener, |l| async move {
                let accepted = l.accept().await.map(|(tcp, _)| tcp);
                Some((accepted, l))
            })),
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "t-1.secret\n").unwrap();
    let text = failure(&options(
        format!("http://{addr}"),
        None,
        Some(&token),
        dir.path(),
    ))
    .await;
    assert!(
        text.contains(&format!(
            "refused the workload token in {}",
            token.display()
        )) && text.contains("workload token t-1 expired")
            && text.contains("weft token workload"),
        "{text}"
    );
}
