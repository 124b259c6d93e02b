//! Message handlers of `Registry`.

use actix::prelude::*;

use std::time::{Duration, Instant};

use super::messages::{
    AdmitCall, CallEnded, CallHandle, CallInfo, ConversationIdle, DescribeCalls,
    DescribeConversations, FindCall, ListCalls, Publication, Publish, PullInbox, Refusal,
    RegisterCall, RouteMessage, SayGoodbye,
};
use super::{next_registration, ConversationEntry};
use super::{CallEntry, Registry};
use crate::call::messages::{CallView, Describe, Goodbye, Replaced};
use crate::conversation::messages::Retire;
use crate::conversation::Conversation;

impl Handler<RegisterCall> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterCall, _ctx: &mut Context<Self>) {
        let registration = msg.registration;
        let call_sid = msg.info.call_sid.clone();
        let entry = CallEntry {
            registration,
            handle: msg.handle,
            info: msg.info,
        };
        if let Some(old) = self.calls.insert(call_sid.clone(), entry) {
            tracing::info!(call_sid = %call_sid, "second socket for the call replaces the first");
            old.handle.replaced.do_send(Replaced);
        }
    }
}

impl Handler<CallEnded> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CallEnded, _ctx: &mut Context<Self>) {
        let current = self
            .calls
            .get(&msg.call_sid)
            .is_some_and(|entry| entry.registration == msg.registration);
        if current {
            self.calls.remove(&msg.call_sid);
        }
    }
}

impl Handler<AdmitCall> for Registry {
    type Result = bool;

    fn handle(&mut self, _: AdmitCall, _ctx: &mut Context<Self>) -> bool {
        self.calls.len() < self.shared.config.limits.max_calls
    }
}

impl Handler<SayGoodbye> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: SayGoodbye, _ctx: &mut Context<Self>) -> usize {
        for entry in self.calls.values() {
            entry.handle.goodbye.do_send(Goodbye { within: msg.within });
        }
        self.calls.len()
    }
}

impl Handler<ListCalls> for Registry {
    type Result = MessageResult<ListCalls>;

    fn handle(&mut self, _: ListCalls, _ctx: &mut Context<Self>) -> Self::Result {
        let calls: Vec<CallInfo> = self.calls.values().map(|e| e.info.clone()).collect();
        MessageResult(calls)
    }
}

/// How long one dashboard refresh waits for an actor's answer.
const DESCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

impl Handler<DescribeCalls> for Registry {
    type Result = ResponseFuture<Vec<CallView>>;

    fn handle(&mut self, _: DescribeCalls, _ctx: &mut Context<Self>) -> Self::Result {
        describe(self.calls.values().map(|e| e.handle.describe.clone()))
    }
}

impl Handler<Publish> for Registry {
    type Result = ResponseFuture<Publication>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Context<Self>) -> Self::Result {
        let calls = oldest(
            self.calls
                .values()
                .map(|e| (e.registration, e.handle.describe.clone())),
            msg.at_most,
        );
        let conversations = oldest(
            self.conversations
                .values()
                .map(|e| (e.registration, e.addr.clone().recipient())),
            msg.at_most,
        );
        let (calls_total, conversations_total) = (self.calls.len(), self.conversations.len());
        Box::pin(async move {
            let (calls, conversations) = futures_util::future::join(
                describe(calls.into_iter()),
                describe(conversations.into_iter()),
            )
            .await;
            Publication {
                calls_total,
                conversations_total,
                calls,
                conversations,
            }
        })
    }
}

/// The `n` actors registered first.
fn oldest(
    actors: impl Iterator<Item = (u64, Recipient<Describe>)>,
    n: usize,
) -> Vec<Recipient<Describe>> {
    let mut actors: Vec<_> = actors.collect();
    if actors.len() > n {
        actors.select_nth_unstable_by_key(n, |(registration, _)| *registration);
        actors.truncate(n);
    }
    actors.into_iter().map(|(_, actor)| actor).collect()
}

