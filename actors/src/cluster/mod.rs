//! Cluster mode (`storage.database_url`): several nodes on one PostgreSQL act as one service.
//! Coordination lives in the database (`store::ClusterStore`): no consensus or gossip here.
//!
//! * **Liveness.** Every node beats every `cluster.heartbeat_ms`, and every fifth beat
//!   publishes what it runs (for any node's `/actors`); a node silent for
//!   `cluster.dead_after_ms` is dead.
//! * **One writer per customer.** Any node takes a text webhook and, in one transaction,
//!   writes the message to the inbox (acknowledged = committed) and claims the customer's
//!   conversation — or, when another node owns it, tells that node (`NOTIFY`, which
//!   PostgreSQL delivers at the commit). A conversation has one owner node at a time, which
//!   holds it while the node's lease is live: one lease per node, renewed every
//!   `cluster.lease_ms / 3`. The owner answers the customer's entries in order, from one
//!   thread, each answer with its turns in one transaction. When a node dies, its lease runs
//!   out and the periodic sweep of the other nodes finds the unanswered entries.
//! * **Inline answers across nodes.** A webhook waiting to answer inline (TwiML) waits for
//!   the answer's notification ([`Waiters`]); on its deadline it gives up in the store, and
//!   the owner sends the answer another way.
//!
//! `NOTIFY` payloads, each on the channel of the one node it concerns (every node listens on
//! the cluster's channel and on its own): `entry:<node>:<NewEntry as JSON>` (the node owning
//! the customer has a new entry, here with the one before it), `pull:<node>:<customer>`
//! (the same when the entry is too long for a notification: the owner reads the inbox) and
//! `answer:<inbox id>[:<answer>]` (to the node that took the message; the answer itself
//! when it fits), each sent by the statement that commits what it announces, so it is
//! delivered at that commit and never before (an answer may still reach the webhook's
//! node before its waiter is set: [`Waiters`] keeps it a moment). A missed notification
//! costs at most [`STALLED`] plus one sweep period: the sweep finds ownerless entries and
//! the owner's stalled ones, and an inline waiter also polls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::engine::Shared;
use crate::registry::messages::{Publish, PullInbox};
use crate::registry::Registry;
use crate::store::NewEntry;

/// How often a node looks for conversations nobody answers (a dead owner's).
const SWEEP: Duration = Duration::from_secs(2);
/// A message of a conversation this node owns, unanswered this long, is looked at again
/// (its notification may have been lost); looking again never answers twice.
const STALLED: Duration = Duration::from_secs(5);
/// A waiting inline webhook also asks the store this often, in case a notification is lost.
const ANSWER_POLL: Duration = Duration::from_millis(500);
/// Live actors a node publishes in its heartbeat, at most (the counts are exact).
const PUBLISHED: usize = 500;
/// One heartbeat in this many publishes the node's calls and conversations.
const PUBLISH_EVERY: u64 = 5;

/// Answers kept that came before their waiter, at most: the message's owner is told by the
/// commit that takes it, so under a stall of this node its answer can arrive before the
/// webhook here has set its waiter. Only this node's own entries are answered on its
/// channel, so what is kept is early or, rarely, late (the waiter gave up): the oldest go.
const EARLY_KEPT: usize = 256;

/// Inline webhooks of this node waiting for answers, by inbox id.
#[derive(Default)]
pub struct Waiters {
    state: Mutex<WaiterState>,
}

#[derive(Default)]
struct WaiterState {
    waiting: HashMap<i64, oneshot::Sender<String>>,
    /// Answers that came with no waiter set, oldest first ([`EARLY_KEPT`]).
    early: std::collections::VecDeque<(i64, String)>,
}

