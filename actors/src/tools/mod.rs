//! `ToolExecutor`: runs a call's or conversation's tools off the owner's path.
//!
//! Built-in tools are pure functions over the catalog and the store (`domain::tools`);
//! HTTP tools POST their arguments to a configured URL; `send_sms` texts the customer through
//! the Messages API and reports whether it went out; `verify_send` and `verify_check` talk
//! to Twilio Verify (`crate::numbers`). Every run has a deadline, and any
//! failure becomes `{"error": "..."}` for the model (SPEC §12): a tool never ends a call.
//! Effects that change the call itself (handoffs, escalation) are the owner's business
//! and never reach this actor.

mod handlers;
pub mod messages;

use std::sync::Arc;

use actix::prelude::*;

use crate::engine::Shared;
use messages::ToolFinished;

pub struct ToolExecutor {
    shared: Arc<Shared>,
    /// The customer the tools act for (bookings, order ownership).
    customer: Option<String>,
    owner: Recipient<ToolFinished>,
    /// A code `verify_send` sent and `verify_check` has not approved yet (Verify codes
    /// live 10 minutes; a retired conversation's customer just asks for a new one).
    pending_verification: Option<PendingVerification>,
}

/// Where the last code went, and for which order.
#[derive(Debug, Clone)]
struct PendingVerification {
    number: String,
    order_id: Option<String>,
}

impl ToolExecutor {
    pub fn new(
        shared: Arc<Shared>,
        customer: Option<String>,
        owner: Recipient<ToolFinished>,
    ) -> Self {
        ToolExecutor {
            shared,
            customer,
            owner,
            pending_verification: None,
        }
    }
}

impl Actor for ToolExecutor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.shared
            .census
            .started(crate::census::Kind::ToolExecutor);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.shared
            .census
            .stopped(crate::census::Kind::ToolExecutor);
    }
}
