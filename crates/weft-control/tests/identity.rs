//! The `weft.proxy.v1.Identity` service end to end: a tonic server on 127.0.0.1:0 over
//! an SQLite store in a temporary directory, called by the generated client with a CSR
//! from `weft_tls::csr` and a workload token. Also the mesh CA's life in the store
//! (restart, concurrent start) and an operator-provided root + intermediate.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::json;
use tonic::transport::Channel;
use tonic::Code;
use weft_api::pb::v1 as pb;
use weft_api::pb::v1::identity_client::IdentityClient;
use weft_api::resource::Object;
use weft_control::ca::{MeshCa, Source, BUILTIN_SECRET};
use weft_control::identity::tokens::{self, SIGNING_KEY_SECRET};
use weft_control::identity::{self, Tokens};
use weft_control::store::{self, Precondition, Store, StoreSpec};
use weft_tls::bundle::TrustBundle;
use weft_tls::token::TokenKey;
use weft_tls::{Credentials, SpiffeId};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

const TD: &str = "cluster.local";

/// A store, its CA and token issuer, and the Identity service serving them.
struct Plane {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    ca: Arc<MeshCa>,
    tokens: Arc<Tokens>,
    client: IdentityClient<Channel>,
}

impl Plane {
    /// A plane with the builtin CA.
    async fn builtin() -> Plane {
        let dir = weft_testkit::tempdir().unwrap();
        let store = store::open(&StoreSpec::data_dir(dir.path())).await.unwrap();
        let ca = MeshCa::start(store.as_ref()).await.unwrap();
        Plane::serve(dir, store, ca).await
    }

    async fn serve(dir: tempfile::TempDir, store: Arc<dyn Store>, ca: MeshCa) -> Plane {
        Plane::serve_recording(dir, store, ca, false).await
    }

    /// A plane with the builtin CA that records issued certificates on workloads.
    async fn recording() -> Plane {
        let dir = weft_testkit::tempdir().unwrap();
        let store = store::open(&StoreSpec::data_dir(dir.path())).await.unwrap();
        let ca = MeshCa::start(store.as_ref()).await.unwrap();
        Plane::serve_recording(dir, store, ca, true).await
    }

