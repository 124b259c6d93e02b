//! Message handlers of `Conversation`: customer messages in, model and tool results
//! through the dialogue, answers out.

use std::time::Instant;

use actix::prelude::*;
use tracing::Instrument as _;

use super::messages::{
    Channel, CustomerMessage, InboxRoute, PullInbox, ReplyEvent, ReplyTo, Retire,
};
use super::{Conversation, InHand};
use crate::call::messages::{CallView, ChildView, Describe};
use crate::chat::messages::ChatNotice;
use crate::clock::wall_clock_ms;
use crate::domain::dialogue::Action;
use crate::domain::effects;
use crate::domain::records::mask_phone;
use crate::domain::records::CustomerChange;
use crate::domain::transcript::{Role, Turn};
use crate::outbound::{self, Destination};
use crate::store::{EntryAnswer, InboxEntry};
use crate::tools::messages::ToolFinished;

impl Handler<CustomerMessage> for Conversation {
    type Result = AtomicResponse<Self, ()>;

    /// The message is written and made durable before this handler answers — which is
    /// what the webhook waits for before acknowledging it to Twilio — and before anything
    /// else is handled, so messages keep their order.
    fn handle(&mut self, msg: CustomerMessage, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        let written = self.persist(Role::User, &msg.text);
        let shared = self.shared.clone();
        let commit = crate::trace::store_commit(self.trace.span(), "customer_message");
        AtomicResponse::new(Box::pin(
            async move {
                written.await;
                shared.commits.durable().await
            }
            .instrument(commit)
            .into_actor(self)
            .map(move |durable, act, ctx| {
                if let Err(err) = durable {
                    tracing::error!(error = %err, "customer message not flushed to disk");
                }
                if act.dialogue.is_busy() || act.in_hand.is_some() {
                    act.queue.push_back(msg);
                } else {
                    act.begin(msg, ctx);
                }
            }),
        ))
    }
}

impl Handler<PullInbox> for Conversation {
    type Result = ();

    /// Cluster mode: takes the customer's new inbox entries (whichever node took them), in
    /// order, behind what is already queued. An entry that came with its notice is taken
    /// as it is when it follows the last one taken; otherwise — the conversation's first,
    /// a notice lost or overtaken, or none given — the inbox is read.
    fn handle(&mut self, PullInbox(new): PullInbox, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        if let Some(new) = new {
            if new.entry.id <= self.inbox_taken {
                return; // taken with an earlier read of the inbox
            }
            if self.inbox_taken != 0 && new.prev == Some(self.inbox_taken) {
                return self.take_entries(vec![new.entry], ctx);
            }
        }
        let store = self.shared.store.clone();
        let customer = self.customer.clone();
        ctx.wait(
            async move {
                match store.cluster() {
                    Some(cluster) => cluster.pending_texts(&customer).await,
                    None => Ok(Vec::new()),
                }
            }
            .into_actor(self)
            .map(|pending, act, ctx| match pending {
                Ok(entries) => act.take_entries(entries, ctx),
                Err(err) => tracing::error!(error = %err, "inbox unreadable"),
            }),
        );
    }
}

impl Conversation {
    /// Queues the inbox entries not taken yet (`entries` in id order) and starts on the
    /// next message if the conversation is free.
    fn take_entries(&mut self, entries: Vec<InboxEntry>, ctx: &mut Context<Self>) {
        let taken = self.inbox_taken;
        for entry in entries.into_iter().filter(|e| e.id > taken) {
            self.inbox_taken = entry.id;
            let route = match serde_json::from_value::<InboxRoute>(entry.route) {
                Ok(route) => route,
                Err(err) => {
                    tracing::error!(error = %err, id = entry.id, "inbox entry without a usable route; answered to no one");
                    InboxRoute::Inline { fallback: None }
                }
            };
            let channel =
                serde_json::from_value::<Channel>(serde_json::Value::String(entry.channel))
                    .unwrap_or(Channel::Sms);
            self.queue.push_back(CustomerMessage {
                channel,
                text: entry.text,
                reply: ReplyTo::Inbox {
                    id: entry.id,
                    route,
                },
            });
        }
        if !self.dialogue.is_busy() && self.in_hand.is_none() {
            if let Some(next) = self.queue.pop_front() {
                self.begin(next, ctx);
            }
        }
    }
}

