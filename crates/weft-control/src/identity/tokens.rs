//! Workload tokens: the control plane's signing key (kept as a store secret), issuing
//! tokens for `weft token workload`, revoking them, and authenticating a presented
//! token (signature, expiry, trust domain, revocation) for the gRPC services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use weft_tls::token::{TokenError, TokenKey, WorkloadClaims};
use weft_tls::SpiffeId;

use crate::store::{Store, StoreError};

/// Store secret holding the token signing key (PEM).
pub const SIGNING_KEY_SECRET: &str = "tokens/signing-key";

/// Clock skew tolerated when checking a token's times: 60 s.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Longest lifetime a token may be issued for: 365 days.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Issues, revokes and checks workload tokens for one trust domain.
pub struct Tokens {
    key: TokenKey,
    store: Arc<dyn Store>,
    trust_domain: String,
}

/// A token just issued.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The token (a compact JWS), to hand to the workload's proxy.
    pub token: String,
    /// Its claims: id (for revocation), identity, expiry.
    pub claims: WorkloadClaims,
}

/// Why tokens could not be loaded, issued or revoked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored signing key is unreadable, or a new one could not be made.
    #[error("the workload token signing key (secret {SIGNING_KEY_SECRET:?}) is unusable: {0}")]
    Key(#[source] TokenError),
    /// The requested namespace or service account makes no valid identity.
    #[error("{0}")]
    Identity(#[from] weft_tls::spiffe::Error),
    /// The namespace is reserved for Weft itself (the control plane's identity).
    #[error("namespace {0:?} is reserved for Weft's own components; workloads cannot be in it")]
    Reserved(String),
    /// The requested lifetime is under a second or longer than [`MAX_TTL`].
    #[error("token lifetime {} is out of range: use at least 1s and at most 365d", humantime::format_duration(*.0))]
    Ttl(Duration),
    /// The labels to grant are not valid Kubernetes labels.
    #[error("{0}")]
    Labels(#[from] weft_api::proxy::ValidationErrors),
    /// Signing the token failed.
    #[error("cannot sign the workload token: {0}")]
    Sign(#[source] TokenError),
    /// Revoking an id this control plane did not issue (or that has expired).
    #[error(
        "no unexpired workload token with id {0} was issued by this control plane: check the \
         id `weft token workload` printed; a token issued before this control plane \
         recorded the tokens it issues can still be revoked with `weft token revoke {0} \
         --force`"
    )]
    Unknown(String),
}

/// Why a presented token is refused. `Display` says why, for the caller.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Bad signature, malformed, expired, not yet valid: the token proves nothing.
    #[error("invalid workload token: {0}")]
    Invalid(#[source] TokenError),
    /// A token naming a namespace reserved for Weft itself.
    #[error("the workload token names namespace {namespace:?}, which is reserved for Weft's own components")]
    Reserved {
        /// The token's namespace.
        namespace: String,
    },
    /// A valid token of another trust domain.
    #[error("the workload token is for trust domain {token:?}, but this control plane serves {served:?}")]
    ForeignTrustDomain {
        /// The token's trust domain.
        token: String,
        /// This control plane's.
        served: String,
    },
    /// A valid token that was revoked.
    #[error("workload token {id} (for {identity}) was revoked; issue a new one with `weft token workload`")]
    Revoked {
        /// The token id.
        id: String,
        /// The identity it named.
        identity: String,
    },
    /// The revocation list could not be read (not the caller's fault; retry).
    #[error("cannot check the workload token's revocation: {0}")]
    Store(#[from] StoreError),
}

// === impl Tokens ===

impl Tokens {
    /// The signing key kept in `store` (generated and stored first if there is none;
    /// instances starting together agree on one key), issuing for `trust_domain`.
    pub async fn load(store: Arc<dyn Store>, trust_domain: &str) -> Result<Self, Error> {
        let pem = if let Some(pem) = store.secret(SIGNING_KEY_SECRET).await? {
            pem
        } else {
            let fresh = TokenKey::generate().map_err(Error::Key)?;
            let pem = fresh.to_pem().into_bytes();
            let stored = store.create_secret(SIGNING_KEY_SECRET, &pem).await?;
            if stored == pem {
                tracing::info!(key_id = %fresh.key_id(), "generated the workload token signing key");
            }
            stored
        };
        let pem = String::from_utf8_lossy(&pem);
        let key = TokenKey::from_pem(&pem).map_err(Error::Key)?;
        Ok(Self::new(key, store, trust_domain))
    }

    /// Tokens signed with `key`.
    pub fn new(key: TokenKey, store: Arc<dyn Store>, trust_domain: &str) -> Self {
        Tokens {
            key,
            store,
            trust_domain: trust_domain.to_owned(),
        }
    }

    /// The signing key's id (the `kid` of every token), safe to log.
    pub fn key_id(&self) -> String {
        self.key.key_id()
    }

    /// The trust domain tokens are issued for and accepted from.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Issues a token for `namespace`/`service_account`, valid from `now` for `ttl`,
    /// granting `labels` to the workloads registered with it (a proxy cannot add to
    /// them; see [`crate::controller::registry`]).
    pub fn issue(
        &self,
        namespace: &str,
        service_account: &str,
        labels: &BTreeMap<String, String>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedToken, Error> {
        if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
            return Err(Error::Ttl(ttl));
        }
        SpiffeId::new(&self.trust_domain, namespace, service_account)?;
        if weft_tls::control::is_reserved(namespace) {
            return Err(Error::Reserved(namespace.to_owned()));
        }
        weft_policy::validate_labels("labels", labels)?;
        let claims = WorkloadClaims::new(&self.trust_domain, namespace, service_account, now, ttl)
            .with_labels(labels.clone());
        let token = self.key.issue(&claims).map_err(Error::Sign)?;
        tracing::info!(
            identity = %identity(&claims),
            id = %claims.id,
            expires_at = %humantime::format_rfc3339_seconds(claims.expires_at),
            "issued a workload token"
        );
        Ok(IssuedToken { token, claims })
    }

    /// [`Tokens::issue`], and records the token as issued so that it can be revoked
    /// by id.
    pub async fn issue_recorded(
        &self,
        namespace: &str,
        service_account: &str,
        labels: &BTreeMap<String, String>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedToken, Error> {
        let issued = self.issue(namespace, service_account, labels, ttl, now)?;
        self.store
            .record_issued_token(&issued.claims.id, issued.claims.expires_at)
            .await?;
        Ok(issued)
    }

    /// Revokes token `id` until `expires_at` (default: long enough to outlive any
    /// token, [`MAX_TTL`] from now). An id this control plane has no unexpired record
    /// of is [`Error::Unknown`], unless `force` (for tokens issued before records were
    /// kept).
    pub async fn revoke(
        &self,
        id: &str,
        expires_at: Option<SystemTime>,
        force: bool,
    ) -> Result<SystemTime, Error> {
        if !force && !self.store.token_issued(id).await? {
            return Err(Error::Unknown(id.to_owned()));
        }
        let until = expires_at.unwrap_or_else(|| SystemTime::now() + MAX_TTL);
        self.store.revoke_token(id, until).await?;
        tracing::info!(id, until = %humantime::format_rfc3339_seconds(until), "revoked a workload token");
        Ok(until)
    }

    /// Checks a presented token: signed by our key, within its validity (± [`LEEWAY`]),
    /// of our trust domain, and not revoked.
    pub async fn authenticate(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<WorkloadClaims, Refusal> {
        let claims = self
            .key
            .verify(token, now, LEEWAY)
            .map_err(Refusal::Invalid)?;
        if weft_tls::control::is_reserved(&claims.namespace) {
            return Err(Refusal::Reserved {
                namespace: claims.namespace,
            });
        }
        if claims.trust_domain != self.trust_domain {
            return Err(Refusal::ForeignTrustDomain {
                token: claims.trust_domain,
                served: self.trust_domain.clone(),
            });
        }
        if self.store.is_revoked(&claims.id).await? {
            return Err(Refusal::Revoked {
                identity: identity(&claims),
                id: claims.id,
            });
        }
        Ok(claims)
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("trust_domain", &self.trust_domain)
            .field("key_id", &self.key.key_id())
            .finish_non_exhaustive()
    }
}

/// `spiffe://td/ns/NS/sa/SA` of the claims, as text.
pub(crate) fn identity(claims: &WorkloadClaims) -> String {
    format!(
        "spiffe://{}/ns/{}/sa/{}",
        claims.trust_domain, claims.namespace, claims.service_account
    )
}
