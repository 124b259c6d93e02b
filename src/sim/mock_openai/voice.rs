//! The emulator's "voice": synthetic but plausible assistant audio, and the two wire codecs.
//!
//! Every character of a reply is spoken for [`MS_PER_CHAR`] (capped at [`MAX_SPEECH_MS`]), so
//! the audio length follows the transcript and a truncation position means something: letters
//! and digits are a buzzy voiced tone whose pitch depends on the character, everything else is
//! a pause. Samples come from a small wavetable, so a thousand simulated calls cost little.

use std::sync::OnceLock;

use actors::audio::g711;

/// Speaking time of one character of transcript.
pub const MS_PER_CHAR: u64 = 60;
/// Longest reply audio; characters beyond it are in the transcript but not spoken.
pub const MAX_SPEECH_MS: u64 = 20_000;

/// Peak amplitude of voiced audio, about -11 dBFS: well above the VAD's default level.
const PEAK: f64 = 9000.0;
/// Time for the amplitude to rise or fall between a voiced character and a pause.
const RAMP_MS: u32 = 5;
const WAVETABLE_BITS: u32 = 8;

/// How long the emulator speaks `text`.
pub fn speech_duration_ms(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.saturating_mul(MS_PER_CHAR).min(MAX_SPEECH_MS)
}

/// The audio encodings the emulator speaks (the session's `audio/pcmu` or `audio/pcm` 24 kHz).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz, one byte per sample.
    Pcmu,
    /// PCM16 little-endian, 24 kHz, two bytes per sample.
    Pcm24k,
}

impl Codec {
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu => 8000,
            Codec::Pcm24k => 24_000,
        }
    }

    pub fn bytes_per_sample(self) -> usize {
        match self {
            Codec::Pcmu => 1,
            Codec::Pcm24k => 2,
        }
    }

    /// Appends the linear samples in `bytes` to `out`; a trailing odd byte of PCM16 is ignored.
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) {
        match self {
            Codec::Pcmu => g711::decode_into(bytes, out),
            Codec::Pcm24k => out.extend(
                bytes
                    .chunks_exact(2)
                    .filter_map(|pair| pair.try_into().ok().map(i16::from_le_bytes)),
            ),
        }
    }

    /// Appends the encoding of `samples` to `out`.
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            Codec::Pcmu => g711::encode_into(samples, out),
            Codec::Pcm24k => out.extend(samples.iter().flat_map(|sample| sample.to_le_bytes())),
        }
    }
}

/// One period of a buzzy waveform (fundamental with two overtones), shared by every voice.
fn wavetable() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let len = 1usize << WAVETABLE_BITS;
        (0..len)
            .map(|i| {
                let x = std::f64::consts::TAU * i as f64 / len as f64;
                (0.6 * x.sin() + 0.3 * (2.0 * x).sin() + 0.1 * (3.0 * x).sin()) as f32
            })
            .collect()
    })
}

/// Speaks one reply, chunk by chunk, so a long reply never sits in memory as audio.
#[derive(Clone, Debug)]
pub struct Voice {
    chars: Vec<char>,
    codec: Codec,
    total_samples: u64,
    position: u64,
    /// Phase accumulator: a full turn of the wavetable is 2^32.
    phase: u32,
    amplitude: f64,
}

impl Voice {
    pub fn new(text: &str, codec: Codec) -> Self {
        let total_samples = speech_duration_ms(text) * u64::from(codec.sample_rate()) / 1000;
        Voice {
            chars: text.chars().collect(),
            codec,
            total_samples,
            position: 0,
            phase: 0,
            amplitude: 0.0,
        }
    }

    /// The encoding the reply is spoken in.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Audio spoken so far, in ms.
    pub fn spoken_ms(&self) -> u64 {
        self.position * 1000 / u64::from(self.codec.sample_rate())
    }

