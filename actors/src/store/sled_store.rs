//! [`Store`] on an embedded sled database: the default, one node, nothing to install.
//!
//! Trees and keys:
//!
//! | tree | key | value |
//! |---|---|---|
//! | `calls` | call sid | [`CallRecord`] |
//! | `calls_by_start` | started_at_ms (u64 BE) ‖ call sid | empty: time-ordered index for recent calls and pruning |
//! | `escalated` | call sid | empty |
//! | `customers` | customer id | [`CustomerRecord`] |
//! | `turns` | id length (u16 BE) ‖ customer id ‖ sequence (u64 BE) | [`Turn`] |
//! | `bookings` | slot id | [`Booking`] |
//! | `catalog` | `current` | the [`Catalog`], written at first start |
//! | `seen_messages` | Twilio `MessageSid` | first-seen ms (u64 BE): each message is processed once |
//! | `scheduled_calls` | call back id | [`ScheduledCall`]: claimed and settled by compare-and-swap |
//!
//! Big-endian integers make byte order equal numeric order, so scans come out
//! sorted; the length prefix keeps one customer's prefix from matching another's.

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::{IVec, Tree};

use async_trait::async_trait;

use super::{
    CallStore, CatalogStore, CustomerStore, DedupeStore, ScheduleStore, Store, StoreError,
    ThreadStore,
};
use crate::domain::bookings::{
    BookOutcome, Booking, BookingStore, BookingStoreError, CancelOutcome,
};
use crate::domain::catalog::Catalog;
use crate::domain::outreach::{PlacingOutcome, ScheduleState, ScheduledCall};
use crate::domain::records::{CallRecord, CustomerChange, CustomerRecord, RecordingEntry};
use crate::domain::transcript::Turn;

const CALLS: &str = "calls";
const CALLS_BY_START: &str = "calls_by_start";
const ESCALATED: &str = "escalated";
const CUSTOMERS: &str = "customers";
const TURNS: &str = "turns";
const BOOKINGS: &str = "bookings";
const SEEN_MESSAGES: &str = "seen_messages";
const CATALOG: &str = "catalog";
const SCHEDULED_CALLS: &str = "scheduled_calls";
/// The one key of the `catalog` tree.
const CATALOG_KEY: &str = "current";

/// Compare-and-swap retries before a read-modify-write gives up: contention on
/// one customer or slot is a handful of writers at most.
const CAS_ATTEMPTS: usize = 32;

pub struct SledStore {
    db: sled::Db,
    calls: Tree,
    calls_by_start: Tree,
    escalated: Tree,
    customers: Tree,
    turns: Tree,
    bookings: Tree,
    seen_messages: Tree,
    catalog: Tree,
    scheduled_calls: Tree,
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, after checking that the
    /// directory is writable so a bad data dir stops start-up with its path.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let not_writable = |source| StoreError::NotWritable {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(not_writable)?;
        let probe = dir.join(".write-test");
        fs::write(&probe, b"ok").map_err(not_writable)?;
        fs::remove_file(&probe).map_err(not_writable)?;
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|source| StoreError::Open {
                location: dir.display().to_string(),
                reason: source.to_string(),
            })?;
        Self::with_db(db)
    }

    /// A store that lives in memory and vanishes on drop, for tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::with_db(sled::Config::new().temporary(true).open()?)
    }

    fn with_db(db: sled::Db) -> Result<Self, StoreError> {
        Ok(SledStore {
            calls: db.open_tree(CALLS)?,
            calls_by_start: db.open_tree(CALLS_BY_START)?,
            escalated: db.open_tree(ESCALATED)?,
            customers: db.open_tree(CUSTOMERS)?,
            turns: db.open_tree(TURNS)?,
            bookings: db.open_tree(BOOKINGS)?,
            seen_messages: db.open_tree(SEEN_MESSAGES)?,
            catalog: db.open_tree(CATALOG)?,
            scheduled_calls: db.open_tree(SCHEDULED_CALLS)?,
            db,
        })
    }

    /// Read-modify-write of one JSON value with compare-and-swap, retried on
    /// conflict. `decide` sees the current value and says what to do with it;
    /// its second result is passed through.
    fn update<T, R>(
        tree: &Tree,
        name: &'static str,
        key: &str,
        mut decide: impl FnMut(Option<T>) -> (Change<T>, R),
    ) -> Result<R, StoreError>
    where
        T: Serialize + DeserializeOwned,
    {
        for _ in 0..CAS_ATTEMPTS {
            let old = tree.get(key)?;
            let current = old
                .as_ref()
                .map(|bytes| decode::<T>(name, key, bytes))
                .transpose()?;
            let (change, result) = decide(current);
            let new = match change {
                Change::Keep => return Ok(result),
                Change::Delete => None,
                Change::Write(value) => Some(encode(name, &value)?),
            };
            if tree.compare_and_swap(key, old, new)?.is_ok() {
                return Ok(result);
            }
        }
        Err(StoreError::Contention {
            table: name,
            key: key.to_owned(),
        })
    }
}

