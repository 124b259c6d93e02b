//! Live actor counts by kind, kept by each actor's `started`/`stopped` hooks.
//!
//! Cheap (one relaxed atomic per start/stop) and global, so the dashboard and the
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
}

static COUNTS: [AtomicI64; 4] = [
    AtomicI64::new(0),
    AtomicI64::new(0),
    AtomicI64::new(0),
    AtomicI64::new(0),
];

pub fn started(kind: Kind) {
    COUNTS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn stopped(kind: Kind) {
    COUNTS[kind as usize].fetch_sub(1, Ordering::Relaxed);
}

/// How many actors of each kind are running in this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    pub calls: i64,
    pub realtime: i64,
    pub transcoders: i64,
    pub tool_executors: i64,
}

impl Census {
    pub fn total(&self) -> i64 {
        self.calls + self.realtime + self.transcoders + self.tool_executors
    }
}

pub fn snapshot() -> Census {
    let get = |kind: Kind| COUNTS[kind as usize].load(Ordering::Relaxed);
    Census {
        calls: get(Kind::Call),
        realtime: get(Kind::Realtime),
        transcoders: get(Kind::Transcoder),
        tool_executors: get(Kind::ToolExecutor),
    }
}
