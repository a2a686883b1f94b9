//! What crosses control-plane replicas. PostgreSQL holds every fact; the
//! bus only tells the other replicas, at once, that a fact was stored or a
//! command is due:
//!
//! - a bot moved (its ids and new status: subscribers read the stored
//!   event, in order, from the database);
//! - a transcript segment was stored (its key only: subscribers read it,
//!   sealed, from the database, so no words pass through Redis);
//! - a command for whichever replica holds a worker's link (leave, drain);
//! - a bot was queued: it goes into its group's dispatch stream
//!   ([`dispatch_queue`]), and every replica's dispatcher looks at once.
//!
//! Without Redis the bus is this process alone (one box). With Redis down,
//! notices are dropped and counted, the bus says it is degraded (`/readyz`,
//! `attache_control_plane_redis_degraded`), and readers fall back on the
//! database: dispatch polls, subscriptions re-read stored history every
//! second, the fleet sweep repeats commands. Once Redis answers again,
//! every replica re-reads once (a reconnection, or a `Resync` from a
//! replica that dropped notices), so nothing stored meanwhile is missed.

pub(crate) mod dispatch_queue;
mod redis_link;
pub(crate) mod shared_limits;

use std::sync::Arc;

use attache_protocol::{BotStatus, ControlMsg};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::events::{ActivityEvent, BotMoved, TranscriptEvent};
use crate::metrics::Metrics;

pub(crate) use dispatch_queue::DispatchQueue;
pub(crate) use redis_link::{CALL_TIMEOUT, RedisLink};

/// Notices waiting to be published; past this, new ones are dropped (and
/// a resync owed), never held without bound.
const OUTBOX: usize = 16_384;

/// One notice between replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Notice {
    Moved {
        tenant_id: String,
        bot_id: String,
        event_id: i64,
        status: BotStatus,
    },
    Segment {
        tenant_id: String,
        bot_id: String,
        segment_key: String,
    },
    /// Some of a bot's activity was stored: participants, speaking, chat or
    /// warnings.
    Activity {
        tenant_id: String,
        bot_id: String,
    },
    Command {
        worker_id: String,
        command: Command,
    },
    /// A bot was queued: dispatchers look now, not at their next poll.
    Dispatch,
    /// A due bot was queued in its group: it goes into the group's dispatch
    /// stream, and a `Dispatch` notice out. Never on the wire itself.
    Queued {
        region: String,
        pool: Option<String>,
        bot_id: String,
    },
    /// Notices from the sender were lost: re-read stored history once.
    Resync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub(crate) enum Command {
    Cancel { bot_id: uuid::Uuid, generation: u64 },
    Drain,
}

/// What a notice looks like on the wire: who sent it, so a replica skips
/// its own.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: String,
    #[serde(flatten)]
    notice: Notice,
}

/// Whether notices from other replicas can be trusted to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Health {
    /// Subscribed to the other replicas' notices.
    pub listening: bool,
    /// This replica's last notices went out.
    pub publishing: bool,
    /// Bumped whenever notices may have been missed; a reader that saw an
    /// older epoch re-reads the database.
    pub epoch: u64,
}

impl Health {
    const UP: Health = Health {
        listening: true,
        publishing: true,
        epoch: 0,
    };

    /// Redis is configured and cannot be reached both ways: readers must
    /// not count on notices.
    pub(crate) fn degraded(&self) -> bool {
        !(self.listening && self.publishing)
    }
}

/// A reader's memory of the bus health it last caught up with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen(Option<u64>);

#[derive(Clone)]
pub(crate) struct Bus {
    replica: Arc<str>,
    /// `None`: no Redis, nothing leaves this process.
    out: Option<Lanes>,
    health: watch::Receiver<Health>,
    link: Option<RedisLink>,
    queue: Option<DispatchQueue>,
    metrics: Metrics,
}

/// The bus's background half: publishes this replica's notices and hands
/// every other replica's to [`route`]. `None` without Redis.
pub(crate) struct Driver {
    link: RedisLink,
    outbox: mpsc::Receiver<Notice>,
    control: mpsc::Receiver<Notice>,
    health: watch::Sender<Health>,
}

