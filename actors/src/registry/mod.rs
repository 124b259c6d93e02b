//! `Registry`: the directory of live calls and conversations, one per process.
//!
//! Every media socket registers its `Call` under the `CallSid` once Twilio's `start` frame
//! names it, and every ConversationRelay socket its `RelayCall` once `setup` does; a second
//! socket for the same `CallSid` replaces the first (Twilio reconnected, or a duplicate). Customer text messages are routed here to the customer's
//! `Conversation`, which the registry creates on demand — spread over a few arbiters so
//! that conversations use every core — and retires when idle. The registry admits new
//! calls and conversations against `[limits]` and answers the dashboard's and tests'
//! questions about what is alive.

mod handlers;
pub mod messages;
pub mod supervise;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::conversation::Conversation;
use crate::engine::Shared;

struct CallEntry {
    registration: u64,
    handle: messages::CallHandle,
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

/// How often limits forget idle keys and old records are pruned.
const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(300);

impl Registry {
    /// Retention (SPEC §7): old call records, text turns and the `MessageSid` table are pruned, and the
    /// rate limiters forget quiet keys.
    fn housekeeping(&self) {
        self.shared.limits.forget_idle();
        let storage = &self.shared.config.storage;
        let now = crate::clock::wall_clock_ms();
        let calls_before = now.saturating_sub(u64::from(storage.retention_days) * 86_400_000);
        let seen_before = now.saturating_sub(u64::from(storage.dedupe_hours) * 3_600_000);
        let store = self.shared.store.clone();
        actix::spawn(async move {
            match (
                store.prune_calls(calls_before).await,
                store.prune_seen_messages(seen_before).await,
                // Text turns are kept as long as calls (`storage.retention_days`); the
                // model stopped seeing them after `messaging.history_ttl_hours`.
                store.prune_turns(calls_before).await,
            ) {
                (Ok(calls), Ok(seen), Ok(turns)) if calls + seen + turns > 0 => {
                    tracing::info!(calls, message_sids = seen, turns, "pruned old records");
                }
                (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
                    tracing::error!(error = %err, "pruning failed")
                }
                _ => {}
            }
        });
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Calls register from every HTTP worker; do not let a burst of sockets block them.
        ctx.set_mailbox_capacity(4096);
        // `server.threads`, else one per core.
        let threads = self
            .shared
            .config
            .server
            .threads_or(crate::config::per_core);
        self.arbiters = (0..threads).map(|_| Arbiter::new()).collect();
        ctx.run_interval(HOUSEKEEPING, |act, _ctx| act.housekeeping());
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}
