//! Rows older versions stored with personal fields in the clear, for the
//! backfill that seals them (`crate::sealing::backfill`): read in batches
//! in id order, then sealed a batch per transaction. Each update is
//! conditional on the row still being in the clear and touches only the
//! personal columns, so replicas running the backfill at once, or ingest
//! writing the same rows meanwhile, never seal twice nor lose a write.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::Store;
use crate::entity::{bot, chat_message, participant, speaker_segment, transcript_segment};

/// A bot's meeting URL and name, sealed.
pub(crate) struct SealedBot {
    pub id: String,
    pub meeting_url_sealed: Vec<u8>,
    pub bot_name_sealed: Vec<u8>,
}

/// A stay or speaking turn: the person's id hashed, id and name sealed.
pub(crate) struct SealedPersonRow {
    pub id: i64,
    pub key_hash: String,
    pub id_sealed: Vec<u8>,
    pub name_sealed: Vec<u8>,
}

pub(crate) struct SealedSpeakerRow {
    pub id: i64,
    pub speaker_sealed: Vec<u8>,
}

pub(crate) struct SealedChatRow {
    pub id: i64,
    pub bot_id: String,
    pub key_hash: String,
    pub sender_sealed: Vec<u8>,
    pub text_sealed: Vec<u8>,
}

