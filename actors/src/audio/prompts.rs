//! Canned prompts (greeting, hold, fallback) decoded once at startup into the μ-law 8 kHz mono
//! that Twilio plays, so sending one during a call is only slicing bytes into frames.
//!
//! Any container and codec symphonia's enabled features read is accepted (WAV/PCM today):
//! channels are averaged to mono and the rate converted with [`Resampler`].

use std::fmt;
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::Resampler;
use super::{g711, AudioError};

/// Twilio Media Streams' rate: one μ-law byte per sample.
const TELEPHONY_HZ: u32 = 8_000;
const BYTES_PER_MS: u64 = (TELEPHONY_HZ / 1_000) as u64;
/// Prompts are short announcements; the cap keeps a wrongly configured file (an album) from
/// holding hundreds of megabytes of decoded audio.
const MAX_SECONDS: u64 = 600;

/// A prompt ready to play: μ-law 8 kHz mono.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    ulaw: Vec<u8>,
}

impl Prompt {
    /// Decodes the audio file at `path`; every error names the path.
    pub fn load(path: &Path) -> Result<Prompt, AudioError> {
        File::open(path)
            .map_err(AudioError::Open)
            .and_then(|file| decode_to_ulaw(Box::new(file), path))
            .map(Prompt::from_ulaw)
            .map_err(|source| AudioError::Prompt {
                path: path.to_path_buf(),
                source: Box::new(source),
            })
    }

    /// Decodes an audio file held in memory (a prompt built into the binary); `path` says
    /// where it came from in errors, and its extension hints at the format.
    pub fn from_bytes(bytes: &'static [u8], path: &Path) -> Result<Prompt, AudioError> {
        let source = Box::new(std::io::Cursor::new(bytes));
        decode_to_ulaw(source, path)
            .map(Prompt::from_ulaw)
            .map_err(|source| AudioError::Prompt {
                path: path.to_path_buf(),
                source: Box::new(source),
            })
    }

    pub fn from_ulaw(ulaw: Vec<u8>) -> Prompt {
        Prompt { ulaw }
    }

    pub fn ulaw(&self) -> &[u8] {
        &self.ulaw
    }

    pub fn duration_ms(&self) -> u64 {
        self.ulaw.len() as u64 / BYTES_PER_MS
    }
}

/// Summarised: the audio bytes themselves are of no use in a log line.
impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("duration_ms", &self.duration_ms())
            .finish()
    }
}

fn decode_to_ulaw(source: Box<dyn MediaSource>, path: &Path) -> Result<Vec<u8>, AudioError> {
    let (mono, rate) = decode_mono(source, path)?;
    let resampled = if rate == TELEPHONY_HZ {
        mono
    } else {
        let mut resampler = Resampler::new(rate, TELEPHONY_HZ)?;
        let mut out = Vec::new();
        resampler.process(&mono, &mut out)?;
        resampler.flush(&mut out)?;
        out
    };
    let mut ulaw = Vec::with_capacity(resampled.len());
    g711::encode_into(&resampled, &mut ulaw);
    Ok(ulaw)
}

