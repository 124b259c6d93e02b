//! The engine's front door: startup builds one [`Engine`] (the shared, read-only context
//! every actor reads, the `Registry`, and in cluster mode the node's `ClusterNode`), and the
//! HTTP routes hand it what arrives — a customer's text ([`Engine::receive_text`]), a call to
//! admit — rather than reaching into the registry and the store themselves.

use std::sync::Arc;

use actix::prelude::*;

use crate::audio::prompts::Prompt;
use crate::census::Census;
use crate::cluster::{ClusterNode, InlineAnswer};
use crate::config::EngineConfig;
use crate::conversation::messages::{Channel, CustomerMessage, InboxRoute, ReplyEvent, ReplyTo};
use crate::domain::agents::AgentsConfig;
use crate::domain::catalog::Catalog;
use crate::domain::local_model::LocalModel;
use crate::domain::records::CallOutcome;
use crate::durability::GroupCommit;
use crate::health::Health;
use crate::limits::Limits;
use crate::outbound::Destination;
use crate::registry::messages::{AdmitCall, PullInbox, Refusal, RouteMessage};
use crate::registry::Registry;
use crate::store::{ClusterStore, InboxEntry, NewEntry, Store, StoreError};
use crate::timeline::Timeline;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// The prompts a call may play to the caller while the model cannot speak.
pub struct VoicePrompts {
    /// Played while a tool is slow or the model socket is reconnecting.
    pub hold: Prompt,
    /// Played before hanging up when the model is gone and no human can take the call.
    pub fallback: Prompt,
    /// Played to callers still on the line when a drain ends, before hanging up.
    pub goodbye: Prompt,
}

/// What every actor of the engine may read. Built once at start-up, never mutated, so it
/// is shared by `Arc` across arbiters without locks.
pub struct Shared {
    pub config: EngineConfig,
    pub agents: AgentsConfig,
    /// The offline model over `agents`, built once: it answers when no API key is set.
    pub local_model: LocalModel,
    pub catalog: Catalog,
    pub store: Arc<dyn Store>,
    pub prompts: VoicePrompts,
    /// Live actors of this engine, by kind.
    pub census: Census,
    pub health: Health,
    /// Per-sender and per-IP rate limits.
    pub limits: Limits,
    /// Makes store writes durable in batches (see [`crate::durability`]).
    pub commits: GroupCommit,
    /// This node's name (the `node` label of the metrics; in a cluster, its identity).
    pub node_id: String,
    /// When this node started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Inline webhooks waiting for answers from other nodes (cluster mode).
    pub waiters: crate::cluster::Waiters,
}

/// How the answer to a customer's text reaches them.
pub enum Reply {
    /// The webhook answers inline (TwiML) if the answer comes in time; otherwise it goes to
    /// `fallback` (REST) when there is one.
    Inline { fallback: Option<Destination> },
    /// Through Twilio's REST API.
    Rest(Destination),
    /// Streamed to this node's socket (web chat).
    Stream(Recipient<ReplyEvent>),
}

/// What a call does when its stream or relay session has ended and Twilio asks the
/// `<Connect action>` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStream {
    /// The agent handed the caller to a person: dial them.
    Dial { number: String },
    /// The caller asked for a person and nobody is configured: apologise and hang up.
    NobodyToTakeIt,
    /// The stream broke while the call went on: resume it from its last snapshot.
    Resume,
    /// The caller is to leave a message (`take_voicemail`): `<Record>`.
    Voicemail,
    /// The call is over.
    HangUp,
    /// The assistant could not go on (no model reachable): the caller gets the key-press
    /// menu instead of being hung up on (`voice.menu`).
    Menu,
}

/// How long a live snapshot may take to become the final record when its node is alive.
const FINAL_RECORD_WAIT: Duration = Duration::from_secs(2);

/// A customer's text message as it arrives.
pub struct IncomingText {
    pub customer: String,
    pub channel: Channel,
    pub text: String,
    pub reply: Reply,
    /// The channel's id of the message (Twilio's `MessageSid`): a message is taken once
    /// however often it is delivered.
    pub message_id: Option<String>,
}

/// Why a call may not start on this node ([`Engine::admit_call`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRefused {
    /// The node is draining (SIGTERM): no new call.
    Draining,
    /// Every line is taken (`limits.max_calls`).
    AllLinesBusy,
    /// The engine's actors are stopping.
    ShuttingDown,
}

impl CallRefused {
    /// The `scope` label of `switchboard_rate_limited_total` for this refusal.
    pub fn scope(self) -> &'static str {
        match self {
            CallRefused::Draining => "draining",
            CallRefused::AllLinesBusy => "concurrent_calls",
            CallRefused::ShuttingDown => "shutting_down",
        }
    }
}

/// Handle to a running engine; cheap to clone into every HTTP worker.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    registry: Addr<Registry>,
    /// The dashboard's live charts (`crate::timeline`).
    timeline: Timeline,
}

