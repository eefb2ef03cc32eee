//! An in-memory [`Store`] for API and CLI tests: the trait's semantics (revisions,
//! preconditions, unchanged writes, change log, live feed) without a database.
//! Shared by `weft-control/tests/api/` and `weft/tests/cli.rs` (through `#[path]`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::broadcast;
use weft_api::resource::{Key, Kind, Object};
use weft_control::store::{
    Change, ChangeOp, OperatorToken, Precondition, Revocation, Role, Store, StoreError, Written,
};

/// Creation timestamp given to every object (the store has no clock in tests).
pub(crate) const CREATED_AT: &str = "2025-01-01T00:00:00Z";

/// The store.
pub(crate) struct MemoryStore {
    state: Mutex<State>,
    feed: broadcast::Sender<Change>,
    unreachable: AtomicBool,
    write_failure: Mutex<Option<String>>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Object>,
    revision: u64,
    log: Vec<Change>,
    /// Changes at or before this revision have been dropped from the log.
    compacted: u64,
    /// Secrets by name (outside the revision counter and the log).
    secrets: BTreeMap<String, Vec<u8>>,
    /// Revoked token ids and until when.
    revoked: BTreeMap<String, SystemTime>,
    issued: BTreeMap<String, SystemTime>,
    /// Operator tokens, in creation order.
    operators: Vec<OperatorToken>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            feed: broadcast::channel(1024).0,
            unreachable: AtomicBool::new(false),
            write_failure: Mutex::new(None),
        }
    }
}

impl MemoryStore {
    /// Makes `ping` fail (or succeed again).
    pub(crate) fn set_unreachable(&self, unreachable: bool) {
        self.unreachable.store(unreachable, Ordering::SeqCst);
    }

    /// What `write_failure` answers (a store whose writes fail, e.g. on a full disk).
    pub(crate) fn set_write_failure(&self, failure: Option<&str>) {
        *self.write_failure.lock().unwrap() = failure.map(str::to_owned);
    }

    /// Drops every logged change up to the current revision.
    pub(crate) fn compact(&self) {
        let mut state = self.state.lock().unwrap();
        state.compacted = state.revision;
        state.log.clear();
    }

    fn record(&self, state: &mut State, op: ChangeOp, object: Object) {
        let change = Change {
            revision: state.revision,
            op,
            object,
        };
        state.log.push(change.clone());
        let _ = self.feed.send(change);
    }
}

