//! [`Store`] on PostgreSQL: cluster mode (`DATABASE_URL`), where every node reads and writes
//! the same data and coordination lives in the database (row locks, `ON CONFLICT`,
//! transactions), not in home-made consensus.
//!
//! The connections live on a small runtime of their own (two worker threads, or
//! `server.threads`): every query runs there and the caller awaits its result, so an actor
//! thread never waits on the network and the pool does not depend on which actix arbiter
//! happened to open a connection. Under load the takes, the answers and the reads of
//! customers' records, threads and inboxes of a moment go out together, one statement per
//! kind ([`Batches`]), on connections of their own. Bookings, which the pure tool functions
//! call synchronously from the blocking pool, wait on a channel for the same runtime.
//!
//! Durability: every write is a committed statement (or transaction) when it returns, so
//! [`Store::flush`] has nothing left to do — acknowledged means committed.
//!
//! Tables (applied by [`PgStore::migrate`], at start or by `switchboard migrate`):
//!
//! | table | key | what |
//! |---|---|---|
//! | `calls` | `call_sid` | the [`CallRecord`] (JSON), its start time for ordering and pruning |
//! | `call_escalations` | `call_sid` | calls marked for `<Dial>` |
//! | `customers` | `id` | the [`CustomerRecord`] (JSON) |
//! | `turns` | `seq` (identity) | one [`Turn`] of `customer`'s thread; `(customer, seq)` indexed |
//! | `seen_messages` | `message_sid` | first-seen time: each Twilio message processed once |
//! | `catalog` | `id = 1` | the business data |
//! | `bookings` | `slot_id` | who booked the slot |
//! | `nodes` | `node_id` | cluster: each node's last heartbeat and what it runs |
//! | `conversation_owners` | `customer` | cluster: which node answers the customer, until when |
//! | `inbox` | `id` (identity) | cluster: customer messages taken by any node, answered by the owner |
//! | `scheduled_calls` | `id` | promised call backs: the [`ScheduledCall`] (JSON), its state, due time and claiming node; claimed with `FOR UPDATE SKIP LOCKED` |

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_postgres::types::Json;
use tokio_postgres::NoTls;

use super::batches::{key_of, Batches};
use super::{
    CallStore, CatalogStore, ClusterStore, CustomerStore, DedupeStore, EntryAnswer, InboxEntry,
    NewEntry, NodeStatus, ScheduleStore, Store, StoreError, TakenText, ThreadStore,
};
use crate::domain::bookings::{
    BookOutcome, Booking, BookingStore, BookingStoreError, CancelOutcome,
};
use crate::domain::catalog::Catalog;
use crate::domain::outreach::{PlacingOutcome, ScheduledCall};
use crate::domain::records::{CallRecord, CustomerChange, CustomerRecord, RecordingEntry};
use crate::domain::transcript::Turn;

/// Connections per node for everything but the batched statements: enough for every
/// arbiter to have queries in flight. With [`BATCH_POOL_SIZE`] and the listening connection,
/// a node opens at most 18, so PostgreSQL's default `max_connections` (100) serves five.
const POOL_SIZE: usize = 8;
/// Connections of the batched statements (takes, answers, and the reads of customers'
/// records, threads and inboxes): one per statement in flight, and the rest for the answers
/// that change the customer's record (a new conversation's handoff).
const BATCH_POOL_SIZE: usize = 5 * STATEMENTS_IN_FLIGHT + 4;
/// How the batched statements' connections plan: once per connection, and by key.
/// PostgreSQL would otherwise plan them again at every execution — a plan made for the
/// exact number of rows in hand looks cheaper than the general one — and planning these
/// statements cost more than running them. A plan made once is made early, though, often
/// while the tables are nearly empty, when reading a whole table looks cheapest; kept, it
/// would read the whole inbox at every batch ever after. Every row these statements touch
/// is found by its key, so on their connections a table is never read whole.
const GENERIC_PLANS: &str = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off";
/// A query waits this long for a connection before it fails.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Serialises concurrent migrations of nodes starting at once.
const MIGRATION_LOCK: i64 = 0x5357_4d49_4752; // "SWMIGR"

/// The schema, one migration per step; applied in order, each once, recorded in
/// `schema_migrations`. Never edit a step that has shipped: add one.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE calls (
    call_sid      text PRIMARY KEY,
    started_at_ms bigint NOT NULL,
    record        jsonb NOT NULL
);
CREATE INDEX calls_by_start ON calls (started_at_ms DESC, call_sid);
CREATE TABLE call_escalations (
    call_sid text PRIMARY KEY
);
CREATE TABLE customers (
    id     text PRIMARY KEY,
    record jsonb NOT NULL
);
CREATE TABLE turns (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer text NOT NULL,
    turn     jsonb NOT NULL
);
CREATE INDEX turns_by_customer ON turns (customer, seq);
CREATE TABLE seen_messages (
    message_sid   text PRIMARY KEY,
    first_seen_ms bigint NOT NULL
);
CREATE INDEX seen_messages_by_time ON seen_messages (first_seen_ms);
CREATE TABLE catalog (
    id      integer PRIMARY KEY CHECK (id = 1),
    catalog jsonb NOT NULL
);
CREATE TABLE bookings (
    slot_id  text PRIMARY KEY,
    customer text NOT NULL,
    booking  jsonb NOT NULL
);
CREATE INDEX bookings_by_customer ON bookings (customer);
"#,
    ),
    (
        2,
        r#"
CREATE FUNCTION sb_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
CREATE TABLE nodes (
    node_id       text PRIMARY KEY,
    started_at_ms bigint NOT NULL,
    heartbeat_ms  bigint NOT NULL,
    snapshot      jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE conversation_owners (
    customer       text PRIMARY KEY,
    node           text NOT NULL,
    lease_until_ms bigint NOT NULL
);
CREATE INDEX conversation_owners_by_node ON conversation_owners (node);
CREATE TABLE inbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer       text NOT NULL,
    channel        text NOT NULL,
    text           text NOT NULL,
    route          jsonb NOT NULL,
    received_by    text NOT NULL,
    received_at_ms bigint NOT NULL,
    answer         text,
    started        boolean NOT NULL DEFAULT false,
    answered       boolean NOT NULL DEFAULT false,
    gave_up        boolean NOT NULL DEFAULT false
);
CREATE INDEX inbox_pending ON inbox (customer, id) WHERE NOT answered;
CREATE INDEX inbox_by_time ON inbox (received_at_ms);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE scheduled_calls (
    id            text PRIMARY KEY,
    due_at_ms     bigint NOT NULL,
    state         text NOT NULL,
    node          text,
    updated_at_ms bigint NOT NULL,
    record        jsonb NOT NULL
);
CREATE INDEX scheduled_calls_due ON scheduled_calls (due_at_ms, id) WHERE state = 'pending';
CREATE INDEX scheduled_calls_placing ON scheduled_calls (updated_at_ms) WHERE state = 'placing';
"#,
    ),
    (
        4,
        // Numbers and identity, text channels: thread turns are pruned by their time
        // (`storage.retention_days`). Customer changes (text agent, line type, verified
        // numbers) live in `customers.record`, which needs no new column.
        r#"
CREATE INDEX turns_by_time ON turns (((turn->>'at_ms')::bigint));
"#,
    ),
    (
        5,
        // One lease per node instead of one per conversation: renewing it rewrites one row,
        // not every conversation the node answers. A conversation's owner holds it while the
        // owner's lease is live.
        r#"
ALTER TABLE nodes ADD COLUMN lease_until_ms bigint NOT NULL DEFAULT 0;
DROP INDEX conversation_owners_by_node;
ALTER TABLE conversation_owners DROP COLUMN lease_until_ms;
"#,
    ),
    (
        6,
        // Each customer's entries in a chain: the claim draws the entry's id under the
        // owner row's lock and keeps the one before, so a notification can carry the entry
        // and its predecessor (`NewEntry`) and the owner needs no query to take it.
        r#"
ALTER TABLE conversation_owners ADD COLUMN last_inbox_id bigint,
                                ADD COLUMN prev_inbox_id bigint;
"#,
    ),
    (
        7,
        // The channel only one node listens on besides the cluster's: what concerns one
        // node — a message for a conversation it owns, the answer a webhook on it waits for
        // — wakes that node alone. Named in SQL, so the statement that commits a message or
        // an answer also tells its node (delivered at its commit), and the node asks the
        // same function what to `LISTEN` on. At most 63 bytes, as channel names are.
        r#"
CREATE FUNCTION sb_node_channel(channel text, node text) RETURNS text LANGUAGE sql IMMUTABLE AS
    $$ SELECT left(channel, 53) || '_n' || left(md5(node), 8) $$;
"#,
    ),
];

