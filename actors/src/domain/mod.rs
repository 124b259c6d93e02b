//! Pure call logic, no async and no actix: the playback ledger and barge-in,
//! reconnect backoff, transcripts, agents and tools' business rules.

pub mod agents;
pub mod backoff;
pub mod catalog;
pub mod ledger;
pub mod transcript;
