//! `/v1/tokens/operator`: creating, listing and revoking operator tokens, the
//! credentials of the API itself (`weft token admin create|list|revoke`; ADR 0025).
//!
//! - `POST /v1/tokens/operator` `{name, role, ttl?}` → `201 {token, id, name, role,
//!   expiresAt}`, `Cache-Control: no-store`: the only time the token is shown. `name` is
//!   an RFC 1123 label, unique among unrevoked tokens (`409` otherwise); `role` is
//!   `admin` or `read-only`; `ttl` as for workload tokens (1s to 365d); without it the
//!   token does not expire.
//! - `GET /v1/tokens/operator` → `{items: [{name, id, role, createdAt, expiresAt,
//!   revokedAt, status}]}`, revoked and expired tokens included. Never a token or hash.
//! - `DELETE /v1/tokens/operator/{name}` → the revoked token. `404` for a name no token
//!   ever had; revoking a revoked token answers it again; `409` for the last usable
//!   admin token (the API must not lock every operator out).
//!
//! Rotation is create, switch, revoke: tokens cannot be renewed in place, so a holder
//! never finds their token silently replaced. Who may call these is the
//! [`auth`](super::auth) layer's business (admin tokens only: every method here but
//! `GET` writes).

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};

use super::auth::{self, Operator};
use super::error::Error;
use super::extract::Segments;
use super::format::{Format, Reply};
use super::params::{self, LABEL_RULE};
use super::tokens::{parse_ttl, read, TTL_RULE};
use super::ApiState;
use crate::store::{OperatorToken, Revocation, Role};

/// `POST /v1/tokens/operator` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRequest {
    name: String,
    role: String,
    #[serde(default)]
    ttl: Option<String>,
}

/// `POST /v1/tokens/operator` response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedToken {
    token: String,
    id: String,
    name: String,
    role: &'static str,
    expires_at: Option<String>,
}

/// One entry of `GET /v1/tokens/operator`, and the `DELETE` response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    id: String,
    role: &'static str,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    status: &'static str,
}

#[derive(Serialize)]
struct List {
    items: Vec<Listed>,
}

pub(super) async fn create(
    State(state): State<ApiState>,
    caller: Option<Extension<Operator>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let format = Format::of_response(&headers)?;
    let request: CreateRequest = read(&headers, body).await?;
    if !params::is_label(&request.name) {
        return Err(Error::invalid_field(
            "name",
            format!("{:?} is not a valid token name: {LABEL_RULE}", request.name),
        ));
    }
    let role: Role = request.role.parse().map_err(|()| {
        Error::invalid_field(
            "role",
            format!(
                "{:?} is not a role: use admin (everything) or read-only (GET only)",
                request.role
            ),
        )
    })?;
    let ttl = request
        .ttl
        .as_deref()
        .map(|text| {
            parse_ttl(text).ok_or_else(|| {
                Error::invalid_field(
                    "ttl",
                    format!("{text:?} is not a token lifetime: {TTL_RULE}"),
                )
            })
        })
        .transpose()?;
    let created = auth::create(
        state.store.as_ref(),
        &request.name,
        role,
        ttl,
        SystemTime::now(),
    )
    .await
    .map_err(|e| match e {
        auth::Error::Store(e) => Error::from(e),
        e @ auth::Error::Exists(_) => Error::already_exists(e.to_string()),
        other => Error::internal(&other),
    })?;
    if let Some(auth) = &state.admin {
        auth.invalidate();
    }
    tracing::info!(
        name = %created.record.name,
        id = %created.record.id,
        role = %role,
        by = caller.as_ref().map_or("-", |Extension(op)| op.name.as_str()),
        "created an operator token"
    );
    let reply = Reply::with_status(
        StatusCode::CREATED,
        format,
        &CreatedToken {
            id: created.record.id,
            name: created.record.name,
            role: role.as_str(),
            expires_at: created.record.expires_at.map(rfc3339),
            token: created.token,
        },
    );
    Ok((
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        reply,
    )
        .into_response())
}

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let format = Format::of_response(&headers)?;
    let now = SystemTime::now();
    let items = state
        .store
        .operator_tokens()
        .await?
        .iter()
        .map(|token| listed(token, now))
        .collect();
    Ok(Reply::ok(format, &List { items }))
}

pub(super) async fn revoke(
    State(state): State<ApiState>,
    caller: Option<Extension<Operator>>,
    Segments(name): Segments<String>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let format = Format::of_response(&headers)?;
    params::check_label("name", &name)?;
    let token = match state.store.revoke_operator_token(&name).await? {
        Revocation::Revoked(token) => {
            if let Some(auth) = &state.admin {
                auth.invalidate();
            }
            tracing::info!(
                name = %token.name,
                id = %token.id,
                by = caller.as_ref().map_or("-", |Extension(op)| op.name.as_str()),
                "revoked an operator token"
            );
            token
        }
        Revocation::AlreadyRevoked(token) => token,
        Revocation::Unknown => {
            return Err(Error::not_found(format!(
                "no operator token is named {name:?}; `weft token admin list` lists them"
            )))
        }
        Revocation::LastAdmin(_) => {
            return Err(Error::conflict(format!(
                "operator token {name:?} is the last usable admin token: revoking it would \
                 leave nobody able to manage this control plane; create another admin token \
                 first (`weft token admin create NAME --role admin`), then revoke this one"
            )))
        }
    };
    Ok(Reply::ok(format, &listed(&token, SystemTime::now())))
}

fn listed(token: &OperatorToken, now: SystemTime) -> Listed {
    Listed {
        name: token.name.clone(),
        id: token.id.clone(),
        role: token.role.as_str(),
        created_at: rfc3339(token.created_at),
        expires_at: token.expires_at.map(rfc3339),
        revoked_at: token.revoked_at.map(rfc3339),
        status: if token.revoked_at.is_some() {
            "revoked"
        } else if token.is_expired(now) {
            "expired"
        } else {
            "active"
        },
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
