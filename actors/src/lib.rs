//! # switchboard-actors: the engine
//!
//! Every phone call and every customer conversation is a supervised actor. The
//! [`registry::Registry`] routes inbound webhooks and sockets to them and keeps the
//! live directory the supervisor dashboard shows.
//!
//! ```text
//! Registry            1 per process, Addr passed explicitly
//! ├─ Call             1 per phone call; owns the Twilio socket; lives exactly as long as it
//! │  ├─ Realtime      OpenAI Realtime socket (awc); actix Supervisor: restart = reconnect + replay;
//! │  │                the Call writes into its socket directly (`realtime::link`, same arbiter)
//! │  ├─ Transcoder    μ-law 8 kHz ↔ PCM16 24 kHz (pcm24k mode only)
//! │  ├─ ToolExecutor  runs tools with timeouts, never blocks the call
//! │  └─ Transcriber   ×2 when the call only listens (`voice.mode = "human"`): one
//! │                   Realtime transcription session per track
//! ├─ RelayCall        a call in relay mode: the ConversationRelay socket (Twilio does the speech)
//! │  ├─ Chat          chat model, or the offline local one
//! │  └─ ToolExecutor
//! └─ Conversation     1 per customer thread (SMS, WhatsApp, Conversations, web)
//! ```
//!
//! Pure modules — [`protocol`], [`domain`], [`audio`], [`store`] — never import actix;
//! the actor modules are thin shells that own sockets, timers and mailboxes.

// Input from Twilio, OpenAI or a config file must never panic an actor (SPEC §12):
// production code has no unwrap/expect at all; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audio;
pub mod clock;
pub mod config;
pub mod domain;
pub mod drain;
pub mod durability;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod numbers;
pub mod outbound;
pub mod protocol;
pub mod store;
pub mod trace;

pub mod call;
pub mod calling;
pub mod census;
pub mod chat;
pub mod cluster;
pub mod conversation;
pub mod realtime;
pub mod registry;
pub mod supervise;
pub mod timeline;
pub mod tools;
pub mod transcoder;
pub mod transcriber;

pub mod engine;
pub use engine::Engine;
