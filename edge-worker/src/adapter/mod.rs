//! Platform adapters: how a bot gets from a meeting link to the call and
//! notices when it is over. The page is read by one probe script against a
//! per-platform table (see `tables.rs`); what to do next is decided by
//! [`next_step`], a pure function tested on its own.
//!
//! Admission is detected positively: a bot is IN_CALL only when the call's
//! own controls are on screen, never because the lobby text went away.

mod capture;
mod roster;
mod tables;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use attache_protocol::{
    Assignment, BotStatus, ResultBody, SessionLimits, StatusReason, WarningCode,
};
use chromiumoxide::cdp::browser_protocol::inspector::{
    EnableParams as InspectorEnable, EventTargetCrashed,
};
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::browser::{BotContext, BrowserPool};
use crate::session::Reporter;
use capture::Capture;
pub(crate) use capture::now_ms;
use roster::{ChatLine, Person, Roster};

const PROBE_JS: &str = include_str!("probe.js");
const POLL: Duration = Duration::from_millis(200);
/// Buttons are clicked again only after this long without effect.
const RECLICK: Duration = Duration::from_secs(3);
/// The call UI may flicker (auto-hiding toolbars): absence must last this
/// long before it counts.
const ABSENCE_DEBOUNCE: Duration = Duration::from_secs(3);

/// What the probe saw on the page.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Probe {
    pub name_input: bool,
    pub name_filled: bool,
    pub join_button: bool,
    pub pre_join_button: bool,
    pub lobby: bool,
    pub in_call: bool,
    pub leave_button: bool,
    pub chat_button: bool,
    pub denied: bool,
    pub removed: bool,
    pub ended: bool,
    pub not_found: bool,
    pub sign_in: bool,
    pub blocked: bool,
}

/// One read of the page: the flags the join flow runs on, and what the
/// roster and chat show.
#[derive(Debug, Clone, Default, Deserialize)]
struct PageRead {
    #[serde(flatten)]
    probe: Probe,
    #[serde(default)]
    people: Vec<Person>,
    #[serde(default)]
    chat: Vec<ChatLine>,
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

/// The next move, from the page, the call and the clocks.
pub(crate) fn next_step(
    phase: Phase,
    p: &Probe,
    call: &CallSignals,
    started: Instant,
    now: Instant,
    last_click: Option<Instant>,
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
            let can_click = last_click.is_none_or(|t| now.duration_since(t) >= RECLICK);
            if p.name_input {
                return Step::TypeName;
            }
            if p.pre_join_button && can_click {
                return Step::Click("prejoin");
            }
            if p.join_button && can_click {
                return Step::Click("join");
            }
            Step::Wait
        }
    }
}

type Outcome = (BotStatus, StatusReason, Option<String>);

/// Runs one bot from its link to the end of its meeting.
pub(crate) async fn run(
    browser: &BrowserPool,
    a: &Assignment,
    reporter: &Reporter,
    cancel: CancellationToken,
) -> Outcome {
    let ctx = match browser.context().await {
        Ok(c) => c,
        Err(e) => {
            return (
                BotStatus::Failed,
                StatusReason::PlatformError,
                Some(e.to_string()),
            );
        }
    };
    let emitter = reporter.emitter();
    let speakers = crate::transcribe::SpeakerLog::default();
    let transcriber = match &a.transcription {
        None => None,
        Some(spec) => match browser.stt.build(spec).await {
            Ok(engine) => Some(capture::Transcriber {
                engine,
                output: crate::transcribe::Output::new(
                    emitter.clone(),
                    speakers.clone(),
                    spec.language.clone(),
                    browser.metrics.clone(),
                ),
            }),
            Err(e) => {
                tracing::warn!(bot_id = %a.bot_id, provider = spec.provider.kind(), error = %e, "no transcription for this bot");
                browser.metrics.transcription_errors.inc();
                emitter
                    .send(
                        now_ms(),
                        ResultBody::Warning {
                            code: WarningCode::TranscriptionFailed,
                            detail: e.to_string(),
                        },
                    )
                    .await;
                None
            }
        },
    };
    let capture = match capture::start(
        &ctx.page,
        emitter.clone(),
        browser.metrics.clone(),
        transcriber,
    )
    .await
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(bot_id = %a.bot_id, error = %e, "audio capture unavailable");
            emitter
                .send(
                    now_ms(),
                    ResultBody::Warning {
                        code: WarningCode::CaptureFailed,
                        detail: "audio capture could not be installed in the page".into(),
                    },
                )
                .await;
            None
        }
    };
    let outcome = drive(
        &ctx,
        a,
        reporter,
        capture.as_ref(),
        &speakers,
        browser,
        cancel,
    )
    .await;
    let left_at = now_ms();
    ctx.close().await;
    if let Some(c) = capture {
        let counters = c.counters.clone();
        match c.finish(left_at).await {
            Ok(stats) => {
                browser
                    .metrics
                    .recorded_seconds
                    .inc_by(stats.duration_ms() / 1000);
                tracing::info!(
                    bot_id = %a.bot_id,
                    duration_ms = stats.duration_ms(),
                    frames = counters.frames.load(Ordering::Relaxed),
                    corrupt = counters.corrupt.load(Ordering::Relaxed),
                    dropped = counters.dropped.load(Ordering::Relaxed),
                    "recording closed"
                )
            }
            Err(e) => tracing::warn!(bot_id = %a.bot_id, error = %e, "recording failed"),
        }
    }
    outcome
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

