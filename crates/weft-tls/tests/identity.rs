//! Workload identity building blocks working together: a proxy's CSR signed by the CA
//! (generated or operator-provided with an intermediate chain), the resulting chain
//! loaded as `Credentials` against a trust bundle, and workload tokens.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use weft_tls::bundle::{self, TrustBundle};
use weft_tls::ca::{self, Authority, SignedLeaf};
use weft_tls::csr::{self, Csr, CsrError};
use weft_tls::token::{TokenKey, WorkloadClaims};
use weft_tls::{Credentials, SpiffeId};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

const DAY: Duration = Duration::from_secs(86_400);
const MINUTE: Duration = Duration::from_secs(60);

fn id(td: &str, sa: &str) -> SpiffeId {
    SpiffeId::new(td, "default", sa).unwrap()
}

fn cert_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

fn chain_pem(chain: &[Vec<u8>]) -> String {
    chain.iter().map(|der| cert_pem(der)).collect()
}

fn unix(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Signs a CSR for `requested`, returning the key PEM and the parsed request.
fn request(requested: &SpiffeId) -> (String, Csr) {
    let (key_pem, der) = csr::generate(requested).unwrap();
    (key_pem, Csr::from_der(&der).unwrap())
}

/// Loads a signed leaf as a workload would.
fn load(
    leaf: &SignedLeaf,
    key_pem: &str,
    bundle_pem: &str,
) -> Result<Credentials, weft_tls::CredsError> {
    Credentials::from_pem(
        chain_pem(&leaf.chain).as_bytes(),
        key_pem.as_bytes(),
        bundle_pem.as_bytes(),
    )
}

// === an operator's PKI, made with rcgen ===

/// A CA certificate: its PEM, its key, and an issuer to sign with.
struct TestCa {
    pem: String,
    der: Vec<u8>,
    key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str, uri: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if let Some(uri) = uri {
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    }
    params
}

fn root(name: &str) -> TestCa {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let params = ca_params(name, None);
    let cert = params.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        issuer: Issuer::new(params, KeyPair::from_pem(&key.serialize_pem()).unwrap()),
        key,
    }
}

fn intermediate(name: &str, uri: Option<&str>, parent: &TestCa) -> TestCa {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let params = ca_params(name, uri);
    let cert = params.signed_by(&key, &parent.issuer).unwrap();
    TestCa {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        issuer: Issuer::new(params, KeyPair::from_pem(&key.serialize_pem()).unwrap()),
        key,
    }
}

// === CSRs ===

#[test]
fn generated_csr_round_trips_and_verifies() {
    let (key_pem, der) = csr::generate(&id("cluster.local", "web")).unwrap();
    let csr = Csr::from_der(&der).unwrap();
    assert_eq!(
        csr.requested_uris(),
        ["spiffe://cluster.local/ns/default/sa/web"]
    );
    let key = KeyPair::from_pem(&key_pem).unwrap();
    assert_eq!(
        csr.public_key_der(),
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
    assert_eq!(Csr::from_der(csr.der()).unwrap(), csr);
}

#[test]
fn rejects_csr_with_a_tampered_byte() {
    let (_, der) = csr::generate(&id("cluster.local", "web")).unwrap();
    // Any single flipped byte in the signed part must be caught (by parsing or signature).
    let info_end = der.len() - 80;
    for at in (4..info_end).step_by(7) {
        let mut tampered = der.clone();
        tampered[at] ^= 0x01;
        assert!(
            Csr::from_der(&tampered).is_err(),
            "byte {at} flipped, still accepted"
        );
    }
}

#[test]
fn rejects_p384_csr() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let der = CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec();
    let err = Csr::from_der(&der).unwrap_err();
    assert!(matches!(err, CsrError::UnsupportedKey { .. }), "{err:?}");
    assert!(err.to_string().contains("P-384"), "{err}");
}

