//! The page loop of one bot: opens the meeting, reads the page every
//! [`POLL`] ([`JOIN_POLL`] while joining, [`ACTED_POLL`] after an action
//! there), carries out the flow's next
//! step, and while in the call turns the roster, the chat and the sound
//! into results. It ends on the flow's decision, a leave request, a crashed
//! page or one stalled for good, and never decides a status by itself:
//! that is [`next_step`]'s, corrected by [`Stalls::blame`] when the page
//! was stalled just before.
//!
//! The bot holds one of the worker's joining permits from before its page
//! loads until it is in the lobby or the call, so that only so many pages
//! load at once and bots already in calls keep their audio.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use attache_protocol::{Assignment, BotStatus, ResultBody, StatusReason, WarningCode};
use futures::StreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::flow::{AudioGuard, CallSignals, Clicks, Outcome, Phase, Step, next_step};
use super::page::{self, PageRead};
use super::roster::Roster;
use super::stall::{Stall, Stalls};
use super::tables;
use crate::browser::BotContext;
use crate::capture::Capture;
use crate::load::Load;
use crate::metrics::Metrics;
use crate::results::{Emitter, Reporter, now_ms};
use crate::transcribe::SpeakerLog;

/// How often the mouse is moved while the call's controls are not on
/// screen.
const NUDGE_EVERY: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(200);
/// Joining pages are few (see the module's note): they are read faster.
const JOIN_POLL: Duration = Duration::from_millis(50);
/// After typing or a click while joining, the page is read again this
/// soon: what the action shows (the next button, the lobby, the call) is
/// usually there at once.
const ACTED_POLL: Duration = Duration::from_millis(10);
/// How often a read still outstanding is looked at.
const STALL_TICK: Duration = Duration::from_millis(500);
/// Sound counts as current for this long after the last loud frame.
const SOUND_FRESH_MS: i64 = 1_500;

/// One bot as its page loop sees it: its page and assignment, where its
/// results go, and what its capture hears.
pub(crate) struct Bot<'a> {
    pub ctx: &'a BotContext,
    pub a: &'a Assignment,
    pub reporter: &'a Reporter,
    pub emitter: Emitter,
    pub capture: Option<&'a Capture>,
    pub speakers: &'a SpeakerLog,
    pub metrics: &'a Metrics,
    pub load: &'a Arc<Load>,
}

fn page_lost(e: &dyn std::fmt::Display) -> Outcome {
    (
        BotStatus::Failed,
        StatusReason::PlatformError,
        Some(format!("browser page lost: {e}")),
    )
}

fn crashed() -> Outcome {
    (
        BotStatus::Failed,
        StatusReason::PlatformError,
        Some("the meeting page crashed (renderer process lost)".to_string()),
    )
}