impl SledStore {
    /// What a Twilio callback adds to a call's record, made unbridged (dated `at_ms`) when
    /// the call has none yet.
    fn update_from_callback(
        &self,
        call_sid: &str,
        at_ms: u64,
        change: impl Fn(&mut CallRecord),
    ) -> Result<(), StoreError> {
        // Indexed first, as `put_call` does; an entry left stale (the record existed
        // with another start time) is skipped by readers.
        if self.calls.get(call_sid)?.is_none() {
            self.calls_by_start.insert(time_key(at_ms, call_sid), &[])?;
        }
        Self::update(
            &self.calls,
            CALLS,
            call_sid,
            |current: Option<CallRecord>| {
                let mut record = current.unwrap_or_else(|| CallRecord::unbridged(call_sid, at_ms));
                change(&mut record);
                (Change::Write(record), ())
            },
        )
    }

    /// The call record `call_sid`, read in place (the store's own scans use it).
    fn read_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.calls
            .get(call_sid)?
            .map(|bytes| decode(CALLS, call_sid, &bytes))
            .transpose()
    }

    /// Call records by start time, newest first, that `keep` accepts, at most `limit`.
    /// Unreadable records are skipped.
    fn calls_newest_first(
        &self,
        limit: usize,
        keep: impl Fn(&CallRecord) -> bool,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut calls = Vec::new();
        for entry in self.calls_by_start.iter().rev() {
            if calls.len() >= limit {
                break;
            }
            let (key, _) = entry?;
            let Some((started_at_ms, call_sid)) = split_time_key(&key) else {
                tracing::warn!(key = %lossy(&key), "skipping a malformed call index key");
                continue;
            };
            match self.read_call(call_sid) {
                // A record whose start time changed is listed under its current key.
                Ok(Some(rec)) if rec.started_at_ms == started_at_ms && keep(&rec) => {
                    calls.push(rec)
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "skipping an unreadable call record"),
            }
        }
        Ok(calls)
    }
}

/// What a read-modify-write does with the value it read.
enum Change<T> {
    Keep,
    Delete,
    Write(T),
}

fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { table, source })
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        source,
    })
}

fn time_key(ms: u64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&ms.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// Splits a `calls_by_start` key back into start time and call sid.
fn split_time_key(key: &[u8]) -> Option<(u64, &str)> {
    let (ms, id) = key.split_at_checked(8)?;
    Some((
        u64::from_be_bytes(ms.try_into().ok()?),
        std::str::from_utf8(id).ok()?,
    ))
}

fn thread_prefix(customer: &str) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(customer.len()).map_err(|_| StoreError::KeyTooLong { table: TURNS })?;
    let mut key = Vec::with_capacity(2 + customer.len() + 8);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(customer.as_bytes());
    Ok(key)
}

