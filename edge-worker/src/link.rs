//! The worker's link to the control plane. It dials out (so workers can sit
//! behind NAT), says hello with the bots it runs, heartbeats, obeys
//! commands, and delivers results. When the link drops it retries with
//! jittered exponential backoff until shutdown; bots keep running and their
//! results wait in the outbox.
//!
//! On shutdown (SIGTERM) or the control plane's `Drain` the worker drains:
//! it takes no more bots and says so in its heartbeats, hands back the bots
//! not yet in a call (refused, so the control plane dispatches them
//! elsewhere), lets the bots in calls go on until they end or the drain
//! timeout passes (then they leave with WORKER_SHUTDOWN), delivers every
//! last result, and stops. Its logs carry the worker's id.

use std::time::Duration;

use attache_protocol::{
    BotReport, BotStatus, ControlMsg, ErrorCode, IoFrameError, Load, PROTOCOL_VERSION, WorkerMsg,
    read_frame, write_frame,
};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::capacity;
use crate::identity::{Identity, IdentityError, client_endpoint, resolve};
use crate::outbox::Outbox;
use crate::session::{BotDeps, Sessions, StartOutcome};
use crate::spool::Spool;

/// How long a stopping worker waits, once its bots were told to leave, for
/// them to be gone and their last results delivered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection to the control plane ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{0}")]
    Dial(#[from] quinn::ConnectError),
    #[error("connect: {0}")]
    Handshake(#[source] quinn::ConnectionError),
    #[error("{0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Stream(#[from] IoFrameError),
    #[error("expected welcome, got {0}")]
    NoWelcome(String),
    #[error("no welcome: {0}")]
    WelcomeUnreadable(#[source] IoFrameError),
    #[error("control stream closed")]
    ControlClosed,
}

struct Worker {
    identity: Identity,
    deps: BotDeps,
    sessions: Sessions,
    outbox: Outbox,
    draining: bool,
    /// When the drain began, and when the bots still in calls were told
    /// to leave.
    drain: Option<Drain>,
}

#[derive(Debug, Clone, Copy)]
struct Drain {
    since: tokio::time::Instant,
    leaving_since: Option<tokio::time::Instant>,
}

/// Doubles up to `max`, with full jitter over the upper half so a fleet
/// that lost its control plane does not return in lockstep.
fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    let ceiling = min.saturating_mul(1u32 << attempt.min(16)).min(max);
    let half = ceiling / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

/// Serves the control plane until `shutdown`, then drains: returns once
/// every bot has left (or [`DRAIN_TIMEOUT`] has passed).
pub(crate) async fn run(identity: Identity, deps: BotDeps, shutdown: CancellationToken) {
    let span = tracing::info_span!("link", worker_id = %identity.worker_id);
    serve(identity, deps, shutdown).instrument(span).await;
}

async fn serve(identity: Identity, deps: BotDeps, shutdown: CancellationToken) {
    let mut w = Worker {
        identity,
        outbox: Outbox::new(deps.spool.clone()),
        deps,
        sessions: Sessions::default(),
        draining: false,
        drain: None,
    };
    let metrics = w.deps.metrics.clone();
    let mut attempt = 0u32;
    let mut endpoint = None;
    while !shutdown.is_cancelled() {
        match w.connect_and_serve(&mut endpoint, &shutdown).await {
            Ok(()) => attempt = 0,
            Err(e) => {
                metrics.link_reconnects.inc();
                tracing::warn!(error = %e, attempt, "fleet link down");
                attempt = attempt.saturating_add(1);
            }
        }
        metrics.link_connected.set(0);
        w.outbox.detach();
        if shutdown.is_cancelled() {
            break;
        }
        let config = &w.deps.config;
        let wait = backoff(attempt, config.reconnect_min, config.reconnect_max);
        // Sessions keep spooling meanwhile.
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Bots leave and close their recordings before the browser goes away;
    // without a link their results stay spooled for the next run.
    w.sessions.cancel_all();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, w.sessions.idle()).await;
}

impl Worker {
    async fn connect_and_serve(
        &mut self,
        endpoint: &mut Option<quinn::Endpoint>,
        shutdown: &CancellationToken,
    ) -> Result<(), LinkError> {
        let config = self.deps.config.clone();
        let addr = resolve(&config).await?;
        if endpoint.is_none() {
            *endpoint = Some(client_endpoint(addr)?);
        }
        let ep = endpoint.as_ref().expect("endpoint");
        let client = self.identity.client_config()?;
        let conn = ep
            .connect_with(client, addr, &config.server_name())?
            .await
            .map_err(LinkError::Handshake)?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let hello = WorkerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            capacity: self.capacity(),
            bots: self.running_and_unreported(),
        };
        write_frame(&mut send, &hello).await?;
        let heartbeat = match read_frame::<ControlMsg, _>(&mut recv).await {
            Ok(Some(ControlMsg::Welcome {
                heartbeat_interval_ms,
                ..
            })) => Duration::from_millis(heartbeat_interval_ms.max(50)),
            Ok(other) => return Err(LinkError::NoWelcome(format!("{other:?}"))),
            Err(e) => return Err(LinkError::WelcomeUnreadable(e)),
        };
        tracing::info!("connected to the control plane");
        self.deps.metrics.link_connected.set(1);
        // Commands are read on their own task: reading a frame is not
        // cancel-safe, so it must not sit in the select below.
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<ControlMsg>(256);
        let reader = self.deps.tasks.spawn(
            async move {
                while let Ok(Some(m)) = read_frame::<ControlMsg, _>(&mut recv).await {
                    if cmd_tx.send(m).await.is_err() {
                        return;
                    }
                }
            }
            .in_current_span(),
        );
        self.outbox.flush_all(&conn).await?;
        let mut tick = tokio::time::interval(heartbeat);
        let mut active = self.sessions.watch();
        if self.drain.is_some() {
            // Drained before this link: say so at once.
            write_frame(&mut send, &self.heartbeat()).await?;
        }
        let result = loop {
            if self.drain.is_some() && self.drained() {
                tracing::info!("drained: every bot ended and every result was delivered");
                conn.close(0u32.into(), attache_protocol::DRAINED);
                // Let the close reach the control plane before the endpoint goes.
                let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
                // The operator's drain ends the worker as SIGTERM does.
                shutdown.cancel();
                break Ok(());
            }
            tokio::select! {
                _ = shutdown.cancelled(), if self.drain.is_none() => {
                    for reply in self.begin_drain().await {
                        write_frame(&mut send, &reply).await?;
                    }
                }
                _ = active.changed() => {}
                cmd = cmd_rx.recv() => match cmd {
                    Some(ControlMsg::Drain) if self.drain.is_none() => {
                        tracing::info!("the control plane asked this worker to drain");
                        for reply in self.begin_drain().await {
                            write_frame(&mut send, &reply).await?;
                        }
                    }
                    Some(cmd) => {
                        if let Some(reply) = self.command(cmd).await {
                            write_frame(&mut send, &reply).await?;
                        }
                    }
                    None => break Err(conn.close_reason().map_or(LinkError::ControlClosed, LinkError::Connection)),
                },
                _ = self.deps.spool.wake.notified() => {
                    self.outbox.flush_dirty(&conn).await?;
                }
                _ = tick.tick() => {
                    self.deps.spool.off_thread(Spool::sync).await;
                    write_frame(&mut send, &self.heartbeat()).await?;
                    if self.outbox.rewind_stalled(std::time::Instant::now(), heartbeat * 4) > 0 {
                        self.outbox.flush_all(&conn).await?;
                    }
                }
            }
        };
        reader.abort();
        result
    }

    /// How many more bots this worker can take now: `--capacity` less
    /// those running, or less when it measures that the machine cannot
    /// hold them (unless `--fixed-capacity`).
    fn room(&self) -> capacity::Room {
        let config = &self.deps.config;
        let reports = self.sessions.reports();
        let bots = capacity::Bots {
            active: reports.len() as u32,
            starting: reports
                .iter()
                .filter(|r| {
                    matches!(
                        r.status,
                        BotStatus::Dispatched | BotStatus::Joining | BotStatus::WaitingRoom
                    )
                })
                .count() as u32,
            waiting: self.deps.metrics.joins_waiting.get().max(0) as u32,
        };
        let measured = self
            .deps
            .load
            .room(bots, config.capacity, config.memory_reserve_mib as f64);
        // The gauges say what was measured, --fixed-capacity or not.
        let m = &self.deps.metrics;
        m.room.set(i64::from(measured.more));
        for limit in capacity::Limit::ALL {
            m.room_limited
                .with_label_values(&[limit.as_str()])
                .set(i64::from(limit == measured.limit));
        }
        m.bot_millicores
            .set((measured.cost().cores * 1000.0).round() as i64);
        m.bot_mib.set(measured.cost().mib.round() as i64);
        if config.fixed_capacity {
            capacity::fixed(bots, config.capacity, measured.cost())
        } else {
            measured
        }
    }

    /// What the worker advertises: the bots it runs and those it has room
    /// for.
    fn capacity(&self) -> u32 {
        self.sessions.active() + self.room().more
    }

    /// This worker's load and bots, with the gauges they feed.
    fn heartbeat(&self) -> WorkerMsg {
        let metrics = &self.deps.metrics;
        let load = Load {
            active_bots: self.sessions.active(),
            capacity: self.capacity(),
            rss_mib: self.deps.load.own_mib(),
            draining: self.draining,
        };
        metrics.bots_active.set(self.sessions.active() as i64);
        metrics
            .pages_stalled
            .set(self.deps.load.stalled_pages() as i64);
        metrics.outbox_pending.set(self.outbox.pending() as i64);
        metrics.spool_dropped.set(self.deps.spool.dropped() as i64);
        // Finished bots whose last results are not acknowledged yet are
        // listed too: the control plane does not take back a lease whose
        // final status is still on its way.
        WorkerMsg::Heartbeat {
            load,
            bots: self.running_and_unreported(),
        }
    }

    /// What the hello lists: running bots, and finished ones whose last
    /// results have not been acknowledged yet.
    fn running_and_unreported(&self) -> Vec<BotReport> {
        let mut bots = self.sessions.reports();
        for r in self.outbox.reports() {
            if !bots
                .iter()
                .any(|b| b.bot_id == r.bot_id && b.generation == r.generation)
            {
                bots.push(r);
            }
        }
        bots
    }

    /// Carries out one command; returns a refusal to send back, if any.
    async fn command(&mut self, cmd: ControlMsg) -> Option<WorkerMsg> {
        match cmd {
            ControlMsg::Assign(a) => {
                let refuse = |code, message: &str| WorkerMsg::Refused {
                    bot_id: a.bot_id,
                    generation: a.generation,
                    code,
                    message: message.to_string(),
                };
                if self.draining {
                    return Some(refuse(ErrorCode::ResourceExhausted, "worker is draining"));
                }
                let room = self.room();
                if room.more == 0 {
                    let why = format!("worker has no room: {room}");
                    tracing::info!(bot_id = %a.bot_id, limit = room.limit.as_str(), "{why}");
                    return Some(refuse(ErrorCode::ResourceExhausted, &why));
                }
                let (bot_id, generation, key) = (a.bot_id, a.generation, a.data_key.clone());
                let begun = self
                    .deps
                    .spool
                    .off_thread(move |s| s.begin(bot_id, generation, key))
                    .await;
                if let Err(e) = begun {
                    tracing::error!(%bot_id, error = %e, "cannot spool results; refusing the bot");
                    return Some(refuse(
                        ErrorCode::ResourceExhausted,
                        "the worker cannot write its spool",
                    ));
                }
                match self.sessions.start(*a, &self.deps) {
                    StartOutcome::Started => {
                        tracing::info!(%bot_id, generation, "bot assigned");
                        None
                    }
                    StartOutcome::AlreadyRunning => None,
                    StartOutcome::Stale => Some(WorkerMsg::Refused {
                        bot_id,
                        generation,
                        code: ErrorCode::StaleGeneration,
                        message: "a newer lease of this bot is running".into(),
                    }),
                }
            }
            ControlMsg::Revoke { bot_id, generation } => {
                if self.sessions.stop(bot_id, generation) {
                    tracing::warn!(%bot_id, generation, "lease revoked; stopping the bot");
                }
                self.outbox.forget(bot_id, generation).await;
                None
            }
            ControlMsg::Cancel { bot_id, generation } => {
                if self.sessions.cancel(bot_id, generation) {
                    tracing::info!(%bot_id, generation, "leaving on request");
                    None
                } else {
                    // Already finished: its final status is in the outbox.
                    Some(WorkerMsg::Refused {
                        bot_id,
                        generation,
                        code: ErrorCode::StaleGeneration,
                        message: "no such running lease".into(),
                    })
                }
            }
            ControlMsg::Ack {
                bot_id,
                generation,
                seq,
            } => {
                self.outbox.ack(bot_id, generation, seq).await;
                None
            }
            ControlMsg::Drain => {
                self.draining = true;
                None
            }
            ControlMsg::Welcome { .. } => None,
        }
    }

    /// Starts draining: no more bots, a heartbeat that says so, and every
    /// bot not yet in a call handed back. Returns what to send.
    async fn begin_drain(&mut self) -> Vec<WorkerMsg> {
        self.draining = true;
        self.drain = Some(Drain {
            since: tokio::time::Instant::now(),
            leaving_since: None,
        });
        let mut out = vec![self.heartbeat()];
        for r in self.sessions.reports() {
            if r.status.is_in_meeting() || r.status.is_final() {
                continue;
            }
            // Refused first, so the control plane requeues it; its lease's
            // results go nowhere after that.
            tracing::info!(bot_id = %r.bot_id, generation = r.generation, status = ?r.status, "draining: handing the bot back");
            out.push(WorkerMsg::Refused {
                bot_id: r.bot_id,
                generation: r.generation,
                code: ErrorCode::ResourceExhausted,
                message: "worker is draining: handed back before its call".into(),
            });
            self.outbox.forget(r.bot_id, r.generation).await;
            self.sessions.stop(r.bot_id, r.generation);
        }
        let in_calls = self.sessions.active();
        tracing::info!(
            in_calls,
            timeout_s = self.deps.config.drain_timeout.as_secs(),
            "draining: no new bots; bots in calls go on until they end or the drain timeout"
        );
        out
    }

    /// Whether the drain is over: every bot gone and every result
    /// delivered, or the bots told to leave at the drain timeout and given
    /// [`DRAIN_TIMEOUT`] to do it. Tells them to leave when that is due.
    fn drained(&mut self) -> bool {
        let Some(d) = self.drain.as_mut() else {
            return false;
        };
        if self.sessions.active() == 0 && self.outbox.pending() == 0 {
            return true;
        }
        let now = tokio::time::Instant::now();
        match d.leaving_since {
            None if now >= d.since + self.deps.config.drain_timeout => {
                tracing::warn!(
                    bots = self.sessions.active(),
                    "drain timeout: the bots still in calls leave"
                );
                self.sessions.cancel_all();
                d.leaving_since = Some(now);
                false
            }
            Some(t) => now >= t + DRAIN_TIMEOUT,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = backoff(attempt, min, max);
            let ceiling = min.saturating_mul(1 << attempt.min(16)).min(max);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(10, min, max)).collect();
        assert!(samples.len() > 1, "jittered");
    }
}
