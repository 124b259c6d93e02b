//! `Transcoder`: μ-law 8 kHz ↔ PCM16 24 kHz for one call in `pcm24k` audio mode.
//!
//! Holds one stateful resampler per direction so chunk borders never click. Caller audio
//! goes straight on to the `Realtime` child (whose address survives reconnects); model
//! audio comes back to the `Call`, which owns the Twilio socket and the playback ledger.
//! In `pcmu` mode no `Transcoder` exists: payloads are forwarded as they came.

mod handlers;
pub mod messages;

use std::sync::Arc;

use actix::prelude::*;

use crate::audio::resample::{Pcm24kToUlaw, UlawToPcm24k};
use crate::audio::AudioError;
use crate::census::Kind;
use crate::engine::Shared;
use crate::realtime::Realtime;
use messages::TranscodedAudio;

pub struct Transcoder {
    shared: Arc<Shared>,
    inbound: UlawToPcm24k,
    outbound: Pcm24kToUlaw,
    model: Addr<Realtime>,
    call: Recipient<TranscodedAudio>,
    /// Reused for base64 decoding of model deltas.
    scratch: Vec<u8>,
}

impl Transcoder {
    pub fn new(
        model: Addr<Realtime>,
        call: Recipient<TranscodedAudio>,
        shared: Arc<Shared>,
    ) -> Result<Self, AudioError> {
        Ok(Transcoder {
            shared,
            inbound: UlawToPcm24k::new()?,
            outbound: Pcm24kToUlaw::new()?,
            model,
            call,
            scratch: Vec::new(),
        })
    }
}

impl Actor for Transcoder {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.shared.census.started(Kind::Transcoder);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.shared.census.stopped(Kind::Transcoder);
    }
}