impl Store {
    /// Bots whose meeting URL and name are in the clear, after `after`.
    pub(crate) async fn clear_bots(
        &self,
        after: &str,
        limit: u64,
    ) -> Result<Vec<bot::Model>, DbErr> {
        bot::Entity::find()
            .filter(bot::Column::MeetingUrlSealed.is_null())
            .filter(bot::Column::Id.gt(after))
            .order_by_asc(bot::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Returns how many rows were sealed (not by someone else first).
    pub(crate) async fn seal_bots(&self, rows: Vec<SealedBot>) -> Result<u64, DbErr> {
        let txn = self.db.begin().await?;
        let mut n = 0;
        for r in rows {
            n += bot::Entity::update_many()
                .filter(bot::Column::Id.eq(r.id))
                .filter(bot::Column::MeetingUrlSealed.is_null())
                .col_expr(
                    bot::Column::MeetingUrlSealed,
                    Expr::value(r.meeting_url_sealed),
                )
                .col_expr(bot::Column::BotNameSealed, Expr::value(r.bot_name_sealed))
                .col_expr(bot::Column::MeetingUrl, Expr::value(""))
                .col_expr(bot::Column::BotName, Expr::value(""))
                .exec(&txn)
                .await?
                .rows_affected;
        }
        txn.commit().await?;
        Ok(n)
    }

    pub(crate) async fn clear_participants(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<participant::Model>, DbErr> {
        participant::Entity::find()
            .filter(participant::Column::NameSealed.is_null())
            .filter(participant::Column::Id.gt(after))
            .order_by_asc(participant::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    pub(crate) async fn seal_participants(&self, rows: Vec<SealedPersonRow>) -> Result<u64, DbErr> {
        let txn = self.db.begin().await?;
        let mut n = 0;
        for r in rows {
            n += participant::Entity::update_many()
                .filter(participant::Column::Id.eq(r.id))
                .filter(participant::Column::NameSealed.is_null())
                .col_expr(participant::Column::ParticipantKey, Expr::value(r.key_hash))
                .col_expr(
                    participant::Column::ParticipantIdSealed,
                    Expr::value(r.id_sealed),
                )
                .col_expr(participant::Column::NameSealed, Expr::value(r.name_sealed))
                .col_expr(participant::Column::Name, Expr::value(""))
                .exec(&txn)
                .await?
                .rows_affected;
        }
        txn.commit().await?;
        Ok(n)
    }

    pub(crate) async fn clear_speaker_segments(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<speaker_segment::Model>, DbErr> {
        speaker_segment::Entity::find()
            .filter(speaker_segment::Column::NameSealed.is_null())
            .filter(speaker_segment::Column::Id.gt(after))
            .order_by_asc(speaker_segment::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    pub(crate) async fn seal_speaker_segments(
        &self,
        rows: Vec<SealedPersonRow>,
    ) -> Result<u64, DbErr> {
        let txn = self.db.begin().await?;
        let mut n = 0;
        for r in rows {
            n += speaker_segment::Entity::update_many()
                .filter(speaker_segment::Column::Id.eq(r.id))
                .filter(speaker_segment::Column::NameSealed.is_null())
                .col_expr(
                    speaker_segment::Column::ParticipantKey,
                    Expr::value(r.key_hash),
                )
                .col_expr(
                    speaker_segment::Column::ParticipantIdSealed,
                    Expr::value(r.id_sealed),
                )
                .col_expr(
                    speaker_segment::Column::NameSealed,
                    Expr::value(r.name_sealed),
                )
                .col_expr(speaker_segment::Column::Name, Expr::value(""))
                .exec(&txn)
                .await?
                .rows_affected;
        }
        txn.commit().await?;
        Ok(n)
    }

    /// Transcript segments whose speaker is in the clear.
    pub(crate) async fn clear_transcript_speakers(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<transcript_segment::Model>, DbErr> {
        transcript_segment::Entity::find()
            .filter(transcript_segment::Column::Speaker.is_not_null())
            .filter(transcript_segment::Column::Id.gt(after))
            .order_by_asc(transcript_segment::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    pub(crate) async fn seal_transcript_speakers(
        &self,
        rows: Vec<SealedSpeakerRow>,
    ) -> Result<u64, DbErr> {
        let txn = self.db.begin().await?;
        let mut n = 0;
        for r in rows {
            n += transcript_segment::Entity::update_many()
                .filter(transcript_segment::Column::Id.eq(r.id))
                .filter(transcript_segment::Column::Speaker.is_not_null())
                .col_expr(
                    transcript_segment::Column::SpeakerSealed,
                    Expr::value(r.speaker_sealed),
                )
                .col_expr(
                    transcript_segment::Column::Speaker,
                    Expr::value(Option::<String>::None),
                )
                .exec(&txn)
                .await?
                .rows_affected;
        }
        txn.commit().await?;
        Ok(n)
    }

    /// Chat messages stored under the platform's message id.
    pub(crate) async fn clear_chat_messages(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<chat_message::Model>, DbErr> {
        chat_message::Entity::find()
            .filter(chat_message::Column::KeyHashed.eq(false))
            .filter(chat_message::Column::Id.gt(after))
            .order_by_asc(chat_message::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// A message that ingest has meanwhile stored again under its hash is
    /// the same message: the older row goes.
    pub(crate) async fn seal_chat_messages(&self, rows: Vec<SealedChatRow>) -> Result<u64, DbErr> {
        let txn = self.db.begin().await?;
        let mut n = 0;
        for r in rows {
            let again = chat_message::Entity::find()
                .filter(chat_message::Column::BotId.eq(r.bot_id.clone()))
                .filter(chat_message::Column::MessageKey.eq(r.key_hash.clone()))
                .one(&txn)
                .await?;
            if again.is_some() {
                chat_message::Entity::delete_many()
                    .filter(chat_message::Column::Id.eq(r.id))
                    .filter(chat_message::Column::KeyHashed.eq(false))
                    .exec(&txn)
                    .await?;
                continue;
            }
            n += chat_message::Entity::update_many()
                .filter(chat_message::Column::Id.eq(r.id))
                .filter(chat_message::Column::KeyHashed.eq(false))
                .col_expr(chat_message::Column::MessageKey, Expr::value(r.key_hash))
                .col_expr(chat_message::Column::KeyHashed, Expr::value(true))
                .col_expr(
                    chat_message::Column::SenderSealed,
                    Expr::value(r.sender_sealed),
                )
                .col_expr(chat_message::Column::TextSealed, Expr::value(r.text_sealed))
                .col_expr(chat_message::Column::Sender, Expr::value(""))
                .col_expr(chat_message::Column::Text, Expr::value(""))
                .exec(&txn)
                .await?
                .rows_affected;
        }
        txn.commit().await?;
        Ok(n)
    }
}
