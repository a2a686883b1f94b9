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
    pub in_call: bool,
    pub leave_button: bool,
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
            match (p.in_call, absent_since) {
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
            if p.in_call {
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
mod tests {
    use super::*;

    fn limits() -> SessionLimits {
        SessionLimits {
            join_timeout_ms: 10_000,
            lobby_timeout_ms: 5_000,
            max_duration_ms: 60_000,
            nobody_joined_ms: 20_000,
            alone_ms: 7_000,
            silence_ms: 30_000,
            no_audio_warning_ms: 4_000,
        }
    }

    fn step(phase: Phase, p: Probe, t0: Instant, after_ms: u64) -> Step {
        next_step(
            phase,
            &p,
            &CallSignals::default(),
            t0,
            t0 + Duration::from_millis(after_ms),
            &Clicks::default(),
            &limits(),
        )
    }

    #[test]
    fn join_flow_types_name_then_asks() {
        let t0 = Instant::now();
        let p = Probe {
            name_input: true,
            join_button: true,
            ..Default::default()
        };
        assert_eq!(step(Phase::Joining, p, t0, 100), Step::TypeName);
        let p = Probe {
            name_filled: true,
            join_button: true,
            ..Default::default()
        };
        assert_eq!(step(Phase::Joining, p, t0, 200), Step::Click("join"));
        let mut clicks = Clicks::default();
        clicks.record("join", t0 + Duration::from_millis(200));
        let clicked = next_step(
            Phase::Joining,
            &p,
            &CallSignals::default(),
            t0,
            t0 + Duration::from_millis(300),
            &clicks,
            &limits(),
        );
        assert_eq!(clicked, Step::Wait, "no click storm");
    }

    #[test]
    fn pre_join_choices_are_all_made_before_joining() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut clicks = Clicks::default();
        let mut decide = |p: Probe, ms: u64| {
            let s = next_step(
                Phase::Joining,
                &p,
                &CallSignals::default(),
                t0,
                at(ms),
                &clicks,
                &limits(),
            );
            if let Step::Click(target) = s {
                clicks.record(target, at(ms));
            }
            s
        };
        let banner = Probe {
            name_filled: true,
            join_button: true,
            pre_join_button: true,
            ..Default::default()
        };
        // A cookie banner, then a permission dialog: both before the join.
        assert_eq!(decide(banner, 0), Step::Click("prejoin"));
        assert_eq!(decide(banner, 100), Step::Wait);
        assert_eq!(decide(banner, 600), Step::Click("prejoin"));
        let clear = Probe {
            pre_join_button: false,
            ..banner
        };
        assert_eq!(decide(clear, 700), Step::Click("join"));
        // One that never goes away is tried a few times, then left.
        let mut clicks = Clicks::default();
        let mut joined_at = None;
        for ms in (0..10_000).step_by(100) {
            let s = next_step(
                Phase::Joining,
                &banner,
                &CallSignals::default(),
                t0,
                at(ms),
                &clicks,
                &limits(),
            );
            match s {
                Step::Click("join") => {
                    joined_at = Some(ms);
                    break;
                }
                Step::Click(target) => clicks.record(target, at(ms)),
                _ => {}
            }
        }
        assert_eq!(joined_at, Some(u64::from(PREJOIN_TRIES) * 500));
    }

    #[test]
    fn microphone_and_camera_go_off_before_joining() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut clicks = Clicks::default();
        let mut decide = |p: Probe, ms: u64| {
            let s = next_step(
                Phase::Joining,
                &p,
                &CallSignals::default(),
                t0,
                at(ms),
                &clicks,
                &limits(),
            );
            if let Step::Click(target) = s {
                clicks.record(target, at(ms));
            }
            s
        };
        let both = Probe {
            name_filled: true,
            join_button: true,
            mic_on: true,
            camera_on: true,
            ..Default::default()
        };
        assert_eq!(decide(both, 0), Step::Click("mic"));
        // The toggle has not shown its new state yet: not clicked twice.
        assert_eq!(decide(both, 50), Step::Wait);
        let camera = Probe {
            mic_on: false,
            ..both
        };
        assert_eq!(decide(camera, 100), Step::Click("camera"));
        let off = Probe {
            camera_on: false,
            ..camera
        };
        assert_eq!(decide(off, 150), Step::Click("join"));
        // A camera toggle that never turns off is tried twice, then left.
        let mut clicks = Clicks::default();
        let stuck = Probe {
            mic_on: false,
            ..both
        };
        let mut steps = Vec::new();
        for ms in (0..8_000).step_by(500) {
            let s = next_step(
                Phase::Joining,
                &stuck,
                &CallSignals::default(),
                t0,
                at(ms),
                &clicks,
                &limits(),
            );
            if let Step::Click(target) = s {
                clicks.record(target, at(ms));
                steps.push((ms, target));
            }
        }
        assert_eq!(
            steps[..3],
            [(0, "camera"), (3_000, "camera"), (6_000, "join")],
            "{steps:?}"
        );
    }

    #[test]
    fn lobby_and_admission_are_detected_positively() {
        let t0 = Instant::now();
        let lobby = Probe {
            lobby: true,
            ..Default::default()
        };
        assert!(matches!(
            step(Phase::Joining, lobby, t0, 0),
            Step::Enter(Phase::Lobby { .. })
        ));
        // The lobby text going away is not admission.
        assert_eq!(
            step(Phase::Lobby { since: t0 }, Probe::default(), t0, 1000),
            Step::Wait
        );
        let call = Probe {
            in_call: true,
            ..Default::default()
        };
        assert!(matches!(
            step(Phase::Lobby { since: t0 }, call, t0, 1000),
            Step::Enter(Phase::InCall { .. })
        ));
    }

    #[test]
    fn failures_carry_their_true_reason() {
        let t0 = Instant::now();
        let lobby = Phase::Lobby { since: t0 };
        let in_call = Phase::InCall {
            since: t0,
            absent_since: None,
        };
        let table = [
            (
                lobby,
                Probe {
                    denied: true,
                    ..Default::default()
                },
                10,
                StatusReason::AdmissionDenied,
            ),
            (
                Phase::Joining,
                Probe {
                    not_found: true,
                    ..Default::default()
                },
                10,
                StatusReason::MeetingNotFound,
            ),
            (
                Phase::Joining,
                Probe {
                    blocked: true,
                    ..Default::default()
                },
                10,
                StatusReason::BlockedByPlatform,
            ),
            (
                Phase::Joining,
                Probe {
                    sign_in: true,
                    ..Default::default()
                },
                10,
                StatusReason::SignInRequired,
            ),
            (
                Phase::Joining,
                Probe {
                    passcode: true,
                    ..Default::default()
                },
                10,
                StatusReason::WrongPasscode,
            ),
            (
                Phase::Joining,
                Probe::default(),
                10_000,
                StatusReason::JoinTimeout,
            ),
            (
                lobby,
                Probe {
                    lobby: true,
                    ..Default::default()
                },
                5_000,
                StatusReason::LobbyTimeout,
            ),
            (
                in_call,
                Probe {
                    in_call: true,
                    removed: true,
                    ..Default::default()
                },
                10,
                StatusReason::Kicked,
            ),
            (
                in_call,
                Probe {
                    ended: true,
                    ..Default::default()
                },
                10,
                StatusReason::MeetingEnded,
            ),
            (
                in_call,
                Probe {
                    in_call: true,
                    ..Default::default()
                },
                60_000,
                StatusReason::MaxDuration,
            ),
        ];
        for (phase, p, after, want) in table {
            match step(phase, p, t0, after) {
                Step::Finish(_, r, _) | Step::Leave(_, r, _) => assert_eq!(r, want, "{p:?}"),
                other => panic!("{p:?}: expected {want:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn flickering_call_ui_is_debounced() {
        let t0 = Instant::now();
        let phase = Phase::InCall {
            since: t0,
            absent_since: None,
        };
        let gone = Probe::default();
        let Step::Enter(p1) = step(phase, gone, t0, 1_000) else {
            panic!()
        };
        assert_eq!(step(p1, gone, t0, 2_000), Step::Wait);
        let back = Probe {
            in_call: true,
            ..Default::default()
        };
        assert_eq!(step(p1, back, t0, 2_500), Step::Enter(phase));
        assert!(matches!(
            step(p1, gone, t0, 4_100),
            Step::Finish(BotStatus::Ended, StatusReason::MeetingEnded, _)
        ));
    }

    #[test]
    fn auto_leave_rules_end_the_call_with_their_reasons() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let phase = Phase::InCall {
            since: t0,
            absent_since: None,
        };
        let p = Probe {
            in_call: true,
            ..Default::default()
        };
        let decide = |call: CallSignals, after: u64| {
            next_step(
                phase,
                &p,
                &call,
                t0,
                at(after),
                &Clicks::default(),
                &limits(),
            )
        };
        let busy = |ms| Some(at(ms));
        // Nobody else ever came.
        let empty = CallSignals {
            roster_readable: true,
            last_activity: busy(19_000),
            ..Default::default()
        };
        assert_eq!(decide(empty, 19_999), Step::Wait);
        assert!(matches!(
            decide(empty, 20_000),
            Step::Leave(BotStatus::Ended, StatusReason::NobodyJoined, _)
        ));
        // An unreadable roster is not an empty room.
        let blind = CallSignals {
            roster_readable: false,
            ..empty
        };
        assert_eq!(decide(blind, 25_000), Step::Wait);
        // Everyone left.
        let left = CallSignals {
            roster_readable: true,
            others: 0,
            others_seen: true,
            alone_since: Some(at(10_000)),
            last_activity: busy(16_000),
        };
        assert_eq!(decide(left, 16_999), Step::Wait);
        assert!(matches!(
            decide(left, 17_000),
            Step::Leave(BotStatus::Ended, StatusReason::AloneTooLong, _)
        ));
        // People present, but silence.
        let quiet = CallSignals {
            roster_readable: true,
            others: 2,
            others_seen: true,
            alone_since: None,
            last_activity: busy(5_000),
        };
        assert_eq!(decide(quiet, 34_999), Step::Wait);
        assert!(matches!(
            decide(quiet, 35_000),
            Step::Leave(BotStatus::Ended, StatusReason::SilenceTooLong, _)
        ));
    }

    #[test]
    fn the_silent_bot_guard_warns_once_and_clears() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(4);
        let mut g = AudioGuard::default();
        let mut warnings = Vec::new();
        for i in 0..=50u64 {
            let now = t0 + Duration::from_millis(i * 200);
            // Someone speaks throughout; sound arrives only after 8 s.
            let sound = i * 200 >= 8_000;
            if let Some(w) = g.tick(now, true, sound, limit) {
                warnings.push((i * 200, w));
            }
        }
        assert_eq!(
            warnings,
            vec![
                (4_000, WarningCode::NoAudio),
                (8_000, WarningCode::AudioRestored)
            ]
        );
        // Silence with nobody speaking is not a fault.
        let mut g = AudioGuard::default();
        for i in 0..100u64 {
            assert_eq!(
                g.tick(t0 + Duration::from_millis(i * 200), false, false, limit),
                None
            );
        }
    }
}
