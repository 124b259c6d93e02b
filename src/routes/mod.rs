//! The HTTP and WebSocket surface (SPEC §3): one file per surface. Handlers parse and
//! check at the edge, then hand typed messages to the engine.

pub mod admin;
pub mod media;
pub mod voice;

mod error;
mod twilio_auth;

pub use error::RouteError;
