//! [`Store`] on an embedded sled database.
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
//!
//! Big-endian integers make byte order equal numeric order, so scans come out
//! sorted; the length prefix keeps one customer's prefix from matching another's.

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::{IVec, Tree};

use super::{Store, StoreError};
use crate::domain::bookings::{
    BookOutcome, Booking, BookingStore, BookingStoreError, CancelOutcome,
};
use crate::domain::catalog::Catalog;
use crate::domain::records::{CallRecord, CallSummary, CustomerRecord};
use crate::domain::transcript::Turn;

const CALLS: &str = "calls";
const CALLS_BY_START: &str = "calls_by_start";
const ESCALATED: &str = "escalated";
const CUSTOMERS: &str = "customers";
const TURNS: &str = "turns";
const BOOKINGS: &str = "bookings";
const SEEN_MESSAGES: &str = "seen_messages";
const CATALOG: &str = "catalog";
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
                path: dir.to_owned(),
                source,
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
            tree: name,
            key: key.to_owned(),
        })
    }
}

impl SledStore {
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
            match self.get_call(call_sid) {
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

fn encode<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode { tree, source })
}

fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        tree,
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
    let len = u16::try_from(customer.len()).map_err(|_| StoreError::KeyTooLong { tree: TURNS })?;
    let mut key = Vec::with_capacity(2 + customer.len() + 8);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(customer.as_bytes());
    Ok(key)
}

