//! [`Verifier`]: one provider compiled for the request path — find the token, check it,
//! and edit the request headers for the backend.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use weft_api::proxy::{FieldError, ValidationErrors};

use super::cache::JwksCache;
use super::claims::{self, Refusal};
use super::jwks::accepted_algorithm;
use super::location::Locations;
use super::provider::Provider;
use super::MAX_TOKEN_BYTES;

/// A registered claim the verifier checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// `iss`, the issuer.
    Iss,
    /// `sub`, the subject.
    Sub,
    /// `aud`, the audiences.
    Aud,
    /// `exp`, the expiry time.
    Exp,
    /// `nbf`, the time before which the token is not valid.
    Nbf,
    /// `iat`, the time the token was issued.
    Iat,
}

/// Why a request's token was not accepted. Every variant is answered with `401` and
/// the `WWW-Authenticate` value of [`www_authenticate`]; no description ever includes
/// any part of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("{}", self.description())]
pub enum Error {
    /// The request carries no token and the provider requires one.
    Missing,
    /// The request carries two different tokens.
    Ambiguous,
    /// The token is longer than [`MAX_TOKEN_BYTES`]; it was not decoded.
    TooLarge,
    /// The token is not three base64url parts with a JSON header and payload.
    Malformed,
    /// `alg: none`: an unsigned token.
    Unsigned,
    /// An HMAC algorithm (`HS256`/`HS384`/`HS512`): a shared secret is never accepted,
    /// even if the key set holds an `oct` key.
    Symmetric,
    /// Any other algorithm this verifier does not accept.
    UnsupportedAlgorithm,
    /// The header has `crit` extensions this verifier does not understand (RFC 7515
    /// §4.1.11).
    CriticalHeader,
    /// No key of the issuer fits the token's `kid` and algorithm, even after a refresh.
    UnknownKey,
    /// The issuer's key set has not been loaded yet.
    KeysUnavailable,
    /// No fitting key verifies the signature.
    BadSignature,
    /// `exp` has passed (beyond the clock skew).
    Expired,
    /// `nbf` has not come yet (beyond the clock skew).
    NotYetValid,
    /// `iat` is in the future (beyond the clock skew).
    IssuedInFuture,
    /// A required claim is absent.
    MissingClaim(Claim),
    /// A claim has the wrong JSON type.
    InvalidClaim(Claim),
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` holds none of the configured audiences.
    WrongAudience,
}

/// A verified token: who it names, and all its claims.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The token's `iss`, equal to the configured issuer.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// Every claim of the token's payload.
    pub claims: Map<String, Value>,
}

/// A claim that could not be copied into its header; the header is left absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The claim name.
    pub claim: String,
    /// The header it was to be copied into.
    pub header: HeaderName,
    /// Why it was not.
    pub reason: Refusal,
}

/// One provider, ready for requests: where tokens are, what makes one valid, and what
/// the backend gets.
#[derive(Clone, Debug)]
pub struct Verifier {
    issuer: String,
    audiences: Vec<String>,
    clock_skew_secs: i64,
    keys: Arc<JwksCache>,
    locations: Locations,
    claims_to_headers: Vec<(String, HeaderName)>,
    forward_original_token: bool,
    required: bool,
}

/// The fields of a JOSE header this verifier reads; others are ignored (`jku`, `x5u`
/// and `jwk` in particular: keys come only from the configured set).
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token split into its parts, its header read.
struct Token<'a> {
    /// `header.payload`, the signed input.
    signed: &'a str,
    payload: &'a str,
    signature: &'a str,
    alg: Algorithm,
    kid: Option<String>,
}

// === impl Error ===

impl Error {
    /// The status to answer with: always `401 Unauthorized`.
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// What went wrong, for the `error_description` of `WWW-Authenticate` and for logs:
    /// printable ASCII without `"` or `\` (RFC 6750 §3), never a part of the token.
    pub fn description(&self) -> &'static str {
        match self {
            Error::Missing => "the request carries no bearer token",
            Error::Ambiguous => "the request carries more than one token",
            Error::TooLarge => "the token is larger than 8192 bytes",
            Error::Malformed => "the token is not a well-formed JWT",
            Error::Unsigned => "unsigned tokens (alg none) are not accepted",
            Error::Symmetric => "HMAC-signed tokens are not accepted",
            Error::UnsupportedAlgorithm => "the token's signing algorithm is not accepted",
            Error::CriticalHeader => "the token has critical header extensions",
            Error::UnknownKey => "no key of the issuer matches the token",
            Error::KeysUnavailable => "the issuer's signing keys are not available",
            Error::BadSignature => "the token's signature is invalid",
            Error::Expired => "the token has expired",
            Error::NotYetValid => "the token is not valid yet",
            Error::IssuedInFuture => "the token is issued in the future",
            Error::MissingClaim(claim) => match claim {
                Claim::Iss => "the token has no iss claim",
                Claim::Sub => "the token has no sub claim",
                Claim::Aud => "the token has no aud claim",
                Claim::Exp => "the token has no exp claim",
                Claim::Nbf => "the token has no nbf claim",
                Claim::Iat => "the token has no iat claim",
            },
            Error::InvalidClaim(claim) => match claim {
                Claim::Iss => "the token's iss claim is not a string",
                Claim::Sub => "the token's sub claim is not a non-empty string",
                Claim::Aud => "the token's aud claim is not a string or an array of strings",
                Claim::Exp => "the token's exp claim is not a number",
                Claim::Nbf => "the token's nbf claim is not a number",
                Claim::Iat => "the token's iat claim is not a number",
            },
            Error::WrongIssuer => "the token is from another issuer",
            Error::WrongAudience => "the token is not meant for this audience",
        }
    }

    /// The `WWW-Authenticate` value of the 401 answer; see [`www_authenticate`].
    pub fn www_authenticate(&self) -> HeaderValue {
        www_authenticate(self)
    }
}

