//! Wires the actor system together.

/// Handle to a running engine.
pub struct Engine;
