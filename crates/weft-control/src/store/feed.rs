//! The change feed behind [`Store::subscribe`](super::Store::subscribe): one publisher
//! task per store instance that, when poked (after a local commit, on a PostgreSQL
//! notification) or on a periodic tick, reads the change log from the last revision it
//! published and broadcasts what it finds.
//!
//! Reading the log, rather than publishing from the writing task, is what keeps the
//! feed in revision order when writers race, and what makes a missed notification cost
//! a re-read instead of a lost change. The same task also compacts the log by age.
//!
//! The task stops when the [`Feed`] is dropped (with the store).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Change, Options, StoreError};

/// How many changes one read of the log returns.
const PAGE: u32 = 512;

/// Where the publisher reads changes from; implemented by each backend's pool handle.
pub(super) trait ChangeLog: Send + Sync + 'static {
    /// Changes after `revision`, oldest first (as `Store::changes_since`).
    fn read(
        &self,
        revision: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// Removes changes recorded longer than `max_age` ago.
    fn compact_older_than(
        &self,
        max_age: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The publishing half of a store: a broadcast sender, a way to wake the publisher,
/// and the guard that stops it.
pub(super) struct Feed {
    sender: broadcast::Sender<Change>,
    poke: Arc<Notify>,
    cancel: CancellationToken,
    _stop: DropGuard,
}

// === impl Feed ===

impl Feed {
    /// Starts the publisher, which will publish changes after revision `start`.
    pub(super) fn spawn<L: ChangeLog>(log: L, start: u64, options: &Options) -> Self {
        let (sender, _) = broadcast::channel(options.feed_capacity.max(1));
        let poke = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let publisher = Publisher {
            log,
            last: start,
            sender: sender.clone(),
            poke: poke.clone(),
            cancel: cancel.clone(),
        };
        tokio::spawn(publisher.run(options.poll_interval, options.retention.clone()));
        Self {
            sender,
            poke,
            _stop: cancel.clone().drop_guard(),
            cancel,
        }
    }

    /// Wakes the publisher (after a commit, or a notification from another instance).
    pub(super) fn poke(&self) {
        self.poke.notify_one();
    }

    /// The publisher's wake-up, for tasks that poke it from elsewhere.
    pub(super) fn poker(&self) -> Arc<Notify> {
        self.poke.clone()
    }

    /// Cancelled when the feed (and so the store) is dropped; for companion tasks.
    pub(super) fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// A new receiver of changes published from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

struct Publisher<L> {
    log: L,
    last: u64,
    sender: broadcast::Sender<Change>,
    poke: Arc<Notify>,
    cancel: CancellationToken,
}

impl<L: ChangeLog> Publisher<L> {
    async fn run(mut self, poll: Duration, retention: super::Retention) {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut compaction = tokio::time::interval(retention.interval);
        compaction.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                () = self.poke.notified() => {}
                _ = tick.tick() => {}
                _ = compaction.tick() => {
                    let compacted = tokio::select! {
                        () = self.cancel.cancelled() => return,
                        result = self.log.compact_older_than(retention.max_age) => result,
                    };
                    if let Err(error) = compacted {
                        tracing::warn!(%error, "compacting the store's change log failed");
                    }
                }
            }
            if self.publish_pending().await.is_err() {
                return;
            }
        }
    }

    /// Publishes everything after `last`. `Err` only when cancelled.
    async fn publish_pending(&mut self) -> Result<(), ()> {
        loop {
            let read = tokio::select! {
                () = self.cancel.cancelled() => return Err(()),
                read = self.log.read(self.last, PAGE) => read,
            };
            match read {
                Ok(changes) => {
                    let full = changes.len() >= PAGE as usize;
                    for change in changes {
                        self.last = change.revision;
                        // No receivers is fine: nobody is watching yet.
                        let _ = self.sender.send(change);
                    }
                    if !full {
                        return Ok(());
                    }
                }
                Err(StoreError::Compacted { requested, oldest }) => {
                    // Only when this instance fell behind by more than the log keeps.
                    // Subscribers miss those changes; the API's watchers detect the gap
                    // in revisions and re-list.
                    tracing::error!(
                        requested,
                        oldest,
                        "the change feed fell behind the compacted log; skipping ahead"
                    );
                    self.last = oldest.saturating_sub(1);
                }
                Err(error) => {
                    tracing::warn!(%error, after = self.last, "reading the change log failed; will retry");
                    return Ok(());
                }
            }
        }
    }
}
