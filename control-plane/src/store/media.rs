//! What bots report from inside their meetings: participants, the speaker
//! timeline, chat, recordings and warnings. Each write comes from one result
//! frame and is applied in the same transaction that records the frame's
//! sequence number, so a replayed frame is stored once.
//!
//! Every personal field arrives here sealed (`crate::sealing`), and platform
//! ids as keyed hashes; nothing here writes one in the clear.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use super::activity;
use super::fence::{self, Place};
use super::segments::{Segment, Segments};
use super::{Scoped, Slice, Store, StoreError, Window};
use crate::entity::names::{RecordingStatus, Stored};
use crate::entity::{
    bot, bot_warning, chat_message, participant, recording, speaker_segment, transcript_segment,
};

/// A platform id (a person's, a chat message's) as the store matches it.
#[derive(Clone)]
pub(crate) struct MatchKey {
    /// Its keyed hash: what is stored and matched.
    pub hash: String,
    /// The id itself, only to find a row an older version stored in the
    /// clear and that is not sealed yet; never written.
    pub clear: String,
}

impl std::fmt::Debug for MatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatchKey({})", self.hash)
    }
}

/// What one result frame stores. Names, ids, chat and transcript text
/// come sealed with the bot's data key.
#[derive(Debug, Clone)]
pub(crate) enum MediaWrite {
    ParticipantJoined {
        key: MatchKey,
        id_sealed: Vec<u8>,
        name_sealed: Vec<u8>,
    },
    ParticipantLeft {
        key: MatchKey,
    },
    SpeakerStarted {
        key: MatchKey,
        id_sealed: Vec<u8>,
        name_sealed: Vec<u8>,
    },
    SpeakerStopped {
        key: MatchKey,
    },
    Chat {
        key: MatchKey,
        sender_sealed: Vec<u8>,
        text_sealed: Vec<u8>,
    },
    /// A transcript segment.
    Transcript(Segment),
    RecordingStarted {
        format: String,
        object_key: String,
    },
    /// The chunk's bytes are already in the object store.
    RecordingChunk {
        offset: i64,
        len: i64,
    },
    RecordingFinished {
        status: RecordingStatus,
        object_key: String,
        size_bytes: i64,
        duration_ms: i64,
        sha256: String,
    },
    Warning {
        code: String,
        detail: String,
    },
    /// The worker dropped the results from this frame through `through`:
    /// stored as a warning, and the sequence goes on after `through`.
    Skipped {
        through: i64,
        detail: String,
    },
    /// Nothing to store (the frame was refused); it keeps its place in the
    /// sequence so the stream goes on.
    Nothing,
}

