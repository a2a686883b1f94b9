//! What erasure reads and deletes. Jobs are claimed by one replica at a
//! time (a lease on the row, taken by compare-and-swap), so a job survives
//! a restart: whichever replica finds its lease expired runs it again.
//! Every delete of data goes through one tenant's [`Scoped`], and is safe
//! to repeat: a second run deletes what the first left.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{Scoped, Store};
use crate::entity::{
    api_key, bot, chat_message, console_session, erasure_job, invitation, legal_hold, login_state,
    member, participant, policy_override, recording, retention_policy, speaker_segment, tenant,
    tenant_notice, transcript_segment, transcription_setting, user, webhook_attempt,
    webhook_delivery, webhook_endpoint,
};

pub(crate) const QUEUED: &str = "QUEUED";
pub(crate) const RUNNING: &str = "RUNNING";
pub(crate) const DONE: &str = "DONE";
pub(crate) const FAILED: &str = "FAILED";

/// Most jobs a listing returns.
pub(crate) const MAX_LISTED: u64 = 100;

impl Store {
    pub(crate) async fn insert_erasure_job(
        &self,
        job: erasure_job::ActiveModel,
    ) -> Result<erasure_job::Model, DbErr> {
        job.insert(&self.db).await
    }

    /// The job already asked for this subject, unless it failed.
    pub(crate) async fn open_erasure_job(
        &self,
        tenant_id: &str,
        subject: &str,
        subject_id: &str,
    ) -> Result<Option<erasure_job::Model>, DbErr> {
        erasure_job::Entity::find()
            .filter(erasure_job::Column::TenantId.eq(tenant_id))
            .filter(erasure_job::Column::Subject.eq(subject))
            .filter(erasure_job::Column::SubjectId.eq(subject_id))
            .filter(erasure_job::Column::Status.ne(FAILED))
            .order_by_desc(erasure_job::Column::RequestedAt)
            .one(&self.db)
            .await
    }

