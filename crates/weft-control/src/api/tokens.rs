//! `/v1/tokens/…`: issuing and revoking workload tokens, the credentials a proxy
//! presents to get certificates (`weft token workload`, `weft token revoke`).
//!
//! - `POST /v1/tokens/workload` `{namespace, serviceAccount, labels?, ttl?}` →
//!   `{token, id, identity, labels, expiresAt}`. Namespace and service account are RFC
//!   1123 labels (as in resources; the namespace not Weft's own); `labels` are the
//!   Kubernetes labels the workloads registered with the token carry (a proxy cannot
//!   add to them); `ttl` is a number and a unit, `s`, `m`, `h` or `d`, from 1s to 365d
//!   ([`ttl_pattern`]); default [`DEFAULT_TOKEN_TTL`].
//! - `POST /v1/tokens/revoke` `{id, expiresAt?, force?}` → `{id, revokedUntil}`. `id` is
//!   the 32 hexadecimal digits `weft token workload` printed, of a token this control
//!   plane issued (404 otherwise, unless `force`); `expiresAt` an RFC 3339 time
//!   (see [`timestamp`](super::timestamp)): one in the past means now, since the token
//!   has expired already; default: long enough to outlive any token.
//!
//! Each field is checked against the rule `/openapi.json` states for it.
//!
//! The handlers assume nothing about who calls them: operator authentication is a
//! layer on these routes in [`router`](super::router), added without touching this file.
//! Responses carrying a token are `Cache-Control: no-store`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Detail, Error};
use super::format::{self, Format, Reply};
use super::params::{self, LABEL_RULE};
use super::timestamp::Timestamp;
use super::ApiState;
use crate::identity::tokens::{self, Tokens, MAX_TTL};

/// Token ids: 128 bits in lower-case hex.
pub(super) const ID_PATTERN: &str = "^[0-9a-f]{32}$";

/// What a `ttl` may be, for error messages.
pub(super) const TTL_RULE: &str =
    "write a whole number and a unit s, m, h or d, from 1s to 365d, e.g. 24h or 30d";

/// The units a `ttl` may use, with their length in seconds.
const TTL_UNITS: [(char, u64); 4] = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];

/// Lifetime of a workload token when the request names none: 365 days. A proxy
/// presents its token on every reconnect and every certificate renewal, so a short
/// default would take a long-running workload out of the mesh the day it expired;
/// tokens are long-lived and revocable instead (as Kuma's data-plane tokens), and the
/// proxy re-reads its token file, so replacing the file rotates it.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `POST /v1/tokens/workload` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkloadRequest {
    namespace: String,
    service_account: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    ttl: Option<String>,
}

/// `POST /v1/tokens/workload` response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadToken {
    token: String,
    id: String,
    identity: String,
    labels: BTreeMap<String, String>,
    expires_at: String,
}

/// `POST /v1/tokens/revoke` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeRequest {
    id: String,
    #[serde(default)]
    expires_at: Option<String>,
    /// Revoke an id with no record of its issue (issued before records were kept).
    #[serde(default)]
    force: bool,
}

/// `POST /v1/tokens/revoke` response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Revoked {
    id: String,
    revoked_until: String,
}

pub(super) async fn workload(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let tokens = issuer(&state)?;
    let format = Format::of_response(&headers)?;
    let request: WorkloadRequest = read(&headers, body).await?;
    for (field, value) in [
        ("namespace", &request.namespace),
        ("serviceAccount", &request.service_account),
    ] {
        if !params::is_label(value) {
            return Err(Error::invalid_field(
                field,
                format!("{value:?} is not a valid {field}: {LABEL_RULE}"),
            ));
        }
    }
    if weft_tls::control::is_reserved(&request.namespace) {
        return Err(Error::invalid_field(
            "namespace",
            format!(
                "{:?} is reserved for Weft's own components; workloads cannot be in it",
                request.namespace
            ),
        ));
    }
    let ttl = match request.ttl.as_deref() {
        None => DEFAULT_TOKEN_TTL,
        Some(text) => parse_ttl(text).ok_or_else(|| {
            Error::invalid_field(
                "ttl",
                format!("{text:?} is not a token lifetime: {TTL_RULE}"),
            )
        })?,
    };
    let issued = tokens
        .issue_recorded(
            &request.namespace,
            &request.service_account,
            &request.labels,
            ttl,
            SystemTime::now(),
        )
        .await
        .map_err(|e| match e {
            tokens::Error::Identity(e) => Error::invalid(e.to_string(), vec![]),
            tokens::Error::Labels(errors) => Error::invalid(
                format!("{errors}; label keys are an optional DNS prefix and '/' then a name, values at most 63 letters, digits, '-', '_' or '.'"),
                errors
                    .0
                    .into_iter()
                    .map(|e| Detail {
                        path: e.path,
                        message: e.message,
                        ..Detail::default()
                    })
                    .collect(),
            ),
            tokens::Error::Reserved(_) => Error::invalid_field("namespace", e.to_string()),
            tokens::Error::Ttl(_) => Error::invalid_field("ttl", e.to_string()),
            tokens::Error::Store(e) => Error::from(e),
            other => Error::internal(&other),
        })?;
    let claims = &issued.claims;
    let reply = Reply::ok(
        format,
        &WorkloadToken {
            identity: tokens::identity(claims),
            id: claims.id.clone(),
            labels: claims.labels.clone(),
            expires_at: humantime::format_rfc3339_seconds(claims.expires_at).to_string(),
            token: issued.token,
        },
    );
    Ok((
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        reply,
    )
        .into_response())
}

