//! Voice-activity detection that cuts the recording into utterances for
//! engines that take whole requests. Energy against an adaptive noise
//! floor, in 20 ms blocks: speech starts after 60 ms above the threshold
//! (with 200 ms kept from before, so first syllables are not clipped) and
//! ends after 600 ms below it. An utterance longer than 15 s is cut there.
//! While one goes on, a partial snapshot is offered every 2 s. Where the
//! platform shows someone else start speaking, the utterance is cut too
//! ([`Vad::split_near`]), at the quietest moment around the change: people
//! who follow each other with no pause are never one segment.

use std::collections::VecDeque;

/// Samples per 20 ms block at 16 kHz.
pub(crate) const BLOCK: usize = 320;
const BLOCK_MS: u64 = 20;
const START_BLOCKS: u32 = 3;
const END_BLOCKS: u32 = 30;
const PREROLL_BLOCKS: usize = 10;
/// Silence kept after the last loud block.
const TAIL_BLOCKS: u32 = 10;
const MAX_BLOCKS: usize = 15_000 / BLOCK_MS as usize;
const PARTIAL_EVERY_BLOCKS: usize = 2_000 / BLOCK_MS as usize;
/// Quietest level counted as speech, and how far above the noise floor.
const MIN_LEVEL: f32 = 0.008;
const OVER_FLOOR: f32 = 3.0;
/// Speaking indicators lag the voice: a change shown at `t` is looked for
/// from this long before `t`...
const SPLIT_BEFORE_MS: u64 = 500;
/// ...to this long after it.
const SPLIT_AFTER_MS: u64 = 100;
/// Neither side of a cut at a change of speaker is shorter than this.
const MIN_SPLIT_MS: u64 = 300;

/// A stretch of speech: its place in the recording (ms) and its samples.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Utterance {
    /// Counts utterances from 1 within one recording.
    pub n: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub pcm: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cut {
    /// The utterance so far; more is coming.
    Partial(Utterance),
    Final(Utterance),
}

pub(crate) struct Vad {
    floor: f32,
    /// Blocks seen so far: the clock of the recording.
    blocks: u64,
    preroll: VecDeque<Vec<f32>>,
    loud_run: u32,
    quiet_run: u32,
    current: Option<Utterance>,
    blocks_in: usize,
    partial_at: usize,
    next: u32,
}

impl Default for Vad {
    fn default() -> Self {
        Vad {
            floor: MIN_LEVEL / OVER_FLOOR,
            blocks: 0,
            preroll: VecDeque::new(),
            loud_run: 0,
            quiet_run: 0,
            current: None,
            blocks_in: 0,
            partial_at: 0,
            next: 1,
        }
    }
}

fn level(block: &[f32]) -> f32 {
    (block.iter().map(|s| s * s).sum::<f32>() / block.len().max(1) as f32).sqrt()
}

impl Vad {
    /// Takes the next 20 ms block; returns what it completes.
    pub(crate) fn push(&mut self, block: Vec<f32>) -> Option<Cut> {
        let l = level(&block);
        let loud = l > MIN_LEVEL.max(self.floor * OVER_FLOOR);
        if !loud {
            // The floor follows the background, slowly.
            self.floor = self.floor * 0.95 + l * 0.05;
        }
        let at = self.blocks * BLOCK_MS;
        self.blocks += 1;
        let Some(u) = self.current.as_mut() else {
            self.preroll.push_back(block);
            if self.preroll.len() > PREROLL_BLOCKS {
                self.preroll.pop_front();
            }
            self.loud_run = if loud { self.loud_run + 1 } else { 0 };
            if self.loud_run >= START_BLOCKS {
                let pre = self.preroll.len() as u64;
                let pcm: Vec<f32> = self.preroll.drain(..).flatten().collect();
                self.current = Some(Utterance {
                    n: self.next,
                    start_ms: (at + BLOCK_MS).saturating_sub(pre * BLOCK_MS),
                    end_ms: at + BLOCK_MS,
                    pcm,
                });
                self.next += 1;
                self.blocks_in = pre as usize;
                self.partial_at = self.blocks_in;
                self.quiet_run = 0;
                self.loud_run = 0;
            }
            return None;
        };
        u.pcm.extend_from_slice(&block);
        u.end_ms = at + BLOCK_MS;
        self.blocks_in += 1;
        self.quiet_run = if loud { 0 } else { self.quiet_run + 1 };
        if self.quiet_run >= END_BLOCKS {
            // Keep a short tail of the silence, drop the rest.
            let drop = (self.quiet_run - TAIL_BLOCKS) as usize;
            let mut u = self.current.take().expect("current");
            u.pcm.truncate(u.pcm.len() - drop * BLOCK);
            u.end_ms -= drop as u64 * BLOCK_MS;
            return Some(Cut::Final(u));
        }
        if self.blocks_in >= MAX_BLOCKS {
            let u = self.current.take().expect("current");
            return Some(Cut::Final(u));
        }
        if self.blocks_in - self.partial_at >= PARTIAL_EVERY_BLOCKS {
            self.partial_at = self.blocks_in;
            return Some(Cut::Partial(u.clone()));
        }
        None
    }

