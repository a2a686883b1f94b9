//! The platform's flow as a pure decision: from what the probe saw on the
//! page, what the bot knows about the call and the clocks, [`next_step`]
//! says what to do next. Nothing here touches the page or the clock; it is
//! tested on its own.
//!
//! Admission is detected positively: a bot is IN_CALL only when the call's
//! own controls are on screen, never because the lobby text went away.

use std::time::{Duration, Instant};

use attache_protocol::{BotStatus, SessionLimits, StatusReason, WarningCode};
use serde::Deserialize;

/// Buttons are clicked again only after this long without effect.
const RECLICK: Duration = Duration::from_secs(3);
/// A microphone or camera toggle still on after this many clicks is left
/// as it is: it is not a reason to stay out of the call.
const TOGGLE_TRIES: u32 = 2;
/// Banners and pre-join choices go before the join button: after each
/// click the page is given this long to take the next one off...
const PREJOIN_SETTLE: Duration = Duration::from_millis(500);
/// ...and after this many, what is left stays.
const PREJOIN_TRIES: u32 = 8;
/// The call UI may flicker (auto-hiding toolbars): absence must last this
/// long before it counts.
const ABSENCE_DEBOUNCE: Duration = Duration::from_secs(3);

/// How a bot's session ends: its final status, why, and in words.
pub(crate) type Outcome = (BotStatus, StatusReason, Option<String>);

/// What the probe saw on the page.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Probe {
    pub name_input: bool,
    pub name_filled: bool,
    pub join_button: bool,
    pub pre_join_button: bool,
    /// The pre-join screen's microphone or camera toggle shows it on.
    pub mic_on: bool,
    pub camera_on: bool,
    pub lobby: bool,
    /// The call's own controls are on screen and no join button is (and,
    /// where the roster proves the call, a person is in it). Lobbies show
    /// call controls too: admission also needs no lobby text, while in the
    /// call a lobby's words (a caption, a chat line) change nothing.
    pub call_controls: bool,
    pub leave_button: bool,
    /// The platform asks to confirm the leave.
    pub leave_confirm: bool,
    /// A notice in the call waits to be acknowledged.
    pub notice: bool,
    pub chat_button: bool,
    /// A button that opens the People panel, while no roster is on screen.
    pub people_button: bool,
    /// The meeting asks for a passcode, or refused the one in the link.
    pub passcode: bool,
    pub denied: bool,
    pub removed: bool,
    pub ended: bool,
    pub not_found: bool,
    pub sign_in: bool,
    pub blocked: bool,
}