impl Waiters {
    fn add(&self, id: i64) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        match state.early.iter().position(|(early, _)| *early == id) {
            Some(at) => {
                if let Some((_, answer)) = state.early.remove(at) {
                    let _ = tx.send(answer);
                }
            }
            None => {
                state.waiting.insert(id, tx);
            }
        }
        rx
    }

    fn take(&self, id: i64) -> Option<oneshot::Sender<String>> {
        self.lock().waiting.remove(&id)
    }

    fn waits_for(&self, id: i64) -> bool {
        self.lock().waiting.contains_key(&id)
    }

    /// Entry `id`'s answer came in its notification: to its waiter, or kept for the waiter
    /// still to come.
    fn told(&self, id: i64, answer: &str) {
        let mut state = self.lock();
        match state.waiting.remove(&id) {
            // The webhook may have stopped waiting a moment ago; it asks the store then.
            Some(waiter) => {
                let _ = waiter.send(answer.to_owned());
            }
            None => {
                if state.early.len() >= EARLY_KEPT {
                    state.early.pop_front();
                }
                state.early.push_back((id, answer.to_owned()));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WaiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An answer a webhook waits for, to send inline.
pub enum InlineAnswer {
    /// From this node's conversation.
    Local(oneshot::Receiver<String>),
    /// From whichever node owns the conversation, through the inbox.
    Inbox {
        id: i64,
        answer: oneshot::Receiver<String>,
        shared: Arc<Shared>,
    },
}

impl InlineAnswer {
    /// The answer, if it comes within `deadline`. When it does not, the conversation is
    /// told (the dropped receiver, or the store), so it sends the answer the slow way.
    pub async fn within(self, deadline: Duration) -> Option<String> {
        match self {
            InlineAnswer::Local(answer) => tokio::time::timeout(deadline, answer).await.ok()?.ok(),
            InlineAnswer::Inbox {
                id,
                mut answer,
                shared,
            } => {
                let cluster = shared.store.cluster()?;
                let until = tokio::time::Instant::now() + deadline;
                loop {
                    let poll = tokio::time::Instant::now() + ANSWER_POLL;
                    match tokio::time::timeout_at(poll.min(until), &mut answer).await {
                        Ok(Ok(text)) => return Some(text),
                        Ok(Err(_)) => break,
                        Err(_) => {}
                    }
                    if let Ok(Some(text)) = cluster.answer_of(id).await {
                        shared.waiters.take(id);
                        return Some(text);
                    }
                    if tokio::time::Instant::now() >= until {
                        break;
                    }
                }
                shared.waiters.take(id);
                match cluster.give_up_waiting(id).await {
                    Ok(answer) => answer,
                    Err(err) => {
                        tracing::error!(error = %err, id, "could not give up waiting for an answer");
                        None
                    }
                }
            }
        }
    }
}

impl Shared {
    /// The answer to inbox entry `id` reached this node: the webhook waiting for it here,
    /// if any, sends it inline.
    pub(crate) fn answer_arrived(&self, id: i64, text: &str) {
        if let Some(waiter) = self.waiters.take(id) {
            // The webhook may have stopped waiting a moment ago; it asks the store then.
            let _ = waiter.send(text.to_owned());
        }
    }

    /// Waits for the answer to inbox entry `id` (cluster mode).
    pub(crate) fn wait_for_answer(self: &Arc<Self>, id: i64) -> InlineAnswer {
        InlineAnswer::Inbox {
            id,
            answer: self.waiters.add(id),
            shared: self.clone(),
        }
    }
}

/// The node's part of the cluster: heartbeat, leases, the sweep for orphaned conversations,
/// and the notifications of the other nodes.
pub struct ClusterNode {
    shared: Arc<Shared>,
    registry: Addr<Registry>,
    notifications: Option<mpsc::UnboundedReceiver<String>>,
    /// Heartbeats so far: every [`PUBLISH_EVERY`]th publishes what the node runs.
    beats: u64,
}

impl ClusterNode {
    pub fn new(
        shared: Arc<Shared>,
        registry: Addr<Registry>,
        notifications: mpsc::UnboundedReceiver<String>,
    ) -> Self {
        ClusterNode {
            shared,
            registry,
            notifications: Some(notifications),
            beats: 0,
        }
    }

    /// The node is alive; every [`PUBLISH_EVERY`]th beat (the first included) also says
    /// what it runs — asking a few hundred actors and writing a large row is too much to
    /// do every second.
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let publish = self.beats % PUBLISH_EVERY == 0;
        self.beats += 1;
        let shared = self.shared.clone();
        let registry = self.registry.clone();
        ctx.spawn(
            async move {
                let Some(cluster) = shared.store.cluster() else {
                    return;
                };
                let snapshot = if publish {
                    let live = registry
                        .send(Publish { at_most: PUBLISHED })
                        .await
                        .unwrap_or_default();
                    Some(serde_json::json!({
                        "calls_total": live.calls_total,
                        "conversations_total": live.conversations_total,
                        "calls": live.calls,
                        "conversations": live.conversations,
                    }))
                } else {
                    None
                };
                if let Err(err) = cluster
                    .heartbeat(&shared.node_id, shared.started_at_ms, snapshot.as_ref())
                    .await
                {
                    tracing::warn!(error = %err, "heartbeat not written");
                }
            }
            .into_actor(self),
        );
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        ctx.spawn(
            async move {
                let Some(cluster) = shared.store.cluster() else {
                    return;
                };
                let lease = shared.config.cluster.lease_ms;
                if let Err(err) = cluster
                    .renew_lease(&shared.node_id, shared.started_at_ms, lease)
                    .await
                {
                    tracing::warn!(error = %err, "the node's lease was not renewed");
                }
            }
            .into_actor(self),
        );
    }

    /// Conversations with unanswered messages and no live owner: claim them and answer; and
    /// this node's own with a message left unanswered for [`STALLED`].
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let registry = self.registry.clone();
        ctx.spawn(
            async move {
                let Some(cluster) = shared.store.cluster() else {
                    return;
                };
                let orphans = match cluster
                    .orphaned_conversations(&shared.node_id, STALLED.as_millis() as u64, 100)
                    .await
                {
                    Ok(orphans) => orphans,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not look for orphaned conversations");
                        return;
                    }
                };
                for customer in orphans {
                    match cluster
                        .claim_conversation(&customer, &shared.node_id, false)
                        .await
                    {
                        Ok(owner) if owner == shared.node_id => {
                            crate::metrics::CLUSTER_SWEPT.inc();
                            tracing::info!(customer = %crate::domain::records::mask_phone(&customer), "taking over a conversation nobody answered");
                            registry.do_send(PullInbox {
                                customer,
                                entry: None,
                            });
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "claim failed"),
                    }
                }
            }
            .into_actor(self),
        );
    }

    fn on_notification(&mut self, payload: &str, ctx: &mut Context<Self>) {
        match Told::read(payload, &self.shared.node_id) {
            Some(Told::Pull(customer)) => {
                self.registry.do_send(PullInbox {
                    customer: customer.to_owned(),
                    entry: None,
                });
            }
            Some(Told::Entry(json)) => {
                match serde_json::from_str::<NewEntry>(json) {
                    Ok(new) => self.registry.do_send(PullInbox {
                        customer: new.entry.customer.clone(),
                        entry: Some(new),
                    }),
                    // Nothing to go by: the owner's sweep finds the entry once it stalls.
                    Err(err) => tracing::warn!(error = %err, "unreadable entry notice"),
                }
            }
            Some(Told::Answer(id, answer)) => {
                // The answer comes with the notification unless it was too long for one.
                if let Some(text) = answer {
                    self.shared.waiters.told(id, text);
                    return;
                }
                // Read for a waiter there is; one still to come polls.
                if !self.shared.waiters.waits_for(id) {
                    return;
                }
                let shared = self.shared.clone();
                ctx.spawn(
                    async move {
                        let answer = match shared.store.cluster() {
                            Some(cluster) => cluster.answer_of(id).await,
                            None => Ok(None),
                        };
                        // Only a real answer wakes the waiter; it polls for anything missed.
                        if let Ok(Some(text)) = answer {
                            shared.answer_arrived(id, &text);
                        }
                    }
                    .into_actor(self),
                );
            }
            None => {}
        }
    }
}

