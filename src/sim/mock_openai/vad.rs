//! Energy-based voice activity detection on the audio timeline, standing in for OpenAI's
//! `server_vad`.
//!
//! The detector never looks at a clock: time is the amount of audio pushed so far, so the same
//! audio always yields the same `audio_start_ms`/`audio_end_ms`, however fast it arrives.
//!
//! Audio is cut into 20 ms windows. A window is *voiced* when its RMS level reaches the level
//! derived from the session's `threshold` (0.0–1.0) by a straight line in dBFS:
//!
//! ```text
//! level_dBFS = -60 + 50 × threshold      0.0 → -60 dBFS, 0.5 (default) → -35 dBFS, 1.0 → -10 dBFS
//! ```
//!
//! Speech starts after [`MIN_SPEECH_MS`] of consecutive voiced windows (one click is not a
//! caller talking); `audio_start_ms` is the onset of that run minus `prefix_padding_ms`, as the
//! real server reports it. Speech stops once `silence_duration_ms` of consecutive unvoiced
//! windows have been heard; `audio_end_ms` is the end of that silence, which, as OpenAI
//! documents, includes the silence duration.

/// Length of one analysis window.
pub const WINDOW_MS: u64 = 20;
/// Voiced audio needed before speech counts as started.
pub const MIN_SPEECH_MS: u64 = 60;

const MICROS_PER_WINDOW: u64 = WINDOW_MS * 1000;

/// The `server_vad` knobs that shape detection (other turn-detection fields are policy, not
/// detection, and live with the session).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadConfig {
    /// OpenAI's activation threshold, 0.0–1.0; higher needs louder audio.
    pub threshold: f64,
    /// Audio before the detected onset that still belongs to the utterance.
    pub prefix_padding_ms: u64,
    /// Silence that ends an utterance.
    pub silence_duration_ms: u64,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        }
    }
}

impl VadConfig {
    /// The RMS level, in dBFS, a window needs to count as voiced (see the module docs).
    pub fn level_dbfs(&self) -> f64 {
        let threshold = if self.threshold.is_finite() {
            self.threshold.clamp(0.0, 1.0)
        } else {
            VadConfig::default().threshold
        };
        -60.0 + 50.0 * threshold
    }

    /// The same level as a mean square of 16-bit samples, so windows are compared without a
    /// square root.
    fn mean_square_threshold(&self) -> f64 {
        let rms = f64::from(i16::MAX) * 10f64.powf(self.level_dbfs() / 20.0);
        rms * rms
    }
}

/// A change in the caller's speech, positioned on the audio timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadEvent {
    SpeechStarted { audio_start_ms: u64 },
    SpeechStopped { audio_end_ms: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No speech; `voiced_since` is the start of the current run of voiced windows, if any.
    Silence { voiced_since: Option<u64> },
    /// Speech in progress; `silent_since` is the start of the current run of silent windows.
    Speech { silent_since: Option<u64> },
}

/// The detector. Feed it decoded samples with [`Vad::push`].
#[derive(Clone, Debug)]
pub struct Vad {
    config: VadConfig,
    mean_square_threshold: f64,
    state: State,
    /// Start of the window being filled, in µs of audio since the session started.
    window_start_us: u64,
    /// Sample rate of the samples in the window being filled.
    window_rate: u32,
    window_len: u64,
    window_sum_squares: u64,
}

impl Vad {
    pub fn new(config: VadConfig) -> Self {
        Vad {
            config,
            mean_square_threshold: config.mean_square_threshold(),
            state: State::Silence { voiced_since: None },
            window_start_us: 0,
            window_rate: 0,
            window_len: 0,
            window_sum_squares: 0,
        }
    }

    /// Applies new settings (a `session.update`) without losing the timeline.
    pub fn set_config(&mut self, config: VadConfig) {
        self.config = config;
        self.mean_square_threshold = config.mean_square_threshold();
    }

    /// Forgets any utterance in progress (the buffer was committed or cleared by the client);
    /// the timeline goes on.
    pub fn reset(&mut self) {
        self.state = State::Silence { voiced_since: None };
    }

