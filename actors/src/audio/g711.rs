//! ITU-T G.711 μ-law companding between 8-bit codes and 16-bit linear PCM.
//!
//! Twilio Media Streams carry μ-law, so this is on the per-frame hot path in `pcm24k` mode:
//! decoding is a lookup in a table built at compile time, encoding is a handful of integer
//! operations without data-dependent branches. The arithmetic follows the ITU-T G.191 reference
//! implementation (14-bit magnitudes, one's complement for negative inputs) scaled to 16 bits,
//! so `0xFF` is silence and the largest decoded magnitude is 32 124 (8031 in G.711's 14-bit
//! scale).

/// Added to the 14-bit magnitude so every segment starts on a power of two.
const BIAS: u16 = 33;
/// Largest biased 14-bit magnitude; anything louder saturates to the top code.
const MAX_BIASED: u16 = 0x1FFF;

/// Decoded value of every μ-law code, built at compile time so `decode` is one load.
static DECODE_TABLE: [i16; 256] = build_decode_table();

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = decode_reference(code as u8);
        code += 1;
    }
    table
}

/// The G.191 expansion rule, evaluated only at compile time to fill `DECODE_TABLE`.
const fn decode_reference(code: u8) -> i16 {
    let inverted = !code;
    let exponent = ((inverted >> 4) & 0x07) as i32;
    let mantissa = (inverted & 0x0F) as i32;
    let step = 8 << exponent;
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * BIAS as i32;
    if code & 0x80 == 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Expands one μ-law code to 16-bit linear PCM.
#[inline]
pub fn decode(byte: u8) -> i16 {
    DECODE_TABLE[usize::from(byte)]
}

/// Compresses one 16-bit linear PCM sample to a μ-law code.
#[inline]
pub fn encode(sample: i16) -> u8 {
    // All ones for negative samples: one's complement folds -1 onto 0 ("negative zero", 0x7F),
    // keeping the quantiser symmetric and free of the i16::MIN overflow.
    let negative = sample >> 15;
    let magnitude = (sample ^ negative) as u16;
    let biased = ((magnitude >> 2) + BIAS).min(MAX_BIASED);
    // Segment = number of significant bits above the six that a segment-0 value can have.
    let exponent = (u16::BITS - (biased >> 6).leading_zeros()) as u16;
    let mantissa = (biased >> (exponent + 1)) & 0x0F;
    // Codes are transmitted inverted; positive samples carry the sign bit.
    let base = 0xFF ^ (negative as u8 & 0x80);
    base ^ ((exponent << 4) | mantissa) as u8
}

/// Appends the linear PCM of `ulaw` to `out`.
pub fn decode_into(ulaw: &[u8], out: &mut Vec<i16>) {
    out.extend(ulaw.iter().map(|&byte| decode(byte)));
}

/// Appends the μ-law codes of `pcm` to `out`.
pub fn encode_into(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&sample| encode(sample)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest magnitude the decoder can produce (G.711 Table 2: 8031 × 4).
    const PEAK: i32 = 32_124;

    #[test]
    fn silence_codes_decode_to_zero() {
        assert_eq!(decode(0xFF), 0);
        assert_eq!(decode(0x7F), 0);
        assert_eq!(encode(0), 0xFF);
        assert_eq!(encode(-1), 0x7F);
    }

    #[test]
    fn matches_g711_reference_values() {
        // Decoder outputs of G.711 Table 2 (14-bit scale), here × 4 for 16-bit PCM.
        let reference: [(u8, i16); 12] = [
            (0x80, 8031 * 4),
            (0x00, -8031 * 4),
            (0x8F, 4191 * 4),
            (0x90, 3999 * 4),
            (0xEF, 33 * 4),
            (0xF0, 30 * 4),
            (0xFE, 2 * 4),
            (0x7E, -2 * 4),
            (0xDF, 99 * 4),
            (0xE0, 93 * 4),
            (0xCF, 231 * 4),
            (0x70, -30 * 4),
        ];
        for (code, linear) in reference {
            assert_eq!(decode(code), linear, "code {code:#04x}");
        }
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=u8::MAX {
            // Negative zero is the only code with a twin: it decodes to 0, which encodes as 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(encode(decode(code)), expected, "code {code:#04x}");
        }
    }

    #[test]
    fn round_trip_error_stays_within_quantisation_step_over_whole_range() {
        let mut previous = i16::MIN;
        for sample in i16::MIN..=i16::MAX {
            let restored = decode(encode(sample));
            let x = i32::from(sample);
            let error = (i32::from(restored) - x).abs();
            if x.abs() <= PEAK {
                // Half a step of the sample's segment (|x|/32 above segment 0, 4 inside it)
                // plus the two bits G.711 drops before quantising and the one's complement.
                let bound = 8 + x.abs() / 32;
                assert!(
                    error <= bound,
                    "{sample} -> {restored}: error {error} > {bound}"
                );
            } else {
                assert_eq!(i32::from(restored).abs(), PEAK, "{sample} must saturate");
            }
            assert!(
                restored >= previous,
                "companding must be monotonic at {sample}"
            );
            previous = restored;
        }
    }

    #[test]
    fn slice_helpers_append() {
        let mut pcm = vec![7];
        decode_into(&[0xFF, 0x80, 0x00], &mut pcm);
        assert_eq!(pcm, [7, 0, PEAK as i16, -PEAK as i16]);
        let mut ulaw = vec![0x55];
        encode_into(&pcm[1..], &mut ulaw);
        assert_eq!(ulaw, [0x55, 0xFF, 0x80, 0x00]);
    }
}
