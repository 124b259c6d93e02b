//! Twilio: Media Streams and ConversationRelay frames, TwiML, webhook forms and request
//! signatures.

pub mod calls;
pub mod identity;
pub mod media;
pub mod relay;
pub mod signature;
pub mod twiml;
pub mod webhook;