/// The `WWW-Authenticate` value of the 401 answer to `error` (RFC 6750 §3):
/// `Bearer error="invalid_token", error_description="…"`, or plain `Bearer` when the
/// request carried no token at all (§3.1: no error code then).
pub fn www_authenticate(error: &Error) -> HeaderValue {
    if *error == Error::Missing {
        return HeaderValue::from_static("Bearer");
    }
    let value = format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        error.description()
    );
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
}

// === impl Verified ===

impl Verified {
    /// The request principal, `<iss>/<sub>` (e.g. `https://auth.example.com/alice`), as
    /// Istio's `requestPrincipals` write it. This is the string authorization rules
    /// (a future TrafficPermission `from.requestPrincipals`) match.
    pub fn principal(&self) -> String {
        format!("{}/{}", self.issuer, self.subject)
    }
}

// === impl Verifier ===

impl Verifier {
    /// Compiles `provider` (validated first; errors carry field paths) around the key
    /// cache of its `jwks`. The cache is not refreshed here.
    pub fn build(provider: &Provider, keys: Arc<JwksCache>) -> Result<Self, ValidationErrors> {
        provider.validate("")?;
        let locations = Locations::build(&provider.from_headers, &provider.from_cookies)
            .ok_or_else(|| invalid("fromHeaders", "a header name does not parse"))?;
        let claims_to_headers = provider
            .claims_to_headers
            .iter()
            .map(|m| {
                HeaderName::from_bytes(m.header.as_bytes())
                    .map(|name| (m.claim.clone(), name))
                    .map_err(|_| invalid("claimsToHeaders", "a header name does not parse"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            issuer: provider.issuer.clone(),
            audiences: provider.audiences.clone(),
            clock_skew_secs: i64::try_from(provider.clock_skew.as_secs()).unwrap_or(i64::MAX),
            keys,
            locations,
            claims_to_headers,
            forward_original_token: provider.forward_original_token,
            required: provider.required,
        })
    }

    /// Whether a request without a token is refused.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The key cache this verifier reads.
    pub fn keys(&self) -> &Arc<JwksCache> {
        &self.keys
    }

    /// The token the request carries, if any.
    pub fn token<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, Error> {
        self.locations.find(headers)
    }

    /// Finds and verifies the request's token: `Ok(None)` when there is none and the
    /// provider does not require one; a token that is present is verified either way.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Verified>, Error> {
        match self.token(headers)? {
            Some(token) => self.verify(token).await.map(Some),
            None if self.required => Err(Error::Missing),
            None => Ok(None),
        }
    }

    /// Verifies `token` now; see [`Verifier::verify_at`].
    pub async fn verify(&self, token: &str) -> Result<Verified, Error> {
        self.verify_at(token, SystemTime::now()).await
    }

    /// Verifies `token` as of `now`: size, shape, algorithm, signature against the
    /// issuer's keys (refreshing them once if no key fits, rate-limited by the cache),
    /// then `iss`, `aud`, `exp`, `nbf`, `iat` (with the clock skew) and `sub`.
    pub async fn verify_at(&self, token: &str, now: SystemTime) -> Result<Verified, Error> {
        let token = Token::parse(token)?;
        match self.check_signature(&token) {
            Err(error @ (Error::UnknownKey | Error::KeysUnavailable)) => {
                if !self.keys.refresh_for_unknown_key().await {
                    return Err(error);
                }
                self.check_signature(&token)?;
            }
            other => other?,
        }
        let claims = token.claims()?;
        self.check_claims(claims, now)
    }

    /// Prepares the request headers for the backend: removes the claim headers the
    /// client sent (always, so they cannot be forged), removes the token unless
    /// `forwardOriginalToken`, and sets the claim headers of `verified`. Returns the
    /// claims that could not become headers (those headers stay absent).
    pub fn forward(&self, verified: Option<&Verified>, headers: &mut HeaderMap) -> Vec<Skipped> {
        for (_, header) in &self.claims_to_headers {
            headers.remove(header);
        }
        if !self.forward_original_token {
            self.locations.strip(headers);
        }
        let mut skipped = Vec::new();
        let Some(verified) = verified else {
            return skipped;
        };
        for (claim, header) in &self.claims_to_headers {
            let Some(value) = verified.claims.get(claim) else {
                continue;
            };
            match claims::header_value(value) {
                Ok(value) => {
                    headers.insert(header.clone(), value);
                }
                Err(reason) => skipped.push(Skipped {
                    claim: claim.clone(),
                    header: header.clone(),
                    reason,
                }),
            }
        }
        skipped
    }

    fn check_signature(&self, token: &Token<'_>) -> Result<(), Error> {
        let keys = self.keys.keys();
        if keys.is_empty() {
            return Err(Error::KeysUnavailable);
        }
        let mut tried = false;
        for key in keys.candidates(token.alg, token.kid.as_deref()) {
            tried = true;
            let verified = jsonwebtoken::crypto::verify(
                token.signature,
                token.signed.as_bytes(),
                key.decoding(),
                token.alg,
            );
            if matches!(verified, Ok(true)) {
                return Ok(());
            }
        }
        if tried {
            Err(Error::BadSignature)
        } else {
            Err(Error::UnknownKey)
        }
    }

    fn check_claims(&self, claims: Map<String, Value>, now: SystemTime) -> Result<Verified, Error> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let skew = self.clock_skew_secs;

        match claims.get("iss") {
            None => return Err(Error::MissingClaim(Claim::Iss)),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(Error::WrongIssuer),
            Some(_) => return Err(Error::InvalidClaim(Claim::Iss)),
        }
        let audience_ok = match claims.get("aud") {
            None => return Err(Error::MissingClaim(Claim::Aud)),
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => {
                let mut any = false;
                for aud in auds {
                    let Value::String(aud) = aud else {
                        return Err(Error::InvalidClaim(Claim::Aud));
                    };
                    any |= self.audiences.contains(aud);
                }
                any
            }
            Some(_) => return Err(Error::InvalidClaim(Claim::Aud)),
        };
        if !audience_ok {
            return Err(Error::WrongAudience);
        }
        let exp = numeric_date(&claims, Claim::Exp)?.ok_or(Error::MissingClaim(Claim::Exp))?;
        // RFC 7519 §4.1.4: valid only before `exp`.
        if now >= exp.saturating_add(skew) {
            return Err(Error::Expired);
        }
        if let Some(nbf) = numeric_date(&claims, Claim::Nbf)? {
            if nbf > now.saturating_add(skew) {
                return Err(Error::NotYetValid);
            }
        }
        if let Some(iat) = numeric_date(&claims, Claim::Iat)? {
            if iat > now.saturating_add(skew) {
                return Err(Error::IssuedInFuture);
            }
        }
        let subject = match claims.get("sub") {
            None => return Err(Error::MissingClaim(Claim::Sub)),
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(_) => return Err(Error::InvalidClaim(Claim::Sub)),
        };
        Ok(Verified {
            issuer: self.issuer.clone(),
            subject,
            claims,
        })
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly fractional) as whole seconds.
fn numeric_date(claims: &Map<String, Value>, claim: Claim) -> Result<Option<i64>, Error> {
    let name = match claim {
        Claim::Exp => "exp",
        Claim::Nbf => "nbf",
        Claim::Iat => "iat",
        Claim::Iss | Claim::Sub | Claim::Aud => return Err(Error::InvalidClaim(claim)),
    };
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_i64() {
                Ok(Some(secs))
            } else if let Some(secs) = n.as_f64().filter(|f| f.is_finite()) {
                // Saturating: an absurd value is simply far in the past or future.
                #[allow(clippy::cast_possible_truncation)]
                Ok(Some(secs.floor() as i64))
            } else {
                Err(Error::InvalidClaim(claim))
            }
        }
        Some(_) => Err(Error::InvalidClaim(claim)),
    }
}