pub(super) async fn revoke(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply, Error> {
    let tokens = issuer(&state)?;
    let format = Format::of_response(&headers)?;
    let request: RevokeRequest = read(&headers, body).await?;
    if !is_token_id(&request.id) {
        return Err(Error::invalid_field(
            "id",
            format!(
                "{:?} is not a token id: give the 32 hexadecimal digits `weft token workload` \
                 printed",
                request.id
            ),
        ));
    }
    let expires_at = request
        .expires_at
        .as_deref()
        .map(|text| {
            Timestamp::parse(text)
                .map(|t| t.clamped(SystemTime::now()))
                .ok_or_else(|| {
                    Error::invalid_field(
                        "expiresAt",
                        format!(
                            "{text:?} is not an RFC 3339 time: write e.g. 2030-01-01T00:00:00Z \
                             or 2030-01-01T01:00:00+01:00"
                        ),
                    )
                })
        })
        .transpose()?;
    let until = tokens
        .revoke(&request.id, expires_at, request.force)
        .await
        .map_err(|e| match e {
            tokens::Error::Store(e) => Error::from(e),
            e @ tokens::Error::Unknown(_) => Error::not_found(e.to_string()),
            other => Error::internal(&other),
        })?;
    Ok(Reply::ok(
        format,
        &Revoked {
            id: request.id,
            revoked_until: humantime::format_rfc3339_seconds(until).to_string(),
        },
    ))
}

fn issuer(state: &ApiState) -> Result<&Arc<Tokens>, Error> {
    state.tokens.as_ref().ok_or_else(|| {
        Error::not_found(
            "this control plane does not issue workload tokens (no token issuer is configured)",
        )
    })
}

/// A `ttl` as [`ttl_pattern`] allows it: digits without a leading zero and one unit,
/// from 1s to [`MAX_TTL`].
pub(super) fn parse_ttl(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let (_, seconds) = TTL_UNITS.iter().find(|(u, _)| *u == unit)?;
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count: u64 = digits.parse().ok()?;
    let ttl = Duration::from_secs(count.checked_mul(*seconds)?);
    (ttl <= MAX_TTL).then_some(ttl)
}

/// The `ttl` grammar as a regular expression: for each unit, the counts from 1 up to
/// [`MAX_TTL`] in that unit.
pub(super) fn ttl_pattern() -> String {
    let units: Vec<String> = TTL_UNITS
        .iter()
        .map(|(unit, seconds)| format!("{}{unit}", up_to(MAX_TTL.as_secs() / seconds)))
        .collect();
    format!("^(?:{})$", units.join("|"))
}

/// A regular expression matching the decimal numbers 1 to `max`, without leading zeros.
fn up_to(max: u64) -> String {
    fn any(count: usize) -> String {
        match count {
            0 => String::new(),
            1 => "[0-9]".to_owned(),
            n => format!("[0-9]{{{n}}}"),
        }
    }
    let digits: Vec<u8> = max.to_string().bytes().map(|b| b - b'0').collect();
    let mut alternatives: Vec<String> = (1..digits.len())
        .map(|len| format!("[1-9]{}", any(len - 1)))
        .collect();
    // As long as `max`: equal up to some digit, then smaller, then anything.
    for (i, digit) in digits.iter().enumerate() {
        let low = u8::from(i == 0);
        if *digit > low {
            let prefix: String = digits[..i].iter().map(|d| char::from(b'0' + d)).collect();
            let class = if *digit - 1 == low {
                low.to_string()
            } else {
                format!("[{low}-{}]", digit - 1)
            };
            alternatives.push(format!("{prefix}{class}{}", any(digits.len() - i - 1)));
        }
    }
    alternatives.push(max.to_string());
    format!("(?:{})", alternatives.join("|"))
}

/// Whether `id` matches [`ID_PATTERN`].
fn is_token_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The body (JSON or YAML) as `T`, unknown fields refused.
pub(super) async fn read<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Error> {
    let format = Format::of_request(headers)?;
    let text = format::read_text(body).await?;
    let value = format::decode(format, &text)?;
    serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("invalid request body: {e}"), vec![]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn up_to_matches_exactly_the_numbers_from_one_to_max() {
        for max in [1, 9, 10, 11, 60, 99, 100, 365, 1000, 8760, 525_600] {
            let pattern = regex::Regex::new(&format!("^{}$", up_to(max))).unwrap();
            for n in 0..=max + 20 {
                assert_eq!(
                    pattern.is_match(&n.to_string()),
                    (1..=max).contains(&n),
                    "{n} of {max}"
                );
            }
            assert!(!pattern.is_match("01"), "leading zero, max {max}");
        }
    }

    #[test]
    fn ttl_check_agrees_with_the_documented_pattern() {
        let pattern = regex::Regex::new(&ttl_pattern()).unwrap();
        for text in [
            "1s",
            "24h",
            "30d",
            "365d",
            "366d",
            "8760h",
            "8761h",
            "525600m",
            "525601m",
            "31536000s",
            "31536001s",
            "0s",
            "0d",
            "01h",
            "1",
            "h",
            "",
            "1 h",
            "1day",
            "1.5h",
            "-1h",
            "+1h",
            "1h30m",
            "99999999999999999999d",
            "1H",
        ] {
            assert_eq!(
                parse_ttl(text).is_some(),
                pattern.is_match(text),
                "{text:?}"
            );
        }
        assert_eq!(parse_ttl("30d"), Some(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn token_id_check_agrees_with_the_documented_pattern() {
        let pattern = regex::Regex::new(ID_PATTERN).unwrap();
        for id in [
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "g123456789abcdef0123456789abcdef",
            "",
        ] {
            assert_eq!(is_token_id(id), pattern.is_match(id), "{id:?}");
        }
    }
}