#[test]
fn rejects_rsa_csr() {
    // rcgen cannot generate RSA keys with aws-lc-rs' default features; openssl can.
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "/dev/null",
        ])
        .args(["-subj", "/CN=rsa-workload", "-outform", "DER"])
        .output();
    let der = match out {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => panic!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            eprintln!("skipping rejects_rsa_csr: openssl is not available ({e})");
            return;
        }
    };
    let err = Csr::from_der(&der).unwrap_err();
    assert!(matches!(err, CsrError::UnsupportedKey { .. }), "{err:?}");
    assert!(err.to_string().contains("RSA key"), "{err}");
}

#[test]
fn rejects_csr_that_is_not_der() {
    let (_, der) = csr::generate(&id("cluster.local", "web")).unwrap();
    let as_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    let err = Csr::from_der(as_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, CsrError::NotDer { .. }), "{err:?}");
}

// === signing ===

#[test]
fn signed_leaf_names_only_the_given_identity() {
    let ca = Authority::generate("cluster.local", 30 * DAY).unwrap();
    // The proxy asks for `admin`; the control plane authenticated it as `web`.
    let (_, csr) = request(&id("cluster.local", "admin"));
    let now = SystemTime::now();
    let leaf = ca
        .sign_csr(&csr, &id("cluster.local", "web"), DAY, now)
        .unwrap();
    assert_eq!(leaf.chain.len(), 1, "a root CA adds nothing to the chain");
    let (_, x509) = X509Certificate::from_der(&leaf.chain[0]).unwrap();

    let san = x509.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names.as_slice(),
        [GeneralName::URI("spiffe://cluster.local/ns/default/sa/web")]
    );
    assert!(x509.subject().iter_common_name().next().is_none());
    assert!(!x509.basic_constraints().unwrap().unwrap().value.ca);
    let ku = x509.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert_eq!(x509.public_key().raw, csr.public_key_der());

    assert_eq!(
        x509.validity().not_before.timestamp(),
        unix(now) - 300,
        "backdated five minutes"
    );
    assert_eq!(x509.validity().not_after.timestamp(), unix(now + DAY));
    assert_eq!(unix(leaf.not_after), unix(now + DAY));
    assert_eq!(leaf.serial, hex(x509.raw_serial()));
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        write!(out, "{b:02x}").unwrap();
        out
    })
}

#[test]
fn signed_leaf_serials_are_random() {
    let ca = Authority::generate("td", DAY).unwrap();
    let (_, csr) = request(&id("td", "a"));
    let now = SystemTime::now();
    let a = ca.sign_csr(&csr, &id("td", "a"), DAY, now).unwrap();
    let b = ca.sign_csr(&csr, &id("td", "a"), DAY, now).unwrap();
    assert_ne!(a.serial, b.serial);
    assert_eq!(a.serial.len(), 32);
}

#[test]
fn signed_leaf_is_capped_at_ca_expiry() {
    let ca = Authority::generate("td", DAY).unwrap();
    let (_, csr) = request(&id("td", "a"));
    let leaf = ca
        .sign_csr(&csr, &id("td", "a"), 10 * DAY, SystemTime::now())
        .unwrap();
    assert_eq!(leaf.not_after, ca.not_after());
    let (_, x509) = X509Certificate::from_der(&leaf.chain[0]).unwrap();
    assert_eq!(x509.validity().not_after.timestamp(), unix(ca.not_after()));
}

#[test]
fn sign_csr_refuses_identity_of_another_trust_domain() {
    let ca = Authority::generate("td", DAY).unwrap();
    let (_, csr) = request(&id("td", "a"));
    let err = ca
        .sign_csr(&csr, &id("other", "a"), DAY, SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, ca::Error::ForeignTrustDomain { .. }),
        "{err:?}"
    );
}

