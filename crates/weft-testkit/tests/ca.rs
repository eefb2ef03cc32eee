//! The test PKI writes usable certificate files for valid, expired and foreign-CA cases.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use weft_testkit::ca::TestPki;
use x509_parser::pem::parse_x509_pem;

/// (issuer, subject, not_before, not_after) of a PEM certificate file, times in Unix
/// seconds.
fn describe(path: &Path) -> (String, String, i64, i64) {
    let pem = std::fs::read(path).expect("read cert");
    let (_, pem) = parse_x509_pem(&pem).expect("pem");
    let cert = pem.parse_x509().expect("x509");
    (
        cert.issuer().to_string(),
        cert.subject().to_string(),
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    )
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("time fits")
}

#[test]
fn issues_valid_and_expired_certificates_with_the_trust_bundle() {
    let pki = TestPki::new("weft.test").expect("pki");
    let valid = pki.issue("default", "web").expect("issue");
    assert!(
        valid.cert.ends_with("default.web/workload.crt"),
        "{valid:?}"
    );
    assert!(valid.key.exists());
    assert_eq!(
        std::fs::read_to_string(&valid.trust_bundle).expect("bundle"),
        pki.ca_pem()
    );
    assert_eq!(
        std::fs::read_to_string(pki.ca_path()).expect("ca"),
        pki.ca_pem()
    );

    let (_, ca_subject, _, _) = describe(pki.ca_path());
    let (issuer, _, not_before, not_after) = describe(&valid.cert);
    assert_eq!(issuer, ca_subject);
    assert!(not_before <= now() && now() < not_after);

    let expired = pki.issue_expired("default", "web").expect("expired");
    let (issuer, _, _, not_after) = describe(&expired.cert);
    assert_eq!(issuer, ca_subject);
    assert!(not_after < now(), "expired certificate still valid");

    let early = pki
        .issue_not_yet_valid("default", "web")
        .expect("not yet valid");
    let (_, _, not_before, _) = describe(&early.cert);
    assert!(not_before > now());

    assert_eq!(
        pki.id("default", "web").expect("id").to_string(),
        "spiffe://weft.test/ns/default/sa/web"
    );
}

#[test]
fn unrelated_ca_has_a_different_root() {
    let pki = TestPki::new("weft.test").expect("pki");
    let other = pki.unrelated().expect("other ca");
    assert_eq!(other.trust_domain(), "weft.test");
    assert_ne!(other.ca_pem(), pki.ca_pem());
    assert_ne!(other.dir(), pki.dir());

    let foreign = other.issue("default", "web").expect("issue");
    let (issuer, _, _, _) = describe(&foreign.cert);
    let (ours, _, _, _) = describe(pki.ca_path());
    let (theirs, _, _, _) = describe(other.ca_path());
    assert_eq!(issuer, theirs);
    assert_ne!(issuer, ours);
}

#[test]
fn rejects_invalid_names() {
    let pki = TestPki::new("weft.test").expect("pki");
    assert!(pki.issue("", "web").is_err());
    assert!(TestPki::new("Not A Domain").is_err());
}
