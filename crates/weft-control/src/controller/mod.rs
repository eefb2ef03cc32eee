//! The control loop: keep an in-memory copy of every stored object in step with the
//! store's change feed, recompile after each burst of changes (debounced), publish the
//! result to the xDS server, and write back the statuses compilation derives (route
//! conditions, service endpoint counts).
//!
//! Every control-plane instance runs this loop on its own copy; they converge because
//! they read the same ordered change feed and compilation is deterministic. Status
//! writes are idempotent (equal statuses take no revision), so several instances
//! writing the same status is harmless.

pub mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use weft_api::resource::{Key, Kind, Object};
use weft_policy::Compiled;

use crate::store::{Change, ChangeOp, Precondition, Store, StoreError};

/// Every stored object, by key, at a store revision.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// The objects.
    pub by_key: BTreeMap<Key, Object>,
    /// The store revision they reflect.
    pub revision: u64,
}

/// Receives each compilation result.
pub trait Publish: Send + 'static {
    /// Called with the new result and the store revision it reflects.
    fn publish(&mut self, compiled: &Compiled, revision: u64);
}

impl<F: FnMut(&Compiled, u64) + Send + 'static> Publish for F {
    fn publish(&mut self, compiled: &Compiled, revision: u64) {
        self(compiled, revision);
    }
}

/// Runs until `shutdown`: follows the store, compiles after each burst of changes
/// (waiting `debounce` after the first to collect the rest), publishes, and writes
/// derived statuses.
pub async fn run(
    store: Arc<dyn Store>,
    debounce: Duration,
    mut publish: impl Publish,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let mut feed = store.subscribe();
    let mut objects = relist(store.as_ref()).await?;
    loop {
        let started = std::time::Instant::now();
        let mut compiled = weft_policy::compile(objects.by_key.values());
        let now = unix_now();
        for (key, object) in objects.by_key.range(secrets()) {
            if let Some(status) = weft_policy::secret_status(object, now) {
                compiled.statuses.insert(key.clone(), status);
            }
        }
        publish.publish(&compiled, objects.revision);
        tracing::debug!(
            revision = objects.revision,
            services = compiled.services.len(),
            route_tables = compiled.route_tables.len(),
            took = ?started.elapsed(),
            "compiled"
        );
        write_statuses(store.as_ref(), &objects, &compiled).await;

        // Wait for a change that matters (or a certificate's validity to start or
        // end, which changes its Secret's status), then collect the burst.
        let turn = next_validity_change(&objects, unix_now());
        loop {
            let dirty = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(turn) => true,
                next = feed.recv() => receive(store.as_ref(), &mut objects, next).await?,
            };
            if dirty {
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + debounce;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(deadline) => break,
                next = feed.recv() => { receive(store.as_ref(), &mut objects, next).await?; }
            }
        }
    }
}

/// The range of keys that are Secrets.
fn secrets() -> std::ops::RangeInclusive<Key> {
    let at = |namespace: &str| Key {
        kind: Kind::Secret,
        namespace: namespace.to_owned(),
        name: String::new(),
    };
    at("")..=Key {
        name: char::MAX.to_string(),
        ..at(&char::MAX.to_string())
    }
}

/// Seconds since the epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How long until some Secret's certificate becomes valid or expires (at most an
/// hour, so a clock step is caught up with).
fn next_validity_change(objects: &Objects, now: i64) -> Duration {
    const MOST: i64 = 3600;
    let next = objects
        .by_key
        .range(secrets())
        .filter_map(|(_, o)| {
            let cert = o.spec.get("certificate")?;
            Some([
                cert.get("notBefore")?.as_i64()?,
                cert.get("notAfter")?.as_i64()?,
            ])
        })
        .flatten()
        .filter(|&t| t >= now)
        .map(|t| t - now + 1)
        .min()
        .unwrap_or(MOST)
        .clamp(1, MOST);
    Duration::from_secs(u64::try_from(next).unwrap_or(1))
}

/// The copy keeps no sealed Secret material: compilation, statuses and anything else
/// reading the copy see a Secret's description only.
fn without_material(mut object: Object) -> Object {
    weft_api::resource::secret::redact(&mut object);
    object
}

/// Reads every object afresh.
async fn relist(store: &dyn Store) -> Result<Objects, StoreError> {
    let (list, revision) = store.list(None, None).await?;
    let by_key = list
        .into_iter()
        .map(without_material)
        .filter_map(|o| Some((o.key().ok()?, o)))
        .collect();
    Ok(Objects { by_key, revision })
}

/// Applies one feed item (catching up from the log if the receiver lagged, re-listing
/// if the log was compacted past us). Returns whether compilation inputs changed.
async fn receive(
    store: &dyn Store,
    objects: &mut Objects,
    next: Result<Change, RecvError>,
) -> Result<bool, StoreError> {
    match next {
        Ok(change) => Ok(apply(objects, change)),
        Err(RecvError::Lagged(missed)) => {
            tracing::warn!(missed, "change feed lagged; catching up from the log");
            catch_up(store, objects).await
        }
        Err(RecvError::Closed) => Err(StoreError::Corrupt {
            key: "change feed".into(),
            message: "the store's change feed closed".into(),
        }),
    }
}

