//! What the retention sweep reads and deletes, always through one tenant's
//! [`Scoped`]: every statement filters on the tenant, and every delete
//! repeats, inside the statement, what makes a bot's data deletable: the
//! bot is final (ENDED or FAILED: the lifecycle never moves it again), it
//! ended at or before the class's cutoff, and no active legal hold of the
//! tenant covers it. So a hold placed, or anything that changed, after the
//! sweep read its candidates is seen by the delete itself.
//!
//! Deletes are bounded: at most `limit` rows per statement. The sweep
//! (`crate::retention`) decides what to ask for; nothing here decides
//! what has expired.

use attache_protocol::BotStatus;
use attache_tenant_policy::DataClass;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::Scoped;
use crate::entity::{
    bot, bot_event, bot_warning, chat_message, lease, legal_hold, participant, recording,
    speaker_segment, transcript_segment, webhook_attempt, webhook_delivery,
};

/// A recording the worker is still sending: neither it nor its bot may
/// go until it is closed (the orphan closer joins it).
const OPEN_RECORDING: &str = "RECORDING";
/// Deliveries nothing will send again.
const SETTLED_DELIVERIES: [&str; 2] = ["DELIVERED", "FAILED"];

/// A bot whose data of some class the sweep may delete.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub bot_id: String,
    pub ended_at: Option<DateTime<Utc>>,
    pub status: String,
    /// The store its objects are in (`None`: the default).
    pub object_store: Option<String>,
}

/// A delivery the sweep may delete.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryCandidate {
    pub id: i64,
    pub bot_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub status: String,
}

/// No active hold of `tenant` covers the bot `bot_col` names (a hold on
/// the tenant covers every bot, and deliveries about no bot).
fn unheld(tenant: &str, bot_col: Expr) -> Expr {
    let h = |c: legal_hold::Column| Expr::col((legal_hold::Entity, c));
    Expr::not_exists(
        Query::select()
            .expr(Expr::val(1))
            .from(legal_hold::Entity)
            .cond_where(
                Condition::all()
                    .add(h(legal_hold::Column::TenantId).eq(tenant))
                    .add(h(legal_hold::Column::ReleasedAt).is_null())
                    .add(
                        Condition::any()
                            .add(h(legal_hold::Column::BotId).is_null())
                            .add(h(legal_hold::Column::BotId).eq(bot_col)),
                    ),
            )
            .to_owned(),
    )
}

fn b(c: bot::Column) -> Expr {
    Expr::col((bot::Entity, c))
}

/// The `bots` row at hand is the tenant's, final, ended at or before
/// `cutoff`, and held by nothing.
fn bot_gone_by(tenant: &str, cutoff: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(b(bot::Column::TenantId).eq(tenant))
        .add(b(bot::Column::Status).is_in(super::statuses_where(BotStatus::is_final)))
        .add(b(bot::Column::EndedAt).lte(cutoff))
        .add(unheld(tenant, b(bot::Column::Id)))
}

/// Rows of `entity` that belong to the `bots` row at hand.
fn rows_of<E: EntityTrait>(entity: E, bot_col: E::Column) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(entity)
        .and_where(Expr::col((entity, bot_col)).equals((bot::Entity, bot::Column::Id)))
        .to_owned()
}

/// The bot at hand still has data of `class` to delete. `blocking`: count
/// too what blocks a deletion (an open recording), as the backlog does.
fn has_data(class: DataClass, blocking: bool) -> Option<Expr> {
    use DataClass::*;
    let open = |open: bool| {
        let mut q = rows_of(recording::Entity, recording::Column::BotId);
        let status = Expr::col((recording::Entity, recording::Column::Status));
        q.and_where(if open {
            status.eq(OPEN_RECORDING)
        } else {
            status.ne(OPEN_RECORDING)
        });
        q
    };
    Some(match class {
        Recordings if blocking => {
            Expr::exists(rows_of(recording::Entity, recording::Column::BotId))
        }
        Recordings => Expr::exists(open(false)),
        Transcripts => Expr::exists(rows_of(
            transcript_segment::Entity,
            transcript_segment::Column::BotId,
        )),
        Chat => Expr::exists(rows_of(chat_message::Entity, chat_message::Column::BotId)),
        Participants => {
            Expr::exists(rows_of(participant::Entity, participant::Column::BotId)).or(Expr::exists(
                rows_of(speaker_segment::Entity, speaker_segment::Column::BotId),
            ))
        }
        // The bot goes after its recording (closed, its objects deleted).
        BotMetadata if blocking => return None,
        BotMetadata => Expr::not_exists(rows_of(recording::Entity, recording::Column::BotId)),
        WebhookDeliveries => return None,
    })
}

