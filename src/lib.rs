//! # switchboard: the application shell
//!
//! Turns HTTP and WebSocket traffic into typed engine messages and wires the process:
//! configuration ([`config`]), the HTTP surface ([`routes`], [`startup`]), logging
//! ([`telemetry`]) and the product's own testing tools ([`sim`]: an OpenAI emulator and a
//! simulated Twilio).

// Input from Twilio, OpenAI or a config file must never panic an actor (SPEC §12):
// production code has no unwrap/expect at all; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod call_cli;
pub mod config;
pub mod defaults;
pub mod routes;
pub mod shutdown;
pub mod sim;
pub mod startup;
pub mod telemetry;
pub mod terminal_chat;
