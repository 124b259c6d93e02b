//! Audio handed to and returned by the `Transcoder`.

use actix::Message;

/// Decoded μ-law caller audio (8 kHz) to convert and append to the model's input buffer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallerAudio(pub Vec<u8>);

/// A model audio delta (base64 PCM16 LE 24 kHz) of `item_id` to convert for Twilio.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ModelAudio {
    pub item_id: String,
    pub delta_b64: String,
}

/// Converted model audio, μ-law 8 kHz, ready for Twilio.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TranscodedAudio {
    pub item_id: String,
    pub ulaw: Vec<u8>,
}