pub struct PgStore {
    pool: Pool,
    /// The batched statements' connections, which plan each statement once
    /// ([`GENERIC_PLANS`]).
    batch_pool: Pool,
    /// Where the connections and every query run.
    runtime: tokio::runtime::Handle,
    /// Owns that runtime; shut down without blocking when the store goes (which may be
    /// inside another runtime).
    owned_runtime: Option<tokio::runtime::Runtime>,
    /// Shown in errors and logs (the URL without its password).
    location: String,
    /// For the listening connection, which is not pooled.
    pg_config: tokio_postgres::Config,
    /// The notification channel of this store's schema, known once connected.
    channel: Channel,
    /// Messages taken, a statement for all those of a moment ([`take_texts`]).
    takes: Batches<Take, Option<TakenText>>,
    /// Answers, with a new customer's first record where a handoff makes one, likewise
    /// ([`answer_texts`]).
    answers: Batches<Answer, Option<Answered>>,
    /// Customers' records read, likewise ([`read_customers`]).
    customers: Batches<String, Option<serde_json::Value>>,
    /// Customers' recent turns read, likewise ([`read_recent_turns`]).
    turn_reads: Batches<RecentTurns, Vec<(i64, serde_json::Value)>>,
    /// Customers' unanswered inbox entries read, likewise ([`read_pending`]).
    pending_reads: Batches<String, Vec<InboxEntry>>,
    /// A test's own schema, dropped with the store.
    #[cfg(test)]
    drop_schema: Option<(String, String)>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|source| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize>(table: &'static str, value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|source| StoreError::Encode { table, source })
}

/// `text` as a `LIKE` pattern that matches it literally, anywhere.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL), in `schema` when given (tests use a schema
    /// of their own), and applies the migrations. Fails with the location and the reason.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        let store = Self::open(url, schema, 0)?;
        store.migrate().await?;
        Ok(store)
    }

    /// A store on `url` that has not touched the database yet (see [`Self::migrate`]), its
    /// runtime on `threads` threads (`server.threads`; 0: two).
    pub fn open(url: &str, schema: Option<&str>, threads: usize) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|err| StoreError::Open {
            location: redact(url),
            reason: format!("not a PostgreSQL URL: {err}"),
        })?;
        if let Some(schema) = schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(StoreError::Open {
                    location: redact(url),
                    reason: format!("schema name {schema:?} must be letters, digits and _"),
                });
            }
            config.options(format!("-c search_path={schema}"));
        }
        config.application_name("switchboard");
        config.connect_timeout(POOL_WAIT);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(if threads == 0 { 2 } else { threads })
            .thread_name("switchboard-pg")
            .enable_all()
            .build()
            .map_err(|err| StoreError::Open {
                location: redact(url),
                reason: format!("cannot start the database runtime: {err}"),
            })?;
        let new_pool = |config: tokio_postgres::Config, size: usize| {
            let manager = Manager::from_config(
                config,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(POOL_WAIT))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|err| StoreError::Open {
                    location: redact(url),
                    reason: err.to_string(),
                })
        };
        let pool = new_pool(config.clone(), POOL_SIZE)?;
        let mut batch_config = config.clone();
        batch_config.options(match config.get_options() {
            Some(options) if !options.trim().is_empty() => format!("{options} {GENERIC_PLANS}"),
            _ => GENERIC_PLANS.to_owned(),
        });
        let batch_pool = new_pool(batch_config, BATCH_POOL_SIZE)?;
        let channel = Channel::default();
        let takes = Batches::start(
            runtime.handle(),
            batch_pool.clone(),
            STATEMENTS_IN_FLIGHT,
            |take: &Take| key_of(&take.entry.customer),
            {
                let channel = channel.clone();
                move |client, takes| {
                    let channel = channel.name();
                    async move { take_texts(&client, &takes, &channel).await }
                }
            },
        );
        let answers = Batches::start(
            runtime.handle(),
            batch_pool.clone(),
            STATEMENTS_IN_FLIGHT,
            |answer: &Answer| key_of(&answer.customer),
            {
                let channel = channel.clone();
                move |client, answers| {
                    let channel = channel.name();
                    async move { answer_texts(&client, &answers, &channel).await }
                }
            },
        );
        let customers = Batches::start(
            runtime.handle(),
            batch_pool.clone(),
            STATEMENTS_IN_FLIGHT,
            |id: &String| key_of(id),
            |client, ids| async move { read_customers(&client, &ids).await },
        );
        let turn_reads = Batches::start(
            runtime.handle(),
            batch_pool.clone(),
            STATEMENTS_IN_FLIGHT,
            |read: &RecentTurns| key_of(&read.customer),
            |client, reads| async move { read_recent_turns(&client, &reads).await },
        );
        let pending_reads = Batches::start(
            runtime.handle(),
            batch_pool.clone(),
            STATEMENTS_IN_FLIGHT,
            |customer: &String| key_of(customer),
            |client, customers| async move { read_pending(&client, &customers).await },
        );
        let store = PgStore {
            pool,
            batch_pool,
            takes,
            answers,
            customers,
            turn_reads,
            pending_reads,
            runtime: runtime.handle().clone(),
            owned_runtime: Some(runtime),
            pg_config: config,
            channel,
            location: redact(url),
            #[cfg(test)]
            drop_schema: None,
        };
        Ok(store)
    }

    /// Applies the migrations this database has not seen yet, under an advisory lock so
    /// nodes starting together apply each once. Returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let location = self.location.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            execute_prepared(&tx, "SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(backend)?;
            let mut applied = 0;
            for (version, sql) in MIGRATIONS {
                let done = query_opt_prepared(
                    &tx,
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
                if done {
                    continue;
                }
                tx.batch_execute(sql)
                    .await
                    .map_err(|err| StoreError::Open {
                        location: location.clone(),
                        reason: format!("migration {version} failed: {err}"),
                    })?;
                execute_prepared(
                    &tx,
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await?;
                applied += 1;
            }
            let schema: String = query_one_prepared(&tx, "SELECT current_schema()", &[])
                .await?
                .get(0);
            tx.commit().await.map_err(backend)?;
            if applied > 0 {
                tracing::info!(applied, %location, "database schema migrated");
            }
            Ok((applied, schema))
        })
        .await
        .map(|(applied, schema)| {
            let _ = self.channel.0.set(cluster_channel(&schema));
            applied
        })
    }

    /// The notification channel (see [`CHANNEL`]).
    /// What names `node_id`'s liveness lock: the node within this store's channel (so a
    /// cluster on another schema has locks of its own).
    fn node_lock_key(&self, node_id: &str) -> String {
        format!("{}/{node_id}", self.channel())
    }

    fn channel(&self) -> String {
        self.channel.name()
    }

    /// What a Twilio callback adds to a call's record — read-modify-write under the row's
    /// lock — made unbridged (dated `at_ms`) when the call has none yet.
    async fn update_from_callback(
        &self,
        call_sid: &str,
        at_ms: u64,
        change: impl FnOnce(&mut CallRecord) + Send + 'static,
    ) -> Result<(), StoreError> {
        let call_sid = call_sid.to_owned();
        let fresh = encode("calls", &CallRecord::unbridged(&call_sid, at_ms))?;
        let started = to_i64(at_ms);
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            tx.execute(
                "INSERT INTO calls (call_sid, started_at_ms, record) VALUES ($1, $2, $3)
                 ON CONFLICT (call_sid) DO NOTHING",
                &[&call_sid, &started, &Json(&fresh)],
            )
            .await
            .map_err(backend)?;
            let row = tx
                .query_one(
                    "SELECT record FROM calls WHERE call_sid = $1 FOR UPDATE",
                    &[&call_sid],
                )
                .await
                .map_err(backend)?;
            let Json(value): Json<serde_json::Value> = row.get(0);
            let mut record: CallRecord = decode("calls", &call_sid, value)?;
            change(&mut record);
            let record = encode("calls", &record)?;
            tx.execute(
                "UPDATE calls SET record = $2 WHERE call_sid = $1",
                &[&call_sid, &Json(&record)],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// Runs `work` with a pooled connection on the database runtime.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.run_in(&self.pool, work).await
    }

    /// [`Self::run`] with a connection of `pool`.
    async fn run_in<T, F, Fut>(&self, pool: &Pool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = pool.clone();
        let location = self.location.clone();
        self.runtime
            .spawn(async move {
                let client = pool.get().await.map_err(|err| {
                    StoreError::Backend(format!("no database connection to {location}: {err}"))
                })?;
                work(client).await
            })
            .await
            .map_err(backend)?
    }

    /// [`Self::run`] for a caller on a blocking thread (the bookings).
    fn run_blocking<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let outcome = match pool.get().await {
                Ok(client) => work(client).await,
                Err(err) => Err(StoreError::Backend(format!(
                    "no database connection: {err}"
                ))),
            };
            let _ = done.send(outcome);
        });
        result
            .recv()
            .map_err(|_| StoreError::Backend("the database runtime stopped".into()))?
    }
}

/// The URL without a password, for errors and logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

#[async_trait]
impl CallStore for PgStore {
    async fn put_call(&self, rec: &CallRecord) -> Result<(), StoreError> {
        let record = encode("calls", rec)?;
        let call_sid = rec.call_sid.clone();
        let started = to_i64(rec.started_at_ms);
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "INSERT INTO calls (call_sid, started_at_ms, record) VALUES ($1, $2, $3)
                     ON CONFLICT (call_sid) DO UPDATE
                       SET started_at_ms = EXCLUDED.started_at_ms,
                           record = EXCLUDED.record || jsonb_build_object(
                               'transcriptions',
                               COALESCE(calls.record->'transcriptions', '[]'::jsonb),
                               'recordings',
                               COALESCE(calls.record->'recordings', '[]'::jsonb))",
                &[&call_sid, &started, &Json(&record)],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        let call_sid = call_sid.to_owned();
        self.run(move |client| async move {
            let row = query_opt_prepared(
                &client,
                "SELECT record FROM calls WHERE call_sid = $1",
                &[&call_sid],
            )
            .await?;
            row.map(|row| {
                let Json(value): Json<serde_json::Value> = row.get(0);
                decode("calls", &call_sid, value)
            })
            .transpose()
        })
        .await
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let limit = to_i64(limit as u64);
        self.run(move |client| async move {
            let rows = query_prepared(
                &client,
                "SELECT call_sid, record FROM calls
                     ORDER BY started_at_ms DESC, call_sid DESC LIMIT $1",
                &[&limit],
            )
            .await?;
            Ok(readable_calls(rows))
        })
        .await
    }

    async fn append_transcription(&self, call_sid: &str, entry: &Turn) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.update_from_callback(call_sid, entry.at_ms, move |record| {
            record.transcriptions.push(entry)
        })
        .await
    }

    async fn note_recording(
        &self,
        call_sid: &str,
        entry: &RecordingEntry,
    ) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.update_from_callback(call_sid, entry.at_ms, move |record| {
            record.note_recording(entry)
        })
        .await
    }

    async fn find_calls_mentioning(
        &self,
        text: &str,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let needle = text.trim();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        let pattern = contains_pattern(needle);
        let limit = to_i64(limit as u64);
        self.run(move |client| async move {
            let rows = query_prepared(
                &client,
                "SELECT call_sid, record FROM calls c
                     WHERE EXISTS (
                         SELECT 1 FROM jsonb_array_elements(
                             COALESCE(c.record->'transcript', '[]'::jsonb)
                             || COALESCE(c.record->'transcriptions', '[]'::jsonb)) AS t
                         WHERE t->>'text' ILIKE $1)
                     ORDER BY started_at_ms DESC, call_sid DESC LIMIT $2",
                &[&pattern, &limit],
            )
            .await?;
            Ok(readable_calls(rows))
        })
        .await
    }

    async fn set_escalated(&self, call_sid: &str) -> Result<(), StoreError> {
        let call_sid = call_sid.to_owned();
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "INSERT INTO call_escalations (call_sid) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&call_sid],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn is_escalated(&self, call_sid: &str) -> Result<bool, StoreError> {
        let call_sid = call_sid.to_owned();
        self.run(move |client| async move {
            Ok(query_opt_prepared(
                &client,
                "SELECT 1 FROM call_escalations WHERE call_sid = $1",
                &[&call_sid],
            )
            .await?
            .is_some())
        })
        .await
    }

    async fn clear_escalated(&self, call_sid: &str) -> Result<(), StoreError> {
        let call_sid = call_sid.to_owned();
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "DELETE FROM call_escalations WHERE call_sid = $1",
                &[&call_sid],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn prune_calls(&self, before_ms: u64) -> Result<usize, StoreError> {
        let before = to_i64(before_ms);
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            let pruned = query_prepared(
                &tx,
                "DELETE FROM calls WHERE started_at_ms < $1 RETURNING call_sid",
                &[&before],
            )
            .await?;
            let sids: Vec<String> = pruned.iter().map(|row| row.get(0)).collect();
            execute_prepared(
                &tx,
                "DELETE FROM call_escalations WHERE call_sid = ANY($1)",
                &[&sids],
            )
            .await?;
            tx.commit().await.map_err(backend)?;
            Ok(sids.len())
        })
        .await
    }
}

/// Call records from `(call_sid, record)` rows; unreadable ones are skipped and logged.
fn readable_calls(rows: Vec<tokio_postgres::Row>) -> Vec<CallRecord> {
    rows.into_iter()
        .filter_map(|row| {
            let call_sid: String = row.get(0);
            let Json(value): Json<serde_json::Value> = row.get(1);
            decode("calls", &call_sid, value)
                .map_err(|err| tracing::warn!(%err, "skipping an unreadable call record"))
                .ok()
        })
        .collect()
}

#[async_trait]
impl CustomerStore for PgStore {
    async fn customer(&self, id: &str) -> Result<Option<CustomerRecord>, StoreError> {
        // Read with the other reads of the moment ([`read_customers`]).
        let record = self.customers.send(id.to_owned()).await?;
        record
            .map(|value| decode("customers", id, value))
            .transpose()
    }

    /// Read-modify-write under the row's lock: concurrent calls of one customer, from any
    /// node, all land.
    async fn update_customer(
        &self,
        id: &str,
        change: &CustomerChange,
    ) -> Result<CustomerRecord, StoreError> {
        let id = id.to_owned();
        let change = change.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            let customer = change_customer(&tx, &id, &change).await?;
            tx.commit().await.map_err(backend)?;
            Ok(customer)
        })
        .await
    }
}