async fn catch_up(store: &dyn Store, objects: &mut Objects) -> Result<bool, StoreError> {
    let mut dirty = false;
    loop {
        match store.changes_since(objects.revision, 1000).await {
            Ok(changes) if changes.is_empty() => return Ok(dirty),
            Ok(changes) => {
                for change in changes {
                    dirty |= apply(objects, change);
                }
            }
            Err(StoreError::Compacted { .. }) => {
                *objects = relist(store).await?;
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Applies a change to the copy. Status-only changes to kinds whose status does not
/// feed compilation (everything but `Workload`, and `Mesh`, whose `status.ca` is the
/// trust bundle) do not make the copy dirty.
fn apply(objects: &mut Objects, change: Change) -> bool {
    if change.revision <= objects.revision {
        return false;
    }
    let change = Change {
        object: without_material(change.object),
        ..change
    };
    objects.revision = change.revision;
    let Ok(key) = change.object.key() else {
        return false;
    };
    match change.op {
        ChangeOp::Delete => objects.by_key.remove(&key).is_some(),
        ChangeOp::Put => {
            let dirty = match objects.by_key.get(&key) {
                Some(old) => {
                    key.kind == Kind::Workload
                        || (key.kind == Kind::Mesh && old.status != change.object.status)
                        || old.spec != change.object.spec
                        || old.metadata.labels != change.object.metadata.labels
                        || old.metadata.generation != change.object.metadata.generation
                }
                None => true,
            };
            objects.by_key.insert(key, change.object);
            dirty
        }
    }
}

/// Writes the statuses compilation derived, where they differ from what is stored.
async fn write_statuses(store: &dyn Store, objects: &Objects, compiled: &Compiled) {
    for (key, status) in &compiled.statuses {
        let Some(current) = objects.by_key.get(key) else {
            continue;
        };
        if current.status.as_ref() == Some(status) {
            continue;
        }
        match store
            .put_status(key, status.clone(), Precondition::None)
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => tracing::warn!(%key, error = %e, "could not write status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::resource::ObjectMeta;

    fn object(kind: Kind, name: &str, spec: serde_json::Value) -> Object {
        Object {
            api_version: kind.api_version().into(),
            kind: kind.as_str().into(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    fn change(revision: u64, op: ChangeOp, object: Object) -> Change {
        Change {
            revision,
            op,
            object,
        }
    }

    #[test]
    fn changes_older_than_the_copy_are_ignored() {
        let mut objects = Objects {
            revision: 10,
            ..Objects::default()
        };
        let svc = object(Kind::Service, "web", serde_json::json!({"ports": []}));
        assert!(!apply(&mut objects, change(9, ChangeOp::Put, svc.clone())));
        assert!(objects.by_key.is_empty());
        assert!(apply(&mut objects, change(11, ChangeOp::Put, svc)));
        assert_eq!(objects.revision, 11);
        assert_eq!(objects.by_key.len(), 1);
    }

    #[test]
    fn a_route_status_write_does_not_trigger_a_recompile_but_a_workload_status_does() {
        let mut objects = Objects::default();
        let route = object(Kind::HttpRoute, "r", serde_json::json!({"rules": []}));
        assert!(apply(&mut objects, change(1, ChangeOp::Put, route.clone())));
        let mut with_status = route;
        with_status.status = Some(serde_json::json!({"parents": []}));
        assert!(!apply(&mut objects, change(2, ChangeOp::Put, with_status)));

        let wl = object(
            Kind::Workload,
            "w",
            serde_json::json!({"address": "10.0.0.1"}),
        );
        assert!(apply(&mut objects, change(3, ChangeOp::Put, wl.clone())));
        let mut healthy = wl;
        healthy.status = Some(serde_json::json!({"phase": "Healthy"}));
        assert!(apply(&mut objects, change(4, ChangeOp::Put, healthy)));
    }

    #[test]
    fn a_mesh_ca_status_write_triggers_a_recompile_as_it_is_the_trust_bundle() {
        let mut objects = Objects::default();
        let mesh = object(Kind::Mesh, "default", serde_json::json!({}));
        assert!(apply(&mut objects, change(1, ChangeOp::Put, mesh.clone())));
        let mut rotating = mesh;
        rotating.status = Some(serde_json::json!({"ca": {"phase": "Distributing"}}));
        assert!(apply(
            &mut objects,
            change(2, ChangeOp::Put, rotating.clone())
        ));
        assert!(
            !apply(&mut objects, change(3, ChangeOp::Put, rotating)),
            "the same status again changes nothing"
        );
    }

    #[test]
    fn a_delete_removes_the_object() {
        let mut objects = Objects::default();
        let svc = object(Kind::Service, "web", serde_json::json!({}));
        apply(&mut objects, change(1, ChangeOp::Put, svc.clone()));
        assert!(apply(&mut objects, change(2, ChangeOp::Delete, svc)));
        assert!(objects.by_key.is_empty());
    }
}
