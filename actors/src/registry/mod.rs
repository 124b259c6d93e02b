//! `Registry`: the directory of live calls, one per process.
//!
//! Every media socket registers its `Call` under the `CallSid` once Twilio's `start` frame
//! names it; a second socket for the same `CallSid` replaces the first (Twilio reconnected,
//! or a duplicate). The registry admits new calls against `limits.max_calls` and answers
//! the dashboard's and tests' questions about what is alive.

mod handlers;
pub mod messages;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;

use crate::call::Call;

struct CallEntry {
    registration: u64,
    addr: Addr<Call>,
    info: messages::CallInfo,
}

pub struct Registry {
    calls: HashMap<String, CallEntry>,
    max_calls: usize,
}

impl Registry {
    pub fn new(max_calls: usize) -> Self {
        Registry {
            calls: HashMap::new(),
            max_calls,
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
    }
}