    /// Consumes `samples` recorded at `sample_rate` Hz and appends what they reveal to
    /// `events`. Samples at a rate below 50 Hz (less than one per window) are ignored.
    pub fn push(&mut self, samples: &[i16], sample_rate: u32, events: &mut Vec<VadEvent>) {
        let window_samples = u64::from(sample_rate) * WINDOW_MS / 1000;
        if window_samples == 0 {
            return;
        }
        if sample_rate != self.window_rate {
            // The session's input format changed: close the partial window on the old clock.
            if self.window_rate != 0 {
                self.window_start_us += self.window_len * 1_000_000 / u64::from(self.window_rate);
            }
            self.window_rate = sample_rate;
            self.window_len = 0;
            self.window_sum_squares = 0;
        }
        for &sample in samples {
            let magnitude = u64::from(sample.unsigned_abs());
            self.window_sum_squares += magnitude * magnitude;
            self.window_len += 1;
            if self.window_len == window_samples {
                let mean_square = self.window_sum_squares as f64 / window_samples as f64;
                self.close_window(mean_square >= self.mean_square_threshold, events);
                self.window_start_us += MICROS_PER_WINDOW;
                self.window_len = 0;
                self.window_sum_squares = 0;
            }
        }
    }

    fn close_window(&mut self, voiced: bool, events: &mut Vec<VadEvent>) {
        let start_ms = self.window_start_us / 1000;
        let end_ms = (self.window_start_us + MICROS_PER_WINDOW) / 1000;
        self.state = match (self.state, voiced) {
            (State::Silence { voiced_since }, true) => {
                let onset = voiced_since.unwrap_or(start_ms);
                if end_ms - onset >= MIN_SPEECH_MS {
                    events.push(VadEvent::SpeechStarted {
                        audio_start_ms: onset.saturating_sub(self.config.prefix_padding_ms),
                    });
                    State::Speech { silent_since: None }
                } else {
                    State::Silence {
                        voiced_since: Some(onset),
                    }
                }
            }
            (State::Silence { .. }, false) => State::Silence { voiced_since: None },
            (State::Speech { .. }, true) => State::Speech { silent_since: None },
            (State::Speech { silent_since }, false) => {
                let since = silent_since.unwrap_or(start_ms);
                if end_ms - since >= self.config.silence_duration_ms {
                    events.push(VadEvent::SpeechStopped {
                        audio_end_ms: end_ms,
                    });
                    State::Silence { voiced_since: None }
                } else {
                    State::Speech {
                        silent_since: Some(since),
                    }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE_8K: u32 = 8000;

    /// A 440 Hz tone at `amplitude` (peak), `ms` long.
    fn tone(ms: u64, amplitude: f64, rate: u32) -> Vec<i16> {
        let n = rate as u64 * ms / 1000;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    fn silence(ms: u64, rate: u32) -> Vec<i16> {
        vec![0; (rate as u64 * ms / 1000) as usize]
    }

    fn run(vad: &mut Vad, chunks: &[Vec<i16>], rate: u32) -> Vec<VadEvent> {
        let mut events = Vec::new();
        for chunk in chunks {
            vad.push(chunk, rate, &mut events);
        }
        events
    }

    #[test]
    fn threshold_maps_linearly_to_dbfs() {
        let at = |threshold| VadConfig {
            threshold,
            ..VadConfig::default()
        };
        assert_eq!(at(0.0).level_dbfs(), -60.0);
        assert_eq!(at(0.5).level_dbfs(), -35.0);
        assert_eq!(at(1.0).level_dbfs(), -10.0);
        assert_eq!(at(7.0).level_dbfs(), -10.0, "clamped");
        assert_eq!(
            at(f64::NAN).level_dbfs(),
            -35.0,
            "NaN falls back to the default"
        );
    }

    /// The on-wire tags of `loadtest` (near-silence over each 20 ms frame's first 18 bytes)
    /// change nothing the VAD hears: the same events, at the same audio times.
    #[test]
    fn on_wire_tags_do_not_move_speech_events() {
        use crate::sim::onwire::Tag;
        use actors::audio::g711;
        let pcm: Vec<i16> = [
            silence(1000, RATE_8K),
            tone(1000, 8000.0, RATE_8K),
            silence(1000, RATE_8K),
        ]
        .concat();
        let frames = |tagged: bool| -> Vec<Vec<i16>> {
            pcm.chunks(160)
                .enumerate()
                .map(|(n, chunk)| {
                    let mut ulaw: Vec<u8> = chunk.iter().map(|&s| g711::encode(s)).collect();
                    if tagged {
                        assert!(Tag::new(1, n as u64, 0).write(&mut ulaw));
                    }
                    let mut out = Vec::new();
                    g711::decode_into(&ulaw, &mut out);
                    out
                })
                .collect()
        };
        let plain = run(&mut Vad::new(VadConfig::default()), &frames(false), RATE_8K);
        let tagged = run(&mut Vad::new(VadConfig::default()), &frames(true), RATE_8K);
        assert_eq!(plain.len(), 2);
        assert_eq!(tagged, plain);
    }

    #[test]
    fn tone_then_silence_gives_one_utterance_with_padding_and_silence() {
        let mut vad = Vad::new(VadConfig::default());
        let events = run(
            &mut vad,
            &[
                silence(1000, RATE_8K),
                tone(1000, 8000.0, RATE_8K),
                silence(1000, RATE_8K),
            ],
            RATE_8K,
        );
        assert_eq!(
            events,
            [
                VadEvent::SpeechStarted {
                    audio_start_ms: 700
                },
                VadEvent::SpeechStopped { audio_end_ms: 2500 },
            ]
        );
    }

    #[test]
    fn result_does_not_depend_on_chunking() {
        let audio: Vec<i16> = [
            silence(400, RATE_8K),
            tone(700, 6000.0, RATE_8K),
            silence(900, RATE_8K),
        ]
        .concat();
        let whole = run(
            &mut Vad::new(VadConfig::default()),
            std::slice::from_ref(&audio),
            RATE_8K,
        );
        let pieces: Vec<Vec<i16>> = audio.chunks(37).map(<[i16]>::to_vec).collect();
        let chunked = run(&mut Vad::new(VadConfig::default()), &pieces, RATE_8K);
        assert_eq!(whole, chunked);
        assert_eq!(whole.len(), 2);
    }

    #[test]
    fn quiet_audio_and_short_clicks_are_not_speech() {
        let mut vad = Vad::new(VadConfig::default());
        // -45 dBFS RMS is below the default -35 dBFS level.
        let quiet = tone(
            1000,
            32767.0 * 10f64.powf(-45.0 / 20.0) * 2f64.sqrt(),
            RATE_8K,
        );
        let click = tone(40, 20000.0, RATE_8K);
        let events = run(&mut vad, &[quiet, click, silence(500, RATE_8K)], RATE_8K);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn higher_threshold_needs_louder_audio() {
        let medium = tone(
            500,
            32767.0 * 10f64.powf(-25.0 / 20.0) * 2f64.sqrt(),
            RATE_8K,
        );
        let lenient = run(
            &mut Vad::new(VadConfig::default()),
            std::slice::from_ref(&medium),
            RATE_8K,
        );
        assert_eq!(lenient.len(), 1);
        let strict = VadConfig {
            threshold: 0.9,
            ..VadConfig::default()
        };
        assert!(run(&mut Vad::new(strict), &[medium], RATE_8K).is_empty());
    }

    #[test]
    fn pauses_shorter_than_silence_duration_do_not_end_the_turn() {
        let mut vad = Vad::new(VadConfig {
            silence_duration_ms: 300,
            prefix_padding_ms: 0,
            ..VadConfig::default()
        });
        let events = run(
            &mut vad,
            &[
                tone(200, 8000.0, RATE_8K),
                silence(200, RATE_8K),
                tone(200, 8000.0, RATE_8K),
                silence(300, RATE_8K),
            ],
            RATE_8K,
        );
        assert_eq!(
            events,
            [
                VadEvent::SpeechStarted { audio_start_ms: 0 },
                VadEvent::SpeechStopped { audio_end_ms: 900 },
            ]
        );
    }

    #[test]
    fn timeline_survives_a_rate_change_and_24k_input() {
        let mut vad = Vad::new(VadConfig {
            prefix_padding_ms: 0,
            ..VadConfig::default()
        });
        let mut events = Vec::new();
        vad.push(&silence(110, RATE_8K), RATE_8K, &mut events);
        vad.push(&tone(200, 8000.0, 24_000), 24_000, &mut events);
        assert_eq!(
            events,
            [VadEvent::SpeechStarted {
                audio_start_ms: 110
            }]
        );
    }

    #[test]
    fn reset_drops_the_utterance_but_keeps_time() {
        let mut vad = Vad::new(VadConfig {
            prefix_padding_ms: 0,
            ..VadConfig::default()
        });
        let mut events = Vec::new();
        vad.push(&tone(200, 8000.0, RATE_8K), RATE_8K, &mut events);
        vad.reset();
        vad.push(&silence(1000, RATE_8K), RATE_8K, &mut events);
        vad.push(&tone(100, 8000.0, RATE_8K), RATE_8K, &mut events);
        assert_eq!(
            events,
            [
                VadEvent::SpeechStarted { audio_start_ms: 0 },
                VadEvent::SpeechStarted {
                    audio_start_ms: 1200
                },
            ]
        );
    }
}