    async fn serve_recording(
        dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        ca: MeshCa,
        records: bool,
    ) -> Plane {
        let ca = Arc::new(ca);
        let tokens = Arc::new(
            Tokens::load(store.clone(), ca.trust_domain())
                .await
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let service = identity::service_recording(
            ca.clone(),
            tokens.clone(),
            identity::Options::default(),
            records.then(|| store.clone()),
        );
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        let client = IdentityClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        Plane {
            _dir: dir,
            store,
            ca,
            tokens,
            client,
        }
    }

    fn token(&self, namespace: &str, service_account: &str) -> String {
        self.tokens
            .issue(
                namespace,
                service_account,
                &BTreeMap::new(),
                Duration::from_secs(3600),
                SystemTime::now(),
            )
            .unwrap()
            .token
    }

    /// Calls `Sign` with `csr` and, if given, `authorization: Bearer <token>`.
    async fn sign(
        &self,
        token: Option<&str>,
        csr: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<pb::SignResponse, tonic::Status> {
        self.sign_for(token, csr, ttl, "").await
    }

    /// [`Plane::sign`] naming `workload` in the request.
    async fn sign_for(
        &self,
        token: Option<&str>,
        csr: Vec<u8>,
        ttl: Option<Duration>,
        workload: &str,
    ) -> Result<pb::SignResponse, tonic::Status> {
        let mut request = tonic::Request::new(pb::SignRequest {
            csr,
            ttl: ttl.map(|d| prost_types::Duration::try_from(d).unwrap()),
            workload: workload.to_owned(),
        });
        if let Some(token) = token {
            request.metadata_mut().insert(
                pb::AUTHORIZATION_METADATA_KEY,
                format!("{}{token}", pb::BEARER_PREFIX).parse().unwrap(),
            );
        }
        self.client
            .clone()
            .sign(request)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// A key and a CSR asking for `spiffe://cluster.local/ns/NS/sa/SA`.
fn csr_for(namespace: &str, service_account: &str) -> (String, Vec<u8>) {
    weft_tls::csr::generate(&SpiffeId::new(TD, namespace, service_account).unwrap()).unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

fn chain_pem(chain: &[Vec<u8>]) -> String {
    chain.iter().map(|der| pem("CERTIFICATE", der)).collect()
}

/// Every URI SAN of a DER certificate.
fn uri_sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let Some(san) = cert.subject_alternative_name().unwrap() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

fn not_after(der: &[u8]) -> SystemTime {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

// === signing ===

#[tokio::test]
async fn signs_the_tokens_identity_not_the_one_the_csr_asks_for() {
    let plane = Plane::builtin().await;
    let token = plane.token("shop", "web");
    let (key_pem, csr) = csr_for("kube-system", "admin");

    let signed = plane.sign(Some(&token), csr, None).await.unwrap();

    let expected = "spiffe://cluster.local/ns/shop/sa/web";
    assert_eq!(signed.identity, expected);
    assert_eq!(
        uri_sans(&signed.cert_chain[0]),
        [expected],
        "only the token's identity"
    );
    assert_eq!(signed.trust_bundle.len(), 1, "one root");
    let bundle = TrustBundle::from_der(signed.trust_bundle.clone()).unwrap();
    let credentials = Credentials::from_pem(
        chain_pem(&signed.cert_chain).as_bytes(),
        key_pem.as_bytes(),
        bundle.to_pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(credentials.identity().to_string(), expected);
    let not_after_sent = signed.not_after.unwrap();
    assert_eq!(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(not_after_sent.seconds).unwrap()),
        not_after(&signed.cert_chain[0])
    );
}

#[tokio::test]
async fn certificate_lifetime_is_capped_at_24_hours_and_honours_shorter_requests() {
    let plane = Plane::builtin().await;
    let token = plane.token("shop", "web");
    let day = Duration::from_secs(24 * 3600);
    let now = SystemTime::now();

    let (_, csr) = csr_for("shop", "web");
    let long = plane
        .sign(Some(&token), csr, Some(Duration::from_secs(30 * 24 * 3600)))
        .await
        .unwrap();
    let lifetime = not_after(&long.cert_chain[0]).duration_since(now).unwrap();
    assert!(lifetime <= day + Duration::from_secs(5), "{lifetime:?}");
    assert!(
        lifetime >= Duration::from_secs(24 * 3600 - 60),
        "{lifetime:?}"
    );

    let (_, csr) = csr_for("shop", "web");
    let short = plane
        .sign(Some(&token), csr, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let lifetime = not_after(&short.cert_chain[0]).duration_since(now).unwrap();
    assert!(lifetime <= Duration::from_secs(3605), "{lifetime:?}");
    assert!(lifetime >= Duration::from_secs(3540), "{lifetime:?}");
}

// === refusals ===

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let plane = Plane::builtin().await;
    let (_, csr) = csr_for("shop", "web");
    let status = plane.sign(None, csr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("missing workload token"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_malformed_authorization_is_unauthenticated() {
    let plane = Plane::builtin().await;
    let (_, csr) = csr_for("shop", "web");
    let mut request = tonic::Request::new(pb::SignRequest {
        csr,
        ttl: None,
        workload: String::new(),
    });
    request.metadata_mut().insert(
        pb::AUTHORIZATION_METADATA_KEY,
        "Basic d2VmdDp3ZWZ0".parse().unwrap(),
    );
    let status = plane.client.clone().sign(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("malformed"), "{status:?}");

    let (_, csr) = csr_for("shop", "web");
    let status = plane.sign(Some("not.a.jwt"), csr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_unauthenticated() {
    let plane = Plane::builtin().await;
    let forger = Tokens::new(TokenKey::generate().unwrap(), plane.store.clone(), TD);
    let forged = forger
        .issue(
            "shop",
            "web",
            &BTreeMap::new(),
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap()
        .token;
    let (_, csr) = csr_for("shop", "web");
    let status = plane.sign(Some(&forged), csr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated_and_says_so() {
    let plane = Plane::builtin().await;
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    let expired = plane
        .tokens
        .issue(
            "shop",
            "web",
            &BTreeMap::new(),
            Duration::from_secs(3600),
            two_hours_ago,
        )
        .unwrap()
        .token;
    let (_, csr) = csr_for("shop", "web");
    let status = plane.sign(Some(&expired), csr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{status:?}");
}

#[tokio::test]
async fn a_revoked_token_is_permission_denied() {
    let plane = Plane::builtin().await;
    let issued = plane
        .tokens
        .issue_recorded(
            "shop",
            "web",
            &BTreeMap::new(),
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .await
        .unwrap();
    let (_, csr) = csr_for("shop", "web");
    plane.sign(Some(&issued.token), csr, None).await.unwrap();

    plane
        .tokens
        .revoke(&issued.claims.id, Some(issued.claims.expires_at), false)
        .await
        .unwrap();
    let (_, csr) = csr_for("shop", "web");
    let status = plane
        .sign(Some(&issued.token), csr, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("revoked"), "{status:?}");
}

#[tokio::test]
async fn a_token_of_another_trust_domain_is_permission_denied() {
    let plane = Plane::builtin().await;
    let pem = plane
        .store
        .secret(SIGNING_KEY_SECRET)
        .await
        .unwrap()
        .unwrap();
    let key = TokenKey::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
    let other = Tokens::new(key, plane.store.clone(), "other.example");
    let token = other
        .issue(
            "shop",
            "web",
            &BTreeMap::new(),
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap()
        .token;
    let (_, csr) = csr_for("shop", "web");
    let status = plane.sign(Some(&token), csr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("other.example"), "{status:?}");
}

#[tokio::test]
async fn a_garbage_csr_is_an_invalid_argument() {
    let plane = Plane::builtin().await;
    let token = plane.token("shop", "web");
    let status = plane
        .sign(Some(&token), b"not a csr".to_vec(), None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("csr"), "{status:?}");
}

// === the CA in the store ===

#[tokio::test]
async fn the_builtin_ca_survives_a_restart_on_the_same_store() {
    let dir = weft_testkit::tempdir().unwrap();
    let spec = StoreSpec::data_dir(dir.path());
    let store = store::open(&spec).await.unwrap();
    let first = MeshCa::start(store.as_ref()).await.unwrap();
    let first_key = Tokens::load(store.clone(), TD).await.unwrap().key_id();
    assert_eq!(first.source(), Source::Builtin { generation: 0 });
    assert_eq!(first.trust_domain(), TD);
    drop(store);

    let reopened = store::open(&spec).await.unwrap();
    let second = MeshCa::start(reopened.as_ref()).await.unwrap();
    assert_eq!(
        first.trust_bundle().roots_der(),
        second.trust_bundle().roots_der(),
        "same root"
    );
    let second_key = Tokens::load(reopened.clone(), TD).await.unwrap().key_id();
    assert_eq!(first_key, second_key, "same token signing key");
    let stored = reopened.secret(BUILTIN_SECRET).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&stored).contains("PRIVATE KEY"),
        "the key is kept in the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_cas_started_together_on_one_store_agree_on_one_root() {
    let dir = weft_testkit::tempdir().unwrap();
    let store = store::open(&StoreSpec::data_dir(dir.path())).await.unwrap();
    let (a, b) = tokio::join!(
        MeshCa::builtin(store.as_ref(), TD),
        MeshCa::builtin(store.as_ref(), TD)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.trust_bundle().roots_der(), b.trust_bundle().roots_der());
    let (ta, tb) = tokio::join!(
        Tokens::load(store.clone(), TD),
        Tokens::load(store.clone(), TD)
    );
    assert_eq!(ta.unwrap().key_id(), tb.unwrap().key_id());
}

#[tokio::test]
async fn the_trust_domain_of_a_new_builtin_ca_comes_from_the_mesh() {
    let dir = weft_testkit::tempdir().unwrap();
    let store = store::open(&StoreSpec::data_dir(dir.path())).await.unwrap();
    let mesh: Object = serde_json::from_value(json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"trustDomain": "corp.example"}
    }))
    .unwrap();
    store.put(mesh, Precondition::None).await.unwrap();
    let ca = MeshCa::start(store.as_ref()).await.unwrap();
    assert_eq!(ca.trust_domain(), "corp.example");
    let plane = Plane::serve(dir, store, ca).await;
    let token = plane.token("shop", "web");
    let (_, csr) = csr_for("shop", "web");
    let signed = plane.sign(Some(&token), csr, None).await.unwrap();
    assert_eq!(signed.identity, "spiffe://corp.example/ns/shop/sa/web");
    assert_eq!(plane.ca.trust_domain(), "corp.example");
}

// === a provided CA ===

/// Writes a root (self-signed, no SPIFFE SAN) and an intermediate it signed (URI SAN
/// `spiffe://cluster.local`) as PEM files in `dir`; returns the root's DER.
fn write_root_and_intermediate(dir: &Path) -> Vec<u8> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };

    let ca_params = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    };
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Example Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);

    let intermediate_key = KeyPair::generate().unwrap();
    let mut intermediate_params = ca_params("Example Weft Intermediate");
    intermediate_params.subject_alt_names =
        vec![SanType::URI("spiffe://cluster.local".try_into().unwrap())];
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .unwrap();

    std::fs::write(dir.join("intermediate.crt"), intermediate.pem()).unwrap();
    std::fs::write(
        dir.join("intermediate.key"),
        intermediate_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(dir.join("root.crt"), root.pem()).unwrap();
    root.der().to_vec()
}

#[tokio::test]
async fn a_provided_intermediate_signs_leaves_that_verify_against_the_root_alone() {
    let dir = weft_testkit::tempdir().unwrap();
    let root_der = write_root_and_intermediate(dir.path());
    let store = store::open(&StoreSpec::data_dir(dir.path().join("data")))
        .await
        .unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let mesh: Object = serde_json::from_value(json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"ca": {"type": "provided", "provided": {
            "certFile": path("intermediate.crt"),
            "keyFile": path("intermediate.key"),
            "chainFile": path("root.crt"),
        }}}
    }))
    .unwrap();
    store.put(mesh, Precondition::None).await.unwrap();

    let ca = MeshCa::start(store.as_ref()).await.unwrap();
    assert!(matches!(ca.source(), Source::Provided { .. }), "{ca:?}");
    assert_eq!(
        ca.trust_bundle().roots_der(),
        std::slice::from_ref(&root_der),
        "the root only"
    );
    assert_eq!(
        store.secret(BUILTIN_SECRET).await.unwrap(),
        None,
        "no builtin CA is made"
    );

    let plane = Plane::serve(dir, store, ca).await;
    let token = plane.token("shop", "web");
    let (key_pem, csr) = csr_for("shop", "web");
    let signed = plane.sign(Some(&token), csr, None).await.unwrap();
    assert_eq!(signed.cert_chain.len(), 2, "leaf and intermediate");
    assert_eq!(signed.trust_bundle, std::slice::from_ref(&root_der));
    let credentials = Credentials::from_pem(
        chain_pem(&signed.cert_chain).as_bytes(),
        key_pem.as_bytes(),
        pem("CERTIFICATE", &root_der).as_bytes(),
    )
    .unwrap();
    assert_eq!(
        credentials.identity().to_string(),
        "spiffe://cluster.local/ns/shop/sa/web"
    );
}

#[tokio::test]
async fn a_missing_provided_ca_file_is_named() {
    let dir = weft_testkit::tempdir().unwrap();
    let files = weft_api::resource::mesh::ProvidedCa {
        cert_file: dir.path().join("missing.crt").display().to_string(),
        key_file: dir.path().join("missing.key").display().to_string(),
        chain_file: None,
    };
    let err = MeshCa::provided(&files, TD).unwrap_err().to_string();
    assert!(
        err.contains("certFile") && err.contains("missing.crt"),
        "{err}"
    );
}

#[tokio::test]
async fn a_csr_may_name_only_a_workload_of_its_own_identity() {
    let plane = Plane::recording().await;
    let workload = |name: &str, sa: &str| -> weft_api::resource::Object {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "Workload",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"serviceAccount": sa, "address": "10.0.0.1", "ports": [{"port": 8080}]}
        }))
        .unwrap()
    };
    plane
        .store
        .put(workload("catalog-v1", "catalog"), store::Precondition::None)
        .await
        .unwrap();
    let attacker = plane.token("shop", "attacker");
    let (_, csr) = csr_for("shop", "attacker");
    let refused = plane
        .sign_for(Some(&attacker), csr.clone(), None, "catalog-v1")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("shop/catalog-v1 belongs to service account \"catalog\""),
        "{}",
        refused.message()
    );
    let key = weft_api::resource::Key {
        kind: weft_api::resource::Kind::Workload,
        namespace: "shop".into(),
        name: "catalog-v1".into(),
    };
    let status = plane.store.get(&key).await.unwrap().unwrap().status;
    assert!(
        status.is_none_or(|s| s.get("certificate").is_none()),
        "a refused request recorded a certificate"
    );
    // Its own workload, or one not registered yet, is fine.
    plane
        .store
        .put(
            workload("attacker-1", "attacker"),
            store::Precondition::None,
        )
        .await
        .unwrap();
    plane
        .sign_for(Some(&attacker), csr.clone(), None, "attacker-1")
        .await
        .unwrap();
    plane
        .sign_for(Some(&attacker), csr, None, "not-registered-yet")
        .await
        .unwrap();
}

#[tokio::test]
async fn revoking_an_id_never_issued_is_an_error_unless_forced() {
    let plane = Plane::builtin().await;
    let never = "0123456789abcdef0123456789abcdef";
    let err = plane.tokens.revoke(never, None, false).await.unwrap_err();
    assert!(matches!(err, tokens::Error::Unknown(_)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert!(!plane.store.is_revoked(never).await.unwrap());
    // A token issued without a record (before records were kept) is revoked with force.
    let old = plane
        .tokens
        .issue(
            "shop",
            "web",
            &BTreeMap::new(),
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap();
    assert!(plane
        .tokens
        .revoke(&old.claims.id, None, false)
        .await
        .is_err());
    plane
        .tokens
        .revoke(&old.claims.id, None, true)
        .await
        .unwrap();
    assert!(plane.store.is_revoked(&old.claims.id).await.unwrap());
    // One issued now is on record.
    let new = plane
        .tokens
        .issue_recorded(
            "shop",
            "web",
            &BTreeMap::new(),
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .await
        .unwrap();
    plane
        .tokens
        .revoke(&new.claims.id, None, false)
        .await
        .unwrap();
}
