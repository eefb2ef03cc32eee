//! CA rotation: moving the mesh to a new CA (a new builtin generation, builtin ↔
//! provided, or another provided CA) without a failed request.
//!
//! The state lives in `Mesh.status.ca` ([`CaStatus`]), so every instance on a shared
//! store follows the same rotation; each step is a compare-and-swap on the Mesh's
//! resource version, so only one instance takes it. Every proxy learns the state from
//! the `TrustBundle` resource compiled from that status.
//!
//! ```text
//! Ready(old)  ── spec.ca names another CA ──►  Distributing: roots old+new, old signs
//!     every connected proxy has ACKed that bundle (workload status.trustBundle)
//!             ──►  Reissuing: roots old+new, new signs; proxies with an old leaf renew
//!     every connected proxy with an issued certificate holds one from the new CA
//!     (workload status.certificate.signer)  ──►  Ready(new): new root only
//! ```
//!
//! Each phase also lasts at least `min_dwell`. Established HBONE connections are never
//! re-verified, so they survive every step; new handshakes always find a common root.

use std::time::{Duration, SystemTime};

use prost::Message;
use weft_api::resource::mesh::{self, CaPhase, CaStatus};
use weft_api::resource::{Kind, Object, ObjectMeta};
use weft_tls::bundle::TrustBundle;
use weft_tls::ca::Authority;

use super::{
    authority_for, builtin_authority, mesh_key, parse_spec, provided_authority, root_of, Error,
    MeshCa, Source,
};
use crate::controller::registry::phase;
use crate::store::{Precondition, Store, StoreError};

/// How often the rotation state is checked.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time a rotation phase lasts.
pub const MIN_DWELL: Duration = Duration::from_secs(2);

/// The stable name of a CA in `Mesh.status.ca`: `builtin:<generation>` or
/// `provided:<signer id>`.
pub fn source_key(source: &Source, authority: &Authority) -> String {
    match source {
        Source::Builtin { generation } => format!("builtin:{generation}"),
        Source::Provided { .. } => format!("provided:{}", authority.signer_id()),
    }
}

/// Loads the CA a status names as signer: a builtin generation from the store, or the
/// provided CA of the current spec if it is that one.
pub async fn load_signer(
    store: &dyn Store,
    spec: &mesh::Spec,
    status: &CaStatus,
) -> Result<(Authority, Source), Error> {
    load(store, spec, &status.signer).await
}

async fn load(
    store: &dyn Store,
    spec: &mesh::Spec,
    key: &str,
) -> Result<(Authority, Source), Error> {
    if let Some(generation) = key.strip_prefix("builtin:") {
        let generation: u32 = generation.parse().map_err(|_| Error::StoredUnreadable {
            detail: format!("Mesh.status.ca names {key:?}, not a builtin generation"),
        })?;
        let authority = builtin_authority(store, &spec.trust_domain, generation).await?;
        return Ok((authority, Source::Builtin { generation }));
    }
    if let Some(files) = &spec.ca.provided {
        let (authority, source) = provided_authority(files, &spec.trust_domain)?;
        if source_key(&source, &authority) == key {
            return Ok((authority, source));
        }
    }
    Err(Error::StoredUnreadable {
        detail: format!(
            "Mesh.status.ca names the CA {key:?}, which Mesh.spec.ca no longer provides"
        ),
    })
}

/// The trust bundle a status publishes.
pub fn bundle_of(status: &CaStatus) -> Result<TrustBundle, Error> {
    Ok(TrustBundle::from_pem(&status.roots.concat())?)
}

/// The xDS version of the `TrustBundle` a status publishes (what proxies ACK).
pub fn bundle_version(status: &CaStatus) -> String {
    crate::xds::content_version(&status.trust_bundle().encode_to_vec())
}