    /// The platform showed a new speaker start at `at_ms` into the
    /// recording: the utterance under way, if it began well before, ends
    /// at the quietest 20 ms around that moment and is returned; the rest
    /// goes on as the next utterance.
    pub(crate) fn split_near(&mut self, at_ms: u64) -> Option<Utterance> {
        let u = self.current.as_mut()?;
        let lo = at_ms
            .saturating_sub(SPLIT_BEFORE_MS)
            .max(u.start_ms + MIN_SPLIT_MS);
        let hi = (at_ms + SPLIT_AFTER_MS).min(u.end_ms);
        if lo >= hi {
            return None;
        }
        // Block boundaries from the utterance's start.
        let block_at = |ms: u64| ((ms - u.start_ms) / BLOCK_MS) as usize;
        let cut = (block_at(lo)..block_at(hi)).min_by(|&a, &b| {
            let la = level(&u.pcm[a * BLOCK..(a + 1) * BLOCK]);
            let lb = level(&u.pcm[b * BLOCK..(b + 1) * BLOCK]);
            la.total_cmp(&lb)
        })?;
        let cut_ms = u.start_ms + cut as u64 * BLOCK_MS;
        let rest = Utterance {
            n: self.next,
            start_ms: cut_ms,
            end_ms: u.end_ms,
            pcm: u.pcm.split_off(cut * BLOCK),
        };
        self.next += 1;
        u.end_ms = cut_ms;
        self.blocks_in = rest.pcm.len() / BLOCK;
        self.partial_at = self.blocks_in;
        // A pause under way may have begun before the cut.
        self.quiet_run = self.quiet_run.min(self.blocks_in as u32);
        self.current.replace(rest)
    }

    /// The recording ended: the utterance under way, if any.
    pub(crate) fn finish(&mut self) -> Option<Utterance> {
        self.current.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64, amp: f32) -> Vec<Vec<f32>> {
        (0..ms / BLOCK_MS)
            .map(|b| {
                (0..BLOCK)
                    .map(|i| amp * ((b as usize * BLOCK + i) as f32 * 0.07).sin())
                    .collect()
            })
            .collect()
    }

    fn run(v: &mut Vad, blocks: Vec<Vec<f32>>) -> Vec<Cut> {
        blocks.into_iter().filter_map(|b| v.push(b)).collect()
    }

    #[test]
    fn cuts_speech_between_silences_with_its_place() {
        let mut v = Vad::default();
        let mut cuts = run(&mut v, tone(1_000, 0.001));
        cuts.extend(run(&mut v, tone(2_500, 0.3)));
        cuts.extend(run(&mut v, tone(1_000, 0.001)));
        cuts.extend(run(&mut v, tone(900, 0.3)));
        cuts.extend(run(&mut v, tone(1_000, 0.0)));
        let finals: Vec<&Utterance> = cuts
            .iter()
            .filter_map(|c| match c {
                Cut::Final(u) => Some(u),
                _ => None,
            })
            .collect();
        assert_eq!(finals.len(), 2, "{cuts:?}");
        let (a, b) = (finals[0], finals[1]);
        // Speech at 1000–3500 ms: the cut starts up to 200 ms before it
        // and ends 200 ms after it.
        assert!((780..=1_000).contains(&a.start_ms), "{}", a.start_ms);
        assert!((3_500..=3_720).contains(&a.end_ms), "{}", a.end_ms);
        assert_eq!(a.pcm.len() as u64, (a.end_ms - a.start_ms) * 16);
        assert!((4_280..=4_500).contains(&b.start_ms), "{}", b.start_ms);
        assert_eq!((a.n, b.n), (1, 2));
        // One partial came during the 2.5 s utterance.
        assert_eq!(
            cuts.iter()
                .filter(|c| matches!(c, Cut::Partial(u) if u.n == 1))
                .count(),
            1
        );
        assert!(v.finish().is_none());
    }

