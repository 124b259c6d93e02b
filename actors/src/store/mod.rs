//! Durable state (SPEC §7), by concern: call records and live call snapshots
//! ([`CallStore`]), customers' memory ([`CustomerStore`]), conversation threads
//! ([`ThreadStore`]), Twilio webhook dedupe ([`DedupeStore`]), the business catalog
//! ([`CatalogStore`]), appointment bookings ([`BookingStore`]) and the call backs agents
//! promised ([`ScheduleStore`]).
//!
//! The engine holds one `Arc<dyn Store>`; [`SledStore`] is the embedded default (one node,
//! nothing to install). The traits are async because a shared backend does network I/O and
//! no actor thread may block on it. Bookings stay synchronous — the built-in tools that use
//! them are pure functions — and are only ever called off the actor threads (the
//! `ToolExecutor` runs them on the blocking pool).
//!
//! The durability promise every backend keeps: a write that has returned `Ok` survives a
//! crash once [`Store::flush`] has returned `Ok` after it (a backend whose writes commit
//! on return makes `flush` a no-op). Values are JSON, tolerant of added fields.

mod batches;
mod pg;
mod sled_store;

#[cfg(test)]
pub(crate) mod conformance;

pub use pg::PgStore;
pub use sled_store::SledStore;

use std::path::PathBuf;

use async_trait::async_trait;
use thiserror::Error;

use crate::domain::bookings::{BookingStore, BookingStoreError};
use crate::domain::catalog::Catalog;
use crate::domain::outreach::{PlacingOutcome, ScheduledCall};
use crate::domain::records::{
    CallRecord, CallSummary, CustomerChange, CustomerRecord, RecordingEntry,
};
use crate::domain::transcript::Turn;

/// What went wrong, whatever the backend; the detail is for logs.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("data directory {} is not writable: {source}", path.display())]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store at {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("store I/O failed: {0}")]
    Backend(String),
    #[error("corrupt record `{key}` in `{table}`: {source}")]
    Corrupt {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error("cannot encode a record for `{table}`: {source}")]
    Encode {
        table: &'static str,
        source: serde_json::Error,
    },
    #[error("record `{key}` in `{table}` kept changing under concurrent writers")]
    Contention { table: &'static str, key: String },
    #[error("key too long for `{table}`")]
    KeyTooLong { table: &'static str },
    #[error("flushing the store failed: {0}")]
    Flush(String),
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        StoreError::Backend(err.to_string())
    }
}

impl From<StoreError> for BookingStoreError {
    fn from(err: StoreError) -> Self {
        BookingStoreError(err.to_string())
    }
}

/// Phone calls: their records (snapshots while live, final at the end) and the marks the
/// voice webhooks read.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Inserts or replaces (same `call_sid`) a call record — all but what Twilio's
    /// callbacks wrote to it (`transcriptions`, `recordings`): those belong to the store,
    /// so a live call's snapshot never undoes them.
    async fn put_call(&self, rec: &CallRecord) -> Result<(), StoreError>;
    async fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError>;
    /// The most recently started calls, newest first. Unreadable records are skipped.
    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError>;
    /// Adds a Real-Time Transcription entry to the call's record. A call with no record
    /// yet gets an unbridged one ([`CallRecord::unbridged`], dated by the entry): its
    /// stream may start later, or never (a menu, a `<Dial>`), and the words are kept.
    async fn append_transcription(&self, call_sid: &str, entry: &Turn) -> Result<(), StoreError>;
    /// A recording's latest status on the call's record (one entry per recording sid),
    /// creating an unbridged record as [`CallStore::append_transcription`] does.
    async fn note_recording(
        &self,
        call_sid: &str,
        entry: &RecordingEntry,
    ) -> Result<(), StoreError>;
    /// Calls whose transcript or transcription mentions `text` (case-insensitive), newest
    /// first, at most `limit`. Meant for an operator's search, not a hot path.
    async fn find_calls_mentioning(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;
    /// Marks a call for `<Dial>` when Twilio asks `/twilio/voice/next`.
    async fn set_escalated(&self, call_sid: &str) -> Result<(), StoreError>;
    async fn is_escalated(&self, call_sid: &str) -> Result<bool, StoreError>;
    /// The transfer did not go through: the call is back with the assistant.
    async fn clear_escalated(&self, call_sid: &str) -> Result<(), StoreError>;
    /// Retention: deletes call records (and their escalation marks) of calls started
    /// before `before_ms`. Returns how many were deleted.
    async fn prune_calls(&self, before_ms: u64) -> Result<usize, StoreError>;
}

