//! Streaming sample-rate conversion of mono PCM16, and the two μ-law 8 kHz ↔ PCM16 24 kHz
//! converters the `Transcoder` holds (one per direction) in audio mode `pcm24k`.
//!
//! Rates are fixed for a whole call and the telephony ratios are integers (1:3 and 3:1), so the
//! synchronous FFT resampler [`FftFixedInOut`] fits: it is exact for rational ratios, cheap (one
//! small FFT pair per 20 ms block) and has no ratio drift to manage, unlike the asynchronous sinc
//! resamplers. It wants fixed-size blocks while callers deliver arbitrary chunks, so
//! [`Resampler`] buffers input up to a block and carries rubato's overlap state between blocks:
//! the output is the same whichever way the input was split, so chunk borders cannot click.

use rubato::{FftFixedInOut, Resampler as _};

use super::{g711, AudioError};

/// Highest rate accepted at either end; also bounds FFT sizes when a file header lies.
pub(crate) const MAX_RATE_HZ: u32 = 384_000;

/// Block length. 20 ms is one Twilio media frame, so on the uplink every frame is exactly one
/// block and adds no buffering delay; it also keeps the anti-aliasing filter long enough.
const BLOCK_MS: u32 = 20;

/// Full scale of PCM16, for the f32 samples rubato works on.
const FULL_SCALE: f32 = 32_768.0;

/// A mono resampler for a continuous stream delivered in chunks of any size.
///
/// The filter delay is trimmed from the start of the stream, so after [`Resampler::flush`] the
/// total output is exactly `input × to_hz / from_hz` samples (rounded), time-aligned with the
/// input.
pub struct Resampler {
    inner: FftFixedInOut<f32>,
    from_hz: u32,
    to_hz: u32,
    /// Input waiting for a full block; never longer than `block_in`.
    pending: Vec<f32>,
    block_in: usize,
    /// Scratch for rubato's output, reused for every block.
    block_out: Vec<f32>,
    /// Leading output samples that are still filter delay rather than signal.
    to_skip: usize,
    samples_in: u64,
    samples_out: u64,
}

impl Resampler {
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        let valid = 1..=MAX_RATE_HZ;
        if !valid.contains(&from_hz) || !valid.contains(&to_hz) {
            return Err(AudioError::UnsupportedRate { from_hz, to_hz });
        }
        let wanted_block = (from_hz * BLOCK_MS / 1000).max(1);
        // Both rates are at most MAX_RATE_HZ, so these widenings are lossless.
        let inner = FftFixedInOut::new(from_hz as usize, to_hz as usize, wanted_block as usize, 1)?;
        let block_in = inner.input_frames_next();
        Ok(Resampler {
            from_hz,
            to_hz,
            pending: Vec::with_capacity(block_in),
            block_in,
            block_out: vec![0.0; inner.output_frames_max()],
            to_skip: inner.output_delay(),
            samples_in: 0,
            samples_out: 0,
            inner,
        })
    }

    /// Feeds `input` and appends to `out` every output sample that is ready.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.samples_in = self.samples_in.saturating_add(input.len() as u64);
        let mut rest = input;
        while !rest.is_empty() {
            let room = self.block_in - self.pending.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.pending
                .extend(now.iter().map(|&sample| f32::from(sample) / FULL_SCALE));
            rest = later;
            if self.pending.len() == self.block_in {
                self.run_block(out, usize::MAX)?;
            }
        }
        Ok(())
    }

    /// Ends the stream: appends the buffered input and the filter tail to `out`, then resets so
    /// the next `process` starts a new stream.
    pub fn flush(&mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let expected = self.expected_output();
        while self.samples_out < expected {
            self.pending.resize(self.block_in, 0.0);
            let missing = usize::try_from(expected - self.samples_out).unwrap_or(usize::MAX);
            self.run_block(out, missing)?;
        }
        self.inner.reset();
        self.pending.clear();
        self.to_skip = self.inner.output_delay();
        self.samples_in = 0;
        self.samples_out = 0;
        Ok(())
    }

    /// Output length the input so far is worth, rounded to the nearest sample.
    fn expected_output(&self) -> u64 {
        let scaled = u128::from(self.samples_in) * u128::from(self.to_hz);
        let rounded = (scaled + u128::from(self.from_hz / 2)) / u128::from(self.from_hz);
        u64::try_from(rounded).unwrap_or(u64::MAX)
    }

    /// Resamples the full `pending` block and appends at most `limit` signal samples to `out`.
    fn run_block(&mut self, out: &mut Vec<i16>, limit: usize) -> Result<(), AudioError> {
        let (_, produced) = self.inner.process_into_buffer(
            &[self.pending.as_slice()],
            &mut [self.block_out.as_mut_slice()],
            None,
        )?;
        self.pending.clear();
        let produced = self.block_out.get(..produced).unwrap_or_default();
        let skipped = self.to_skip.min(produced.len());
        self.to_skip -= skipped;
        let signal = produced.get(skipped..).unwrap_or_default();
        let ready = signal.get(..limit).unwrap_or(signal);
        // `as` saturates, which is the clipping we want for overshoot past full scale.
        out.extend(ready.iter().map(|&x| (x * FULL_SCALE).round() as i16));
        self.samples_out = self.samples_out.saturating_add(ready.len() as u64);
        Ok(())
    }
}

