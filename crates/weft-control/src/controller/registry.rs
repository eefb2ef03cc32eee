//! Workload registration: a proxy's xDS stream carries its `Registration`; while the
//! stream lives the `Workload` is `Healthy`, when it ends the workload is
//! `Disconnected` (still an endpoint, so a proxy reconnecting to another instance or
//! restarting loses no traffic), and after the grace period `Unhealthy` (no longer an
//! endpoint). `weft get workloads` shows the phase.
//!
//! The status names the instance and connection that wrote it; an instance only marks
//! a workload disconnected if the status still names its own connection, so a proxy
//! that already reconnected elsewhere is not marked down by the old instance.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Kind, Object, ObjectMeta};

use crate::store::{Precondition, Store, StoreError};

/// Phases a workload's status reports.
pub mod phase {
    /// Its proxy is connected.
    pub const HEALTHY: &str = "Healthy";
    /// Its proxy disconnected less than the grace period ago; still an endpoint.
    pub const DISCONNECTED: &str = "Disconnected";
    /// Its proxy has been gone longer than the grace period; not an endpoint.
    pub const UNHEALTHY: &str = "Unhealthy";
}

/// What registrations may create, and how long what they leave behind is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Workloads one identity (namespace and service account) may have registered at
    /// once. Default 1,000.
    pub workloads_per_identity: usize,
    /// Workloads registered with one workload token. Default 100.
    pub workloads_per_token: usize,
    /// How long a workload stays `Unhealthy` before it is deleted. Default 1 h.
    pub retention: Duration,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            workloads_per_identity: 1000,
            workloads_per_token: 100,
            retention: Duration::from_secs(60 * 60),
        }
    }
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The registration does not describe a valid workload.
    #[error("invalid registration: {0}")]
    Invalid(String),
    /// The workload exists with another identity: a token proves an identity, and
    /// another identity's workload is not its to take.
    #[error(
        "workload {workload} is registered with service account {registered:?}; a proxy \
         whose token is for {requested:?} cannot take it over: give this proxy another \
         workload name, or delete the workload first if it is really retired \
         (`weft delete workload {name} -n {namespace}`)"
    )]
    Taken {
        /// `namespace/name`.
        workload: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The service account it is registered with.
        registered: String,
        /// The service account of the token presented.
        requested: String,
    },
    /// The proxy declares a label its workload token does not grant: labels decide
    /// which services a workload serves, so they come from the operator.
    #[error(
        "workload {workload} declares label {key}={value:?}, which its workload token does \
         not grant (the token grants {granted}): a workload's labels come from its token; \
         issue one that grants them (`weft token workload {identity} --label {key}={value}`), \
         or remove the label from the proxy's bootstrap"
    )]
    Labels {
        /// `namespace/name`.
        workload: String,
        /// Its identity as `weft token workload` arguments
        /// (`-n NAMESPACE --service-account SA`).
        identity: String,
        /// The label key.
        key: String,
        /// The value declared.
        value: String,
        /// The labels the token grants, as `k=v, …` (or "no labels").
        granted: String,
    },
    /// The identity has as many workloads as it may have.
    #[error(
        "{identity} already has {count} workloads in namespace {namespace:?}, the most one \
         identity may register (--max-workloads-per-identity {limit}): remove workloads it no \
         longer runs (`weft get workloads -n {namespace}`), or raise the limit"
    )]
    Quota {
        /// `ns/sa`.
        identity: String,
        /// Its namespace.
        namespace: String,
        /// Workloads it has.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The workload token has registered as many workloads as one token may.
    #[error(
        "workload token {token} already registered {count} workloads, the most one token \
         may (--max-workloads-per-token {limit}): give each group of proxies its own token \
         (`weft token workload`), or raise the limit"
    )]
    TokenQuota {
        /// The token id.
        token: String,
        /// Workloads registered with it.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `Workload` object a registration describes.
pub fn workload_object(reg: &pb::Registration) -> Result<Object, RegisterError> {
    let protocol = |p: i32| match pb::Protocol::try_from(p).unwrap_or_default() {
        pb::Protocol::Auto => "auto",
        pb::Protocol::Http => "http",
        pb::Protocol::Http2 => "http2",
        pb::Protocol::Grpc => "grpc",
        pb::Protocol::Tcp => "tcp",
    };
    let mut spec = serde_json::Map::new();
    spec.insert("serviceAccount".into(), json!(reg.service_account));
    spec.insert("address".into(), json!(reg.address));
    if !reg.hbone.is_empty() {
        spec.insert("hbone".into(), json!(reg.hbone));
    }
    spec.insert(
        "ports".into(),
        reg.ports
            .iter()
            .map(|p| json!({"port": p.port, "protocol": protocol(p.protocol)}))
            .collect(),
    );
    if !reg.zone.is_empty() {
        spec.insert("zone".into(), json!(reg.zone));
    }
    let object = Object {
        api_version: Kind::Workload.api_version().into(),
        kind: Kind::Workload.as_str().into(),
        metadata: ObjectMeta {
            name: reg.name.clone(),
            namespace: Some(reg.namespace.clone()),
            labels: reg.labels.clone().into_iter().collect::<BTreeMap<_, _>>(),
            ..ObjectMeta::default()
        },
        spec: serde_json::Value::Object(spec),
        status: None,
    };
    weft_policy::validate(&object).map_err(|e| RegisterError::Invalid(e.to_string()))?;
    Ok(object)
}

/// Records a connected proxy: writes its `Workload` (spec from the registration) and
/// marks it `Healthy`, owned by `instance`/`connection`. A workload already registered
/// (or declared by the operator) with another service account is refused
/// ([`RegisterError::Taken`]); the write is conditional on what was checked, so a
/// concurrent registration cannot slip in between.
pub async fn connected(
    store: &dyn Store,
    instance: &str,
    connection: u64,
    reg: &pb::Registration,
) -> Result<(), RegisterError> {
    connected_within(store, instance, connection, reg, &Quotas::default(), None).await
}

/// What the workload token a proxy presented grants its registration.
#[derive(Clone, Copy, Debug)]
pub struct Grant<'a> {
    /// The token id, recorded in the status (`status.token`) and counted against
    /// [`Quotas::workloads_per_token`].
    pub token: &'a str,
    /// The labels the workload carries, whatever the registration declares: each label
    /// the registration declares must be one of these ([`RegisterError::Labels`]).
    pub labels: &'a BTreeMap<String, String>,
}