#[test]
fn sign_csr_refuses_zero_ttl_and_expired_ca() {
    let ca = Authority::generate("td", DAY).unwrap();
    let (_, csr) = request(&id("td", "a"));
    let err = ca
        .sign_csr(&csr, &id("td", "a"), Duration::ZERO, SystemTime::now())
        .unwrap_err();
    assert!(matches!(err, ca::Error::Validity { .. }), "{err:?}");
    let later = ca.not_after() + MINUTE;
    let err = ca.sign_csr(&csr, &id("td", "a"), DAY, later).unwrap_err();
    assert!(matches!(err, ca::Error::CaExpired { .. }), "{err:?}");
    assert!(err.to_string().contains("renew"), "{err}");
}

#[test]
fn signed_chain_loads_as_credentials_and_serves_tls() {
    let ca = Authority::generate("cluster.local", DAY).unwrap();
    let me = id("cluster.local", "web");
    let (key_pem, csr) = request(&me);
    let leaf = ca.sign_csr(&csr, &me, DAY, SystemTime::now()).unwrap();
    let bundle = TrustBundle::from_der([ca.root_der().unwrap()]).unwrap();
    let creds = load(&leaf, &key_pem, &bundle.to_pem()).unwrap();
    assert_eq!(creds.identity(), &me);
    creds.server_config().unwrap();
    creds.client_config(&id("cluster.local", "db")).unwrap();
}

#[test]
fn signed_chain_does_not_load_with_a_key_other_than_the_csrs() {
    let ca = Authority::generate("td", DAY).unwrap();
    let (_, csr) = request(&id("td", "a"));
    let (other_key, _) = request(&id("td", "a"));
    let leaf = ca
        .sign_csr(&csr, &id("td", "a"), DAY, SystemTime::now())
        .unwrap();
    let err = load(&leaf, &other_key, &ca.cert_pem()).unwrap_err();
    assert!(
        matches!(err, weft_tls::CredsError::KeyMismatch { .. }),
        "{err:?}"
    );
}

// === an operator-provided intermediate CA ===

#[test]
fn provided_intermediate_issues_leaves_that_verify_against_the_root_only() {
    let root = root("Corp Root");
    let int = intermediate("Weft Intermediate", Some("spiffe://corp.example"), &root);
    let ca =
        Authority::from_pem_chain(&int.pem, &int.key.serialize_pem(), &root.pem, None).unwrap();
    assert_eq!(ca.trust_domain(), "corp.example");
    assert_eq!(ca.root_der(), Some(root.der.clone()));
    assert_eq!(ca.chain_der(), std::slice::from_ref(&int.der));

    let me = id("corp.example", "web");
    let (key_pem, csr) = request(&me);
    let leaf = ca.sign_csr(&csr, &me, DAY, SystemTime::now()).unwrap();
    assert_eq!(leaf.chain.len(), 2);
    assert_eq!(leaf.chain[1], int.der);

    // The bundle holds the root alone; the intermediate travels in the chain.
    let creds = load(&leaf, &key_pem, &root.pem).unwrap();
    assert_eq!(creds.identity(), &me);
    creds.server_config().unwrap();

    // Without the intermediate the leaf does not verify against the root.
    let bare = SignedLeaf {
        chain: vec![leaf.chain[0].clone()],
        ..leaf.clone()
    };
    assert!(load(&bare, &key_pem, &root.pem).is_err());
}

#[test]
fn provided_chain_of_two_intermediates_is_ordered_nearest_first() {
    let root = root("Corp Root");
    let upper = intermediate("Corp Issuing", None, &root);
    let lower = intermediate("Weft Intermediate", None, &upper);
    let chain = format!("{}{}", upper.pem, root.pem);
    let ca = Authority::from_pem_chain(
        &lower.pem,
        &lower.key.serialize_pem(),
        &chain,
        Some("corp.example"),
    )
    .unwrap();
    assert_eq!(ca.trust_domain(), "corp.example");
    assert_eq!(ca.chain_der(), [lower.der.clone(), upper.der.clone()]);
    assert_eq!(ca.root_der(), Some(root.der.clone()));

    let me = id("corp.example", "web");
    let (key_pem, csr) = request(&me);
    let leaf = ca.sign_csr(&csr, &me, DAY, SystemTime::now()).unwrap();
    load(&leaf, &key_pem, &root.pem).unwrap();
}

