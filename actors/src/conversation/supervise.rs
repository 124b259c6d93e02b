//! A supervisor's actions on a text conversation: an instruction for the model's next
//! turn, and the takeover — while taken over, the customer's messages are stored and shown
//! but the model is not asked; the supervisor's messages go to the customer on the channel
//! they last wrote from (Messages API for SMS and WhatsApp, the Conversations API, the web
//! chat socket); releasing gives the conversation back to the assistant, which then knows
//! what was said meanwhile. Every action is a `System` turn of the customer's thread
//! (`supervisor: …`); the supervisor's own messages are the assistant's turns, since that
//! is what the customer received.

use std::time::Instant;

use actix::prelude::*;

use super::messages::{Channel, CustomerMessage, InboxRoute, ReplyEvent, ReplyTo};
use super::Conversation;
use crate::clock::wall_clock_ms;
use crate::domain::records::mask_phone;
use crate::domain::supervision::{self, Refusal};
use crate::domain::transcript::{Role, Turn};
use crate::outbound::{self, Destination};
use crate::supervise::{Done, Supervise, SupervisorAction};

/// The supervisor's hold on a conversation, and how its customer can be reached.
#[derive(Default)]
pub(crate) struct Supervision {
    taken_over: bool,
    /// Where the customer's last REST-answerable message came from (SMS, WhatsApp,
    /// Conversations); `None` when it was answered inline without credentials.
    destination: Option<Destination>,
    /// The web chat socket the customer last wrote from.
    socket: Option<Recipient<ReplyEvent>>,
}

impl Supervision {
    /// Whether a supervisor has the conversation: the model is not asked meanwhile.
    pub(crate) fn taken_over(&self) -> bool {
        self.taken_over
    }

    /// Remembers how the customer can be reached, from the message they just sent.
    pub(crate) fn remember(&mut self, reply: &ReplyTo) {
        match reply {
            ReplyTo::Rest(destination) => self.destination = Some(destination.clone()),
            ReplyTo::Inline { fallback, .. } => self.destination.clone_from(fallback),
            ReplyTo::Stream(socket) => self.socket = Some(socket.clone()),
            ReplyTo::Inbox { route, .. } => match route {
                InboxRoute::Rest { destination } => self.destination = Some(destination.clone()),
                InboxRoute::Inline { fallback } => self.destination.clone_from(fallback),
            },
        }
    }
}

/// How a supervisor's message reaches the customer.
enum Route {
    Socket(Recipient<ReplyEvent>),
    Rest(Destination),
}

impl Conversation {
    /// A customer message while a supervisor has the conversation: on the thread (a local
    /// one was persisted when it arrived; a cluster inbox entry joins it now), in the
    /// dialogue's history, not answered by the model. A webhook waiting to answer inline
    /// gets an empty answer. Messages that were waiting behind it are held the same way.
    pub(crate) fn hold_for_supervisor(&mut self, msg: CustomerMessage, ctx: &mut Context<Self>) {
        let mut next = Some(msg);
        while let Some(msg) = next.take() {
            self.last_channel = Some(msg.channel);
            self.supervision.remember(&msg.reply);
            self.dialogue.customer_said_unanswered(&msg.text);
            match msg.reply {
                ReplyTo::Inline { answer, .. } => {
                    // The webhook may have given up waiting already; then nobody is told.
                    let _ = answer.send(String::new());
                }
                // Cluster mode: the words join the thread; the entry stays unanswered (a
                // node that takes the conversation over after this one dies answers it).
                ReplyTo::Inbox { id, .. } => {
                    let store = self.shared.store.clone();
                    let turn = Turn {
                        role: Role::User,
                        text: msg.text,
                        at_ms: wall_clock_ms(),
                    };
                    ctx.wait(
                        async move {
                            if let Some(cluster) = store.cluster() {
                                if let Err(err) = cluster.begin_text(id, &turn).await {
                                    tracing::error!(error = %err, "held message not added to the thread");
                                }
                            }
                        }
                        .into_actor(self),
                    );
                }
                ReplyTo::Rest(_) | ReplyTo::Stream(_) => {}
            }
            next = self.queue.pop_front();
        }
        self.last_activity = Instant::now();
    }

    /// The assistant falls silent: the answer in the works is dropped (its model turn is
    /// abandoned; a late reply is ignored) and waiting messages are held.
    fn silence(&mut self, ctx: &mut Context<Self>) {
        self.dialogue.abandon();
        if let Some(in_hand) = self.in_hand.take() {
            if let ReplyTo::Inline { answer, .. } = in_hand.reply {
                let _ = answer.send(String::new());
            }
        }
        if let Some(next) = self.queue.pop_front() {
            self.hold_for_supervisor(next, ctx);
        }
    }

    /// Where a message to the customer goes now, or why it cannot.
    fn route_to_customer(&self) -> Result<Route, Refusal> {
        match self.last_channel {
            Some(Channel::Web) => self
                .supervision
                .socket
                .as_ref()
                .filter(|socket| socket.connected())
                .map(|socket| Route::Socket(socket.clone()))
                .ok_or_else(|| {
                    Refusal::Unreachable("the web chat visitor is no longer connected".into())
                }),
            Some(channel) => self
                .supervision
                .destination
                .clone()
                .map(Route::Rest)
                .ok_or_else(|| {
                    Refusal::Unreachable(format!(
                        "the customer cannot be reached on {} without Twilio REST \
                         credentials (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)",
                        channel.as_str()
                    ))
                }),
            None => Err(Refusal::Unreachable(
                "the customer has not written on any channel yet".into(),
            )),
        }
    }

