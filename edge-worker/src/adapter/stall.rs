//! A page that stops answering: the bot's own page starved or hung, told
//! apart from what the platform did.
//!
//! A page stalls when a read of it (the probe) or its audio has not come
//! for [`STALL`], or its own timers ran that late (a starved page may
//! still answer reads while its platform's scripts fall behind): the bot
//! warns `PAGE_STALLED` once per stall and goes on.
//! A page stalled for [`UNRESPONSIVE`] is given up. And an ending the
//! platform shows soon after a long stall (removed, ended, a timeout) is
//! most likely the platform dropping a peer that went quiet, not what the
//! host did: the bot then reports the stall as the reason, with what the
//! page showed in its detail, rather than a platform reason it never saw
//! happen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_protocol::{BotStatus, StatusReason};

use super::flow::Outcome;
use crate::load::{Load, StallGuard};

/// A read or audio this late is a stall.
pub(crate) const STALL: Duration = Duration::from_secs(2);
/// A page stalled this long is given up.
pub(crate) const UNRESPONSIVE: Duration = Duration::from_secs(20);
/// Stalls at least this long can make a platform drop the bot...
const BLAME_AT_LEAST: Duration = Duration::from_secs(3);
/// ...and endings this soon after one are blamed on it.
const BLAME_WITHIN: Duration = Duration::from_secs(30);

/// What a stall calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    /// The page has just stalled: warn, once.
    Began(Duration),
    /// The page has been stalled too long: leave.
    GiveUp(Duration),
}

pub(crate) struct Stalls {
    load: Arc<Load>,
    /// The stall under way: since when, and this page counted as stalled.
    current: Option<(Instant, StallGuard)>,
    /// The latest stall that ended: when it ended, and how long it was.
    last: Option<(Instant, Duration)>,
    /// Whether the stall under way was overloaded at its worst.
    overloaded: bool,
}

impl Stalls {
    pub(crate) fn new(load: Arc<Load>) -> Stalls {
        Stalls {
            load,
            current: None,
            last: None,
            overloaded: false,
        }
    }

    /// The page has been behind for `behind` at `now` (zero when it is
    /// not): a read outstanding that long, or audio that late.
    pub(crate) fn update(&mut self, behind: Duration, now: Instant) -> Option<Stall> {
        if behind < STALL {
            if let Some((since, _guard)) = self.current.take() {
                self.last = Some((now, now.duration_since(since)));
            }
            return None;
        }
        let began = self.current.is_none();
        if began {
            let since = now.checked_sub(behind).unwrap_or(now);
            self.current = Some((since, self.load.stall()));
            self.overloaded = false;
        }
        self.overloaded |= self.load.overloaded();
        if behind >= UNRESPONSIVE {
            return Some(Stall::GiveUp(behind));
        }
        began.then_some(Stall::Began(behind))
    }

    /// The reason a stall gives: the worker's or the page's own.
    pub(crate) fn reason(&self) -> StatusReason {
        if self.overloaded || self.load.overloaded() {
            StatusReason::WorkerOverloaded
        } else {
            StatusReason::PageUnresponsive
        }
    }

    /// How the bot ends when it gives a stalled page up.
    pub(crate) fn give_up(&self, behind: Duration) -> Outcome {
        let detail = match self.reason() {
            StatusReason::WorkerOverloaded => format!(
                "the meeting page did not answer for {} s while the worker was overloaded",
                behind.as_secs()
            ),
            _ => format!("the meeting page did not answer for {} s", behind.as_secs()),
        };
        (BotStatus::Failed, self.reason(), Some(detail))
    }