fn check(
    key: &Key,
    current: Option<&Object>,
    precondition: Precondition,
) -> Result<(), StoreError> {
    let conflict = |message: String| StoreError::Conflict {
        key: key.clone(),
        message,
    };
    match (precondition, current) {
        (Precondition::Absent, Some(_)) => Err(conflict("already exists".to_owned())),
        (Precondition::None | Precondition::Absent, _) => Ok(()),
        (Precondition::ResourceVersion(_), None) => Err(StoreError::NotFound(key.clone())),
        (Precondition::ResourceVersion(want), Some(o)) => {
            let have = o.resource_version().unwrap_or_default();
            if have == want {
                Ok(())
            } else {
                Err(conflict(format!("resourceVersion is {have}, not {want}")))
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.unreachable.load(Ordering::SeqCst) {
            Err(StoreError::Corrupt {
                key: "ping".to_owned(),
                message: "store made unreachable by the test".to_owned(),
            })
        } else {
            Ok(())
        }
    }

    async fn write_failure(&self) -> Option<String> {
        self.write_failure.lock().unwrap().clone()
    }

    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        Ok(self.state.lock().unwrap().objects.get(key).cloned())
    }

    async fn list(
        &self,
        kind: Option<Kind>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        let state = self.state.lock().unwrap();
        let objects = state
            .objects
            .iter()
            .filter(|(k, _)| kind.is_none_or(|kind| k.kind == kind))
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, o)| o.clone())
            .collect();
        Ok((objects, state.revision))
    }

    async fn put_all(
        &self,
        writes: Vec<(Object, Precondition)>,
    ) -> Result<Vec<Written>, StoreError> {
        // All or nothing: put one by one, and restore the state on a failure.
        let before = {
            let state = self.state.lock().unwrap();
            (state.objects.clone(), state.revision, state.log.clone())
        };
        let mut written = Vec::with_capacity(writes.len());
        for (index, (object, precondition)) in writes.into_iter().enumerate() {
            match self.put(object, precondition).await {
                Ok(one) => written.push(one),
                Err(source) => {
                    let mut state = self.state.lock().unwrap();
                    (state.objects, state.revision, state.log) = before;
                    return Err(StoreError::InBatch {
                        index,
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(written)
    }

    async fn put(
        &self,
        mut object: Object,
        precondition: Precondition,
    ) -> Result<Written, StoreError> {
        let key = object.key().map_err(|e| StoreError::Corrupt {
            key: object.metadata.name.clone(),
            message: e.to_string(),
        })?;
        // As the real stores: a namespaced object stored without one is in `default`.
        object.metadata.namespace = (!key.namespace.is_empty()).then(|| key.namespace.clone());
        let mut state = self.state.lock().unwrap();
        let current = state.objects.get(&key).cloned();
        check(&key, current.as_ref(), precondition)?;
        if let Some(current) = &current {
            if current.spec == object.spec
                && current.metadata.labels == object.metadata.labels
                && current.metadata.annotations == object.metadata.annotations
                && current.api_version == object.api_version
            {
                return Ok(Written::Unchanged(current.clone()));
            }
        }
        state.revision += 1;
        let revision = state.revision;
        object.metadata.resource_version = Some(revision.to_string());
        if let Some(current) = &current {
            object.metadata.uid.clone_from(&current.metadata.uid);
            object
                .metadata
                .creation_timestamp
                .clone_from(&current.metadata.creation_timestamp);
            // As the real stores: only a spec, label or annotation change is a new
            // generation; an apiVersion-only change is configured, same generation.
            let configured = current.spec != object.spec
                || current.metadata.labels != object.metadata.labels
                || current.metadata.annotations != object.metadata.annotations;
            let generation = current.metadata.generation.unwrap_or(0);
            object.metadata.generation = Some(generation + i64::from(configured));
            object.status.clone_from(&current.status);
        } else {
            // Shaped like the real stores' version 4 UUIDs, unique per revision.
            object.metadata.uid = Some(format!("00000000-0000-4000-8000-{revision:012x}"));
            object.metadata.creation_timestamp = Some(CREATED_AT.to_owned());
            object.metadata.generation = Some(1);
            object.status = None;
        }
        state.objects.insert(key, object.clone());
        self.record(&mut state, ChangeOp::Put, object.clone());
        Ok(if current.is_some() {
            Written::Configured(object)
        } else {
            Written::Created(object)
        })
    }

    async fn put_status(
        &self,
        key: &Key,
        status: serde_json::Value,
        precondition: Precondition,
    ) -> Result<Option<Object>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let current = state.objects.get(key).cloned();
        check(key, current.as_ref(), precondition)?;
        let Some(mut object) = current else {
            return Err(StoreError::NotFound(key.clone()));
        };
        if object.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        state.revision += 1;
        object.metadata.resource_version = Some(state.revision.to_string());
        object.status = Some(status);
        state.objects.insert(key.clone(), object.clone());
        self.record(&mut state, ChangeOp::Put, object.clone());
        Ok(Some(object))
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<Object, StoreError> {
        let mut state = self.state.lock().unwrap();
        check(key, state.objects.get(key), precondition)?;
        let Some(object) = state.objects.remove(key) else {
            return Err(StoreError::NotFound(key.clone()));
        };
        state.revision += 1;
        self.record(&mut state, ChangeOp::Delete, object.clone());
        Ok(object)
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let state = self.state.lock().unwrap();
        if revision < state.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                oldest: state.compacted + 1,
            });
        }
        Ok(state
            .log
            .iter()
            .filter(|c| c.revision > revision)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.state.lock().unwrap().revision)
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.lock().unwrap().secrets.get(name).cloned())
    }

    async fn create_secret(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut state = self.state.lock().unwrap();
        Ok(state
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| value.to_vec())
            .clone())
    }

    async fn revoke_token(&self, id: &str, expires_at: SystemTime) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        let now = SystemTime::now();
        state.revoked.retain(|_, until| *until >= now);
        let until = state.revoked.entry(id.to_owned()).or_insert(expires_at);
        *until = (*until).max(expires_at);
        Ok(())
    }

    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.state.lock().unwrap().revoked.contains_key(id))
    }

    async fn revoked_tokens(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.state.lock().unwrap().revoked.keys().cloned().collect())
    }

    async fn record_issued_token(
        &self,
        id: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        let now = SystemTime::now();
        state.issued.retain(|_, until| *until >= now);
        let until = state.issued.entry(id.to_owned()).or_insert(expires_at);
        *until = (*until).max(expires_at);
        Ok(())
    }

    async fn token_issued(&self, id: &str) -> Result<bool, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .issued
            .get(id)
            .is_some_and(|until| *until >= SystemTime::now()))
    }

    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>, StoreError> {
        let mut tokens = self.state.lock().unwrap().operators.clone();
        tokens.sort_by(|a, b| (&a.name, a.created_at).cmp(&(&b.name, b.created_at)));
        Ok(tokens)
    }

    async fn create_operator_token(
        &self,
        token: &OperatorToken,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        let now = SystemTime::now();
        if state.operators.iter().any(|t| {
            t.name == token.name && t.revoked_at.is_none() && !t.is_expired(now) && !replace
        }) || state.operators.iter().any(|t| t.hash == token.hash)
        {
            return Ok(false);
        }
        for old in &mut state.operators {
            if old.name == token.name && old.revoked_at.is_none() {
                old.revoked_at = Some(now);
            }
        }
        state.operators.push(OperatorToken {
            revoked_at: None,
            ..token.clone()
        });
        Ok(true)
    }

    async fn revoke_operator_token(&self, name: &str) -> Result<Revocation, StoreError> {
        let mut state = self.state.lock().unwrap();
        let now = SystemTime::now();
        let Some(index) = state
            .operators
            .iter()
            .position(|t| t.name == name && t.revoked_at.is_none())
        else {
            return Ok(state
                .operators
                .iter()
                .filter(|t| t.name == name)
                .max_by_key(|t| t.revoked_at)
                .map_or(Revocation::Unknown, |t| {
                    Revocation::AlreadyRevoked(t.clone())
                }));
        };
        let token = &state.operators[index];
        let others = state
            .operators
            .iter()
            .filter(|t| t.role == Role::Admin && t.id != token.id && t.is_usable(now))
            .count();
        if token.role == Role::Admin && token.is_usable(now) && others == 0 {
            return Ok(Revocation::LastAdmin(token.clone()));
        }
        state.operators[index].revoked_at = Some(now);
        Ok(Revocation::Revoked(state.operators[index].clone()))
    }
}