impl Conversation {
    /// Starts answering one message.
    fn begin(&mut self, msg: CustomerMessage, ctx: &mut Context<Self>) {
        self.last_channel = Some(msg.channel);
        if self.supervision.taken_over() {
            return self.hold_for_supervisor(msg, ctx);
        }
        self.supervision.remember(&msg.reply);
        // A local message was persisted when it arrived; an inbox entry's words join the
        // thread with its answer, in one transaction (`answer_inbox`).
        let now = wall_clock_ms();
        let said = matches!(msg.reply, ReplyTo::Inbox { .. }).then(|| Turn {
            role: Role::User,
            text: msg.text.clone(),
            at_ms: now,
        });
        self.in_hand = Some(InHand {
            channel: msg.channel,
            reply: msg.reply,
            said,
            received: Instant::now(),
            _turn: self.shared.health.drain.turn(),
        });
        // Turns past `messaging.history_ttl_hours` leave the model's context.
        self.dialogue
            .forget_before(super::history_cutoff(&self.shared, now));
        let actions = self.dialogue.customer_says_at(&msg.text, Some(now));
        self.perform(actions, ctx);
    }

    /// Appends a turn to the customer's thread: the write, to be awaited in the actor's
    /// order (atomically or with `ctx.wait`), so the thread keeps the conversation's order.
    fn persist(&self, role: Role, text: &str) -> impl std::future::Future<Output = ()> + 'static {
        let turn = Turn {
            role,
            text: text.to_string(),
            at_ms: wall_clock_ms(),
        };
        let store = self.shared.store.clone();
        let customer = self.customer.clone();
        async move {
            if let Err(err) = store.append_turn(&customer, &turn).await {
                crate::metrics::store_error("write");
                tracing::error!(error = %err, "conversation turn not persisted");
            }
        }
    }

    /// The change to the customer's record when a handoff made another agent active since
    /// it was last written, so the customer is still with that agent after a retirement or a
    /// restart.
    fn agent_change(&mut self) -> Option<CustomerChange> {
        let agent = self.dialogue.agent();
        if agent == self.persisted_agent {
            return None;
        }
        self.persisted_agent = agent.to_owned();
        Some(CustomerChange::TextAgent {
            agent: agent.to_owned(),
            at_ms: wall_clock_ms(),
        })
    }

    /// Writes the active agent to the customer's record when a handoff changed it.
    fn persist_agent(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let change = self.agent_change();
        let store = self.shared.store.clone();
        let customer = self.customer.clone();
        async move {
            let Some(change) = change else {
                return;
            };
            if let Err(err) = store.update_customer(&customer, &change).await {
                crate::metrics::store_error("write");
                tracing::error!(error = %err, "active agent not persisted");
            }
        }
    }

    /// `escalate_to_human` on a text channel: the person at `twilio.human_number` gets an
    /// SMS naming the customer, why, their last words and the thread's dashboard page.
    fn text_a_person(&self, reason: &str) {
        let Some(human) = self.shared.config.twilio.human_number.clone() else {
            return;
        };
        let last_words = self
            .dialogue
            .history()
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str());
        let link = self
            .shared
            .config
            .server
            // The customer's key, not this actor's number: the thread stays reachable after
            // the conversation retires, on any node, after a restart.
            .public_http_url(&format!(
                "/actors/conversations/{}",
                url::form_urlencoded::byte_serialize(self.customer.as_bytes()).collect::<String>()
            ));
        let channel = self.last_channel.map_or("text", |c| c.as_str());
        let text = effects::escalation_sms(&self.customer, channel, reason, last_words, &link);
        self.deliver(
            Destination::Message {
                to: human,
                from: None,
            },
            text,
        );
    }

    fn perform(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match &action {
                Action::AskModel { turn, .. } => {
                    self.trace.model_turn_started(&turn.to_string(), "chat")
                }
                Action::RunTool { call_id, name, .. } => self.trace.tool_started(call_id, name),
                _ => {}
            }
            let action = match &self.children {
                Some(children) => match children.carry_out(action, self.dialogue.agent()) {
                    Some(action) => action,
                    None => continue,
                },
                None => action,
            };
            match action {
                Action::AskModel { .. } | Action::RunTool { .. } => {
                    tracing::warn!("dialogue request before the children started; dropped");
                }
                Action::Reply { text } => self.answer(text, ctx),
                Action::HandedOff { from, to } => {
                    tracing::info!(customer = %mask_phone(&self.customer), %from, %to, "handoff");
                }
                Action::Escalate { reason } => {
                    tracing::warn!(customer = %mask_phone(&self.customer), %reason, "customer asks for a person");
                    crate::metrics::escalation("text");
                    self.text_a_person(&reason);
                }
                // Refused on text channels (`effects::decide`): nothing to record.
                Action::Voicemail => {}
            }
        }
    }

    /// The answer to the message in hand: persisted and flushed, then delivered where it
    /// came from. The conversation waits for the flush, so the next message starts after.
    fn answer(&mut self, text: String, ctx: &mut Context<Self>) {
        if let Some(InHand {
            reply: ReplyTo::Inbox { id, .. },
            said,
            ..
        }) = &mut self.in_hand
        {
            let (id, said) = (*id, said.take());
            return self.answer_inbox(id, said, text, ctx);
        }
        let written = self.persist(Role::Assistant, &text);
        let handed_off = self.persist_agent();
        let shared = self.shared.clone();
        let commit = crate::trace::store_commit(self.trace.span(), "answer");
        ctx.wait(
            async move {
                written.await;
                handed_off.await;
                shared.commits.durable().await
            }
            .instrument(commit)
            .into_actor(self)
            .map(move |durable, act, ctx| {
                if let Err(err) = durable {
                    tracing::error!(error = %err, "answer not flushed to disk");
                }
                act.send_answer(text, ctx);
            }),
        );
    }

    /// Cluster mode: the answer, the customer's words, the answer's turn and the active
    /// agent (after a handoff) are committed together; then it goes where the entry says —
    /// to the webhook waiting on this node at once, else nowhere more when an inline waiter
    /// on another node took it (told by the store's notification).
    fn answer_inbox(&mut self, id: i64, said: Option<Turn>, text: String, ctx: &mut Context<Self>) {
        let store = self.shared.store.clone();
        let dead_after = self.shared.config.cluster.dead_after_ms;
        let turn = Turn {
            role: Role::Assistant,
            text: text.clone(),
            at_ms: wall_clock_ms(),
        };
        let handed_off = self.agent_change();
        let node = self.shared.node_id.clone();
        let customer = self.customer.clone();
        ctx.wait(
            async move {
                match store.cluster() {
                    Some(cluster) => {
                        cluster
                            .answer_text(
                                EntryAnswer {
                                    customer: &customer,
                                    id,
                                    said: said.as_ref(),
                                    answer: &turn,
                                    change: handed_off.as_ref(),
                                },
                                &node,
                                dead_after,
                            )
                            .await
                    }
                    None => Ok(false),
                }
            }
            .into_actor(self)
            .map(move |gave_up, act, ctx| {
                let gave_up = match gave_up {
                    Ok(gave_up) => {
                        act.shared.answer_arrived(id, &text);
                        gave_up
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "answer not recorded");
                        true
                    }
                };
                act.inbox_gave_up = gave_up;
                act.send_answer(text, ctx);
            }),
        );
    }

    fn send_answer(&mut self, text: String, ctx: &mut Context<Self>) {
        if let Some(in_hand) = self.in_hand.take() {
            let latency = in_hand.received.elapsed();
            self.last_turn_latency_ms = u64::try_from(latency.as_millis()).ok();
            crate::metrics::text_turn(in_hand.channel.as_str(), latency);
            match in_hand.reply {
                ReplyTo::Inline { answer, fallback } => {
                    if let Err(text) = answer.send(text) {
                        // The webhook already answered without us: send it the slow way.
                        if let Some(destination) = fallback {
                            self.deliver(destination, text);
                        }
                    }
                }
                ReplyTo::Rest(destination) => self.deliver(destination, text),
                ReplyTo::Stream(socket) => socket.do_send(ReplyEvent::Done(text)),
                ReplyTo::Inbox { route, .. } => match route {
                    InboxRoute::Rest { destination } => self.deliver(destination, text),
                    // The waiter was told by the store; if it gave up, the slow way.
                    InboxRoute::Inline { fallback } => {
                        if std::mem::take(&mut self.inbox_gave_up) {
                            if let Some(destination) = fallback {
                                self.deliver(destination, text);
                            }
                        }
                    }
                },
            }
        }
        self.last_activity = Instant::now();
        if let Some(next) = self.queue.pop_front() {
            self.begin(next, ctx);
        } else if self.retiring {
            ctx.stop();
        }
    }

    fn deliver(&self, destination: Destination, text: String) {
        let shared = self.shared.clone();
        // The turn lasts until the reply is handed to Twilio: a drain waits for it.
        let turn = self.shared.health.drain.turn();
        let span = self.trace.span().clone();
        actix::spawn(
            async move {
                let _turn = turn;
                if let Err(err) = outbound::deliver(&shared.config, &destination, &text).await {
                    tracing::error!(error = %err, "reply not delivered");
                }
            }
            .instrument(span),
        );
    }
}