/// Sound counts as current for this long after the last loud frame.
const SOUND_FRESH_MS: i64 = 1_500;

async fn drive(
    ctx: &BotContext,
    a: &Assignment,
    reporter: &Reporter,
    capture: Option<&Capture>,
    speakers: &crate::transcribe::SpeakerLog,
    browser: &BrowserPool,
    cancel: CancellationToken,
) -> Outcome {
    let table = tables::table(a.platform);
    let table_json = serde_json::to_string(table).expect("table serializes");
    let probe_expr = format!("({PROBE_JS})({table_json})");
    let url = tables::start_url(a.platform, &a.meeting_url);
    let emitter = reporter.emitter();
    let page_lost = |e: &dyn std::fmt::Display| {
        (
            BotStatus::Failed,
            StatusReason::PlatformError,
            Some(format!("browser page lost: {e}")),
        )
    };
    // A renderer crash ends this bot alone, with the true reason.
    let _ = ctx.page.execute(InspectorEnable::default()).await;
    let mut crashed = match ctx.page.event_listener::<EventTargetCrashed>().await {
        Ok(l) => l,
        Err(e) => return page_lost(&e),
    };
    let crash = || {
        (
            BotStatus::Failed,
            StatusReason::PlatformError,
            Some("the meeting page crashed (renderer process lost)".to_string()),
        )
    };
    let started = Instant::now();
    let join_timeout = Duration::from_millis(a.limits.join_timeout_ms);
    tokio::select! {
        _ = cancel.cancelled() => return (BotStatus::Ended, StatusReason::LeaveRequested, None),
        _ = crashed.next() => return crash(),
        r = tokio::time::timeout(join_timeout, ctx.page.goto(url.as_str())) => match r {
            Err(_) => return (BotStatus::Failed, StatusReason::JoinTimeout, Some("the meeting page did not load".into())),
            Ok(Err(e)) => return (BotStatus::Failed, StatusReason::PlatformError, Some(format!("cannot open the meeting page: {e}"))),
            Ok(Ok(_)) => {}
        },
    }
    let mut phase = Phase::Joining;
    let mut last_click = None;
    let mut roster = Roster::default();
    let mut call = CallSignals::default();
    let mut guard = AudioGuard::default();
    let mut chat_opened = false;
    let mut capture_errors = 0;
    let no_audio_limit = Duration::from_millis(a.limits.no_audio_warning_ms);
    let outcome = loop {
        if cancel.is_cancelled() {
            if matches!(phase, Phase::InCall { .. }) {
                reporter.status(BotStatus::Leaving).await;
            }
            click(ctx, "leave").await;
            break (BotStatus::Ended, StatusReason::LeaveRequested, None);
        }
        let read = tokio::select! {
            _ = crashed.next() => break crash(),
            r = ctx.page.evaluate(probe_expr.as_str()) => r,
        };
        let read: PageRead = match read {
            Ok(v) => match v.into_value() {
                Ok(p) => p,
                Err(e) => break page_lost(&e),
            },
            Err(e) => break page_lost(&e),
        };
        let now = Instant::now();
        if let Phase::InCall { .. } = phase {
            let at = now_ms();
            for (at_ms, body) in roster.observe(at, &read.people, &read.chat) {
                speakers.observe(at_ms, &body);
                emitter.send(at_ms, body).await;
            }
            let was_alone = call.others == 0;
            call.roster_readable = roster.readable;
            call.others = roster.others();
            call.others_seen = roster.others_seen;
            call.alone_since = match (call.others, was_alone) {
                (0, true) => call.alone_since.or(Some(now)),
                (0, false) => Some(now),
                _ => None,
            };
            let sound = capture.is_some_and(|c| {
                at - c.counters.last_sound_ms.load(Ordering::Relaxed) < SOUND_FRESH_MS
            });
            if sound || roster.anyone_speaking() {
                call.last_activity = Some(now);
            }
            if let Some(code) = guard.tick(now, roster.anyone_speaking(), sound, no_audio_limit) {
                let detail = match code {
                    WarningCode::NoAudio => format!(
                        "someone has been shown speaking for {} s but no audio reaches the bot",
                        no_audio_limit.as_secs()
                    ),
                    _ => "audio reaches the bot again".to_string(),
                };
                if code == WarningCode::NoAudio {
                    browser.metrics.no_audio_warnings.inc();
                }
                tracing::warn!(bot_id = %a.bot_id, code = code.as_str(), "{detail}");
                emitter.send(at, ResultBody::Warning { code, detail }).await;
            }
            if let Some(c) = capture {
                let errors = c.counters.errors.load(Ordering::Relaxed);
                if errors > 0 && capture_errors == 0 {
                    emitter
                        .send(
                            at,
                            ResultBody::Warning {
                                code: WarningCode::CaptureFailed,
                                detail: "the page could not start audio capture".into(),
                            },
                        )
                        .await;
                }
                capture_errors = errors;
            }
            if read.probe.chat_button && !chat_opened {
                click(ctx, "chat").await;
                chat_opened = true;
            }
        }
        match next_step(
            phase,
            &read.probe,
            &call,
            started,
            now,
            last_click,
            &a.limits,
        ) {
            Step::Wait => {}
            Step::TypeName => {
                if let Err(e) = type_name(ctx, &a.bot_name).await {
                    tracing::debug!(error = %e, "typing the name failed; retrying");
                }
            }
            Step::Click(target) => {
                click(ctx, target).await;
                last_click = Some(now);
            }
            Step::Enter(next) => {
                match (phase, next) {
                    (Phase::Lobby { .. } | Phase::Joining, Phase::InCall { .. }) => {
                        if let Some(c) = capture {
                            c.begin(now_ms());
                        }
                        reporter.status(BotStatus::InCall).await
                    }
                    (Phase::Joining, Phase::Lobby { .. }) => {
                        reporter.status(BotStatus::WaitingRoom).await
                    }
                    _ => {}
                }
                phase = next;
            }
            Step::Finish(status, reason, detail) => break (status, reason, Some(detail.into())),
            Step::Leave(status, reason, detail) => {
                if matches!(phase, Phase::InCall { .. }) {
                    reporter.status(BotStatus::Leaving).await;
                }
                click(ctx, "leave").await;
                break (status, reason, Some(detail.into()));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    };
    for (at_ms, body) in roster.close(now_ms()) {
        speakers.observe(at_ms, &body);
        emitter.send(at_ms, body).await;
    }
    outcome
}

async fn type_name(ctx: &BotContext, name: &str) -> chromiumoxide::error::Result<()> {
    let el = ctx.page.find_element("[data-attache=\"name\"]").await?;
    el.click().await?;
    el.type_str(name).await?;
    Ok(())
}

async fn click(ctx: &BotContext, target: &str) {
    let sel = format!("[data-attache=\"{target}\"]");
    match ctx.page.find_element(sel).await {
        Ok(el) => {
            if let Err(e) = el.click().await {
                tracing::debug!(target, error = %e, "click failed");
            }
        }
        Err(e) => tracing::debug!(target, error = %e, "nothing to click"),
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
            None,
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
        let clicked = next_step(
            Phase::Joining,
            &p,
            &CallSignals::default(),
            t0,
            t0 + Duration::from_millis(300),
            Some(t0 + Duration::from_millis(200)),
            &limits(),
        );
        assert_eq!(clicked, Step::Wait, "no click storm");
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
            next_step(phase, &p, &call, t0, at(after), None, &limits())
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
