//! Real HBONE mTLS handshakes between `Credentials`-built configurations.
//!
//! Each test runs a tokio-rustls client and server over an in-memory pipe (or, for the
//! main success case, a 127.0.0.1 TCP connection) and checks what each side saw.

#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};
use weft_tls::ca::{Authority, Issued};
use weft_tls::verify::{self, ServerVerifier};
use weft_tls::{Credentials, SpiffeId};

const DAY: Duration = Duration::from_secs(86_400);
const TIMEOUT: Duration = Duration::from_secs(10);

fn id(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "default", sa).unwrap()
}

fn creds(ca: &Authority, issued: &Issued) -> Credentials {
    Credentials::from_pem(
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
        ca.cert_pem().as_bytes(),
    )
    .unwrap()
}

/// A CA with two workloads, `client` and `server`.
struct Mesh {
    ca: Authority,
    client: Credentials,
    server: Credentials,
}

impl Mesh {
    fn new() -> Self {
        let ca = Authority::generate("cluster.local", 10 * DAY).unwrap();
        let client = creds(&ca, &ca.issue(&id("client"), DAY).unwrap());
        let server = creds(&ca, &ca.issue(&id("server"), DAY).unwrap());
        Mesh { ca, client, server }
    }
}

type Outcome = (
    io::Result<server::TlsStream<tokio::io::DuplexStream>>,
    io::Result<client::TlsStream<tokio::io::DuplexStream>>,
);

/// Runs one handshake over an in-memory pipe and returns what each side got.
async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("weft.invalid").unwrap();
    let accept = TlsAcceptor::from(server).accept(server_io);
    let connect = TlsConnector::from(client).connect(name, client_io);
    tokio::time::timeout(TIMEOUT, async { tokio::join!(accept, connect) })
        .await
        .expect("handshake timed out")
}

/// The rustls error inside a tokio-rustls I/O error.
fn tls_error(err: &io::Error) -> &rustls::Error {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {err:?}"))
}

fn is_expired(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

/// Proves the connection is usable in both directions.
async fn ping_pong<S, C>(server: &mut S, client: &mut C)
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Unpin,
{
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

/// After the server refused it, a TLS 1.3 client (whose handshake finished first) must
/// not be able to read: it gets the server's alert or end of stream.
async fn assert_client_cut_off(client: io::Result<client::TlsStream<tokio::io::DuplexStream>>) {
    if let Ok(mut stream) = client {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
            .await
            .expect("client read timed out");
        assert!(
            matches!(read, Err(_) | Ok(0)),
            "client could read after rejection: {read:?}"
        );
    }
}

#[tokio::test]
async fn mtls_handshake_succeeds_and_server_sees_client_identity() {
    let mesh = Mesh::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(mesh.server.server_config().unwrap());
    let connector = TlsConnector::from(mesh.client.client_config(&id("server")).unwrap());

    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let peer = verify::peer_identity(tls.get_ref().1.peer_certificates().unwrap()).unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(b"pong").await.unwrap();
        tls.shutdown().await.unwrap();
        (peer, buf)
    });

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server name is deliberately an IP: the SPIFFE ID, not the name, is checked.
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let server_id = verify::peer_identity(tls.get_ref().1.peer_certificates().unwrap()).unwrap();
    assert_eq!(server_id, id("server"));
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");

    let (peer, received) = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer, id("client"));
    assert_eq!(&received, b"ping");
}

