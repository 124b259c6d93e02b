//! Notices a `Call` handles besides its Twilio socket, model and tool traffic.

use actix::Message;

/// Another media socket registered the same `CallSid`: this one steps aside.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replaced;
