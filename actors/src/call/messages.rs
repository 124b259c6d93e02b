//! Notices and questions a call — `Call` or `RelayCall` — handles besides its Twilio socket,
//! model and tool traffic.

use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;

use crate::domain::transcript::Transcript;

/// Another media socket registered the same `CallSid`: this one steps aside.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replaced;

/// The process is draining and the call is still up: the caller hears a goodbye and the
/// call hangs up once it has been said, or `within` from now at the latest.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Goodbye {
    pub within: std::time::Duration,
}

/// What the supervisor dashboard shows of a call. `sent_at` measures how long the question
/// waited in the call's mailbox: the backlog, in time.
#[derive(Message)]
#[rtype(result = "CallView")]
pub struct Describe {
    pub sent_at: Instant,
}

/// The live transcript of the call so far.
#[derive(Message)]
#[rtype(result = "Transcript")]
pub struct CurrentTranscript;

/// A call and its children, as `/actors` shows them.
#[derive(Clone, Debug, Serialize)]
pub struct CallView {
    pub id: String,
    /// How a supervisor addresses it under `/actors/…`: a call's `CallSid`, `c<n>` for a
    /// conversation (its id shows the customer masked, so it is not unique).
    pub key: String,
    /// The customer unmasked, for the dashboard's search by number; never shown.
    #[serde(skip)]
    pub customer_key: Option<String>,
    pub kind: &'static str,
    pub channel: &'static str,
    /// `connecting`, `live`, `reconnecting`, `on-hold` or `ending`.
    pub state: &'static str,
    pub agent: String,
    pub customer: Option<String>,
    pub audio_mode: &'static str,
    pub started_at_ms: u64,
    /// Model sockets lost and reopened.
    pub restarts: u32,
    /// How long a message waited in the call's mailbox before it was handled.
    pub mailbox_delay_us: u64,
    pub last_turn_latency_ms: Option<u64>,
    pub children: Vec<ChildView>,
}

/// One child actor of a call.
#[derive(Clone, Debug, Serialize)]
pub struct ChildView {
    pub kind: &'static str,
    pub state: String,
}
