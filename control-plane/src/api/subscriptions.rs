//! Live feeds: a bot's status changes (`botEvents`) and its transcript as
//! it is spoken (`transcript`), on whichever replica the subscriber is.
//!
//! Each stream asks the guard before it starts and then only ever yields
//! what belongs to the bot it was opened for, in the caller's tenant. A
//! live event (from this process, or from another replica through the bus)
//! is a prompt to read the stored record, which the database orders; while
//! the bus is degraded (Redis down), or after it may have missed notices,
//! the streams re-read stored history every second instead, so nothing
//! stored is missed.

use std::collections::HashMap;
use std::time::Duration;

use async_graphql::{Context, ID, Result, Subscription};
use attache_protocol::DataKey;
use attache_tenant_policy::Action;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::activity::{ActivityFeed, BotActivity};
use super::bots::BotEvent;
use super::error::ApiError;
use super::guard::guard;
use super::transcripts::{self, TranscriptSegment};
use crate::AppState;
use crate::bus::Seen;
use crate::entity::bot;

/// How often a stream checks whether it must re-read stored history.
const REREAD_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct BotSubscription;

#[derive(Default)]
pub(crate) struct ActivitySubscription;

#[Subscription]
impl BotSubscription {
    /// A bot's transcript as it is spoken: the segments stored so far, then
    /// partial and final segments live (a final replaces the partials with
    /// the same id). The stream ends when the bot has ended.
    async fn transcript(
        &self,
        ctx: &Context<'_>,
        bot_id: ID,
    ) -> Result<impl Stream<Item = TranscriptSegment>> {
        let (state, _, scoped) = guard(ctx, Action::ReadBots)?;
        let state = state.clone();
        // Subscribe before reading what is stored so nothing falls between.
        let mut live = state.events.subscribe_transcripts();
        let mut statuses = state.events.subscribe();
        let bot = scoped
            .bot(&bot_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let stored = transcripts::stored(ctx, &scoped, &bot).await?;
        let ended = bot.status.is_final();
        Ok(async_stream::stream! {
            let mut feed = TranscriptFeed::new(state, bot);
            for s in feed.fresh(stored) { yield s; }
            if ended { return; }
            let mut seen = Seen::default();
            feed.state.bus.must_reread(&mut seen);
            let mut tick = tokio::time::interval(REREAD_CHECK);
            loop {
                let mut reread = false;
                tokio::select! {
                    ev = live.recv() => match ev {
                        Ok(e) if e.bot_id == feed.bot.id && e.tenant_id == feed.bot.tenant_id => {
                            match e.segment {
                                Some(s) => {
                                    let s = TranscriptSegment::live(&e.segment_key, &s);
                                    for s in feed.fresh(vec![s]) { yield s; }
                                }
                                // From another replica: read it, sealed.
                                None => match feed.one(&e.segment_key).await {
                                    Ok(s) => for s in feed.fresh(s) { yield s; },
                                    Err(e) => {
                                        tracing::warn!(error = ?e, "transcript subscription cannot read a segment; ending it");
                                        return;
                                    }
                                },
                            }
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => reread = true,
                        Err(RecvError::Closed) => return,
                    },
                    st = statuses.recv() => match st {
                        Ok(m) if m.bot_id == feed.bot.id && m.status.is_final() => {
                            // Segments are stored before the final status:
                            // what is stored now is the whole transcript.
                            if let Ok(rest) = feed.all().await {
                                for s in feed.fresh(rest) { yield s; }
                            }
                            return;
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => reread = true,
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => reread = feed.state.bus.must_reread(&mut seen),
                }
                if reread {
                    match feed.all().await {
                        Ok(rest) => for s in feed.fresh(rest) { yield s; },
                        Err(e) => {
                            tracing::warn!(error = ?e, "transcript subscription cannot catch up; ending it");
                            return;
                        }
                    }
                    match feed.state.store.bot(&feed.bot.id).await {
                        Ok(Some(b)) if b.status.is_final() => return,
                        Ok(Some(_)) => {}
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "transcript subscription cannot read its bot; ending it");
                            return;
                        }
                    }
                }
            }
        })
    }

    /// A bot's status changes: first those already stored, then live ones;
    /// the stream ends after the final status.
    async fn bot_events(
        &self,
        ctx: &Context<'_>,
        bot_id: ID,
    ) -> Result<impl Stream<Item = BotEvent>> {
        let (state, principal, scoped) = guard(ctx, Action::ReadBots)?;
        let state = state.clone();
        let tenant_id = principal.tenant_id.clone();
        // Subscribe before reading history so nothing falls in between.
        let mut live = state.events.subscribe();
        let bot = scoped
            .bot(&bot_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let history = scoped.events(&bot.id).await.map_err(ApiError::from)?;
        let bot_id = bot.id;
        Ok(async_stream::stream! {
            let mut last_id = 0;
            let mut pending = history;
            let mut seen = Seen::default();
            state.bus.must_reread(&mut seen);
            let mut tick = tokio::time::interval(REREAD_CHECK);
            loop {
                for ev in pending.drain(..) {
                    if ev.bot_id != bot_id || ev.id <= last_id {
                        continue;
                    }
                    last_id = ev.id;
                    let done = ev.status.is_final();
                    yield BotEvent::from(ev);
                    if done { return; }
                }
                // The stored history is the truth, in order: a live event
                // says there is more of it.
                let reread = tokio::select! {
                    m = live.recv() => match m {
                        Ok(m) => m.bot_id == bot_id && m.tenant_id == tenant_id && m.event_id > last_id,
                        Err(RecvError::Lagged(_)) => true,
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => state.bus.must_reread(&mut seen),
                };
                if reread {
                    match state.store.scoped(&tenant_id).events(&bot_id).await {
                        Ok(evs) => pending = evs,
                        Err(e) => {
                            tracing::warn!(%bot_id, error = %e, "subscription cannot catch up; ending it");
                            return;
                        }
                    }
                }
            }
        })
    }
}

#[Subscription]
impl ActivitySubscription {
    /// What a bot sees as it happens: people joining and leaving, speaking
    /// turns, chat messages and warnings, each once; first what is stored,
    /// then live, in the order the worker sent them (a turn's end may come
    /// after the next turn's start). The stream ends when the bot has ended.
    async fn bot_activity(
        &self,
        ctx: &Context<'_>,
        bot_id: ID,
    ) -> Result<impl Stream<Item = BotActivity>> {
        let (state, _, scoped) = guard(ctx, Action::ReadBots)?;
        let state = state.clone();
        // Subscribe before reading what is stored so nothing falls between.
        let mut live = state.events.subscribe_activity();
        let mut statuses = state.events.subscribe();
        let bot = scoped
            .bot(&bot_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        let ended = bot.status.is_final();
        let mut feed = ActivityFeed::new(state, bot);
        let stored = feed.next().await?;
        Ok(async_stream::stream! {
            for a in stored { yield a; }
            if ended { return; }
            let mut seen = Seen::default();
            feed.state().bus.must_reread(&mut seen);
            let mut tick = tokio::time::interval(REREAD_CHECK);
            loop {
                // Whether to read, and whether the bot may have ended
                // meanwhile unseen (`None`), has (`Some(true)`) or has not.
                let (reread, ended) = tokio::select! {
                    ev = live.recv() => match ev {
                        Ok(e) => (e.bot_id == feed.bot.id && e.tenant_id == feed.bot.tenant_id, Some(false)),
                        Err(RecvError::Lagged(_)) => (true, None),
                        Err(RecvError::Closed) => return,
                    },
                    st = statuses.recv() => match st {
                        // Activity is stored before the final status.
                        Ok(m) if m.bot_id == feed.bot.id && m.status.is_final() => (true, Some(true)),
                        Ok(_) => (false, Some(false)),
                        Err(RecvError::Lagged(_)) => (true, None),
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => (feed.state().bus.must_reread(&mut seen), None),
                };
                if !reread {
                    continue;
                }
                match feed.next().await {
                    Ok(items) => for a in items { yield a; },
                    Err(e) => {
                        tracing::warn!(error = ?e, "activity subscription cannot catch up; ending it");
                        return;
                    }
                }
                let done = match ended {
                    Some(ended) => ended,
                    None => match feed.state().store.bot(&feed.bot.id).await {
                        Ok(Some(b)) => b.status.is_final(),
                        Ok(None) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "activity subscription cannot read its bot; ending it");
                            true
                        }
                    },
                };
                if done {
                    return;
                }
            }
        })
    }
}

/// What one transcript subscription has sent, so that re-reads send only
/// what is new: an unseen segment, or the final words of one seen partial.
struct TranscriptFeed {
    state: AppState,
    bot: bot::Model,
    key: Option<DataKey>,
    /// Segment id → whether its final words were sent.
    sent: HashMap<String, bool>,
}

impl TranscriptFeed {
    fn new(state: AppState, bot: bot::Model) -> Self {
        TranscriptFeed {
            state,
            bot,
            key: None,
            sent: HashMap::new(),
        }
    }

    /// Of `segments`, those the subscriber has not had yet.
    fn fresh(&mut self, segments: Vec<TranscriptSegment>) -> Vec<TranscriptSegment> {
        segments
            .into_iter()
            .filter(|s| {
                let id = s.id.to_string();
                match self.sent.get(&id) {
                    Some(true) => false,
                    Some(false) if !s.is_final => false,
                    _ => {
                        self.sent.insert(id, s.is_final);
                        true
                    }
                }
            })
            .collect()
    }

    async fn key(&mut self) -> Result<Option<&DataKey>, ApiError> {
        if self.key.is_none() {
            self.key = self
                .state
                .keys
                .existing_bot_key(&self.bot)
                .await
                .map_err(ApiError::internal)?;
        }
        Ok(self.key.as_ref())
    }

    /// One stored segment, opened.
    async fn one(&mut self, segment_key: &str) -> Result<Vec<TranscriptSegment>, ApiError> {
        let row = self
            .state
            .store
            .scoped(&self.bot.tenant_id)
            .transcript_segment(&self.bot.id, segment_key)
            .await?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let key = self.key().await?.cloned();
        Ok(vec![TranscriptSegment::open(key.as_ref(), &row)?])
    }

    /// Every stored segment, opened.
    async fn all(&mut self) -> Result<Vec<TranscriptSegment>, ApiError> {
        let store = self.state.store.clone();
        let rows = transcripts::rows(&store.scoped(&self.bot.tenant_id), &self.bot.id).await?;
        let key = self.key().await?.cloned();
        rows.iter()
            .map(|r| TranscriptSegment::open(key.as_ref(), r))
            .collect()
    }
}