impl Engine {
    /// Starts the `Registry` — and with a shared store the node's `ClusterNode`, fed the
    /// database's `notifications` — on the current actix system. Call from inside a running
    /// system.
    pub fn start(shared: Shared, notifications: Option<UnboundedReceiver<String>>) -> Engine {
        crate::metrics::init(shared.agents.tools.iter().map(|t| t.name.as_str()));
        let shared = Arc::new(shared);
        let registry = Registry::new(shared.clone()).start();
        if shared.store.cluster().is_some() {
            let notifications = notifications.unwrap_or_else(|| {
                // Without notifications the sweeps still find every message.
                tokio::sync::mpsc::unbounded_channel().1
            });
            ClusterNode::new(shared.clone(), registry.clone(), notifications).start();
        }
        let timeline = Timeline::start(shared.clone());
        let engine = Engine {
            shared,
            registry,
            timeline,
        };
        // Promised call backs, placed when due (`crate::calling`).
        crate::calling::Scheduler::start_for(&engine);
        engine
    }

    /// Whether one more call (answered or placed) may start on this node: not while
    /// draining, and not over `limits.max_calls`. A refusal is counted in
    /// `switchboard_rate_limited_total{scope}` with the scope it names.
    pub async fn admit_call(&self) -> Result<(), CallRefused> {
        let refused = if self.shared.health.drain.is_draining() {
            CallRefused::Draining
        } else {
            match self.registry.send(AdmitCall).await {
                Ok(true) => return Ok(()),
                Ok(false) => CallRefused::AllLinesBusy,
                Err(_) => return Err(CallRefused::ShuttingDown),
            }
        };
        crate::metrics::rate_limited(refused.scope());
        Err(refused)
    }

    /// What to do when Twilio asks `/twilio/voice/next` for `call_sid` (its stream or relay
    /// session ended).
    pub async fn after_stream(&self, call_sid: &str) -> Result<AfterStream, StoreError> {
        let store = &self.shared.store;
        if store.is_escalated(call_sid).await? {
            return Ok(match &self.shared.config.twilio.human_number {
                Some(number) => AfterStream::Dial {
                    number: number.clone(),
                },
                None => AfterStream::NobodyToTakeIt,
            });
        }
        let waited = tokio::time::Instant::now() + FINAL_RECORD_WAIT;
        loop {
            let Some(record) = store.get_call(call_sid).await? else {
                return Ok(AfterStream::HangUp);
            };
            match record.outcome {
                Some(CallOutcome::Dropped) => return Ok(AfterStream::Resume),
                Some(CallOutcome::Fallback) => return Ok(AfterStream::Menu),
                Some(CallOutcome::Voicemail) => return Ok(AfterStream::Voicemail),
                Some(_) => return Ok(AfterStream::HangUp),
                None => {}
            }
            // A live snapshot: the node carrying the call died, or it is writing the final
            // record right now.
            if !self.node_alive(record.node.as_deref()).await
                || self.node_gone(record.node.as_deref()).await
            {
                return Ok(AfterStream::Resume);
            }
            if tokio::time::Instant::now() >= waited {
                // Twilio asks only while the caller is still on the line: keep them.
                tracing::warn!(%call_sid, "the call's record stayed live; resuming it");
                return Ok(AfterStream::Resume);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The nodes of the cluster as the dashboard shows them (`None` on one node): each with
    /// whether it is alive and what it last published of its calls and conversations.
    pub async fn cluster_nodes(&self) -> Option<Result<Vec<serde_json::Value>, StoreError>> {
        let cluster = self.shared.store.cluster()?;
        let dead_after = self.shared.config.cluster.dead_after_ms;
        Some(cluster.nodes().await.map(|nodes| {
            nodes
                .into_iter()
                .map(|node| {
                    serde_json::json!({
                        "node_id": node.node_id,
                        "this_node": node.node_id == self.shared.node_id,
                        "alive": node.silent_ms <= dead_after,
                        "silent_ms": node.silent_ms,
                        "started_at_ms": node.started_at_ms,
                        "calls_total": node.snapshot.get("calls_total"),
                        "conversations_total": node.snapshot.get("conversations_total"),
                        "calls": node.snapshot.get("calls"),
                        "conversations": node.snapshot.get("conversations"),
                    })
                })
                .collect()
        }))
    }

    /// Whether `node` is alive: this node is; in a cluster, one whose heartbeat is recent.
    async fn node_alive(&self, node: Option<&str>) -> bool {
        let Some(node) = node.filter(|n| *n != self.shared.node_id) else {
            return true;
        };
        let Some(cluster) = self.shared.store.cluster() else {
            return false;
        };
        match cluster.nodes().await {
            Ok(nodes) => nodes.iter().any(|n| {
                n.node_id == node && n.silent_ms <= self.shared.config.cluster.dead_after_ms
            }),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the cluster's nodes");
                true
            }
        }
    }

    /// Whether another node's process is certainly dead (its liveness lock is free), which
    /// the database knows at once, while its heartbeat takes `cluster.dead_after_ms` to go
    /// stale.
    async fn node_gone(&self, node: Option<&str>) -> bool {
        let (Some(node), Some(cluster)) = (
            node.filter(|n| *n != self.shared.node_id),
            self.shared.store.cluster(),
        ) else {
            return false;
        };
        cluster.node_gone(node).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot tell whether a node is gone");
            false
        })
    }