/// Where this replica's notices wait to be published: two lanes, each in
/// order, so that what moves bots (dispatch entries and wake-ups, commands
/// to workers) never waits behind the live feeds' notices, which come with
/// every stored result and can run seconds behind on a loaded replica.
#[derive(Clone)]
struct Lanes {
    feeds: mpsc::Sender<Notice>,
    control: mpsc::Sender<Notice>,
}

impl Notice {
    /// Whether it travels in the control lane (see [`Lanes`]).
    fn moves_bots(&self) -> bool {
        matches!(
            self,
            Notice::Queued { .. } | Notice::Dispatch | Notice::Command { .. }
        )
    }
}

impl Bus {
    /// This process alone.
    pub(crate) fn local(metrics: Metrics) -> Bus {
        Bus {
            replica: uuid::Uuid::new_v4().to_string().into(),
            out: None,
            health: watch::channel(Health::UP).1,
            link: None,
            queue: None,
            metrics,
        }
    }

    /// Shared through the Redis at `url` (checked here; reached later, so
    /// a replica starts while Redis is down and catches up) by the
    /// replicas of one deployment, named by `deployment`. Dispatch entries
    /// a replica read and left unacknowledged for `claim_idle` go to
    /// another.
    pub(crate) fn redis(
        url: &str,
        deployment: &str,
        claim_idle: std::time::Duration,
        metrics: Metrics,
    ) -> Result<(Bus, Driver), String> {
        let link = RedisLink::new(url, deployment)?;
        let replica: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let queue = DispatchQueue::new(link.clone(), &replica, claim_idle);
        let (feeds, outbox) = mpsc::channel(OUTBOX);
        let (control, control_box) = mpsc::channel(OUTBOX);
        // Degraded until the first subscription is confirmed.
        let (health, rx) = watch::channel(Health {
            listening: false,
            ..Health::UP
        });
        metrics.redis_degraded.set(1);
        let bus = Bus {
            replica,
            out: Some(Lanes { feeds, control }),
            health: rx,
            link: Some(link.clone()),
            queue: Some(queue),
            metrics,
        };
        Ok((
            bus,
            Driver {
                link,
                outbox,
                control: control_box,
                health,
            },
        ))
    }

    /// The Redis connection, when one is configured and up.
    pub(crate) fn link(&self) -> Option<&RedisLink> {
        self.link.as_ref()
    }

    /// The dispatch streams, when Redis is configured and reachable both
    /// ways; `None`: dispatch polls the database.
    pub(crate) fn dispatch_queue(&self) -> Option<&DispatchQueue> {
        self.queue.as_ref().filter(|_| !self.health().degraded())
    }

    /// Puts a due bot, just queued, in its group's dispatch stream (and
    /// wakes every dispatcher). What does not get there is found missing
    /// by the dispatcher and re-added.
    pub(crate) fn queued(&self, region: &str, pool: Option<&str>, bot_id: &str) {
        self.publish(Notice::Queued {
            region: region.to_string(),
            pool: pool.map(str::to_string),
            bot_id: bot_id.to_string(),
        });
    }

    pub(crate) fn health(&self) -> Health {
        *self.health.borrow()
    }

    /// Whether a reader must re-read the database now: the bus is degraded,
    /// or notices may have been missed since it last caught up.
    pub(crate) fn must_reread(&self, seen: &mut Seen) -> bool {
        let h = self.health();
        let missed = seen.0.is_some_and(|e| e != h.epoch);
        seen.0 = Some(h.epoch);
        h.degraded() || missed
    }

    /// Tells the other replicas. Never waits: a full outbox drops the
    /// notice (counted), and the readers' fallback covers it.
    pub(crate) fn publish(&self, notice: Notice) {
        let Some(out) = &self.out else { return };
        let lane = if notice.moves_bots() {
            &out.control
        } else {
            &out.feeds
        };
        if lane.try_send(notice).is_err() {
            self.metrics
                .bus_notices
                .with_label_values(&["dropped"])
                .inc();
        }
    }

    /// Asks the replica holding `worker_id`'s link to send it `command`.
    pub(crate) fn command(&self, worker_id: &str, command: Command) {
        self.publish(Notice::Command {
            worker_id: worker_id.to_string(),
            command,
        });
    }
}

impl Command {
    fn message(self) -> ControlMsg {
        match self {
            Command::Cancel { bot_id, generation } => ControlMsg::Cancel { bot_id, generation },
            Command::Drain => ControlMsg::Drain,
        }
    }
}