fn lossy(key: &IVec) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl Store for SledStore {
    fn put_call(&self, rec: &CallRecord) -> Result<(), StoreError> {
        // Index first: a crash in between leaves an index entry without a
        // record, which readers skip, never a record missing from the index.
        self.calls_by_start
            .insert(time_key(rec.started_at_ms, &rec.call_sid), &[])?;
        self.calls
            .insert(rec.call_sid.as_bytes(), encode(CALLS, rec)?)?;
        Ok(())
    }

    fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.calls
            .get(call_sid)?
            .map(|bytes| decode(CALLS, call_sid, &bytes))
            .transpose()
    }

    fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.calls_newest_first(limit, |_| true)
    }

    fn append_transcription(&self, call_sid: &str, entry: &Turn) -> Result<bool, StoreError> {
        Self::update(
            &self.calls,
            CALLS,
            call_sid,
            |current: Option<CallRecord>| match current {
                None => (Change::Keep, false),
                Some(mut record) => {
                    record.transcriptions.push(entry.clone());
                    (Change::Write(record), true)
                }
            },
        )
    }

    fn find_calls_mentioning(
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

    fn set_escalated(&self, call_sid: &str) -> Result<(), StoreError> {
        self.escalated.insert(call_sid, &[])?;
        Ok(())
    }

    fn is_escalated(&self, call_sid: &str) -> Result<bool, StoreError> {
        Ok(self.escalated.contains_key(call_sid)?)
    }

    fn clear_escalated(&self, call_sid: &str) -> Result<(), StoreError> {
        self.escalated.remove(call_sid)?;
        Ok(())
    }

    fn customer(&self, id: &str) -> Result<Option<CustomerRecord>, StoreError> {
        self.customers
            .get(id)?
            .map(|bytes| decode(CUSTOMERS, id, &bytes))
            .transpose()
    }

    fn record_call_for_customer(&self, id: &str, summary: CallSummary) -> Result<(), StoreError> {
        Self::update(
            &self.customers,
            CUSTOMERS,
            id,
            |current: Option<CustomerRecord>| {
                let mut customer =
                    current.unwrap_or_else(|| CustomerRecord::new(id, summary.started_at_ms));
                customer.record_call(summary.clone());
                (Change::Write(customer), ())
            },
        )
    }

    fn catalog(&self) -> Result<Option<Catalog>, StoreError> {
        self.catalog
            .get(CATALOG_KEY)?
            .map(|bytes| decode(CATALOG, CATALOG_KEY, &bytes))
            .transpose()
    }

    fn put_catalog(&self, catalog: &Catalog) -> Result<(), StoreError> {
        self.catalog
            .insert(CATALOG_KEY, encode(CATALOG, catalog)?)?;
        self.catalog.flush()?;
        Ok(())
    }

    fn first_sight(&self, message_sid: &str, at_ms: u64) -> Result<bool, StoreError> {
        let swapped = self.seen_messages.compare_and_swap(
            message_sid.as_bytes(),
            None as Option<&[u8]>,
            Some(&at_ms.to_be_bytes()[..]),
        )?;
        Ok(swapped.is_ok())
    }

    fn append_turn(&self, customer: &str, turn: &Turn) -> Result<(), StoreError> {
        let mut key = thread_prefix(customer)?;
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.turns.insert(key, encode(TURNS, turn)?)?;
        Ok(())
    }

    fn recent_turns(&self, customer: &str, limit: usize) -> Result<Vec<Turn>, StoreError> {
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

    fn prune_seen_messages(&self, before_ms: u64) -> Result<usize, StoreError> {
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

    fn prune_calls(&self, before_ms: u64) -> Result<usize, StoreError> {
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
                    self.get_call(call_sid),
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

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
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
    use crate::domain::records::{AudioMode, CallOutcome};
    use crate::domain::transcript::Role;
    use std::path::PathBuf;
    use std::sync::Arc;

    #[test]
    fn the_catalog_is_kept_across_reopening() {
        let dir = TempDir::new();
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/catalog");
        let catalog = crate::domain::catalog::Catalog::load(&shipped).unwrap();
        {
            let store = SledStore::open(&dir.0).unwrap();
            assert!(store.catalog().unwrap().is_none());
            store.put_catalog(&catalog).unwrap();
        }
        let store = SledStore::open(&dir.0).unwrap();
        assert_eq!(store.catalog().unwrap(), Some(catalog));
    }

    #[test]
    fn old_message_sids_are_pruned() {
        let store = SledStore::temporary().unwrap();
        assert!(store.first_sight("SM-old", 100).unwrap());
        assert!(store.first_sight("SM-new", 900).unwrap());
        assert_eq!(store.prune_seen_messages(500).unwrap(), 1);
        assert!(
            store.first_sight("SM-old", 1000).unwrap(),
            "forgotten, so new again"
        );
        assert!(!store.first_sight("SM-new", 1000).unwrap());
    }

    #[test]
    fn a_message_sid_is_first_seen_once_even_after_reopening() {
        let dir = TempDir::new();
        {
            let store = SledStore::open(&dir.0).unwrap();
            assert!(store.first_sight("SM1", 10).unwrap());
            assert!(!store.first_sight("SM1", 11).unwrap());
            assert!(store.first_sight("SM2", 12).unwrap());
            store.flush().unwrap();
        }
        let store = SledStore::open(&dir.0).unwrap();
        assert!(!store.first_sight("SM1", 13).unwrap());
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

    fn call(sid: &str, started_at_ms: u64) -> CallRecord {
        let mut rec = CallRecord::new(
            sid,
            "MZ1",
            Some("+14155550101".into()),
            "triage",
            AudioMode::Pcmu,
            started_at_ms,
        );
        rec.transcript
            .push(Role::User, "Where is my order?", started_at_ms + 1);
        rec
    }

    fn booking(slot: &str, customer: &str) -> Booking {
        Booking {
            slot_id: slot.into(),
            customer: customer.into(),
            name: None,
        }
    }

    #[test]
    fn calls_round_trip_and_replace() {
        let store = SledStore::temporary().unwrap();
        assert_eq!(store.get_call("CA1").unwrap(), None);
        let mut rec = call("CA1", 1_000);
        store.put_call(&rec).unwrap();
        assert_eq!(store.get_call("CA1").unwrap(), Some(rec.clone()));
        rec.finish(CallOutcome::Completed, 5_000);
        store.put_call(&rec).unwrap();
        assert_eq!(store.get_call("CA1").unwrap(), Some(rec));
        assert_eq!(store.recent_calls(10).unwrap().len(), 1);
    }

    #[test]
    fn recent_calls_are_newest_first_and_limited() {
        let store = SledStore::temporary().unwrap();
        for (sid, at) in [
            ("CA_b", 2_000),
            ("CA_a", 1_000),
            ("CA_d", 300_000),
            ("CA_c", 3_000),
        ] {
            store.put_call(&call(sid, at)).unwrap();
        }
        let sids: Vec<String> = store
            .recent_calls(3)
            .unwrap()
            .into_iter()
            .map(|c| c.call_sid)
            .collect();
        assert_eq!(sids, vec!["CA_d", "CA_c", "CA_b"]);
        assert!(store.recent_calls(0).unwrap().is_empty());
    }

    #[test]
    fn recent_calls_skip_unreadable_and_moved_records() {
        let store = SledStore::temporary().unwrap();
        store.put_call(&call("CA1", 1_000)).unwrap();
        store.put_call(&call("CA2", 2_000)).unwrap();
        store.calls.insert("CA2", b"not json".to_vec()).unwrap();
        // The same call re-put with another start time is listed once.
        store.put_call(&call("CA1", 5_000)).unwrap();
        let sids: Vec<String> = store
            .recent_calls(10)
            .unwrap()
            .into_iter()
            .map(|c| c.call_sid)
            .collect();
        assert_eq!(sids, vec!["CA1"]);
        assert!(matches!(
            store.get_call("CA2"),
            Err(StoreError::Corrupt { tree: "calls", .. })
        ));
    }

    #[test]
    fn transcriptions_are_appended_to_stored_calls_and_found_by_their_words() {
        let store = SledStore::temporary().unwrap();
        let heard = |text: &str| Turn {
            role: Role::User,
            text: text.into(),
            at_ms: 5,
        };
        assert!(!store
            .append_transcription("CA_none", &heard("hello"))
            .unwrap());
        assert_eq!(store.get_call("CA_none").unwrap(), None);
        store.put_call(&call("CA1", 1_000)).unwrap();
        store.put_call(&call("CA2", 2_000)).unwrap();
        store.put_call(&call("CA3", 3_000)).unwrap();
        assert!(store
            .append_transcription("CA1", &heard("My bike has a Flat Tyre"))
            .unwrap());
        assert!(store
            .append_transcription("CA3", &heard("another flat tyre, sadly"))
            .unwrap());
        assert_eq!(
            store.get_call("CA1").unwrap().unwrap().transcriptions,
            vec![heard("My bike has a Flat Tyre")]
        );
        let sids = |calls: Vec<CallRecord>| -> Vec<String> {
            calls.into_iter().map(|c| c.call_sid).collect()
        };
        assert_eq!(
            sids(store.find_calls_mentioning("flat TYRE", 10).unwrap()),
            vec!["CA3", "CA1"]
        );
        assert_eq!(
            sids(store.find_calls_mentioning("flat tyre", 1).unwrap()),
            vec!["CA3"]
        );
        // The model's transcript is searched too; blank and unknown words find nothing.
        assert_eq!(
            store
                .find_calls_mentioning("where is my order", 10)
                .unwrap()
                .len(),
            3
        );
        assert!(store.find_calls_mentioning("  ", 10).unwrap().is_empty());
        assert!(store
            .find_calls_mentioning("unicycle", 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn escalation_marks() {
        let store = SledStore::temporary().unwrap();
        assert!(!store.is_escalated("CA1").unwrap());
        store.set_escalated("CA1").unwrap();
        store.set_escalated("CA1").unwrap();
        assert!(store.is_escalated("CA1").unwrap());
        assert!(!store.is_escalated("CA2").unwrap());
        store.clear_escalated("CA1").unwrap();
        store.clear_escalated("CA2").unwrap();
        assert!(!store.is_escalated("CA1").unwrap());
    }

    #[test]
    fn customer_memory_accumulates_calls() {
        let store = SledStore::temporary().unwrap();
        assert_eq!(store.customer("+14155550101").unwrap(), None);
        let mut first = call("CA1", 1_000);
        first.finish(CallOutcome::Completed, 2_000);
        store
            .record_call_for_customer("+14155550101", first.summary())
            .unwrap();
        store
            .record_call_for_customer("+14155550101", call("CA2", 9_000).summary())
            .unwrap();
        store
            .record_call_for_customer("+14155550101", first.summary())
            .unwrap();
        let customer = store.customer("+14155550101").unwrap().unwrap();
        assert_eq!(customer.id, "+14155550101");
        assert_eq!(customer.calls.len(), 2);
        assert_eq!(customer.first_seen_ms, 1_000);
        assert_eq!(customer.last_seen_ms, 9_000);
    }

    #[test]
    fn concurrent_customer_updates_are_not_lost() {
        let store = Arc::new(SledStore::temporary().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let summary = call(&format!("CA{t}-{i}"), 1_000).summary();
                        store
                            .record_call_for_customer("+14155550101", summary)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            store.customer("+14155550101").unwrap().unwrap().calls.len(),
            40
        );
    }

    #[test]
    fn conversation_threads_are_ordered_and_separate() {
        let store = SledStore::temporary().unwrap();
        for i in 0..5u64 {
            let turn = Turn {
                role: Role::User,
                text: format!("message {i}"),
                at_ms: i,
            };
            store.append_turn("a", &turn).unwrap();
        }
        // A customer id that extends another's must not share its thread.
        store
            .append_turn(
                "ab",
                &Turn {
                    role: Role::User,
                    text: "other".into(),
                    at_ms: 9,
                },
            )
            .unwrap();
        let texts: Vec<String> = store
            .recent_turns("a", 3)
            .unwrap()
            .into_iter()
            .map(|t| t.text)
            .collect();
        assert_eq!(texts, vec!["message 2", "message 3", "message 4"]);
        assert_eq!(store.recent_turns("ab", 10).unwrap().len(), 1);
        assert!(store.recent_turns("nobody", 10).unwrap().is_empty());
        let long = "x".repeat(70_000);
        assert!(matches!(
            store.append_turn(
                &long,
                &Turn {
                    role: Role::User,
                    text: String::new(),
                    at_ms: 0
                }
            ),
            Err(StoreError::KeyTooLong { .. })
        ));
    }

    #[test]
    fn pruning_removes_old_calls_only() {
        let store = SledStore::temporary().unwrap();
        store.put_call(&call("CA_old", 1_000)).unwrap();
        store.set_escalated("CA_old").unwrap();
        store.put_call(&call("CA_new", 10_000)).unwrap();
        // A stale index entry (start time changed) must not delete the record.
        store.put_call(&call("CA_moved", 2_000)).unwrap();
        store.put_call(&call("CA_moved", 20_000)).unwrap();
        assert_eq!(store.prune_calls(5_000).unwrap(), 1);
        assert_eq!(store.get_call("CA_old").unwrap(), None);
        assert!(!store.is_escalated("CA_old").unwrap());
        assert!(store.get_call("CA_new").unwrap().is_some());
        assert!(store.get_call("CA_moved").unwrap().is_some());
        assert_eq!(store.recent_calls(10).unwrap().len(), 2);
        assert_eq!(store.prune_calls(5_000).unwrap(), 0);
    }

    #[test]
    fn bookings_refuse_double_booking_and_foreign_cancels() {
        let store = SledStore::temporary().unwrap();
        let bookings = store.bookings();
        assert_eq!(
            bookings.try_book(&booking("S101", "alice")).unwrap(),
            BookOutcome::Booked
        );
        assert_eq!(
            bookings.try_book(&booking("S101", "bob")).unwrap(),
            BookOutcome::AlreadyBooked(booking("S101", "alice"))
        );
        assert_eq!(
            bookings.cancel("S101", "bob").unwrap(),
            CancelOutcome::NotYours
        );
        assert_eq!(
            bookings.cancel("S999", "bob").unwrap(),
            CancelOutcome::NotBooked
        );
        bookings.try_book(&booking("S102", "alice")).unwrap();
        assert_eq!(bookings.customer_bookings("alice").unwrap().len(), 2);
        assert_eq!(
            bookings.cancel("S101", "alice").unwrap(),
            CancelOutcome::Cancelled(booking("S101", "alice"))
        );
        assert_eq!(bookings.booking("S101").unwrap(), None);
        assert_eq!(
            bookings.try_book(&booking("S101", "bob")).unwrap(),
            BookOutcome::Booked
        );
    }

    #[test]
    fn concurrent_bookings_of_one_slot_have_one_winner() {
        let store = Arc::new(SledStore::temporary().unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    store.try_book(&booking("S101", &format!("c{t}"))).unwrap()
                })
            })
            .collect();
        let winners = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|o| *o == BookOutcome::Booked)
            .count();
        assert_eq!(winners, 1);
    }

    #[test]
    fn data_survives_reopening_the_directory() {
        let dir = TempDir::new();
        {
            let store = SledStore::open(&dir.0).unwrap();
            store.try_book(&booking("S101", "+14155550101")).unwrap();
            store.put_call(&call("CA1", 1_000)).unwrap();
            store
                .record_call_for_customer("+14155550101", call("CA1", 1_000).summary())
                .unwrap();
            store.set_escalated("CA1").unwrap();
            store
                .append_turn(
                    "+14155550101",
                    &Turn {
                        role: Role::User,
                        text: "hi".into(),
                        at_ms: 1,
                    },
                )
                .unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(&dir.0).unwrap();
        assert_eq!(
            store.booking("S101").unwrap(),
            Some(booking("S101", "+14155550101"))
        );
        assert_eq!(
            store.try_book(&booking("S101", "+14155550199")).unwrap(),
            BookOutcome::AlreadyBooked(booking("S101", "+14155550101"))
        );
        assert!(store.get_call("CA1").unwrap().is_some());
        assert!(store.is_escalated("CA1").unwrap());
        assert_eq!(
            store.customer("+14155550101").unwrap().unwrap().calls.len(),
            1
        );
        assert_eq!(store.recent_turns("+14155550101", 5).unwrap().len(), 1);
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

    #[test]
    fn the_store_is_usable_as_a_trait_object() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let as_bookings: &dyn BookingStore = store.bookings();
        assert_eq!(as_bookings.booking("S1").unwrap(), None);
        store.flush().unwrap();
    }
}