impl Handler<ChatNotice> for Conversation {
    type Result = ();

    fn handle(&mut self, notice: ChatNotice, ctx: &mut Context<Self>) {
        match notice {
            ChatNotice::Token { text, .. } => {
                if let Some(InHand {
                    reply: ReplyTo::Stream(socket),
                    ..
                }) = &self.in_hand
                {
                    socket.do_send(ReplyEvent::Token(text));
                }
            }
            ChatNotice::Reply { turn, reply } => {
                self.trace.model_turn_ended(&turn.to_string(), "completed");
                let actions = self
                    .dialogue
                    .model_replied(turn, reply, &self.shared.agents);
                self.perform(actions, ctx);
            }
            ChatNotice::Failed { turn, reason } => {
                self.trace.model_turn_ended(&turn.to_string(), "failed");
                let actions = self.dialogue.model_failed(turn, &reason);
                self.perform(actions, ctx);
            }
        }
    }
}

impl Handler<ToolFinished> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: ToolFinished, ctx: &mut Context<Self>) {
        crate::metrics::tool_call(&msg.name, msg.ok);
        self.trace.tool_finished(&msg.call_id, msg.ok);
        let actions = self.dialogue.tool_finished(&msg.call_id, &msg.output);
        self.perform(actions, ctx);
    }
}