/// μ-law 8 kHz bytes → PCM16 LE 24 kHz bytes (caller → OpenAI in `pcm24k` mode).
pub struct UlawToPcm24k {
    resampler: Resampler,
    decoded: Vec<i16>,
    resampled: Vec<i16>,
}

impl UlawToPcm24k {
    pub fn new() -> Result<Self, AudioError> {
        Ok(UlawToPcm24k {
            resampler: Resampler::new(8_000, 24_000)?,
            decoded: Vec::new(),
            resampled: Vec::new(),
        })
    }

    pub fn process(&mut self, ulaw: &[u8]) -> Result<Vec<u8>, AudioError> {
        self.decoded.clear();
        g711::decode_into(ulaw, &mut self.decoded);
        self.resampled.clear();
        self.resampler.process(&self.decoded, &mut self.resampled)?;
        Ok(pcm_to_le_bytes(&self.resampled))
    }

    /// End of the caller's audio: returns the tail still inside the resampler.
    pub fn flush(&mut self) -> Result<Vec<u8>, AudioError> {
        self.resampled.clear();
        self.resampler.flush(&mut self.resampled)?;
        Ok(pcm_to_le_bytes(&self.resampled))
    }
}

/// PCM16 LE 24 kHz bytes → μ-law 8 kHz bytes (OpenAI → caller).
///
/// Model audio arrives as base64 deltas whose byte counts need not be even, so a trailing odd
/// byte is carried into the next call rather than misaligning every later sample.
pub struct Pcm24kToUlaw {
    resampler: Resampler,
    carry: Option<u8>,
    samples: Vec<i16>,
    resampled: Vec<i16>,
}

impl Pcm24kToUlaw {
    pub fn new() -> Result<Self, AudioError> {
        Ok(Pcm24kToUlaw {
            resampler: Resampler::new(24_000, 8_000)?,
            carry: None,
            samples: Vec::new(),
            resampled: Vec::new(),
        })
    }

    pub fn process(&mut self, pcm_le: &[u8]) -> Result<Vec<u8>, AudioError> {
        self.samples.clear();
        let mut bytes = pcm_le;
        if let Some(low) = self.carry.take() {
            match bytes.split_first() {
                Some((&high, rest)) => {
                    self.samples.push(i16::from_le_bytes([low, high]));
                    bytes = rest;
                }
                None => self.carry = Some(low),
            }
        }
        let pairs = bytes.chunks_exact(2);
        if let Some(&odd) = pairs.remainder().first() {
            self.carry = Some(odd);
        }
        self.samples.extend(pairs.filter_map(|pair| match *pair {
            [low, high] => Some(i16::from_le_bytes([low, high])),
            _ => None,
        }));
        self.resampled.clear();
        self.resampler.process(&self.samples, &mut self.resampled)?;
        Ok(self.encode_resampled())
    }