/// Applies `change` to customer `id`'s record — made if there is none — under the row's
/// lock: call it within a transaction.
async fn change_customer(
    tx: &impl deadpool_postgres::GenericClient,
    id: &str,
    change: &CustomerChange,
) -> Result<CustomerRecord, StoreError> {
    let new = CustomerRecord::changed(id, None, change);
    let fresh = encode("customers", &new)?;
    let inserted = execute_prepared(
        tx,
        "INSERT INTO customers (id, record) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        &[&id, &Json(&fresh)],
    )
    .await?;
    if inserted == 1 {
        // A new customer: the row is the change, locked by its insert until the commit.
        return Ok(new);
    }
    let row = query_one_prepared(
        tx,
        "SELECT record FROM customers WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    let Json(value): Json<serde_json::Value> = row.get(0);
    let mut customer: CustomerRecord = decode("customers", id, value)?;
    customer.apply(change);
    let record = encode("customers", &customer)?;
    execute_prepared(
        tx,
        "UPDATE customers SET record = $2 WHERE id = $1",
        &[&id, &Json(&record)],
    )
    .await?;
    Ok(customer)
}

#[async_trait]
impl ThreadStore for PgStore {
    async fn append_turn(&self, customer: &str, turn: &Turn) -> Result<(), StoreError> {
        let customer = customer.to_owned();
        let turn = encode("turns", turn)?;
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "INSERT INTO turns (customer, turn) VALUES ($1, $2)",
                &[&customer, &Json(&turn)],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn recent_turns(&self, customer: &str, limit: usize) -> Result<Vec<Turn>, StoreError> {
        // Read with the other threads' reads of the moment ([`read_recent_turns`]).
        let rows = self
            .turn_reads
            .send(RecentTurns {
                customer: customer.to_owned(),
                limit: to_i64(limit as u64),
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, value)| {
                decode("turns", &seq.to_string(), value)
                    .map_err(|err| tracing::warn!(%err, "skipping an unreadable conversation turn"))
                    .ok()
            })
            .collect())
    }

    async fn prune_turns(&self, before_ms: u64) -> Result<usize, StoreError> {
        let before = to_i64(before_ms);
        self.run(move |client| async move {
            let pruned = client
                .execute(
                    "DELETE FROM turns WHERE (turn->>'at_ms')::bigint < $1",
                    &[&before],
                )
                .await
                .map_err(backend)?;
            Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[async_trait]
impl DedupeStore for PgStore {
    async fn first_sight(&self, message_sid: &str, at_ms: u64) -> Result<bool, StoreError> {
        let message_sid = message_sid.to_owned();
        let at = to_i64(at_ms);
        self.run(move |client| async move {
            let inserted = execute_prepared(
                &client,
                "INSERT INTO seen_messages (message_sid, first_seen_ms) VALUES ($1, $2)
                     ON CONFLICT (message_sid) DO NOTHING",
                &[&message_sid, &at],
            )
            .await?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn prune_seen_messages(&self, before_ms: u64) -> Result<usize, StoreError> {
        let before = to_i64(before_ms);
        self.run(move |client| async move {
            let pruned = execute_prepared(
                &client,
                "DELETE FROM seen_messages WHERE first_seen_ms < $1",
                &[&before],
            )
            .await?;
            Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn catalog(&self) -> Result<Option<Catalog>, StoreError> {
        self.run(move |client| async move {
            let row = query_opt_prepared(&client, "SELECT catalog FROM catalog WHERE id = 1", &[])
                .await?;
            row.map(|row| {
                let Json(value): Json<serde_json::Value> = row.get(0);
                decode("catalog", "1", value)
            })
            .transpose()
        })
        .await
    }

    async fn put_catalog(&self, catalog: &Catalog) -> Result<(), StoreError> {
        let catalog = encode("catalog", catalog)?;
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "INSERT INTO catalog (id, catalog) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET catalog = EXCLUDED.catalog",
                &[&Json(&catalog)],
            )
            .await?;
            Ok(())
        })
        .await
    }
}

/// Writes a scheduled call's record and the columns queries use, in `tx`.
async fn write_scheduled(
    tx: &tokio_postgres::Transaction<'_>,
    call: &ScheduledCall,
) -> Result<(), StoreError> {
    let record = encode("scheduled_calls", call)?;
    tx.execute(
        "UPDATE scheduled_calls
         SET due_at_ms = $2, state = $3, node = $4, updated_at_ms = $5, record = $6
         WHERE id = $1",
        &[
            &call.id,
            &to_i64(call.due_at_ms),
            &call.state.as_str(),
            &call.node,
            &to_i64(call.updated_at_ms),
            &Json(&record),
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// Scheduled calls from rows of `(id, record)`; unreadable ones are logged and skipped.
fn readable_scheduled(rows: Vec<tokio_postgres::Row>) -> Vec<ScheduledCall> {
    rows.into_iter()
        .filter_map(|row| {
            let id: String = row.get(0);
            let Json(value): Json<serde_json::Value> = row.get(1);
            decode::<ScheduledCall>("scheduled_calls", &id, value)
                .map_err(|err| tracing::warn!(error = %err, "unreadable scheduled call skipped"))
                .ok()
        })
        .collect()
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn schedule_call(&self, call: &ScheduledCall) -> Result<bool, StoreError> {
        let record = encode("scheduled_calls", call)?;
        let call = call.clone();
        self.run(move |client| async move {
            let inserted = client
                .execute(
                    "INSERT INTO scheduled_calls (id, due_at_ms, state, node, updated_at_ms, record)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                    &[
                        &call.id,
                        &to_i64(call.due_at_ms),
                        &call.state.as_str(),
                        &call.node,
                        &to_i64(call.updated_at_ms),
                        &Json(&record),
                    ],
                )
                .await
                .map_err(backend)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn claim_due_calls(
        &self,
        now_ms: u64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<ScheduledCall>, StoreError> {
        let node = node.to_owned();
        let limit = to_i64(limit as u64);
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            // Rows another node is claiming right now are skipped, not waited for; a row it
            // has claimed and committed is no longer pending when the condition is rechecked.
            let rows = tx
                .query(
                    "SELECT id, record FROM scheduled_calls
                     WHERE state = 'pending' AND due_at_ms <= $1
                     ORDER BY due_at_ms, id LIMIT $2
                     FOR UPDATE SKIP LOCKED",
                    &[&to_i64(now_ms), &limit],
                )
                .await
                .map_err(backend)?;
            let mut claimed = Vec::new();
            for mut call in readable_scheduled(rows) {
                if call.claimable(now_ms) {
                    call.claim(&node, now_ms);
                    write_scheduled(&tx, &call).await?;
                    claimed.push(call);
                }
            }
            tx.commit().await.map_err(backend)?;
            Ok(claimed)
        })
        .await
    }

    async fn settle_call(
        &self,
        id: &str,
        node: &str,
        outcome: &PlacingOutcome,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let (id, node, outcome) = (id.to_owned(), node.to_owned(), outcome.clone());
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            let rows = tx
                .query(
                    "SELECT id, record FROM scheduled_calls WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(backend)?;
            let mut settled = false;
            for mut call in readable_scheduled(rows) {
                if call.settle(&node, &outcome, now_ms) {
                    write_scheduled(&tx, &call).await?;
                    settled = true;
                }
            }
            tx.commit().await.map_err(backend)?;
            Ok(settled)
        })
        .await
    }

    async fn abandon_stale_calls(&self, before_ms: u64, now_ms: u64) -> Result<usize, StoreError> {
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            let rows = tx
                .query(
                    "SELECT id, record FROM scheduled_calls
                     WHERE state = 'placing' AND updated_at_ms < $1
                     FOR UPDATE SKIP LOCKED",
                    &[&to_i64(before_ms)],
                )
                .await
                .map_err(backend)?;
            let mut abandoned = 0;
            for mut call in readable_scheduled(rows) {
                if call.stale(before_ms) {
                    call.abandon(now_ms);
                    write_scheduled(&tx, &call).await?;
                    abandoned += 1;
                }
            }
            tx.commit().await.map_err(backend)?;
            Ok(abandoned)
        })
        .await
    }

    async fn scheduled_calls(&self, limit: usize) -> Result<Vec<ScheduledCall>, StoreError> {
        let limit = to_i64(limit as u64);
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, record FROM scheduled_calls
                     ORDER BY (state <> 'pending'),
                              CASE WHEN state = 'pending' THEN due_at_ms ELSE -updated_at_ms END,
                              id
                     LIMIT $1",
                    &[&limit],
                )
                .await
                .map_err(backend)?;
            Ok(readable_scheduled(rows))
        })
        .await
    }
}

#[async_trait]
impl Store for PgStore {
    /// Every write committed when it returned: nothing is waiting to be made durable.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn bookings(&self) -> &dyn BookingStore {
        self
    }

    fn cluster(&self) -> Option<&dyn ClusterStore> {
        Some(self)
    }
}

impl BookingStore for PgStore {
    /// One statement decides: the slot's primary key refuses a second booking, whichever
    /// node it comes from.
    fn try_book(&self, booking: &Booking) -> Result<BookOutcome, BookingStoreError> {
        let wanted = booking.clone();
        let value = encode("bookings", booking)?;
        Ok(self.run_blocking(move |client| async move {
            let inserted = execute_prepared(
                &client,
                "INSERT INTO bookings (slot_id, customer, booking) VALUES ($1, $2, $3)
                     ON CONFLICT (slot_id) DO NOTHING",
                &[&wanted.slot_id, &wanted.customer, &Json(&value)],
            )
            .await?;
            if inserted == 1 {
                return Ok(BookOutcome::Booked);
            }
            let row = query_opt_prepared(
                &client,
                "SELECT booking FROM bookings WHERE slot_id = $1",
                &[&wanted.slot_id],
            )
            .await?;
            match row {
                Some(row) => {
                    let Json(existing): Json<serde_json::Value> = row.get(0);
                    Ok(BookOutcome::AlreadyBooked(decode(
                        "bookings",
                        &wanted.slot_id,
                        existing,
                    )?))
                }
                // Cancelled between the two statements: the slot is free again.
                None => Err(StoreError::Contention {
                    table: "bookings",
                    key: wanted.slot_id,
                }),
            }
        })?)
    }

    fn cancel(&self, slot_id: &str, customer: &str) -> Result<CancelOutcome, BookingStoreError> {
        let slot_id = slot_id.to_owned();
        let customer = customer.to_owned();
        Ok(self.run_blocking(move |client| async move {
            let deleted = query_opt_prepared(
                &client,
                "DELETE FROM bookings WHERE slot_id = $1 AND customer = $2 RETURNING booking",
                &[&slot_id, &customer],
            )
            .await?;
            if let Some(row) = deleted {
                let Json(value): Json<serde_json::Value> = row.get(0);
                return Ok(CancelOutcome::Cancelled(decode(
                    "bookings", &slot_id, value,
                )?));
            }
            let exists = query_opt_prepared(
                &client,
                "SELECT 1 FROM bookings WHERE slot_id = $1",
                &[&slot_id],
            )
            .await?
            .is_some();
            Ok(if exists {
                CancelOutcome::NotYours
            } else {
                CancelOutcome::NotBooked
            })
        })?)
    }

    fn booking(&self, slot_id: &str) -> Result<Option<Booking>, BookingStoreError> {
        let slot_id = slot_id.to_owned();
        Ok(self.run_blocking(move |client| async move {
            let row = query_opt_prepared(
                &client,
                "SELECT booking FROM bookings WHERE slot_id = $1",
                &[&slot_id],
            )
            .await?;
            row.map(|row| {
                let Json(value): Json<serde_json::Value> = row.get(0);
                decode("bookings", &slot_id, value)
            })
            .transpose()
        })?)
    }

    fn customer_bookings(&self, customer: &str) -> Result<Vec<Booking>, BookingStoreError> {
        let customer = customer.to_owned();
        Ok(self.run_blocking(move |client| async move {
            let rows = query_prepared(
                &client,
                "SELECT slot_id, booking FROM bookings WHERE customer = $1 ORDER BY slot_id",
                &[&customer],
            )
            .await?;
            rows.into_iter()
                .map(|row| {
                    let slot_id: String = row.get(0);
                    let Json(value): Json<serde_json::Value> = row.get(1);
                    decode("bookings", &slot_id, value)
                })
                .collect()
        })?)
    }
}

/// Statements of one kind (takes, answers, each kind of read) a node has running at once; what
/// arrives meanwhile waits for the next ([`Batches`]). One: under load each statement then
/// carries more, and three nodes on two cores answered 2,000 texts a second with p99 101–156
/// ms against 140 ms with two (BENCHMARKS.md).
const STATEMENTS_IN_FLIGHT: usize = 1;

/// The records of customers `ids` (all different), as stored: one statement.
async fn read_customers(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[String],
) -> Result<Vec<Option<serde_json::Value>>, StoreError> {
    let rows = query_prepared(
        client,
        "SELECT id, record FROM customers WHERE id = ANY($1::text[])",
        &[&ids],
    )
    .await?;
    let mut found: std::collections::HashMap<String, serde_json::Value> = rows
        .into_iter()
        .map(|row| {
            let Json(value): Json<serde_json::Value> = row.get(1);
            (row.get(0), value)
        })
        .collect();
    Ok(ids.iter().map(|id| found.remove(id)).collect())
}

/// A customer's recent turns to read ([`ThreadStore::recent_turns`]).
#[derive(Clone)]
struct RecentTurns {
    customer: String,
    limit: i64,
}

/// The last `limit` turns of each customer of `reads` (all different), oldest first, with
/// their sequence numbers: one statement, each customer's through the thread's index.
async fn read_recent_turns(
    client: &impl deadpool_postgres::GenericClient,
    reads: &[RecentTurns],
) -> Result<Vec<Vec<(i64, serde_json::Value)>>, StoreError> {
    let customers: Vec<&str> = reads.iter().map(|r| r.customer.as_str()).collect();
    let limits: Vec<i64> = reads.iter().map(|r| r.limit).collect();
    let rows = query_prepared(
        client,
        "SELECT r.ord, t.seq, t.turn
         FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r (customer, lim, ord)
         CROSS JOIN LATERAL (
             SELECT seq, turn FROM turns WHERE turns.customer = r.customer
             ORDER BY seq DESC LIMIT r.lim) AS t
         ORDER BY r.ord, t.seq",
        &[&customers, &limits],
    )
    .await?;
    let mut threads: Vec<Vec<(i64, serde_json::Value)>> =
        reads.iter().map(|_| Vec::new()).collect();
    for row in rows {
        let ord: i64 = row.get(0);
        let Json(turn): Json<serde_json::Value> = row.get(2);
        if let Some(thread) = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| threads.get_mut(i))
        {
            thread.push((row.get(1), turn));
        }
    }
    Ok(threads)
}

/// The unanswered inbox entries of each of `customers` (all different), in id order: one
/// statement.
async fn read_pending(
    client: &impl deadpool_postgres::GenericClient,
    customers: &[String],
) -> Result<Vec<Vec<InboxEntry>>, StoreError> {
    let rows = query_prepared(
        client,
        "SELECT id, customer, channel, text, route, received_by, received_at_ms
             FROM inbox WHERE customer = ANY($1::text[]) AND NOT answered ORDER BY id",
        &[&customers],
    )
    .await?;
    let mut pending: std::collections::HashMap<String, Vec<InboxEntry>> =
        std::collections::HashMap::with_capacity(customers.len());
    for row in rows {
        let Json(route): Json<serde_json::Value> = row.get(4);
        let entry = InboxEntry {
            id: row.get(0),
            customer: row.get(1),
            channel: row.get(2),
            text: row.get(3),
            route,
            received_by: row.get(5),
            received_at_ms: u64::try_from(row.get::<_, i64>(6)).unwrap_or(0),
        };
        pending
            .entry(entry.customer.clone())
            .or_default()
            .push(entry);
    }
    Ok(customers
        .iter()
        .map(|customer| pending.remove(customer).unwrap_or_default())
        .collect())
}

/// A message to take ([`ClusterStore::take_text`]).
#[derive(Clone)]
struct Take {
    entry: InboxEntry,
    dedupe: Option<String>,
    /// The owner's notification if another node owns the conversation: the entry as a
    /// [`NewEntry`], whose `id` and `prev` the statement fills in.
    notice: serde_json::Value,
}

/// Takes `takes` — customers all different — in one statement, so one transaction and one
/// commit: each message id seen, each claim and each entry. A claim always updates the row
/// it meets, so `RETURNING` names the owner as of the lock, never a stale snapshot's; and it
/// draws the entry's id under that lock, so a customer's concurrent messages get their ids
/// in the order of their commits, each naming the one before it. (A new row's id is drawn
/// before its insert; a message meeting it waits for its commit and draws after.) Message
/// ids are recorded, then owners locked, each in key order, so two nodes' statements never
/// wait for each other in a circle. `None`: a message seen before.
async fn take_texts(
    client: &impl deadpool_postgres::GenericClient,
    takes: &[Take],
    channel: &str,
) -> Result<Vec<Option<TakenText>>, StoreError> {
    let customers: Vec<&str> = takes.iter().map(|t| t.entry.customer.as_str()).collect();
    let channels: Vec<&str> = takes.iter().map(|t| t.entry.channel.as_str()).collect();
    let texts: Vec<&str> = takes.iter().map(|t| t.entry.text.as_str()).collect();
    let routes: Vec<Json<&serde_json::Value>> =
        takes.iter().map(|t| Json(&t.entry.route)).collect();
    let takers: Vec<&str> = takes.iter().map(|t| t.entry.received_by.as_str()).collect();
    let times: Vec<i64> = takes
        .iter()
        .map(|t| to_i64(t.entry.received_at_ms))
        .collect();
    let dedupes: Vec<Option<&str>> = takes.iter().map(|t| t.dedupe.as_deref()).collect();
    let notices: Vec<Json<&serde_json::Value>> = takes.iter().map(|t| Json(&t.notice)).collect();
    let rows = query_prepared(
        client,
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                                  $6::bigint[], $7::text[], $8::jsonb[])
                 WITH ORDINALITY AS t (customer, channel, text, route, received_by,
                                       received_at_ms, dedupe, notice, ord)
         ), seen AS (
             INSERT INTO seen_messages (message_sid, first_seen_ms)
             SELECT dedupe, received_at_ms FROM input WHERE dedupe IS NOT NULL
             ORDER BY dedupe
             ON CONFLICT (message_sid) DO NOTHING
             RETURNING message_sid
         ), fresh AS (
             SELECT input.* FROM input LEFT JOIN seen ON seen.message_sid = input.dedupe
             WHERE input.dedupe IS NULL OR seen.message_sid IS NOT NULL
             ORDER BY input.customer
         ), claimed AS (
             INSERT INTO conversation_owners (customer, node, last_inbox_id)
             SELECT customer, received_by, nextval('inbox_id_seq') FROM fresh
             ORDER BY customer
             ON CONFLICT (customer) DO UPDATE SET node = CASE
                 WHEN conversation_owners.node = EXCLUDED.node OR NOT EXISTS (
                     SELECT 1 FROM nodes n
                     WHERE n.node_id = conversation_owners.node
                       AND n.lease_until_ms >= sb_now_ms())
                 THEN EXCLUDED.node ELSE conversation_owners.node END,
               prev_inbox_id = conversation_owners.last_inbox_id,
               last_inbox_id = nextval('inbox_id_seq')
             RETURNING customer, node, last_inbox_id, prev_inbox_id
         ), entry AS (
             INSERT INTO inbox (id, customer, channel, text, route, received_by,
                                received_at_ms)
             OVERRIDING SYSTEM VALUE
             SELECT claimed.last_inbox_id, fresh.customer, fresh.channel, fresh.text,
                    fresh.route, fresh.received_by, fresh.received_at_ms
             FROM claimed JOIN fresh ON fresh.customer = claimed.customer
             RETURNING id, customer
         ), told AS (
             SELECT pg_notify(sb_node_channel($9, claimed.node),
                      CASE WHEN octet_length(notice.json::text) <= $10
                           THEN 'entry:' || claimed.node || ':' || notice.json::text
                           ELSE 'pull:' || claimed.node || ':' || fresh.customer END)
             FROM entry JOIN claimed ON claimed.customer = entry.customer
                        JOIN fresh ON fresh.customer = entry.customer,
                  LATERAL (SELECT jsonb_set(
                      jsonb_set(fresh.notice, '{entry,id}', to_jsonb(entry.id)),
                      '{prev}', coalesce(to_jsonb(claimed.prev_inbox_id), 'null'))) AS notice (json)
             WHERE claimed.node <> fresh.received_by
         )
         SELECT fresh.ord, entry.id, claimed.node, claimed.prev_inbox_id,
                (SELECT count(*) FROM told)
         FROM entry JOIN claimed ON claimed.customer = entry.customer
                    JOIN fresh ON fresh.customer = entry.customer",
        &[
            &customers,
            &channels,
            &texts,
            &routes,
            &takers,
            &times,
            &dedupes,
            &notices,
            &channel,
            &NOTICE_ROOM,
        ],
    )
    .await?;
    let mut taken = vec![None; takes.len()];
    for row in rows {
        let ord: i64 = row.get(0);
        let slot = usize::try_from(ord - 1).ok().and_then(|i| taken.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(TakenText {
                id: row.get(1),
                owner: row.get(2),
                prev: row.get(3),
            });
        }
    }
    Ok(taken)
}

/// An answer to write ([`ClusterStore::answer_text`]).
#[derive(Clone)]
struct Answer {
    /// Whose entry it is: a statement holds one answer per customer.
    customer: String,
    id: i64,
    text: String,
    said: Option<serde_json::Value>,
    turn: serde_json::Value,
    dead_after_ms: i64,
    /// The record a handoff makes for a customer without one, inserted with the answer; the
    /// answer is written only if it was (see [`answer_texts`]).
    first: Option<serde_json::Value>,
    /// The node answering: the node that took the entry is told unless it is this one.
    node: String,
}

/// What answering an entry found.
struct Answered {
    customer: String,
    /// Nobody waits for it any more (the waiter gave up, or its node is dead).
    gave_up: bool,
}

/// Writes `answers` — of customers all different — in one statement: each entry answered
/// (once: `NOT answered` under the row's lock, taken in id order), the customer's words
/// unless an earlier start wrote them, then the answer — inserted in that order, so their
/// sequence numbers keep it. An answer carrying a `first` record (a new conversation's
/// handoff) inserts it too, and is written only if that insert happened. `None`: answered
/// already — or, for an answer with a `first` record, nothing done because the customer has
/// a record already ([`ClusterStore::answer_text`] then changes it in a transaction).
///
/// Every access to `inbox` goes through its primary key ([`GENERIC_PLANS`]): the rows are
/// locked one by one by id (a lateral lookup; `answered` is read after the lock, so the
/// pending entries' partial index, which would be read whole, cannot serve it), and the
/// update names the ids again.
async fn answer_texts(
    client: &impl deadpool_postgres::GenericClient,
    answers: &[Answer],
    channel: &str,
) -> Result<Vec<Option<Answered>>, StoreError> {
    let ids: Vec<i64> = answers.iter().map(|a| a.id).collect();
    let texts: Vec<&str> = answers.iter().map(|a| a.text.as_str()).collect();
    let said: Vec<Option<Json<&serde_json::Value>>> =
        answers.iter().map(|a| a.said.as_ref().map(Json)).collect();
    let turns: Vec<Json<&serde_json::Value>> = answers.iter().map(|a| Json(&a.turn)).collect();
    let dead_after: Vec<i64> = answers.iter().map(|a| a.dead_after_ms).collect();
    let customers: Vec<&str> = answers.iter().map(|a| a.customer.as_str()).collect();
    let firsts: Vec<Option<Json<&serde_json::Value>>> =
        answers.iter().map(|a| a.first.as_ref().map(Json)).collect();
    let nodes: Vec<&str> = answers.iter().map(|a| a.node.as_str()).collect();
    let rows = query_prepared(
        client,
        ANSWERS,
        &[
            &ids,
            &texts,
            &said,
            &turns,
            &dead_after,
            &customers,
            &firsts,
            &nodes,
            &channel,
            &NOTICE_ROOM,
        ],
    )
    .await?;
    let mut answered: Vec<Option<Answered>> = answers.iter().map(|_| None).collect();
    for row in rows {
        let ord: i64 = row.get(0);
        let slot = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| answered.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(Answered {
                gave_up: row.get(1),
                customer: row.get(2),
            });
        }
    }
    Ok(answered)
}

/// [`answer_texts`] for one answer.
async fn answer_one(
    client: &impl deadpool_postgres::GenericClient,
    answer: &Answer,
    channel: &str,
) -> Result<Option<Answered>, StoreError> {
    let answered = answer_texts(client, std::slice::from_ref(answer), channel).await?;
    Ok(answered.into_iter().next().flatten())
}

/// [`answer_texts`]'s statement. A first record (`first`) is inserted only for an entry not
/// answered yet, and its answer written only if the insert happened: a known customer's
/// record is left alone, for the caller to change under its lock.
const ANSWERS: &str = "WITH input AS (
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::jsonb[],
                              $5::bigint[], $6::text[], $7::jsonb[], $8::text[])
             WITH ORDINALITY AS t (id, answer, said, turn, dead_after_ms, customer, first,
                                   node, ord)
     ), before AS (
         SELECT input.id, locked.started, locked.answered
         FROM (SELECT id FROM input ORDER BY id) AS input CROSS JOIN LATERAL (
             SELECT inbox.started, inbox.answered FROM inbox
             WHERE inbox.id = input.id FOR UPDATE) AS locked
     ), added AS (
         INSERT INTO customers (id, record)
         SELECT input.customer, input.first
         FROM before JOIN input ON input.id = before.id
         WHERE input.first IS NOT NULL AND NOT before.answered
         ORDER BY input.customer
         ON CONFLICT (id) DO NOTHING
         RETURNING id
     ), done AS (
         UPDATE inbox SET answered = true, started = true, answer = input.answer
         FROM before JOIN input ON input.id = before.id
         WHERE inbox.id = ANY($1::bigint[]) AND inbox.id = before.id
           AND NOT before.answered
           AND (input.first IS NULL OR input.customer IN (SELECT id FROM added))
         RETURNING inbox.id, inbox.customer, inbox.received_by, before.started,
           -- Only an inline webhook waits (the route is `InboxRoute`, tagged by `kind`).
           inbox.route->>'kind' = 'inline' AS waited,
           inbox.gave_up OR NOT EXISTS (
               SELECT 1 FROM nodes
               WHERE node_id = inbox.received_by
                 AND heartbeat_ms > sb_now_ms() - input.dead_after_ms) AS gave_up
     ), turns_added AS (
         INSERT INTO turns (customer, turn)
         SELECT done.customer, t.turn
         FROM done JOIN input ON input.id = done.id,
              LATERAL (VALUES (1, input.said), (2, input.turn)) AS t (ord, turn)
         WHERE t.turn IS NOT NULL AND (t.ord = 2 OR NOT done.started)
         ORDER BY done.id, t.ord
     ), told AS (
         SELECT pg_notify(sb_node_channel($9, done.received_by),
                  CASE WHEN octet_length(input.answer) <= $10
                       THEN 'answer:' || done.id || ':' || input.answer
                       ELSE 'answer:' || done.id END)
         FROM done JOIN input ON input.id = done.id
         WHERE done.waited AND done.received_by <> input.node
     )
     SELECT input.ord, done.gave_up, done.customer, (SELECT count(*) FROM told)
     FROM done JOIN input ON input.id = done.id";