/// A notification this node reads (the payloads are in the module's documentation).
#[derive(Debug, PartialEq, Eq)]
enum Told<'a> {
    /// A customer of this node's has a new entry, too long to come along: read the inbox.
    Pull(&'a str),
    /// A new entry of a conversation this node owns, as a `NewEntry`'s JSON.
    Entry(&'a str),
    /// The answer to an entry this node took (the text unless too long for a notification).
    Answer(i64, Option<&'a str>),
}

impl<'a> Told<'a> {
    /// `payload` if it is for `node`. The node's name is matched whole, so names and
    /// customers with colons in them (the default name is `host:port`; WhatsApp senders are
    /// `whatsapp:+…`) read right.
    fn read(payload: &'a str, node: &str) -> Option<Told<'a>> {
        let for_node = |tag: &str| {
            payload
                .strip_prefix(tag)?
                .strip_prefix(':')?
                .strip_prefix(node)?
                .strip_prefix(':')
        };
        if let Some(customer) = for_node("pull") {
            return Some(Told::Pull(customer));
        }
        if let Some(json) = for_node("entry") {
            return Some(Told::Entry(json));
        }
        let rest = payload.strip_prefix("answer:")?;
        let (id, answer) = match rest.split_once(':') {
            Some((id, answer)) => (id, Some(answer)),
            None => (rest, None),
        };
        Some(Told::Answer(id.parse().ok()?, answer))
    }
}

impl Actor for ClusterNode {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let config = self.shared.config.cluster.clone();
        tracing::info!(node = %self.shared.node_id, "cluster mode: coordinating through the database");
        self.heartbeat(ctx);
        self.renew(ctx);
        ctx.run_interval(
            Duration::from_millis(config.heartbeat_ms.max(100)),
            |act, ctx| act.heartbeat(ctx),
        );
        ctx.run_interval(
            Duration::from_millis((config.lease_ms / 3).max(100)),
            |act, ctx| act.renew(ctx),
        );
        ctx.run_interval(SWEEP, |act, ctx| act.sweep(ctx));
        if let Some(mut notifications) = self.notifications.take() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| {
                notifications.poll_recv(cx)
            }));
        }
    }
}

