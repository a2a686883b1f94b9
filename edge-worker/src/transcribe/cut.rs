//! Utterances cut at pauses and at changes of speaker, whichever comes to
//! the worker first: the recording's audio or the platform's speaker
//! signal.
//!
//! The two travel apart. When the engine is slow the audio waits in the
//! transcriber's queue while speaker changes are already known, so a
//! change is kept until the audio has reached it. When the page is slow a
//! change is learnt after its utterance has ended at a pause, so an ended
//! utterance is held until the speaker signal has been read past its end
//! (or [`HOLD_MAX`] has gone by): a late change still cuts it, and the
//! name is given from a complete log.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::vad::{Cut, SPLIT_AFTER_MS, SPLIT_BEFORE_MS, Utterance, Vad, spans};

/// Longest an ended utterance waits for the speaker signal.
pub(crate) const HOLD_MAX: Duration = Duration::from_secs(3);

/// An ended utterance, and when it ended (for the latency figure).
pub(crate) type Ended = (Utterance, Instant);

#[derive(Default)]
pub(crate) struct Cutter {
    vad: Vad,
    /// Changes of speaker (ms into the recording) the audio has not yet
    /// reached, oldest first.
    changes: VecDeque<u64>,
    /// Ended utterances a late change may still cut, oldest first.
    held: Vec<Ended>,
}

/// What [`Cutter::push`] has ready.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    /// The utterance under way so far, to show while it goes on.
    pub partial: Option<Utterance>,
    /// Utterances ended, in the order they were spoken.
    pub finals: Vec<Ended>,
}

impl Cutter {
    /// The platform showed someone new start speaking at `at_ms` into the
    /// recording.
    pub(crate) fn change(&mut self, at_ms: u64) {
        let i = self.changes.partition_point(|&c| c <= at_ms);
        self.changes.insert(i, at_ms);
    }

    /// Takes the next 20 ms block. `read_through` is how far (ms into the
    /// recording) the speaker signal has been read, if it is read at all.
    pub(crate) fn push(
        &mut self,
        block: Vec<f32>,
        read_through: Option<u64>,
        now: Instant,
    ) -> Ready {
        self.apply_changes(false, now);
        let mut ready = Ready::default();
        match self.vad.push(block) {
            Some(Cut::Final(u)) => self.held.push((u, now)),
            Some(Cut::Partial(u)) => ready.partial = Some(u),
            None => {}
        }
        // A change the audio has reached may fall in what just ended.
        self.apply_changes(false, now);
        let releasable = |(u, at): &Ended| match read_through {
            None => true,
            Some(t) => t >= u.end_ms + SPLIT_BEFORE_MS || now.duration_since(*at) >= HOLD_MAX,
        };
        let keep = self.held.iter().position(|e| !releasable(e));
        let done = keep.unwrap_or(self.held.len());
        ready.finals = self.held.drain(..done).collect();
        ready
    }

    /// The recording ended: every change known is applied, and what is
    /// left is returned in order.
    pub(crate) fn finish(&mut self, now: Instant) -> Vec<Ended> {
        self.apply_changes(true, now);
        let mut out: Vec<Ended> = std::mem::take(&mut self.held);
        out.extend(self.vad.finish().map(|u| (u, now)));
        out
    }