/// Runs the bot from its meeting link to the end of its call; `joining`
/// is let go once the bot is in the lobby or the call.
pub(crate) async fn drive(
    bot: &Bot<'_>,
    cancel: CancellationToken,
    mut joining: Option<OwnedSemaphorePermit>,
) -> Outcome {
    let (ctx, a) = (bot.ctx, bot.a);
    let probe = page::probe(a.platform);
    let url = tables::start_url(a.platform, &a.meeting_url);
    // A renderer crash ends this bot alone, with the true reason.
    let mut crashes = match page::crashes(ctx).await {
        Ok(l) => l,
        Err(e) => return page_lost(&e),
    };
    let started = Instant::now();
    let join_timeout = Duration::from_millis(a.limits.join_timeout_ms);
    tokio::select! {
        _ = cancel.cancelled() => return (BotStatus::Ended, StatusReason::LeaveRequested, None),
        _ = crashes.next() => return crashed(),
        r = tokio::time::timeout(join_timeout, ctx.page.goto(url.as_str())) => match r {
            Err(_) => return (BotStatus::Failed, StatusReason::JoinTimeout, Some("the meeting page did not load".into())),
            Ok(Err(e)) => return (BotStatus::Failed, StatusReason::PlatformError, Some(format!("cannot open the meeting page: {e}"))),
            Ok(Ok(_)) => {}
        },
    }
    ctx.quiet_network().await;
    let mut phase = Phase::Joining;
    let mut clicks = Clicks::default();
    let (mut nudges, mut last_nudge) = (0, None::<Instant>);
    let mut watch = Watch::new(Duration::from_millis(a.limits.no_audio_warning_ms));
    let mut stalls = Stalls::new(bot.load.clone());
    let outcome = loop {
        if cancel.is_cancelled() {
            if matches!(phase, Phase::InCall { .. }) {
                bot.reporter.status(BotStatus::Leaving).await;
            }
            page::leave(ctx, a.platform, &probe).await;
            break (BotStatus::Ended, StatusReason::LeaveRequested, None);
        }
        let asked = Instant::now();
        let mut reading = std::pin::pin!(page::read(ctx, &probe));
        let read = loop {
            tokio::select! {
                _ = crashes.next() => break None,
                r = &mut reading => break Some(r.map_err(ReadFailed::Page)),
                _ = cancel.cancelled() => break Some(Err(ReadFailed::Cancelled)),
                _ = tokio::time::sleep(STALL_TICK) => {}
            }
            if let Some(given_up) = stalled(bot, &mut stalls, asked.elapsed()).await {
                break Some(Err(given_up));
            }
        };
        let read = match read {
            None => break crashed(),
            Some(Ok(r)) => r,
            Some(Err(ReadFailed::Page(e))) => break page_lost(&e),
            Some(Err(ReadFailed::GivenUp(outcome))) => break outcome,
            // Leaves at the top of the loop.
            Some(Err(ReadFailed::Cancelled)) => continue,
        };
        let now = Instant::now();
        // Answered: the page was behind if its own timers ran late since
        // the last read (a page still loading its scripts may, without
        // being stalled), or its audio is late now.
        let behind = match phase {
            Phase::Joining => Duration::ZERO,
            Phase::Lobby { .. } => Duration::from_millis(read.lag_ms),
            Phase::InCall { .. } => bot
                .capture
                .map_or(Duration::ZERO, audio_late)
                .max(Duration::from_millis(read.lag_ms)),
        };
        if let Some(ReadFailed::GivenUp(outcome)) = stalled(bot, &mut stalls, behind).await {
            break outcome;
        }
        if let Phase::InCall { .. } = phase {
            watch.observe(bot, &read, now).await;
        }
        // No call controls: perhaps only hidden until the mouse moves
        // (Zoom's footer), which is tried before their absence is judged.
        if !read.probe.call_controls
            && last_nudge.is_none_or(|t| now.duration_since(t) >= NUDGE_EVERY)
        {
            nudges += 1;
            last_nudge = Some(now);
            page::wake(ctx, nudges).await;
        }
        let step = next_step(
            phase,
            &read.probe,
            &watch.call,
            started,
            now,
            &clicks,
            &a.limits,
        );
        let acted = matches!(step, Step::TypeName | Step::Click(_));
        match step {
            Step::Wait => {}
            Step::TypeName => {
                if let Err(e) = page::type_name(ctx, &a.bot_name).await {
                    tracing::debug!(error = %e, "typing the name failed; retrying");
                }
            }
            Step::Click(target) => {
                page::click(ctx, target).await;
                clicks.record(target, now);
            }
            Step::Enter(next) => {
                if !matches!(next, Phase::Joining) {
                    joining.take();
                }
                match (phase, next) {
                    (Phase::Lobby { .. } | Phase::Joining, Phase::InCall { .. }) => {
                        if let Some(c) = bot.capture {
                            c.begin(now_ms());
                        }
                        bot.reporter.status(BotStatus::InCall).await
                    }
                    (Phase::Joining, Phase::Lobby { .. }) => {
                        bot.reporter.status(BotStatus::WaitingRoom).await
                    }
                    _ => {}
                }
                phase = next;
            }
            Step::Finish(status, reason, detail) => break (status, reason, Some(detail.into())),
            Step::Leave(status, reason, detail) => {
                if matches!(phase, Phase::InCall { .. }) {
                    bot.reporter.status(BotStatus::Leaving).await;
                }
                page::leave(ctx, a.platform, &probe).await;
                break (status, reason, Some(detail.into()));
            }
        }
        let poll = match phase {
            Phase::Joining if acted => ACTED_POLL,
            Phase::Joining => JOIN_POLL,
            _ => POLL,
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    };
    let outcome = stalls.blame(outcome, Instant::now());
    for (at_ms, body) in watch.roster.close(now_ms()) {
        bot.speakers.observe(at_ms, &body);
        bot.emitter.send(at_ms, body).await;
    }
    outcome
}

/// Why a read of the page gave nothing.
enum ReadFailed {
    Page(super::page::PageError),
    /// The page stalled for good: how the bot ends.
    GivenUp(Outcome),
    /// The bot was asked to leave while waiting.
    Cancelled,
}

/// How late the page's audio is: none has come for this long, once it
/// has begun (the page's worklet hands over a frame every 20 ms, silence
/// included).
fn audio_late(c: &Capture) -> Duration {
    let last = c.counters.last_frame_ms.load(Ordering::Relaxed);
    if last == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(now_ms().saturating_sub(last).max(0) as u64)
}

/// Takes in how far behind the page is: warns `PAGE_STALLED` when a stall
/// begins, and says how the bot ends if it has lasted too long.
async fn stalled(bot: &Bot<'_>, stalls: &mut Stalls, behind: Duration) -> Option<ReadFailed> {
    match stalls.update(behind, Instant::now())? {
        Stall::Began(behind) => {
            bot.metrics.page_stalls.inc();
            let detail = format!(
                "the meeting page has not answered for {:.1} s",
                behind.as_secs_f64()
            );
            tracing::warn!(code = WarningCode::PageStalled.as_str(), "{detail}");
            bot.emitter
                .send(
                    now_ms(),
                    ResultBody::Warning {
                        code: WarningCode::PageStalled,
                        detail,
                    },
                )
                .await;
            None
        }
        Stall::GiveUp(behind) => {
            tracing::warn!(
                secs = behind.as_secs(),
                "the meeting page is unresponsive; leaving"
            );
            Some(ReadFailed::GivenUp(stalls.give_up(behind)))
        }
    }
}

/// What the bot follows while in the call: who is there and speaking, the
/// chat, and whether sound reaches it.
struct Watch {
    roster: Roster,
    call: CallSignals,
    guard: AudioGuard,
    chat_opened: bool,
    people_opened: bool,
    capture_errors: u64,
    no_audio_limit: Duration,
}

impl Watch {
    fn new(no_audio_limit: Duration) -> Watch {
        Watch {
            roster: Roster::default(),
            call: CallSignals::default(),
            guard: AudioGuard::default(),
            chat_opened: false,
            people_opened: false,
            capture_errors: 0,
            no_audio_limit,
        }
    }

    /// Takes in one read of the page in the call: emits what changed and
    /// updates the signals the flow decides on.
    async fn observe(&mut self, bot: &Bot<'_>, read: &PageRead, now: Instant) {
        let at = now_ms();
        for (at_ms, body) in self.roster.observe(at, &read.people, &read.chat) {
            bot.speakers.observe(at_ms, &body);
            bot.emitter.send(at_ms, body).await;
        }
        let call = &mut self.call;
        let was_alone = call.others == 0;
        // Where the platform counts who is there, the tiles on screen may
        // be only some of them: alone only when both say so.
        let counted = read.people_count.map(|n| n.saturating_sub(1) as usize);
        call.roster_readable = self.roster.readable || counted.is_some();
        call.others = self.roster.others().max(counted.unwrap_or(0));
        call.others_seen = call.others_seen || self.roster.others_seen || call.others > 0;
        call.alone_since = match (call.others, was_alone) {
            (0, true) => call.alone_since.or(Some(now)),
            (0, false) => Some(now),
            _ => None,
        };
        let sound = bot.capture.is_some_and(|c| {
            at - c.counters.last_sound_ms.load(Ordering::Relaxed) < SOUND_FRESH_MS
        });
        let speaking = self.roster.anyone_speaking();
        if sound || speaking {
            call.last_activity = Some(now);
        }
        if let Some(code) = self.guard.tick(now, speaking, sound, self.no_audio_limit) {
            let detail = match code {
                WarningCode::NoAudio => format!(
                    "someone has been shown speaking for {} s but no audio reaches the bot",
                    self.no_audio_limit.as_secs()
                ),
                _ => "audio reaches the bot again".to_string(),
            };
            if code == WarningCode::NoAudio {
                bot.metrics.no_audio_warnings.inc();
            }
            tracing::warn!(code = code.as_str(), "{detail}");
            bot.emitter
                .send(at, ResultBody::Warning { code, detail })
                .await;
        }
        if let Some(c) = bot.capture {
            let errors = c.counters.errors.load(Ordering::Relaxed);
            if errors > 0 && self.capture_errors == 0 {
                bot.emitter
                    .send(
                        at,
                        ResultBody::Warning {
                            code: WarningCode::CaptureFailed,
                            detail: "the page could not start audio capture".into(),
                        },
                    )
                    .await;
            }
            self.capture_errors = errors;
        }
        // Notices are acknowledged as they show (a modal one lies over the
        // call); panels are opened once each: where the roster or the chat
        // lives in a closed panel, it is never rendered.
        if read.probe.notice {
            page::click(bot.ctx, "notice").await;
        } else if read.probe.people_button && !self.people_opened {
            page::click(bot.ctx, "people").await;
            self.people_opened = true;
        } else if read.probe.chat_button && !self.chat_opened {
            page::click(bot.ctx, "chat").await;
            self.chat_opened = true;
        }
    }
}
