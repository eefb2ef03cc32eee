//! The fuzz corpora of the CSR and token targets, replayed on stable: each file of
//! `fuzz/corpus/<target>/` goes through the same harness as `cargo fuzz run <target>`
//! (`fuzz/harness/<target>.rs`, included here), so every input the fuzzer kept, crash
//! reproducers included, stays a regression test. See fuzz/README.md.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

include!("../../../fuzz/harness/replay.rs");

mod csr {
    include!("../../../fuzz/harness/csr.rs");
}
mod token {
    include!("../../../fuzz/harness/token.rs");
}

#[test]
fn csr_corpus_replays_without_panic() {
    replay("csr", csr::run);
}

#[test]
fn token_corpus_replays_without_panic() {
    replay("token", token::run);
}

/// Writes the starting points of `csr` and `token` into `fuzz/corpus/`: CSRs as the
/// proxy makes them (and for keys the CA refuses), and tokens signed by the harness's
/// key (valid, expired, not yet valid), by another key, and unsigned. Run by hand:
/// `cargo test -p weft-tls --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes seed files into fuzz/corpus; run by hand"]
fn write_seeds() {
    use std::time::{Duration, SystemTime};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use weft_tls::token::{TokenKey, WorkloadClaims};
    use weft_tls::SpiffeId;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let seed = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };

    let id = SpiffeId::new("cluster.local", "default", "web").unwrap();
    let (_, der) = weft_tls::csr::generate(&id).unwrap();
    seed("csr", "p256", &der);
    seed("csr", "p256-trailing-byte", &[&der[..], &[0]].concat());
    let mut altered = der.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    seed("csr", "p256-bad-signature", &altered);
    for (name, alg) in [
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let request = rcgen::CertificateParams::new(vec!["web.default".to_owned()])
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        seed("csr", name, request.der());
    }

    let key = TokenKey::from_pem(token::TOKEN_KEY_PEM).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(token::TOKEN_NOW_UNIX);
    let hour = Duration::from_secs(3600);
    let issue = |key: &TokenKey, at: SystemTime| {
        key.issue(&WorkloadClaims::new(
            "cluster.local",
            "default",
            "web",
            at,
            hour,
        ))
        .unwrap()
    };
    let valid = issue(&key, now);
    seed("token", "valid", valid.as_bytes());
    seed("token", "expired", issue(&key, now - 2 * hour).as_bytes());
    seed(
        "token",
        "not-yet-valid",
        issue(&key, now + 2 * hour).as_bytes(),
    );
    seed(
        "token",
        "other-key",
        issue(&TokenKey::generate().unwrap(), now).as_bytes(),
    );
    let payload = valid.split('.').nth(1).unwrap();
    let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    seed("token", "alg-none", format!("{none}.{payload}.").as_bytes());
    seed("token", "claims", b"cluster.local\ndefault\nweb\n");
}
