//! The verification table: tokens signed here with keys generated here, verified
//! against a key set read from a file or served over HTTPS on 127.0.0.1 by a test
//! server with its own CA.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::cache::{self, Refreshed};
use super::*;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "orders";
const NOW: i64 = 1_700_000_000;
const HMAC_SECRET: &[u8] = b"a shared secret the issuer should never have published";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW as u64)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key of the test issuer, and its public JWK.
#[derive(Clone)]
struct Signer {
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
    jwk: Value,
}

// === impl Signer ===

impl Signer {
    fn ec(kid: &str, alg: Algorithm) -> Self {
        let (rcgen_alg, crv, size) = match alg {
            Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, "P-256", 32),
            _ => (&rcgen::PKCS_ECDSA_P384_SHA384, "P-384", 48),
        };
        let pair = KeyPair::generate_for(rcgen_alg).expect("generates an EC key");
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 1 + 2 * size, "an uncompressed point");
        Signer {
            alg,
            kid: Some(kid.to_owned()),
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "EC", "crv": crv, "kid": kid, "use": "sig",
                "x": b64(&point[1..=size]), "y": b64(&point[1 + size..]),
            }),
        }
    }

    fn ed25519(kid: &str) -> Self {
        let pair = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("generates an Ed25519 key");
        Signer {
            alg: Algorithm::EdDSA,
            kid: Some(kid.to_owned()),
            key: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key_raw())}),
        }
    }

    /// A 2048-bit RSA key whose JWK names no `alg`, so it verifies every RSA algorithm.
    fn rsa(kid: &str) -> Self {
        let pair = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("generates an RSA key");
        let key = EncodingKey::from_rsa_der(pkcs1_of_pkcs8(&pair.serialize_der()));
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).expect("an RSA JWK"),
        )
        .expect("serializes");
        let members = jwk.as_object_mut().expect("a JWK is an object");
        members.remove("alg");
        members.insert("kid".into(), json!(kid));
        Signer {
            alg: Algorithm::RS256,
            kid: Some(kid.to_owned()),
            key,
            jwk,
        }
    }

    fn with_alg(&self, alg: Algorithm) -> Self {
        Signer {
            alg,
            ..self.clone()
        }
    }

    fn with_kid(&self, kid: Option<&str>) -> Self {
        Signer {
            kid: kid.map(str::to_owned),
            ..self.clone()
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, claims, &self.key).expect("signs")
    }
}

/// The `RSAPrivateKey` (PKCS#1) inside a PKCS#8 `PrivateKeyInfo`: jsonwebtoken's
/// aws-lc backend signs with PKCS#1, rcgen hands out PKCS#8.
fn pkcs1_of_pkcs8(pkcs8: &[u8]) -> &[u8] {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] < 0x80 {
            (usize::from(input[1]), 2)
        } else {
            let n = usize::from(input[1] & 0x7f);
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, private_key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "the private key is an OCTET STRING");
    private_key
}

fn claims() -> Value {
    json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": NOW + 600, "iat": NOW - 10})
}

fn claims_with(key: &str, value: Value) -> Value {
    let mut claims = claims();
    claims[key] = value;
    claims
}

fn claims_without(key: &str) -> Value {
    let mut claims = claims();
    claims.as_object_mut().expect("object").remove(key);
    claims
}

/// A token with `header` and `claims` as given and `signature` as is, no signing.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn provider(jwks: Jwks) -> Provider {
    Provider {
        issuer: ISSUER.into(),
        audiences: vec!["billing".into(), AUDIENCE.into()],
        jwks,
        from_headers: vec![FromHeader {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }],
        from_cookies: Vec::new(),
        claims_to_headers: Vec::new(),
        forward_original_token: false,
        required: true,
        clock_skew: provider::DEFAULT_CLOCK_SKEW,
    }
}

