//! A [`Store`] that counts and times the writes of the store it wraps
//! (`weft_control_store_writes_total`, `weft_control_store_write_duration_seconds`).
//! Reads and the rest pass through untouched.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;
use weft_api::resource::{Key, Kind, Object};

use super::{
    Change, OperatorToken, Precondition, Revocation, Store, StoreError, WorkloadCounts, Written,
};
use crate::metrics::ControlMetrics;

/// `inner`, with its writes recorded in `metrics`.
pub struct Timed {
    inner: Arc<dyn Store>,
    metrics: Arc<ControlMetrics>,
}

impl Timed {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<ControlMetrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = write.await;
        self.metrics
            .store_write(op, result.is_ok(), started.elapsed());
        result
    }
}

#[async_trait]
impl Store for Timed {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn write_failure(&self) -> Option<String> {
        self.inner.write_failure().await
    }

    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        self.inner.get(key).await
    }

    async fn list(
        &self,
        kind: Option<Kind>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        self.inner.list(kind, namespace).await
    }

    async fn put(&self, object: Object, precondition: Precondition) -> Result<Written, StoreError> {
        self.timed("put", self.inner.put(object, precondition))
            .await
    }

    async fn put_all(
        &self,
        writes: Vec<(Object, Precondition)>,
    ) -> Result<Vec<Written>, StoreError> {
        self.timed("apply", self.inner.put_all(writes)).await
    }

    async fn put_status(
        &self,
        key: &Key,
        status: serde_json::Value,
        precondition: Precondition,
    ) -> Result<Option<Object>, StoreError> {
        self.timed("status", self.inner.put_status(key, status, precondition))
            .await
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<Object, StoreError> {
        self.timed("delete", self.inner.delete(key, precondition))
            .await
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.inner.changes_since(revision, limit).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.subscribe()
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision().await
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.secret(name).await
    }

    async fn create_secret(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.inner.create_secret(name, value).await
    }

    async fn revoke_token(&self, id: &str, expires_at: SystemTime) -> Result<(), StoreError> {
        self.inner.revoke_token(id, expires_at).await
    }

    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.is_revoked(id).await
    }

    async fn revoked_tokens(&self) -> Result<Vec<String>, StoreError> {
        self.inner.revoked_tokens().await
    }

    async fn record_issued_token(
        &self,
        id: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.inner.record_issued_token(id, expires_at).await
    }

    async fn token_issued(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.token_issued(id).await
    }

    async fn count_workloads(
        &self,
        namespace: &str,
        service_account: &str,
        token: Option<&str>,
    ) -> Result<WorkloadCounts, StoreError> {
        self.inner
            .count_workloads(namespace, service_account, token)
            .await
    }

    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>, StoreError> {
        self.inner.operator_tokens().await
    }

    async fn create_operator_token(
        &self,
        token: &OperatorToken,
        replace: bool,
    ) -> Result<bool, StoreError> {
        self.inner.create_operator_token(token, replace).await
    }

    async fn revoke_operator_token(&self, name: &str) -> Result<Revocation, StoreError> {
        self.inner.revoke_operator_token(name).await
    }
}
