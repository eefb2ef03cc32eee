//! The tonic `Identity` service: authenticates the caller's workload token and signs
//! its CSR for the token's identity.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use weft_api::pb::v1 as pb;
use weft_api::pb::v1::identity_server::{Identity, IdentityServer};
use weft_tls::csr::Csr;

use weft_api::resource::{Key, Kind};

use super::tokens::{Refusal, Tokens};
use super::Options;
use crate::ca::MeshCa;
use crate::controller::registry;
use crate::metrics::ControlMetrics;
use crate::store::Store;

/// Largest `SignRequest` accepted: 64 KiB (a P-256 CSR is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The `weft.proxy.v1.Identity` implementation. Cheap to clone.
#[derive(Clone)]
pub struct IdentityService {
    ca: Arc<MeshCa>,
    tokens: Arc<Tokens>,
    options: Options,
    /// Where to record which CA issued each workload's certificate (a CA rotation
    /// waits for every one); `None` records nothing.
    records: Option<Arc<dyn Store>>,
    /// Where requests are counted by result, if anywhere.
    metrics: Option<Arc<ControlMetrics>>,
}

/// The gRPC service signing CSRs with `ca` for callers `tokens` authenticates, to add
/// to the control plane's tonic server next to xDS.
pub fn service(
    ca: Arc<MeshCa>,
    tokens: Arc<Tokens>,
    options: Options,
) -> IdentityServer<IdentityService> {
    service_recording(ca, tokens, options, None)
}

/// As [`service`], recording in each requesting workload's status (`status.certificate`)
/// which CA issued its certificate.
pub fn service_recording(
    ca: Arc<MeshCa>,
    tokens: Arc<Tokens>,
    options: Options,
    records: Option<Arc<dyn Store>>,
) -> IdentityServer<IdentityService> {
    service_counted(ca, tokens, options, records, None)
}

/// As [`service_recording`], counting each request by result in `metrics`
/// (`weft_control_certificate_requests_total`).
pub fn service_counted(
    ca: Arc<MeshCa>,
    tokens: Arc<Tokens>,
    options: Options,
    records: Option<Arc<dyn Store>>,
    metrics: Option<Arc<ControlMetrics>>,
) -> IdentityServer<IdentityService> {
    IdentityServer::new(IdentityService {
        ca,
        tokens,
        options,
        records,
        metrics,
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES)
}

/// The token of `authorization: Bearer <token>` metadata, or the `UNAUTHENTICATED`
/// status saying what is missing or malformed.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, Status> {
    let value = metadata
        .get(pb::AUTHORIZATION_METADATA_KEY)
        .map(|v| v.to_str().map_err(|_| malformed_authorization()));
    parse_bearer(value.transpose()?)
}

/// The token of an `authorization` value (`Bearer <token>`), as [`bearer_token`]
/// judges it; `None` is a missing value.
pub fn parse_bearer(value: Option<&str>) -> Result<&str, Status> {
    let Some(text) = value else {
        return Err(Status::unauthenticated(format!(
            "missing workload token: send `{}: {}<token>` metadata with the token from `weft token workload`",
            pb::AUTHORIZATION_METADATA_KEY,
            pb::BEARER_PREFIX
        )));
    };
    text.strip_prefix(pb::BEARER_PREFIX)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(malformed_authorization)
}

fn malformed_authorization() -> Status {
    Status::unauthenticated(format!(
        "malformed `{}` metadata: expected `{}<token>`",
        pb::AUTHORIZATION_METADATA_KEY,
        pb::BEARER_PREFIX
    ))
}

/// Refuses a `workload` the caller's identity does not own: a workload stored with
/// another service account. A workload not stored yet is fine (a proxy asks for its
/// certificate before it registers); nothing is recorded on it then.
pub async fn own_workload(
    store: &dyn Store,
    key: &Key,
    service_account: &str,
) -> Result<(), Status> {
    let existing = store.get(key).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read a workload to check a CSR's workload field");
        Status::unavailable(format!("store unavailable: {e}"))
    })?;
    let Some(workload) = existing else {
        return Ok(());
    };
    let owner = workload
        .spec
        .get("serviceAccount")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if owner == service_account {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "workload {}/{} belongs to service account {owner:?}, not to {service_account:?} \
         whose token signed this request: set `workload` to this proxy's own workload name",
        key.namespace, key.name
    )))
}