/// Runs `sql` on `client` as `execute` does, prepared once per connection (the statement is
/// parsed and planned by PostgreSQL the first time only).
async fn execute_prepared(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.execute(&statement, params).await.map_err(backend)
}

/// [`execute_prepared`] for a query's rows.
async fn query_prepared(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query(&statement, params).await.map_err(backend)
}

/// [`execute_prepared`] for a query of exactly one row.
async fn query_one_prepared(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<tokio_postgres::Row, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query_one(&statement, params).await.map_err(backend)
}

/// [`execute_prepared`] for a query of at most one row.
async fn query_opt_prepared(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.query_opt(&statement, params).await.map_err(backend)
}

/// First key of the nodes' liveness locks (the second is a hash of the node's name).
const NODE_LOCK_CLASS: i32 = 0x5357_4e44; // "SWND"

/// The `LISTEN`/`NOTIFY` channel the nodes talk on (with the schema's name when it is not
/// `public`: channels are per database, and clusters on other schemas must not hear it).
const CHANNEL: &str = "switchboard";

/// The cluster's channel on `schema`: [`CHANNEL`], with the schema's name unless it is
/// `public`, cut to the 63 bytes PostgreSQL keeps of a name (`pg_notify` refuses longer).
fn cluster_channel(schema: &str) -> String {
    if schema == "public" {
        return CHANNEL.to_owned();
    }
    let mut channel = format!("{CHANNEL}_{schema}");
    let mut end = channel.len().min(63);
    while !channel.is_char_boundary(end) {
        end -= 1;
    }
    channel.truncate(end);
    channel
}

