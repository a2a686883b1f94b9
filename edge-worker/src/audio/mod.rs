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

/// Decodes a mono Ogg Opus recording to 16 kHz samples, honouring
/// pre-skip and end trimming. For checks and tools, not the hot path.
pub fn decode_ogg_opus(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let mut r = ogg::PacketReader::new(std::io::Cursor::new(bytes));
    let head = r
        .read_packet()
        .map_err(|e| e.to_string())?
        .ok_or("empty stream")?
        .data;
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err("not an Opus stream".into());
    }
    let pre_skip = u16::from_le_bytes([head[10], head[11]]) as usize / 3;
    r.read_packet()
        .map_err(|e| e.to_string())?
        .ok_or("no comment header")?;
    let mut dec =
        opus::Decoder::new(OUTPUT_RATE, opus::Channels::Mono).map_err(|e| e.to_string())?;
    let mut pcm = Vec::new();
    let mut buf = vec![0f32; 5760];
    let mut end = None;
    while let Some(p) = r.read_packet().map_err(|e| e.to_string())? {
        let n = dec
            .decode_float(&p.data, &mut buf, false)
            .map_err(|e| e.to_string())?;
        pcm.extend_from_slice(&buf[..n]);
        if p.last_in_stream() {
            end = Some(p.absgp_page() as usize / 3);
        }
    }
    let end = end.unwrap_or(pcm.len()).min(pcm.len());
    Ok(pcm[pre_skip.min(end)..end].to_vec())
}
