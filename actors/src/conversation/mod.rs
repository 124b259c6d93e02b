//! `Conversation`: one customer's text thread across SMS, WhatsApp, Twilio Conversations
//! and web chat, restored from sled when it (re)starts.
//!
//! The dialogue itself — model turns, tools, handoffs — is the pure `domain::dialogue`;
//! this actor persists each message around it (the customer's before the model is asked,
//! the reply before it is sent), runs the `Chat` and `ToolExecutor` children, and delivers
//! answers on the channel each message came from. Messages that arrive while a turn is in
//! progress wait their turn, in order. After `limits.idle_secs` without traffic the actor
//! asks the registry to retire it; the next message starts a fresh one from the store.

mod handlers;
pub mod messages;
mod supervise;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::census::Kind;
use crate::chat::messages::{ChatNotice, Complete};
use crate::chat::Chat;
use crate::clock::wall_clock_ms;
use crate::domain::conversation::{Message, Role};
use crate::domain::dialogue::Action;
use crate::domain::dialogue::Dialogue;
use crate::domain::effects::{Medium, Withheld};
use crate::domain::memory;
use crate::engine::Shared;
use crate::registry::messages::ConversationIdle;
use crate::registry::Registry;
use crate::tools::messages::{RunTool, ToolFinished};
use crate::tools::ToolExecutor;
use messages::{Channel, CustomerMessage, ReplyTo};

/// The children that carry out a dialogue's model and tool requests, for every owner of
/// a `Dialogue` (a `Conversation`, a relay-mode call).
pub(crate) struct DialogueChildren {
    pub(crate) chat: Addr<Chat>,
    tools: Addr<ToolExecutor>,
}

impl DialogueChildren {
    /// Starts `Chat` and `ToolExecutor` for `customer`, reporting to the owner.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        customer: Option<String>,
        chat_owner: Recipient<ChatNotice>,
        tool_owner: Recipient<ToolFinished>,
    ) -> Self {
        DialogueChildren {
            chat: Chat::new(shared.clone(), chat_owner).start(),
            tools: ToolExecutor::new(shared.clone(), customer, tool_owner).start(),
        }
    }

    /// Sends a model or tool request on; any other action is the owner's and comes back.
    /// `agent` is the agent active now.
    pub(crate) fn carry_out(&self, action: Action, agent: &str) -> Option<Action> {
        match action {
            Action::AskModel {
                turn,
                agent,
                history,
                withheld,
                on_call,
            } => self.chat.do_send(Complete {
                turn,
                agent,
                history,
                withheld,
                on_call,
            }),
            Action::RunTool {
                call_id,
                name,
                arguments,
            } => self.tools.do_send(RunTool {
                call_id,
                name,
                arguments,
                agent: Some(agent.to_owned()),
            }),
            other => return Some(other),
        }
        None
    }
}

/// Turns of the thread reloaded from the store when the actor starts.
const RESTORE_TURNS: usize = 40;

/// The message being answered.
struct InHand {
    channel: Channel,
    reply: ReplyTo,
    /// Cluster mode: the customer's words of the inbox entry in hand, which join the thread
    /// in the transaction that records the answer.
    said: Option<crate::domain::transcript::Turn>,
    received: Instant,
    /// Counted while the turn is answered: a drain waits for it.
    _turn: crate::drain::TurnInFlight,
}

pub struct Conversation {
    shared: Arc<Shared>,
    registry: Addr<Registry>,
    /// The customer: an E.164 number, a web id, or a Conversations participant.
    customer: String,
    registration: u64,
    started_at_ms: u64,
    dialogue: Dialogue,
    children: Option<DialogueChildren>,
    in_hand: Option<InHand>,
    queue: VecDeque<CustomerMessage>,
    last_channel: Option<Channel>,
    last_activity: Instant,
    last_turn_latency_ms: Option<u64>,
    retiring: bool,
    /// Cluster mode: the last inbox entry queued, so a repeated pull queues nothing twice.
    inbox_taken: i64,
    /// Cluster mode: the inline waiter of the answer in hand gave up.
    inbox_gave_up: bool,
    /// The agent last written to the customer's record: a handoff is written with the
    /// answer that follows it.
    persisted_agent: String,
    /// The conversation's span and its children in progress (model turns, tools).
    trace: crate::trace::Trace,
    /// A supervisor's takeover, and how to reach the customer (`supervise.rs`).
    supervision: supervise::Supervision,
}

impl Conversation {
    pub fn new(
        shared: Arc<Shared>,
        registry: Addr<Registry>,
        customer: String,
        registration: u64,
    ) -> Self {
        let agent = shared.agents.default_agent.clone();
        Conversation {
            persisted_agent: agent.clone(),
            trace: crate::trace::Trace::new(crate::trace::conversation_span(&customer)),
            shared,
            registry,
            customer,
            registration,
            started_at_ms: wall_clock_ms(),
            dialogue: Dialogue::new(agent, Vec::new()),
            children: None,
            in_hand: None,
            queue: VecDeque::new(),
            last_channel: None,
            last_activity: Instant::now(),
            last_turn_latency_ms: None,
            retiring: false,
            inbox_taken: 0,
            inbox_gave_up: false,
            supervision: Default::default(),
        }
    }

