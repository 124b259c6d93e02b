//! OpenAI: the GA Realtime interface (client and server events).

pub mod chat;
pub mod realtime;
