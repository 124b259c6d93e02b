//! Wire types only: serde models of what Twilio and OpenAI put on the wire.
//! No I/O, no actix, no async. Parsers are lenient where the providers are
//! (unknown events and fields are ignored) and strict where a mistake costs a call.

pub mod openai;
pub mod twilio;