/// This store's [`CHANNEL`], known once the schema is (set by [`PgStore::migrate`]); shared
/// with the statements that notify.
#[derive(Clone, Default)]
struct Channel(Arc<std::sync::OnceLock<String>>);

impl Channel {
    fn name(&self) -> String {
        self.0.get().cloned().unwrap_or_else(|| CHANNEL.to_owned())
    }
}

/// Room for what a notification carries besides its tag and node (PostgreSQL takes payloads
/// under 8000 bytes): a longer entry or answer is announced without itself, and read.
const NOTICE_ROOM: i32 = 7000;

impl PgStore {
    /// Notifications on the cluster's channel, as they arrive, for as long as the receiver
    /// is kept. A dedicated connection (not pooled) listens; when it breaks it is reopened
    /// after a second — what was said meanwhile is lost, which is why every notification
    /// is also found by the nodes' periodic sweeps.
    ///
    /// The same connection holds `node_id`'s liveness lock (a session-level advisory lock,
    /// [`ClusterStore::node_gone`]): PostgreSQL releases it the moment the node's process
    /// dies and its socket closes, long before its heartbeat goes stale.
    pub fn listen(&self, node_id: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let config = self.pg_config.clone();
        let location = self.location.clone();
        let channel = self.channel();
        let node = node_id.to_owned();
        let lock_key = self.node_lock_key(node_id);
        self.runtime.spawn(async move {
            while !tx.is_closed() {
                match config.connect(NoTls).await {
                    Ok((client, mut connection)) => {
                        // The connection delivers notifications only while it is polled, and
                        // `LISTEN` completes only then too: poll it on its own task.
                        let notifications = tx.clone();
                        let reader = tokio::spawn(async move {
                            use futures_util::StreamExt as _;
                            let mut messages = futures_util::stream::poll_fn(move |cx| {
                                connection.poll_message(cx)
                            });
                            while let Some(message) = messages.next().await {
                                match message {
                                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                        if notifications.send(n.payload().to_owned()).is_err() {
                                            return;
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(err) => {
                                        tracing::warn!(%err, "the listening connection broke");
                                        return;
                                    }
                                }
                            }
                        });
                        let listening = async {
                            // The cluster's channel and the node's own (migration 7).
                            let own: String = client
                                .query_one("SELECT sb_node_channel($1, $2)", &[&channel, &node])
                                .await?
                                .get(0);
                            // Quoted: the schema's name keeps its case, as `pg_notify`
                            // takes it.
                            client
                                .batch_execute(&format!("LISTEN \"{channel}\"; LISTEN \"{own}\""))
                                .await
                        };
                        match listening.await {
                            Ok(()) => {
                                // Waits while an earlier session of this node (a process
                                // just killed) still holds it.
                                if let Err(err) = client
                                    .execute(
                                        "SELECT pg_advisory_lock($1, hashtext($2))",
                                        &[&NODE_LOCK_CLASS, &lock_key],
                                    )
                                    .await
                                {
                                    tracing::warn!(%err, %location, "cannot take the node's liveness lock");
                                }
                                let _ = reader.await;
                            }
                            Err(err) => {
                                tracing::warn!(%err, %location, "cannot LISTEN; retrying");
                                reader.abort();
                            }
                        }
                        drop(client);
                    }
                    Err(err) => {
                        tracing::warn!(%err, %location, "cannot open the listening connection")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        rx
    }
}

#[async_trait]
impl ClusterStore for PgStore {
    async fn heartbeat(
        &self,
        node_id: &str,
        started_at_ms: u64,
        snapshot: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let node_id = node_id.to_owned();
        let started = to_i64(started_at_ms);
        let snapshot = snapshot.cloned();
        self.run(move |client| async move {
            match snapshot {
                Some(snapshot) => {
                    execute_prepared(
                        &client,
                        "INSERT INTO nodes (node_id, started_at_ms, heartbeat_ms, snapshot)
                             VALUES ($1, $2, sb_now_ms(), $3)
                             ON CONFLICT (node_id) DO UPDATE
                               SET started_at_ms = EXCLUDED.started_at_ms,
                                   heartbeat_ms = EXCLUDED.heartbeat_ms,
                                   snapshot = EXCLUDED.snapshot",
                        &[&node_id, &started, &Json(&snapshot)],
                    )
                    .await?
                }
                // The large snapshot is left as it is (not rewritten).
                None => {
                    execute_prepared(
                        &client,
                        "INSERT INTO nodes (node_id, started_at_ms, heartbeat_ms)
                             VALUES ($1, $2, sb_now_ms())
                             ON CONFLICT (node_id) DO UPDATE
                               SET started_at_ms = EXCLUDED.started_at_ms,
                                   heartbeat_ms = EXCLUDED.heartbeat_ms",
                        &[&node_id, &started],
                    )
                    .await?
                }
            };
            Ok(())
        })
        .await
    }

    async fn node_gone(&self, node_id: &str) -> Result<bool, StoreError> {
        let key = self.node_lock_key(node_id);
        self.run(move |client| async move {
            let taken: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&NODE_LOCK_CLASS, &key],
                )
                .await
                .map_err(backend)?
                .try_get(0)
                .map_err(backend)?;
            if taken {
                client
                    .execute(
                        "SELECT pg_advisory_unlock($1, hashtext($2))",
                        &[&NODE_LOCK_CLASS, &key],
                    )
                    .await
                    .map_err(backend)?;
            }
            Ok(taken)
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        self.run(move |client| async move {
            let rows = query_prepared(
                &client,
                "SELECT node_id, started_at_ms, heartbeat_ms, sb_now_ms() - heartbeat_ms,
                            snapshot
                     FROM nodes ORDER BY heartbeat_ms DESC, node_id",
                &[],
            )
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let Json(snapshot): Json<serde_json::Value> = row.get(4);
                    NodeStatus {
                        node_id: row.get(0),
                        started_at_ms: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                        heartbeat_ms: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                        silent_ms: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                        snapshot,
                    }
                })
                .collect())
        })
        .await
    }

    async fn take_text(
        &self,
        entry: &InboxEntry,
        dedupe: Option<&str>,
    ) -> Result<Option<TakenText>, StoreError> {
        let notice = encode(
            "inbox",
            &NewEntry {
                entry: entry.clone(),
                prev: None,
            },
        )?;
        self.takes
            .send(Take {
                entry: entry.clone(),
                dedupe: dedupe.map(str::to_owned),
                notice,
            })
            .await
    }

    async fn begin_text(&self, id: i64, turn: &Turn) -> Result<(), StoreError> {
        let turn = encode("turns", turn)?;
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(backend)?;
            let row = query_opt_prepared(
                &tx,
                "UPDATE inbox SET started = true WHERE id = $1 AND NOT started
                     RETURNING customer",
                &[&id],
            )
            .await?;
            if let Some(row) = row {
                let customer: String = row.get(0);
                execute_prepared(
                    &tx,
                    "INSERT INTO turns (customer, turn) VALUES ($1, $2)",
                    &[&customer, &Json(&turn)],
                )
                .await?;
            }
            tx.commit().await.map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn claim_conversation(
        &self,
        customer: &str,
        node: &str,
        force: bool,
    ) -> Result<String, StoreError> {
        let customer = customer.to_owned();
        let node = node.to_owned();
        self.run(move |client| async move {
            let row = query_one_prepared(
                &client,
                "INSERT INTO conversation_owners (customer, node) VALUES ($1, $2)
                     ON CONFLICT (customer) DO UPDATE SET node = CASE
                         WHEN $3 OR conversation_owners.node = EXCLUDED.node OR NOT EXISTS (
                             SELECT 1 FROM nodes n
                             WHERE n.node_id = conversation_owners.node
                               AND n.lease_until_ms >= sb_now_ms())
                         THEN EXCLUDED.node ELSE conversation_owners.node END
                     RETURNING node",
                &[&customer, &node, &force],
            )
            .await?;
            Ok(row.get(0))
        })
        .await
    }

    async fn renew_lease(
        &self,
        node: &str,
        started_at_ms: u64,
        lease_ms: u64,
    ) -> Result<(), StoreError> {
        let node = node.to_owned();
        let started = to_i64(started_at_ms);
        let lease = to_i64(lease_ms);
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "INSERT INTO nodes (node_id, started_at_ms, heartbeat_ms, lease_until_ms)
                     VALUES ($1, $2, sb_now_ms(), sb_now_ms() + $3)
                     ON CONFLICT (node_id) DO UPDATE
                       SET lease_until_ms = EXCLUDED.lease_until_ms",
                &[&node, &started, &lease],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn release_conversation(&self, customer: &str, node: &str) -> Result<(), StoreError> {
        let customer = customer.to_owned();
        let node = node.to_owned();
        self.run(move |client| async move {
            execute_prepared(
                &client,
                "DELETE FROM conversation_owners WHERE customer = $1 AND node = $2",
                &[&customer, &node],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn pending_texts(&self, customer: &str) -> Result<Vec<InboxEntry>, StoreError> {
        // Read with the other inbox reads of the moment ([`read_pending`]).
        self.pending_reads.send(customer.to_owned()).await
    }

    async fn answer_text(
        &self,
        EntryAnswer {
            customer,
            id,
            said,
            answer,
            change,
        }: EntryAnswer<'_>,
        node: &str,
        dead_after_ms: u64,
    ) -> Result<bool, StoreError> {
        let first = change
            .map(|change| {
                encode(
                    "customers",
                    &CustomerRecord::changed(customer, None, change),
                )
            })
            .transpose()?;
        let request = Answer {
            customer: customer.to_owned(),
            id,
            text: answer.text.clone(),
            said: said.map(|turn| encode("turns", turn)).transpose()?,
            turn: encode("turns", answer)?,
            dead_after_ms: to_i64(dead_after_ms),
            first,
            node: node.to_owned(),
        };
        // With the answers of the moment; a new customer's record (a new conversation's
        // handoff) with it.
        let answered = match change {
            None => self.answers.send(request).await?,
            Some(change) => match self.answers.send(request.clone()).await? {
                Some(answered) => Some(answered),
                // A known customer (or an entry answered already): the record read and
                // changed under its lock, in one transaction with the answer, on its own.
                None => {
                    let change = change.clone();
                    let request = Answer {
                        first: None,
                        ..request
                    };
                    let channel = self.channel();
                    self.run_in(&self.batch_pool, move |mut client| async move {
                        let tx = client.transaction().await.map_err(backend)?;
                        let answered = answer_one(&tx, &request, &channel).await?;
                        if let Some(answered) = &answered {
                            change_customer(&tx, &answered.customer, &change).await?;
                        }
                        tx.commit().await.map_err(backend)?;
                        Ok(answered)
                    })
                    .await?
                }
            },
        };
        // Answered already (a node finished it before dying): nothing more to do.
        let Some(answered) = answered else {
            return Ok(false);
        };
        Ok(answered.gave_up)
    }

    async fn give_up_waiting(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.run(move |client| async move {
            let gave_up = execute_prepared(
                &client,
                "UPDATE inbox SET gave_up = true WHERE id = $1 AND NOT answered",
                &[&id],
            )
            .await?;
            if gave_up == 1 {
                return Ok(None);
            }
            let row = query_opt_prepared(&client, "SELECT answer FROM inbox WHERE id = $1", &[&id])
                .await?;
            Ok(row.and_then(|row| row.get(0)))
        })
        .await
    }

    async fn answer_of(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.run(move |client| async move {
            let row = query_opt_prepared(
                &client,
                "SELECT answer FROM inbox WHERE id = $1 AND answered",
                &[&id],
            )
            .await?;
            Ok(row.and_then(|row| row.get(0)))
        })
        .await
    }

    async fn orphaned_conversations(
        &self,
        node: &str,
        stalled_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let node = node.to_owned();
        // `received_at_ms` is the taking node's clock: a stall is judged within a clock skew.
        let before = to_i64(crate::clock::wall_clock_ms().saturating_sub(stalled_ms));
        let limit = to_i64(limit as u64);
        self.run(move |client| async move {
            let rows = query_prepared(
                &client,
                "SELECT DISTINCT i.customer FROM inbox i
                     LEFT JOIN conversation_owners o ON o.customer = i.customer
                     LEFT JOIN nodes n ON n.node_id = o.node
                     WHERE NOT i.answered
                       AND (n.node_id IS NULL OR n.lease_until_ms < sb_now_ms()
                            OR (o.node = $1 AND i.received_at_ms < $2))
                     LIMIT $3",
                &[&node, &before, &limit],
            )
            .await?;
            Ok(rows.into_iter().map(|row| row.get(0)).collect())
        })
        .await
    }

    async fn prune_inbox(&self, before_ms: u64) -> Result<usize, StoreError> {
        let before = to_i64(before_ms);
        self.run(move |client| async move {
            let pruned = execute_prepared(
                &client,
                "DELETE FROM inbox WHERE answered AND received_at_ms < $1",
                &[&before],
            )
            .await?;
            Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
        })
        .await
    }
}

/// Test databases: a fresh schema per store, dropped with the store that owns it.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::store::conformance::block_on;
    use std::sync::Arc;

    impl PgStore {
        /// Tells `node` (on its own channel) or, with `None`, every node, as the take's
        /// and the answers' statements do: the tests' readiness probes and routing checks.
        pub(crate) async fn notify(
            &self,
            node: Option<&str>,
            payload: &str,
        ) -> Result<(), StoreError> {
            let (channel, node, payload) =
                (self.channel(), node.map(str::to_owned), payload.to_owned());
            self.run(move |client| async move {
                execute_prepared(
                    &client,
                    "SELECT pg_notify(CASE WHEN $2::text IS NULL THEN $1
                                           ELSE sb_node_channel($1, $2) END, $3)",
                    &[&channel, &node, &payload],
                )
                .await
                .map(drop)
            })
            .await
        }
    }

    /// The database tests use: `TEST_DATABASE_URL`, else this machine kind's PostgreSQL.
    pub(crate) fn url() -> String {
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// A new, empty schema, or `None` (with the reason on stderr) when no PostgreSQL is
    /// reachable — which `CI=true` does not accept.
    pub(crate) fn new_schema() -> Option<(String, String)> {
        let schema = format!("sb_test_{}_{:x}", std::process::id(), rand::random::<u64>());
        let url = url();
        let made = block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
        });
        match made {
            Ok(()) => Some((url, schema)),
            Err(err) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                assert!(
                    !ci,
                    "CI=true but PostgreSQL at {} is unreachable: {err}",
                    redact(&url)
                );
                eprintln!(
                    "skipped: PostgreSQL not reachable at {} ({err}); set TEST_DATABASE_URL",
                    redact(&url)
                );
                None
            }
        }
    }

    /// A store in `schema`; `owns`: the schema is dropped with it.
    pub(crate) fn open(url: &str, schema: &str, owns: bool) -> PgStore {
        let mut store = block_on(PgStore::connect(url, Some(schema))).expect("the store opens");
        if owns {
            store.drop_schema = Some((url.to_owned(), schema.to_owned()));
        }
        store
    }

    /// A fresh, empty store, or `None` when PostgreSQL is unreachable (not under CI).
    pub(crate) fn fresh() -> Option<Arc<dyn Store>> {
        let (url, schema) = new_schema()?;
        Some(Arc::new(open(&url, &schema, true)))
    }

    /// Drops a test schema, from a thread of its own (a `Drop` may run inside a runtime).
    pub(super) fn drop_schema(url: String, schema: String) {
        let dropped = std::thread::spawn(move || {
            block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("a test schema was left behind: {dropped:?}");
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        #[cfg(test)]
        if let Some((url, schema)) = self.drop_schema.take() {
            testing::drop_schema(url, schema);
        }
        if let Some(runtime) = self.owned_runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, conformance_tests};
    use std::sync::Arc;

    conformance_tests!(testing::fresh());

    #[test]
    fn acknowledged_writes_survive_reopening() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let again = (url.clone(), schema.clone());
        conformance::acknowledged_writes_survive_reopening(
            Arc::new(testing::open(&url, &schema, false)),
            move || Arc::new(testing::open(&again.0, &again.1, true)),
        );
    }

    #[test]
    fn scheduled_calls_survive_reopening_and_are_placed_once() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let again = (url.clone(), schema.clone());
        conformance::scheduled_calls_survive_reopening_and_are_placed_once(
            Arc::new(testing::open(&url, &schema, false)),
            move || Arc::new(testing::open(&again.0, &again.1, true)),
        );
    }

    #[test]
    fn two_nodes_claiming_due_calls_place_each_once() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        // Two stores on one schema: two nodes, each with its own pool.
        let first = Arc::new(testing::open(&url, &schema, true));
        let second = Arc::new(testing::open(&url, &schema, false));
        conformance::block_on(async {
            for i in 0..20 {
                first
                    .schedule_call(&conformance::callback(&format!("cb{i:02}"), 100))
                    .await
                    .unwrap();
            }
        });
        let nodes: [Arc<PgStore>; 2] = [first.clone(), second.clone()];
        let nodes = Arc::new(nodes);
        let claims = conformance::on_threads(4, move |t| {
            let store = Arc::clone(&nodes[t % 2]);
            async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store
                        .claim_due_calls(1_000, &format!("node{}", t % 2), 3)
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|c| c.id));
                }
            }
        });
        let mut ids: Vec<String> = claims.into_iter().flatten().collect();
        ids.sort();
        assert_eq!(
            ids,
            (0..20).map(|i| format!("cb{i:02}")).collect::<Vec<_>>()
        );
        drop(second);
        drop(first);
    }

