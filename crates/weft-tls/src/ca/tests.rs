use std::fs;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::RootCertStore;
use x509_parser::prelude::GeneralName;

use super::*;
use crate::verify;
use x509_parser::prelude::X509Certificate;

const DAY: Duration = Duration::from_secs(86_400);

fn parse(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn id(td: &str, sa: &str) -> SpiffeId {
    SpiffeId::new(td, "default", sa).unwrap()
}

#[test]
fn generates_root_with_ca_profile() {
    let ca = Authority::generate("cluster.local", 30 * DAY).unwrap();
    assert_eq!(ca.trust_domain(), "cluster.local");
    let der = parse(&ca.cert_pem());
    let (_, x509) = X509Certificate::from_der(&der).unwrap();
    assert!(x509.basic_constraints().unwrap().unwrap().value.ca);
    let ku = x509.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let sans = &x509
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(
        sans.as_slice(),
        [GeneralName::URI("spiffe://cluster.local")]
    );
    assert_eq!(x509.subject(), x509.issuer());
    let subject = x509.subject().to_string();
    assert!(
        subject.contains("O=cluster.local") && subject.contains("CN=Weft CA "),
        "{subject}"
    );
    let other = Authority::generate("cluster.local", DAY).unwrap();
    let other_der = parse(&other.cert_pem());
    let (_, other) = X509Certificate::from_der(&other_der).unwrap();
    assert_ne!(
        other.subject(),
        x509.subject(),
        "CA names must differ between CAs"
    );
    let lifetime = x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp();
    assert_eq!(lifetime, 30 * 86_400 + 60);
    assert!(ca.key_pem().contains("BEGIN PRIVATE KEY"));
    assert!(!ca.key_pem().contains("CERTIFICATE"));
}

#[test]
fn generate_rejects_invalid_trust_domain() {
    let err = Authority::generate("Not Valid", DAY).unwrap_err();
    assert!(matches!(err, Error::TrustDomain { .. }), "{err:?}");
    assert!(err.to_string().contains("\"Not Valid\""), "{err}");
}

#[test]
fn issues_leaf_with_svid_profile() {
    let ca = Authority::generate("cluster.local", 30 * DAY).unwrap();
    let issued = ca.issue(&id("cluster.local", "web"), DAY).unwrap();
    assert!(!issued.cert_pem.contains("PRIVATE KEY"));
    assert_eq!(
        issued.cert_pem.matches("BEGIN CERTIFICATE").count(),
        1,
        "leaf only"
    );
    let der = parse(&issued.cert_pem);
    let (_, x509) = X509Certificate::from_der(&der).unwrap();

    assert!(!x509.basic_constraints().unwrap().unwrap().value.ca);
    let ku = x509.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let san = x509.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names.as_slice(),
        [GeneralName::URI("spiffe://cluster.local/ns/default/sa/web")]
    );
    assert!(san.critical, "empty subject requires a critical SAN");
    assert_eq!(
        x509.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );

    let now = SystemTime::now();
    let not_before = verify::to_system_time(&x509.validity().not_before);
    let not_after = verify::to_system_time(&x509.validity().not_after);
    assert!(
        not_before <= now - Duration::from_secs(59) && not_before >= now - Duration::from_secs(62)
    );
    assert!(not_after >= now + DAY - Duration::from_secs(2) && not_after <= now + DAY);

    let ca_der = parse(&ca.cert_pem());
    let (_, ca_x509) = X509Certificate::from_der(&ca_der).unwrap();
    assert_eq!(x509.issuer(), ca_x509.subject());
}

#[test]
fn issued_serials_differ() {
    let ca = Authority::generate("td", DAY).unwrap();
    let serial = |pem: &str| {
        let der = parse(pem);
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        x509.raw_serial().to_vec()
    };
    let a = serial(&ca.issue(&id("td", "a"), DAY).unwrap().cert_pem);
    let b = serial(&ca.issue(&id("td", "a"), DAY).unwrap().cert_pem);
    assert_ne!(a, b);
    assert_eq!(a.len(), 16);
}

#[test]
fn issue_caps_leaf_at_ca_expiry() {
    let ca = Authority::generate("td", DAY).unwrap();
    let issued = ca.issue(&id("td", "a"), 10 * DAY).unwrap();
    let der = parse(&issued.cert_pem);
    let (_, x509) = X509Certificate::from_der(&der).unwrap();
    let leaf_end = verify::to_system_time(&x509.validity().not_after);
    assert!(
        leaf_end <= ca.not_after(),
        "{leaf_end:?} > {:?}",
        ca.not_after()
    );
}

