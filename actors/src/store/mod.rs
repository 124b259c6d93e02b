//! Durable state (SPEC §7): call records, customers' memory, conversation
//! threads, escalations and bookings.
//!
//! The engine sees only the object-safe [`Store`] trait, so a shared backend can
//! replace the embedded one for multi-node deployments; [`SledStore`] is the
//! embedded sled implementation. Values are JSON (readable with any sled tool,
//! tolerant of added fields); keys are laid out for ordered scans.

mod sled_store;

pub use sled_store::SledStore;

use std::path::PathBuf;

use thiserror::Error;

use crate::domain::bookings::{BookingStore, BookingStoreError};
use crate::domain::catalog::Catalog;
use crate::domain::records::{CallRecord, CallSummary, CustomerRecord};
use crate::domain::transcript::Turn;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("data directory {} is not writable: {source}", path.display())]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store in {}: {source}", path.display())]
    Open { path: PathBuf, source: sled::Error },
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
    #[error("corrupt record `{key}` in tree `{tree}`: {source}")]
    Corrupt {
        tree: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error("cannot encode a record for tree `{tree}`: {source}")]
    Encode {
        tree: &'static str,
        source: serde_json::Error,
    },
    #[error("record `{key}` in tree `{tree}` kept changing under concurrent writers")]
    Contention { tree: &'static str, key: String },
    #[error("key too long for tree `{tree}`")]
    KeyTooLong { tree: &'static str },
    #[error("flushing the store failed: {0}")]
    Flush(String),
}

impl From<StoreError> for BookingStoreError {
    fn from(err: StoreError) -> Self {
        BookingStoreError(err.to_string())
    }
}

/// Everything the engine persists. Object-safe: the engine holds an `Arc<dyn Store>`.
pub trait Store: BookingStore + Send + Sync {
    /// Inserts or replaces (same `call_sid`) a call record: snapshots while live, final at the end.
    fn put_call(&self, rec: &CallRecord) -> Result<(), StoreError>;
    fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError>;
    /// The most recently started calls, newest first. Unreadable records are skipped.
    fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError>;
    /// Adds a Real-Time Transcription entry to a stored call record; `false` when there is
    /// no record of the call.
    fn append_transcription(&self, call_sid: &str, entry: &Turn) -> Result<bool, StoreError>;
    /// Calls whose transcript or transcription mentions `text` (case-insensitive), newest
    /// first, at most `limit`. A scan: meant for an operator's search, not a hot path.
    fn find_calls_mentioning(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;
    /// Marks a call for `<Dial>` when Twilio asks `/twilio/voice/next`.
    fn set_escalated(&self, call_sid: &str) -> Result<(), StoreError>;
    fn is_escalated(&self, call_sid: &str) -> Result<bool, StoreError>;
    /// The transfer did not go through: the call is back with the assistant.
    fn clear_escalated(&self, call_sid: &str) -> Result<(), StoreError>;
    fn customer(&self, id: &str) -> Result<Option<CustomerRecord>, StoreError>;
    /// Adds (or replaces, same `call_sid`) a call in the customer's memory,
    /// creating the customer on first contact. Atomic against concurrent updates.
    fn record_call_for_customer(&self, id: &str, summary: CallSummary) -> Result<(), StoreError>;
    /// Appends a message to the customer's conversation thread (shared by all channels).
    /// Records that a Twilio message was received; `true` only the first time, so a
    /// webhook retried by Twilio is processed once (SPEC §5.3, §5.4).
    fn first_sight(&self, message_sid: &str, at_ms: u64) -> Result<bool, StoreError>;
    /// The business data loaded at first start, if any (SPEC §6.2).
    fn catalog(&self) -> Result<Option<Catalog>, StoreError>;
    fn put_catalog(&self, catalog: &Catalog) -> Result<(), StoreError>;
    fn append_turn(&self, customer: &str, turn: &Turn) -> Result<(), StoreError>;
    /// The last `limit` messages of the customer's thread, oldest first.
    fn recent_turns(&self, customer: &str, limit: usize) -> Result<Vec<Turn>, StoreError>;
    /// Retention: deletes call records (and their escalation marks) of calls
    /// started before `before_ms`. Returns how many were deleted.
    fn prune_calls(&self, before_ms: u64) -> Result<usize, StoreError>;
    /// Forgets `MessageSid`s first seen before `before_ms` (Twilio retries within minutes).
    fn prune_seen_messages(&self, before_ms: u64) -> Result<usize, StoreError>;
    /// Makes every write so far durable (an fsync); batch writes, then flush once.
    fn flush(&self) -> Result<(), StoreError>;
    /// The bookings, for `domain::tools::ToolContext`.
    fn bookings(&self) -> &dyn BookingStore;
}