/// Customers and what every channel remembers of them.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    async fn customer(&self, id: &str) -> Result<Option<CustomerRecord>, StoreError>;
    /// Adds (or replaces, same `call_sid`) a call in the customer's memory, creating the
    /// customer on first contact. Atomic against concurrent updates.
    async fn record_call_for_customer(
        &self,
        id: &str,
        summary: CallSummary,
    ) -> Result<(), StoreError> {
        self.update_customer(id, &CustomerChange::Call(summary))
            .await
            .map(|_| ())
    }
    /// Applies one change to the customer's record ([`CustomerRecord::apply`]), creating
    /// the customer on first contact. Atomic against concurrent updates. Returns the record
    /// as written.
    async fn update_customer(
        &self,
        id: &str,
        change: &CustomerChange,
    ) -> Result<CustomerRecord, StoreError>;
}

/// Each customer's conversation thread, shared by all channels.
#[async_trait]
pub trait ThreadStore: Send + Sync {
    /// Appends a turn; turns of one customer keep the order they were appended in.
    async fn append_turn(&self, customer: &str, turn: &Turn) -> Result<(), StoreError>;
    /// The last `limit` turns of the customer's thread, oldest first.
    async fn recent_turns(&self, customer: &str, limit: usize) -> Result<Vec<Turn>, StoreError>;
    /// Retention: deletes every customer's turns written before `before_ms` (their
    /// `at_ms`). Returns how many were deleted.
    async fn prune_turns(&self, before_ms: u64) -> Result<usize, StoreError>;
}

/// Twilio retries webhooks it thinks failed: each `MessageSid` is processed once.
#[async_trait]
pub trait DedupeStore: Send + Sync {
    /// Records that a message was received; `true` only the first time.
    async fn first_sight(&self, message_sid: &str, at_ms: u64) -> Result<bool, StoreError>;
    /// Forgets `MessageSid`s first seen before `before_ms`.
    async fn prune_seen_messages(&self, before_ms: u64) -> Result<usize, StoreError>;
}

/// The business data, loaded at first start (SPEC §6.2).
#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn catalog(&self) -> Result<Option<Catalog>, StoreError>;
    async fn put_catalog(&self, catalog: &Catalog) -> Result<(), StoreError>;
}

/// A customer's text message waiting to be answered by the node that owns their
/// conversation (cluster mode): any node takes the webhook, writes the message here (and
/// to the thread) and acknowledges it; the owner answers entries in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InboxEntry {
    /// Store-assigned, increasing: the order entries are answered in.
    pub id: i64,
    pub customer: String,
    pub channel: String,
    pub text: String,
    /// Where the answer goes (`outbound::Destination`, as JSON), when not inline.
    pub route: serde_json::Value,
    /// Which node took the webhook.
    pub received_by: String,
    pub received_at_ms: u64,
}

/// The answer to an inbox entry ([`ClusterStore::answer_text`]).
#[derive(Debug, Clone, Copy)]
pub struct EntryAnswer<'a> {
    /// Whose entry it is.
    pub customer: &'a str,
    /// The entry's id.
    pub id: i64,
    /// The customer's words, written before the answer unless the entry was started.
    pub said: Option<&'a Turn>,
    pub answer: &'a Turn,
    /// A change to the customer's record with it (the agent a handoff made active).
    pub change: Option<&'a CustomerChange>,
}