impl Driver {
    /// Runs until `shutdown`: the publisher, and the subscriber that hands
    /// other replicas' notices to [`route`].
    pub(crate) async fn run(self, state: AppState, shutdown: CancellationToken) {
        let Driver {
            link,
            outbox,
            control,
            health,
        } = self;
        let replica = state.bus.replica.to_string();
        let queue = state.bus.queue.clone().expect("a Redis bus has a queue");
        let health = Arc::new(health);
        let (incoming_tx, mut incoming) = mpsc::channel::<Notice>(OUTBOX);
        let lane = |outbox| {
            redis_link::publish_loop(
                link.clone(),
                redis_link::Queued {
                    queue: queue.clone(),
                    wakeup: state.dispatch_wakeup.clone(),
                },
                replica.clone(),
                outbox,
                health.clone(),
                state.metrics.clone(),
                shutdown.clone(),
            )
        };
        let publisher = futures::future::join(lane(outbox), lane(control));
        let subscriber = redis_link::subscribe_loop(
            link,
            replica,
            incoming_tx,
            health.clone(),
            state.metrics.clone(),
            shutdown.clone(),
        );
        let router = async {
            while let Some(n) = incoming.recv().await {
                if n == Notice::Resync {
                    health.send_modify(|h| h.epoch += 1);
                } else {
                    route(&state, n);
                }
            }
        };
        tokio::join!(publisher, subscriber, router);
    }
}

/// Carries out another replica's notice here.
fn route(state: &AppState, notice: Notice) {
    match notice {
        Notice::Moved {
            tenant_id,
            bot_id,
            event_id,
            status,
        } => state.events.deliver(BotMoved {
            tenant_id,
            bot_id,
            event_id,
            status,
        }),
        Notice::Segment {
            tenant_id,
            bot_id,
            segment_key,
        } => state.events.deliver_transcript(TranscriptEvent {
            tenant_id,
            bot_id,
            segment_key,
            segment: None,
        }),
        Notice::Activity { tenant_id, bot_id } => state
            .events
            .deliver_activity(ActivityEvent { tenant_id, bot_id }),
        Notice::Command { worker_id, command } => {
            // Only the replica holding the link can; the others have none.
            let sent = match command {
                Command::Drain => state.links.drain(&worker_id),
                c => state.links.send(&worker_id, c.message()),
            };
            if sent {
                tracing::debug!(worker_id, ?command, "command from another replica sent");
            }
        }
        Notice::Dispatch | Notice::Queued { .. } => state.dispatch_wakeup.notify_one(),
        Notice::Resync => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_carry_no_words() {
        let n = Notice::Segment {
            tenant_id: "t".into(),
            bot_id: "b".into(),
            segment_key: "3:u1".into(),
        };
        let wire = serde_json::to_string(&Envelope {
            from: "r1".into(),
            notice: n.clone(),
        })
        .unwrap();
        assert_eq!(
            wire,
            r#"{"from":"r1","k":"segment","tenant_id":"t","bot_id":"b","segment_key":"3:u1"}"#
        );
        let back: Envelope = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.notice, n);
        let c = Notice::Command {
            worker_id: "w".into(),
            command: Command::Cancel {
                bot_id: uuid::Uuid::nil(),
                generation: 7,
            },
        };
        let wire = serde_json::to_string(&Envelope {
            from: "r".into(),
            notice: c.clone(),
        })
        .unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&wire).unwrap().notice, c);
    }

    #[test]
    fn a_reader_rereads_when_degraded_or_after_a_missed_epoch() {
        let metrics = Metrics::new();
        let (tx, rx) = watch::channel(Health::UP);
        let bus = Bus {
            health: rx,
            ..Bus::local(metrics)
        };
        let mut seen = Seen::default();
        assert!(!bus.must_reread(&mut seen), "first look, healthy");
        assert!(!bus.must_reread(&mut seen));
        tx.send_modify(|h| h.epoch += 1);
        assert!(bus.must_reread(&mut seen), "notices may have been missed");
        assert!(!bus.must_reread(&mut seen), "caught up");
        tx.send_modify(|h| h.listening = false);
        assert!(bus.must_reread(&mut seen));
        assert!(bus.must_reread(&mut seen), "every look while degraded");
    }
}