/// Decodes the default track of `source` (named `path`) to mono PCM16 at its own rate.
fn decode_mono(source: Box<dyn MediaSource>, path: &Path) -> Result<(Vec<i16>, u32), AudioError> {
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(extension);
    }
    let mut reader = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )?
        .format;
    let track = reader
        .default_track()
        .ok_or(AudioError::Unusable("no audio track"))?;
    let track_id = track.id;
    let mut decoder =
        symphonia::default::get_codecs().make(&track.codec_params, &DecoderOptions::default())?;

    let mut mono = Vec::new();
    let mut rate = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // symphonia's way of saying the stream ended.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet)?;
        let spec = *decoded.spec();
        if *rate.get_or_insert(spec.rate) != spec.rate {
            return Err(AudioError::Unusable("sample rate changes mid-stream"));
        }
        let channels = spec.channels.count();
        if channels == 0 {
            return Err(AudioError::Unusable("no channels"));
        }
        let mut interleaved = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        interleaved.copy_interleaved_ref(decoded);
        let scale = 32_768.0 / channels as f32;
        mono.extend(
            interleaved
                .samples()
                .chunks(channels)
                .map(|frame| (frame.iter().sum::<f32>() * scale).round() as i16),
        );
        if mono.len() as u64 > MAX_SECONDS * u64::from(spec.rate) {
            return Err(AudioError::Unusable("longer than 10 minutes"));
        }
    }
    match rate {
        Some(rate) if !mono.is_empty() => Ok((mono, rate)),
        _ => Err(AudioError::Unusable("contains no audio")),
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::TAU;
    use std::path::PathBuf;

    use super::*;

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/prompts")
            .join(name)
    }

    fn scratch_file(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("switchboard-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A canonical 16-bit PCM WAV, written by hand so the test owns every byte of its input.
    fn wav(rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
        let data_len = (interleaved.len() * 2) as u32;
        let block_align = channels * 2;
        let mut out = Vec::new();
        out.extend(b"RIFF");
        out.extend((36 + data_len).to_le_bytes());
        out.extend(b"WAVEfmt ");
        out.extend(16u32.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(channels.to_le_bytes());
        out.extend(rate.to_le_bytes());
        out.extend((rate * u32::from(block_align)).to_le_bytes());
        out.extend(block_align.to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(b"data");
        out.extend(data_len.to_le_bytes());
        out.extend(interleaved.iter().flat_map(|s| s.to_le_bytes()));
        out
    }

    fn peak(prompt: &Prompt) -> i16 {
        prompt
            .ulaw()
            .iter()
            .map(|&b| g711::decode(b).saturating_abs())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn shipped_prompts_load_as_audible_telephony_audio() {
        for (name, min_ms, max_ms) in [
            ("greeting.wav", 1_500, 6_000),
            ("hold.wav", 1_500, 3_000),
            ("fallback.wav", 3_000, 8_000),
            ("caller.wav", 2_000, 7_000),
        ] {
            let prompt = Prompt::load(&shipped(name)).unwrap();
            let ms = prompt.duration_ms();
            assert!((min_ms..=max_ms).contains(&ms), "{name}: {ms} ms");
            assert!(peak(&prompt) > 8_000, "{name} is too quiet");
        }
    }

    #[test]
    fn hold_prompt_loops_without_a_click() {
        let hold = Prompt::load(&shipped("hold.wav")).unwrap();
        let ulaw = hold.ulaw();
        let edges = ulaw.iter().take(16).chain(ulaw.iter().rev().take(16));
        assert!(edges.map(|&b| g711::decode(b).abs()).all(|v| v < 300));
    }

    #[test]
    fn stereo_16khz_file_is_mixed_to_mono_8khz() {
        // Left: a 440 Hz tone; right: silence. The mix is the tone at half amplitude.
        let frames = 16_000 / 2;
        let interleaved: Vec<i16> = (0..frames)
            .flat_map(|n| {
                let tone = 20_000.0 * (TAU * 440.0 * f64::from(n) / 16_000.0).sin();
                [tone as i16, 0]
            })
            .collect();
        let path = scratch_file("stereo16k.wav", &wav(16_000, 2, &interleaved));
        let prompt = Prompt::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(prompt.ulaw().len(), 4_000);
        assert_eq!(prompt.duration_ms(), 500);
        let peak = peak(&prompt);
        assert!((9_400..=10_600).contains(&peak), "peak {peak}");
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let path = shipped("no-such-prompt.wav");
        let error = Prompt::load(&path).unwrap_err().to_string();
        assert!(error.contains("no-such-prompt.wav"), "{error}");
        assert!(error.contains("cannot open"), "{error}");
    }

    #[test]
    fn corrupt_file_error_names_the_path() {
        let garbage = scratch_file("corrupt.wav", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk");
        let error = Prompt::load(&garbage).unwrap_err().to_string();
        std::fs::remove_file(&garbage).unwrap();
        assert!(error.contains("corrupt.wav"), "{error}");

        let empty = scratch_file("empty.wav", &wav(8_000, 1, &[]));
        let error = Prompt::load(&empty).unwrap_err().to_string();
        std::fs::remove_file(&empty).unwrap();
        assert!(error.contains("empty.wav"), "{error}");
    }

    #[test]
    fn from_ulaw_reports_duration() {
        let prompt = Prompt::from_ulaw(vec![0xFF; 1_600]);
        assert_eq!(prompt.duration_ms(), 200);
        assert_eq!(prompt.ulaw().len(), 1_600);
        assert_eq!(format!("{prompt:?}"), "Prompt { duration_ms: 200 }");
    }
}
