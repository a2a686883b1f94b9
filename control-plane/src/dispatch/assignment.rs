//! The Assign command a worker gets for a leased bot: the lease, the
//! meeting, the rules it leaves by, its data key and its transcription
//! settings. Read-only: it never moves a bot.
//!
//! The meeting URL and the bot's name are stored sealed; they are opened
//! here because the worker needs them to join, and travel only inside the
//! Assign, over the fleet link's mutual TLS.

use attache_protocol::{Assignment, SessionLimits};
use tracing::Instrument;

use crate::AppState;
use crate::entity::bot;

/// The Assign command for a leased bot, with its data key (made now if an
/// older version created the bot without one) and its transcription
/// settings. `None` if the key, the sealed fields or the settings cannot be
/// read: the dispatch sweep tries again.
///
/// Its span continues the trace of the request that created the bot
/// (`bots.trace_parent`), and the Assign carries it on to the worker.
pub(crate) async fn assignment(state: &AppState, b: &bot::Model) -> Option<Assignment> {
    let span = tracing::info_span!(
        "assign",
        bot_id = %b.id,
        generation = b.lease_generation,
        trace_id = tracing::field::Empty
    );
    attache_protocol::trace::follow(&span, b.trace_parent.as_deref());
    let trace_parent = attache_protocol::trace::traceparent(&span);
    let mut a = build(state, b).instrument(span).await?;
    a.trace_parent = trace_parent;
    Some(a)
}

async fn build(state: &AppState, b: &bot::Model) -> Option<Assignment> {
    let data_key = match state.keys.bot_key(b).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(bot_id = %b.id, error = %e, "cannot get the bot's data key");
            return None;
        }
    };
    let (meeting_url, bot_name) = match crate::sealing::open_bot(Some(&data_key), b) {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(bot_id = %b.id, error = %e, "cannot open the bot's meeting URL and name");
            return None;
        }
    };
    let transcription = match crate::transcription::spec_for(state, b).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(bot_id = %b.id, error = %e, "cannot read the bot's transcription settings");
            return None;
        }
    };
    // The deployment's, not the bot's.
    let no_audio_warning_ms = state.config.default_limits.no_audio_warning_ms;
    Some(Assignment {
        bot_id: b.id.parse().ok()?,
        generation: b.lease_generation as u64,
        tenant_id: b.tenant_id.parse().ok()?,
        meeting_url,
        platform: b.platform.0,
        bot_name,
        limits: SessionLimits {
            join_timeout_ms: b.join_timeout_ms as u64,
            lobby_timeout_ms: b.lobby_timeout_ms as u64,
            max_duration_ms: b.max_duration_ms as u64,
            nobody_joined_ms: b.nobody_joined_ms as u64,
            alone_ms: b.alone_ms as u64,
            silence_ms: b.silence_ms as u64,
            no_audio_warning_ms,
        },
        data_key,
        transcription,
        trace_parent: None,
    })
}