impl Handler<Retire> for Conversation {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retiring = true;
        if self.in_hand.is_none() && self.queue.is_empty() {
            ctx.stop();
        }
    }
}

impl Handler<Describe> for Conversation {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, msg: Describe, _ctx: &mut Context<Self>) -> Self::Result {
        let state = if self.retiring {
            "retiring"
        } else if self.supervision.taken_over() {
            "taken over"
        } else if !self.queue.is_empty() {
            "answering, messages waiting"
        } else if self.in_hand.is_some() {
            "answering"
        } else {
            "idle"
        };
        MessageResult(CallView {
            id: mask_phone(&self.customer),
            key: format!("c{}", self.registration),
            customer_key: Some(self.customer.clone()),
            kind: "conversation",
            channel: self.last_channel.map_or("text", |c| c.as_str()),
            state,
            agent: self.dialogue.agent().to_string(),
            customer: Some(mask_phone(&self.customer)),
            audio_mode: "text",
            started_at_ms: self.started_at_ms,
            restarts: 0,
            mailbox_delay_us: u64::try_from(msg.sent_at.elapsed().as_micros()).unwrap_or(u64::MAX),
            last_turn_latency_ms: self.last_turn_latency_ms,
            children: vec![
                ChildView {
                    kind: "chat",
                    state: if self.dialogue.is_busy() {
                        "thinking"
                    } else {
                        "idle"
                    }
                    .into(),
                },
                ChildView {
                    kind: "tool_executor",
                    state: "ready".into(),
                },
            ],
        })
    }
}
