//! Pure call logic, no async and no actix: the playback ledger and barge-in,
//! reconnect backoff, transcripts, agents and tools' business rules, and the
//! records kept about calls and customers.

pub mod agents;
pub mod backoff;
pub mod bookings;
pub mod catalog;
pub mod conversation;
pub mod dialogue;
pub mod ledger;
pub mod local_model;
pub mod records;
pub mod sms;
pub mod template;
pub mod tools;
pub mod transcript;
