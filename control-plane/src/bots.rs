//! The bot lifecycle service: the only code that moves a bot. Creating a
//! bot, applying a transition and asking a bot to leave each happen here,
//! once: the compare-and-swap with its event and webhook outbox row (one
//! database transaction, in the store), then the metric, the live event for
//! subscribers and the dispatcher's wake-up.
//!
//! It must never decide a move on its own: callers (the API, dispatch, the
//! fleet's repair and result ingest) say what should happen, and the store's
//! compare-and-swap says whether it still may.

use std::sync::Arc;

use attache_protocol::{BotStatus, ControlMsg, StatusReason};
use tokio::sync::Notify;

use crate::bus::{Command, Notice};
use crate::entity::{bot, bot_event};
use crate::events::EventHub;
use crate::links::Registry;
use crate::metrics::Metrics;
use crate::store::{Applied, NewBot, Scoped, Store, StoreError, Transition};

#[derive(Clone)]
pub(crate) struct Bots {
    store: Store,
    events: EventHub,
    metrics: Metrics,
    links: Registry,
    dispatch_wakeup: Arc<Notify>,
}

impl Bots {
    pub(crate) fn new(
        store: Store,
        events: EventHub,
        metrics: Metrics,
        links: Registry,
        dispatch_wakeup: Arc<Notify>,
    ) -> Bots {
        Bots {
            store,
            events,
            metrics,
            links,
            dispatch_wakeup,
        }
    }

    /// Queues a new bot for the scoped tenant.
    pub(crate) async fn create(
        &self,
        scoped: &Scoped<'_>,
        new: NewBot,
    ) -> Result<bot::Model, StoreError> {
        let (bot, event) = scoped.insert_bot(new).await?;
        tracing::info!(bot_id = %bot.id, tenant_id = %bot.tenant_id, platform = %bot.platform, "bot created");
        self.moved(&bot, &event);
        Ok(bot)
    }

    /// Applies one move (see [`Transition`]) and, if the bot moved, tells
    /// everyone who must know.
    pub(crate) async fn apply(&self, t: Transition) -> Result<Applied, StoreError> {
        let applied = self.store.transition(t).await?;
        if let Applied::Moved(bot, event) = &applied {
            self.moved(bot, event);
        }
        Ok(applied)
    }

    /// Asks a bot to leave. A queued bot ends at once with LEAVE_REQUESTED;
    /// a bot under lease is marked and its worker told (the sweep repeats
    /// it until obeyed). Leaving an ended bot changes nothing.
    pub(crate) async fn request_leave(&self, b: bot::Model) -> Result<bot::Model, StoreError> {
        if b.status.is_final() {
            return Ok(b);
        }
        if b.status == BotStatus::Queued {
            let mut t =
                Transition::new(&b.id, BotStatus::Ended, Some(StatusReason::LeaveRequested));
            t.expect_status = Some(BotStatus::Queued);
            t.expect_generation = Some(b.lease_generation);
            match self.apply(t).await {
                Ok(Applied::Moved(b, _)) => return Ok(b),
                // It was dispatched meanwhile: ask its worker instead.
                Ok(_) | Err(StoreError::Conflict) | Err(StoreError::Stale { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.mark_leave_requested(&b.id).await?;
        let b = self.store.bot(&b.id).await?.ok_or(StoreError::NotFound)?;
        if let (Some(w), Ok(bot_id)) = (&b.worker_id, b.id.parse()) {
            let generation = b.lease_generation as u64;
            // The worker's link may be held by another replica.
            if !self
                .links
                .send(w, ControlMsg::Cancel { bot_id, generation })
            {
                self.events
                    .bus()
                    .command(w, Command::Cancel { bot_id, generation });
            }
        }
        Ok(b)
    }

    /// Wakes the dispatcher: a worker came with room, or a bot was queued.
    pub(crate) fn wake_dispatch(&self) {
        self.dispatch_wakeup.notify_one();
    }

    fn moved(&self, bot: &bot::Model, event: &bot_event::Model) {
        let to = event.status.0;
        self.metrics
            .transitions
            .with_label_values(&[to.as_str()])
            .inc();
        self.events.publish(event);
        // A queued bot waits for dispatch (on whichever replica holds a
        // worker of its region): due now, it goes into its group's stream;
        // later, the dispatcher finds it missing once it is due. An ended
        // bot frees room here.
        if to == BotStatus::Queued {
            if bot.join_at <= event.at {
                self.events
                    .bus()
                    .queued(&bot.region, bot.pool.as_deref(), &bot.id);
            } else {
                self.events.bus().publish(Notice::Dispatch);
            }
        }
        if to == BotStatus::Queued || to.is_final() {
            self.wake_dispatch();
        }
    }
}
