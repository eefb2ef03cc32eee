// Target `token`: workload tokens as the control plane checks them
// (weft_tls::token::TokenKey::verify: header, algorithm, key id, signature, claims,
// times), and claims named by the input issued and verified back. Included by
// fuzz_targets/token.rs and crates/weft-tls/tests/fuzz_corpus.rs.

use std::time::{Duration, SystemTime};

use weft_tls::token::{TokenKey, WorkloadClaims};

/// The harness's signing key, a P-256 PKCS#8 key made for these tests and nothing else:
/// the corpus holds tokens it signed, so they reach the claim checks.
pub(crate) const TOKEN_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgg1Qu0PT6JWxfUeWo\n\
LqJyhguTYZzELe4aQEVMUCEWeOehRANCAARS/EX3IR/4mHbuQ1i948BPnmWbYr+n\n\
vWFiV8BEi+3qfip0LX+0ldtatQK4ZkDEE2lZoBbtnyCaVhh3s5UZ9JRj\n\
-----END PRIVATE KEY-----\n\
";

/// The harness's clock (2027-01-15T08:00:00Z), so the corpus's tokens stay valid.
pub(crate) const TOKEN_NOW_UNIX: u64 = 1_800_000_000;

/// Verifies `data` as a token; and when its first three lines name a trust domain, a
/// namespace and a service account, issues a token for them and verifies it back.
pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = token_key();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(TOKEN_NOW_UNIX);
    let _ = key.verify(text, now, Duration::from_secs(60));
    let mut lines = text.lines();
    if let (Some(trust_domain), Some(namespace), Some(account)) =
        (lines.next(), lines.next(), lines.next())
    {
        let claims = WorkloadClaims::new(
            trust_domain,
            namespace,
            account,
            now,
            Duration::from_secs(3600),
        );
        if let Ok(token) = key.issue(&claims) {
            match key.verify(&token, now, Duration::ZERO) {
                Ok(back) => assert_eq!(back, claims, "the token gave other claims back"),
                Err(e) => panic!("a token just issued for {claims:?} is refused: {e}"),
            }
        }
    }
}

fn token_key() -> &'static TokenKey {
    static KEY: std::sync::OnceLock<TokenKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| TokenKey::from_pem(TOKEN_KEY_PEM).expect("the harness key"))
}
