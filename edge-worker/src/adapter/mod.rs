//! Platform adapters: how a bot gets from a meeting link to the call and
//! notices when it is over. The page is read by one probe script against a
//! per-platform table (see `tables.rs`); what to do next is decided by
//! [`next_step`], a pure function tested on its own.
//!
//! Admission is detected positively: a bot is IN_CALL only when the call's
//! own controls are on screen, never because the lobby text went away.

mod capture;
mod tables;

use std::time::{Duration, Instant};

use attache_protocol::{Assignment, BotStatus, SessionLimits, StatusReason};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::browser::{BotContext, BrowserPool};
use crate::session::Reporter;

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
    pub denied: bool,
    pub removed: bool,
    pub ended: bool,
    pub not_found: bool,
    pub sign_in: bool,
    pub blocked: bool,
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

/// The next move, from the page and the clocks.
pub(crate) fn next_step(
    phase: Phase,
    p: &Probe,
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
    let path = browser
        .recordings_dir()
        .join(format!("{}-{}.ogg", a.bot_id, a.generation));
    let capture = match capture::start(&ctx.page, path, browser.metrics.clone()).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(bot_id = %a.bot_id, error = %e, "audio capture unavailable");
            None
        }
    };
    let outcome = drive(&ctx, a, reporter, cancel).await;
    ctx.close().await;
    if let Some(c) = capture {
        let counters = c.counters.clone();
        let path = c.path.clone();
        match c.finish().await {
            Ok(stats) => {
                browser
                    .metrics
                    .recorded_seconds
                    .inc_by(stats.duration_ms() / 1000);
                tracing::info!(
                bot_id = %a.bot_id,
                path = %path.display(),
                duration_ms = stats.duration_ms(),
                frames = counters.frames.load(std::sync::atomic::Ordering::Relaxed),
                corrupt = counters.corrupt.load(std::sync::atomic::Ordering::Relaxed),
                dropped = counters.dropped.load(std::sync::atomic::Ordering::Relaxed),
                "recording closed"
                )
            }
            Err(e) => tracing::warn!(bot_id = %a.bot_id, error = %e, "recording failed"),
        }
    }
    outcome
}

async fn drive(
    ctx: &BotContext,
    a: &Assignment,
    reporter: &Reporter,
    cancel: CancellationToken,
) -> Outcome {
    let table = tables::table(a.platform);
    let table_json = serde_json::to_string(table).expect("table serializes");
    let probe_expr = format!("({PROBE_JS})({table_json})");
    let url = tables::start_url(a.platform, &a.meeting_url);
    let page_lost = |e: &dyn std::fmt::Display| {
        (
            BotStatus::Failed,
            StatusReason::PlatformError,
            Some(format!("browser page lost: {e}")),
        )
    };
    let started = Instant::now();
    let join_timeout = Duration::from_millis(a.limits.join_timeout_ms);
    tokio::select! {
        _ = cancel.cancelled() => return (BotStatus::Ended, StatusReason::LeaveRequested, None),
        r = tokio::time::timeout(join_timeout, ctx.page.goto(url.as_str())) => match r {
            Err(_) => return (BotStatus::Failed, StatusReason::JoinTimeout, Some("the meeting page did not load".into())),
            Ok(Err(e)) => return (BotStatus::Failed, StatusReason::PlatformError, Some(format!("cannot open the meeting page: {e}"))),
            Ok(Ok(_)) => {}
        },
    }
    let mut phase = Phase::Joining;
    let mut last_click = None;
    loop {
        if cancel.is_cancelled() {
            if matches!(phase, Phase::InCall { .. }) {
                reporter.status(BotStatus::Leaving).await;
            }
            click(ctx, "leave").await;
            return (BotStatus::Ended, StatusReason::LeaveRequested, None);
        }
        let probe: Probe = match ctx.page.evaluate(probe_expr.as_str()).await {
            Ok(v) => match v.into_value() {
                Ok(p) => p,
                Err(e) => return page_lost(&e),
            },
            Err(e) => return page_lost(&e),
        };
        let now = Instant::now();
        match next_step(phase, &probe, started, now, last_click, &a.limits) {
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
                        reporter.status(BotStatus::InCall).await
                    }
                    (Phase::Joining, Phase::Lobby { .. }) => {
                        reporter.status(BotStatus::WaitingRoom).await
                    }
                    _ => {}
                }
                phase = next;
            }
            Step::Finish(status, reason, detail) => return (status, reason, Some(detail.into())),
            Step::Leave(status, reason, detail) => {
                if matches!(phase, Phase::InCall { .. }) {
                    reporter.status(BotStatus::Leaving).await;
                }
                click(ctx, "leave").await;
                return (status, reason, Some(detail.into()));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
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
        }
    }

    fn step(phase: Phase, p: Probe, t0: Instant, after_ms: u64) -> Step {
        next_step(
            phase,
            &p,
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
}