    /// The bot's true ending: an ending the platform showed right after a
    /// long stall is the stall's, with what the page showed as detail.
    pub(crate) fn blame(&self, outcome: Outcome, now: Instant) -> Outcome {
        let (status, reason, detail) = outcome;
        let stalled = match (&self.current, self.last) {
            (Some((since, _)), _) => Some(now.duration_since(*since)),
            (None, Some((ended, length))) if now.duration_since(ended) <= BLAME_WITHIN => {
                Some(length)
            }
            _ => None,
        };
        let caused = matches!(
            reason,
            StatusReason::MeetingEnded
                | StatusReason::Kicked
                | StatusReason::AdmissionDenied
                | StatusReason::JoinTimeout
                | StatusReason::LobbyTimeout
                | StatusReason::NobodyJoined
                | StatusReason::AloneTooLong
                | StatusReason::SilenceTooLong
        );
        match stalled {
            Some(length) if caused && length >= BLAME_AT_LEAST => {
                let shown = detail.unwrap_or_else(|| reason.as_str().to_string());
                (
                    BotStatus::Failed,
                    self.reason(),
                    Some(format!(
                        "the meeting page stalled for {:.1} s; after it the platform showed: {shown}",
                        length.as_secs_f64()
                    )),
                )
            }
            _ => (status, reason, detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended() -> Outcome {
        (
            BotStatus::Ended,
            StatusReason::MeetingEnded,
            Some("the meeting ended".into()),
        )
    }

    #[test]
    fn a_stall_warns_once_and_is_given_up_in_the_end() {
        let load = Arc::new(Load::default());
        let mut s = Stalls::new(load.clone());
        let t0 = Instant::now();
        assert_eq!(s.update(Duration::from_millis(500), t0), None);
        assert_eq!(
            s.update(STALL, t0 + STALL),
            Some(Stall::Began(STALL)),
            "warned when it begins"
        );
        assert_eq!(load.stalled_pages(), 1);
        assert_eq!(s.update(STALL * 2, t0 + STALL * 2), None, "and only then");
        assert_eq!(
            s.update(UNRESPONSIVE, t0 + UNRESPONSIVE),
            Some(Stall::GiveUp(UNRESPONSIVE))
        );
        let (status, reason, _) = s.give_up(UNRESPONSIVE);
        assert_eq!(
            (status, reason),
            (BotStatus::Failed, StatusReason::PageUnresponsive)
        );
        s.update(Duration::ZERO, t0 + UNRESPONSIVE);
        assert_eq!(load.stalled_pages(), 0, "a stall that ended is not counted");
    }

    #[test]
    fn a_platform_ending_right_after_a_long_stall_is_the_stall() {
        let mut s = Stalls::new(Arc::new(Load::default()));
        let t0 = Instant::now();
        s.update(Duration::from_secs(8), t0 + Duration::from_secs(8));
        s.update(Duration::ZERO, t0 + Duration::from_secs(8));
        let (status, reason, detail) = s.blame(ended(), t0 + Duration::from_secs(9));
        assert_eq!(
            (status, reason),
            (BotStatus::Failed, StatusReason::PageUnresponsive)
        );
        let detail = detail.unwrap();
        assert!(
            detail.contains("stalled for 8.0 s") && detail.contains("the meeting ended"),
            "{detail}"
        );
        // Long after, the platform's word stands.
        assert_eq!(s.blame(ended(), t0 + Duration::from_secs(60)), ended());
    }

    #[test]
    fn short_stalls_and_the_bots_own_reasons_are_not_blamed() {
        let mut s = Stalls::new(Arc::new(Load::default()));
        let t0 = Instant::now();
        s.update(STALL, t0 + STALL);
        s.update(Duration::ZERO, t0 + STALL);
        assert_eq!(
            s.blame(ended(), t0 + STALL),
            ended(),
            "a 2 s stall drops nobody"
        );
        s.update(Duration::from_secs(10), t0 + Duration::from_secs(20));
        let leave = (BotStatus::Ended, StatusReason::LeaveRequested, None);
        assert_eq!(s.blame(leave.clone(), t0 + Duration::from_secs(20)), leave);
        let not_found = (BotStatus::Failed, StatusReason::MeetingNotFound, None);
        assert_eq!(
            s.blame(not_found.clone(), t0 + Duration::from_secs(20)),
            not_found
        );
    }

    #[test]
    fn pages_stalled_together_on_a_busy_machine_are_the_workers() {
        let load = Arc::new(Load::default());
        let _other = load.stall();
        let mut s = Stalls::new(load.clone());
        // The smoothed CPU reading, saturated.
        for _ in 0..20 {
            load.observe_busy(1.0);
        }
        let t0 = Instant::now();
        s.update(Duration::from_secs(5), t0);
        assert_eq!(s.reason(), StatusReason::WorkerOverloaded);
    }
}
