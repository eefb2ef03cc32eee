//! JSON Web Key Sets (RFC 7517): parsing an issuer's public keys into [`KeySet`].
//!
//! Keys are read one by one: a key this verifier cannot use (a symmetric `oct` key, an
//! unsupported curve, an RSA modulus under 2048 bits, a key for encryption, bad base64)
//! is skipped and recorded in [`KeySet::skipped`] with the reason, and the others are
//! kept. Only a document that is not a key set at all, or one with no usable key, is an
//! [`Error`]; the cache then keeps the set it had.
//!
//! What it is not: a fetcher (see [`crate::jwt::JwksCache`]) or a verifier. Private key
//! members (`d`, `p`, …) are ignored; only the public part of a key is ever used.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// Most keys read from one set; the rest are skipped. A token without `kid` is tried
/// against every key of its type, so the set size bounds the work one token can cause.
pub const MAX_KEYS: usize = 64;

/// Smallest RSA modulus accepted, in bits (NIST SP 800-131A; also aws-lc's floor).
const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits (aws-lc's ceiling for verification).
const MAX_RSA_BITS: usize = 8192;

/// Longest `kid` kept in a [`Skipped`] record, in characters.
const MAX_KID_SHOWN: usize = 64;

/// Why a document is not a usable key set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document is not JSON.
    #[error("the key set is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The document is JSON but has no `keys` array.
    #[error("the key set has no \"keys\" array (RFC 7517 §5); is the URL or file a JWKS?")]
    NoKeysArray,
    /// Every key was skipped (or there were none).
    #[error("the key set has no usable key ({} skipped{})", .skipped.len(), describe_skipped(.skipped))]
    NoUsableKey {
        /// The keys that were skipped, with the reasons.
        skipped: Vec<Skipped>,
    },
}

/// A public key of the issuer, ready to verify signatures.
#[derive(Clone, Debug)]
pub struct Key {
    kid: Option<String>,
    kind: Kind,
    alg: Option<Algorithm>,
    decoding: DecodingKey,
}

/// The type of a key, which decides the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `kty: RSA`: RS256/384/512 and PS256/384/512.
    Rsa,
    /// `kty: EC`, `crv: P-256`: ES256.
    P256,
    /// `kty: EC`, `crv: P-384`: ES384.
    P384,
    /// `kty: OKP`, `crv: Ed25519`: EdDSA.
    Ed25519,
}

/// A key that was left out of a set, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Position of the key in the `keys` array, from 0.
    pub index: usize,
    /// The key's `kid`, if it had a string one (shortened to 64 characters).
    pub kid: Option<String>,
    /// Why it cannot be used.
    pub reason: SkipReason,
}

/// Why one key of a set cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// The entry is not a JSON object.
    #[error("not a JSON object")]
    NotAnObject,
    /// `kty` is absent or not a string.
    #[error("no \"kty\"")]
    NoKeyType,
    /// `kty: oct`: shared secrets never verify tokens here.
    #[error("symmetric (oct) keys are never used: HMAC tokens are refused")]
    Symmetric,
    /// A `kty` other than RSA, EC, OKP and oct.
    #[error("key type {0:?} is not supported (RSA, EC, OKP)")]
    UnsupportedKeyType(String),
    /// A curve other than P-256, P-384 (EC) and Ed25519 (OKP).
    #[error("curve {0:?} is not supported (P-256, P-384, Ed25519)")]
    UnsupportedCurve(String),
    /// `use` is not `sig`, or `key_ops` lacks `verify`.
    #[error("the key is not for verifying signatures (\"use\" or \"key_ops\")")]
    NotForSignatures,
    /// `alg` names no accepted signature algorithm.
    #[error("alg {0:?} is not an accepted signature algorithm")]
    UnsupportedAlgorithm(String),
    /// `alg` does not fit the key type or curve.
    #[error("alg {alg:?} does not fit a {kind:?} key")]
    AlgorithmMismatch {
        /// The key's `alg`.
        alg: String,
        /// The key's type.
        kind: Kind,
    },
    /// A required member is absent or not a string.
    #[error("member {0:?} is missing or not a string")]
    MissingMember(&'static str),
    /// A member is not unpadded base64url.
    #[error("member {0:?} is not base64url")]
    BadBase64(&'static str),
    /// A member has the wrong length for its curve.
    #[error("member {member:?} is {found} bytes, {expected} expected")]
    WrongLength {
        /// The member (`x`, `y`).
        member: &'static str,
        /// The length the curve needs.
        expected: usize,
        /// The decoded length.
        found: usize,
    },
    /// The RSA modulus is outside 2048..=8192 bits.
    #[error("RSA modulus of {0} bits is outside 2048..=8192")]
    RsaModulusSize(usize),
    /// The RSA public exponent is not an odd number from 3 up to 2^64.
    #[error("RSA public exponent is not an odd number from 3 up to 2^64")]
    RsaExponent,
    /// `kid` is present but not a string.
    #[error("\"kid\" is not a string")]
    KidNotAString,
    /// The set holds more than [`MAX_KEYS`] keys.
    #[error("more than {MAX_KEYS} keys in the set")]
    TooMany,
}

/// The usable keys of one key set, and those that were skipped.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    skipped: Vec<Skipped>,
}