    /// Whether this node is one of a cluster (a shared store).
    pub fn clustered(&self) -> bool {
        self.shared.store.cluster().is_some()
    }

    /// A customer's text message, from any channel. Resolves once the message is durable —
    /// what a webhook may acknowledge — with the answer to wait for when it is inline.
    /// A message whose `message_id` was taken before (a webhook retried) is acknowledged
    /// and not answered again: `Ok(None)`.
    ///
    /// On one node the customer's `Conversation` takes it directly. In a cluster it goes to
    /// the inbox, and the node owning the customer's conversation answers it — this node if
    /// it wins the claim, else the owner, told by a notification. A web-chat socket takes its
    /// customer's conversation to its own node (the answer streams to the socket).
    pub async fn receive_text(
        &self,
        mut text: IncomingText,
    ) -> Result<Option<InlineAnswer>, Refusal> {
        // One key per number, whichever route wrote it (SPEC §15, numbers and identity).
        text.customer =
            crate::domain::identity::canonical_key(&text.customer, self.shared.config.country());
        let cluster = self.shared.store.cluster();
        let stream = matches!(text.reply, Reply::Stream(_));
        if let (Some(cluster), false) = (cluster, stream) {
            // The message id is seen in the same transaction that takes the message.
            return self.receive_in_cluster(cluster, text).await;
        }
        if let Some(id) = &text.message_id {
            if !self.first_sight(id).await? {
                return Ok(None);
            }
        }
        if let (Some(cluster), true) = (cluster, stream) {
            if let Err(err) = cluster
                .claim_conversation(&text.customer, &self.shared.node_id, true)
                .await
            {
                tracing::warn!(error = %err, "web chat could not claim its conversation");
            }
        }
        self.receive_here(text).await
    }

    /// Whether message `id` is new (and now seen).
    async fn first_sight(&self, id: &str) -> Result<bool, Refusal> {
        let first = self
            .shared
            .store
            .first_sight(id, crate::clock::wall_clock_ms())
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "message id not recorded");
                Refusal::NotRecorded
            })?;
        if !first {
            tracing::info!(message_id = %id, "retried message ignored");
        }
        Ok(first)
    }

    /// One node: the conversation writes the message and answers it.
    async fn receive_here(&self, text: IncomingText) -> Result<Option<InlineAnswer>, Refusal> {
        let (reply, inline) = match text.reply {
            Reply::Inline { fallback } => {
                let (answer, inline) = tokio::sync::oneshot::channel();
                (
                    ReplyTo::Inline { answer, fallback },
                    Some(InlineAnswer::Local(inline)),
                )
            }
            Reply::Rest(destination) => (ReplyTo::Rest(destination), None),
            Reply::Stream(socket) => (ReplyTo::Stream(socket), None),
        };
        let message = CustomerMessage {
            channel: text.channel,
            text: text.text,
            reply,
        };
        self.registry
            .send(RouteMessage {
                customer: text.customer,
                message,
            })
            .await
            .map_err(|_| Refusal::Unavailable)??;
        Ok(inline)
    }

    /// A cluster: the message is committed to the inbox, then the owner is found or made.
    async fn receive_in_cluster(
        &self,
        cluster: &dyn ClusterStore,
        text: IncomingText,
    ) -> Result<Option<InlineAnswer>, Refusal> {
        let (route, inline) = match text.reply {
            Reply::Inline { fallback } => (InboxRoute::Inline { fallback }, true),
            Reply::Rest(destination) => (InboxRoute::Rest { destination }, false),
            Reply::Stream(_) => return Err(Refusal::Unavailable),
        };
        let route = serde_json::to_value(&route).map_err(|_| Refusal::Unavailable)?;
        let entry = InboxEntry {
            id: 0,
            customer: text.customer.clone(),
            channel: text.channel.as_str().to_owned(),
            text: text.text,
            route,
            received_by: self.shared.node_id.clone(),
            received_at_ms: crate::clock::wall_clock_ms(),
        };
        let taken = cluster
            .take_text(&entry, text.message_id.as_deref())
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "message not written to the inbox");
                Refusal::NotRecorded
            })?;
        let Some(taken) = taken else {
            tracing::info!(message_id = ?text.message_id, "retried message ignored");
            return Ok(None);
        };
        // The owner, when it is another node, was told by the take's commit; its answer
        // may reach this node before the waiter is set (`cluster::Waiters` keeps it a moment).
        let answer = inline.then(|| self.shared.wait_for_answer(taken.id));
        if taken.owner == self.shared.node_id {
            self.registry.do_send(PullInbox {
                customer: text.customer,
                entry: Some(NewEntry {
                    entry: InboxEntry {
                        id: taken.id,
                        ..entry
                    },
                    prev: taken.prev,
                }),
            });
        }
        Ok(answer)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn registry(&self) -> &Addr<Registry> {
        &self.registry
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }
}