fn invalid(path: &str, message: &str) -> ValidationErrors {
    ValidationErrors(vec![FieldError {
        path: path.to_owned(),
        message: message.to_owned(),
    }])
}

// === impl Token ===

impl<'a> Token<'a> {
    /// Splits and reads the header, refusing what no key could verify before any
    /// signature work: oversized tokens, bad shapes, `none`, HMAC, unknown `alg`,
    /// `crit`.
    fn parse(token: &'a str) -> Result<Self, Error> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        let signed = &token[..header.len() + 1 + payload.len()];
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| Error::Malformed)?;
        let header: Header = serde_json::from_slice(&header_json).map_err(|_| Error::Malformed)?;
        let alg = match accepted_algorithm(&header.alg) {
            Some(alg) => alg,
            None if header.alg.eq_ignore_ascii_case("none") => return Err(Error::Unsigned),
            None if header.alg.to_ascii_uppercase().starts_with("HS") => {
                return Err(Error::Symmetric)
            }
            None => return Err(Error::UnsupportedAlgorithm),
        };
        if header.crit.is_some() {
            return Err(Error::CriticalHeader);
        }
        if payload.is_empty() || signature.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(Token {
            signed,
            payload,
            signature,
            alg,
            kid: header.kid,
        })
    }

    /// The payload, which must be a JSON object. Read only after the signature
    /// verified.
    fn claims(&self) -> Result<Map<String, Value>, Error> {
        let json = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| Error::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| Error::Malformed)
    }
}