// === impl KeySet ===

impl KeySet {
    /// An empty set: nothing verifies until a set is loaded.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads a JWKS document. Unusable keys are skipped (see [`KeySet::skipped`]); a
    /// document without a `keys` array, or without one usable key, is an error.
    pub fn parse(document: &[u8]) -> Result<Self, Error> {
        let value: Value = serde_json::from_slice(document).map_err(Error::Json)?;
        let Some(Value::Array(entries)) = value.get("keys") else {
            return Err(Error::NoKeysArray);
        };
        let mut set = KeySet::default();
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry
                .get("kid")
                .and_then(Value::as_str)
                .map(|kid| kid.chars().take(MAX_KID_SHOWN).collect());
            let parsed = if set.keys.len() >= MAX_KEYS {
                Err(SkipReason::TooMany)
            } else {
                Key::parse(entry)
            };
            match parsed {
                Ok(key) => set.keys.push(key),
                Err(reason) => set.skipped.push(Skipped { index, kid, reason }),
            }
        }
        if set.keys.is_empty() {
            return Err(Error::NoUsableKey {
                skipped: set.skipped,
            });
        }
        Ok(set)
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The keys that were left out, with the reasons.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable (only [`KeySet::empty`]).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may have signed a token with `alg` and `kid`: with a `kid`, the
    /// keys of that `kid`; without, every key. Either way only keys whose type (and
    /// `alg`, if the key names one) fits `alg`.
    pub fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |key| {
            kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)) && key.fits(alg)
        })
    }
}

// === impl Key ===

impl Key {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The algorithm the key is restricted to (its `alg`), if any.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The key in the form `jsonwebtoken` verifies with.
    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Whether this key can verify a signature made with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }

    fn parse(entry: &Value) -> Result<Self, SkipReason> {
        let Value::Object(members) = entry else {
            return Err(SkipReason::NotAnObject);
        };
        let kid = match members.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(SkipReason::KidNotAString),
        };
        let kty = members
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(SkipReason::NoKeyType)?;
        if kty == "oct" {
            return Err(SkipReason::Symmetric);
        }
        if !for_signatures(members) {
            return Err(SkipReason::NotForSignatures);
        }
        // The key's own `alg` first: a key pinned to HS256 is refused as such, whatever
        // its other members hold.
        let alg = match members.get("alg") {
            None => None,
            Some(Value::String(name)) => Some(
                accepted_algorithm(name)
                    .ok_or_else(|| SkipReason::UnsupportedAlgorithm(truncate(name)))?,
            ),
            Some(_) => return Err(SkipReason::UnsupportedAlgorithm("(not a string)".into())),
        };
        let (kind, decoding) = match kty {
            "RSA" => (Kind::Rsa, rsa(members)?),
            "EC" => ec(members)?,
            "OKP" => (Kind::Ed25519, okp(members)?),
            other => return Err(SkipReason::UnsupportedKeyType(truncate(other))),
        };
        if let Some(alg) = alg {
            if !kind.fits(alg) {
                return Err(SkipReason::AlgorithmMismatch {
                    alg: format!("{alg:?}"),
                    kind,
                });
            }
        }
        Ok(Key {
            kid,
            kind,
            alg,
            decoding,
        })
    }
}

// === impl Kind ===

