//! `?watch=true`: a list that stays open and streams changes as NDJSON, one
//! `{"type":"ADDED"|"MODIFIED"|"DELETED","object":{…}}` per line.
//!
//! Without `resourceVersion` the stream opens with an `ADDED` event per existing object,
//! then follows changes. With `resourceVersion=N` it replays the change log after `N`,
//! then follows. The live feed is subscribed before anything is read, and every gap (a
//! lagging receiver) is filled from [`Store::changes_since`], so no change is lost.
//! When the log no longer reaches back far enough, the stream sends one
//! `{"type":"ERROR","object":{"code":410,…}}` and ends: the client re-lists.
//!
//! `ADDED` versus `MODIFIED`: the change feed does not say whether a put created the
//! object, so the watcher tracks which keys it has reported. A key it has not seen is
//! `ADDED` when the watch started from a full list, and on a resumed watch when the
//! object is at its first generation. An object that stops matching the label
//! selector is reported `DELETED`, as Kubernetes does.
//!
//! With `timeoutSeconds=N` the stream ends after `N` seconds, whatever it is doing
//! (Kubernetes' meaning); without it, it lasts until the client goes away.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use weft_api::resource::{Key, Kind, Object};

use super::error::Error;
use super::selector::Selector;
use crate::store::{Change, ChangeOp, Store, StoreError};

/// How many changes one catch-up read asks for.
const PAGE: u32 = 500;

/// Events buffered for a slow client before the watcher waits.
const BUFFER: usize = 64;

/// Which objects a list or watch returns.
pub(super) struct Filter {
    pub(super) kind: Kind,
    /// `None`: all namespaces.
    pub(super) namespace: Option<String>,
    pub(super) selector: Selector,
}

impl Filter {
    /// Whether `object` is of the kind, in the namespace and matches the selector.
    pub(super) fn matches(&self, object: &Object) -> bool {
        matches!(object.kind(), Ok(kind) if kind == self.kind)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object.namespace() == ns)
            && self.selector.matches(&object.metadata.labels)
    }
}

/// Starts a watch and returns its streaming response; it ends after `timeout` if given.
pub(super) fn respond(
    store: Arc<dyn Store>,
    filter: Filter,
    start: Option<u64>,
    timeout: Option<Duration>,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(BUFFER);
    tokio::spawn(async move {
        let mut watcher = Watcher {
            store,
            filter,
            tx,
            seen: HashSet::new(),
            listed: start.is_none(),
        };
        let ran = match timeout {
            None => watcher.run(start).await,
            // Ending the task drops the sender, which ends the response body.
            Some(timeout) => tokio::time::timeout(timeout, watcher.run(start))
                .await
                .unwrap_or(Ok(())),
        };
        if let Err(WatchEnd::Store(error)) = ran {
            let error = Error::from(error).to_json();
            let event = serde_json::json!({"type": "ERROR", "object": error["error"]});
            let _ = watcher.tx.send(line(&event)).await;
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|item| item.map(Ok::<_, Infallible>))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Why a watch stopped.
enum WatchEnd {
    /// The client went away.
    Closed,
    /// The store failed; the client gets an `ERROR` event.
    Store(StoreError),
}

impl From<StoreError> for WatchEnd {
    fn from(error: StoreError) -> Self {
        WatchEnd::Store(error)
    }
}

struct Watcher {
    store: Arc<dyn Store>,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    /// Keys reported and not deleted since.
    seen: HashSet<Key>,
    /// Whether the watch began with a full list (so every unseen key is new).
    listed: bool,
}

impl Watcher {
    async fn run(&mut self, start: Option<u64>) -> Result<(), WatchEnd> {
        let mut feed = self.store.subscribe();
        let mut last = match start {
            Some(revision) => revision,
            None => self.initial_list().await?,
        };
        last = self.catch_up(last).await?;
        loop {
            tokio::select! {
                () = self.tx.closed() => return Err(WatchEnd::Closed),
                received = feed.recv() => match received {
                    Ok(change) if change.revision <= last => {}
                    Ok(change) => {
                        last = change.revision;
                        self.emit(&change).await?;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        last = self.catch_up(last).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }

    /// Sends `ADDED` for every matching object; returns the list's revision.
    async fn initial_list(&mut self) -> Result<u64, WatchEnd> {
        let (objects, revision) = self
            .store
            .list(Some(self.filter.kind), self.filter.namespace.as_deref())
            .await?;
        for object in objects.into_iter().filter(|o| self.filter.matches(o)) {
            if let Ok(key) = object.key() {
                self.seen.insert(key);
            }
            self.send("ADDED", &object).await?;
        }
        Ok(revision)
    }

    /// Emits every logged change after `last`; returns the last revision read.
    async fn catch_up(&mut self, mut last: u64) -> Result<u64, WatchEnd> {
        loop {
            let changes = self.store.changes_since(last, PAGE).await?;
            let done = changes.len() < PAGE as usize;
            for change in &changes {
                last = last.max(change.revision);
                self.emit(change).await?;
            }
            if done {
                return Ok(last);
            }
        }
    }

    async fn emit(&mut self, change: &Change) -> Result<(), WatchEnd> {
        let object = &change.object;
        let Ok(key) = object.key() else {
            return Ok(());
        };
        if key.kind != self.filter.kind {
            return Ok(());
        }
        let matches = self.filter.matches(object);
        let was_seen = self.seen.contains(&key);
        let kind = match change.op {
            ChangeOp::Delete if was_seen || matches => {
                self.seen.remove(&key);
                "DELETED"
            }
            ChangeOp::Put if matches => {
                let new = !was_seen && (self.listed || object.metadata.generation <= Some(1));
                self.seen.insert(key);
                if new {
                    "ADDED"
                } else {
                    "MODIFIED"
                }
            }
            // No longer selected: gone, from this watch's point of view.
            ChangeOp::Put if was_seen => {
                self.seen.remove(&key);
                "DELETED"
            }
            ChangeOp::Put | ChangeOp::Delete => return Ok(()),
        };
        self.send(kind, object).await
    }

    async fn send(&self, kind: &str, object: &Object) -> Result<(), WatchEnd> {
        let mut object = object.clone();
        weft_api::resource::secret::redact(&mut object);
        let event = serde_json::json!({"type": kind, "object": object});
        self.tx
            .send(line(&event))
            .await
            .map_err(|_| WatchEnd::Closed)
    }
}

fn line(event: &serde_json::Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}