/// Runs the rotation until `shutdown`.
pub async fn run(
    store: &dyn Store,
    ca: &MeshCa,
    interval: Duration,
    min_dwell: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Err(e) = step(store, ca, min_dwell, SystemTime::now()).await {
            tracing::warn!(error = %e, "CA rotation step failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One look at the state: takes the next step if it is due, then makes this instance's
/// CA follow the status.
pub async fn step(
    store: &dyn Store,
    ca: &MeshCa,
    min_dwell: Duration,
    now: SystemTime,
) -> Result<(), Error> {
    let Some(object) = store.get(&mesh_key()).await? else {
        // The Mesh holds the CA state, so there must be one.
        let mesh = Object {
            api_version: "weft.dev/v1alpha1".into(),
            kind: "Mesh".into(),
            metadata: ObjectMeta {
                name: mesh::MESH_NAME.into(),
                ..ObjectMeta::default()
            },
            spec: serde_json::json!({}),
            status: None,
        };
        match store.put(mesh, Precondition::Absent).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(());
    };
    let spec = parse_spec(&object.spec)?;
    let version = object
        .resource_version()
        .map_or(Precondition::None, Precondition::ResourceVersion);
    let current = CaStatus::of(object.status.as_ref());
    let next = match &current {
        None => Some(initial(ca, now)?),
        Some(status) => advance(store, &spec, status, min_dwell, now).await?,
    };
    let in_force = match next {
        Some(next) => {
            let mut full = object
                .status
                .clone()
                .unwrap_or_else(|| serde_json::json!({}));
            full["ca"] = serde_json::to_value(&next).map_err(|e| Error::StoredUnreadable {
                detail: e.to_string(),
            })?;
            match store.put_status(&mesh_key(), full, version).await {
                Ok(_) => {
                    tracing::info!(phase = ?next.phase, signer = %next.signer, next = ?next.next, roots = next.roots.len(), "CA rotation: {}", describe(&next));
                    next
                }
                // Another instance moved first; follow it next time.
                Err(StoreError::Conflict { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        None => match current {
            Some(status) => status,
            None => return Ok(()),
        },
    };
    follow(store, ca, &spec, &in_force).await
}

fn describe(status: &CaStatus) -> &'static str {
    match status.phase {
        CaPhase::Ready => "one CA signs and is trusted",
        CaPhase::Distributing => "publishing both roots; the old CA still signs",
        CaPhase::Reissuing => "the new CA signs; proxies renew their certificates",
    }
}

/// The first status: the CA this instance started with.
fn initial(ca: &MeshCa, now: SystemTime) -> Result<CaStatus, Error> {
    let active = ca.active();
    Ok(CaStatus {
        phase: CaPhase::Ready,
        signer: source_key(&active.source, &active.authority),
        signer_id: active.authority.signer_id(),
        next: None,
        previous: None,
        roots: vec![pem(&root_of(&active.authority)?)],
        since: timestamp(now),
        message: None,
    })
}

/// The next status, if a step is due.
async fn advance(
    store: &dyn Store,
    spec: &mesh::Spec,
    status: &CaStatus,
    min_dwell: Duration,
    now: SystemTime,
) -> Result<Option<CaStatus>, Error> {
    let (desired, desired_source) = match authority_for(store, spec).await {
        Ok(found) => found,
        Err(e) => {
            // The spec names a CA that cannot be loaded: keep the one in force, say why.
            let message = format!("Mesh.spec.ca cannot be used: {e}");
            return Ok(
                (status.message.as_deref() != Some(message.as_str())).then(|| CaStatus {
                    message: Some(message),
                    ..status.clone()
                }),
            );
        }
    };
    let desired_key = source_key(&desired_source, &desired);
    let dwelt = humantime::parse_rfc3339(&status.since)
        .ok()
        .and_then(|since| now.duration_since(since).ok())
        .is_some_and(|d| d >= min_dwell);
    let next = match status.phase {
        CaPhase::Ready if desired_key == status.signer => {
            return Ok(status.message.is_some().then(|| CaStatus {
                message: None,
                ..status.clone()
            }))
        }
        CaPhase::Ready => CaStatus {
            phase: CaPhase::Distributing,
            next: Some(desired_key),
            previous: None,
            roots: union(&status.roots, &pem(&root_of(&desired)?)),
            since: timestamp(now),
            message: Some("waiting for every connected proxy to hold both roots".into()),
            ..status.clone()
        },
        CaPhase::Distributing if desired_key == status.signer => {
            // Changed back before anything was reissued: the old CA never stopped signing.
            let (signer, _) = load(store, spec, &status.signer).await?;
            CaStatus {
                phase: CaPhase::Ready,
                next: None,
                roots: vec![pem(&root_of(&signer)?)],
                since: timestamp(now),
                message: None,
                ..status.clone()
            }
        }
        CaPhase::Distributing if status.next.as_deref() != Some(desired_key.as_str()) => {
            let (signer, _) = load(store, spec, &status.signer).await?;
            CaStatus {
                next: Some(desired_key),
                roots: union(&[pem(&root_of(&signer)?)], &pem(&root_of(&desired)?)),
                since: timestamp(now),
                ..status.clone()
            }
        }
        CaPhase::Distributing => {
            let lagging = lagging(
                store,
                |w| w["trustBundle"].as_str() != Some(bundle_version(status).as_str()),
                false,
            )
            .await?;
            if !dwelt || !lagging.is_empty() {
                return Ok(waiting(status, "hold both roots", &lagging));
            }
            CaStatus {
                phase: CaPhase::Reissuing,
                signer: desired_key,
                signer_id: desired.signer_id(),
                next: None,
                previous: Some(status.signer.clone()),
                since: timestamp(now),
                message: Some("waiting for every connected proxy to renew its certificate".into()),
                ..status.clone()
            }
        }
        CaPhase::Reissuing => {
            if desired_key != status.signer {
                return Ok(waiting(
                    status,
                    "renew its certificate (Mesh.spec.ca changed again: that change starts once this rotation ends)",
                    &[],
                ));
            }
            let lagging = lagging(
                store,
                |w| {
                    w["certificate"]["signer"].as_str() != Some(status.signer_id.as_str())
                        || w["trustBundle"].as_str() != Some(bundle_version(status).as_str())
                },
                true,
            )
            .await?;
            if !dwelt || !lagging.is_empty() {
                return Ok(waiting(status, "renew its certificate", &lagging));
            }
            CaStatus {
                phase: CaPhase::Ready,
                previous: None,
                roots: vec![pem(&root_of(&desired)?)],
                since: timestamp(now),
                message: None,
                ..status.clone()
            }
        }
    };
    Ok(Some(next))
}

/// The status with a message naming what the phase waits for, if it changed.
fn waiting(status: &CaStatus, what: &str, lagging: &[String]) -> Option<CaStatus> {
    let message = if lagging.is_empty() {
        format!("waiting for every connected proxy to {what}")
    } else {
        let shown: Vec<&str> = lagging.iter().take(5).map(String::as_str).collect();
        format!(
            "waiting for {} connected proxies to {what}: {}{}",
            lagging.len(),
            shown.join(", "),
            if lagging.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        )
    };
    (status.message.as_deref() != Some(message.as_str())).then(|| CaStatus {
        message: Some(message),
        ..status.clone()
    })
}

/// Connected workloads (`Healthy`; with `issued_only`, only those whose certificate
/// comes from the control plane) whose status `behind` says are not there yet, as
/// `namespace/name`.
async fn lagging(
    store: &dyn Store,
    behind: impl Fn(&serde_json::Value) -> bool,
    issued_only: bool,
) -> Result<Vec<String>, Error> {
    let (workloads, _) = store.list(Some(Kind::Workload), None).await?;
    Ok(workloads
        .iter()
        .filter_map(|w| {
            let status = w.status.as_ref()?;
            let connected = status["phase"].as_str() == Some(phase::HEALTHY);
            let counted = !issued_only || status["issuedCertificate"].as_bool() == Some(true);
            (connected && counted && behind(status))
                .then(|| format!("{}/{}", w.namespace(), w.metadata.name))
        })
        .collect())
}

/// Makes this instance sign with the status's signer and trust its roots.
async fn follow(
    store: &dyn Store,
    ca: &MeshCa,
    spec: &mesh::Spec,
    status: &CaStatus,
) -> Result<(), Error> {
    let active = ca.active();
    let bundle = bundle_of(status)?;
    let same_signer = active.authority.signer_id() == status.signer_id;
    if same_signer && active.bundle == bundle {
        return Ok(());
    }
    let (authority, source) = if same_signer {
        (active.authority.clone(), active.source.clone())
    } else {
        let (authority, source) = load(store, spec, &status.signer).await?;
        (std::sync::Arc::new(authority), source)
    };
    tracing::info!(signer = %status.signer, roots = bundle.len(), "mesh CA follows Mesh.status.ca");
    ca.set(authority, source, bundle);
    Ok(())
}

fn union(roots: &[String], extra: &str) -> Vec<String> {
    let mut all = roots.to_vec();
    if !all.iter().any(|r| r == extra) {
        all.push(extra.to_owned());
    }
    all
}

fn pem(der: &[u8]) -> String {
    weft_tls::bundle::certificates_pem(&[der.to_vec()])
}

fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}