/// [`connected`], refusing a new workload past `quotas` ([`RegisterError::Quota`],
/// [`RegisterError::TokenQuota`]). With a `grant` (from the proxy's workload token),
/// the workload's labels are the granted ones; without one, the registration's labels
/// are trusted as they are (for callers that are the operator, e.g. tests and tools).
pub async fn connected_within(
    store: &dyn Store,
    instance: &str,
    connection: u64,
    reg: &pb::Registration,
    quotas: &Quotas,
    grant: Option<Grant<'_>>,
) -> Result<(), RegisterError> {
    let mut object = workload_object(reg)?;
    if let Some(grant) = grant {
        object.metadata.labels = granted_labels(reg, grant.labels)?;
    }
    let token = grant.map(|g| g.token);
    let key = object
        .key()
        .map_err(|e| RegisterError::Invalid(e.to_string()))?;
    let existing = store.get(&key).await?;
    let precondition = if let Some(current) = &existing {
        let registered = current
            .spec
            .get("serviceAccount")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if registered != reg.service_account {
            return Err(RegisterError::Taken {
                workload: format!("{}/{}", key.namespace, key.name),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                registered: registered.to_owned(),
                requested: reg.service_account.clone(),
            });
        }
        current
            .resource_version()
            .map_or(Precondition::None, Precondition::ResourceVersion)
    } else {
        let counts = store
            .count_workloads(&key.namespace, &reg.service_account, token)
            .await?;
        if counts.identity >= quotas.workloads_per_identity {
            return Err(RegisterError::Quota {
                identity: format!("{}/{}", key.namespace, reg.service_account),
                namespace: key.namespace.clone(),
                count: counts.identity,
                limit: quotas.workloads_per_identity,
            });
        }
        if let Some(token) = token {
            if counts.token >= quotas.workloads_per_token {
                return Err(RegisterError::TokenQuota {
                    token: token.to_owned(),
                    count: counts.token,
                    limit: quotas.workloads_per_token,
                });
            }
        }
        Precondition::Absent
    };
    store.put(object, precondition).await?;
    // What the proxy held before it reconnected stays known: a proxy that already has
    // the current trust bundle is not sent (and does not ACK) it again.
    let previous = store.get(&key).await?.and_then(|o| o.status);
    let kept = |field: &str| {
        previous
            .as_ref()
            .and_then(|s| s.get(field))
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let mut status = json!({
        "phase": phase::HEALTHY,
        "connected": true,
        "controlPlane": instance,
        "connection": connection,
        "since": now(),
        "proxyVersion": reg.proxy_version,
        "issuedCertificate": reg.issued_certificate,
    });
    if let Some(token) = token {
        status[TOKEN_FIELD] = json!(token);
    }
    for field in [TRUST_BUNDLE_FIELD, CERTIFICATE_FIELD] {
        if !kept(field).is_null() {
            status[field] = kept(field);
        }
    }
    store.put_status(&key, status, Precondition::None).await?;
    Ok(())
}

/// The labels of a workload registered with a token granting `granted`: those, once
/// every label `reg` declares is found among them.
fn granted_labels(
    reg: &pb::Registration,
    granted: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, RegisterError> {
    let mut declared: Vec<(&String, &String)> = reg.labels.iter().collect();
    declared.sort();
    for (key, value) in declared {
        if granted.get(key) != Some(value) {
            let granted = if granted.is_empty() {
                "no labels".to_owned()
            } else {
                granted
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(RegisterError::Labels {
                workload: format!("{}/{}", reg.namespace, reg.name),
                identity: format!(
                    "-n {} --service-account {}",
                    reg.namespace, reg.service_account
                ),
                key: key.clone(),
                value: value.clone(),
                granted,
            });
        }
    }
    Ok(granted.clone())
}

/// Workload status field: the id of the workload token its proxy registered with.
pub const TOKEN_FIELD: &str = "token";
/// Workload status field: the version of the trust bundle its proxy last ACKed.
pub const TRUST_BUNDLE_FIELD: &str = "trustBundle";
/// Workload status field: `{signer, notAfter}` of the certificate last issued to it.
pub const CERTIFICATE_FIELD: &str = "certificate";

/// Sets `field` of a workload's status to `value`, keeping the rest; with
/// `connection`, only while the status still names that connection of `instance`.
/// Missing workloads are ignored.
pub async fn record(
    store: &dyn Store,
    key: &Key,
    owner: Option<(&str, u64)>,
    field: &str,
    value: serde_json::Value,
) -> Result<(), StoreError> {
    for _ in 0..5 {
        let Some(current) = store.get(key).await? else {
            return Ok(());
        };
        let mut status = current.status.clone().unwrap_or_else(|| json!({}));
        if let Some((instance, connection)) = owner {
            if status["controlPlane"] != json!(instance)
                || status["connection"] != json!(connection)
            {
                return Ok(());
            }
        }
        if status[field] == value {
            return Ok(());
        }
        status[field] = value.clone();
        let precondition = current
            .resource_version()
            .map_or(Precondition::None, Precondition::ResourceVersion);
        match store.put_status(key, status, precondition).await {
            Err(StoreError::Conflict { .. }) => {}
            Err(StoreError::NotFound(_)) => return Ok(()),
            other => return other.map(|_| ()),
        }
    }
    Ok(())
}

/// Records a proxy's stream ending: `Disconnected`, if the status still names this
/// connection.
pub async fn disconnected(
    store: &dyn Store,
    instance: &str,
    connection: u64,
    key: &Key,
) -> Result<(), StoreError> {
    for _ in 0..3 {
        let Some(current) = store.get(key).await? else {
            return Ok(());
        };
        let status = current.status.clone().unwrap_or_default();
        if status["controlPlane"] != json!(instance) || status["connection"] != json!(connection) {
            return Ok(());
        }
        let mut next = status.clone();
        next["phase"] = json!(phase::DISCONNECTED);
        next["connected"] = json!(false);
        next["since"] = json!(now());
        let precondition = current
            .resource_version()
            .map_or(Precondition::None, Precondition::ResourceVersion);
        match store.put_status(key, next, precondition).await {
            Err(StoreError::Conflict { .. }) => {}
            Err(StoreError::NotFound(_)) => return Ok(()),
            other => return other.map(|_| ()),
        }
    }
    Ok(())
}

/// Every `interval`, marks workloads disconnected for longer than `grace` as
/// `Unhealthy`, which removes them from their services' endpoints, and deletes those
/// `Unhealthy` for longer than `retention`.
pub async fn reap(
    store: Arc<dyn Store>,
    grace: Duration,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = SystemTime::now();
        if let Err(e) = reap_once(store.as_ref(), grace, now).await {
            tracing::warn!(error = %e, "workload health sweep failed");
        }
        if let Err(e) = delete_retired(store.as_ref(), grace, retention, now).await {
            tracing::warn!(error = %e, "deleting retired workloads failed");
        }
    }
}

/// Deletes the workloads `Unhealthy` for longer than `retention` (disconnected for
/// longer than `grace + retention`); returns how many. A workload that reconnected in
/// the meantime is kept (the delete is conditional on the status read).
pub async fn delete_retired(
    store: &dyn Store,
    grace: Duration,
    retention: Duration,
    now: SystemTime,
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for (w, age) in in_phase(store, phase::UNHEALTHY, now).await? {
        // Unhealthy for `retention` after the grace period; unknown: kept.
        if age.is_none_or(|age| age < grace.saturating_add(retention)) {
            continue;
        }
        let Ok(key) = w.key() else { continue };
        let precondition = w
            .resource_version()
            .map_or(Precondition::None, Precondition::ResourceVersion);
        match store.delete(&key, precondition).await {
            Ok(_) => {
                tracing::info!(workload = %key, retention = %humantime::format_duration(retention), "deleted a workload unhealthy for longer than the retention");
                deleted += 1;
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The workloads in `phase`, each with how long before `now` its status' `since` is
/// (`None` if it has none readable).
async fn in_phase(
    store: &dyn Store,
    phase: &str,
    now: SystemTime,
) -> Result<Vec<(Object, Option<Duration>)>, StoreError> {
    let (workloads, _) = store.list(Some(Kind::Workload), None).await?;
    Ok(workloads
        .into_iter()
        .filter(|w| {
            w.status
                .as_ref()
                .is_some_and(|s| s["phase"] == json!(phase))
        })
        .map(|w| {
            let age = w
                .status
                .as_ref()
                .and_then(|s| s["since"].as_str())
                .and_then(|s| humantime::parse_rfc3339(s).ok())
                .map(|since| now.duration_since(since).unwrap_or_default());
            (w, age)
        })
        .collect())
}

/// One sweep of [`reap`]; returns how many workloads turned `Unhealthy`.
pub async fn reap_once(
    store: &dyn Store,
    grace: Duration,
    now: SystemTime,
) -> Result<usize, StoreError> {
    let mut reaped = 0;
    for (w, age) in in_phase(store, phase::DISCONNECTED, now).await? {
        // Within the grace period; unknown: expired.
        if age.is_some_and(|age| age < grace) {
            continue;
        }
        let Some(status) = &w.status else { continue };
        let Ok(key) = w.key() else { continue };
        let mut next = status.clone();
        next["phase"] = json!(phase::UNHEALTHY);
        next["reason"] = json!(format!(
            "its proxy has been disconnected for more than {}",
            humantime::format_duration(grace)
        ));
        let precondition = w
            .resource_version()
            .map_or(Precondition::None, Precondition::ResourceVersion);
        match store.put_status(&key, next, precondition).await {
            Ok(_) => {
                tracing::info!(workload = %key, "workload unhealthy: its proxy is gone");
                reaped += 1;
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(reaped)
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