    #[test]
    fn speech_is_cut_where_the_speaker_changes_without_a_pause() {
        let mut v = Vad::default();
        let mut blocks = tone(500, 0.0);
        // Alice for 2 s, a 100 ms dip, Bob at once for 2 s.
        blocks.extend(tone(2_000, 0.3));
        blocks.extend(tone(100, 0.02));
        blocks.extend(tone(2_000, 0.25));
        let mut finals = Vec::new();
        for (i, b) in blocks.into_iter().enumerate() {
            if let Some(Cut::Final(u)) = v.push(b) {
                finals.push(u);
            }
            // The indicator shows Bob at 2.7 s; the worker learns it 0.3 s
            // later.
            if i as u64 * BLOCK_MS == 3_000 {
                finals.push(v.split_near(2_700).expect("cut at the change"));
            }
        }
        assert_eq!(finals.len(), 1, "no pause ends either turn");
        let alice = &finals[0];
        // The cut is in the dip (2.5–2.6 s), not at the indicator.
        assert!((2_500..2_600).contains(&alice.end_ms), "{}", alice.end_ms);
        assert_eq!(alice.pcm.len() as u64, (alice.end_ms - alice.start_ms) * 16);
        let bob = v.finish().expect("Bob goes on");
        assert_eq!((alice.n, bob.n), (1, 2));
        assert_eq!(bob.start_ms, alice.end_ms);
        assert_eq!(bob.pcm.len() as u64, (bob.end_ms - bob.start_ms) * 16);
        // A change right at the start of an utterance cuts nothing.
        let mut v = Vad::default();
        run(&mut v, tone(500, 0.0));
        run(&mut v, tone(200, 0.3));
        assert!(v.split_near(500).is_none());
        assert!(Vad::default().split_near(1_000).is_none(), "no speech");
    }

    #[test]
    fn a_cut_inside_a_pause_leaves_an_utterance_that_ends() {
        let mut v = Vad::default();
        run(&mut v, tone(500, 0.0));
        run(&mut v, tone(1_500, 0.3));
        // A pause whose quietest moment is its last, 560 ms in, when the
        // indicator shows someone new: the cut is there, and the pause
        // before it is not the rest's.
        run(&mut v, tone(540, 0.004));
        run(&mut v, tone(20, 0.0));
        let first = v.split_near(2_500).expect("cut in the pause");
        assert_eq!(first.end_ms, 2_540);
        let cuts = run(&mut v, tone(1_000, 0.0));
        assert!(
            cuts.iter().any(|c| matches!(c, Cut::Final(_))),
            "the rest ends with the pause: {cuts:?}"
        );
        assert!(v.finish().is_none());
    }

    #[test]
    fn a_click_is_not_speech_and_long_speech_is_cut() {
        let mut v = Vad::default();
        let mut blocks = tone(500, 0.0);
        blocks.extend(tone(40, 0.5));
        blocks.extend(tone(2_000, 0.0));
        assert!(run(&mut v, blocks).is_empty(), "40 ms is a click");
        let cuts = run(&mut v, tone(20_000, 0.3));
        let finals = cuts.iter().filter(|c| matches!(c, Cut::Final(_))).count();
        assert_eq!(finals, 1, "cut at 15 s");
        let rest = v.finish().expect("the rest is under way");
        assert!(rest.end_ms - rest.start_ms < 6_000);
    }
}
