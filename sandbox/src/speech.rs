//! The speech clips scripted speakers say: short Ogg/Opus recordings made by
//! `scripts/make-speech.sh`, built into the binary and served at
//! `/media/<clip>.ogg`.

/// One clip and how long it plays.
#[derive(Debug)]
pub struct Clip {
    pub name: &'static str,
    pub bytes: &'static [u8],
    /// Playback length: the last page's granule position minus the
    /// pre-skip, at 48 kHz, in whole milliseconds.
    pub duration_ms: u64,
}

/// Every clip a script may use.
pub static CLIPS: &[Clip] = &[
    Clip {
        name: "alice-1",
        bytes: include_bytes!("../assets/speech/alice-1.ogg"),
        duration_ms: 3925,
    },
    Clip {
        name: "bob-1",
        bytes: include_bytes!("../assets/speech/bob-1.ogg"),
        duration_ms: 3394,
    },
    Clip {
        name: "alice-2",
        bytes: include_bytes!("../assets/speech/alice-2.ogg"),
        duration_ms: 2627,
    },
    Clip {
        name: "carol-1",
        bytes: include_bytes!("../assets/speech/carol-1.ogg"),
        duration_ms: 1906,
    },
];

pub fn clip(name: &str) -> Option<&'static Clip> {
    CLIPS.iter().find(|c| c.name == name)
}

/// One Opus packet of a clip: where it starts (48 kHz samples from the
/// clip's start) and its bytes, as the Ogg file holds it.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub at: u64,
    pub data: std::sync::Arc<[u8]>,
}

/// The Opus packets of an Ogg/Opus file, headers left out: a clip sent as
/// it was encoded, with nothing decoded or encoded again.
pub(crate) fn packets(bytes: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut partial: Vec<u8> = Vec::new();
    let mut headers = 0;
    let mut clock = 0u64;
    while at + 27 <= bytes.len() && &bytes[at..at + 4] == b"OggS" {
        let segments = bytes[at + 26] as usize;
        let Some(lacing) = bytes.get(at + 27..at + 27 + segments) else {
            break;
        };
        let mut body = at + 27 + segments;
        for &len in lacing {
            let Some(part) = bytes.get(body..body + len as usize) else {
                return out;
            };
            partial.extend_from_slice(part);
            body += len as usize;
            // A lacing value under 255 ends a packet.
            if len < 255 {
                let packet = std::mem::take(&mut partial);
                // OpusHead and OpusTags come first.
                if headers < 2 {
                    headers += 1;
                    continue;
                }
                let samples = opus_samples(&packet);
                out.push(Packet {
                    at: clock,
                    data: packet.into(),
                });
                clock += samples;
            }
        }
        at = body;
    }
    out
}

/// How many 48 kHz samples an Opus packet holds, from its TOC byte
/// (RFC 6716, 3.1).
fn opus_samples(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else {
        return 0;
    };
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(0, |b| u64::from(b & 0x3f)),
    };
    frame * frames
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the Ogg pages of an Opus stream and returns its playback length
    /// in milliseconds: the last granule position minus the pre-skip from
    /// the `OpusHead` header, at 48 kHz.
    fn ogg_opus_duration_ms(bytes: &[u8]) -> u64 {
        let mut at = 0;
        let mut pre_skip = None;
        let mut last_granule = None;
        while at < bytes.len() {
            assert_eq!(&bytes[at..at + 4], b"OggS", "page at byte {at}");
            let granule = i64::from_le_bytes(bytes[at + 6..at + 14].try_into().unwrap());
            let segments = bytes[at + 26] as usize;
            let lacing = &bytes[at + 27..at + 27 + segments];
            let body_len: usize = lacing.iter().map(|&b| b as usize).sum();
            let body = &bytes[at + 27 + segments..at + 27 + segments + body_len];
            if pre_skip.is_none() {
                assert_eq!(&body[..8], b"OpusHead", "first page is the Opus header");
                pre_skip = Some(u16::from_le_bytes([body[10], body[11]]));
            }
            if granule >= 0 {
                last_granule = Some(granule as u64);
            }
            at += 27 + segments + body_len;
        }
        let samples = last_granule.expect("a granule position") - pre_skip.unwrap() as u64;
        samples / 48
    }

    #[test]
    fn durations_match_the_files() {
        for c in CLIPS {
            assert_eq!(
                c.duration_ms,
                ogg_opus_duration_ms(c.bytes),
                "{}: update CLIPS after scripts/make-speech.sh",
                c.name
            );
        }
    }

    #[test]
    fn a_clips_packets_cover_it_from_start_to_end() {
        for c in CLIPS {
            let p = packets(c.bytes);
            assert!(p.len() > 10, "{}", c.name);
            let last = p.last().unwrap();
            let end_ms = (last.at + opus_samples(&last.data)) / 48;
            // The pre-skip (a few ms) is played too.
            assert!(
                end_ms >= c.duration_ms && end_ms <= c.duration_ms + 30,
                "{}: {end_ms} ms of packets for {} ms",
                c.name,
                c.duration_ms
            );
            assert!(p.windows(2).all(|w| w[0].at < w[1].at));
        }
    }

    #[test]
    fn clips_are_small_and_distinct() {
        for (i, c) in CLIPS.iter().enumerate() {
            assert!(
                c.bytes.len() < 32 * 1024,
                "{} is {} bytes",
                c.name,
                c.bytes.len()
            );
            assert!(CLIPS[..i].iter().all(|o| o.name != c.name));
            assert!(std::ptr::eq(clip(c.name).unwrap(), c));
        }
        assert!(clip("nope").is_none());
    }
}