#[test]
fn issue_rejects_foreign_trust_domain_and_empty_window() {
    let ca = Authority::generate("td", DAY).unwrap();
    let err = ca.issue(&id("other", "a"), DAY).unwrap_err();
    assert!(matches!(err, Error::ForeignTrustDomain { .. }), "{err:?}");
    assert!(
        err.to_string().contains("spiffe://other/ns/default/sa/a"),
        "{err}"
    );

    let err = ca.issue(&id("td", "a"), Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::Validity { .. }), "{err:?}");
    let now = SystemTime::now();
    let err = ca
        .issue_with_validity(&id("td", "a"), now, now - DAY)
        .unwrap_err();
    assert!(matches!(err, Error::Validity { .. }), "{err:?}");
}

#[test]
fn issue_with_validity_sets_the_window() {
    let ca = Authority::generate("td", DAY).unwrap();
    let not_before = SystemTime::now() - 3 * DAY;
    let not_after = SystemTime::now() - 2 * DAY;
    let issued = ca
        .issue_with_validity(&id("td", "a"), not_before, not_after)
        .unwrap();
    let der = parse(&issued.cert_pem);
    let (_, x509) = X509Certificate::from_der(&der).unwrap();
    let secs = |t: SystemTime| {
        i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
    };
    assert_eq!(x509.validity().not_before.timestamp(), secs(not_before));
    assert_eq!(x509.validity().not_after.timestamp(), secs(not_after));
}

#[test]
fn from_pem_round_trips_and_issues_verifiable_certs() {
    let ca = Authority::generate("cluster.local", DAY).unwrap();
    let loaded = Authority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(loaded.trust_domain(), "cluster.local");
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.key_pem(), ca.key_pem());
    // A leaf issued by the loaded CA verifies against the original certificate.
    let issued = loaded.issue(&id("cluster.local", "web"), DAY).unwrap();
    let leaf = parse(&issued.cert_pem);
    let mut roots = RootCertStore::empty();
    roots.add(parse(&ca.cert_pem())).unwrap();
    verify::verify_server_chain(
        &roots,
        &leaf,
        &[],
        UnixTime::now(),
        &crate::crypto_provider().signature_verification_algorithms,
    )
    .unwrap();
}

#[test]
fn from_pem_accepts_sec1_key() {
    let ca = Authority::generate("td", DAY).unwrap();
    let key = KeyPair::from_pem(&ca.key_pem()).unwrap();
    // PKCS#8 wraps the SEC1 ECPrivateKey; re-encode the same key as SEC1 via aws-lc.
    let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let sec1 = aws_lc_sec1(&pkcs8);
    let loaded = Authority::from_pem(&ca.cert_pem(), &sec1).unwrap();
    assert_eq!(loaded.trust_domain(), "td");
}

fn aws_lc_sec1(pkcs8: &rustls::pki_types::PrivatePkcs8KeyDer<'_>) -> String {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.secret_pkcs8_der(),
    )
    .unwrap();
    let der = key.private_key().as_der().unwrap();
    pem::encode(&pem::Pem::new("EC PRIVATE KEY", der.as_ref().to_vec()))
}

#[test]
fn from_pem_rejects_key_of_another_ca() {
    let ca = Authority::generate("td", DAY).unwrap();
    let other = Authority::generate("td", DAY).unwrap();
    let err = Authority::from_pem(&ca.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("Weft CA"), "{err}");
}

#[test]
fn from_pem_rejects_leaf_certificate() {
    let ca = Authority::generate("td", DAY).unwrap();
    let issued = ca.issue(&id("td", "a"), DAY).unwrap();
    let err = Authority::from_pem(&issued.cert_pem, &issued.key_pem).unwrap_err();
    assert!(matches!(err, Error::NotCa { .. }), "{err:?}");
}

#[test]
fn from_pem_rejects_non_p256_key() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.subject_alt_names = vec![uri_san("spiffe://td").unwrap()];
    let cert = params.self_signed(&key).unwrap();
    let err = Authority::from_pem(&cert.pem(), &key.serialize_pem()).unwrap_err();
    assert!(err.to_string().contains("ECDSA P-384"), "{err}");
}

#[test]
fn from_pem_requires_a_trust_domain() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let err = Authority::from_pem(&cert.pem(), &key.serialize_pem()).unwrap_err();
    assert!(matches!(err, Error::TrustDomainSan { .. }), "{err:?}");
    assert!(
        err.to_string().contains("from_pem_with_trust_domain"),
        "{err}"
    );

    let ca =
        Authority::from_pem_with_trust_domain(&cert.pem(), &key.serialize_pem(), "corp.example")
            .unwrap();
    assert_eq!(ca.trust_domain(), "corp.example");
    ca.issue(&id("corp.example", "web"), DAY).unwrap();

    let generated = Authority::generate("td", DAY).unwrap();
    let err =
        Authority::from_pem_with_trust_domain(&generated.cert_pem(), &generated.key_pem(), "other")
            .unwrap_err();
    assert!(matches!(err, Error::TrustDomainMismatch { .. }), "{err:?}");
}

