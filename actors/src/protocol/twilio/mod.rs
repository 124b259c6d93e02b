//! Twilio: Media Streams frames, TwiML, webhook forms and request signatures.

pub mod media;
pub mod signature;
pub mod twiml;
pub mod webhook;
