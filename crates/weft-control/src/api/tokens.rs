//! `/v1/tokens/…`: issuing and revoking workload tokens, the credentials a proxy
//! presents to get certificates (`weft token workload`, `weft token revoke`).
//!
//! - `POST /v1/tokens/workload` `{namespace, serviceAccount, ttl?}` (ttl like `24h`,
//!   default 24 h, at most 365 d) → `{token, id, identity, expiresAt}`.
//! - `POST /v1/tokens/revoke` `{id, expiresAt?}` (RFC 3339; default: long enough to
//!   outlive any token) → `{id, revokedUntil}`.
//!
//! The handlers assume nothing about who calls them: operator authentication is a
//! layer on these routes in [`router`](super::router), added without touching this file.
//! Responses carrying a token are `Cache-Control: no-store`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::Error;
use super::format::{self, Format, Reply};
use super::ApiState;
use crate::identity::tokens::{self, Tokens};

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
    ttl: Option<String>,
}

/// `POST /v1/tokens/workload` response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadToken {
    token: String,
    id: String,
    identity: String,
    expires_at: String,
}

/// `POST /v1/tokens/revoke` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeRequest {
    id: String,
    #[serde(default)]
    expires_at: Option<String>,
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
    let request: WorkloadRequest = read(&headers, body).await?;
    let ttl = match request.ttl.as_deref() {
        None => DEFAULT_TOKEN_TTL,
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            Error::invalid_field(
                "ttl",
                format!("{text:?} is not a duration ({e}), e.g. 24h or 30d"),
            )
        })?,
    };
    let issued = tokens
        .issue(
            &request.namespace,
            &request.service_account,
            ttl,
            SystemTime::now(),
        )
        .map_err(|e| match e {
            tokens::Error::Identity(e) => Error::invalid(e.to_string(), vec![]),
            tokens::Error::Reserved(_) => Error::invalid_field("namespace", e.to_string()),
            tokens::Error::Ttl(_) => Error::invalid_field("ttl", e.to_string()),
            tokens::Error::Store(e) => Error::from(e),
            other => Error::internal(&other),
        })?;
    let claims = &issued.claims;
    let reply = Reply::ok(
        Format::of_response(&headers),
        &WorkloadToken {
            identity: tokens::identity(claims),
            id: claims.id.clone(),
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
    let request: RevokeRequest = read(&headers, body).await?;
    if request.id.trim().is_empty() {
        return Err(Error::invalid_field(
            "id",
            "must not be empty: give the id `weft token workload` printed",
        ));
    }
    let expires_at = request
        .expires_at
        .as_deref()
        .map(|text| {
            humantime::parse_rfc3339_weak(text).map_err(|e| {
                Error::invalid_field(
                    "expiresAt",
                    format!("{text:?} is not an RFC 3339 time ({e}), e.g. 2030-01-01T00:00:00Z"),
                )
            })
        })
        .transpose()?;
    let until = tokens
        .revoke(&request.id, expires_at)
        .await
        .map_err(|e| match e {
            tokens::Error::Store(e) => Error::from(e),
            other => Error::internal(&other),
        })?;
    Ok(Reply::ok(
        Format::of_response(&headers),
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

/// The body (JSON or YAML) as `T`, unknown fields refused.
async fn read<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Error> {
    let format = Format::of_request(headers)?;
    let text = format::read_text(body).await?;
    let value = format::decode(format, &text)?;
    serde_json::from_value(value)
        .map_err(|e| Error::invalid(format!("invalid request body: {e}"), vec![]))
}