impl StreamHandler<String> for ClusterNode {
    fn handle(&mut self, payload: String, ctx: &mut Context<Self>) {
        self.on_notification(&payload, ctx);
    }

    /// The listener is gone (the store closed): the sweeps keep the node working.
    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("cluster notifications stopped; relying on the sweeps");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_read_for_this_node_whatever_colons_its_name_holds() {
        let me = "host-1:8080";
        assert_eq!(
            Told::read("pull:host-1:8080:whatsapp:+15551230000", me),
            Some(Told::Pull("whatsapp:+15551230000"))
        );
        assert_eq!(
            Told::read(r#"entry:host-1:8080:{"entry": {"id": 3}}"#, me),
            Some(Told::Entry(r#"{"entry": {"id": 3}}"#))
        );
        // Another node's (a channel shared by chance), even one whose name starts like ours.
        assert_eq!(Told::read("pull:host-1:8081:+1555", me), None);
        assert_eq!(Told::read("entry:host-1:{}", me), None);
        assert_eq!(Told::read("pull:host-1:8080", me), None);
        // Answers: the text may hold colons; a long one comes without it.
        assert_eq!(
            Told::read("answer:42:Order 7: shipped at 10:30", me),
            Some(Told::Answer(42, Some("Order 7: shipped at 10:30")))
        );
        assert_eq!(Told::read("answer:42", me), Some(Told::Answer(42, None)));
        assert_eq!(
            Told::read("answer:42:", me),
            Some(Told::Answer(42, Some("")))
        );
        assert_eq!(Told::read("answer:x:hi", me), None);
        assert_eq!(Told::read("ready", me), None);
    }

    #[test]
    fn an_answer_told_before_its_waiter_is_set_is_kept_for_it() {
        let waiters = Waiters::default();
        // In time: straight to the waiter.
        let mut waiting = waiters.add(1);
        waiters.told(1, "one");
        assert_eq!(waiting.try_recv().ok().as_deref(), Some("one"));
        assert!(!waiters.waits_for(1));
        // Early: kept, and handed over the moment the waiter is set.
        waiters.told(2, "two");
        let mut late = waiters.add(2);
        assert_eq!(late.try_recv().ok().as_deref(), Some("two"));
        assert!(!waiters.waits_for(2), "nothing left waiting");
        // Kept once: a second waiter for the same entry waits for a new answer.
        let mut again = waiters.add(2);
        assert!(again.try_recv().is_err());
    }

    #[test]
    fn early_answers_are_bounded_and_the_oldest_go_first() {
        let waiters = Waiters::default();
        let kept = i64::try_from(EARLY_KEPT).unwrap();
        for id in 0..kept + 10 {
            waiters.told(id, &format!("answer {id}"));
        }
        assert_eq!(waiters.lock().early.len(), EARLY_KEPT);
        assert!(
            waiters.add(9).try_recv().is_err(),
            "among the oldest, dropped"
        );
        assert_eq!(
            waiters.add(10).try_recv().ok().as_deref(),
            Some("answer 10")
        );
        assert_eq!(
            waiters.add(kept + 9).try_recv().ok().as_deref(),
            Some(format!("answer {}", kept + 9).as_str())
        );
    }
}
