//! Pure DSP: G.711 μ-law, 8 ↔ 24 kHz resampling (rubato), prompt decoding (symphonia).

use std::path::PathBuf;

pub mod g711;
pub mod prompts;
pub mod resample;

pub use prompts::Prompt;
pub use resample::{Pcm24kToUlaw, Resampler, UlawToPcm24k};

/// Everything that can go wrong turning audio from one representation into another.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Rates outside what a telephony engine has any business converting (also guards against
    /// absurd FFT sizes from a corrupt file header).
    #[error(
        "cannot resample {from_hz} Hz to {to_hz} Hz: rates must be 1..={} Hz",
        resample::MAX_RATE_HZ
    )]
    UnsupportedRate { from_hz: u32, to_hz: u32 },
    #[error("cannot build resampler: {0}")]
    ResamplerSetup(#[from] rubato::ResamplerConstructionError),
    #[error("resampling failed: {0}")]
    Resample(#[from] rubato::ResampleError),
    #[error("cannot open: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot decode: {0}")]
    Decode(#[from] symphonia::core::errors::Error),
    #[error("{0}")]
    Unusable(&'static str),
    /// Wraps any of the above with the prompt file it concerns, so startup errors say which
    /// file to fix.
    #[error("prompt {}: {source}", path.display())]
    Prompt {
        path: PathBuf,
        #[source]
        source: Box<AudioError>,
    },
}
