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

/// A bot in its join flow that clicks what the flow says, as drive does.
struct Joiner {
    t0: Instant,
    clicks: Clicks,
}

impl Joiner {
    fn new() -> Joiner {
        Joiner {
            t0: Instant::now(),
            clicks: Clicks::default(),
        }
    }

    /// The step at `ms` into the join, its click recorded.
    fn step(&mut self, p: Probe, ms: u64) -> Step {
        let now = self.t0 + Duration::from_millis(ms);
        let s = next_step(
            Phase::Joining,
            &p,
            &CallSignals::default(),
            self.t0,
            now,
            &self.clicks,
            &limits(),
        );
        if let Step::Click(target) = s {
            self.clicks.record(target, now);
        }
        s
    }

    /// The clicks the flow makes, reading `p` every `every_ms` for `for_ms`.
    fn clicks_over(&mut self, p: Probe, for_ms: u64, every_ms: usize) -> Vec<(u64, &'static str)> {
        (0..for_ms)
            .step_by(every_ms)
            .filter_map(|ms| match self.step(p, ms) {
                Step::Click(target) => Some((ms, target)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn pre_join_choices_are_all_made_before_joining() {
    let mut bot = Joiner::new();
    let banner = Probe {
        name_filled: true,
        join_button: true,
        pre_join_button: true,
        ..Default::default()
    };
    // A cookie banner, then a permission dialog: both before the join.
    assert_eq!(bot.step(banner, 0), Step::Click("prejoin"));
    assert_eq!(bot.step(banner, 100), Step::Wait);
    assert_eq!(bot.step(banner, 600), Step::Click("prejoin"));
    let clear = Probe {
        pre_join_button: false,
        ..banner
    };
    assert_eq!(bot.step(clear, 700), Step::Click("join"));
    // One that never goes away is tried a few times, then left.
    let clicks = Joiner::new().clicks_over(banner, 10_000, 100);
    let joined_at = clicks.iter().find(|(_, t)| *t == "join").map(|(ms, _)| *ms);
    assert_eq!(
        joined_at,
        Some(u64::from(PREJOIN_TRIES) * 500),
        "{clicks:?}"
    );
}

#[test]
fn microphone_and_camera_go_off_before_joining() {
    let mut bot = Joiner::new();
    let both = Probe {
        name_filled: true,
        join_button: true,
        mic_on: true,
        camera_on: true,
        ..Default::default()
    };
    assert_eq!(bot.step(both, 0), Step::Click("mic"));
    // The toggle has not shown its new state yet: not clicked twice.
    assert_eq!(bot.step(both, 50), Step::Wait);
    let camera = Probe {
        mic_on: false,
        ..both
    };
    assert_eq!(bot.step(camera, 100), Step::Click("camera"));
    let off = Probe {
        camera_on: false,
        ..camera
    };
    assert_eq!(bot.step(off, 150), Step::Click("join"));
    // A camera toggle that never turns off is tried twice, then left.
    let steps = Joiner::new().clicks_over(camera, 8_000, 500);
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
        call_controls: true,
        ..Default::default()
    };
    assert!(matches!(
        step(Phase::Lobby { since: t0 }, call, t0, 1000),
        Step::Enter(Phase::InCall { .. })
    ));
    // Meet's lobby has a "Leave call" button: controls beside a lobby text
    // are the lobby still...
    let controls_in_lobby = Probe {
        call_controls: true,
        lobby: true,
        ..Default::default()
    };
    assert_eq!(
        step(Phase::Lobby { since: t0 }, controls_in_lobby, t0, 1000),
        Step::Wait
    );
    // ...while in the call a lobby's words (a caption of "I will let you
    // in", a chat line) do not take the bot out of it.
    let in_call = Phase::InCall {
        since: t0,
        absent_since: None,
    };
    assert_eq!(step(in_call, controls_in_lobby, t0, 10_000), Step::Wait);
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
                call_controls: true,
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
                call_controls: true,
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
        call_controls: true,
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
        call_controls: true,
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