#[test]
fn from_pem_rejects_garbage_and_bundles() {
    let ca = Authority::generate("td", DAY).unwrap();
    let err = Authority::from_pem("not pem", &ca.key_pem()).unwrap_err();
    assert!(matches!(err, Error::CertPem { found: 0, .. }), "{err:?}");
    let two = format!("{}{}", ca.cert_pem(), ca.cert_pem());
    let err = Authority::from_pem(&two, &ca.key_pem()).unwrap_err();
    assert!(matches!(err, Error::CertPem { found: 2, .. }), "{err:?}");
    let err = Authority::from_pem(&ca.cert_pem(), "nope").unwrap_err();
    assert!(matches!(err, Error::KeyPem { .. }), "{err:?}");
}

#[test]
fn write_files_writes_cert_key_and_bundle() {
    let ca = Authority::generate("td", DAY).unwrap();
    let issued = ca.issue(&id("td", "web"), DAY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested");
    let paths = issued.write_files(&out, "web", &ca.cert_pem()).unwrap();
    assert_eq!(paths.cert, out.join("web.crt"));
    assert_eq!(paths.key, out.join("web.key"));
    assert_eq!(paths.trust_bundle, out.join("ca.crt"));
    assert_eq!(fs::read_to_string(&paths.cert).unwrap(), issued.cert_pem);
    assert_eq!(fs::read_to_string(&paths.key).unwrap(), issued.key_pem);
    assert_eq!(
        fs::read_to_string(&paths.trust_bundle).unwrap(),
        ca.cert_pem()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn write_files_tightens_existing_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let ca = Authority::generate("td", DAY).unwrap();
    let issued = ca.issue(&id("td", "web"), DAY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("web.key");
    fs::write(&key, "old").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    issued
        .write_files(dir.path(), "web", &ca.cert_pem())
        .unwrap();
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn generated_root_is_its_own_root_and_sends_no_chain() {
    let ca = Authority::generate("td", DAY).unwrap();
    assert_eq!(ca.root_der(), Some(ca.cert_der().to_vec()));
    assert!(ca.chain_der().is_empty());
    let loaded = Authority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(loaded.root_der(), ca.root_der());
    assert!(loaded.chain_der().is_empty());
}

#[test]
fn sign_csr_backdates_five_minutes_and_reports_the_window() {
    let ca = Authority::generate("td", DAY).unwrap();
    let (_, der) = crate::csr::generate(&id("td", "asks-for-this")).unwrap();
    let csr = Csr::from_der(&der).unwrap();
    // Mid-second, to see the certificate and the reported window agree.
    let now = ca.not_after() - Duration::from_secs(3600) + Duration::from_millis(999);
    let leaf = ca
        .sign_csr(&csr, &id("td", "web"), Duration::from_secs(600), now)
        .unwrap();
    let (_, x509) = X509Certificate::from_der(&leaf.chain[0]).unwrap();
    let secs = |t: SystemTime| {
        i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
    };
    assert_eq!(x509.validity().not_before.timestamp(), secs(now) - 300);
    assert_eq!(x509.validity().not_after.timestamp(), secs(now) + 600);
    assert_eq!(
        leaf.not_after,
        whole_seconds(now + Duration::from_secs(600))
    );
    assert_eq!(leaf.serial, hex::encode(x509.raw_serial()));
    assert_eq!(
        verify::peer_identity(&[CertificateDer::from(leaf.chain[0].clone())]).unwrap(),
        id("td", "web")
    );
}

#[test]
fn whole_seconds_drops_the_fraction() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
    assert_eq!(
        whole_seconds(t),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1)
    );
}

#[test]
fn authority_is_shareable_between_threads() {
    // The control plane signs CSRs from many tasks.
    fn check<T: Send + Sync>() {}
    check::<Authority>();
    check::<Issued>();
    check::<SignedLeaf>();
}

#[test]
fn debug_output_hides_keys() {
    let ca = Authority::generate("td", DAY).unwrap();
    let issued = ca.issue(&id("td", "web"), DAY).unwrap();
    assert!(!format!("{ca:?}").contains("PRIVATE"));
    assert!(!format!("{issued:?}").contains("PRIVATE"));
}

#[test]
fn the_signer_id_is_the_issuer_id_of_what_it_signs_and_differs_between_cas() {
    let ca = Authority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
    let other = Authority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
    let id = SpiffeId::new("cluster.local", "default", "web").unwrap();
    let leaf = ca
        .issue_server(&id, &[], Duration::from_secs(60), SystemTime::now())
        .unwrap();
    assert_eq!(issuer_id(&leaf.chain[0]).unwrap(), ca.signer_id());
    assert_ne!(ca.signer_id(), other.signer_id());
    assert_eq!(ca.signer_id().len(), 16);
    assert!(issuer_id(b"garbage").is_err());
}