    /// Reloads the thread and what earlier calls taught us about the customer, before any
    /// message is handled.
    fn restore(&mut self, ctx: &mut Context<Self>) {
        let agent = self.dialogue.agent().to_string();
        let shared = self.shared.clone();
        let customer = self.customer.clone();
        ctx.wait(
            async move { restore_dialogue(&shared, &customer, agent, Medium::Text).await }
                .into_actor(self)
                .map(|dialogue, act, _ctx| {
                    act.persisted_agent = dialogue.agent().to_owned();
                    act.dialogue = dialogue;
                }),
        );
    }
}

/// The customer's dialogue as the store remembers it: their recent thread, whatever the
/// channel, with what earlier calls taught us as context. Relay calls restore it too, so a
/// caller picks up where their texts left off, and the other way round. Turns older than
/// `messaging.history_ttl_hours` are left out; a text conversation resumes with the agent
/// it was with (SPEC §15, text channels).
pub(crate) async fn restore_dialogue(
    shared: &Shared,
    customer: &str,
    agent: String,
    medium: Medium,
) -> Dialogue {
    let store = &shared.store;
    let cutoff = history_cutoff(shared, wall_clock_ms());
    let mut history = Vec::new();
    let mut user_times = Vec::new();
    // Both at once: a new conversation waits for the slower, not for their sum.
    let (turns, record) = futures_util::future::join(
        store.recent_turns(customer, RESTORE_TURNS),
        store.customer(customer),
    )
    .await;
    match turns {
        Ok(turns) => {
            for turn in turns.into_iter().filter(|t| t.at_ms >= cutoff) {
                match turn.role {
                    Role::User => {
                        user_times.push(turn.at_ms);
                        history.push(Message::user(turn.text));
                    }
                    Role::Assistant => history.push(Message::assistant(turn.text)),
                    Role::Tool | Role::System => {}
                }
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "conversation history unreadable; starting fresh");
        }
    };
    let record = match record {
        Ok(record) => record,
        Err(err) => {
            tracing::warn!(error = %err, "customer memory unreadable");
            None
        }
    };
    // The agent a text conversation was handed to, if it still exists.
    let agent = record
        .as_ref()
        .and_then(|r| r.text_agent.clone())
        .filter(|a| medium == Medium::Text && shared.agents.agent(a).is_some())
        .unwrap_or(agent);
    let mut dialogue = Dialogue::new(agent, history)
        .with_user_times(user_times)
        .with_escalation(medium, escalation_possible(shared, medium));
    dialogue.set_context(record.as_ref().and_then(memory::earlier_calls));
    // Lookup at the first contact (`lookup.enabled`): a landline is not offered texts.
    let line = crate::numbers::line_of(shared, customer, record.as_ref()).await;
    dialogue.withhold(
        Withheld::for_line(line.as_ref())
            .without_verification(shared.config.verification_available()),
    );
    dialogue
}

/// Whether `escalate_to_human` can reach a person: on a call, a number to dial; on text,
/// a number to text and the credentials to text it with.
pub(crate) fn escalation_possible(shared: &Shared, medium: Medium) -> bool {
    let twilio = &shared.config.twilio;
    match medium {
        Medium::Voice => twilio.human_number.is_some(),
        Medium::Text => twilio.human_number.is_some() && twilio.credentials().is_some(),
    }
}

/// Text turns written before this leave the model's context.
pub(crate) fn history_cutoff(shared: &Shared, now_ms: u64) -> u64 {
    let ttl_ms = u64::from(shared.config.messaging.history_ttl_hours).saturating_mul(3_600_000);
    now_ms.saturating_sub(ttl_ms)
}

impl Actor for Conversation {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared.census.started(Kind::Conversation);
        crate::metrics::CONVERSATIONS_ACTIVE.inc();
        self.restore(ctx);
        self.children = Some(DialogueChildren::start(
            &self.shared,
            Some(self.customer.clone()),
            ctx.address().recipient(),
            ctx.address().recipient(),
        ));
        let idle = Duration::from_secs(self.shared.config.limits.idle_secs.max(1));
        ctx.run_interval(idle / 4 + Duration::from_millis(1), move |act, _ctx| {
            // A conversation a supervisor has taken over stays until released.
            if !act.dialogue.is_busy()
                && act.queue.is_empty()
                && !act.supervision.taken_over()
                && act.last_activity.elapsed() >= idle
            {
                act.registry.do_send(ConversationIdle {
                    customer: act.customer.clone(),
                    registration: act.registration,
                });
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.shared.census.stopped(Kind::Conversation);
        crate::metrics::CONVERSATIONS_ACTIVE.dec();
        // Cluster mode: another node may answer this customer now.
        if self.shared.store.cluster().is_some() {
            let store = self.shared.store.clone();
            let customer = self.customer.clone();
            let node = self.shared.node_id.clone();
            actix::spawn(async move {
                if let Some(cluster) = store.cluster() {
                    if let Err(err) = cluster.release_conversation(&customer, &node).await {
                        tracing::warn!(error = %err, "conversation lease not released");
                    }
                }
            });
        }
        tracing::debug!(customer = %crate::domain::records::mask_phone(&self.customer), "conversation retired");
    }
}