    /// Takes the oldest job that is queued (and due) or whose runner's
    /// lease ran out; `None` if there is none, or another replica took it
    /// first.
    pub(crate) async fn claim_erasure_job(
        &self,
        holder: &str,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<erasure_job::Model>, DbErr> {
        let claimable = || {
            Condition::any()
                .add(
                    Condition::all()
                        .add(erasure_job::Column::Status.eq(QUEUED))
                        .add(
                            Condition::any()
                                .add(erasure_job::Column::LeaseUntil.is_null())
                                .add(erasure_job::Column::LeaseUntil.lte(at)),
                        ),
                )
                .add(
                    Condition::all()
                        .add(erasure_job::Column::Status.eq(RUNNING))
                        .add(erasure_job::Column::LeaseUntil.lte(at)),
                )
        };
        let Some(job) = erasure_job::Entity::find()
            .filter(claimable())
            .order_by_asc(erasure_job::Column::RequestedAt)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let r = erasure_job::Entity::update_many()
            .filter(erasure_job::Column::Id.eq(job.id.clone()))
            .filter(claimable())
            .col_expr(erasure_job::Column::Status, Expr::value(RUNNING))
            .col_expr(erasure_job::Column::Holder, Expr::value(holder))
            .col_expr(erasure_job::Column::LeaseUntil, Expr::value(until))
            .col_expr(
                erasure_job::Column::StartedAt,
                Expr::value(job.started_at.unwrap_or(at)),
            )
            .col_expr(
                erasure_job::Column::Attempts,
                Expr::col(erasure_job::Column::Attempts).add(1),
            )
            .exec(&self.db)
            .await?;
        if r.rows_affected != 1 {
            return Ok(None);
        }
        erasure_job::Entity::find_by_id(job.id).one(&self.db).await
    }

    /// Saves a running job's progress and renews its lease; false if the
    /// lease is no longer this holder's.
    pub(crate) async fn keep_erasure_job(
        &self,
        id: &str,
        holder: &str,
        progress: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let r = erasure_job::Entity::update_many()
            .filter(erasure_job::Column::Id.eq(id))
            .filter(erasure_job::Column::Holder.eq(holder))
            .filter(erasure_job::Column::Status.eq(RUNNING))
            .col_expr(erasure_job::Column::Progress, Expr::value(progress))
            .col_expr(erasure_job::Column::LeaseUntil, Expr::value(until))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Puts a running job back in the queue until `not_before`, saying why.
    pub(crate) async fn defer_erasure_job(
        &self,
        id: &str,
        holder: &str,
        reason: &str,
        not_before: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        erasure_job::Entity::update_many()
            .filter(erasure_job::Column::Id.eq(id))
            .filter(erasure_job::Column::Holder.eq(holder))
            .col_expr(erasure_job::Column::Status, Expr::value(QUEUED))
            .col_expr(erasure_job::Column::StatusReason, Expr::value(reason))
            .col_expr(
                erasure_job::Column::Holder,
                Expr::value(Option::<String>::None),
            )
            .col_expr(erasure_job::Column::LeaseUntil, Expr::value(not_before))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Ends a job DONE (with its certificate) or FAILED (with a reason);
    /// a participant's sealed name is dropped either way.
    pub(crate) async fn finish_erasure_job(
        &self,
        id: &str,
        holder: &str,
        status: &str,
        reason: Option<String>,
        certificate: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let r = erasure_job::Entity::update_many()
            .filter(erasure_job::Column::Id.eq(id))
            .filter(erasure_job::Column::Holder.eq(holder))
            .col_expr(erasure_job::Column::Status, Expr::value(status))
            .col_expr(erasure_job::Column::StatusReason, Expr::value(reason))
            .col_expr(erasure_job::Column::Certificate, Expr::value(certificate))
            .col_expr(
                erasure_job::Column::NameSealed,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(erasure_job::Column::CompletedAt, Expr::value(at))
            .col_expr(
                erasure_job::Column::Holder,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                erasure_job::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Tenant erasures, newest first (the operator's listing).
    pub(crate) async fn tenant_erasure_jobs(&self) -> Result<Vec<erasure_job::Model>, DbErr> {
        erasure_job::Entity::find()
            .filter(erasure_job::Column::Subject.eq("TENANT"))
            .order_by_desc(erasure_job::Column::RequestedAt)
            .limit(MAX_LISTED)
            .all(&self.db)
            .await
    }

    pub(crate) async fn erasure_job(&self, id: &str) -> Result<Option<erasure_job::Model>, DbErr> {
        erasure_job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }
}

impl Scoped<'_> {
    /// The tenant's jobs, newest first.
    pub(crate) async fn erasure_jobs(&self) -> Result<Vec<erasure_job::Model>, DbErr> {
        erasure_job::Entity::find()
            .filter(erasure_job::Column::TenantId.eq(self.tenant_id.clone()))
            .order_by_desc(erasure_job::Column::RequestedAt)
            .limit(MAX_LISTED)
            .all(self.db)
            .await
    }

    pub(crate) async fn erasure_job(&self, id: &str) -> Result<Option<erasure_job::Model>, DbErr> {
        erasure_job::Entity::find_by_id(id.to_string())
            .filter(erasure_job::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    /// Whether an active legal hold covers the bot (`None`: the tenant).
    pub(crate) async fn held(&self, bot_id: Option<&str>) -> Result<bool, DbErr> {
        let mut covers = Condition::any().add(legal_hold::Column::BotId.is_null());
        if let Some(b) = bot_id {
            covers = covers.add(legal_hold::Column::BotId.eq(b));
        }
        Ok(legal_hold::Entity::find()
            .filter(legal_hold::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(legal_hold::Column::ReleasedAt.is_null())
            .filter(covers)
            .one(self.db)
            .await?
            .is_some())
    }

    /// The tenant's bots, in id order after `after`.
    pub(crate) async fn bot_page(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<bot::Model>, DbErr> {
        let mut q = bot::Entity::find()
            .filter(bot::Column::TenantId.eq(self.tenant_id.clone()))
            .order_by_asc(bot::Column::Id)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(bot::Column::Id.gt(a));
        }
        q.all(self.db).await
    }

    /// Every webhook delivery about these bots, whatever its state, with
    /// its attempts. Rows deleted (deliveries).
    pub(crate) async fn erase_deliveries(&self, bot_ids: &[String]) -> Result<u64, DbErr> {
        let ids: Vec<i64> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(webhook_delivery::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(webhook_delivery::Column::BotId.is_in(bot_ids.iter().cloned()))
            .into_tuple()
            .all(self.db)
            .await?;
        let mut n = 0;
        for chunk in ids.chunks(500) {
            webhook_attempt::Entity::delete_many()
                .filter(webhook_attempt::Column::TenantId.eq(self.tenant_id.clone()))
                .filter(webhook_attempt::Column::DeliveryId.is_in(chunk.iter().copied()))
                .exec(self.db)
                .await?;
            n += webhook_delivery::Entity::delete_many()
                .filter(webhook_delivery::Column::TenantId.eq(self.tenant_id.clone()))
                .filter(webhook_delivery::Column::Id.is_in(chunk.iter().copied()))
                .exec(self.db)
                .await?
                .rows_affected;
        }
        Ok(n)
    }

    /// The bot's recording rows, whatever their state (its objects are
    /// deleted before). Rows deleted.
    pub(crate) async fn erase_recordings(&self, bot_id: &str) -> Result<u64, DbErr> {
        Ok(recording::Entity::delete_many()
            .filter(recording::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(recording::Column::BotId.eq(bot_id))
            .exec(self.db)
            .await?
            .rows_affected)
    }

    /// What one bot holds of its people: stays, speaking turns, transcript
    /// segments and chat, to be matched against a name.
    pub(crate) async fn people_of(&self, bot_id: &str) -> Result<People, DbErr> {
        let t = self.tenant_id.clone();
        Ok(People {
            stays: participant::Entity::find()
                .filter(participant::Column::TenantId.eq(t.clone()))
                .filter(participant::Column::BotId.eq(bot_id))
                .all(self.db)
                .await?,
            turns: speaker_segment::Entity::find()
                .filter(speaker_segment::Column::TenantId.eq(t.clone()))
                .filter(speaker_segment::Column::BotId.eq(bot_id))
                .all(self.db)
                .await?,
            segments: transcript_segment::Entity::find()
                .filter(transcript_segment::Column::TenantId.eq(t.clone()))
                .filter(transcript_segment::Column::BotId.eq(bot_id))
                .all(self.db)
                .await?,
            chat: chat_message::Entity::find()
                .filter(chat_message::Column::TenantId.eq(t))
                .filter(chat_message::Column::BotId.eq(bot_id))
                .all(self.db)
                .await?,
        })
    }

    /// Deletes the rows of one person, found by [`Scoped::people_of`].
    pub(crate) async fn delete_people(&self, ids: &PeopleIds) -> Result<(), DbErr> {
        let t = self.tenant_id.clone();
        participant::Entity::delete_many()
            .filter(participant::Column::TenantId.eq(t.clone()))
            .filter(participant::Column::Id.is_in(ids.stays.iter().copied()))
            .exec(self.db)
            .await?;
        speaker_segment::Entity::delete_many()
            .filter(speaker_segment::Column::TenantId.eq(t.clone()))
            .filter(speaker_segment::Column::Id.is_in(ids.turns.iter().copied()))
            .exec(self.db)
            .await?;
        transcript_segment::Entity::delete_many()
            .filter(transcript_segment::Column::TenantId.eq(t.clone()))
            .filter(transcript_segment::Column::Id.is_in(ids.segments.iter().copied()))
            .exec(self.db)
            .await?;
        chat_message::Entity::delete_many()
            .filter(chat_message::Column::TenantId.eq(t))
            .filter(chat_message::Column::Id.is_in(ids.chat.iter().copied()))
            .exec(self.db)
            .await?;
        Ok(())
    }

    /// Everything of the tenant but its bots (erased one by one before),
    /// its audit trail and its erasure jobs: settings, members, keys,
    /// endpoints, holds, and the tenant row. Users left in no tenant go
    /// too. Rows deleted.
    pub(crate) async fn delete_tenant_rows(&self) -> Result<u64, DbErr> {
        let t = self.tenant_id.clone();
        let users: Vec<String> = member::Entity::find()
            .select_only()
            .column(member::Column::UserId)
            .filter(member::Column::TenantId.eq(t.clone()))
            .into_tuple()
            .all(self.db)
            .await?;
        let mut n = 0;
        macro_rules! wipe {
            ($($m:ident),+) => {
                $(n += $m::Entity::delete_many()
                    .filter($m::Column::TenantId.eq(t.clone()))
                    .exec(self.db)
                    .await?
                    .rows_affected;)+
            };
        }
        wipe!(
            webhook_attempt,
            webhook_delivery,
            webhook_endpoint,
            api_key,
            invitation,
            member,
            tenant_notice,
            transcription_setting,
            policy_override,
            retention_policy,
            legal_hold
        );
        n += console_session::Entity::delete_many()
            .filter(console_session::Column::TenantId.eq(t.clone()))
            .exec(self.db)
            .await?
            .rows_affected;
        n += login_state::Entity::delete_many()
            .filter(login_state::Column::TenantId.eq(t.clone()))
            .exec(self.db)
            .await?
            .rows_affected;
        n += crate::entity::identity_provider::Entity::delete_many()
            .filter(crate::entity::identity_provider::Column::Domain.eq(t.clone()))
            .exec(self.db)
            .await?
            .rows_affected;
        for u in users {
            let elsewhere = member::Entity::find()
                .filter(member::Column::UserId.eq(u.clone()))
                .one(self.db)
                .await?
                .is_some();
            if !elsewhere {
                n += user::Entity::delete_by_id(u)
                    .exec(self.db)
                    .await?
                    .rows_affected;
            }
        }
        n += tenant::Entity::delete_by_id(t)
            .exec(self.db)
            .await?
            .rows_affected;
        Ok(n)
    }
}

/// One bot's rows about people.
pub(crate) struct People {
    pub stays: Vec<participant::Model>,
    pub turns: Vec<speaker_segment::Model>,
    pub segments: Vec<transcript_segment::Model>,
    pub chat: Vec<chat_message::Model>,
}

/// The rows of one person in one bot.
#[derive(Debug, Default)]
pub(crate) struct PeopleIds {
    pub stays: Vec<i64>,
    pub turns: Vec<i64>,
    pub segments: Vec<i64>,
    pub chat: Vec<i64>,
}

impl PeopleIds {
    pub(crate) fn is_empty(&self) -> bool {
        self.stays.is_empty()
            && self.turns.is_empty()
            && self.segments.is_empty()
            && self.chat.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Set;

    fn job(id: &str, at: DateTime<Utc>) -> erasure_job::ActiveModel {
        erasure_job::ActiveModel {
            id: Set(id.into()),
            tenant_id: Set("t1".into()),
            subject: Set("BOT".into()),
            subject_id: Set(Some("b1".into())),
            name_sealed: Set(Some(vec![1, 2, 3])),
            name_salt: Set(None),
            name_hash: Set(None),
            status: Set(QUEUED.into()),
            status_reason: Set(None),
            progress: Set(None),
            certificate: Set(None),
            requested_by: Set("key:k1".into()),
            requested_at: Set(at),
            started_at: Set(None),
            completed_at: Set(None),
            holder: Set(None),
            lease_until: Set(None),
            attempts: Set(0),
        }
    }

    #[tokio::test]
    async fn a_job_whose_runner_died_is_taken_up_once_its_lease_runs_out() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let t0 = crate::store::now();
        let s = |n: i64| t0 + chrono::Duration::seconds(n);
        store.insert_erasure_job(job("j1", t0)).await.unwrap();
        store.insert_erasure_job(job("j2", s(1))).await.unwrap();

        // The oldest first; each to one runner.
        let a = store
            .claim_erasure_job("a", s(2), s(62))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.id.as_str(), a.attempts), ("j1", 1));
        let b = store
            .claim_erasure_job("b", s(2), s(62))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.id, "j2");
        assert!(
            store
                .claim_erasure_job("c", s(3), s(63))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .keep_erasure_job("j1", "a", "{}", s(70))
                .await
                .unwrap()
        );
        assert!(
            !store
                .keep_erasure_job("j1", "b", "{}", s(70))
                .await
                .unwrap()
        );
        // b is alive and keeps j2.
        assert!(
            store
                .keep_erasure_job("j2", "b", "{}", s(100))
                .await
                .unwrap()
        );

        // Runner a dies (a restart): once its lease has run out, another
        // replica takes j1 up again, with what a saved.
        assert!(
            store
                .claim_erasure_job("c", s(69), s(129))
                .await
                .unwrap()
                .is_none()
        );
        let again = store
            .claim_erasure_job("c", s(71), s(131))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.id.as_str(), again.attempts), ("j1", 2));
        assert_eq!(again.progress.as_deref(), Some("{}"));
        assert_eq!(again.started_at, a.started_at, "first started when a began");
        // a's late step is refused; c finishes, and the sealed name goes.
        assert!(
            !store
                .keep_erasure_job("j1", "a", "{}", s(140))
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_erasure_job("j1", "a", DONE, None, None, s(72))
                .await
                .unwrap()
        );
        assert!(
            store
                .finish_erasure_job("j1", "c", DONE, None, Some("cert".into()), s(72))
                .await
                .unwrap()
        );
        let done = store.erasure_job("j1").await.unwrap().unwrap();
        assert_eq!(done.status, DONE);
        assert_eq!(done.name_sealed, None);
        assert_eq!(done.certificate.as_deref(), Some("cert"));
        assert!(
            store
                .open_erasure_job("t1", "BOT", "b1")
                .await
                .unwrap()
                .is_some()
        );

        // A deferred job waits until its time.
        store
            .defer_erasure_job("j2", "b", "WAITING_FOR_BOT_TO_END: x", s(80))
            .await
            .unwrap();
        assert!(
            store
                .claim_erasure_job("d", s(79), s(139))
                .await
                .unwrap()
                .is_none()
        );
        let waited = store
            .claim_erasure_job("d", s(80), s(140))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(waited.id, "j2");
        assert_eq!(waited.status, RUNNING);
    }
}
