//! Live actor counts by kind, kept by each actor's `started`/`stopped` hooks.
//!
//! Cheap (one relaxed atomic per start/stop) and per engine, so the dashboard and the
//! end-to-end tests can check that a finished call left no actor behind — including
//! children the registry never sees.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Call,
    Realtime,
    Transcoder,
    ToolExecutor,
    Conversation,
    Chat,
    RelayCall,
}

const KINDS: usize = 7;

#[derive(Debug, Default)]
pub struct Census {
    counts: [AtomicI64; KINDS],
}

impl Census {
    pub fn started(&self, kind: Kind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn stopped(&self, kind: Kind) {
        self.counts[kind as usize].fetch_sub(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counts {
        let get = |kind: Kind| self.counts[kind as usize].load(Ordering::Relaxed);
        Counts {
            calls: get(Kind::Call),
            realtime: get(Kind::Realtime),
            transcoders: get(Kind::Transcoder),
            tool_executors: get(Kind::ToolExecutor),
            conversations: get(Kind::Conversation),
            chats: get(Kind::Chat),
            relay_calls: get(Kind::RelayCall),
        }
    }
}

/// How many actors of each kind are running in an engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub calls: i64,
    pub realtime: i64,
    pub transcoders: i64,
    pub tool_executors: i64,
    pub conversations: i64,
    pub chats: i64,
    pub relay_calls: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.calls
            + self.realtime
            + self.transcoders
            + self.tool_executors
            + self.conversations
            + self.chats
            + self.relay_calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_starts_and_stops() {
        let census = Census::default();
        census.started(Kind::Call);
        census.started(Kind::Realtime);
        census.stopped(Kind::Realtime);
        let counts = census.snapshot();
        assert_eq!(counts.calls, 1);
        assert_eq!(counts.realtime, 0);
        assert_eq!(counts.total(), 1);
    }
}
