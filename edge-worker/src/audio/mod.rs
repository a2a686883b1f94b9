//! The audio pipeline of one bot: PCM from the page (48 kHz, interleaved
//! float, any channel count) → mono → 16 kHz (rubato) → Opus (libopus) →
//! an Ogg Opus recording that standard players and `opusinfo` accept.
//!
//! Everything here is synchronous CPU work with no allocation per frame in
//! steady state; callers run it off the async threads.

mod ogg_opus;
mod pipeline;
mod resample;

pub use ogg_opus::OggOpusWriter;
pub use pipeline::{AudioPipeline, PipelineError, PipelineStats};
pub use resample::Downsampler;

/// Rate the pipeline encodes and transcribes at.
pub const OUTPUT_RATE: u32 = 16_000;
/// One Opus frame: 20 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;
