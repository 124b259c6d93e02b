//! Pure call logic, no async and no actix: the voice call's state machine
//! ([`voice`]) and the text dialogue ([`dialogue`]) with the effect tools both
//! share ([`effects`]), the playback ledger and barge-in, reconnect backoff,
//! transcripts, agents and tools' business rules, what is remembered about a
//! customer ([`memory`], [`identity`]), and the records kept about calls.

pub mod agents;
pub mod backoff;
pub mod bookings;
pub mod catalog;
pub mod conversation;
pub mod dialogue;
pub mod effects;
pub mod identity;
pub mod ledger;
pub mod listen;
pub mod local_model;
pub mod memory;
pub mod outreach;
pub mod phone;
pub mod records;
pub mod sms;
pub mod supervision;
pub mod template;
pub mod tools;
pub mod transcript;
pub mod voice;