// === impl IdentityService ===

impl IdentityService {
    /// The certificate lifetime for a request: what it asks for (or the default), cut
    /// to the maximum.
    fn ttl(&self, requested: Option<prost_types::Duration>) -> Result<Duration, Status> {
        let Some(requested) = requested else {
            return Ok(self.options.default_ttl.min(self.options.max_ttl));
        };
        let ttl = Duration::try_from(requested)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "ttl {}s {}ns is not a positive duration; leave it unset for the default ({})",
                    requested.seconds,
                    requested.nanos,
                    humantime::format_duration(self.options.default_ttl)
                ))
            })?;
        Ok(ttl.min(self.options.max_ttl))
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let result = self.sign_checked(request).await;
        if let Some(metrics) = &self.metrics {
            metrics.certificate(match &result {
                Ok(_) => "issued",
                Err(status) if status.code() == tonic::Code::Internal => "failed",
                Err(_) => "refused",
            });
        }
        result
    }
}

impl IdentityService {
    /// [`Identity::sign`], before it is counted.
    async fn sign_checked(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let peer = request.remote_addr();
        let now = SystemTime::now();
        let token = bearer_token(request.metadata())?;
        let claims = self
            .tokens
            .authenticate(token, now)
            .await
            .map_err(|refusal| {
                tracing::info!(peer = ?peer, reason = %refusal, "refused a CSR");
                refusal_status(&refusal)
            })?;
        let request = request.into_inner();
        let csr = Csr::from_der(&request.csr)
            .map_err(|e| Status::invalid_argument(format!("invalid csr: {e}")))?;
        let ttl = self.ttl(request.ttl)?;
        let id = claims.spiffe_id().map_err(|e| {
            // The key signed it, so we issued it: a bug, not the caller's fault.
            tracing::error!(error = %e, "a verified workload token names an invalid identity");
            Status::internal("the workload token names an invalid identity")
        })?;
        let record = match (&self.records, request.workload.is_empty()) {
            (Some(store), false) => {
                let key = Key {
                    kind: Kind::Workload,
                    namespace: claims.namespace.clone(),
                    name: request.workload.clone(),
                };
                own_workload(store.as_ref(), &key, &claims.service_account).await?;
                Some((store, key))
            }
            _ => None,
        };
        let (leaf, bundle, signer) = self.ca.sign_bundled(&csr, &id, ttl, now).map_err(|e| {
            tracing::error!(identity = %id, error = %e, "cannot sign a CSR");
            Status::internal("cannot sign the certificate; see the control plane's log")
        })?;
        if let Some((store, key)) = record {
            let value = serde_json::json!({
                "signer": signer,
                "notAfter": humantime::format_rfc3339_seconds(leaf.not_after).to_string(),
            });
            if let Err(e) = registry::record(
                store.as_ref(),
                &key,
                None,
                registry::CERTIFICATE_FIELD,
                value,
            )
            .await
            {
                tracing::warn!(workload = %request.workload, error = %e, "could not record the issued certificate");
            }
        }
        tracing::info!(
            identity = %id,
            serial = %leaf.serial,
            not_after = %humantime::format_rfc3339_seconds(leaf.not_after),
            token = %claims.id,
            peer = ?peer,
            "signed a workload certificate"
        );
        Ok(Response::new(pb::SignResponse {
            cert_chain: leaf.chain,
            trust_bundle: bundle.roots_der().to_vec(),
            not_after: Some(prost_types::Timestamp::from(leaf.not_after)),
            identity: id.to_string(),
        }))
    }
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("ca", &self.ca)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `UNAUTHENTICATED` for a token that proves nothing, `PERMISSION_DENIED` for a valid
/// one that may not be used, `UNAVAILABLE` when the store cannot tell.
pub fn refusal_status(refusal: &Refusal) -> Status {
    match refusal {
        Refusal::Invalid(_) => Status::unauthenticated(refusal.to_string()),
        Refusal::ForeignTrustDomain { .. } | Refusal::Revoked { .. } | Refusal::Reserved { .. } => {
            Status::permission_denied(refusal.to_string())
        }
        Refusal::Store(e) => {
            tracing::warn!(error = %e, "cannot check a workload token's revocation");
            Status::unavailable("cannot check the workload token's revocation: the store is unavailable; retry later")
        }
    }
}
