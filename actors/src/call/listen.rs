//! A `Call` on a one-way stream (`voice.mode = "human"`): people talk — the caller and the
//! person the call was dialled to — and the call only listens. Each track goes to its own
//! `Transcriber` (a Realtime transcription session); the two-party transcript is live on
//! `/actors`; when the stream ends, the call's record is written and the customer's memory
//! gets a summary — written by the chat model when there is a key, else the local
//! template — so the next SMS or call knows what was agreed.

use actix::prelude::*;
use actix_web_actors::ws;

use super::{wall_clock_ms, Call, Identity};
use crate::domain::identity;
use crate::domain::listen::{ListenIn, Party};
use crate::domain::records::{mask_phone, AudioMode as RecordedAudio, CallOutcome, CallRecord};
use crate::registry::messages::{CallHandle, CallInfo, RegisterCall};
use crate::transcriber::{Heard, StopTranscribing, Track, TrackAudio, Transcriber};

/// What a listening call holds.
pub(crate) struct Listening {
    caller: Addr<Transcriber>,
    person: Addr<Transcriber>,
    call: ListenIn,
    /// Tracks whose session could not be had.
    unavailable: Vec<Track>,
}

impl Listening {
    pub(crate) fn transcript(&self) -> &crate::domain::transcript::Transcript {
        self.call.transcript()
    }

    pub(crate) fn state(&self) -> &'static str {
        if self.unavailable.is_empty() {
            "listening"
        } else {
            "listening (transcription incomplete)"
        }
    }
}

/// Twilio's `start` named a one-way stream: register the call and open a transcription
/// session per track.
pub(crate) fn register(
    call: &mut Call,
    mut info: CallInfo,
    from: Option<&str>,
    ctx: &mut ws::WebsocketContext<Call>,
) {
    let registration = crate::registry::next_registration();
    let customer = identity::caller_key(from, &info.call_sid, call.shared.config.country());
    info.audio_mode = "listen";
    call.identity = Some(Identity {
        call_sid: info.call_sid.clone(),
        stream_sid: info.stream_sid.clone(),
        registration,
        customer,
    });
    crate::metrics::call_started();
    call.registry.do_send(RegisterCall {
        handle: CallHandle::new(&ctx.address()),
        info,
        registration,
    });
    let open =
        |track| Transcriber::new(call.shared.clone(), track, ctx.address().recipient()).start();
    call.listening = Some(Listening {
        caller: open(Track::Caller),
        person: open(Track::Person),
        call: ListenIn::new(),
        unavailable: Vec::new(),
    });
}

/// A `media` frame of the one-way stream: to the session of its track.
pub(crate) fn media(call: &Call, track: Option<&str>, payload: &str) {
    let Some(listening) = &call.listening else {
        return;
    };
    let transcriber = match track {
        Some("outbound") => &listening.person,
        // Twilio names the caller's track `inbound`; a frame without a track is theirs.
        _ => &listening.caller,
    };
    transcriber.do_send(TrackAudio(payload.to_owned()));
}

impl Handler<Heard> for Call {
    type Result = ();

    fn handle(&mut self, msg: Heard, _ctx: &mut Self::Context) {
        let Some(listening) = &mut self.listening else {
            return;
        };
        match msg {
            Heard::Words { track, text } => {
                let party = match track {
                    Track::Caller => Party::Caller,
                    Track::Person => Party::Person,
                };
                listening.call.heard(party, &text, wall_clock_ms());
            }
            Heard::Unavailable { track, .. } => listening.unavailable.push(track),
        }
    }
}

/// The stream ended: the sessions close, the record is written, and the customer's memory
/// gets the summary (SPEC §7).
pub(crate) fn finish(call: &mut Call) {
    let Some(listening) = call.listening.take() else {
        return;
    };
    listening.caller.do_send(StopTranscribing);
    listening.person.do_send(StopTranscribing);
    let Some(id) = &call.identity else {
        return;
    };
    let remembered = identity::is_lasting(&id.customer).then(|| id.customer.clone());
    let mut record = CallRecord::new(
        id.call_sid.clone(),
        id.stream_sid.clone(),
        remembered.clone(),
        "human",
        RecordedAudio::Listened,
        call.started_at_ms,
    );
    record.transcript = listening.call.transcript().clone();
    record.node = Some(call.shared.node_id.clone());
    record.finish(CallOutcome::Completed, wall_clock_ms());
    crate::metrics::call_finished(CallOutcome::Completed.as_str());
    let mut summary = record.summary();
    let template = listening.call.summary();
    let lines = listening.call.lines();
    let shared = call.shared.clone();
    let store = call.shared.store.clone();
    actix::spawn(async move {
        // The chat model writes the notes when there is one; the template otherwise.
        summary.summary = match template {
            Some(template) => Some(
                crate::chat::summarise_call(&shared, &lines)
                    .await
                    .unwrap_or(template),
            ),
            None => None,
        };
        if let Err(err) = store.put_call(&record).await {
            crate::metrics::store_error("write");
            tracing::error!(error = %err, call_sid = %record.call_sid, "call record not written");
        }
        if let Some(customer) = &remembered {
            if let Err(err) = store.record_call_for_customer(customer, summary).await {
                crate::metrics::store_error("write");
                tracing::error!(error = %err, customer = %mask_phone(customer), "customer memory not updated");
            }
        }
    });
}
