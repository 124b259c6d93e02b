//! Spans of calls and conversations (SPEC §10): one `call` span per phone call (its
//! CallSid) and one `conversation` span per customer thread (the masked customer), each with
//! children for every model turn, tool call, store commit and Twilio REST request. A span's
//! start and end are its duration; the shell exports them over OTLP when configured.
//!
//! Actors live long and handle one message at a time, so no span guard is ever held across
//! an await or a message: the actor keeps its span, opens each child with an explicit
//! `parent:` when the work starts, keeps the child until the work ends (by key: a tool's
//! call id, a model turn), and drops it then, which closes it. Futures the actor spawns
//! carry their span with `Instrument`.

use std::collections::HashMap;

use tracing::{field, info_span, Span};

use crate::domain::records::mask_phone;
use crate::protocol::openai::realtime::ServerEvent;

/// The span of one phone call.
pub fn call_span(call_sid: &str, customer: &str, kind: &'static str) -> Span {
    info_span!(
        "call",
        call_sid = %call_sid,
        customer = %mask_phone(customer),
        kind,
        outcome = field::Empty,
    )
}

/// The span of one customer thread (SMS, WhatsApp, Conversations, web chat).
pub fn conversation_span(customer: &str) -> Span {
    info_span!("conversation", customer = %mask_phone(customer))
}

/// A store write made durable (group commit), as a child of `parent`.
pub fn store_commit(parent: &Span, what: &'static str) -> Span {
    info_span!(parent: parent, "store.commit", what)
}

/// A Twilio REST request (Messages, Conversations), a child of the current span.
pub fn twilio_rest(api: &'static str) -> Span {
    info_span!("twilio.rest", api, ok = field::Empty)
}

/// The children of a long-lived actor's span that are in progress, by key.
#[derive(Debug)]
pub struct Trace {
    span: Span,
    open: HashMap<String, Span>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new(Span::none())
    }
}

impl Trace {
    pub fn new(span: Span) -> Self {
        Trace {
            span,
            open: HashMap::new(),
        }
    }

    /// The actor's own span: the parent of everything it does.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// A model turn begins: a Realtime response, or a chat completion (`kind`).
    pub fn model_turn_started(&mut self, key: &str, kind: &'static str) {
        let span = info_span!(parent: &self.span, "model.turn", kind, status = field::Empty);
        self.open.insert(format!("model:{key}"), span);
    }

    /// The model turn `key` ended with `status` (`completed`, `failed`, `cancelled`, …).
    pub fn model_turn_ended(&mut self, key: &str, status: &str) {
        if let Some(span) = self.open.remove(&format!("model:{key}")) {
            span.record("status", status);
        }
    }

    /// A tool starts running (`id`: the model's call id).
    pub fn tool_started(&mut self, id: &str, name: &str) {
        let span = info_span!(parent: &self.span, "tool", tool = %name, ok = field::Empty);
        self.open.insert(format!("tool:{id}"), span);
    }

    /// The tool run `id` finished.
    pub fn tool_finished(&mut self, id: &str, ok: bool) {
        if let Some(span) = self.open.remove(&format!("tool:{id}")) {
            span.record("ok", ok);
        }
    }

    /// A Realtime event of the call's model socket: responses are its model turns.
    pub fn realtime_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::ResponseCreated { response, .. } => {
                let key = response.id.clone().unwrap_or_default();
                self.model_turn_started(&key, "realtime");
            }
            ServerEvent::ResponseDone { response, .. } => {
                let key = response.id.clone().unwrap_or_default();
                let status = response.status.as_deref().unwrap_or("unknown");
                self.model_turn_ended(&key, status);
            }
            _ => {}
        }
    }

    /// The actor is done: what is still open ends now, and the outcome is recorded.
    pub fn finish(&mut self, outcome: &str) {
        self.open.clear();
        self.span.record("outcome", outcome);
    }
}