fn lossy(key: &IVec) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[async_trait]
impl CallStore for SledStore {
    async fn put_call(&self, rec: &CallRecord) -> Result<(), StoreError> {
        // Index first: a crash in between leaves an index entry without a
        // record, which readers skip, never a record missing from the index.
        self.calls_by_start
            .insert(time_key(rec.started_at_ms, &rec.call_sid), &[])?;
        Self::update(
            &self.calls,
            CALLS,
            &rec.call_sid,
            |current: Option<CallRecord>| {
                let mut new = rec.clone();
                if let Some(stored) = current {
                    new.keep_callbacks_of(stored);
                }
                (Change::Write(new), ())
            },
        )
    }

    async fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.read_call(call_sid)
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.calls_newest_first(limit, |_| true)
    }

    async fn append_transcription(&self, call_sid: &str, entry: &Turn) -> Result<(), StoreError> {
        self.update_from_callback(call_sid, entry.at_ms, |record| {
            record.transcriptions.push(entry.clone())
        })
    }

    async fn note_recording(
        &self,
        call_sid: &str,
        entry: &RecordingEntry,
    ) -> Result<(), StoreError> {
        self.update_from_callback(call_sid, entry.at_ms, |record| {
            record.note_recording(entry.clone())
        })
    }

    async fn find_calls_mentioning(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let needle = text.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        self.calls_newest_first(limit, |record| {
            record
                .transcript
                .turns()
                .iter()
                .chain(&record.transcriptions)
                .any(|turn| turn.text.to_lowercase().contains(&needle))
        })
    }

    async fn set_escalated(&self, call_sid: &str) -> Result<(), StoreError> {
        self.escalated.insert(call_sid, &[])?;
        Ok(())
    }

    async fn is_escalated(&self, call_sid: &str) -> Result<bool, StoreError> {
        Ok(self.escalated.contains_key(call_sid)?)
    }

    async fn clear_escalated(&self, call_sid: &str) -> Result<(), StoreError> {
        self.escalated.remove(call_sid)?;
        Ok(())
    }

    async fn prune_calls(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self
            .calls_by_start
            .range(..before_ms.to_be_bytes().to_vec())
        {
            let (key, _) = entry?;
            if let Some((started_at_ms, call_sid)) = split_time_key(&key) {
                // An index entry left behind by a record whose start time changed
                // must not take the current record with it.
                let stale = matches!(
                    self.read_call(call_sid),
                    Ok(Some(rec)) if rec.started_at_ms != started_at_ms
                );
                if !stale {
                    if self.calls.remove(call_sid)?.is_some() {
                        pruned += 1;
                    }
                    self.escalated.remove(call_sid)?;
                }
            }
            self.calls_by_start.remove(key)?;
        }
        Ok(pruned)
    }
}

#[async_trait]
impl CustomerStore for SledStore {
    async fn customer(&self, id: &str) -> Result<Option<CustomerRecord>, StoreError> {
        self.customers
            .get(id)?
            .map(|bytes| decode(CUSTOMERS, id, &bytes))
            .transpose()
    }

    async fn update_customer(
        &self,
        id: &str,
        change: &CustomerChange,
    ) -> Result<CustomerRecord, StoreError> {
        Self::update(
            &self.customers,
            CUSTOMERS,
            id,
            |current: Option<CustomerRecord>| {
                let customer = CustomerRecord::changed(id, current, change);
                (Change::Write(customer.clone()), customer)
            },
        )
    }
}

#[async_trait]
impl ThreadStore for SledStore {
    async fn append_turn(&self, customer: &str, turn: &Turn) -> Result<(), StoreError> {
        let mut key = thread_prefix(customer)?;
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.turns.insert(key, encode(TURNS, turn)?)?;
        Ok(())
    }

