//! On-wire hop latency, measured as an outside observer would (issue 8): the simulated
//! Twilio tags every caller frame it writes and the OpenAI emulator every audio delta it
//! writes; whoever reads a tagged frame off its socket records how long it took to get there.
//!
//! A tag is [`TAG_LEN`] μ-law bytes at the start of the payload carrying the writer's call id,
//! the frame's sequence number and the moment it was written, in microseconds of
//! `CLOCK_MONOTONIC` ([`now_us`]). That clock is one for every process on a Linux machine, so
//! the reader's own reading of it gives the hop even when the emulator runs as a separate
//! process (`loadtest --target URL --emulator URL`), and no per-frame record has to be joined
//! afterwards. The hop covers everything between the two applications: the server's own work,
//! its mailboxes, its socket writes (Nagle, a full send buffer) and the kernel.
//!
//! Tags survive only byte-exact passthrough: the engine forwards μ-law payloads untouched in
//! the `pcmu` audio mode; in `pcm24k` it resamples them and no tag arrives.
//!
//! Every tag byte is a μ-law code of the lowest segment (`0x70..=0x7F`, `0xF0..=0xFF`), which
//! decodes to at most ±120 of 32767 (−49 dBFS): 2.25 ms of near-silence at the start of a
//! 20 ms frame, far under the emulator's VAD level (−35 dBFS by default). Each byte carries 5
//! bits (the sign and the mantissa); 18 bytes hold a 10-bit magic, the call id (20 bits), the
//! sequence number (20 bits), the write time (30 bits: wraps every 17.9 minutes, far beyond
//! any hop) and a 10-bit check, so ordinary audio is not mistaken for a tag.

use std::time::Duration;

/// Bytes of payload a tag takes (2.25 ms of μ-law).
pub const TAG_LEN: usize = 18;
/// A frame slower than this on a hop is a stall (the figure).
pub const STALL: Duration = Duration::from_millis(15);

const CALL_BITS: u32 = 20;
const SEQ_BITS: u32 = 20;
const TIME_BITS: u32 = 30;
const PAYLOAD_BITS: u32 = CALL_BITS + SEQ_BITS + TIME_BITS;
const CHECK_BITS: u32 = 10;
/// Two symbols no silence or tone produces in a row by chance of more than 2^-10.
const MAGIC: [u8; 2] = [0b10110, 0b01001];
const SYMBOL_BITS: u32 = 5;
/// μ-law bytes whose bits 4–6 are all set: the lowest segment of either sign.
const LOW_SEGMENT: u8 = 0x70;

/// Now on `CLOCK_MONOTONIC`, in µs: the same clock in every process of this machine.
pub fn now_us() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec).unwrap_or(0) / 1000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

/// What a tag says: who wrote the frame, which frame it is, and when it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The writer's call (20 bits: the id modulo 2^20).
    pub call: u32,
    /// The frame's number within the call (20 bits).
    pub seq: u32,
    /// [`now_us`] at the write, modulo 2^30.
    pub sent_us: u32,
}

fn low_bits(value: u64, bits: u32) -> u32 {
    // Masked to at most 30 bits: always fits.
    u32::try_from(value & ((1 << bits) - 1)).unwrap_or(0)
}

/// A 10-bit digest of the payload bits.
fn check(payload: u128) -> u32 {
    let folded = (payload as u64) ^ ((payload >> 64) as u64).rotate_left(29);
    let mixed = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    low_bits(mixed >> (64 - CHECK_BITS), CHECK_BITS)
}

/// The μ-law byte carrying a 5-bit symbol: its top bit is the sign, its low 4 bits the
/// mantissa, and the segment bits say "quietest".
fn to_byte(symbol: u8) -> u8 {
    LOW_SEGMENT | ((symbol & 0x10) << 3) | (symbol & 0x0F)
}

fn to_symbol(byte: u8) -> Option<u8> {
    (byte & LOW_SEGMENT == LOW_SEGMENT).then_some(((byte >> 3) & 0x10) | (byte & 0x0F))
}

impl Tag {
    /// The tag of frame `seq` of call `call`, written at `sent_us` (each kept to its bits).
    pub fn new(call: u64, seq: u64, sent_us: u64) -> Tag {
        Tag {
            call: low_bits(call, CALL_BITS),
            seq: low_bits(seq, SEQ_BITS),
            sent_us: low_bits(sent_us, TIME_BITS),
        }
    }

    fn payload(&self) -> u128 {
        u128::from(self.call)
            | u128::from(self.seq) << CALL_BITS
            | u128::from(self.sent_us) << (CALL_BITS + SEQ_BITS)
    }

