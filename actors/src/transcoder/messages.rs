//! Audio handed to and returned by the `Transcoder`.

use std::time::Instant;

use actix::Message;

/// Decoded μ-law caller audio (8 kHz) to convert and append to the model's input buffer.
/// `received` (when its Twilio frame reached the `Call`) travels on for the hop latency.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerAudio {
    pub ulaw: Vec<u8>,
    pub received: Instant,
}

/// A model audio delta (base64 PCM16 LE 24 kHz) of `item_id` to convert for Twilio.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ModelAudio {
    pub item_id: String,
    pub delta_b64: String,
    /// When the delta reached `Realtime`.
    pub received: Instant,
}

/// Converted model audio, μ-law 8 kHz, ready for Twilio.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TranscodedAudio {
    pub item_id: String,
    pub ulaw: Vec<u8>,
    /// When the delta it came from reached `Realtime`.
    pub received: Instant,
}