    #[test]
    fn channel_names_fit_postgresql_names() {
        assert_eq!(cluster_channel("public"), "switchboard");
        assert_eq!(cluster_channel("shop"), "switchboard_shop");
        let long = cluster_channel(&"é".repeat(31));
        assert!(
            long.len() <= 63 && long.starts_with("switchboard_é"),
            "{long}"
        );
    }

    #[test]
    fn migrations_apply_once_even_when_nodes_start_together() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let store = testing::open(&url, &schema, true);
        let applied = conformance::on_threads(4, move |_| {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                let other = PgStore::connect(&url, Some(&schema)).await.expect("opens");
                other.migrate().await.expect("migrates")
            }
        });
        assert_eq!(
            applied,
            vec![0, 0, 0, 0],
            "already applied by the first store"
        );
        drop(store);
    }

    /// Waits (bounded) until `check` holds, polling the store.
    fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_node_is_gone_once_its_listening_session_ends_and_not_before() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let observer = testing::open(&url, &schema, true);
        let node = testing::open(&url, &schema, false);
        let gone = |id: &str| conformance::block_on(observer.node_gone(id)).expect("asks");
        assert!(gone("node-a"), "nobody holds a lock that was never taken");
        let notifications = node.listen("node-a");
        eventually("the listening node takes its lock", || !gone("node-a"));
        // Asking takes and gives back the lock: the node still holds it afterwards.
        assert!(!gone("node-a"));
        assert!(gone("node-b"), "another node's lock is its own");
        // The process goes: its runtime and connections with it.
        drop(node);
        drop(notifications);
        eventually("the database frees a dead node's lock", || gone("node-a"));
        drop(observer);
    }

    fn text(customer: &str, node: &str, words: &str) -> InboxEntry {
        InboxEntry {
            id: 0,
            customer: customer.to_owned(),
            channel: "sms".to_owned(),
            text: words.to_owned(),
            route: serde_json::json!({"kind": "inline", "fallback": null}),
            received_by: node.to_owned(),
            received_at_ms: crate::clock::wall_clock_ms(),
        }
    }

    fn turn(role: crate::domain::transcript::Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.to_owned(),
            at_ms: 5,
        }
    }

    /// The next notification, or `None` within a second.
    /// The next notification within `wait`, the listeners' readiness probes (`ready`, which
    /// may arrive late and more than once) skipped.
    fn notice_within(
        notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
        wait: Duration,
    ) -> Option<String> {
        conformance::block_on(async {
            let until = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(until, notices.recv()).await {
                    Ok(Some(notice)) if notice == "ready" => continue,
                    Ok(notice) => return notice,
                    Err(_) => return None,
                }
            }
        })
    }

    /// The next notification, which is expected: waited for generously.
    fn next_notice(notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
        notice_within(notices, Duration::from_secs(10))
    }

    /// Whether a readiness probe reached this listener (within a moment).
    fn ready_seen(notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> bool {
        conformance::block_on(async {
            let until = tokio::time::Instant::now() + Duration::from_millis(200);
            while let Ok(Some(notice)) = tokio::time::timeout_at(until, notices.recv()).await {
                if notice == "ready" {
                    return true;
                }
            }
            false
        })
    }

    #[test]
    fn a_text_is_taken_once_by_its_owner_and_answered_with_its_words_in_one_go() {
        use crate::domain::transcript::Role;
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        // Two nodes on one schema, each with its own pool; the first also listens.
        let a = testing::open(&url, &schema, true);
        let b = testing::open(&url, &schema, false);
        let mut notices = a.listen("node-a");
        let mut b_notices = b.listen("node-b");
        conformance::block_on(async {
            a.renew_lease("node-a", 1, 60_000).await.unwrap();
            b.renew_lease("node-b", 1, 60_000).await.unwrap();
        });
        let (mut a_up, mut b_up) = (false, false);
        eventually("the listeners are up", || {
            conformance::block_on(a.notify(None, "ready")).unwrap();
            a_up |= ready_seen(&mut notices);
            b_up |= ready_seen(&mut b_notices);
            a_up && b_up
        });

        // The taker claims a conversation nobody owns; a retried message id is not taken.
        let first =
            conformance::block_on(a.take_text(&text("+1555", "node-a", "one"), Some("SM1")))
                .unwrap()
                .expect("taken");
        assert_eq!(first.owner, "node-a");
        let again =
            conformance::block_on(b.take_text(&text("+1555", "node-b", "one"), Some("SM1")));
        assert_eq!(
            again.unwrap(),
            None,
            "a MessageSid is taken once, on any node"
        );
        // Another node takes the next message: the live owner keeps it and is told.
        let second =
            conformance::block_on(b.take_text(&text("+1555", "node-b", "two"), Some("SM2")))
                .unwrap()
                .expect("taken");
        assert_eq!(second.owner, "node-a");
        assert!(second.id > first.id);
        assert_eq!(
            first.prev, None,
            "the customer's first entry has none before it"
        );
        assert_eq!(
            second.prev,
            Some(first.id),
            "each entry names the one before it"
        );
        // The owner is told by the take's commit, on its own channel, the entry with it.
        let told = next_notice(&mut notices).expect("the owner is told");
        let json = told
            .strip_prefix("entry:node-a:")
            .unwrap_or_else(|| panic!("an entry notice for node-a: {told}"));
        let new: NewEntry = serde_json::from_str(json).expect("the notice reads as a NewEntry");
        let sent = text("+1555", "node-b", "two");
        assert_eq!(
            new,
            NewEntry {
                entry: InboxEntry {
                    id: second.id,
                    received_at_ms: new.entry.received_at_ms,
                    ..sent
                },
                prev: Some(first.id),
            }
        );
        // An entry too long for a notification is announced without itself.
        conformance::block_on(a.take_text(&text("+1557", "node-a", "short"), None)).unwrap();
        let long = "x".repeat(8_000);
        let taken = conformance::block_on(b.take_text(&text("+1557", "node-b", &long), None))
            .unwrap()
            .expect("taken");
        assert_eq!(taken.owner, "node-a");
        assert_eq!(
            next_notice(&mut notices).as_deref(),
            Some("pull:node-a:+1557")
        );
        // And anything else a node is told on its own channel reaches it alone.
        conformance::block_on(b.notify(Some("node-a"), "pull:node-a:+1555")).unwrap();
        assert_eq!(
            next_notice(&mut notices).as_deref(),
            Some("pull:node-a:+1555"),
            "the owner is told, on its own channel"
        );
        let pending = conformance::block_on(a.pending_texts("+1555")).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|e| (e.id, e.text.as_str()))
                .collect::<Vec<_>>(),
            vec![(first.id, "one"), (second.id, "two")]
        );

        // The answer brings the customer's words and the handoff's agent along, once.
        let agent = CustomerChange::TextAgent {
            agent: "orders".to_owned(),
            at_ms: 5,
        };
        let said = turn(Role::User, "one");
        let answer = turn(Role::Assistant, "answer: one");
        let gave_up = conformance::block_on(a.answer_text(
            EntryAnswer {
                customer: "+1555",
                id: first.id,
                said: Some(&said),
                answer: &answer,
                change: Some(&agent),
            },
            "node-a",
            60_000,
        ))
        .unwrap();
        assert!(!gave_up, "the taking node is alive and nobody gave up");
        let twice = conformance::block_on(b.answer_text(
            EntryAnswer {
                customer: "+1555",
                id: first.id,
                said: Some(&said),
                answer: &answer,
                change: None,
            },
            "node-b",
            60_000,
        ));
        assert!(!twice.unwrap(), "answered once");
        let record = conformance::block_on(a.customer("+1555"))
            .unwrap()
            .expect("made");
        assert_eq!(record.text_agent.as_deref(), Some("orders"));
        // A started entry (held for a supervisor) has its words on the thread already. The
        // node that took it (not the one answering) is told, the answer in the notification
        // — the first answer, taken and answered on node a, told nobody.
        conformance::block_on(a.begin_text(second.id, &turn(Role::User, "two"))).unwrap();
        conformance::block_on(a.answer_text(
            EntryAnswer {
                customer: "+1555",
                id: second.id,
                said: Some(&turn(Role::User, "two")),
                answer: &turn(Role::Assistant, "answer: two"),
                change: None,
            },
            "node-a",
            60_000,
        ))
        .unwrap();
        assert_eq!(
            next_notice(&mut b_notices),
            Some(format!("answer:{}:answer: two", second.id)),
            "the answer rides on its notification, to the node that took the message"
        );
        let thread: Vec<String> = conformance::block_on(a.recent_turns("+1555", 10))
            .unwrap()
            .into_iter()
            .map(|t| t.text)
            .collect();
        assert_eq!(thread, ["one", "answer: one", "two", "answer: two"]);
        assert_eq!(
            conformance::block_on(a.answer_of(second.id))
                .unwrap()
                .as_deref(),
            Some("answer: two")
        );
        assert!(conformance::block_on(a.pending_texts("+1555"))
            .unwrap()
            .is_empty());
        // A message answered by REST has nobody waiting for it: nobody is told.
        let mut by_rest = text("+1555", "node-b", "three");
        by_rest.route = serde_json::json!({"kind": "rest", "destination": {}});
        let third = conformance::block_on(b.take_text(&by_rest, Some("SM3")))
            .unwrap()
            .expect("taken");
        let told = next_notice(&mut notices).expect("the owner is told");
        assert!(
            told.starts_with("entry:node-a:") && told.contains(&format!("\"id\": {}", third.id)),
            "{told}"
        );
        // A second handoff changes the record the first one made (the customer is known:
        // read and changed under its lock, with the answer).
        let again = CustomerChange::TextAgent {
            agent: "booking".to_owned(),
            at_ms: 9,
        };
        conformance::block_on(a.answer_text(
            EntryAnswer {
                customer: "+1555",
                id: third.id,
                said: Some(&turn(Role::User, "three")),
                answer: &turn(Role::Assistant, "answer: three"),
                change: Some(&again),
            },
            "node-a",
            60_000,
        ))
        .unwrap();
        let changed = conformance::block_on(a.customer("+1555"))
            .unwrap()
            .expect("kept");
        assert_eq!(changed.text_agent.as_deref(), Some("booking"));
        assert_eq!(
            (changed.first_seen_ms, changed.last_seen_ms),
            (record.first_seen_ms, 9),
            "changed, not made again"
        );
        // An entry answered already changes nothing, new customer or not.
        let stranger = CustomerChange::TextAgent {
            agent: "orders".to_owned(),
            at_ms: 10,
        };
        let late = conformance::block_on(b.answer_text(
            EntryAnswer {
                customer: "+1555",
                id: third.id,
                said: None,
                answer: &turn(Role::Assistant, "late"),
                change: Some(&stranger),
            },
            "node-b",
            60_000,
        ));
        assert!(!late.unwrap());
        let kept = conformance::block_on(a.customer("+1555"))
            .unwrap()
            .expect("kept");
        assert_eq!(kept.text_agent.as_deref(), Some("booking"));
        let other = conformance::block_on(a.take_text(&text("+1556", "node-a", "hi"), None))
            .unwrap()
            .expect("taken");
        let hello = turn(Role::Assistant, "hello");
        let first = EntryAnswer {
            customer: "+1556",
            id: other.id,
            said: None,
            answer: &hello,
            change: None,
        };
        conformance::block_on(a.answer_text(first, "node-a", 60_000)).unwrap();
        let again = turn(Role::Assistant, "again");
        let second = EntryAnswer {
            answer: &again,
            change: Some(&stranger),
            ..first
        };
        conformance::block_on(b.answer_text(second, "node-b", 60_000)).unwrap();
        assert!(
            conformance::block_on(a.customer("+1556"))
                .unwrap()
                .is_none(),
            "no record made by an answer that was not written"
        );
        // Nothing went to the wrong node.
        assert_eq!(
            notice_within(&mut notices, Duration::from_millis(500)),
            None
        );
        assert_eq!(
            notice_within(&mut b_notices, Duration::from_millis(500)),
            None
        );
        drop(notices);
        drop(b_notices);
        drop(b);
        drop(a);
    }

    /// One customer's messages taken at once on two nodes form one chain: sorted by id, each
    /// names the one before it — no entry is skipped or named twice — so an owner given an
    /// entry that follows the last one it took knows nothing lies between.
    #[test]
    fn concurrent_entries_of_one_customer_form_one_chain() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let a = Arc::new(testing::open(&url, &schema, true));
        let b = Arc::new(testing::open(&url, &schema, false));
        let mut taken = conformance::block_on(async {
            a.renew_lease("node-a", 1, 60_000).await.unwrap();
            b.renew_lease("node-b", 1, 60_000).await.unwrap();
            let takes = (0..40).map(|i| {
                let (store, node) = if i % 2 == 0 {
                    (a.clone(), "node-a")
                } else {
                    (b.clone(), "node-b")
                };
                tokio::spawn(async move {
                    let entry = text("+1777", node, &format!("message {i}"));
                    store.take_text(&entry, Some(&format!("SMC{i}"))).await
                })
            });
            let mut taken = Vec::new();
            for take in futures_util::future::join_all(takes).await {
                taken.push(take.unwrap().unwrap().expect("a new message id"));
            }
            taken
        });
        taken.sort_by_key(|t| t.id);
        assert_eq!(taken[0].prev, None);
        for pair in taken.windows(2) {
            assert_eq!(pair[1].prev, Some(pair[0].id), "{taken:?}");
        }
        // The inbox holds them in the same order.
        let pending = conformance::block_on(a.pending_texts("+1777")).unwrap();
        assert_eq!(
            pending.iter().map(|e| e.id).collect::<Vec<_>>(),
            taken.iter().map(|t| t.id).collect::<Vec<_>>()
        );
        // A conversation that retired releases its row: the chain starts again, unknown.
        conformance::block_on(a.release_conversation("+1777", &taken[0].owner)).unwrap();
        let after = conformance::block_on(b.take_text(&text("+1777", "node-b", "back"), None))
            .unwrap()
            .expect("taken");
        assert_eq!(after.prev, None);
    }

    /// Takes, answers and reads arriving together go out in shared statements: every
    /// message is taken once (a retried `MessageSid`, on either node, is not), each
    /// customer's entries still form one chain, a message PostgreSQL refuses fails alone,
    /// every answer lands once, the customer's words before it, and each customer's inbox
    /// and thread read at once come back to their own reader.
    #[test]
    fn takes_and_answers_sent_together_each_keep_their_own_outcome() {
        use crate::domain::transcript::Role;
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let a = Arc::new(testing::open(&url, &schema, true));
        let b = Arc::new(testing::open(&url, &schema, false));
        let customers: Vec<String> = (0..12).map(|c| format!("+1888{c:03}")).collect();
        let (taken, refused) = conformance::block_on(async {
            a.renew_lease("node-a", 1, 60_000).await.unwrap();
            b.renew_lease("node-b", 1, 60_000).await.unwrap();
            // 120 messages, each sent twice (the retry to the other node), and one that
            // PostgreSQL cannot hold (text may not contain NUL).
            let mut takes = Vec::new();
            for i in 0..240 {
                let message = i / 2;
                let (store, node) = if i % 2 == 0 {
                    (a.clone(), "node-a")
                } else {
                    (b.clone(), "node-b")
                };
                let customer = customers[message % customers.len()].clone();
                takes.push(tokio::spawn(async move {
                    let entry = text(&customer, node, &format!("message {message}"));
                    let taken = store
                        .take_text(&entry, Some(&format!("SMB{message}")))
                        .await;
                    (message, taken)
                }));
            }
            let poisoned = {
                let a = a.clone();
                tokio::spawn(async move {
                    let entry = text("+1888999", "node-a", "nul \0 byte");
                    a.take_text(&entry, Some("SMBAD")).await
                })
            };
            let mut taken = Vec::new();
            for take in futures_util::future::join_all(takes).await {
                let (message, outcome) = take.unwrap();
                if let Some(t) = outcome.expect("every good message is taken or seen") {
                    taken.push((message, t));
                }
            }
            (taken, poisoned.await.unwrap())
        });
        assert!(refused.is_err(), "a NUL byte is refused: {refused:?}");
        let mut messages: Vec<usize> = taken.iter().map(|(m, _)| *m).collect();
        messages.sort_unstable();
        assert_eq!(
            messages,
            (0..120).collect::<Vec<_>>(),
            "each message taken once"
        );
        // Every customer's inbox read at once (reads of a moment share a statement).
        let inboxes = conformance::block_on(futures_util::future::join_all(
            customers.iter().map(|customer| a.pending_texts(customer)),
        ));
        for (customer, pending) in customers.iter().zip(inboxes) {
            let pending = pending.unwrap();
            assert_eq!(pending.len(), 10, "{customer}");
            assert!(pending.iter().all(|e| &e.customer == customer));
            let mut chain: Vec<&TakenText> = taken
                .iter()
                .map(|(_, t)| t)
                .filter(|t| pending.iter().any(|e| e.id == t.id))
                .collect();
            chain.sort_by_key(|t| t.id);
            assert_eq!(chain[0].prev, None);
            for pair in chain.windows(2) {
                assert_eq!(pair[1].prev, Some(pair[0].id), "{customer}: {chain:?}");
            }
        }
        // Every entry answered at once, from both nodes: each once. Each customer's first
        // answer hands them to `orders`: half the customers are known, so their record is
        // changed (in a transaction of its own), and half are new, so their first record is
        // made by the answer's statement, beside the other answers of the moment.
        let known = &customers[..customers.len() / 2];
        let triage = CustomerChange::TextAgent {
            agent: "triage".to_owned(),
            at_ms: 1,
        };
        for customer in known {
            conformance::block_on(a.update_customer(customer, &triage)).unwrap();
        }
        let handoff = CustomerChange::TextAgent {
            agent: "orders".to_owned(),
            at_ms: 7,
        };
        let answered = conformance::block_on(async {
            let answers = taken.iter().map(|(message, t)| {
                let store = if message % 2 == 0 {
                    a.clone()
                } else {
                    b.clone()
                };
                let customer = customers[message % customers.len()].clone();
                let id = t.id;
                let said = turn(Role::User, &format!("message {message}"));
                let answer = turn(Role::Assistant, &format!("answer {message}"));
                let change = (*message < customers.len()).then(|| handoff.clone());
                tokio::spawn(async move {
                    let reply = EntryAnswer {
                        customer: &customer,
                        id,
                        said: Some(&said),
                        answer: &answer,
                        change: change.as_ref(),
                    };
                    let first = store.answer_text(reply, "node-a", 60_000).await;
                    let again = store.answer_text(reply, "node-a", 60_000).await;
                    (first, again)
                })
            });
            futures_util::future::join_all(answers).await
        });
        for outcome in answered {
            let (first, again) = outcome.unwrap();
            assert!(!first.unwrap(), "the taker is alive and waits");
            assert!(!again.unwrap(), "answered once");
        }
        for customer in &customers {
            let record = conformance::block_on(a.customer(customer))
                .unwrap()
                .expect("known, or made by the handoff");
            assert_eq!(record.text_agent.as_deref(), Some("orders"), "{customer}");
            let first_seen = if known.contains(customer) { 1 } else { 7 };
            assert_eq!(record.first_seen_ms, first_seen, "{customer}");
        }
        let threads = conformance::block_on(futures_util::future::join_all(
            customers
                .iter()
                .map(|customer| a.recent_turns(customer, 100)),
        ));
        for (customer, turns) in customers.iter().zip(threads) {
            assert!(conformance::block_on(a.pending_texts(customer))
                .unwrap()
                .is_empty());
            let turns = turns.unwrap();
            assert_eq!(
                turns.len(),
                20,
                "{customer}: both turns of each answer, once"
            );
            // Answered all at once (a conversation answers one at a time): the answers'
            // turns may interleave, but each answer follows the words it answers.
            for (at, turn) in turns.iter().enumerate() {
                if let Some(words) = turn.text.strip_prefix("message ") {
                    let answer = turns
                        .iter()
                        .position(|t| t.text == format!("answer {words}"))
                        .expect("answered");
                    assert!(at < answer, "{customer}: {turns:?}");
                }
            }
        }
    }

    #[test]
    fn a_conversation_moves_only_when_its_owners_lease_ran_out() {
        let Some((url, schema)) = testing::new_schema() else {
            return;
        };
        let a = testing::open(&url, &schema, true);
        let b = testing::open(&url, &schema, false);
        conformance::block_on(async {
            a.renew_lease("node-a", 1, 60_000).await.unwrap();
            b.renew_lease("node-b", 1, 60_000).await.unwrap();
            let taken = a
                .take_text(&text("+1666", "node-a", "hi"), None)
                .await
                .unwrap();
            assert_eq!(taken.map(|t| t.owner).as_deref(), Some("node-a"));
            assert_eq!(
                b.claim_conversation("+1666", "node-b", false)
                    .await
                    .unwrap(),
                "node-a"
            );
            assert!(b
                .orphaned_conversations("node-b", 60_000, 10)
                .await
                .unwrap()
                .is_empty());
            // Node a stops renewing (its lease runs out): its conversations are orphans,
            // and the next node to claim one gets it.
            a.renew_lease("node-a", 1, 0).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(
                b.orphaned_conversations("node-b", 60_000, 10)
                    .await
                    .unwrap(),
                vec!["+1666".to_owned()]
            );
            let taken = b
                .take_text(&text("+1666", "node-b", "still there?"), None)
                .await
                .unwrap();
            assert_eq!(taken.map(|t| t.owner).as_deref(), Some("node-b"));
            assert!(b
                .orphaned_conversations("node-b", 60_000, 10)
                .await
                .unwrap()
                .is_empty());
            // Its messages left unanswered (a lost notification) come back to the owner
            // once stalled, and to no other node.
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(
                b.orphaned_conversations("node-b", 1, 10).await.unwrap(),
                vec!["+1666".to_owned()]
            );
            assert!(a
                .orphaned_conversations("node-a", 1, 10)
                .await
                .unwrap()
                .is_empty());
            // A web-chat socket takes its customer along, lease or not.
            assert_eq!(
                a.claim_conversation("+1666", "node-a", true).await.unwrap(),
                "node-a"
            );
            // A node that never renewed holds nothing.
            assert_eq!(
                b.claim_conversation("+1777", "node-x", false)
                    .await
                    .unwrap(),
                "node-x"
            );
            assert_eq!(
                b.claim_conversation("+1777", "node-b", false)
                    .await
                    .unwrap(),
                "node-b"
            );
            b.release_conversation("+1777", "node-b").await.unwrap();
            assert_eq!(
                a.claim_conversation("+1777", "node-a", false)
                    .await
                    .unwrap(),
                "node-a"
            );
        });
        drop(b);
        drop(a);
    }

    #[test]
    fn a_bad_url_or_schema_is_refused_with_the_reason() {
        let err = conformance::block_on(PgStore::connect("mysql://x", None))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("not a PostgreSQL URL"), "{err}");
        let err = conformance::block_on(PgStore::connect(&testing::url(), Some("a;drop")))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("schema name"), "{err}");
    }

    #[test]
    fn passwords_never_reach_errors() {
        assert_eq!(
            redact("postgres://user:secret@db.example.com:5432/sb"),
            "postgres://user:***@db.example.com:5432/sb"
        );
        assert_eq!(contains_pattern(r"50%_off\"), r"%50\%\_off\\%");
    }
}
