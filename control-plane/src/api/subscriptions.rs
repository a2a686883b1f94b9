//! Live feeds: a bot's status changes (`botEvents`) and its transcript as
//! it is spoken (`transcript`).
//!
//! Each stream asks the guard before it starts and then only ever yields
//! what belongs to the bot it was opened for, in the caller's tenant: live
//! events are filtered by bot (and tenant) before they are sent, never
//! passed through.

use async_graphql::{Context, ID, Result, Subscription};
use attache_tenant_policy::Action;
use futures::Stream;

use super::bots::BotEvent;
use super::error::ApiError;
use super::guard::guard;
use super::transcripts::{self, TranscriptSegment};

#[derive(Default)]
pub(crate) struct BotSubscription;

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
        let (bot_id, tenant_id) = (bot.id, bot.tenant_id);
        Ok(async_stream::stream! {
            for s in stored { yield s; }
            if ended { return; }
            loop {
                tokio::select! {
                    ev = live.recv() => match ev {
                        Ok(e) if e.bot_id == bot_id && e.tenant_id == tenant_id => {
                            yield TranscriptSegment::live(&e);
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    st = statuses.recv() => match st {
                        Ok(ev) if ev.bot_id == bot_id && ev.status.is_final() => {
                            // Segments are stored (and published) before the
                            // final status: take what is still queued, then end.
                            while let Ok(e) = live.try_recv() {
                                if e.bot_id == bot_id && e.tenant_id == tenant_id {
                                    yield TranscriptSegment::live(&e);
                                }
                            }
                            return;
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
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
        let store = state.store.clone();
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
                match live.recv().await {
                    Ok(ev) => pending.push(ev),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the live feed: the stored history is
                        // the truth, so catch up from it.
                        match store.scoped(&tenant_id).events(&bot_id).await {
                            Ok(evs) => pending = evs,
                            Err(e) => {
                                tracing::warn!(%bot_id, error = %e, "subscription cannot catch up; ending it");
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}