/// What the bot knows about the call beyond the page's flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallSignals {
    /// The roster can be read (else the presence rules do not apply: an
    /// unreadable roster is not an empty meeting).
    pub roster_readable: bool,
    /// People other than the bot in the call now, and ever since it entered.
    pub others: usize,
    pub others_seen: bool,
    /// Since when the bot has been alone after others left.
    pub alone_since: Option<Instant>,
    /// The last time there was sound, or someone was shown speaking.
    pub last_activity: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Joining,
    Lobby {
        since: Instant,
    },
    InCall {
        since: Instant,
        absent_since: Option<Instant>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Wait,
    TypeName,
    Click(&'static str),
    Enter(Phase),
    Finish(BotStatus, StatusReason, &'static str),
    /// Click leave, then finish.
    Leave(BotStatus, StatusReason, &'static str),
}

/// The clicks of the join flow so far: for each target, when it was last
/// clicked and how often.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clicks(Vec<(&'static str, Instant, u32)>);

impl Clicks {
    pub(crate) fn record(&mut self, target: &'static str, now: Instant) {
        match self.0.iter_mut().find(|(t, _, _)| *t == target) {
            Some(c) => *c = (target, now, c.2 + 1),
            None => self.0.push((target, now, 1)),
        }
    }

    fn last(&self, target: &str) -> Option<(Instant, u32)> {
        self.0
            .iter()
            .find(|(t, _, _)| *t == target)
            .map(|&(_, at, n)| (at, n))
    }
}

/// The next move, from the page, the call and the clocks.
pub(crate) fn next_step(
    phase: Phase,
    p: &Probe,
    call: &CallSignals,
    started: Instant,
    now: Instant,
    clicks: &Clicks,
    limits: &SessionLimits,
) -> Step {
    use BotStatus::{Ended, Failed};
    use StatusReason::*;
    let ms = |n: u64| Duration::from_millis(n);
    if p.not_found {
        return Step::Finish(
            Failed,
            MeetingNotFound,
            "the platform says the meeting does not exist",
        );
    }
    if p.blocked {
        return Step::Finish(
            Failed,
            BlockedByPlatform,
            "the platform does not let this bot in",
        );
    }
    if p.sign_in {
        return Step::Finish(
            Failed,
            SignInRequired,
            "the meeting requires a signed-in account",
        );
    }
    if p.passcode {
        return Step::Finish(
            Failed,
            WrongPasscode,
            "the meeting asks for a passcode the link does not carry, or refused it",
        );
    }
    match phase {
        Phase::InCall {
            since,
            absent_since,
        } => {
            if p.removed {
                return Step::Finish(Failed, Kicked, "removed by the host");
            }
            if p.ended {
                return Step::Finish(Ended, MeetingEnded, "the meeting ended");
            }
            if now.duration_since(since) >= ms(limits.max_duration_ms) {
                return Step::Leave(Ended, MaxDuration, "maximum duration reached");
            }
            if call.roster_readable
                && !call.others_seen
                && now.duration_since(since) >= ms(limits.nobody_joined_ms)
            {
                return Step::Leave(Ended, NobodyJoined, "nobody else joined the call");
            }
            if call.roster_readable
                && call.others_seen
                && call.others == 0
                && call
                    .alone_since
                    .is_some_and(|a| now.duration_since(a) >= ms(limits.alone_ms))
            {
                return Step::Leave(Ended, AloneTooLong, "alone in the call after everyone left");
            }
            let active = call.last_activity.map_or(since, |a| a.max(since));
            if now.duration_since(active) >= ms(limits.silence_ms) {
                return Step::Leave(Ended, SilenceTooLong, "no sound and nobody speaking");
            }
            match (p.call_controls, absent_since) {
                (true, Some(_)) => Step::Enter(Phase::InCall {
                    since,
                    absent_since: None,
                }),
                (true, None) => Step::Wait,
                (false, None) => Step::Enter(Phase::InCall {
                    since,
                    absent_since: Some(now),
                }),
                (false, Some(a)) if now.duration_since(a) >= ABSENCE_DEBOUNCE => {
                    Step::Finish(Ended, MeetingEnded, "the call controls disappeared")
                }
                (false, Some(_)) => Step::Wait,
            }
        }
        Phase::Joining | Phase::Lobby { .. } => {
            if p.denied {
                return Step::Finish(
                    Failed,
                    AdmissionDenied,
                    "the host denied the request to join",
                );
            }
            if p.removed {
                return Step::Finish(Failed, Kicked, "removed before admission");
            }
            if p.ended {
                return Step::Finish(Ended, MeetingEnded, "the meeting ended before admission");
            }
            if p.call_controls && !p.lobby {
                return Step::Enter(Phase::InCall {
                    since: now,
                    absent_since: None,
                });
            }
            if let Phase::Lobby { since } = phase {
                if now.duration_since(since) >= ms(limits.lobby_timeout_ms) {
                    return Step::Leave(Failed, LobbyTimeout, "nobody admitted the bot in time");
                }
                return Step::Wait;
            }
            if p.lobby {
                return Step::Enter(Phase::Lobby { since: now });
            }
            if now.duration_since(started) >= ms(limits.join_timeout_ms) {
                return Step::Finish(
                    Failed,
                    JoinTimeout,
                    "the join flow did not complete in time",
                );
            }
            let recent = |target| {
                clicks
                    .last(target)
                    .is_some_and(|(at, _)| now.duration_since(at) < RECLICK)
            };
            // Banners, notices and pre-join choices first: they may cover
            // the rest, and a permission or an audio choice left unanswered
            // can mean no audio in the call.
            if p.pre_join_button {
                match clicks.last("prejoin") {
                    Some((at, _)) if now.duration_since(at) < PREJOIN_SETTLE => {
                        return Step::Wait;
                    }
                    Some((_, n)) if n >= PREJOIN_TRIES => {}
                    _ => return Step::Click("prejoin"),
                }
            }
            if p.name_input {
                return Step::TypeName;
            }
            // Microphone and camera go off before the bot asks to join.
            for (on, target) in [(p.mic_on, "mic"), (p.camera_on, "camera")] {
                if !on {
                    continue;
                }
                match clicks.last(target) {
                    // The toggle is given time to show its new state.
                    _ if recent(target) => return Step::Wait,
                    Some((_, n)) if n >= TOGGLE_TRIES => {}
                    _ => return Step::Click(target),
                }
            }
            if p.join_button && !recent("join") {
                return Step::Click("join");
            }
            Step::Wait
        }
    }
}

/// Warns when the platform shows someone speaking but no sound reaches the
/// bot (the silent-bot failure), and says when sound comes back.
#[derive(Debug, Default)]
pub(crate) struct AudioGuard {
    unheard: Duration,
    warned: bool,
    last: Option<Instant>,
}

impl AudioGuard {
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        someone_speaking: bool,
        sound: bool,
        limit: Duration,
    ) -> Option<WarningCode> {
        let dt = self.last.map_or(Duration::ZERO, |l| now.duration_since(l));
        self.last = Some(now);
        if sound {
            self.unheard = Duration::ZERO;
            if std::mem::take(&mut self.warned) {
                return Some(WarningCode::AudioRestored);
            }
            return None;
        }
        if someone_speaking {
            self.unheard += dt;
            if self.unheard >= limit && !self.warned {
                self.warned = true;
                return Some(WarningCode::NoAudio);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