/// A message the cluster took ([`ClusterStore::take_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenText {
    /// The inbox entry's id.
    pub id: i64,
    /// The node owning the customer's conversation now: the taker if it won the claim.
    pub owner: String,
    /// The customer's entry taken just before this one (see [`NewEntry::prev`]).
    pub prev: Option<i64>,
}

/// A new inbox entry as its conversation's owner is told of it: with the customer's entry
/// taken just before it, so an owner that has taken that one knows nothing lies between
/// and needs no query to take this one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewEntry {
    pub entry: InboxEntry,
    /// The customer's entry taken just before `entry`, whatever became of it; `None` when
    /// none is known (the conversation had no owner row: a first message, or one after
    /// the conversation retired) — the owner then reads the inbox.
    pub prev: Option<i64>,
}

/// A node of the cluster as the others see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    pub node_id: String,
    pub started_at_ms: u64,
    /// The database's clock at the node's last heartbeat.
    pub heartbeat_ms: u64,
    /// How long ago that was, by the database's clock when read.
    #[serde(default)]
    pub silent_ms: u64,
    /// What the node published of its live actors (calls, conversations) for dashboards.
    pub snapshot: serde_json::Value,
}

/// Coordination of the nodes of a cluster: liveness, who answers which customer, and the
/// messages waiting for them. Only a shared backend (PostgreSQL) has it; times are the
/// database's clock, so the nodes' clocks need not agree.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// The node is alive; `snapshot`, when given, is what `/actors` on other nodes shows of
    /// it from now on (else the last one stays).
    async fn heartbeat(
        &self,
        node_id: &str,
        started_at_ms: u64,
        snapshot: Option<&serde_json::Value>,
    ) -> Result<(), StoreError>;
    /// Every node that has ever beaten, most recent first, with how long each is silent.
    async fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError>;
    /// Whether `node_id`'s process is certainly gone: no database session holds its
    /// liveness lock (taken by the node when it starts listening, released by the database
    /// when the process dies). `false` means alive, or not known yet.
    async fn node_gone(&self, node_id: &str) -> Result<bool, StoreError>;
    /// Takes a customer's message, in one transaction: seen once by `dedupe` (the
    /// channel's message id, e.g. Twilio's `MessageSid`), written as an inbox entry, and the
    /// conversation claimed for `entry.received_by` unless a node whose lease is live owns
    /// it — which is told by the same commit (`NOTIFY entry:<owner>:<NewEntry as JSON>`, or
    /// `pull:<owner>:<customer>` when the entry does not fit a notification).
    /// Acknowledged means committed. `None`: `dedupe` was seen before; nothing was written.
    ///
    /// Messages of one customer taken at once on several nodes are serialised by the claim,
    /// so their ids follow their commits: the owner never sees a later id before an
    /// earlier one. Each entry names the one taken before it ([`TakenText::prev`]), so the
    /// owner's notifications can carry the entries themselves.
    async fn take_text(
        &self,
        entry: &InboxEntry,
        dedupe: Option<&str>,
    ) -> Result<Option<TakenText>, StoreError>;
    /// The owner starts answering entry `id` without answering it yet (a supervisor holds
    /// the conversation): the customer's words join their thread — once, even if a node died
    /// between starting and answering and another starts again.
    async fn begin_text(&self, id: i64, turn: &Turn) -> Result<(), StoreError>;
    /// Makes `node` the owner of `customer`'s conversation if no other node with a live
    /// lease owns it (or `force`: a web-chat socket takes its customer along); returns the
    /// owner.
    async fn claim_conversation(
        &self,
        customer: &str,
        node: &str,
        force: bool,
    ) -> Result<String, StoreError>;
    /// Extends `node`'s lease, which covers every conversation it owns: one row per node,
    /// however many conversations it answers.
    async fn renew_lease(
        &self,
        node: &str,
        started_at_ms: u64,
        lease_ms: u64,
    ) -> Result<(), StoreError>;
    /// `node` stops answering `customer` (its conversation retired).
    async fn release_conversation(&self, customer: &str, node: &str) -> Result<(), StoreError>;
    /// The customer's unanswered messages, oldest first.
    async fn pending_texts(&self, customer: &str) -> Result<Vec<InboxEntry>, StoreError>;
    /// Records the answer to the customer's entry and appends it to the thread, in one
    /// transaction —
    /// after `said`, the customer's words, unless the entry was started before
    /// ([`ClusterStore::begin_text`]) — with `change` to the entry's customer (the agent a
    /// handoff made active). `node` answers; when another node took the entry and a webhook
    /// there waits for the answer inline (its route's `kind` is `inline`), it is told by
    /// the same commit (`NOTIFY answer:<id>[:<answer>]`, the answer itself when it fits a
    /// notification). `true` when nobody waits for it
    /// inline any more — the webhook gave up, or the node that took it has been silent for
    /// `dead_after_ms` — so it must go out another way.
    async fn answer_text(
        &self,
        answer: EntryAnswer<'_>,
        node: &str,
        dead_after_ms: u64,
    ) -> Result<bool, StoreError>;
    /// The inline waiter of entry `id` stops waiting: the answer if it came meanwhile,
    /// else `None` and the owner will send it another way.
    async fn give_up_waiting(&self, id: i64) -> Result<Option<String>, StoreError>;
    /// The answer to entry `id`, once there is one.
    async fn answer_of(&self, id: i64) -> Result<Option<String>, StoreError>;
    /// Customers with unanswered messages whose owner's lease ran out (its node died), who
    /// have no owner, or whom `node` owns and left unanswered since `stalled_ms` ago (the
    /// notification announcing them was lost).
    async fn orphaned_conversations(
        &self,
        node: &str,
        stalled_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Retention: answered entries received before `before_ms` are forgotten.
    async fn prune_inbox(&self, before_ms: u64) -> Result<usize, StoreError>;
}