    /// Characters of the transcript to have sent by now: every word whose audio has begun, in
    /// full (transcript deltas are word-sized tokens that run slightly ahead of the audio, as
    /// the real service's do), and everything once the audio is over.
    pub fn transcript_chars(&self) -> usize {
        if self.is_done() {
            return self.chars.len();
        }
        let started = usize::try_from(self.spoken_ms().div_ceil(MS_PER_CHAR)).unwrap_or(usize::MAX);
        let started = started.min(self.chars.len());
        if started == 0 {
            return 0;
        }
        self.chars
            .iter()
            .skip(started)
            .position(|c| !c.is_alphanumeric())
            .map_or(self.chars.len(), |rest| started + rest)
    }

    pub fn is_done(&self) -> bool {
        self.position >= self.total_samples
    }

    /// Encodes up to `ms` more audio; empty once the reply is over.
    pub fn next_chunk(&mut self, ms: u64) -> Vec<u8> {
        let rate = u64::from(self.codec.sample_rate());
        let samples = (ms * rate / 1000).min(self.total_samples - self.position);
        let table = wavetable();
        let ramp_step = PEAK / f64::from(self.codec.sample_rate() * RAMP_MS / 1000).max(1.0);
        let mut pcm = Vec::with_capacity(usize::try_from(samples).unwrap_or(0));
        // Each character lasts `MS_PER_CHAR`: the sample's character (and so its pitch) is
        // worked out once per character, not per sample (`p·1000 / rate / MS_PER_CHAR` is
        // `p·1000 / (rate·MS_PER_CHAR)`; `next_slot_at` is the first sample of the next one).
        let span = rate * MS_PER_CHAR;
        let mut next_slot_at = self.position;
        let mut increment = None;
        for _ in 0..samples {
            if self.position >= next_slot_at {
                let slot = self.position * 1000 / span;
                next_slot_at = ((slot + 1) * span).div_ceil(1000);
                increment = usize::try_from(slot)
                    .ok()
                    .and_then(|slot| self.chars.get(slot))
                    .filter(|c| c.is_alphanumeric())
                    .map(|&c| (u64::from(110 + (u32::from(c) % 16) * 9) << 32) / rate);
            }
            let target = if increment.is_some() { PEAK } else { 0.0 };
            self.amplitude = if self.amplitude < target {
                (self.amplitude + ramp_step).min(target)
            } else {
                (self.amplitude - ramp_step).max(target)
            };
            if let Some(increment) = increment {
                self.phase = self.phase.wrapping_add(increment as u32);
            }
            let index = (self.phase >> (32 - WAVETABLE_BITS)) as usize;
            let wave = table.get(index).copied().unwrap_or(0.0);
            pcm.push((self.amplitude * f64::from(wave)) as i16);
            self.position += 1;
        }
        let mut out = Vec::with_capacity(pcm.len() * self.codec.bytes_per_sample());
        self.codec.encode_into(&pcm, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::mock_openai::vad::{Vad, VadConfig, VadEvent};

    fn duration_ms(codec: Codec, bytes: usize) -> u64 {
        (bytes / codec.bytes_per_sample()) as u64 * 1000 / u64::from(codec.sample_rate())
    }

    /// The per-sample reading of the character, as it was before it was worked out once
    /// per character: the audio must not change.
    fn reference_chunk(voice: &mut Voice, ms: u64) -> Vec<u8> {
        let rate = u64::from(voice.codec.sample_rate());
        let samples = (ms * rate / 1000).min(voice.total_samples - voice.position);
        let ramp_step = PEAK / f64::from(voice.codec.sample_rate() * RAMP_MS / 1000).max(1.0);
        let mut pcm = Vec::new();
        for _ in 0..samples {
            let slot = voice.position * 1000 / rate / MS_PER_CHAR;
            let pitch = usize::try_from(slot)
                .ok()
                .and_then(|slot| voice.chars.get(slot))
                .filter(|c| c.is_alphanumeric())
                .map(|&c| 110 + (u32::from(c) % 16) * 9);
            let target = if pitch.is_some() { PEAK } else { 0.0 };
            voice.amplitude = if voice.amplitude < target {
                (voice.amplitude + ramp_step).min(target)
            } else {
                (voice.amplitude - ramp_step).max(target)
            };
            if let Some(pitch_hz) = pitch {
                let increment = (u64::from(pitch_hz) << 32) / rate;
                voice.phase = voice.phase.wrapping_add(increment as u32);
            }
            let index = (voice.phase >> (32 - WAVETABLE_BITS)) as usize;
            pcm.push((voice.amplitude * f64::from(wavetable()[index])) as i16);
            voice.position += 1;
        }
        let mut out = Vec::new();
        voice.codec.encode_into(&pcm, &mut out);
        out
    }

    #[test]
    fn chunks_are_the_per_sample_reference() {
        for codec in [Codec::Pcmu, Codec::Pcm24k] {
            for ms in [1, 7, 20, 60, 333] {
                let text = "Hi, thanks for calling: how can I help you today?";
                let (mut fast, mut slow) = (Voice::new(text, codec), Voice::new(text, codec));
                loop {
                    let chunk = fast.next_chunk(ms);
                    assert_eq!(chunk, reference_chunk(&mut slow, ms), "{codec:?} {ms} ms");
                    if chunk.is_empty() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn duration_follows_text_and_is_capped() {
        assert_eq!(speech_duration_ms(""), 0);
        assert_eq!(speech_duration_ms("Hello"), 300);
        assert_eq!(speech_duration_ms("héllo"), 300, "characters, not bytes");
        assert_eq!(speech_duration_ms(&"x".repeat(10_000)), MAX_SPEECH_MS);
    }

    #[test]
    fn chunks_add_up_to_the_duration_in_both_codecs() {
        for codec in [Codec::Pcmu, Codec::Pcm24k] {
            let text = "Thanks for calling, how can I help?";
            let mut voice = Voice::new(text, codec);
            let mut bytes = 0;
            let mut chunks = 0;
            loop {
                let chunk = voice.next_chunk(100);
                if chunk.is_empty() {
                    break;
                }
                bytes += chunk.len();
                chunks += 1;
            }
            assert!(voice.is_done());
            assert_eq!(duration_ms(codec, bytes), speech_duration_ms(text));
            assert_eq!(chunks, speech_duration_ms(text).div_ceil(100));
            assert_eq!(voice.transcript_chars(), text.chars().count());
        }
    }

    #[test]
    fn transcript_runs_to_the_end_of_the_word_being_spoken() {
        let mut voice = Voice::new("Hello big world", Codec::Pcmu);
        assert_eq!(voice.transcript_chars(), 0);
        voice.next_chunk(10);
        assert_eq!(voice.transcript_chars(), 5, "Hello");
        voice.next_chunk(290);
        assert_eq!(voice.spoken_ms(), 300);
        assert_eq!(voice.transcript_chars(), 5, "the space is not spoken yet");
        voice.next_chunk(60);
        assert_eq!(voice.transcript_chars(), 9, "Hello big");
        voice.next_chunk(500);
        assert_eq!(voice.transcript_chars(), 15);
    }

    #[test]
    fn codecs_round_trip_and_measure() {
        let samples = [0i16, 1000, -1000, 32000, -32000];
        let mut bytes = Vec::new();
        Codec::Pcm24k.encode_into(&samples, &mut bytes);
        assert_eq!(bytes.len(), 10);
        let mut back = Vec::new();
        Codec::Pcm24k.decode_into(&bytes, &mut back);
        assert_eq!(back, samples);
        assert_eq!(duration_ms(Codec::Pcm24k, 48_000), 1000);
        assert_eq!(duration_ms(Codec::Pcmu, 8_000), 1000);
    }

    #[test]
    fn the_voice_is_speech_to_the_vad() {
        let text = "Hello there, this is the test line.";
        let mut voice = Voice::new(text, Codec::Pcmu);
        let audio = voice.next_chunk(MAX_SPEECH_MS);
        let mut pcm = Vec::new();
        Codec::Pcmu.decode_into(&audio, &mut pcm);
        pcm.extend(std::iter::repeat_n(0, 8000));
        let mut events = Vec::new();
        Vad::new(VadConfig::default()).push(&pcm, 8000, &mut events);
        assert!(matches!(
            events.as_slice(),
            [
                VadEvent::SpeechStarted { .. },
                VadEvent::SpeechStopped { .. }
            ]
        ));
    }
}