impl Kind {
    /// Whether a key of this type verifies `alg`.
    pub fn fits(self, alg: Algorithm) -> bool {
        match self {
            Kind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            Kind::P256 => alg == Algorithm::ES256,
            Kind::P384 => alg == Algorithm::ES384,
            Kind::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// The accepted asymmetric signature algorithm called `name` (RFC 7518), if it is one.
/// `none` and the HMAC algorithms are never accepted.
pub fn accepted_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Whether `use` and `key_ops` (RFC 7517 §4.2, §4.3) allow verifying signatures.
fn for_signatures(members: &Map<String, Value>) -> bool {
    let use_ok = match members.get("use") {
        None => true,
        Some(value) => value.as_str() == Some("sig"),
    };
    let ops_ok = match members.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => ops.iter().any(|op| op.as_str() == Some("verify")),
        Some(_) => false,
    };
    use_ok && ops_ok
}

fn member<'a>(members: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, SkipReason> {
    members
        .get(name)
        .and_then(Value::as_str)
        .ok_or(SkipReason::MissingMember(name))
}

fn decoded(members: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, SkipReason> {
    URL_SAFE_NO_PAD
        .decode(member(members, name)?)
        .map_err(|_| SkipReason::BadBase64(name))
}

fn rsa(members: &Map<String, Value>) -> Result<DecodingKey, SkipReason> {
    let n = decoded(members, "n")?;
    let e = decoded(members, "e")?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = n
        .first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(SkipReason::RsaModulusSize(bits));
    }
    let exponent_ok =
        e.len() <= 8 && e.last().is_some_and(|low| low & 1 == 1) && (e.len() > 1 || e[0] >= 3);
    if !exponent_ok {
        return Err(SkipReason::RsaExponent);
    }
    Ok(DecodingKey::from_rsa_raw_components(n, e))
}

fn ec(members: &Map<String, Value>) -> Result<(Kind, DecodingKey), SkipReason> {
    let curve = member(members, "crv")?;
    let (kind, size) = match curve {
        "P-256" => (Kind::P256, 32),
        "P-384" => (Kind::P384, 48),
        other => return Err(SkipReason::UnsupportedCurve(truncate(other))),
    };
    let x = decoded(members, "x")?;
    let y = decoded(members, "y")?;
    for (member, value) in [("x", &x), ("y", &y)] {
        if value.len() != size {
            return Err(SkipReason::WrongLength {
                member,
                expected: size,
                found: value.len(),
            });
        }
    }
    // The uncompressed SEC1 point, as `DecodingKey::from_ec_components` builds it.
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((kind, DecodingKey::from_ec_der(&point)))
}

fn okp(members: &Map<String, Value>) -> Result<DecodingKey, SkipReason> {
    let curve = member(members, "crv")?;
    if curve != "Ed25519" {
        return Err(SkipReason::UnsupportedCurve(truncate(curve)));
    }
    let x = decoded(members, "x")?;
    if x.len() != 32 {
        return Err(SkipReason::WrongLength {
            member: "x",
            expected: 32,
            found: x.len(),
        });
    }
    Ok(DecodingKey::from_ed_der(&x))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[start..]
}

/// A value from the document, shortened for an error message.
fn truncate(text: &str) -> String {
    text.chars().take(MAX_KID_SHOWN).collect()
}

/// `: #0 (kid "a"): reason; #2: reason` for an error message, at most 5 entries.
fn describe_skipped(skipped: &[Skipped]) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (i, skip) in skipped.iter().take(5).enumerate() {
        text.push_str(if i == 0 { ": " } else { "; " });
        let _ = write!(text, "#{}", skip.index);
        if let Some(kid) = &skip.kid {
            let _ = write!(text, " (kid {kid:?})");
        }
        let _ = write!(text, " {}", skip.reason);
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A syntactically valid 2048-bit RSA public key (not a real key pair: parsing
    /// never checks primality).
    fn rsa_jwk(kid: &str) -> Value {
        let mut n = vec![0xc5u8; 256];
        n[255] |= 1;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn ec_jwk(kid: &str, crv: &str, size: usize) -> Value {
        json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&vec![1; size]), "y": b64(&vec![2; size])})
    }

    fn set(keys: &[Value]) -> Vec<u8> {
        serde_json::to_vec(&json!({ "keys": keys })).expect("serializes")
    }

    #[test]
    fn reads_rsa_ec_and_ed25519_keys() {
        let parsed = KeySet::parse(&set(&[
            rsa_jwk("r"),
            ec_jwk("p256", "P-256", 32),
            ec_jwk("p384", "P-384", 48),
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": "ed", "use": "sig"}),
        ]))
        .expect("a set of four usable keys parses");
        let kinds: Vec<_> = parsed.keys().iter().map(|k| (k.kid(), k.kind())).collect();
        assert_eq!(
            kinds,
            vec![
                (Some("r"), Kind::Rsa),
                (Some("p256"), Kind::P256),
                (Some("p384"), Kind::P384),
                (Some("ed"), Kind::Ed25519),
            ]
        );
        assert!(parsed.skipped().is_empty());
    }