/// Asks every actor for its view at once; one too busy to answer in time is left out of
/// this refresh rather than holding it up.
fn describe(actors: impl Iterator<Item = Recipient<Describe>>) -> ResponseFuture<Vec<CallView>> {
    let questions: Vec<_> = actors
        .map(|actor| {
            actor
                .send(Describe {
                    sent_at: Instant::now(),
                })
                .timeout(DESCRIBE_TIMEOUT)
        })
        .collect();
    Box::pin(async move {
        let answers = futures_util::future::join_all(questions).await;
        let mut views: Vec<CallView> = answers.into_iter().filter_map(Result::ok).collect();
        views.sort_by_key(|view| view.started_at_ms);
        views
    })
}

impl Handler<FindCall> for Registry {
    type Result = Option<CallHandle>;

    fn handle(&mut self, msg: FindCall, _ctx: &mut Context<Self>) -> Self::Result {
        self.calls.get(&msg.0).map(|entry| entry.handle.clone())
    }
}

impl Registry {
    /// The customer's live conversation, started (on the next arbiter) if there is none;
    /// `None` when every conversation slot is taken.
    fn conversation(
        &mut self,
        customer: &str,
        ctx: &mut Context<Self>,
    ) -> Option<Addr<Conversation>> {
        if let Some(entry) = self.conversations.get(customer) {
            if entry.addr.connected() {
                return Some(entry.addr.clone());
            }
        }
        if self.conversations.len() >= self.shared.config.limits.max_conversations {
            crate::metrics::rate_limited("concurrent_conversations");
            return None;
        }
        let registration = next_registration();
        let shared = self.shared.clone();
        let registry = ctx.address();
        let owned = customer.to_owned();
        let addr = match self
            .arbiters
            .get(self.next_arbiter % self.arbiters.len().max(1))
        {
            Some(arbiter) => Conversation::start_in_arbiter(&arbiter.handle(), move |_| {
                Conversation::new(shared, registry, owned, registration)
            }),
            None => Conversation::new(shared, registry, owned, registration).start(),
        };
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        self.conversations.insert(
            customer.to_owned(),
            ConversationEntry {
                registration,
                addr: addr.clone(),
            },
        );
        Some(addr)
    }
}

impl Handler<RouteMessage> for Registry {
    type Result = ResponseFuture<Result<(), Refusal>>;

    /// Answers once the conversation has the message on disk, so the webhook that is
    /// waiting acknowledges only what a crash cannot lose.
    fn handle(&mut self, msg: RouteMessage, ctx: &mut Context<Self>) -> Self::Result {
        // Draining: a message is taken only if it can be answered before the process exits.
        let answer_within =
            std::time::Duration::from_millis(self.shared.config.messaging.deadline_ms);
        if !self.shared.health.drain.takes_text(answer_within) {
            crate::metrics::rate_limited("draining");
            return Box::pin(async { Err(Refusal::Draining) });
        }
        let Some(addr) = self.conversation(&msg.customer, ctx) else {
            return Box::pin(async { Err(Refusal::TooManyConversations) });
        };
        Box::pin(async move {
            addr.send(msg.message)
                .await
                .map_err(|_| Refusal::Unavailable)
        })
    }
}

impl Handler<PullInbox> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PullInbox, ctx: &mut Context<Self>) {
        match self.conversation(&msg.customer, ctx) {
            Some(addr) => addr.do_send(crate::conversation::messages::PullInbox(msg.entry)),
            None => tracing::warn!("every conversation slot is taken; the inbox waits"),
        }
    }
}

impl Handler<ConversationIdle> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ConversationIdle, _ctx: &mut Context<Self>) {
        let current = self
            .conversations
            .get(&msg.customer)
            .is_some_and(|entry| entry.registration == msg.registration);
        if current {
            if let Some(entry) = self.conversations.remove(&msg.customer) {
                entry.addr.do_send(Retire);
            }
        }
    }
}

impl Handler<DescribeConversations> for Registry {
    type Result = ResponseFuture<Vec<CallView>>;

    fn handle(&mut self, _: DescribeConversations, _ctx: &mut Context<Self>) -> Self::Result {
        describe(
            self.conversations
                .values()
                .map(|e| e.addr.clone().recipient()),
        )
    }
}
