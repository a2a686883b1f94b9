//! The fence every worker-driven write passes: the lease generation it
//! speaks for must be the bot's current one, and its result sequence number
//! must be the next one (a lower one was persisted before; a higher one means
//! a frame was lost, so the worker replays). Pure: it reads the row the
//! caller loaded in its transaction.

use super::StoreError;
use crate::entity::bot;

/// Where a result frame stands in its bot's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The next frame: apply it.
    Next,
    /// Persisted before: acknowledge it again, change nothing.
    Duplicate,
}

/// The generation must be the bot's current lease.
pub(crate) fn lease(bot: &bot::Model, generation: i64) -> Result<(), StoreError> {
    if bot.lease_generation != generation {
        return Err(StoreError::Stale {
            got: generation,
            current: bot.lease_generation,
        });
    }
    Ok(())
}

/// The current lease, held by this worker: only the holder may speak for a
/// bot.
pub(crate) fn holder(bot: &bot::Model, worker_id: &str, generation: i64) -> Result<(), StoreError> {
    lease(bot, generation)?;
    if bot.worker_id.as_deref() != Some(worker_id) {
        return Err(StoreError::Stale {
            got: generation,
            current: bot.lease_generation,
        });
    }
    Ok(())
}

/// The frame's place after the last persisted sequence number.
pub(crate) fn sequence(bot: &bot::Model, seq: i64) -> Result<Place, StoreError> {
    if seq <= bot.last_result_seq {
        return Ok(Place::Duplicate);
    }
    if seq != bot.last_result_seq + 1 {
        return Err(StoreError::Gap {
            expected: bot.last_result_seq + 1,
            got: seq,
        });
    }
    Ok(Place::Next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::names::Stored;
    use attache_protocol::{BotStatus, Platform};

    fn bot(generation: i64, seq: i64, worker: Option<&str>) -> bot::Model {
        let at = chrono::Utc::now();
        bot::Model {
            id: "b".into(),
            tenant_id: "t".into(),
            region: "r".into(),
            meeting_url: "u".into(),
            platform: Stored(Platform::Sandbox),
            bot_name: "n".into(),
            status: Stored(BotStatus::InCall),
            status_reason: None,
            join_at: at,
            join_timeout_ms: 0,
            lobby_timeout_ms: 0,
            max_duration_ms: 0,
            nobody_joined_ms: 0,
            alone_ms: 0,
            silence_ms: 0,
            worker_id: worker.map(str::to_string),
            lease_generation: generation,
            last_result_seq: seq,
            leave_requested: false,
            created_at: at,
            updated_at: at,
            ended_at: None,
            data_key: None,
            transcription: None,
            pool: None,
            object_store: None,
            queued_at: None,
            queue_reason: None,
            meeting_url_sealed: None,
            bot_name_sealed: None,
            key_generation: None,
            trace_parent: None,
        }
    }

    #[test]
    fn the_fence() {
        let b = bot(3, 10, Some("w"));
        assert!(lease(&b, 3).is_ok());
        assert!(matches!(
            lease(&b, 2),
            Err(StoreError::Stale { got: 2, current: 3 })
        ));
        assert!(holder(&b, "w", 3).is_ok());
        assert!(matches!(
            holder(&b, "other", 3),
            Err(StoreError::Stale { .. })
        ));
        assert!(matches!(
            holder(&bot(3, 10, None), "w", 3),
            Err(StoreError::Stale { .. })
        ));
        assert_eq!(sequence(&b, 11).unwrap(), Place::Next);
        assert_eq!(sequence(&b, 10).unwrap(), Place::Duplicate);
        assert_eq!(sequence(&b, 1).unwrap(), Place::Duplicate);
        assert!(matches!(
            sequence(&b, 12),
            Err(StoreError::Gap {
                expected: 11,
                got: 12
            })
        ));
    }
}