/// A delivery of `tenant`'s, settled, queued at or before `cutoff`, about
/// no held bot.
fn delivery_gone_by(tenant: &str, cutoff: DateTime<Utc>) -> Condition {
    let d = |c: webhook_delivery::Column| Expr::col((webhook_delivery::Entity, c));
    Condition::all()
        .add(d(webhook_delivery::Column::TenantId).eq(tenant))
        .add(d(webhook_delivery::Column::Status).is_in(SETTLED_DELIVERIES))
        .add(d(webhook_delivery::Column::CreatedAt).lte(cutoff))
        .add(unheld(tenant, d(webhook_delivery::Column::BotId)))
}

impl Scoped<'_> {
    /// Ids among `bots` whose data may go, as a subquery.
    fn deletable_bots(&self, bots: &[String], cutoff: DateTime<Utc>) -> SelectStatement {
        Query::select()
            .column((bot::Entity, bot::Column::Id))
            .from(bot::Entity)
            .cond_where(
                bot_gone_by(&self.tenant_id, cutoff)
                    .add(b(bot::Column::Id).is_in(bots.iter().cloned())),
            )
            .to_owned()
    }

    /// Final bots that ended at or before `cutoff`, held by nothing, that
    /// still have data of `class`; in order of their end, after `after`.
    pub(crate) async fn expired_bots(
        &self,
        class: DataClass,
        cutoff: DateTime<Utc>,
        after: Option<&(DateTime<Utc>, String)>,
        limit: u64,
    ) -> Result<Vec<Candidate>, DbErr> {
        let mut cond = bot_gone_by(&self.tenant_id, cutoff);
        if let Some(e) = has_data(class, false) {
            cond = cond.add(e);
        }
        if let Some((at, id)) = after {
            cond = cond.add(
                Condition::any().add(bot::Column::EndedAt.gt(*at)).add(
                    Condition::all()
                        .add(bot::Column::EndedAt.eq(*at))
                        .add(bot::Column::Id.gt(id.clone())),
                ),
            );
        }
        let rows = bot::Entity::find()
            .select_only()
            .column(bot::Column::Id)
            .column(bot::Column::EndedAt)
            .column(bot::Column::Status)
            .column(bot::Column::ObjectStore)
            .filter(cond)
            .order_by_asc(bot::Column::EndedAt)
            .order_by_asc(bot::Column::Id)
            .limit(limit)
            .into_tuple::<(String, Option<DateTime<Utc>>, String, Option<String>)>()
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(bot_id, ended_at, status, object_store)| Candidate {
                bot_id,
                ended_at,
                status,
                object_store,
            })
            .collect())
    }

    /// Whether one bot may still lose its data of `class` (checked again
    /// right before objects are deleted, which no statement can guard).
    pub(crate) async fn still_deletable(
        &self,
        class: DataClass,
        bot_id: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let mut cond = bot_gone_by(&self.tenant_id, cutoff).add(bot::Column::Id.eq(bot_id));
        if let Some(e) = has_data(class, false) {
            cond = cond.add(e);
        }
        Ok(bot::Entity::find()
            .select_only()
            .column(bot::Column::Id)
            .filter(cond)
            .into_tuple::<String>()
            .one(self.db)
            .await?
            .is_some())
    }

    /// Deletes up to `limit` rows of one class's table among `bots`; its
    /// columns are (id, tenant, bot).
    async fn delete_rows<E: EntityTrait>(
        &self,
        [id, tenant, bot_col]: [E::Column; 3],
        bots: &[String],
        cutoff: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, DbErr> {
        let entity = E::default();
        let batch = Query::select()
            .column((entity, id))
            .from(entity)
            .cond_where(
                Condition::all()
                    .add(Expr::col((entity, tenant)).eq(self.tenant_id.clone()))
                    .add(
                        Expr::col((entity, bot_col)).in_subquery(self.deletable_bots(bots, cutoff)),
                    ),
            )
            .limit(limit)
            .to_owned();
        let r = E::delete_many()
            .filter(Expr::col((entity, id)).in_subquery(batch))
            .exec(self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// Up to `limit` rows of `class` among `bots` (transcripts, chat,
    /// participants and the speaker timeline); 0 when none are left.
    pub(crate) async fn delete_bot_rows(
        &self,
        class: DataClass,
        bots: &[String],
        cutoff: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, DbErr> {
        use DataClass::*;
        match class {
            Transcripts => {
                use transcript_segment::{Column as C, Entity as E};
                self.delete_rows::<E>([C::Id, C::TenantId, C::BotId], bots, cutoff, limit)
                    .await
            }
            Chat => {
                use chat_message::{Column as C, Entity as E};
                self.delete_rows::<E>([C::Id, C::TenantId, C::BotId], bots, cutoff, limit)
                    .await
            }
            Participants => {
                let people = {
                    use participant::{Column as C, Entity as E};
                    self.delete_rows::<E>([C::Id, C::TenantId, C::BotId], bots, cutoff, limit)
                        .await?
                };
                let turns = {
                    use speaker_segment::{Column as C, Entity as E};
                    self.delete_rows::<E>([C::Id, C::TenantId, C::BotId], bots, cutoff, limit)
                        .await?
                };
                Ok(people + turns)
            }
            Recordings | BotMetadata | WebhookDeliveries => Err(DbErr::Custom(format!(
                "{} are not deleted row by row",
                class.as_str()
            ))),
        }
    }

    /// The bot's closed recording row, once its objects are gone.
    pub(crate) async fn delete_recording(
        &self,
        bot_id: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let r = recording::Entity::delete_many()
            .filter(recording::Column::BotId.eq(bot_id))
            .filter(recording::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(recording::Column::Status.ne(OPEN_RECORDING))
            .filter(
                recording::Column::BotId
                    .in_subquery(self.deletable_bots(&[bot_id.to_string()], cutoff)),
            )
            .exec(self.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// Deletes the bots among `bots` that may go, with their events,
    /// warnings and leases, in one transaction: all of them or, if any
    /// changed meanwhile (a hold, a recording), none until the next sweep.
    /// Rows deleted (bots, events and warnings).
    pub(crate) async fn delete_bots(
        &self,
        bots: &[String],
        cutoff: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let gone = || {
            let mut c = bot_gone_by(&self.tenant_id, cutoff)
                .add(bot::Column::Id.is_in(bots.iter().cloned()));
            if let Some(e) = has_data(DataClass::BotMetadata, false) {
                c = c.add(e);
            }
            c
        };
        let txn = self.db.begin().await?;
        let ids: Vec<String> = bot::Entity::find()
            .select_only()
            .column(bot::Column::Id)
            .filter(gone())
            .into_tuple()
            .all(&txn)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let events = bot_event::Entity::delete_many()
            .filter(bot_event::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(bot_event::Column::BotId.is_in(ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        let warnings = bot_warning::Entity::delete_many()
            .filter(bot_warning::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(bot_warning::Column::BotId.is_in(ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        lease::Entity::delete_many()
            .filter(lease::Column::BotId.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        let deleted = bot::Entity::delete_many()
            .filter(gone())
            .filter(bot::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        if deleted != ids.len() as u64 {
            txn.rollback().await?;
            return Ok(0);
        }
        txn.commit().await?;
        Ok(deleted + events + warnings)
    }

    /// Settled deliveries queued at or before `cutoff` about no held bot,
    /// in id order after `after`.
    pub(crate) async fn expired_deliveries(
        &self,
        cutoff: DateTime<Utc>,
        after: i64,
        limit: u64,
    ) -> Result<Vec<DeliveryCandidate>, DbErr> {
        let rows = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .column(webhook_delivery::Column::BotId)
            .column(webhook_delivery::Column::CreatedAt)
            .column(webhook_delivery::Column::Status)
            .filter(delivery_gone_by(&self.tenant_id, cutoff))
            .filter(webhook_delivery::Column::Id.gt(after))
            .order_by_asc(webhook_delivery::Column::Id)
            .limit(limit)
            .into_tuple::<(i64, Option<String>, DateTime<Utc>, String)>()
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, bot_id, created_at, status)| DeliveryCandidate {
                id,
                bot_id,
                created_at,
                status,
            })
            .collect())
    }

    /// Deletes these deliveries and their attempts, all or none (as
    /// [`Scoped::delete_bots`]). Rows deleted.
    pub(crate) async fn delete_deliveries(
        &self,
        ids: &[i64],
        cutoff: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let gone = || {
            delivery_gone_by(&self.tenant_id, cutoff)
                .add(webhook_delivery::Column::Id.is_in(ids.iter().copied()))
        };
        let txn = self.db.begin().await?;
        let found: Vec<i64> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(gone())
            .into_tuple()
            .all(&txn)
            .await?;
        if found.is_empty() {
            return Ok(0);
        }
        let attempts = webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(webhook_attempt::Column::DeliveryId.is_in(found.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        let deleted = webhook_delivery::Entity::delete_many()
            .filter(gone())
            .filter(webhook_delivery::Column::Id.is_in(found.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        if deleted != found.len() as u64 {
            txn.rollback().await?;
            return Ok(0);
        }
        txn.commit().await?;
        Ok(deleted + attempts)
    }

    /// When the oldest item of `class` that is expired by `cutoff` and not
    /// yet deleted started to age (the backlog); `None` if none is left.
    pub(crate) async fn oldest_expired(
        &self,
        class: DataClass,
        cutoff: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbErr> {
        if class == DataClass::WebhookDeliveries {
            return webhook_delivery::Entity::find()
                .select_only()
                .column_as(webhook_delivery::Column::CreatedAt.min(), "oldest")
                .filter(delivery_gone_by(&self.tenant_id, cutoff))
                .into_tuple::<Option<DateTime<Utc>>>()
                .one(self.db)
                .await
                .map(Option::flatten);
        }
        let mut cond = bot_gone_by(&self.tenant_id, cutoff);
        if let Some(e) = has_data(class, true) {
            cond = cond.add(e);
        }
        bot::Entity::find()
            .select_only()
            .column_as(bot::Column::EndedAt.min(), "oldest")
            .filter(cond)
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(self.db)
            .await
            .map(Option::flatten)
    }
}
