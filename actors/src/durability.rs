//! Group commit: "persisted before the answer goes out" at the cost of one fsync per batch,
//! not one per message.
//!
//! A writer first writes to the store, then awaits [`GroupCommit::durable`]. Its ticket
//! is taken *after* its write, so any flush that starts after the ticket covers it. One
//! flush runs at a time, on the blocking pool; everyone who arrived while it ran is covered
//! by the next one, which serves them all at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use tracing::Instrument as _;

use crate::store::{Store, StoreError};

pub struct GroupCommit {
    store: Arc<dyn Store>,
    /// Tickets handed out: writes that want to be durable.
    requested: AtomicU64,
    /// Every ticket up to this one is on disk.
    completed: watch::Sender<u64>,
    /// One flush at a time.
    flushing: Mutex<()>,
    /// Flushes done (`switchboard_store_flushes_total` counts every instance's).
    flushes: AtomicU64,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        GroupCommit {
            store,
            requested: AtomicU64::new(0),
            completed: watch::Sender::new(0),
            flushing: Mutex::new(()),
            flushes: AtomicU64::new(0),
        }
    }

    /// How many flushes this group commit has made.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Resolves once everything written before the call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        loop {
            if *self.completed.borrow() >= ticket {
                return Ok(());
            }
            let _turn = self.flushing.lock().await;
            if *self.completed.borrow() >= ticket {
                return Ok(());
            }
            // Everything requested so far was written before this load: one flush covers all.
            let covered = self.requested.load(Ordering::Acquire);
            let batch = covered.saturating_sub(*self.completed.borrow());
            self.store
                .flush()
                .instrument(tracing::info_span!("store.flush", batch))
                .await
                .inspect_err(|_| crate::metrics::store_error("flush"))?;
            self.completed
                .send_modify(|done| *done = (*done).max(covered));
            crate::metrics::FLUSHES.inc();
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[actix_web::test]
    async fn many_concurrent_writers_share_few_flushes() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().expect("store"));
        let commit = Arc::new(GroupCommit::new(store));
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let commit = commit.clone();
                actix_web::rt::spawn(async move { commit.durable().await })
            })
            .collect();
        for waiter in waiters {
            waiter.await.expect("joined").expect("durable");
        }
        // This instance's flushes: the process-wide metric also counts other tests' flushes.
        let flushes = commit.flushes();
        assert!(
            (1..64).contains(&flushes),
            "{flushes} flushes for 64 writers"
        );
        assert_eq!(*commit.completed.borrow(), 64);
    }
}