    /// Cuts at each change the audio has reached (each one known, when
    /// `all`): in a held utterance it falls in, else in the one under way.
    fn apply_changes(&mut self, all: bool, now: Instant) {
        while let Some(&at) = self.changes.front() {
            if !all && at + SPLIT_AFTER_MS > self.vad.clock_ms() {
                break;
            }
            self.changes.pop_front();
            if let Some(i) = self.held.iter().position(|(u, _)| spans(u, at)) {
                let (mut u, ended) = self.held.remove(i);
                let rest = self.vad.split_ended(&mut u, at);
                self.held.insert(i, (u, ended));
                if let Some(rest) = rest {
                    self.held.insert(i + 1, (rest, ended));
                }
            } else if let Some(before) = self.vad.split_near(at) {
                let i = self
                    .held
                    .partition_point(|(u, _)| u.start_ms < before.start_ms);
                self.held.insert(i, (before, now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcribe::vad::BLOCK;

    const BLOCK_MS: u64 = 20;

    fn tone(ms: u64, amp: f32) -> Vec<Vec<f32>> {
        (0..ms / BLOCK_MS)
            .map(|b| {
                (0..BLOCK)
                    .map(|i| amp * ((b as usize * BLOCK + i) as f32 * 0.07).sin())
                    .collect()
            })
            .collect()
    }

    /// Silence, Alice for 2 s, a 100 ms dip at 2.5 s, Bob for 2 s, then
    /// silence: the indicator shows Bob at 2.7 s.
    fn alice_then_bob() -> Vec<Vec<f32>> {
        let mut blocks = tone(500, 0.0);
        blocks.extend(tone(2_000, 0.3));
        blocks.extend(tone(100, 0.02));
        blocks.extend(tone(2_000, 0.25));
        blocks.extend(tone(2_000, 0.0));
        blocks
    }

    fn spans_of(finals: &[Ended]) -> Vec<(u64, u64)> {
        finals.iter().map(|(u, _)| (u.start_ms, u.end_ms)).collect()
    }

    fn assert_two_turns(finals: &[Ended]) {
        assert_eq!(finals.len(), 2, "{:?}", spans_of(finals));
        let (alice, bob) = (&finals[0].0, &finals[1].0);
        assert!(
            (2_500..2_600).contains(&alice.end_ms),
            "{:?}",
            spans_of(finals)
        );
        assert_eq!(bob.start_ms, alice.end_ms);
        assert!(bob.end_ms >= 4_600, "{:?}", spans_of(finals));
        for (u, _) in finals {
            assert_eq!(u.pcm.len() as u64, (u.end_ms - u.start_ms) * 16);
        }
        assert_ne!(alice.n, bob.n);
    }

    #[test]
    fn a_change_known_before_its_audio_still_cuts() {
        // The engine was slow: the change is known from the start, while
        // the audio is still queued.
        let mut c = Cutter::default();
        c.change(2_700);
        let now = Instant::now();
        let mut finals = Vec::new();
        for b in alice_then_bob() {
            finals.extend(c.push(b, None, now).finals);
        }
        finals.extend(c.finish(now));
        assert_two_turns(&finals);
    }

    #[test]
    fn a_change_learnt_after_its_utterance_ended_still_cuts() {
        // The page was slow: Bob's turn is learnt only once both turns
        // have ended at the pause after them, and the speaker signal has
        // been read only up to 2 s.
        let mut c = Cutter::default();
        let now = Instant::now();
        let mut finals = Vec::new();
        let mut late = true;
        for (i, b) in alice_then_bob().into_iter().enumerate() {
            let at = i as u64 * BLOCK_MS;
            let through = if at < 6_000 { 2_000 } else { at };
            if at == 6_000 && late {
                c.change(2_700);
                late = false;
            }
            let ready = c.push(b, Some(through), now);
            assert!(
                at >= 6_000 || ready.finals.is_empty(),
                "released before the speaker signal was read past it"
            );
            finals.extend(ready.finals);
        }
        finals.extend(c.finish(now));
        assert_two_turns(&finals);
    }

    #[test]
    fn an_ended_utterance_waits_at_most_the_hold() {
        let mut c = Cutter::default();
        let start = Instant::now();
        let mut blocks = tone(500, 0.0);
        blocks.extend(tone(1_000, 0.3));
        blocks.extend(tone(1_000, 0.0));
        let mut finals = Vec::new();
        for b in blocks {
            finals.extend(c.push(b, Some(0), start).finals);
        }
        assert!(finals.is_empty(), "held: the signal was not read");
        let ready = c.push(tone(20, 0.0).remove(0), Some(0), start + HOLD_MAX);
        assert_eq!(ready.finals.len(), 1);
        // Without a speaker signal nothing is held.
        let mut c = Cutter::default();
        let mut blocks = tone(500, 0.0);
        blocks.extend(tone(1_000, 0.3));
        blocks.extend(tone(1_000, 0.0));
        let n: usize = blocks
            .into_iter()
            .map(|b| c.push(b, None, start).finals.len())
            .sum();
        assert_eq!(n, 1);
    }
}