    #[test]
    fn skips_and_records_unusable_keys_and_keeps_the_rest() {
        let mut small_n = vec![0xc5u8; 128];
        small_n[127] |= 1;
        let parsed = KeySet::parse(&set(&[
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "small", "n": b64(&small_n), "e": "AQAB"}),
            json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
            ec_jwk("short", "P-256", 31),
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AA", "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "b64", "n": "not base64!", "e": "AQAB"}),
            json!({"kty": "EC", "kid": "mismatch", "alg": "ES384", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])}),
            json!({"kty": "RSA", "kid": "hs", "alg": "HS256", "n": "AA", "e": "AQAB"}),
            json!("not an object"),
            rsa_jwk("good"),
        ]))
        .expect("one usable key is enough");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed.keys()[0].kid(), Some("good"));
        let reasons: Vec<_> = parsed
            .skipped()
            .iter()
            .map(|s| (s.index, s.kid.as_deref(), s.reason.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (0, Some("hmac"), SkipReason::Symmetric),
                (1, Some("small"), SkipReason::RsaModulusSize(1024)),
                (
                    2,
                    Some("p521"),
                    SkipReason::UnsupportedCurve("P-521".into())
                ),
                (
                    3,
                    Some("short"),
                    SkipReason::WrongLength {
                        member: "x",
                        expected: 32,
                        found: 31
                    }
                ),
                (4, Some("enc"), SkipReason::NotForSignatures),
                (5, Some("b64"), SkipReason::BadBase64("n")),
                (
                    6,
                    Some("mismatch"),
                    SkipReason::AlgorithmMismatch {
                        alg: "ES384".into(),
                        kind: Kind::P256
                    }
                ),
                (
                    7,
                    Some("hs"),
                    SkipReason::UnsupportedAlgorithm("HS256".into())
                ),
                (8, None, SkipReason::NotAnObject),
            ]
        );
    }

    #[test]
    fn refuses_documents_that_are_not_key_sets_or_have_no_usable_key() {
        assert!(matches!(KeySet::parse(b"<html>"), Err(Error::Json(_))));
        assert!(matches!(
            KeySet::parse(br#"{"kty":"RSA"}"#),
            Err(Error::NoKeysArray)
        ));
        let err = KeySet::parse(&set(&[json!({"kty": "oct", "kid": "k", "k": "AA"})]))
            .expect_err("a set of only symmetric keys is unusable");
        let text = err.to_string();
        assert!(
            text.starts_with("the key set has no usable key (1 skipped: #0 (kid \"k\") symmetric"),
            "{text}"
        );
    }

    #[test]
    fn reads_at_most_max_keys() {
        let keys: Vec<Value> = (0..=MAX_KEYS).map(|i| rsa_jwk(&i.to_string())).collect();
        let parsed = KeySet::parse(&set(&keys)).expect("parses");
        assert_eq!(parsed.len(), MAX_KEYS);
        assert_eq!(parsed.skipped()[0].reason, SkipReason::TooMany);
    }

    #[test]
    fn candidates_match_kid_key_type_and_the_keys_own_alg() {
        let mut rs384_only = rsa_jwk("b");
        rs384_only["alg"] = json!("RS384");
        let parsed = KeySet::parse(&set(&[
            rsa_jwk("a"),
            rs384_only,
            ec_jwk("a", "P-256", 32),
            ec_jwk("c", "P-384", 48),
        ]))
        .expect("parses");
        let kids = |alg, kid| -> Vec<(Option<&str>, Kind)> {
            parsed
                .candidates(alg, kid)
                .map(|k| (k.kid(), k.kind()))
                .collect()
        };
        assert_eq!(
            kids(Algorithm::RS256, Some("a")),
            vec![(Some("a"), Kind::Rsa)]
        );
        assert_eq!(
            kids(Algorithm::ES256, Some("a")),
            vec![(Some("a"), Kind::P256)]
        );
        assert_eq!(kids(Algorithm::RS256, Some("b")), vec![]);
        assert_eq!(
            kids(Algorithm::RS384, Some("b")),
            vec![(Some("b"), Kind::Rsa)]
        );
        assert_eq!(
            kids(Algorithm::PS256, None),
            vec![(Some("a"), Kind::Rsa)],
            "without kid: every RSA key that is not pinned to another alg"
        );
        assert_eq!(kids(Algorithm::ES384, None), vec![(Some("c"), Kind::P384)]);
        assert_eq!(kids(Algorithm::EdDSA, None), vec![]);
    }

    #[test]
    fn accepts_only_asymmetric_algorithms() {
        for name in [
            "none", "HS256", "HS384", "HS512", "ES512", "RS1", "", "rs256",
        ] {
            assert_eq!(accepted_algorithm(name), None, "{name}");
        }
        for name in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ] {
            assert!(accepted_algorithm(name).is_some(), "{name}");
        }
    }
}