#[tokio::test]
async fn negotiates_tls13_and_h2() {
    let mesh = Mesh::new();
    let (server, client) = handshake(
        mesh.server.server_config().unwrap(),
        mesh.client.client_config(&id("server")).unwrap(),
    )
    .await;
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    ping_pong(&mut server, &mut client).await;

    let server_conn = server.get_ref().1;
    let client_conn = client.get_ref().1;
    assert_eq!(
        server_conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        client_conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(server_conn.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(client_conn.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn server_refuses_tls12_client() {
    let mesh = Mesh::new();
    let issued = mesh.ca.issue(&id("client"), DAY).unwrap();
    let provider = weft_tls::crypto_provider();
    let mut tls12 = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::new(
            mesh.client.roots().clone(),
            id("server"),
            &provider,
        )))
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    tls12.alpn_protocols = vec![b"h2".to_vec()];

    let (server, client) = handshake(mesh.server.server_config().unwrap(), Arc::new(tls12)).await;
    let server_err = server.expect_err("server accepted TLS 1.2");
    assert!(
        matches!(tls_error(&server_err), rustls::Error::PeerIncompatible(_)),
        "{server_err:?}"
    );
    assert!(client.is_err());
}

#[tokio::test]
async fn server_refuses_client_offering_only_http11() {
    let mesh = Mesh::new();
    let mut config = (*mesh.client.client_config(&id("server")).unwrap()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (server, client) = handshake(mesh.server.server_config().unwrap(), Arc::new(config)).await;
    let server_err = server.expect_err("server accepted a non-h2 client");
    assert_eq!(
        tls_error(&server_err),
        &rustls::Error::NoApplicationProtocol
    );
    assert!(client.is_err());
}

#[tokio::test]
async fn client_rejects_server_with_wrong_spiffe_id() {
    let mesh = Mesh::new();
    let (server, client) = handshake(
        mesh.server.server_config().unwrap(),
        mesh.client.client_config(&id("database")).unwrap(),
    )
    .await;
    let client_err = client.expect_err("client accepted the wrong server");
    let identity_err = verify::Error::from_rustls(tls_error(&client_err))
        .unwrap_or_else(|| panic!("not an identity error: {client_err:?}"));
    assert_eq!(
        identity_err.to_string(),
        "server presented SPIFFE ID spiffe://cluster.local/ns/default/sa/server, expected \
         spiffe://cluster.local/ns/default/sa/database; the address may now belong to another \
         workload, or the destination's identity in the mesh config is stale"
    );
    assert!(server.is_err(), "server must see the client abort");
}

#[tokio::test]
async fn client_rejects_certificate_from_other_ca() {
    let mesh = Mesh::new();
    // Same trust domain and identity, different CA: only the chain can tell them apart.
    let rogue_ca = Authority::generate("cluster.local", 10 * DAY).unwrap();
    let rogue = creds(&rogue_ca, &rogue_ca.issue(&id("server"), DAY).unwrap());
    let (server, client) = handshake(
        rogue.server_config().unwrap(),
        mesh.client.client_config(&id("server")).unwrap(),
    )
    .await;
    let client_err = client.expect_err("client accepted a server from another CA");
    assert_eq!(
        tls_error(&client_err),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert!(server.is_err());
}

#[tokio::test]
async fn server_rejects_client_from_other_ca() {
    let mesh = Mesh::new();
    let rogue_ca = Authority::generate("cluster.local", 10 * DAY).unwrap();
    let rogue_issued = rogue_ca.issue(&id("client"), DAY).unwrap();
    // The rogue client trusts the real CA, so it accepts the server; the server must not
    // accept the rogue client.
    let rogue = Credentials::from_pem(
        rogue_issued.cert_pem.as_bytes(),
        rogue_issued.key_pem.as_bytes(),
        format!("{}{}", rogue_ca.cert_pem(), mesh.ca.cert_pem()).as_bytes(),
    )
    .unwrap();
    let (server, client) = handshake(
        mesh.server.server_config().unwrap(),
        rogue.client_config(&id("server")).unwrap(),
    )
    .await;
    let server_err = server.expect_err("server accepted a client from another CA");
    assert_eq!(
        tls_error(&server_err),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert_client_cut_off(client).await;
}

#[tokio::test]
async fn server_rejects_client_without_certificate() {
    let mesh = Mesh::new();
    let provider = weft_tls::crypto_provider();
    let mut anonymous = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::new(
            mesh.client.roots().clone(),
            id("server"),
            &provider,
        )))
        .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];

    let (server, client) =
        handshake(mesh.server.server_config().unwrap(), Arc::new(anonymous)).await;
    let server_err = server.expect_err("server accepted a client without certificate");
    assert_eq!(
        tls_error(&server_err),
        &rustls::Error::NoCertificatesPresented
    );
    assert_client_cut_off(client).await;
}

#[tokio::test]
async fn rejects_expired_server_certificate() {
    let mesh = Mesh::new();
    let now = SystemTime::now();
    let expired = creds(
        &mesh.ca,
        &mesh
            .ca
            .issue_with_validity(&id("server"), now - 2 * DAY, now - DAY)
            .unwrap(),
    );
    assert!(expired.is_expired());
    let (server, client) = handshake(
        expired.server_config().unwrap(),
        mesh.client.client_config(&id("server")).unwrap(),
    )
    .await;
    let client_err = client.expect_err("client accepted an expired server certificate");
    assert!(is_expired(tls_error(&client_err)), "{client_err:?}");
    assert!(server.is_err());
}

#[tokio::test]
async fn rejects_expired_client_certificate() {
    let mesh = Mesh::new();
    let now = SystemTime::now();
    let expired = creds(
        &mesh.ca,
        &mesh
            .ca
            .issue_with_validity(&id("client"), now - 2 * DAY, now - DAY)
            .unwrap(),
    );
    let (server, client) = handshake(
        mesh.server.server_config().unwrap(),
        expired.client_config(&id("server")).unwrap(),
    )
    .await;
    let server_err = server.expect_err("server accepted an expired client certificate");
    assert!(is_expired(tls_error(&server_err)), "{server_err:?}");
    assert_client_cut_off(client).await;
}

#[tokio::test]
async fn rotated_credentials_interoperate_under_the_same_ca() {
    // A fresh certificate for the same identity (rotation) must still be accepted.
    let mesh = Mesh::new();
    let rotated = creds(&mesh.ca, &mesh.ca.issue(&id("server"), DAY).unwrap());
    let (server, client) = handshake(
        rotated.server_config().unwrap(),
        mesh.client.client_config(&id("server")).unwrap(),
    )
    .await;
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    ping_pong(&mut server, &mut client).await;
}
