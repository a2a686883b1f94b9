//! Bot sessions on this worker: the table of running leases that
//! heartbeats and hellos are made from, and one tracked task per bot
//! ([`bot`]), each in its own browser context and its own tracing span.
//!
//! The table holds one entry per bot: a newer lease replaces an older one
//! (which is told to stop), an older or repeated one is refused. A session
//! leaves the table only after its final status is spooled.

mod bot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use attache_protocol::{Assignment, BotReport, BotStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::browser::BrowserPool;
use crate::config::Config;
use crate::load::Load;
use crate::metrics::Metrics;
use crate::results::{Emitter, LastStatus, Reporter};
use crate::spool::Spool;
use crate::transcribe::Engines;

/// Everything a bot needs from its worker, shared by every bot.
#[derive(Clone)]
pub(crate) struct BotDeps {
    pub config: Arc<Config>,
    pub browser: BrowserPool,
    /// Builds each bot's speech-to-text engine.
    pub engines: Arc<Engines>,
    pub metrics: Arc<Metrics>,
    pub spool: Spool,
    /// Tracks every task a bot starts, and the bot's own.
    pub tasks: TaskTracker,
    /// How busy the machine is and how many pages are stalled.
    pub load: Arc<Load>,
    /// One permit per page allowed to load at once (`--max-joining`).
    pub joining: Arc<tokio::sync::Semaphore>,
}

impl BotDeps {
    pub(crate) fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        spool: Spool,
        tasks: TaskTracker,
        load: Arc<Load>,
    ) -> BotDeps {
        BotDeps {
            browser: BrowserPool::new(config.clone(), metrics.clone(), tasks.clone()),
            engines: Arc::new(Engines::new(&config)),
            joining: Arc::new(tokio::sync::Semaphore::new(config.max_joining as usize)),
            load,
            config,
            metrics,
            spool,
            tasks,
        }
    }
}

struct Entry {
    generation: u64,
    status: LastStatus,
    cancel: CancellationToken,
    /// The control plane asked this bot to leave (the customer did).
    leave_requested: bool,
}

#[derive(Clone, Default)]
pub(crate) struct Sessions {
    inner: Arc<Mutex<HashMap<Uuid, Entry>>>,
    /// How many sessions are in the table, for whoever waits for none.
    active: watch::Sender<u32>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    Started,
    /// Already running this lease (a repeated assign): nothing to do.
    AlreadyRunning,
    /// We run a newer lease of this bot than the one offered.
    Stale,
}

type Table<'a> = std::sync::MutexGuard<'a, HashMap<Uuid, Entry>>;

impl Sessions {
    fn lock(&self) -> Table<'_> {
        self.inner.lock().expect("sessions lock")
    }

    /// Publishes the table's size; called with the table locked.
    fn counted(&self, map: &Table<'_>) {
        let n = map.len() as u32;
        self.active
            .send_if_modified(|v| std::mem::replace(v, n) != n);
    }

    pub(crate) fn active(&self) -> u32 {
        self.lock().len() as u32
    }

    /// Follows the number of sessions in the table.
    pub(crate) fn watch(&self) -> watch::Receiver<u32> {
        self.active.subscribe()
    }

    /// Returns once no session is left in the table.
    pub(crate) async fn idle(&self) {
        let _ = self.watch().wait_for(|n| *n == 0).await;
    }

    pub(crate) fn reports(&self) -> Vec<BotReport> {
        self.lock()
            .iter()
            .map(|(id, e)| BotReport {
                bot_id: *id,
                generation: e.generation,
                status: e.status.get(),
            })
            .collect()
    }

    /// Starts a bot's session as a tracked task in its own span (a child
    /// of the caller's).
    pub(crate) fn start(&self, a: Assignment, deps: &BotDeps) -> StartOutcome {
        let cancel = CancellationToken::new();
        let status = LastStatus::new(BotStatus::Dispatched);
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
                    status: status.clone(),
                    cancel: cancel.clone(),
                    leave_requested: false,
                },
            );
            self.counted(&map);
        }
        let emitter = Emitter::new(a.bot_id, a.generation, deps.spool.clone());
        let reporter = Reporter::new(emitter, status);
        // The session continues the trace the control plane dispatched in.
        let span = tracing::info_span!(
            "bot",
            bot_id = %a.bot_id,
            tenant_id = %a.tenant_id,
            generation = a.generation,
            trace_id = tracing::field::Empty
        );
        attache_protocol::trace::follow(&span, a.trace_parent.as_deref());
        let session = bot::session(a, deps.clone(), reporter, cancel, self.clone());
        deps.tasks.spawn(session.instrument(span));
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

    /// Whether the control plane asked this lease to leave (rather than the
    /// worker stopping, or the lease being revoked).
    fn leave_requested(&self, bot_id: Uuid, generation: u64) -> bool {
        self.lock()
            .get(&bot_id)
            .is_some_and(|e| e.generation == generation && e.leave_requested)
    }

    /// A finished session leaves the table, unless a newer lease took its
    /// place.
    fn remove(&self, bot_id: Uuid, generation: u64) {
        let mut map = self.lock();
        if map.get(&bot_id).is_some_and(|e| e.generation == generation) {
            map.remove(&bot_id);
            self.counted(&map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attache_protocol::{Platform, ResultBody, SessionLimits, StatusReason};

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
            trace_parent: None,
        }
    }

    #[tokio::test]
    async fn stale_and_repeated_commands_are_told_apart() {
        // A browser that cannot start: sessions fail fast, which is all
        // this test needs of them.
        let mut config = Config::new("127.0.0.1:1", std::env::temp_dir());
        config.chromium = "/nonexistent/chromium".into();
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let deps = BotDeps::new(
            Arc::new(config),
            Arc::new(Metrics::new()),
            spool.clone(),
            TaskTracker::new(),
            Arc::new(Load::default()),
        );
        let a = assignment(1, 2);
        spool.begin(a.bot_id, 2, a.data_key.clone()).unwrap();
        let sessions = Sessions::default();
        assert_eq!(sessions.start(a.clone(), &deps), StartOutcome::Started);
        assert_eq!(
            sessions.start(a.clone(), &deps),
            StartOutcome::AlreadyRunning
        );
        assert_eq!(sessions.start(assignment(1, 1), &deps), StartOutcome::Stale);
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

    #[tokio::test]
    async fn waiting_for_no_sessions_ends_when_the_last_one_leaves() {
        let sessions = Sessions::default();
        sessions.idle().await;
        let bot = Uuid::from_u128(1);
        {
            let mut map = sessions.lock();
            map.insert(
                bot,
                Entry {
                    generation: 1,
                    status: LastStatus::new(BotStatus::InCall),
                    cancel: CancellationToken::new(),
                    leave_requested: false,
                },
            );
            sessions.counted(&map);
        }
        let idle = tokio::spawn({
            let sessions = sessions.clone();
            async move { sessions.idle().await }
        });
        sessions.remove(bot, 2);
        tokio::task::yield_now().await;
        assert!(!idle.is_finished(), "another lease's end leaves it running");
        sessions.remove(bot, 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), idle)
            .await
            .expect("idle once the table is empty")
            .unwrap();
    }
}
