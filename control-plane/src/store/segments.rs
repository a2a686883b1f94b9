//! Transcript segments as a batch of result frames writes them: the rows
//! the batch touches are read in one query, changed in memory in frame
//! order (a final segment is never replaced by a late partial), and
//! written at the end, the new ones in multi-row inserts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    Set, Unchanged,
};

use super::Written;
use crate::entity::{bot, transcript_segment};

/// Rows per statement: well under either database's limit on bound values.
const CHUNK: usize = 500;

/// One segment as a frame states it (its text and speaker sealed).
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub key: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker_sealed: Option<Vec<u8>>,
    pub text_sealed: Vec<u8>,
    pub confidence: f64,
    pub language: Option<String>,
    pub is_final: bool,
}

/// A row as the batch leaves it.
struct Row {
    /// The stored row's id; `None` for a segment new in this batch.
    id: Option<i64>,
    model: transcript_segment::Model,
    changed: bool,
}

/// The transcript rows of one transaction, by (bot, segment key).
#[derive(Default)]
pub(super) struct Segments {
    rows: HashMap<(String, String), Row>,
}

impl Segments {
    /// Reads the stored rows of `keys` (bot id, segment key).
    pub(super) async fn read(
        txn: &DatabaseTransaction,
        keys: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Segments, DbErr> {
        let keys: Vec<_> = keys.into_iter().collect();
        let mut rows = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let any = chunk.iter().fold(Condition::any(), |any, (bot_id, key)| {
                any.add(
                    Condition::all()
                        .add(transcript_segment::Column::BotId.eq(bot_id.clone()))
                        .add(transcript_segment::Column::SegmentKey.eq(key.clone())),
                )
            });
            for model in transcript_segment::Entity::find()
                .filter(any)
                .all(txn)
                .await?
            {
                let id = Some(model.id);
                rows.insert(
                    (model.bot_id.clone(), model.segment_key.clone()),
                    Row {
                        id,
                        model,
                        changed: false,
                    },
                );
            }
        }
        Ok(Segments { rows })
    }

    /// One frame's segment, after the frames before it in the batch.
    pub(super) fn put(
        &mut self,
        bot: &bot::Model,
        generation: i64,
        at: DateTime<Utc>,
        s: Segment,
    ) -> Written {
        let slot = (bot.id.clone(), s.key.clone());
        if let Some(row) = self.rows.get_mut(&slot) {
            if row.model.is_final && !s.is_final {
                return Written::Refused("a partial segment after its final");
            }
            let m = &mut row.model;
            m.start_ms = s.start_ms;
            m.end_ms = s.end_ms;
            m.speaker = None;
            m.speaker_sealed = s.speaker_sealed;
            m.text_sealed = s.text_sealed;
            m.confidence = s.confidence;
            m.language = s.language;
            m.is_final = s.is_final;
            m.updated_at = at;
            row.changed = true;
            return Written::Applied;
        }
        let model = transcript_segment::Model {
            id: 0,
            bot_id: bot.id.clone(),
            tenant_id: bot.tenant_id.clone(),
            generation,
            segment_key: s.key,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            speaker: None,
            text_sealed: s.text_sealed,
            confidence: s.confidence,
            language: s.language,
            is_final: s.is_final,
            updated_at: at,
            speaker_sealed: s.speaker_sealed,
        };
        self.rows.insert(
            slot,
            Row {
                id: None,
                model,
                changed: true,
            },
        );
        Written::Applied
    }

    /// Writes what changed: stored rows one by one, new rows together.
    pub(super) async fn write(self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        let mut new = Vec::new();
        for row in self.rows.into_values().filter(|r| r.changed) {
            let m = row.model;
            let mut active = transcript_segment::ActiveModel {
                id: Default::default(),
                bot_id: Set(m.bot_id),
                tenant_id: Set(m.tenant_id),
                generation: Set(m.generation),
                segment_key: Set(m.segment_key),
                start_ms: Set(m.start_ms),
                end_ms: Set(m.end_ms),
                speaker: Set(m.speaker),
                text_sealed: Set(m.text_sealed),
                confidence: Set(m.confidence),
                language: Set(m.language),
                is_final: Set(m.is_final),
                updated_at: Set(m.updated_at),
                speaker_sealed: Set(m.speaker_sealed),
            };
            match row.id {
                Some(id) => {
                    active.id = Unchanged(id);
                    active.update(txn).await?;
                }
                None => new.push(active),
            }
        }
        while !new.is_empty() {
            let rest = new.split_off(new.len().min(CHUNK));
            transcript_segment::Entity::insert_many(std::mem::replace(&mut new, rest))
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }
}