    /// Writes the tag over the first [`TAG_LEN`] bytes of `audio` (μ-law); `false`, and
    /// nothing written, when the audio is shorter.
    pub fn write(&self, audio: &mut [u8]) -> bool {
        let Some(slots) = audio.get_mut(..TAG_LEN) else {
            return false;
        };
        let bits = self.payload() | u128::from(check(self.payload())) << PAYLOAD_BITS;
        let symbols = MAGIC.into_iter().chain(
            (0..(PAYLOAD_BITS + CHECK_BITS) / SYMBOL_BITS)
                .map(|i| ((bits >> (i * SYMBOL_BITS)) & 0x1F) as u8),
        );
        for (slot, symbol) in slots.iter_mut().zip(symbols) {
            *slot = to_byte(symbol);
        }
        true
    }

    /// The tag at the start of `audio` (μ-law), if there is one.
    pub fn read(audio: &[u8]) -> Option<Tag> {
        let bytes = audio.get(..TAG_LEN)?;
        let (magic, rest) = bytes.split_at(MAGIC.len());
        if magic.iter().map(|&b| to_symbol(b)).ne(MAGIC.map(Some)) {
            return None;
        }
        let mut bits = 0u128;
        for (i, &byte) in rest.iter().enumerate() {
            bits |= u128::from(to_symbol(byte)?) << (i as u32 * SYMBOL_BITS);
        }
        let payload = bits & ((1 << PAYLOAD_BITS) - 1);
        if (bits >> PAYLOAD_BITS) as u32 != check(payload) {
            return None;
        }
        let field = |shift: u32, width: u32| low_bits((payload >> shift) as u64, width);
        Some(Tag {
            call: field(0, CALL_BITS),
            seq: field(CALL_BITS, SEQ_BITS),
            sent_us: field(CALL_BITS + SEQ_BITS, TIME_BITS),
        })
    }

    /// How long the frame took to arrive, read at `now_us` ([`now_us`] on the same clock).
    pub fn latency(&self, now_us: u64) -> Duration {
        let sent = u64::from(self.sent_us);
        let elapsed = now_us.wrapping_sub(sent) & ((1 << TIME_BITS) - 1);
        Duration::from_micros(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::audio::g711;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tags_round_trip(call: u64, seq: u64, sent: u64, tail in prop::collection::vec(any::<u8>(), 0..200)) {
            let tag = Tag::new(call, seq, sent);
            let mut audio = vec![0u8; TAG_LEN];
            audio.extend(&tail);
            prop_assert!(tag.write(&mut audio));
            prop_assert_eq!(Tag::read(&audio), Some(tag));
            prop_assert_eq!(u64::from(tag.call), call % (1 << 20));
            prop_assert_eq!(u64::from(tag.seq), seq % (1 << 20));
            prop_assert_eq!(audio.get(TAG_LEN..), Some(tail.as_slice()), "only the tag's bytes");
        }

        #[test]
        fn a_changed_byte_is_not_read_as_a_tag(call: u64, seq: u64, sent: u64, at in 0..TAG_LEN, flip in 1u8..) {
            let mut audio = [0u8; TAG_LEN];
            Tag::new(call, seq, sent).write(&mut audio);
            audio[at] ^= flip;
            // Either no tag, or (a collision of the 10-bit check) one that says something else.
            prop_assert_ne!(Tag::read(&audio), Some(Tag::new(call, seq, sent)));
        }

        #[test]
        fn latency_is_the_time_since_the_write_across_the_wrap(sent: u64, hop in 0u64..60_000_000) {
            let tag = Tag::new(0, 0, sent);
            prop_assert_eq!(tag.latency(sent.wrapping_add(hop)), Duration::from_micros(hop));
        }
    }

    #[test]
    fn tags_are_near_silence() {
        let mut audio = [0u8; TAG_LEN];
        for n in 0..1000u64 {
            Tag::new(n * 7919, n, n * 1_234_567).write(&mut audio);
            assert!(audio.iter().all(|&b| g711::decode(b).unsigned_abs() <= 124));
        }
    }

    #[test]
    fn silence_tones_and_short_audio_are_not_tags() {
        assert_eq!(Tag::read(&[0xFF; 160]), None, "μ-law silence");
        assert_eq!(Tag::read(&[0x7F; 160]), None, "negative zero");
        let tone: Vec<u8> = (0..160)
            .map(|n| g711::encode((f64::from(n) * 0.3).sin().mul_add(80.0, 0.0) as i16))
            .collect();
        assert_eq!(Tag::read(&tone), None, "a quiet tone");
        let mut short = [0u8; TAG_LEN - 1];
        assert!(!Tag::new(1, 2, 3).write(&mut short));
        assert_eq!(Tag::read(&short), None);
    }

    #[test]
    fn the_clock_is_monotonic() {
        let a = now_us();
        let b = now_us();
        assert!(a > 0 && b >= a);
    }
}