    async fn recent_turns(&self, customer: &str, limit: usize) -> Result<Vec<Turn>, StoreError> {
        let prefix = thread_prefix(customer)?;
        let mut turns = Vec::new();
        for entry in self.turns.scan_prefix(&prefix).rev() {
            if turns.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            match decode::<Turn>(TURNS, &lossy(&key), &value) {
                Ok(turn) => turns.push(turn),
                Err(err) => tracing::warn!(%err, "skipping an unreadable conversation turn"),
            }
        }
        turns.reverse();
        Ok(turns)
    }

    /// A scan of every thread: retention runs hourly, off the hot path.
    async fn prune_turns(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self.turns.iter() {
            let (key, value) = entry?;
            let old = match decode::<Turn>(TURNS, &lossy(&key), &value) {
                Ok(turn) => turn.at_ms < before_ms,
                // Unreadable: left for a person to look at, never destroyed unseen.
                Err(_) => false,
            };
            if old {
                self.turns.remove(key)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }
}

#[async_trait]
impl DedupeStore for SledStore {
    async fn first_sight(&self, message_sid: &str, at_ms: u64) -> Result<bool, StoreError> {
        let swapped = self.seen_messages.compare_and_swap(
            message_sid.as_bytes(),
            None as Option<&[u8]>,
            Some(&at_ms.to_be_bytes()[..]),
        )?;
        Ok(swapped.is_ok())
    }

    async fn prune_seen_messages(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self.seen_messages.iter() {
            let (key, value) = entry?;
            let seen = value
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if seen < before_ms {
                self.seen_messages.remove(key)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }
}

#[async_trait]
impl CatalogStore for SledStore {
    async fn catalog(&self) -> Result<Option<Catalog>, StoreError> {
        self.catalog
            .get(CATALOG_KEY)?
            .map(|bytes| decode(CATALOG, CATALOG_KEY, &bytes))
            .transpose()
    }

    async fn put_catalog(&self, catalog: &Catalog) -> Result<(), StoreError> {
        self.catalog
            .insert(CATALOG_KEY, encode(CATALOG, catalog)?)?;
        self.catalog.flush()?;
        Ok(())
    }
}

impl SledStore {
    /// Every readable scheduled call; unreadable ones are logged and skipped.
    fn all_scheduled(&self) -> Result<Vec<ScheduledCall>, StoreError> {
        let mut calls = Vec::new();
        for entry in self.scheduled_calls.iter() {
            let (key, value) = entry?;
            let key = String::from_utf8_lossy(&key);
            match decode::<ScheduledCall>(SCHEDULED_CALLS, &key, &value) {
                Ok(call) => calls.push(call),
                Err(err) => tracing::warn!(error = %err, "unreadable scheduled call skipped"),
            }
        }
        Ok(calls)
    }
}

#[async_trait]
impl ScheduleStore for SledStore {
    async fn schedule_call(&self, call: &ScheduledCall) -> Result<bool, StoreError> {
        Self::update::<ScheduledCall, bool>(
            &self.scheduled_calls,
            SCHEDULED_CALLS,
            &call.id,
            |current| match current {
                Some(_) => (Change::Keep, false),
                None => (Change::Write(call.clone()), true),
            },
        )
    }

    async fn claim_due_calls(
        &self,
        now_ms: u64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<ScheduledCall>, StoreError> {
        let mut due: Vec<ScheduledCall> = self
            .all_scheduled()?
            .into_iter()
            .filter(|c| c.claimable(now_ms))
            .collect();
        due.sort_by_key(|c| (c.due_at_ms, c.id.clone()));
        let mut claimed = Vec::new();
        for candidate in due {
            if claimed.len() >= limit {
                break;
            }
            // Compare-and-swap: of callers racing for one call, exactly one sees it claimable.
            let won = Self::update::<ScheduledCall, Option<ScheduledCall>>(
                &self.scheduled_calls,
                SCHEDULED_CALLS,
                &candidate.id,
                |current| match current {
                    Some(mut call) if call.claimable(now_ms) => {
                        call.claim(node, now_ms);
                        (Change::Write(call.clone()), Some(call))
                    }
                    _ => (Change::Keep, None),
                },
            )?;
            claimed.extend(won);
        }
        Ok(claimed)
    }

    async fn settle_call(
        &self,
        id: &str,
        node: &str,
        outcome: &PlacingOutcome,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        Self::update::<ScheduledCall, bool>(&self.scheduled_calls, SCHEDULED_CALLS, id, |current| {
            match current {
                Some(mut call) => {
                    if call.settle(node, outcome, now_ms) {
                        (Change::Write(call), true)
                    } else {
                        (Change::Keep, false)
                    }
                }
                None => (Change::Keep, false),
            }
        })
    }

    async fn abandon_stale_calls(&self, before_ms: u64, now_ms: u64) -> Result<usize, StoreError> {
        let mut abandoned = 0;
        for stale in self
            .all_scheduled()?
            .into_iter()
            .filter(|c| c.stale(before_ms))
        {
            let changed = Self::update::<ScheduledCall, bool>(
                &self.scheduled_calls,
                SCHEDULED_CALLS,
                &stale.id,
                |current| match current {
                    Some(mut call) if call.stale(before_ms) => {
                        call.abandon(now_ms);
                        (Change::Write(call), true)
                    }
                    _ => (Change::Keep, false),
                },
            )?;
            abandoned += usize::from(changed);
        }
        Ok(abandoned)
    }

    async fn scheduled_calls(&self, limit: usize) -> Result<Vec<ScheduledCall>, StoreError> {
        let mut calls = self.all_scheduled()?;
        calls.sort_by(schedule_order);
        calls.truncate(limit);
        Ok(calls)
    }
}

/// Pending calls first, by due time; then the rest, most recently changed first.
pub(super) fn schedule_order(a: &ScheduledCall, b: &ScheduledCall) -> std::cmp::Ordering {
    let pending = |c: &ScheduledCall| c.state != ScheduleState::Pending;
    pending(a)
        .cmp(&pending(b))
        .then_with(|| match a.state {
            ScheduleState::Pending => a.due_at_ms.cmp(&b.due_at_ms),
            _ => b.updated_at_ms.cmp(&a.updated_at_ms),
        })
        .then_with(|| a.id.cmp(&b.id))
}

#[async_trait]
impl Store for SledStore {
    /// One fsync for everything written so far, on the blocking pool: the caller's thread
    /// never waits on the disk.
    async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|join| StoreError::Flush(join.to_string()))?
            .map_err(|err| StoreError::Flush(err.to_string()))?;
        Ok(())
    }

    fn bookings(&self) -> &dyn BookingStore {
        self
    }
}

impl BookingStore for SledStore {
    fn try_book(&self, booking: &Booking) -> Result<BookOutcome, BookingStoreError> {
        let outcome = Self::update(
            &self.bookings,
            BOOKINGS,
            &booking.slot_id,
            |current: Option<Booking>| match current {
                None => (Change::Write(booking.clone()), BookOutcome::Booked),
                Some(existing) => (Change::Keep, BookOutcome::AlreadyBooked(existing)),
            },
        )?;
        if outcome == BookOutcome::Booked {
            // The caller is told "booked" next: make it survive a crash first.
            self.db.flush().map_err(StoreError::from)?;
        }
        Ok(outcome)
    }

    fn cancel(&self, slot_id: &str, customer: &str) -> Result<CancelOutcome, BookingStoreError> {
        let outcome = Self::update(
            &self.bookings,
            BOOKINGS,
            slot_id,
            |current: Option<Booking>| match current {
                None => (Change::Keep, CancelOutcome::NotBooked),
                Some(b) if b.customer != customer => (Change::Keep, CancelOutcome::NotYours),
                Some(b) => (Change::Delete, CancelOutcome::Cancelled(b)),
            },
        )?;
        if matches!(outcome, CancelOutcome::Cancelled(_)) {
            self.db.flush().map_err(StoreError::from)?;
        }
        Ok(outcome)
    }

    fn booking(&self, slot_id: &str) -> Result<Option<Booking>, BookingStoreError> {
        Ok(self
            .bookings
            .get(slot_id)
            .map_err(StoreError::from)?
            .map(|bytes| decode(BOOKINGS, slot_id, &bytes))
            .transpose()?)
    }

    fn customer_bookings(&self, customer: &str) -> Result<Vec<Booking>, BookingStoreError> {
        let mut bookings = Vec::new();
        for entry in self.bookings.iter() {
            let (key, value) = entry.map_err(StoreError::from)?;
            let booking: Booking = decode(BOOKINGS, &lossy(&key), &value)?;
            if booking.customer == customer {
                bookings.push(booking);
            }
        }
        Ok(bookings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, call, conformance_tests, run};
    use std::path::PathBuf;
    use std::sync::Arc;

    fn fresh() -> Arc<dyn Store> {
        Arc::new(SledStore::temporary().unwrap())
    }

    conformance_tests!(Some(fresh()));

    #[test]
    fn acknowledged_writes_survive_reopening_the_directory() {
        let dir = TempDir::new();
        let path = dir.0.clone();
        conformance::acknowledged_writes_survive_reopening(
            Arc::new(SledStore::open(&dir.0).unwrap()),
            move || Arc::new(SledStore::open(&path).unwrap()),
        );
    }

    #[test]
    fn scheduled_calls_survive_reopening_the_directory_and_are_placed_once() {
        let dir = TempDir::new();
        let path = dir.0.clone();
        conformance::scheduled_calls_survive_reopening_and_are_placed_once(
            Arc::new(SledStore::open(&dir.0).unwrap()),
            move || Arc::new(SledStore::open(&path).unwrap()),
        );
    }

    #[test]
    fn the_catalog_is_kept_across_reopening() {
        let dir = TempDir::new();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/catalog");
        let catalog = crate::domain::catalog::Catalog::load(&shipped).unwrap();
        run(async {
            {
                let store = SledStore::open(&dir.0).unwrap();
                store.put_catalog(&catalog).await.unwrap();
            }
            let store = SledStore::open(&dir.0).unwrap();
            assert_eq!(store.catalog().await.unwrap(), Some(catalog));
        });
    }

    #[test]
    fn unreadable_records_are_skipped_by_scans_and_named_by_reads() {
        let store = SledStore::temporary().unwrap();
        run(async {
            store.put_call(&call("CA1", 1_000)).await.unwrap();
            store.put_call(&call("CA2", 2_000)).await.unwrap();
            store.calls.insert("CA2", b"not json".to_vec()).unwrap();
            let sids: Vec<String> = store
                .recent_calls(10)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.call_sid)
                .collect();
            assert_eq!(sids, vec!["CA1"]);
            assert!(matches!(
                store.get_call("CA2").await,
                Err(StoreError::Corrupt { table: "calls", .. })
            ));
        });
    }

    #[test]
    fn a_customer_id_too_long_for_a_key_is_refused() {
        let store = SledStore::temporary().unwrap();
        let long = "x".repeat(70_000);
        let turn = Turn {
            role: crate::domain::transcript::Role::User,
            text: String::new(),
            at_ms: 0,
        };
        run(async {
            assert!(matches!(
                store.append_turn(&long, &turn).await,
                Err(StoreError::KeyTooLong { .. })
            ));
        });
    }

    #[test]
    fn an_unusable_directory_is_named() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let file = dir.0.join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let err = SledStore::open(&file.join("data")).err().unwrap();
        assert!(matches!(err, StoreError::NotWritable { .. }));
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("sled-store-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
