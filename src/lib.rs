//! # switchboard: the application shell
//!
//! Turns HTTP and WebSocket traffic into typed engine messages and wires the process:
//! configuration ([`config`]), the HTTP surface ([`routes`], [`startup`]), logging
//! ([`telemetry`]) and the product's own testing tools ([`sim`]: an OpenAI emulator and a
//! simulated Twilio).

pub mod config;
pub mod routes;
pub mod sim;
pub mod startup;
pub mod telemetry;
pub mod terminal_chat;
