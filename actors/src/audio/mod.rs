//! Pure DSP: G.711 μ-law, 8 ↔ 24 kHz resampling (rubato), prompt decoding (symphonia).

pub mod g711;
pub mod prompts;
pub mod resample;