impl MediaWrite {
    /// The bot's last result sequence number once this write, at `seq`,
    /// is applied.
    pub(crate) fn last_seq(&self, seq: i64) -> i64 {
        match self {
            MediaWrite::Skipped { through, .. } => seq.max(*through),
            _ => seq,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    Applied,
    Duplicate,
    /// Persisted as a place in the sequence only, for this reason.
    Refused(&'static str),
}

impl Store {
    /// Applies one result frame's write, once, in sequence order.
    pub(crate) async fn apply_result(
        &self,
        bot_id: &str,
        generation: i64,
        seq: i64,
        at: DateTime<Utc>,
        write: MediaWrite,
    ) -> Result<Written, StoreError> {
        let txn = self.db.begin().await?;
        let bot = bot::Entity::find_by_id(bot_id.to_string())
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        fence::lease(&bot, generation)?;
        if fence::sequence(&bot, seq)? == Place::Duplicate {
            return Ok(Written::Duplicate);
        }
        let last = write.last_seq(seq);
        let outcome = write_one(&txn, &bot, generation, at, write).await?;
        let moved = bot::Entity::update_many()
            .filter(bot::Column::Id.eq(bot.id.clone()))
            .filter(bot::Column::LeaseGeneration.eq(generation))
            .filter(bot::Column::LastResultSeq.eq(bot.last_result_seq))
            .col_expr(bot::Column::LastResultSeq, Expr::value(last))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            return Err(StoreError::Conflict);
        }
        txn.commit().await?;
        Ok(outcome)
    }

    /// The recording row of a bot, whoever owns it (the control plane's own
    /// bookkeeping; tenants read through [`Scoped::recording`]).
    pub(crate) async fn recording(&self, bot_id: &str) -> Result<Option<recording::Model>, DbErr> {
        recording::Entity::find_by_id(bot_id.to_string())
            .one(&self.db)
            .await
    }

    /// Recordings still open for bots that have ended: their worker will
    /// never close them.
    pub(crate) async fn orphaned_recordings(&self) -> Result<Vec<recording::Model>, DbErr> {
        let open = recording::Entity::find()
            .filter(recording::Column::Status.eq("RECORDING"))
            .all(&self.db)
            .await?;
        let mut out = Vec::new();
        for r in open {
            if let Some(b) = bot::Entity::find_by_id(r.bot_id.clone())
                .one(&self.db)
                .await?
                && b.ended_at.is_some()
                && (b.lease_generation != r.generation
                    || b.status == attache_protocol::BotStatus::Failed.as_str()
                    || b.status == attache_protocol::BotStatus::Ended.as_str())
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Closes a recording the control plane assembled itself.
    pub(crate) async fn close_recording(
        &self,
        bot_id: &str,
        status: RecordingStatus,
        size_bytes: i64,
        duration_ms: Option<i64>,
        sha256: Option<String>,
    ) -> Result<(), DbErr> {
        recording::Entity::update_many()
            .filter(recording::Column::BotId.eq(bot_id))
            .filter(recording::Column::Status.eq("RECORDING"))
            .col_expr(recording::Column::Status, Expr::value(Stored(status)))
            .col_expr(recording::Column::SizeBytes, Expr::value(size_bytes))
            .col_expr(recording::Column::DurationMs, Expr::value(duration_ms))
            .col_expr(recording::Column::Sha256, Expr::value(sha256))
            .col_expr(recording::Column::FinishedAt, Expr::value(super::now()))
            .exec(&self.db)
            .await?;
        if let Some(r) = recording::Entity::find_by_id(bot_id.to_string())
            .one(&self.db)
            .await?
        {
            self.close_recording_event(
                &r.tenant_id,
                bot_id,
                status.as_str(),
                size_bytes,
                duration_ms,
            )
            .await?;
        }
        Ok(())
    }
}

pub(super) async fn write_one(
    txn: &DatabaseTransaction,
    bot: &bot::Model,
    generation: i64,
    at: DateTime<Utc>,
    write: MediaWrite,
) -> Result<Written, DbErr> {
    let (bot_id, tenant_id) = (bot.id.clone(), bot.tenant_id.clone());
    match write {
        MediaWrite::ParticipantJoined {
            key,
            id_sealed,
            name_sealed,
        } => {
            let present = participant::Entity::find()
                .filter(participant::Column::BotId.eq(bot_id.clone()))
                .filter(person(&key))
                .filter(participant::Column::LeftAt.is_null())
                .one(txn)
                .await?;
            if present.is_none() {
                let stay = participant::ActiveModel {
                    bot_id: Set(bot_id),
                    tenant_id: Set(tenant_id),
                    participant_key: Set(key.hash),
                    name: Set(String::new()),
                    joined_at: Set(at),
                    left_at: Set(None),
                    participant_id_sealed: Set(Some(id_sealed)),
                    name_sealed: Set(Some(name_sealed)),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                activity::on_joined(txn, &stay).await?;
            }
        }
        MediaWrite::ParticipantLeft { key } => {
            let open = participant::Entity::find()
                .filter(participant::Column::BotId.eq(bot_id.clone()))
                .filter(person(&key))
                .filter(participant::Column::LeftAt.is_null())
                .all(txn)
                .await?;
            participant::Entity::update_many()
                .filter(participant::Column::BotId.eq(bot_id))
                .filter(person(&key))
                .filter(participant::Column::LeftAt.is_null())
                .col_expr(participant::Column::LeftAt, Expr::value(at))
                .exec(txn)
                .await?;
            for stay in &open {
                activity::on_left(txn, stay, at).await?;
            }
        }
        MediaWrite::SpeakerStarted {
            key,
            id_sealed,
            name_sealed,
        } => {
            let open = speaker_segment::Entity::find()
                .filter(speaker_segment::Column::BotId.eq(bot_id.clone()))
                .filter(speaker(&key))
                .filter(speaker_segment::Column::EndedAt.is_null())
                .one(txn)
                .await?;
            if open.is_none() {
                speaker_segment::ActiveModel {
                    bot_id: Set(bot_id),
                    tenant_id: Set(tenant_id),
                    participant_key: Set(key.hash),
                    name: Set(String::new()),
                    started_at: Set(at),
                    ended_at: Set(None),
                    participant_id_sealed: Set(Some(id_sealed)),
                    name_sealed: Set(Some(name_sealed)),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
            }
        }
        MediaWrite::SpeakerStopped { key } => {
            speaker_segment::Entity::update_many()
                .filter(speaker_segment::Column::BotId.eq(bot_id))
                .filter(speaker(&key))
                .filter(speaker_segment::Column::EndedAt.is_null())
                .col_expr(speaker_segment::Column::EndedAt, Expr::value(at))
                .exec(txn)
                .await?;
        }
        MediaWrite::Chat {
            key,
            sender_sealed,
            text_sealed,
        } => {
            // A message seen again (by a later lease of the same bot) is
            // the same message.
            let seen = chat_message::Entity::find()
                .filter(chat_message::Column::BotId.eq(bot_id.clone()))
                .filter(message(&key))
                .one(txn)
                .await?;
            if seen.is_none() {
                let m = chat_message::ActiveModel {
                    bot_id: Set(bot_id),
                    tenant_id: Set(tenant_id),
                    message_key: Set(key.hash),
                    sender: Set(String::new()),
                    text: Set(String::new()),
                    sender_sealed: Set(Some(sender_sealed)),
                    text_sealed: Set(Some(text_sealed)),
                    key_hashed: Set(true),
                    sent_at: Set(at),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                activity::on_chat(txn, &m).await?;
            }
        }
        MediaWrite::RecordingStarted { format, object_key } => {
            let existing = recording::Entity::find_by_id(bot_id.clone())
                .one(txn)
                .await?;
            match existing {
                // A later lease starts over: its recording replaces the
                // earlier, unfinished one.
                Some(r) if r.generation >= generation => {
                    return Ok(Written::Refused("recording already started"));
                }
                Some(_) => {
                    recording::Entity::delete_by_id(bot_id.clone())
                        .exec(txn)
                        .await?;
                }
                None => {}
            }
            recording::ActiveModel {
                bot_id: Set(bot_id),
                tenant_id: Set(tenant_id),
                generation: Set(generation),
                status: Set(Stored(RecordingStatus::Recording)),
                format: Set(format),
                object_key: Set(object_key),
                size_bytes: Set(0),
                duration_ms: Set(None),
                sha256: Set(None),
                started_at: Set(at),
                finished_at: Set(None),
            }
            .insert(txn)
            .await?;
        }
        MediaWrite::RecordingChunk { offset, len } => {
            let moved = recording::Entity::update_many()
                .filter(recording::Column::BotId.eq(bot_id))
                .filter(recording::Column::Generation.eq(generation))
                .filter(recording::Column::Status.eq("RECORDING"))
                .filter(recording::Column::SizeBytes.eq(offset))
                .col_expr(recording::Column::SizeBytes, Expr::value(offset + len))
                .exec(txn)
                .await?;
            if moved.rows_affected != 1 {
                return Ok(Written::Refused("recording chunk out of place"));
            }
        }
        MediaWrite::RecordingFinished {
            status,
            object_key,
            size_bytes,
            duration_ms,
            sha256,
        } => {
            let moved = recording::Entity::update_many()
                .filter(recording::Column::BotId.eq(bot_id.clone()))
                .filter(recording::Column::Generation.eq(generation))
                .filter(recording::Column::Status.eq("RECORDING"))
                .col_expr(recording::Column::Status, Expr::value(Stored(status)))
                .col_expr(recording::Column::ObjectKey, Expr::value(object_key))
                .col_expr(recording::Column::SizeBytes, Expr::value(size_bytes))
                .col_expr(recording::Column::DurationMs, Expr::value(duration_ms))
                .col_expr(recording::Column::Sha256, Expr::value(sha256))
                .col_expr(recording::Column::FinishedAt, Expr::value(at))
                .exec(txn)
                .await?;
            if moved.rows_affected != 1 {
                return Ok(Written::Refused("no open recording to finish"));
            }
            super::webhooks::on_recording(
                txn,
                &tenant_id,
                &bot_id,
                status.as_str(),
                size_bytes,
                Some(duration_ms),
                at,
            )
            .await?;
        }
        MediaWrite::Skipped { detail, .. } => {
            bot_warning::ActiveModel {
                bot_id: Set(bot_id),
                tenant_id: Set(tenant_id),
                code: Set(attache_protocol::WarningCode::ResultsLost
                    .as_str()
                    .to_string()),
                detail: Set(detail),
                at: Set(at),
                ..Default::default()
            }
            .insert(txn)
            .await?;
        }
        MediaWrite::Warning { code, detail } => {
            bot_warning::ActiveModel {
                bot_id: Set(bot_id),
                tenant_id: Set(tenant_id),
                code: Set(code),
                detail: Set(detail),
                at: Set(at),
                ..Default::default()
            }
            .insert(txn)
            .await?;
        }
        MediaWrite::Transcript(segment) => {
            let key = (bot.id.clone(), segment.key.clone());
            let mut segments = Segments::read(txn, [key]).await?;
            let written = segments.put(bot, generation, at, segment);
            segments.write(txn).await?;
            return Ok(written);
        }
        MediaWrite::Nothing => return Ok(Written::Refused("invalid frame")),
    }
    Ok(Written::Applied)
}

/// A person's rows: by their id's hash, or (rows an older version stored,
/// not sealed yet) by the id itself.
fn person(key: &MatchKey) -> Condition {
    Condition::any()
        .add(participant::Column::ParticipantKey.eq(key.hash.clone()))
        .add(
            Condition::all()
                .add(participant::Column::ParticipantKey.eq(key.clear.clone()))
                .add(participant::Column::NameSealed.is_null()),
        )
}

fn speaker(key: &MatchKey) -> Condition {
    Condition::any()
        .add(speaker_segment::Column::ParticipantKey.eq(key.hash.clone()))
        .add(
            Condition::all()
                .add(speaker_segment::Column::ParticipantKey.eq(key.clear.clone()))
                .add(speaker_segment::Column::NameSealed.is_null()),
        )
}

fn message(key: &MatchKey) -> Condition {
    Condition::any()
        .add(chat_message::Column::MessageKey.eq(key.hash.clone()))
        .add(
            Condition::all()
                .add(chat_message::Column::MessageKey.eq(key.clear.clone()))
                .add(chat_message::Column::KeyHashed.eq(false)),
        )
}

impl Scoped<'_> {
    pub(crate) async fn participants(
        &self,
        bot_id: &str,
    ) -> Result<Vec<participant::Model>, DbErr> {
        participant::Entity::find()
            .filter(participant::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(participant::Column::BotId.eq(bot_id))
            .order_by_asc(participant::Column::Id)
            .all(self.db)
            .await
    }

    pub(crate) async fn speaker_segments(
        &self,
        bot_id: &str,
    ) -> Result<Vec<speaker_segment::Model>, DbErr> {
        speaker_segment::Entity::find()
            .filter(speaker_segment::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(speaker_segment::Column::BotId.eq(bot_id))
            .order_by_asc(speaker_segment::Column::StartedAt)
            .order_by_asc(speaker_segment::Column::Id)
            .all(self.db)
            .await
    }

    pub(crate) async fn chat_messages(
        &self,
        bot_id: &str,
    ) -> Result<Vec<chat_message::Model>, DbErr> {
        chat_message::Entity::find()
            .filter(chat_message::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(chat_message::Column::BotId.eq(bot_id))
            .order_by_asc(chat_message::Column::SentAt)
            .order_by_asc(chat_message::Column::Id)
            .all(self.db)
            .await
    }

    pub(crate) async fn recording(&self, bot_id: &str) -> Result<Option<recording::Model>, DbErr> {
        recording::Entity::find_by_id(bot_id.to_string())
            .filter(recording::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    /// A page of a bot's transcript in time order, after the segment with
    /// id `after`.
    /// A window of a bot's transcript in time order; a cursor is the
    /// (start_ms, id) of a segment.
    pub(crate) async fn transcript_window(
        &self,
        bot_id: &str,
        window: &Window<(i64, i64)>,
    ) -> Result<Slice<transcript_segment::Model>, DbErr> {
        use sea_orm::{Condition, QuerySelect};
        use transcript_segment::Column as C;
        let beyond = |(start, id): (i64, i64), later: bool| {
            let (time, tie) = if later {
                (C::StartMs.gt(start), C::Id.gt(id))
            } else {
                (C::StartMs.lt(start), C::Id.lt(id))
            };
            Condition::any()
                .add(time)
                .add(Condition::all().add(C::StartMs.eq(start)).add(tie))
        };
        let mut q = transcript_segment::Entity::find()
            .filter(C::TenantId.eq(self.tenant_id.clone()))
            .filter(C::BotId.eq(bot_id));
        if let Some(c) = window.after {
            q = q.filter(beyond(c, true));
        }
        if let Some(c) = window.before {
            q = q.filter(beyond(c, false));
        }
        let q = if window.backward {
            q.order_by_desc(C::StartMs).order_by_desc(C::Id)
        } else {
            q.order_by_asc(C::StartMs).order_by_asc(C::Id)
        };
        let rows = q.limit(window.limit + 1).all(self.db).await?;
        Ok(window.slice(rows))
    }

    /// One stored segment of a bot's transcript, by its key.
    pub(crate) async fn transcript_segment(
        &self,
        bot_id: &str,
        segment_key: &str,
    ) -> Result<Option<transcript_segment::Model>, DbErr> {
        transcript_segment::Entity::find()
            .filter(transcript_segment::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(transcript_segment::Column::BotId.eq(bot_id))
            .filter(transcript_segment::Column::SegmentKey.eq(segment_key))
            .one(self.db)
            .await
    }

    pub(crate) async fn transcript(
        &self,
        bot_id: &str,
        after: Option<(i64, i64)>,
        limit: u64,
    ) -> Result<Vec<transcript_segment::Model>, DbErr> {
        use sea_orm::QuerySelect;
        let mut q = transcript_segment::Entity::find()
            .filter(transcript_segment::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(transcript_segment::Column::BotId.eq(bot_id));
        if let Some((start, id)) = after {
            q = q.filter(
                Condition::any()
                    .add(transcript_segment::Column::StartMs.gt(start))
                    .add(
                        Condition::all()
                            .add(transcript_segment::Column::StartMs.eq(start))
                            .add(transcript_segment::Column::Id.gt(id)),
                    ),
            );
        }
        q.order_by_asc(transcript_segment::Column::StartMs)
            .order_by_asc(transcript_segment::Column::Id)
            .limit(limit)
            .all(self.db)
            .await
    }

    pub(crate) async fn count_transcript(&self, bot_id: &str) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait;
        transcript_segment::Entity::find()
            .filter(transcript_segment::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(transcript_segment::Column::BotId.eq(bot_id))
            .count(self.db)
            .await
    }

    pub(crate) async fn warnings(&self, bot_id: &str) -> Result<Vec<bot_warning::Model>, DbErr> {
        bot_warning::Entity::find()
            .filter(bot_warning::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(bot_warning::Column::BotId.eq(bot_id))
            .order_by_asc(bot_warning::Column::Id)
            .all(self.db)
            .await
    }
}