fn file_jwks(path: &std::path::Path) -> Jwks {
    Jwks {
        file: Some(path.to_owned()),
        uri: None,
        ca_bundle: None,
        refresh_interval: provider::DEFAULT_REFRESH_INTERVAL,
        timeout: provider::DEFAULT_FETCH_TIMEOUT,
    }
}

fn key_set(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// The issuer's keys, published in a JWKS file with an `oct` key and a broken key
/// beside them, and a verifier reading that file.
struct Fixture {
    _dir: TempDir,
    verifier: Verifier,
    ec: Signer,
    ec384: Signer,
    rsa: Signer,
    ed: Signer,
}

async fn fixture(edit: impl FnOnce(&mut Provider)) -> Fixture {
    let ec = Signer::ec("ec-1", Algorithm::ES256);
    let ec384 = Signer::ec("ec-384", Algorithm::ES384);
    let rsa = Signer::rsa("rsa-1");
    let ed = Signer::ed25519("ed-1");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    let document = key_set(&[
        json!({"kty": "oct", "kid": "hmac", "k": b64(HMAC_SECRET)}),
        json!({"kty": "EC", "kid": "broken", "crv": "P-256", "x": "not base64!", "y": "AA"}),
        ec.jwk.clone(),
        ec384.jwk.clone(),
        rsa.jwk.clone(),
        ed.jwk.clone(),
    ]);
    std::fs::write(&path, document).expect("writes the JWKS");
    let mut config = provider(file_jwks(&path));
    edit(&mut config);
    let cache = Arc::new(JwksCache::build(&config.jwks).expect("builds the cache"));
    assert_eq!(
        cache.refresh().await.expect("reads the JWKS"),
        Refreshed::Updated {
            keys: 4,
            skipped: 2
        }
    );
    let verifier = Verifier::build(&config, cache).expect("builds the verifier");
    Fixture {
        _dir: dir,
        verifier,
        ec,
        ec384,
        rsa,
        ed,
    }
}

/// What verifying a token must give: the principal, or the error.
type Expected = Result<&'static str, Error>;

#[tokio::test]
async fn verification_table() {
    let f = fixture(|_| {}).await;
    let ok: Expected = Ok("https://issuer.test/alice");
    let stranger = Signer::ec("ec-1", Algorithm::ES256);
    let valid = f.ec.sign(&claims());
    let (header, _, signature) = {
        let mut parts = valid.split('.');
        (
            parts.next().expect("header"),
            parts.next().expect("payload"),
            parts.next().expect("signature"),
        )
    };
    let forged_payload = format!(
        "{header}.{}.{signature}",
        b64(claims_with("sub", json!("admin")).to_string().as_bytes())
    );
    let hs256 = jsonwebtoken::encode(
        &Header {
            kid: Some("hmac".into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims(),
        &EncodingKey::from_secret(HMAC_SECRET),
    )
    .expect("signs with HMAC");
    let big = |pad: usize| f.ec.sign(&claims_with("pad", json!("x".repeat(pad))));

    let table: Vec<(&str, String, Expected)> = vec![
        ("valid ES256 with kid", valid.clone(), ok),
        ("valid ES384", f.ec384.sign(&claims()), ok),
        ("valid RS256", f.rsa.sign(&claims()), ok),
        (
            "valid PS256 with the same RSA key",
            f.rsa.with_alg(Algorithm::PS256).sign(&claims()),
            ok,
        ),
        (
            "valid RS512",
            f.rsa.with_alg(Algorithm::RS512).sign(&claims()),
            ok,
        ),
        ("valid EdDSA", f.ed.sign(&claims()), ok),
        (
            "no kid: the keys of the token's type are tried",
            f.ec.with_kid(None).sign(&claims()),
            ok,
        ),
        ("no kid, RSA", f.rsa.with_kid(None).sign(&claims()), ok),
        (
            "audience in an array",
            f.ec.sign(&claims_with("aud", json!(["other", AUDIENCE]))),
            ok,
        ),
        (
            "second configured audience",
            f.ec.sign(&claims_with("aud", json!("billing"))),
            ok,
        ),
        (
            "expired within the skew",
            f.ec.sign(&claims_with("exp", json!(NOW - 59))),
            ok,
        ),
        (
            "not yet valid within the skew",
            f.ec.sign(&claims_with("nbf", json!(NOW + 59))),
            ok,
        ),
        (
            "fractional NumericDate",
            f.ec.sign(&claims_with("exp", json!(NOW as f64 + 0.5))),
            ok,
        ),
        (
            "expired",
            f.ec.sign(&claims_with("exp", json!(NOW - 60))),
            Err(Error::Expired),
        ),
        (
            "expired long ago",
            f.ec.sign(&claims_with("exp", json!(0))),
            Err(Error::Expired),
        ),
        (
            "not yet valid",
            f.ec.sign(&claims_with("nbf", json!(NOW + 61))),
            Err(Error::NotYetValid),
        ),
        (
            "issued in the future",
            f.ec.sign(&claims_with("iat", json!(NOW + 61))),
            Err(Error::IssuedInFuture),
        ),
        (
            "wrong audience",
            f.ec.sign(&claims_with("aud", json!("payments"))),
            Err(Error::WrongAudience),
        ),
        (
            "audience array without ours",
            f.ec.sign(&claims_with("aud", json!(["a", "b"]))),
            Err(Error::WrongAudience),
        ),
        (
            "audience array with a number",
            f.ec.sign(&claims_with("aud", json!([AUDIENCE, 1]))),
            Err(Error::InvalidClaim(Claim::Aud)),
        ),
        (
            "no audience",
            f.ec.sign(&claims_without("aud")),
            Err(Error::MissingClaim(Claim::Aud)),
        ),
        (
            "wrong issuer",
            f.ec.sign(&claims_with("iss", json!("https://evil.test"))),
            Err(Error::WrongIssuer),
        ),
        (
            "issuer differing by a trailing slash",
            f.ec.sign(&claims_with("iss", json!("https://issuer.test/"))),
            Err(Error::WrongIssuer),
        ),
        (
            "issuer as an array",
            f.ec.sign(&claims_with("iss", json!([ISSUER]))),
            Err(Error::InvalidClaim(Claim::Iss)),
        ),
        (
            "no issuer",
            f.ec.sign(&claims_without("iss")),
            Err(Error::MissingClaim(Claim::Iss)),
        ),
        (
            "no exp",
            f.ec.sign(&claims_without("exp")),
            Err(Error::MissingClaim(Claim::Exp)),
        ),
        (
            "exp as a string",
            f.ec.sign(&claims_with("exp", json!("tomorrow"))),
            Err(Error::InvalidClaim(Claim::Exp)),
        ),
        (
            "no sub",
            f.ec.sign(&claims_without("sub")),
            Err(Error::MissingClaim(Claim::Sub)),
        ),
        (
            "empty sub",
            f.ec.sign(&claims_with("sub", json!(""))),
            Err(Error::InvalidClaim(Claim::Sub)),
        ),
        (
            "alg none",
            raw_token(&json!({"alg": "none", "typ": "JWT"}), &claims(), ""),
            Err(Error::Unsigned),
        ),
        (
            "alg None with a signature",
            raw_token(&json!({"alg": "None", "kid": "ec-1"}), &claims(), signature),
            Err(Error::Unsigned),
        ),
        (
            "HS256 with the oct key of the JWKS",
            hs256,
            Err(Error::Symmetric),
        ),
        (
            "HS512 without kid",
            raw_token(&json!({"alg": "HS512"}), &claims(), "c2ln"),
            Err(Error::Symmetric),
        ),
        (
            "ES512 is not accepted",
            raw_token(&json!({"alg": "ES512", "kid": "ec-1"}), &claims(), "c2ln"),
            Err(Error::UnsupportedAlgorithm),
        ),
        (
            "critical header extension",
            raw_token(
                &json!({"alg": "ES256", "kid": "ec-1", "crit": ["b64"], "b64": false}),
                &claims(),
                signature,
            ),
            Err(Error::CriticalHeader),
        ),
        (
            "unknown kid",
            f.ec.with_kid(Some("ec-2")).sign(&claims()),
            Err(Error::UnknownKey),
        ),
        (
            "kid of a key of another type",
            f.rsa.with_kid(Some("ec-1")).sign(&claims()),
            Err(Error::UnknownKey),
        ),
        (
            "kid of the skipped broken key",
            f.ec.with_kid(Some("broken")).sign(&claims()),
            Err(Error::UnknownKey),
        ),
        (
            "a stranger's key under a known kid",
            stranger.sign(&claims()),
            Err(Error::BadSignature),
        ),
        (
            "a stranger's key without kid",
            stranger.with_kid(None).sign(&claims()),
            Err(Error::BadSignature),
        ),
        (
            "payload changed after signing",
            forged_payload,
            Err(Error::BadSignature),
        ),
        (
            "ES256 token naming a P-384 key",
            f.ec.with_kid(Some("ec-384")).sign(&claims()),
            Err(Error::UnknownKey),
        ),
        ("not a JWT", "not-a-jwt".into(), Err(Error::Malformed)),
        ("two parts", "e30.e30".into(), Err(Error::Malformed)),
        ("four parts", format!("{valid}.e30"), Err(Error::Malformed)),
        (
            "header not base64url",
            format!("!!.{}", &valid[header.len() + 1..]),
            Err(Error::Malformed),
        ),
        (
            "header not JSON",
            format!("{}.e30.c2ln", b64(b"alg")),
            Err(Error::Malformed),
        ),
        (
            "payload not an object",
            raw_token(&json!({"alg": "ES256"}), &json!([1]), "c2ln"),
            Err(Error::BadSignature),
        ),
        ("empty", String::new(), Err(Error::Malformed)),
        ("just under the size limit", big(5_900), ok),
        ("oversized", big(6_200), Err(Error::TooLarge)),
    ];

    let mut failures = Vec::new();
    for (name, token, expected) in &table {
        let got = f.verifier.verify_at(token, now()).await;
        let got = got.as_ref().map(Verified::principal).map_err(|e| *e);
        let want = (*expected).map(str::to_owned);
        if got != want {
            failures.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The limits the last two rows straddle.
    assert!(big(5_900).len() <= MAX_TOKEN_BYTES, "{}", big(5_900).len());
    assert!(big(6_200).len() > MAX_TOKEN_BYTES, "{}", big(6_200).len());
}

#[tokio::test]
async fn a_verified_token_carries_its_issuer_subject_and_claims() {
    let f = fixture(|_| {}).await;
    let verified = f
        .verifier
        .verify_at(
            &f.ec.sign(&claims_with("email", json!("alice@example.com"))),
            now(),
        )
        .await
        .expect("valid");
    assert_eq!(verified.issuer, ISSUER);
    assert_eq!(verified.subject, "alice");
    assert_eq!(verified.principal(), "https://issuer.test/alice");
    assert_eq!(verified.claims["email"], "alice@example.com");
}

#[tokio::test]
async fn a_malformed_jwks_key_is_skipped_while_the_others_verify() {
    let f = fixture(|_| {}).await;
    let keys = f.verifier.keys().keys();
    let skipped: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| (s.index, s.kid.clone(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (0, Some("hmac".to_owned()), jwks::SkipReason::Symmetric),
            (
                1,
                Some("broken".to_owned()),
                jwks::SkipReason::BadBase64("x")
            ),
        ]
    );
    assert_eq!(keys.len(), 4);
    drop(keys);
    for signer in [&f.ec, &f.ec384, &f.rsa, &f.ed] {
        assert!(
            f.verifier
                .verify_at(&signer.sign(&claims()), now())
                .await
                .is_ok(),
            "{:?}",
            signer.alg
        );
    }
}

#[tokio::test]
async fn the_clock_skew_is_configurable() {
    let f = fixture(|p| p.clock_skew = Duration::ZERO).await;
    let token = f.ec.sign(&claims_with("exp", json!(NOW)));
    assert_eq!(
        f.verifier.verify_at(&token, now()).await,
        Err(Error::Expired)
    );
    let token = f.ec.sign(&claims_with("exp", json!(NOW + 1)));
    assert!(f.verifier.verify_at(&token, now()).await.is_ok());
    let token = f.ec.sign(&claims_with("nbf", json!(NOW + 1)));
    assert_eq!(
        f.verifier.verify_at(&token, now()).await,
        Err(Error::NotYetValid)
    );
}

#[tokio::test]
async fn a_required_token_is_demanded_and_an_optional_one_still_verified() {
    let required = fixture(|_| {}).await;
    let no_token = HeaderMap::new();
    assert_eq!(
        required.verifier.authenticate(&no_token).await,
        Err(Error::Missing)
    );

    let optional = fixture(|p| p.required = false).await;
    assert_eq!(optional.verifier.authenticate(&no_token).await, Ok(None));
    let mut bad = HeaderMap::new();
    bad.insert(
        "authorization",
        HeaderValue::from_static("Bearer not.a.token"),
    );
    assert_eq!(
        optional.verifier.authenticate(&bad).await,
        Err(Error::Malformed),
        "a token that is present is verified even when none is required"
    );
    let mut good = HeaderMap::new();
    let token = optional
        .ec
        .sign(&claims_with("exp", json!(4_000_000_000u64)));
    good.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let verified = optional
        .verifier
        .authenticate(&good)
        .await
        .expect("valid")
        .expect("a token was found");
    assert_eq!(verified.subject, "alice");
}

#[tokio::test]
async fn claims_are_copied_to_headers_spoofed_ones_removed_and_the_token_stripped() {
    let f = fixture(|p| {
        p.claims_to_headers = [
            ("email", "x-user-email"),
            ("groups", "x-user-groups"),
            ("level", "x-user-level"),
            ("admin", "x-user-admin"),
            ("address", "x-user-address"),
            ("note", "x-user-note"),
            ("absent", "x-user-absent"),
        ]
        .into_iter()
        .map(|(claim, header)| ClaimToHeader {
            claim: claim.into(),
            header: header.into(),
        })
        .collect();
    })
    .await;
    let mut claims = claims();
    claims["email"] = json!("alice@example.com");
    claims["groups"] = json!(["admins", "ops"]);
    claims["level"] = json!(3);
    claims["admin"] = json!(false);
    claims["address"] = json!({"city": "Lyon"});
    claims["note"] = json!("line\r\nx-weft-principal: spiffe://evil");
    let token = f.ec.sign(&claims);

    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    headers.insert(
        "x-user-email",
        HeaderValue::from_static("mallory@example.com"),
    );
    headers.insert("x-user-absent", HeaderValue::from_static("forged"));
    headers.insert("x-user-note", HeaderValue::from_static("forged"));
    headers.insert("x-other", HeaderValue::from_static("kept"));

    let found = f.verifier.token(&headers).expect("one token");
    assert_eq!(found, Some(token.as_str()));
    let verified = f.verifier.verify_at(&token, now()).await.expect("valid");
    let skipped = f.verifier.forward(Some(&verified), &mut headers);

    let get = |name: &str| headers.get(name).map(|v| v.as_bytes().to_vec());
    assert_eq!(get("x-user-email"), Some(b"alice@example.com".to_vec()));
    assert_eq!(get("x-user-groups"), Some(b"admins,ops".to_vec()));
    assert_eq!(get("x-user-level"), Some(b"3".to_vec()));
    assert_eq!(get("x-user-admin"), Some(b"false".to_vec()));
    assert_eq!(get("x-user-address"), None, "objects are not copied");
    assert_eq!(
        get("x-user-note"),
        None,
        "the forged value is removed, the bad claim not copied"
    );
    assert_eq!(
        get("x-user-absent"),
        None,
        "a forged header for an absent claim is removed"
    );
    assert_eq!(get("x-other"), Some(b"kept".to_vec()));
    assert_eq!(
        get("authorization"),
        None,
        "the token is stripped by default"
    );
    let reasons: Vec<_> = skipped
        .iter()
        .map(|s| (s.claim.as_str(), s.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("address", claims::Refusal::Object),
            ("note", claims::Refusal::ControlCharacter)
        ]
    );

    // Unauthenticated requests (optional providers) lose forged claim headers too.
    let mut anonymous = HeaderMap::new();
    anonymous.insert(
        "x-user-email",
        HeaderValue::from_static("mallory@example.com"),
    );
    assert!(f.verifier.forward(None, &mut anonymous).is_empty());
    assert!(anonymous.get("x-user-email").is_none());
}

#[tokio::test]
async fn forward_original_token_keeps_the_token() {
    let f = fixture(|p| p.forward_original_token = true).await;
    let token = f.ec.sign(&claims());
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let verified = f.verifier.verify_at(&token, now()).await.expect("valid");
    f.verifier.forward(Some(&verified), &mut headers);
    assert_eq!(
        headers.get("authorization").map(HeaderValue::as_bytes),
        Some(format!("Bearer {token}").as_bytes())
    );
}

#[tokio::test]
async fn www_authenticate_follows_rfc_6750_and_never_echoes_the_token() {
    assert_eq!(www_authenticate(&Error::Missing), "Bearer");
    assert_eq!(
        www_authenticate(&Error::Expired),
        "Bearer error=\"invalid_token\", error_description=\"the token has expired\""
    );
    assert_eq!(Error::Expired.status(), StatusCode::UNAUTHORIZED);

    let every = [
        Error::Missing,
        Error::Ambiguous,
        Error::TooLarge,
        Error::Malformed,
        Error::Unsigned,
        Error::Symmetric,
        Error::UnsupportedAlgorithm,
        Error::CriticalHeader,
        Error::UnknownKey,
        Error::KeysUnavailable,
        Error::BadSignature,
        Error::Expired,
        Error::NotYetValid,
        Error::IssuedInFuture,
        Error::WrongIssuer,
        Error::WrongAudience,
    ]
    .into_iter()
    .chain(
        [
            Claim::Iss,
            Claim::Sub,
            Claim::Aud,
            Claim::Exp,
            Claim::Nbf,
            Claim::Iat,
        ]
        .into_iter()
        .flat_map(|c| [Error::MissingClaim(c), Error::InvalidClaim(c)]),
    );
    for error in every {
        let description = error.description();
        // RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
        assert!(
            description
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
            "{error:?}: {description}"
        );
        let value = error.www_authenticate();
        if error != Error::Missing {
            assert_eq!(
                value.to_str().expect("ASCII"),
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            );
        }
    }
    assert_eq!(
        Error::TooLarge.description(),
        format!("the token is larger than {MAX_TOKEN_BYTES} bytes")
    );

    // The values produced for real bad tokens hold no part of them.
    let f = fixture(|_| {}).await;
    for token in [
        f.ec.sign(&claims_with("exp", json!(NOW - 3600))),
        f.ec.with_kid(Some("secret-kid-value")).sign(&claims()),
        raw_token(
            &json!({"alg": "none"}),
            &claims_with("sub", json!("the-subject")),
            "",
        ),
    ] {
        let error = f
            .verifier
            .verify_at(&token, now())
            .await
            .expect_err("refused");
        let value = www_authenticate(&error);
        let value = value.to_str().expect("ASCII");
        for part in token.split('.').filter(|p| p.len() > 3) {
            assert!(
                !value.contains(part),
                "{value} contains a part of the token"
            );
        }
        for text in ["secret-kid-value", "the-subject", "alice"] {
            assert!(!value.contains(text), "{value} contains {text}");
        }
    }
}

// === JWKS over HTTPS ===

/// What the test JWKS server answers.
#[derive(Clone)]
enum Answer {
    Keys(String),
    Status(StatusCode),
    Bytes(usize),
}

/// An HTTPS server on 127.0.0.1 with its own CA, answering every request with the
/// current [`Answer`] and counting requests.
struct JwksServer {
    uri: String,
    ca_pem: String,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(answer: Answer) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "weft jwt test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        let mut config = rustls::ServerConfig::builder_with_provider(weft_tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("address").port();
        let answer = Arc::new(Mutex::new(answer));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let answer = Arc::clone(&answer);
            let hits = Arc::clone(&hits);
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let answer = Arc::clone(&answer);
                    let hits = Arc::clone(&hits);
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |_request| {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let answer = answer.lock().expect("not poisoned").clone();
                            async move { Ok::<_, Infallible>(respond(answer)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        });
        JwksServer {
            uri: format!("https://127.0.0.1:{port}/.well-known/jwks.json"),
            ca_pem: ca.pem(),
            answer,
            hits,
            task,
        }
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("not poisoned") = answer;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// A cache for this server's URL, trusting `ca_pem` (written into `dir`).
    fn cache(&self, dir: &TempDir, ca_pem: &str, gap: Duration) -> Arc<JwksCache> {
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, ca_pem).expect("writes the CA bundle");
        let jwks = Jwks {
            file: None,
            uri: Some(self.uri.clone()),
            ca_bundle: Some(bundle),
            refresh_interval: provider::DEFAULT_REFRESH_INTERVAL,
            timeout: Duration::from_secs(5),
        };
        Arc::new(
            JwksCache::build(&jwks)
                .expect("builds the cache")
                .with_unknown_key_gap(gap),
        )
    }
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let (status, body) = match answer {
        Answer::Keys(document) => (StatusCode::OK, Bytes::from(document)),
        Answer::Status(status) => (status, Bytes::from_static(b"{}")),
        Answer::Bytes(n) => (StatusCode::OK, Bytes::from(vec![b' '; n])),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

fn https_verifier(server: &JwksServer, cache: Arc<JwksCache>) -> Verifier {
    let config = provider(Jwks {
        file: None,
        uri: Some(server.uri.clone()),
        ca_bundle: Some("/unused/by/build".into()),
        refresh_interval: provider::DEFAULT_REFRESH_INTERVAL,
        timeout: provider::DEFAULT_FETCH_TIMEOUT,
    });
    Verifier::build(&config, cache).expect("builds the verifier")
}

#[tokio::test]
async fn key_rotation_is_picked_up_on_an_unknown_kid_and_the_old_set_survives_a_failing_server() {
    let old = Signer::ec("2024", Algorithm::ES256);
    let new = Signer::ed25519("2025");
    let server = JwksServer::start(Answer::Keys(key_set(std::slice::from_ref(&old.jwk)))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = server.cache(&dir, &server.ca_pem, Duration::ZERO);
    let verifier = https_verifier(&server, Arc::clone(&cache));

    assert_eq!(
        cache.refresh().await.expect("first fetch"),
        Refreshed::Updated {
            keys: 1,
            skipped: 0
        }
    );
    assert_eq!(server.hits(), 1);
    assert!(verifier
        .verify_at(&old.sign(&claims()), now())
        .await
        .is_ok());

    // The issuer rotates: the new key appears beside the old one.
    server.answer(Answer::Keys(key_set(&[old.jwk.clone(), new.jwk.clone()])));
    let verified = verifier.verify_at(&new.sign(&claims()), now()).await;
    assert_eq!(
        verified.map(|v| v.principal()),
        Ok("https://issuer.test/alice".into())
    );
    assert_eq!(server.hits(), 2, "one fetch for the unknown kid");
    assert_eq!(cache.keys().len(), 2);

    // The server fails, in several ways; the last good set stays and both keys verify.
    server.answer(Answer::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let err = cache.refresh().await.expect_err("a 500 fails the refresh");
    assert!(
        matches!(
            err,
            cache::Error::Status {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                ..
            }
        ),
        "{err}"
    );
    server.answer(Answer::Bytes(cache::MAX_DOCUMENT_BYTES + 1));
    let err = cache
        .refresh()
        .await
        .expect_err("an oversized body fails the refresh");
    assert!(matches!(err, cache::Error::TooLarge { .. }), "{err}");
    server.answer(Answer::Keys(key_set(&[json!({"kty": "oct", "k": "AA"})])));
    let err = cache
        .refresh()
        .await
        .expect_err("a set without usable keys fails the refresh");
    assert!(matches!(err, cache::Error::Parse { .. }), "{err}");
    server.answer(Answer::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let unknown = Signer::ec("2026", Algorithm::ES256);
    assert_eq!(
        verifier.verify_at(&unknown.sign(&claims()), now()).await,
        Err(Error::UnknownKey),
        "an unknown kid still fails when the refresh it causes fails"
    );
    let hits = server.hits();
    assert_eq!(hits, 6);
    for signer in [&old, &new] {
        assert!(
            verifier
                .verify_at(&signer.sign(&claims()), now())
                .await
                .is_ok(),
            "{:?} still verifies from the last good set",
            signer.kid
        );
    }
    assert_eq!(server.hits(), hits, "known kids cause no fetch");
}

#[tokio::test]
async fn refreshes_for_unknown_kids_are_rate_limited() {
    let first = Signer::ec("1", Algorithm::ES256);
    let second = Signer::ec("2", Algorithm::ES256);
    let third = Signer::ec("3", Algorithm::ES256);
    let server = JwksServer::start(Answer::Keys(key_set(std::slice::from_ref(&first.jwk)))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = server.cache(&dir, &server.ca_pem, Duration::from_secs(3600));
    let verifier = https_verifier(&server, Arc::clone(&cache));

    // An empty cache fetches on the first token (and that counts as the on-demand one).
    assert!(verifier
        .verify_at(&first.sign(&claims()), now())
        .await
        .is_ok());
    assert_eq!(server.hits(), 1);

    server.answer(Answer::Keys(key_set(&[
        first.jwk.clone(),
        second.jwk.clone(),
        third.jwk.clone(),
    ])));
    for _ in 0..5 {
        assert_eq!(
            verifier.verify_at(&second.sign(&claims()), now()).await,
            Err(Error::UnknownKey)
        );
    }
    assert_eq!(server.hits(), 1, "no fetch within the gap");

    // The interval refresh is not rate-limited and brings the new keys.
    cache.refresh().await.expect("interval refresh");
    assert_eq!(server.hits(), 2);
    assert!(verifier
        .verify_at(&third.sign(&claims()), now())
        .await
        .is_ok());
}

#[tokio::test]
async fn a_jwks_server_with_a_certificate_from_another_ca_is_refused() {
    let key = Signer::ec("1", Algorithm::ES256);
    let server = JwksServer::start(Answer::Keys(key_set(std::slice::from_ref(&key.jwk)))).await;
    let other = JwksServer::start(Answer::Status(StatusCode::NOT_FOUND)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = server.cache(&dir, &other.ca_pem, Duration::ZERO);
    let err = cache
        .refresh()
        .await
        .expect_err("the server's CA is not trusted");
    assert!(
        matches!(
            err,
            cache::Error::Fetch {
                what: "the TLS handshake",
                ..
            }
        ),
        "{err}"
    );
    assert!(cache.keys().is_empty());
    let verifier = https_verifier(&server, cache);
    assert_eq!(
        verifier.verify_at(&key.sign(&claims()), now()).await,
        Err(Error::KeysUnavailable)
    );
}
