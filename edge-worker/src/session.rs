//! Bot sessions on this worker: one task per bot, each in its own browser
//! context. A session reports every status change to the link (which numbers
//! and delivers it) and keeps the table that heartbeats are made from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use attache_protocol::{Assignment, BotReport, BotStatus, ResultBody, StatusReason};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::adapter;
use crate::browser::BrowserPool;
use crate::spool::Spool;

struct Entry {
    generation: u64,
    status: BotStatus,
    cancel: CancellationToken,
    /// The control plane asked this bot to leave (the customer did).
    leave_requested: bool,
}

#[derive(Clone, Default)]
pub(crate) struct Sessions {
    inner: Arc<Mutex<HashMap<Uuid, Entry>>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    Started,
    /// Already running this lease (a repeated assign): nothing to do.
    AlreadyRunning,
    /// We run a newer lease of this bot than the one offered.
    Stale,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.inner.lock().expect("sessions lock")
    }

    pub(crate) fn active(&self) -> u32 {
        self.lock().len() as u32
    }

    pub(crate) fn reports(&self) -> Vec<BotReport> {
        self.lock()
            .iter()
            .map(|(id, e)| BotReport {
                bot_id: *id,
                generation: e.generation,
                status: e.status,
            })
            .collect()
    }

    pub(crate) fn start(&self, a: Assignment, browser: BrowserPool, spool: Spool) -> StartOutcome {
        let cancel = CancellationToken::new();
        {
            let mut map = self.lock();
            if let Some(e) = map.get(&a.bot_id) {
                if e.generation == a.generation {
                    return StartOutcome::AlreadyRunning;
                }
                if e.generation > a.generation {
                    return StartOutcome::Stale;
                }
                e.cancel.cancel();
            }
            map.insert(
                a.bot_id,
                Entry {
                    generation: a.generation,
                    status: BotStatus::Dispatched,
                    cancel: cancel.clone(),
                    leave_requested: false,
                },
            );
        }
        let reporter = Reporter {
            bot_id: a.bot_id,
            generation: a.generation,
            spool,
            sessions: self.clone(),
        };
        tokio::spawn(async move {
            let span = tracing::info_span!("bot", bot_id = %a.bot_id, tenant_id = %a.tenant_id, generation = a.generation);
            let _g = span.enter();
            drop(_g);
            reporter.status(BotStatus::Joining).await;
            let (mut status, mut reason, mut detail) =
                adapter::run(&browser, &a, &reporter, cancel).await;
            if reason == StatusReason::LeaveRequested && !reporter.leave_was_requested() {
                status = BotStatus::Failed;
                reason = StatusReason::WorkerShutdown;
                detail = Some("the worker shut down".into());
            }
            tracing::info!(bot_id = %a.bot_id, status = %status, reason = %reason, "bot session finished");
            reporter.finish(status, reason, detail).await;
        });
        StartOutcome::Started
    }

    /// Asks a running session to leave. False if this lease is not running.
    pub(crate) fn cancel(&self, bot_id: Uuid, generation: u64) -> bool {
        match self.lock().get_mut(&bot_id) {
            Some(e) if e.generation == generation => {
                e.leave_requested = true;
                e.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Stops a session whose lease is gone. False if it is not running.
    pub(crate) fn stop(&self, bot_id: Uuid, generation: u64) -> bool {
        match self.lock().get(&bot_id) {
            Some(e) if e.generation == generation => {
                e.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// The worker is stopping: every bot leaves, with that as its reason.
    pub(crate) fn cancel_all(&self) {
        for e in self.lock().values() {
            e.cancel.cancel();
        }
    }
}

/// Sends one bot's results (other than its status) from anywhere: async
/// tasks, or the encoder thread.
#[derive(Clone)]
pub(crate) struct Emitter {
    bot_id: Uuid,
    generation: u64,
    spool: Spool,
}

impl Emitter {
    /// Spools one result (numbered, sealed, on disk) for delivery.
    pub(crate) async fn send(&self, at_ms: i64, body: ResultBody) {
        self.blocking(at_ms, body);
    }

    /// The same, from a thread outside the async runtime.
    pub(crate) fn blocking(&self, at_ms: i64, body: ResultBody) {
        self.spool
            .push(self.bot_id, self.generation, at_ms, body, false);
    }

    #[cfg(test)]
    pub(crate) fn for_tests(spool: Spool, key: attache_protocol::DataKey) -> Emitter {
        spool.begin(Uuid::nil(), 1, key).expect("test spool");
        Emitter {
            bot_id: Uuid::nil(),
            generation: 1,
            spool,
        }
    }
}

/// How a session tells the world what happened.
pub(crate) struct Reporter {
    bot_id: Uuid,
    generation: u64,
    spool: Spool,
    sessions: Sessions,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Reporter {
    /// Whether the control plane asked this bot to leave (rather than the
    /// worker stopping, or the lease being revoked).
    fn leave_was_requested(&self) -> bool {
        self.sessions
            .lock()
            .get(&self.bot_id)
            .is_some_and(|e| e.generation == self.generation && e.leave_requested)
    }

    pub(crate) fn emitter(&self) -> Emitter {
        Emitter {
            bot_id: self.bot_id,
            generation: self.generation,
            spool: self.spool.clone(),
        }
    }

    pub(crate) async fn status(&self, status: BotStatus) {
        self.send(status, None, None, false).await;
    }

    async fn finish(&self, status: BotStatus, reason: StatusReason, detail: Option<String>) {
        self.send(status, Some(reason), detail, true).await;
        let mut map = self.sessions.lock();
        if map
            .get(&self.bot_id)
            .is_some_and(|e| e.generation == self.generation)
        {
            map.remove(&self.bot_id);
        }
    }

    async fn send(
        &self,
        status: BotStatus,
        reason: Option<StatusReason>,
        detail: Option<String>,
        last: bool,
    ) {
        if let Some(e) = self.sessions.lock().get_mut(&self.bot_id)
            && e.generation == self.generation
        {
            e.status = status;
        }
        // Spooled at once; the link delivers it when it can.
        self.spool.push(
            self.bot_id,
            self.generation,
            now_ms(),
            ResultBody::Status {
                status,
                reason,
                detail,
            },
            last,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attache_protocol::{Platform, SessionLimits};

    fn assignment(bot: u128, generation: u64) -> Assignment {
        Assignment {
            bot_id: Uuid::from_u128(bot),
            generation,
            tenant_id: Uuid::from_u128(7),
            meeting_url: "http://127.0.0.1:9/m/x".into(),
            platform: Platform::Sandbox,
            bot_name: "Bot".into(),
            limits: SessionLimits::default(),
            data_key: attache_protocol::DataKey::generate(),
            transcription: None,
        }
    }

    #[tokio::test]
    async fn stale_and_repeated_commands_are_told_apart() {
        // A browser that cannot start: sessions fail fast, which is all
        // this test needs of them.
        let mut config = crate::Config::new("127.0.0.1:1", std::env::temp_dir());
        config.chromium = "/nonexistent/chromium".into();
        let browser = BrowserPool::new(
            std::sync::Arc::new(config),
            std::sync::Arc::new(crate::metrics::Metrics::new()),
        );
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let a = assignment(1, 2);
        spool.begin(a.bot_id, 2, a.data_key.clone()).unwrap();
        let sessions = Sessions::default();
        assert_eq!(
            sessions.start(a.clone(), browser.clone(), spool.clone()),
            StartOutcome::Started
        );
        assert_eq!(
            sessions.start(a.clone(), browser.clone(), spool.clone()),
            StartOutcome::AlreadyRunning
        );
        assert_eq!(
            sessions.start(assignment(1, 1), browser.clone(), spool.clone()),
            StartOutcome::Stale
        );
        assert!(
            !sessions.cancel(Uuid::from_u128(1), 1),
            "an old generation is not cancelled"
        );
        assert!(
            !sessions.cancel(Uuid::from_u128(9), 2),
            "an unknown bot is not cancelled"
        );
        // The session reports JOINING, then fails with the true reason.
        let frames = loop {
            let f = spool.after(a.bot_id, 2, 0);
            if f.len() >= 2 {
                break f;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let first = frames[0].open(&a.data_key).unwrap();
        assert!(matches!(
            first,
            ResultBody::Status {
                status: BotStatus::Joining,
                ..
            }
        ));
        match frames[1].open(&a.data_key).unwrap() {
            ResultBody::Status {
                status,
                reason,
                detail,
            } => {
                assert_eq!(
                    (status, reason),
                    (BotStatus::Failed, Some(StatusReason::PlatformError))
                );
                assert!(detail.unwrap().contains("Chromium"));
            }
            other => panic!("expected the final status, got {other:?}"),
        }
        for _ in 0..100 {
            if sessions.active() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(sessions.active(), 0, "a finished session leaves the table");
    }
}