#[test]
fn provided_chain_without_root_has_no_root() {
    let root = root("Corp Root");
    let upper = intermediate("Corp Issuing", None, &root);
    let lower = intermediate("Weft Intermediate", None, &upper);
    let ca = Authority::from_pem_chain(
        &lower.pem,
        &lower.key.serialize_pem(),
        &upper.pem,
        Some("corp.example"),
    )
    .unwrap();
    assert_eq!(ca.root_der(), None);
    assert_eq!(ca.chain_der(), [lower.der.clone(), upper.der.clone()]);
}

#[test]
fn provided_root_with_empty_chain_is_its_own_root() {
    let root = root("Corp Root");
    let ca = Authority::from_pem_chain(
        &root.pem,
        &root.key.serialize_pem(),
        "",
        Some("corp.example"),
    )
    .unwrap();
    assert_eq!(ca.root_der(), Some(root.der.clone()));
    assert!(ca.chain_der().is_empty());
}

#[test]
fn refuses_chain_that_does_not_link() {
    let root_a = root("Corp Root A");
    let root_b = root("Corp Root B");
    let int = intermediate("Weft Intermediate", None, &root_a);
    let err = Authority::from_pem_chain(
        &int.pem,
        &int.key.serialize_pem(),
        &root_b.pem,
        Some("corp.example"),
    )
    .unwrap_err();
    assert!(
        matches!(err, ca::Error::ChainLink { index: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("Weft Intermediate") && msg.contains("Corp Root B"),
        "{msg}"
    );
    assert!(msg.contains("issuer name"), "{msg}");
}

#[test]
fn refuses_chain_whose_names_match_but_signature_does_not() {
    let root_a = root("Corp Root");
    let impostor = root("Corp Root"); // same name, another key
    let int = intermediate("Weft Intermediate", None, &root_a);
    let err = Authority::from_pem_chain(
        &int.pem,
        &int.key.serialize_pem(),
        &impostor.pem,
        Some("corp.example"),
    )
    .unwrap_err();
    assert!(matches!(err, ca::Error::ChainLink { .. }), "{err:?}");
    assert!(err.to_string().contains("signature"), "{err}");
}

#[test]
fn refuses_non_ca_certificate_as_the_ca() {
    let root = root("Corp Root");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.subject_alt_names = vec![SanType::URI("spiffe://corp.example".try_into().unwrap())];
    let cert = params.signed_by(&key, &root.issuer).unwrap();
    let err =
        Authority::from_pem_chain(&cert.pem(), &key.serialize_pem(), &root.pem, None).unwrap_err();
    assert!(matches!(err, ca::Error::NotCa { .. }), "{err:?}");
}

#[test]
fn refuses_non_ca_certificate_in_the_chain() {
    let root = root("Corp Root");
    let int = intermediate("Weft Intermediate", None, &root);
    let leaf_ca = Authority::generate("corp.example", DAY).unwrap();
    let workload = leaf_ca.issue(&id("corp.example", "x"), DAY).unwrap();
    let chain = format!("{}{}", workload.cert_pem, root.pem);
    let err = Authority::from_pem_chain(
        &int.pem,
        &int.key.serialize_pem(),
        &chain,
        Some("corp.example"),
    )
    .unwrap_err();
    assert!(
        matches!(err, ca::Error::ChainNotCa { index: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn refuses_key_of_another_ca_with_a_chain() {
    let root = root("Corp Root");
    let int = intermediate("Weft Intermediate", None, &root);
    let err = Authority::from_pem_chain(
        &int.pem,
        &root.key.serialize_pem(),
        &root.pem,
        Some("corp.example"),
    )
    .unwrap_err();
    assert!(matches!(err, ca::Error::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn refuses_unreadable_chain() {
    let root = root("Corp Root");
    let int = intermediate("Weft Intermediate", None, &root);
    let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
    let err = Authority::from_pem_chain(
        &int.pem,
        &int.key.serialize_pem(),
        broken,
        Some("corp.example"),
    )
    .unwrap_err();
    assert!(matches!(err, ca::Error::ChainPem { .. }), "{err:?}");
}

#[test]
fn provided_ca_without_spiffe_san_needs_a_trust_domain() {
    let root = root("Corp Root");
    let int = intermediate("Weft Intermediate", None, &root);
    let err =
        Authority::from_pem_chain(&int.pem, &int.key.serialize_pem(), &root.pem, None).unwrap_err();
    assert!(matches!(err, ca::Error::TrustDomainSan { .. }), "{err:?}");
    let err = Authority::from_pem_chain(
        &int.pem,
        &int.key.serialize_pem(),
        &root.pem,
        Some("Not Valid"),
    )
    .unwrap_err();
    assert!(matches!(err, ca::Error::TrustDomain { .. }), "{err:?}");
}

// === trust bundles during a CA rotation ===

#[test]
fn rotation_bundle_trusts_both_cas_then_only_the_new_one() {
    let old = Authority::generate("td", DAY).unwrap();
    let new = Authority::generate("td", DAY).unwrap();
    let me = id("td", "web");
    let (key_pem, csr) = request(&me);
    let from_old = old.sign_csr(&csr, &me, DAY, SystemTime::now()).unwrap();
    let from_new = new.sign_csr(&csr, &me, DAY, SystemTime::now()).unwrap();

    let before = TrustBundle::from_der([old.root_der().unwrap()]).unwrap();
    let during = before.with(new.root_der().unwrap()).unwrap();
    let after = during.without(&old.root_der().unwrap());
    assert_eq!(during.len(), 2);
    assert_eq!(after.roots_der(), [new.root_der().unwrap()]);

    load(&from_old, &key_pem, &during.to_pem()).unwrap();
    load(&from_new, &key_pem, &during.to_pem()).unwrap();
    assert!(load(&from_old, &key_pem, &after.to_pem()).is_err());
    load(&from_new, &key_pem, &after.to_pem()).unwrap();
}

#[test]
fn bundle_refuses_non_ca_roots() {
    let ca = Authority::generate("td", DAY).unwrap();
    let issued = ca.issue(&id("td", "web"), DAY).unwrap();
    let err = TrustBundle::from_pem(&issued.cert_pem).unwrap_err();
    assert!(matches!(err, bundle::BundleError::NotCa { .. }), "{err:?}");
}

// === tokens ===

#[test]
fn token_identity_drives_csr_signing() {
    // The control-plane flow: verify the proxy's token, sign its CSR for the token's
    // identity whatever the CSR asks for.
    let ca = Authority::generate("cluster.local", DAY).unwrap();
    let tokens = TokenKey::generate().unwrap();
    let now = SystemTime::now();
    let token = tokens
        .issue(&WorkloadClaims::new(
            "cluster.local",
            "shop",
            "web",
            now,
            DAY,
        ))
        .unwrap();

    let claims = tokens.verify(&token, now, MINUTE).unwrap();
    let who = claims.spiffe_id().unwrap();
    let (key_pem, csr) = request(&id("cluster.local", "admin"));
    let leaf = ca.sign_csr(&csr, &who, DAY, now).unwrap();
    let creds = load(&leaf, &key_pem, &ca.cert_pem()).unwrap();
    assert_eq!(
        creds.identity().to_string(),
        "spiffe://cluster.local/ns/shop/sa/web"
    );
}

#[test]
fn token_key_survives_storage_and_restart() {
    let key = TokenKey::generate().unwrap();
    let now = SystemTime::now();
    let token = key
        .issue(&WorkloadClaims::new("td", "ns", "sa", now, DAY))
        .unwrap();
    let restarted = TokenKey::from_pem(&key.to_pem()).unwrap();
    assert_eq!(restarted.key_id(), key.key_id());
    restarted.verify(&token, now, Duration::ZERO).unwrap();
}