/// Call backs agents promised (`schedule_callback`): kept until placed, across restarts,
/// and placed once — a due call is claimed by exactly one node (or task) even when several
/// look at once, and one whose placing was interrupted is never placed again.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Keeps a promised call; `false` (nothing changed) when its id is there already.
    async fn schedule_call(&self, call: &ScheduledCall) -> Result<bool, StoreError>;
    /// Claims up to `limit` pending calls due at `now_ms` for `node`, earliest first: each
    /// becomes `placing`, and no other claim returns it.
    async fn claim_due_calls(
        &self,
        now_ms: u64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<ScheduledCall>, StoreError>;
    /// Records what came of placing `id`, if `node` holds its claim (`false` otherwise).
    async fn settle_call(
        &self,
        id: &str,
        node: &str,
        outcome: &PlacingOutcome,
        now_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Calls left `placing` since before `before_ms` — their node stopped mid-way, and
    /// Twilio may have rung — become `unconfirmed`. Returns how many.
    async fn abandon_stale_calls(&self, before_ms: u64, now_ms: u64) -> Result<usize, StoreError>;
    /// Up to `limit` scheduled calls: the pending ones by due time, then the others, most
    /// recently changed first.
    async fn scheduled_calls(&self, limit: usize) -> Result<Vec<ScheduledCall>, StoreError>;
}

/// Everything the engine persists. Object-safe: the engine holds an `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    CallStore + CustomerStore + ThreadStore + DedupeStore + CatalogStore + ScheduleStore + Send + Sync
{
    /// Makes every write that returned before this call durable (an fsync for sled; a
    /// no-op for a backend whose writes commit on return). Batch writes, then flush once.
    async fn flush(&self) -> Result<(), StoreError>;
    /// The bookings, for `domain::tools::ToolContext`. Blocking: call them off the actor
    /// threads.
    fn bookings(&self) -> &dyn BookingStore;
    /// Cluster coordination, when the backend is shared by several nodes.
    fn cluster(&self) -> Option<&dyn ClusterStore> {
        None
    }
}
