//! `Registry`: the directory of live calls and conversations, one per process.
//!
//! Every media socket registers its `Call` under the `CallSid` once Twilio's `start` frame
//! names it; a second socket for the same `CallSid` replaces the first (Twilio reconnected,
//! or a duplicate). Customer text messages are routed here to the customer's
//! `Conversation`, which the registry creates on demand — spread over a few arbiters so
//! that conversations use every core — and retires when idle. The registry admits new
//! calls and conversations against `[limits]` and answers the dashboard's and tests'
//! questions about what is alive.

mod handlers;
pub mod messages;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::call::Call;
use crate::conversation::Conversation;
use crate::engine::Shared;

struct CallEntry {
    registration: u64,
    addr: Addr<Call>,
    info: messages::CallInfo,
}

struct ConversationEntry {
    registration: u64,
    addr: Addr<Conversation>,
}

pub struct Registry {
    shared: Arc<Shared>,
    calls: HashMap<String, CallEntry>,
    conversations: HashMap<String, ConversationEntry>,
    /// Where conversations run, round-robin.
    arbiters: Vec<Arbiter>,
    next_arbiter: usize,
}

impl Registry {
    pub fn new(shared: Arc<Shared>) -> Self {
        Registry {
            shared,
            calls: HashMap::new(),
            conversations: HashMap::new(),
            arbiters: Vec::new(),
            next_arbiter: 0,
        }
    }
}

/// A process-unique registration number, taken by the call itself so registering needs
/// no round trip.
pub fn next_registration() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Calls register from every HTTP worker; do not let a burst of sockets block them.
        ctx.set_mailbox_capacity(4096);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        self.arbiters = (0..threads).map(|_| Arbiter::new()).collect();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}
