//! A simulated Twilio voice call: the fake Twilio of the end-to-end tests and the unit of load
//! of `switchboard loadtest`.
//!
//! It behaves like Twilio Media Streams (twilio-protocols.md §1, §3.1): it posts the incoming
//! call webhook (signed when an auth token is given), reads `<Connect><Stream>` from the TwiML,
//! opens the socket (signed too), sends `connected` and `start`, then one 20 ms μ-law `media`
//! frame per slot against absolute deadlines `t0 + n·20 ms`; it buffers the server's `media`
//! and plays it at real time, echoes each `mark` once the audio before it has played (at once
//! when nothing is buffered), and on `clear` drops the buffer and echoes every pending mark.
//!
//! Cost: one task per call (socket reader, writer and pacer in one `select!` loop), one timer,
//! and no allocation per frame once warmed up in either direction (see `wire`). The socket
//! client is `awc`, which is `!Send`: calls run on an actix system or a tokio `LocalSet`.
//!
//! Layout: `pacer`, `playback`, `script` and `twiml` are pure and unit-tested with explicit
//! times; `line` is the socket loop that drives them; `wire` reads and writes the frames.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use actors::metrics::LatencyRecorder;

pub mod api;
mod fork;
mod line;
mod pacer;
mod playback;
mod script;
mod twiml;
mod webhooks;
mod wire;

#[cfg(test)]
mod tests;

pub use fork::{ForkTrack, OneWayStream};
pub use line::{leave_voicemail, run_answered_call, run_call, LiveCall, Stopper, VoicemailReport};
pub use twiml::{parse_document, Element, TwimlError};
pub use webhooks::{TranscriptionEvent, TwilioWebhooks};
pub use wire::WireError;

/// Everything the simulated caller needs to place one call.
///
/// Turn-taking: before each utterance the caller is silent for its `pause_before_ms`; after
/// an utterance with `wait_for_reply` it stays silent until the server's reply has started
/// and finished playing, then pauses as usual. The call ends when the last utterance (and
/// the reply it waits for) is done, at `hangup_after_ms`, or when the server closes; a plan
/// with no utterances listens until `hangup_after_ms`.
#[derive(Clone, Debug)]
pub struct CallPlan {
    /// The server origin, e.g. `http://127.0.0.1:8080`; the webhook is `{target}/twilio/voice`.
    pub target: String,
    /// When set, the webhook and the socket upgrade carry `X-Twilio-Signature` computed as
    /// Twilio does (over the URL requested), so the server's validation is exercised.
    pub auth_token: Option<String>,
    pub call_sid: String,
    pub from: String,
    pub to: String,
    /// What the caller says, in order.
    pub utterances: Vec<Utterance>,
    /// Hard cap on the call's length from the start of the stream.
    pub hangup_after_ms: u64,
    /// Every second utterance (indices 1, 3, …) that follows a reply starts `pause_before_ms`
    /// after the reply *started*, talking over it if it is still playing.
    pub barge_in: bool,
    /// Tag the caller's frames and time the server's tagged ones ([`crate::sim::onwire`]).
    pub on_wire: Option<OnWire>,
}

/// On-wire measurement of one call: every caller frame carries a tag with `call`, its chunk
/// number and its write time, and the latency of every tagged server `media` frame (the
/// emulator's audio deltas, passed through) is recorded in `heard`.
#[derive(Clone)]
pub struct OnWire {
    pub call: u64,
    /// Model → caller: write by the emulator → read here.
    pub heard: Arc<LatencyRecorder>,
}

impl fmt::Debug for OnWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnWire").field("call", &self.call).finish()
    }
}

/// One thing the caller says.
#[derive(Clone, Debug)]
pub struct Utterance {
    /// μ-law 8 kHz mono, no header; shared so thousands of calls can say the same prompt.
    pub ulaw: Arc<[u8]>,
    /// Stay silent after it until the server's reply has started and finished playing.
    pub wait_for_reply: bool,
    /// Silence before it (or, on a barge-in turn, the delay after the reply starts).
    pub pause_before_ms: u64,
}

