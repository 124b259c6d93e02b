//! Message handlers of `Transcoder`.

use actix::prelude::*;
use base64::Engine as _;

use super::messages::{CallerAudio, ModelAudio, TranscodedAudio};
use super::Transcoder;
use crate::realtime::messages::AppendAudio;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

impl Handler<CallerAudio> for Transcoder {
    type Result = ();

    fn handle(&mut self, msg: CallerAudio, _ctx: &mut Context<Self>) {
        match self.inbound.process(&msg.ulaw) {
            Ok(pcm) if !pcm.is_empty() => {
                self.model.do_send(AppendAudio {
                    audio: B64.encode(&pcm),
                    received: msg.received,
                });
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "caller audio conversion failed"),
        }
    }
}

impl Handler<ModelAudio> for Transcoder {
    type Result = ();

    fn handle(&mut self, msg: ModelAudio, _ctx: &mut Context<Self>) {
        self.scratch.clear();
        if B64
            .decode_vec(msg.delta_b64.as_bytes(), &mut self.scratch)
            .is_err()
        {
            tracing::warn!("model audio delta is not base64; dropped");
            return;
        }
        match self.outbound.process(&self.scratch) {
            Ok(ulaw) if !ulaw.is_empty() => self.call.do_send(TranscodedAudio {
                item_id: msg.item_id,
                ulaw,
                received: msg.received,
            }),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "model audio conversion failed"),
        }
    }
}