    /// Writes `turn` to the customer's thread and waits until it is durable.
    fn record_turn(
        &self,
        role: Role,
        text: String,
    ) -> impl std::future::Future<Output = Result<(), Refusal>> + 'static {
        let shared = self.shared.clone();
        let customer = self.customer.clone();
        let turn = Turn {
            role,
            text,
            at_ms: wall_clock_ms(),
        };
        async move {
            let written = match shared.store.append_turn(&customer, &turn).await {
                Ok(()) => shared.commits.durable().await.map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            written.map_err(|err| {
                tracing::error!(error = %err, "supervisor action not persisted");
                Refusal::DeliveryFailed(format!("the thread could not be written: {err}"))
            })
        }
    }
}

type Answer = ResponseActFuture<Conversation, Result<Done, Refusal>>;

fn answer_now(result: Result<Done, Refusal>) -> Answer {
    Box::pin(fut::ready(result))
}

impl Handler<Supervise> for Conversation {
    type Result = Answer;

    fn handle(&mut self, Supervise(action): Supervise, ctx: &mut Context<Self>) -> Answer {
        self.last_activity = Instant::now();
        let name = action.name();
        let customer = mask_phone(&self.customer);
        let (record, done) = match action {
            SupervisorAction::Instruct(text) => {
                if let Err(refusal) = self.dialogue.supervisor_instruction(&text) {
                    return answer_now(Err(refusal));
                }
                let text = supervision::clean_text(&text).unwrap_or_default();
                (
                    Some((
                        Role::System,
                        supervision::record(&format!("instruction: {text}")),
                    )),
                    Done::new("the agent has the instruction from its next answer on"),
                )
            }
            SupervisorAction::TakeOver => {
                if self.supervision.taken_over {
                    return answer_now(Ok(Done::new("already taken over")));
                }
                self.supervision.taken_over = true;
                self.silence(ctx);
                (
                    Some((
                        Role::System,
                        supervision::record("took over the conversation; the assistant is silent"),
                    )),
                    Done::new("taken over: the assistant is silent for this customer"),
                )
            }
            SupervisorAction::Release => {
                if !self.supervision.taken_over {
                    return answer_now(Ok(Done::new("not taken over")));
                }
                self.supervision.taken_over = false;
                (
                    Some((
                        Role::System,
                        supervision::record("released the conversation to the assistant"),
                    )),
                    Done::new("released: the assistant answers the next message"),
                )
            }
            SupervisorAction::Reply(text) => return self.supervisor_reply(&text),
            SupervisorAction::End | SupervisorAction::Transfer => {
                return answer_now(Err(Refusal::NotForThis(
                    "a text conversation has no call to end or transfer: take it over instead",
                )))
            }
        };
        tracing::info!(%customer, action = name, "supervisor action");
        crate::metrics::supervisor_action(name);
        let written = record.map(|(role, text)| self.record_turn(role, text));
        Box::pin(
            async move {
                match written {
                    Some(written) => written.await.map(|()| done),
                    None => Ok(done),
                }
            }
            .into_actor(self),
        )
    }
}

impl Conversation {
    /// The supervisor's message: in the history and on the thread as the assistant's
    /// words, then delivered on the customer's channel. The conversation waits for the
    /// delivery, so messages keep their order.
    fn supervisor_reply(&mut self, text: &str) -> Answer {
        let text = match supervision::clean_text(text) {
            Ok(text) => text,
            Err(refusal) => return answer_now(Err(refusal)),
        };
        if !self.supervision.taken_over {
            return answer_now(Err(Refusal::NotTakenOver));
        }
        let route = match self.route_to_customer() {
            Ok(route) => route,
            Err(refusal) => return answer_now(Err(refusal)),
        };
        self.dialogue.supervisor_said(&text);
        crate::metrics::supervisor_action("reply");
        tracing::info!(customer = %mask_phone(&self.customer), action = "reply", "supervisor action");
        let written = self.record_turn(Role::Assistant, text.clone());
        let shared = self.shared.clone();
        let failure_note = self.record_turn_later();
        Box::pin(
            async move {
                written.await?;
                match route {
                    Route::Socket(socket) => {
                        socket.do_send(ReplyEvent::Done(text));
                        Ok(Done::new("sent to the web chat"))
                    }
                    Route::Rest(destination) => {
                        match outbound::deliver(&shared.config, &destination, &text).await {
                            Ok(()) => Ok(Done::new("sent")),
                            Err(err) => {
                                let reason = err.to_string();
                                failure_note(supervision::record(&format!(
                                    "the message above was not delivered: {reason}"
                                )))
                                .await;
                                Err(Refusal::DeliveryFailed(reason))
                            }
                        }
                    }
                }
            }
            .into_actor(self),
        )
    }

    /// A way to write a `System` turn from inside a future that has no `&self`.
    fn record_turn_later(
        &self,
    ) -> impl FnOnce(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + 'static
    {
        let shared = self.shared.clone();
        let customer = self.customer.clone();
        move |text| {
            Box::pin(async move {
                let turn = Turn {
                    role: Role::System,
                    text,
                    at_ms: wall_clock_ms(),
                };
                if let Err(err) = shared.store.append_turn(&customer, &turn).await {
                    tracing::error!(error = %err, "supervisor note not persisted");
                }
            })
        }
    }
}