/// What happened on a call, for assertions and load reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallReport {
    /// The webhook's response body.
    pub twiml: String,
    /// The `<Stream url>` connected to, exactly as the TwiML gave it.
    pub stream_url: String,
    /// The `<Parameter>`s, as sent in `start.customParameters`.
    pub custom_parameters: BTreeMap<String, String>,
    /// Caller `media` frames sent.
    pub frames_sent: u64,
    /// Caller frames sent more than 20 ms after their deadline.
    pub frames_late: u64,
    /// Server `media` frames received.
    pub media_received: u64,
    /// Audio duration of those frames.
    pub audio_received_ms: u64,
    /// Server `mark`s received.
    pub marks_received: u64,
    /// Marks echoed back, whether played or flushed by a `clear`.
    pub marks_echoed: u64,
    /// Of [`Self::marks_echoed`], those echoed because a `clear` flushed them.
    pub marks_flushed_by_clear: u64,
    pub clears_received: u64,
    /// First server audio, in ms from the start of the stream.
    pub first_audio_at_ms: Option<u64>,
    /// For each utterance answered: end of the caller's speech → first server audio.
    pub turn_latencies_ms: Vec<u64>,
    /// For each time the caller started talking over server audio: that moment → `clear`.
    pub barge_in_latencies_ms: Vec<u64>,
    /// The close code the server sent (its own close, or its answer to ours).
    pub close_code: Option<u16>,
    /// Compact log for assertions: `media` (one entry per run of consecutive frames),
    /// `mark:<name>`, `clear`, `echo:<name>`, `flushed:<name>`, `invalid:<why>`, `text:<frame>`,
    /// `close:<code>` / `close:none`. Capped at [`EVENT_LOG_CAP`] entries.
    pub events: Vec<String>,
    /// Why the call ended abnormally after it was connected.
    pub error: Option<String>,
}

/// Bounds the event log so a long load-test call costs a fixed amount of memory.
pub const EVENT_LOG_CAP: usize = 1024;

/// What a steered call ([`LiveCall`]) observes from the server, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Server audio: decoded length, and arrival in ms from the start of the stream.
    Media {
        bytes: usize,
        at_ms: u64,
    },
    /// A server `mark`.
    Mark {
        name: String,
    },
    Clear,
    /// We echoed a mark: played out, or `flushed` by a `clear`.
    MarkEchoed {
        name: String,
        flushed: bool,
    },
    /// The socket closed (the server's close code, if any).
    Closed {
        code: Option<u16>,
    },
    /// Any other text frame: one Twilio would reject or ignore.
    Text(String),
}

/// Why a simulated call could not be placed or steered.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("voice webhook {url}: {reason}")]
    Webhook { url: String, reason: String },
    #[error("voice webhook {url} answered {status}: {body}")]
    WebhookStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("TwiML: {0}")]
    Twiml(#[from] TwimlError),
    #[error("stream {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("stream socket: {0}")]
    Socket(String),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("no matching event within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the call has ended")]
    Ended,
    #[error("the call task failed: {0}")]
    Task(String),
}

/// A tone as μ-law: loud, voiced-looking test speech for energy-based VAD when no prompt file
/// is wanted. `amplitude` is a fraction of full scale (clamped to 0..=1).
pub fn sine_ulaw(freq_hz: f32, ms: u64, amplitude: f32) -> Vec<u8> {
    let peak = f64::from(i16::MAX) * f64::from(amplitude.clamp(0.0, 1.0));
    // f64 keeps the phase exact enough for hours of tone.
    let step = std::f64::consts::TAU * f64::from(freq_hz) / 8000.0;
    (0..ms.saturating_mul(8))
        .map(|n| {
            // `as` saturates, and `peak` is within i16 range anyway.
            let sample = ((n as f64 * step).sin() * peak) as i16;
            actors::audio::g711::encode(sample)
        })
        .collect()
}

/// `ms` of μ-law silence.
pub fn silence_ulaw(ms: u64) -> Vec<u8> {
    let len = usize::try_from(ms.saturating_mul(8)).unwrap_or(usize::MAX);
    vec![script::SILENCE; len]
}
