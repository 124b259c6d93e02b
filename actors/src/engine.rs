//! Starts the engine: the shared, read-only context every actor reads, and the `Registry`.

use std::sync::Arc;

use actix::prelude::*;

use crate::audio::prompts::Prompt;
use crate::census::Census;
use crate::config::EngineConfig;
use crate::domain::agents::AgentsConfig;
use crate::domain::catalog::Catalog;
use crate::domain::local_model::LocalModel;
use crate::durability::GroupCommit;
use crate::health::Health;
use crate::limits::Limits;
use crate::registry::Registry;
use crate::store::Store;
use crate::timeline::Timeline;

/// The prompts a call may play to the caller while the model cannot speak.
pub struct VoicePrompts {
    /// Played while a tool is slow or the model socket is reconnecting.
    pub hold: Prompt,
    /// Played before hanging up when the model is gone and no human can take the call.
    pub fallback: Prompt,
}

/// What every actor of the engine may read. Built once at start-up, never mutated, so it
/// is shared by `Arc` across arbiters without locks.
pub struct Shared {
    pub config: EngineConfig,
    pub agents: AgentsConfig,
    /// The offline model over `agents`, built once: it answers when no API key is set.
    pub local_model: LocalModel,
    pub catalog: Catalog,
    pub store: Arc<dyn Store>,
    pub prompts: VoicePrompts,
    /// Live actors of this engine, by kind.
    pub census: Census,
    pub health: Health,
    /// Per-sender and per-IP rate limits.
    pub limits: Limits,
    /// Makes store writes durable in batches (see [`crate::durability`]).
    pub commits: GroupCommit,
}

/// Handle to a running engine; cheap to clone into every HTTP worker.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    registry: Addr<Registry>,
    /// The dashboard's live charts (`crate::timeline`).
    timeline: Timeline,
}

impl Engine {
    /// Starts the `Registry` on the current actix system. Call from inside a running system.
    pub fn start(shared: Shared) -> Engine {
        crate::metrics::init(shared.agents.tools.iter().map(|t| t.name.as_str()));
        let shared = Arc::new(shared);
        let registry = Registry::new(shared.clone()).start();
        let timeline = Timeline::start(shared.clone());
        Engine {
            shared,
            registry,
            timeline,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn registry(&self) -> &Addr<Registry> {
        &self.registry
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }
}
