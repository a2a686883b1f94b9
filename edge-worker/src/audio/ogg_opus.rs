//! An Ogg Opus stream (RFC 7845): the identification and comment headers,
//! then one Opus packet per 20 ms with granule positions at 48 kHz.

use std::io::Write;

use ogg::{PacketWriteEndInfo, PacketWriter};

pub struct OggOpusWriter<W: Write> {
    w: PacketWriter<'static, W>,
    serial: u32,
    pre_skip: u16,
    /// 48 kHz samples the written packets decode to (pre-skip included).
    samples: u64,
    /// The latest packet and its granule position, held back so the last
    /// one can be marked as the end of the stream.
    held: Option<(Vec<u8>, u64)>,
}

const VENDOR: &str = concat!("attache ", env!("CARGO_PKG_VERSION"));

impl<W: Write> OggOpusWriter<W> {
    /// `pre_skip` is the encoder's lookahead in 48 kHz samples.
    pub fn new(inner: W, input_rate: u32, pre_skip: u16, serial: u32) -> std::io::Result<Self> {
        let mut w = PacketWriter::new(inner);
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // mono
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&input_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family: mono/stereo
        w.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
        tags.extend_from_slice(VENDOR.as_bytes());
        tags.extend_from_slice(&0u32.to_le_bytes());
        w.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(OggOpusWriter {
            w,
            serial,
            pre_skip,
            samples: 0,
            held: None,
        })
    }

    /// Adds one packet that decodes to `samples_48k` samples.
    pub fn write(&mut self, packet: &[u8], samples_48k: u64) -> std::io::Result<()> {
        if let Some((prev, granule)) = self.held.take() {
            // A page a second keeps seeking cheap and loses little on a crash.
            let end = if granule.is_multiple_of(48_000) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.w.write_packet(prev, self.serial, end, granule)?;
        }
        self.samples += samples_48k;
        self.held = Some((packet.to_vec(), self.samples));
        Ok(())
    }

    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Ends the stream. `end` trims the decoded audio to that granule
    /// position (RFC 7845 end trimming), never extending it.
    pub fn finish(mut self, end: Option<u64>) -> std::io::Result<W> {
        let (last, granule) = self.held.take().unwrap_or_default();
        let granule = end.map_or(granule, |e| e.min(granule));
        self.w
            .write_packet(last, self.serial, PacketWriteEndInfo::EndStream, granule)?;
        Ok(self.w.into_inner())
    }
}
