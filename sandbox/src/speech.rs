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