    /// End of a model response: returns the tail still inside the resampler. A dangling odd
    /// byte is half a sample and is dropped.
    pub fn flush(&mut self) -> Result<Vec<u8>, AudioError> {
        self.carry = None;
        self.resampled.clear();
        self.resampler.flush(&mut self.resampled)?;
        Ok(self.encode_resampled())
    }

    fn encode_resampled(&self) -> Vec<u8> {
        let mut ulaw = Vec::with_capacity(self.resampled.len());
        g711::encode_into(&self.resampled, &mut ulaw);
        ulaw
    }
}

fn pcm_to_le_bytes(samples: &[i16]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(samples.len() * 2);
    bytes.extend(samples.iter().flat_map(|sample| sample.to_le_bytes()));
    bytes
}

#[cfg(test)]
mod tests {
    use std::f64::consts::TAU;

    use super::*;

    /// Irregular chunk sizes, cycled, to split a stream at awkward places.
    const SPLITS: [usize; 9] = [1, 7, 160, 33, 480, 2, 999, 0, 61];
    const AMPLITUDE: f64 = 16_000.0;

    fn sine(freq_hz: f64, rate_hz: u32, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (AMPLITUDE * (TAU * freq_hz * n as f64 / f64::from(rate_hz)).sin()) as i16)
            .collect()
    }

    fn in_chunks<T>(data: &[T], mut feed: impl FnMut(&[T])) {
        let mut rest = data;
        for size in SPLITS.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            feed(now);
            rest = later;
        }
    }

    fn resample_whole(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut resampler = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        resampler.process(input, &mut out).unwrap();
        resampler.flush(&mut out).unwrap();
        out
    }

    fn resample_chunked(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut resampler = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        in_chunks(input, |chunk| resampler.process(chunk, &mut out).unwrap());
        resampler.flush(&mut out).unwrap();
        out
    }

    /// Feeds a one-second sine both in one piece and in irregular chunks, and checks that the
    /// two outputs agree, have the right length, follow the ideal resampled sine, and never
    /// jump further between samples than the sine's own steepest slope allows.
    fn assert_continuous(from: u32, to: u32, freq_hz: f64) {
        let input = sine(freq_hz, from, from as usize);
        let whole = resample_whole(from, to, &input);
        let chunked = resample_chunked(from, to, &input);

        assert_eq!(whole.len(), to as usize, "output length for {from}->{to}");
        assert_eq!(chunked.len(), whole.len());
        for (i, (a, b)) in whole.iter().zip(&chunked).enumerate() {
            assert!(
                (a - b).abs() <= 1,
                "{from}->{to} {freq_hz} Hz sample {i}: {a} vs {b}"
            );
        }

        // The filter delay is trimmed, so the output is time-aligned with the input and must
        // match the sine sampled directly at the target rate, to rounding. The stream's abrupt
        // start and end ring like any band-limited edge; judge the interior, which contains
        // dozens of chunk borders.
        let margin = (to / 25) as usize;
        let max_slope = AMPLITUDE * TAU * freq_hz / f64::from(to);
        let ideal = sine(freq_hz, to, to as usize);
        let interior = margin..chunked.len() - margin;
        for i in interior.clone() {
            let deviation = (i32::from(chunked[i]) - i32::from(ideal[i])).abs();
            assert!(
                deviation <= 2,
                "{from}->{to} {freq_hz} Hz sample {i} off by {deviation}"
            );
        }
        for pair in chunked[interior].windows(2) {
            let jump = f64::from((i32::from(pair[1]) - i32::from(pair[0])).abs());
            assert!(
                jump <= max_slope + 2.0,
                "click: jump {jump} > slope {max_slope}"
            );
        }
    }

    #[test]
    fn upsampling_is_continuous_across_arbitrary_chunks() {
        assert_continuous(8_000, 24_000, 440.0);
        assert_continuous(8_000, 24_000, 1_000.0);
    }

    #[test]
    fn downsampling_is_continuous_across_arbitrary_chunks() {
        assert_continuous(24_000, 8_000, 440.0);
        assert_continuous(24_000, 8_000, 1_000.0);
    }

    #[test]
    fn output_length_follows_ratio_for_any_input_length() {
        for (from, to) in [
            (8_000, 24_000),
            (24_000, 8_000),
            (16_000, 8_000),
            (44_100, 8_000),
        ] {
            for len in [0, 1, 2, 159, 160, 161, 1_000, 4_801] {
                let out = resample_chunked(from, to, &sine(300.0, from, len));
                let expected = (len as f64 * f64::from(to) / f64::from(from)).round() as usize;
                assert_eq!(out.len(), expected, "{from}->{to} with {len} samples");
            }
        }
    }

    #[test]
    fn flush_starts_a_fresh_stream() {
        let input = sine(440.0, 8_000, 1_000);
        let mut resampler = Resampler::new(8_000, 24_000).unwrap();
        let mut first = Vec::new();
        resampler.process(&input, &mut first).unwrap();
        resampler.flush(&mut first).unwrap();
        let mut second = Vec::new();
        resampler.process(&input, &mut second).unwrap();
        resampler.flush(&mut second).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn rejects_unusable_rates() {
        for (from, to) in [(0, 8_000), (8_000, 0), (MAX_RATE_HZ + 1, 8_000)] {
            assert!(matches!(
                Resampler::new(from, to),
                Err(AudioError::UnsupportedRate { .. })
            ));
        }
    }

    #[test]
    fn ulaw_frames_become_steady_pcm24k_blocks() {
        let mut uplink = UlawToPcm24k::new().unwrap();
        let silence = [0xFF_u8; 160];
        // The first frame is shortened by the trimmed filter delay, then every 20 ms frame
        // yields exactly 20 ms of 24 kHz PCM16.
        let first = uplink.process(&silence).unwrap();
        assert!(first.len() < 960 && first.len() % 2 == 0);
        for _ in 0..5 {
            let pcm = uplink.process(&silence).unwrap();
            assert_eq!(pcm.len(), 960);
            assert!(pcm.iter().all(|&byte| byte == 0));
        }
        let tail = uplink.flush().unwrap();
        assert_eq!(first.len() + 5 * 960 + tail.len(), 6 * 960);
    }

    #[test]
    fn ulaw_to_pcm24k_matches_decode_then_resample() {
        let pcm8k = sine(1_000.0, 8_000, 800);
        let mut ulaw = Vec::new();
        g711::encode_into(&pcm8k, &mut ulaw);
        let mut decoded = Vec::new();
        g711::decode_into(&ulaw, &mut decoded);
        let expected: Vec<u8> = resample_whole(8_000, 24_000, &decoded)
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();

        let mut uplink = UlawToPcm24k::new().unwrap();
        let mut got = Vec::new();
        in_chunks(&ulaw, |chunk| got.extend(uplink.process(chunk).unwrap()));
        got.extend(uplink.flush().unwrap());
        assert_eq!(got, expected);
    }

    #[test]
    fn pcm24k_odd_byte_splits_equal_even_splits() {
        let pcm: Vec<u8> = sine(440.0, 24_000, 12_000)
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();

        let mut even = Pcm24kToUlaw::new().unwrap();
        let mut expected = Vec::new();
        for frame in pcm.chunks(960) {
            expected.extend(even.process(frame).unwrap());
        }
        expected.extend(even.flush().unwrap());
        assert_eq!(expected.len(), 4_000);

        let mut odd = Pcm24kToUlaw::new().unwrap();
        let mut got = Vec::new();
        in_chunks(&pcm, |chunk| got.extend(odd.process(chunk).unwrap()));
        got.extend(odd.flush().unwrap());
        assert_eq!(got, expected);
    }

    #[test]
    fn lone_byte_waits_for_its_partner() {
        let mut downlink = Pcm24kToUlaw::new().unwrap();
        assert!(downlink.process(&[0x34]).unwrap().is_empty());
        assert!(downlink.process(&[]).unwrap().is_empty());
        let mut whole = Pcm24kToUlaw::new().unwrap();
        let sample = [0x34, 0x12];
        whole.process(&sample).unwrap();
        downlink.process(&sample[1..]).unwrap();
        assert_eq!(downlink.flush().unwrap(), whole.flush().unwrap());
    }
}
