//! Bots and their lifecycle in the database. Every move is a
//! compare-and-swap on (id, status, lease generation, result sequence) in
//! one transaction with its event and its webhook outbox row, so replicas
//! and racing tasks never apply two conflicting moves. Only the lifecycle
//! service (`crate::bots`) calls [`Store::transition`] and
//! [`Scoped::insert_bot`].

use attache_protocol::{BotStatus, Platform, StatusReason};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::fence::{self, Place};
use super::{Scoped, Slice, Store, StoreError, Window, now, webhooks};
use crate::entity::names::Stored;
#[cfg(test)]
use crate::entity::tenant;
use crate::entity::{bot, bot_event, lease};

/// One move of a bot's lifecycle, applied atomically or not at all.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub bot_id: String,
    pub expect_generation: Option<i64>,
    pub expect_status: Option<BotStatus>,
    pub to: BotStatus,
    pub reason: Option<StatusReason>,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
    /// Grants a new lease (generation + 1) to this worker.
    pub lease_to: Option<String>,
    /// The result frame this move comes from, if any: it must be the next
    /// in sequence, and is recorded as persisted with the move.
    pub result_seq: Option<i64>,
}

impl Transition {
    pub(crate) fn new(bot_id: &str, to: BotStatus, reason: Option<StatusReason>) -> Self {
        Transition {
            bot_id: bot_id.to_string(),
            expect_generation: None,
            expect_status: None,
            to,
            reason,
            detail: None,
            at: now(),
            lease_to: None,
            result_seq: None,
        }
    }
}

// Returned once per move and consumed at once; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Applied {
    /// The bot moved; here it is, with the event that records the move.
    Moved(bot::Model, bot_event::Model),
    /// Nothing to change (a repeated status, or a move the lifecycle does
    /// not allow from a worker's late frame); the frame counts as persisted.
    Unchanged,
    /// This result frame was persisted before.
    Duplicate,
}

/// What a caller decides about a new bot; the rest (status, lease,
/// sequence) starts the same for every bot.
#[derive(Debug, Clone)]
pub(crate) struct NewBot {
    pub id: String,
    pub region: String,
    pub meeting_url: String,
    pub platform: Platform,
    pub bot_name: String,
    pub join_at: DateTime<Utc>,
    pub join_timeout_ms: i64,
    pub lobby_timeout_ms: i64,
    pub max_duration_ms: i64,
    pub nobody_joined_ms: i64,
    pub alone_ms: i64,
    pub silence_ms: i64,
    pub created_at: DateTime<Utc>,
    pub transcription: Option<String>,
}

impl Store {
    pub(crate) async fn due_bots(
        &self,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<bot::Model>, DbErr> {
        bot::Entity::find()
            .filter(bot::Column::Status.eq(BotStatus::Queued.as_str()))
            .filter(bot::Column::JoinAt.lte(at))
            .order_by_asc(bot::Column::JoinAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// The earliest join time of a queued bot, to know when to wake up.
    pub(crate) async fn next_join_at(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        Ok(bot::Entity::find()
            .filter(bot::Column::Status.eq(BotStatus::Queued.as_str()))
            .order_by_asc(bot::Column::JoinAt)
            .one(&self.db)
            .await?
            .map(|b| b.join_at))
    }

    /// Bots under lease, optionally only those of one worker.
    pub(crate) async fn leased_bots(
        &self,
        worker_id: Option<&str>,
    ) -> Result<Vec<bot::Model>, DbErr> {
        let leased: Vec<&str> = BotStatus::ALL
            .iter()
            .filter(|s| s.is_leased())
            .map(|s| s.as_str())
            .collect();
        let mut q = bot::Entity::find().filter(bot::Column::Status.is_in(leased));
        if let Some(w) = worker_id {
            q = q.filter(bot::Column::WorkerId.eq(w));
        }
        q.all(&self.db).await
    }

    pub(crate) async fn bot(&self, id: &str) -> Result<Option<bot::Model>, DbErr> {
        bot::Entity::find_by_id(id.to_string()).one(&self.db).await
    }

    pub(crate) async fn count_by_status(&self) -> Result<Vec<(String, i64)>, DbErr> {
        bot::Entity::find()
            .select_only()
            .column(bot::Column::Status)
            .column_as(bot::Column::Id.count(), "n")
            .group_by(bot::Column::Status)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await
    }

    pub(crate) async fn mark_leave_requested(&self, id: &str) -> Result<(), DbErr> {
        bot::Entity::update_many()
            .col_expr(bot::Column::LeaveRequested, Expr::value(true))
            .filter(bot::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Applies one lifecycle move (see [`Transition`]).
    pub(crate) async fn transition(&self, t: Transition) -> Result<Applied, StoreError> {
        let txn = self.db.begin().await?;
        let bot = bot::Entity::find_by_id(t.bot_id.clone())
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        if let Some(g) = t.expect_generation {
            fence::lease(&bot, g)?;
        }
        let from = bot.status.0;
        if let Some(s) = t.expect_status
            && s != from
        {
            return Err(StoreError::Conflict);
        }
        if let Some(seq) = t.result_seq
            && fence::sequence(&bot, seq)? == Place::Duplicate
        {
            return Ok(Applied::Duplicate);
        }
        let moves = if from == t.to && !from.is_final() {
            Ok(false)
        } else {
            from.check_transition(t.to, t.reason).map(|()| true)
        };
        let moves = match (moves, t.result_seq) {
            (Ok(m), _) => m,
            // A worker's frame that the lifecycle has overtaken (it reports
            // IN_CALL after the bot was failed, say): keep the sequence, drop
            // the move.
            (Err(e), Some(_)) => {
                tracing::debug!(bot_id = %bot.id, error = %e, "result frame overtaken");
                false
            }
            (Err(e), None) => return Err(e.into()),
        };
        let mut q = bot::Entity::update_many()
            .filter(bot::Column::Id.eq(bot.id.clone()))
            .filter(bot::Column::Status.eq(bot.status))
            .filter(bot::Column::LeaseGeneration.eq(bot.lease_generation))
            .filter(bot::Column::LastResultSeq.eq(bot.last_result_seq))
            .col_expr(bot::Column::UpdatedAt, Expr::value(t.at));
        if let Some(seq) = t.result_seq {
            q = q.col_expr(bot::Column::LastResultSeq, Expr::value(seq));
        }
        let releases =
            moves && bot.worker_id.is_some() && (t.to == BotStatus::Queued || t.to.is_final());
        let generation = if moves && t.lease_to.is_some() {
            bot.lease_generation + 1
        } else {
            bot.lease_generation
        };
        if moves {
            q = q
                .col_expr(bot::Column::Status, Expr::value(t.to.as_str()))
                .col_expr(
                    bot::Column::StatusReason,
                    Expr::value(t.reason.map(|r| r.as_str())),
                );
            if let Some(w) = &t.lease_to {
                q = q
                    .col_expr(bot::Column::WorkerId, Expr::value(w.clone()))
                    .col_expr(bot::Column::LeaseGeneration, Expr::value(generation))
                    .col_expr(bot::Column::LastResultSeq, Expr::value(0i64));
            } else if t.to == BotStatus::Queued {
                q = q.col_expr(bot::Column::WorkerId, Expr::value(Option::<String>::None));
            }
            if t.to.is_final() {
                q = q.col_expr(bot::Column::EndedAt, Expr::value(t.at));
            }
        }
        if q.exec(&txn).await?.rows_affected != 1 {
            return Err(StoreError::Conflict);
        }
        if !moves {
            txn.commit().await?;
            return Ok(Applied::Unchanged);
        }
        let event = bot_event::ActiveModel {
            bot_id: Set(bot.id.clone()),
            tenant_id: Set(bot.tenant_id.clone()),
            generation: Set(generation),
            status: Set(Stored(t.to)),
            reason: Set(t.reason.map(|r| r.as_str().to_string())),
            detail: Set(t.detail.clone()),
            at: Set(t.at),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        if releases {
            let outcome = match (t.to, t.reason) {
                (BotStatus::Queued, _) => "requeued",
                (_, Some(StatusReason::WorkerLost)) => "worker_lost",
                _ => "finished",
            };
            lease::Entity::update_many()
                .col_expr(lease::Column::ReleasedAt, Expr::value(t.at))
                .col_expr(lease::Column::Outcome, Expr::value(outcome))
                .filter(lease::Column::BotId.eq(bot.id.clone()))
                .filter(lease::Column::Generation.eq(bot.lease_generation))
                .filter(lease::Column::ReleasedAt.is_null())
                .exec(&txn)
                .await?;
        }
        if let Some(w) = &t.lease_to {
            lease::ActiveModel {
                bot_id: Set(bot.id.clone()),
                generation: Set(generation),
                worker_id: Set(w.clone()),
                granted_at: Set(t.at),
                released_at: Set(None),
                outcome: Set(None),
            }
            .insert(&txn)
            .await?;
        }
        let updated = bot::Entity::find_by_id(bot.id.clone())
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        webhooks::on_status(&txn, &updated, &event).await?;
        txn.commit().await?;
        Ok(Applied::Moved(updated, event))
    }
}

impl Scoped<'_> {
    pub(crate) async fn bot(&self, id: &str) -> Result<Option<bot::Model>, DbErr> {
        bot::Entity::find_by_id(id.to_string())
            .filter(bot::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    /// Stores a new bot, queued, with its first event and outbox row.
    pub(crate) async fn insert_bot(
        &self,
        b: NewBot,
    ) -> Result<(bot::Model, bot_event::Model), DbErr> {
        let txn = self.db.begin().await?;
        let model = bot::ActiveModel {
            id: Set(b.id.clone()),
            tenant_id: Set(self.tenant_id.clone()),
            region: Set(b.region),
            meeting_url: Set(b.meeting_url),
            platform: Set(Stored(b.platform)),
            bot_name: Set(b.bot_name),
            status: Set(Stored(BotStatus::Queued)),
            status_reason: Set(None),
            join_at: Set(b.join_at),
            join_timeout_ms: Set(b.join_timeout_ms),
            lobby_timeout_ms: Set(b.lobby_timeout_ms),
            max_duration_ms: Set(b.max_duration_ms),
            nobody_joined_ms: Set(b.nobody_joined_ms),
            alone_ms: Set(b.alone_ms),
            silence_ms: Set(b.silence_ms),
            worker_id: Set(None),
            lease_generation: Set(0),
            last_result_seq: Set(0),
            leave_requested: Set(false),
            created_at: Set(b.created_at),
            updated_at: Set(b.created_at),
            ended_at: Set(None),
            data_key: Set(None),
            transcription: Set(b.transcription),
        }
        .insert(&txn)
        .await?;
        let event = bot_event::ActiveModel {
            bot_id: Set(model.id.clone()),
            tenant_id: Set(self.tenant_id.clone()),
            generation: Set(0),
            status: Set(Stored(BotStatus::Queued)),
            reason: Set(None),
            detail: Set(None),
            at: Set(model.created_at),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        webhooks::on_status(&txn, &model, &event).await?;
        txn.commit().await?;
        Ok((model, event))
    }

    /// Newest first; `after` is the (created_at, id) of the last bot seen.
    /// Newest first; a cursor is the (created_at, id) of a bot.
    pub(crate) async fn bots(
        &self,
        window: &Window<(DateTime<Utc>, String)>,
        status: Option<BotStatus>,
    ) -> Result<Slice<bot::Model>, DbErr> {
        let mut q = bot::Entity::find().filter(bot::Column::TenantId.eq(self.tenant_id.clone()));
        if let Some(s) = status {
            q = q.filter(bot::Column::Status.eq(s.as_str()));
        }
        // Older than `after`, newer than `before`.
        let beyond = |(at, id): &(DateTime<Utc>, String), older: bool| {
            let (time, tie) = if older {
                (
                    bot::Column::CreatedAt.lt(*at),
                    bot::Column::Id.lt(id.clone()),
                )
            } else {
                (
                    bot::Column::CreatedAt.gt(*at),
                    bot::Column::Id.gt(id.clone()),
                )
            };
            Condition::any().add(time).add(
                Condition::all()
                    .add(bot::Column::CreatedAt.eq(*at))
                    .add(tie),
            )
        };
        if let Some(c) = &window.after {
            q = q.filter(beyond(c, true));
        }
        if let Some(c) = &window.before {
            q = q.filter(beyond(c, false));
        }
        let q = if window.backward {
            q.order_by_asc(bot::Column::CreatedAt)
                .order_by_asc(bot::Column::Id)
        } else {
            q.order_by_desc(bot::Column::CreatedAt)
                .order_by_desc(bot::Column::Id)
        };
        let rows = q.limit(window.limit + 1).all(self.db).await?;
        Ok(window.slice(rows))
    }

    pub(crate) async fn count_bots(&self, status: Option<BotStatus>) -> Result<u64, DbErr> {
        let mut q = bot::Entity::find().filter(bot::Column::TenantId.eq(self.tenant_id.clone()));
        if let Some(s) = status {
            q = q.filter(bot::Column::Status.eq(s.as_str()));
        }
        q.count(self.db).await
    }

    pub(crate) async fn events(&self, bot_id: &str) -> Result<Vec<bot_event::Model>, DbErr> {
        bot_event::Entity::find()
            .filter(bot_event::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(bot_event::Column::BotId.eq(bot_id))
            .order_by_asc(bot_event::Column::Id)
            .all(self.db)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_bot() -> (Store, String) {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store
            .insert_tenant(tenant::Model {
                id: "t1".into(),
                name: "acme".into(),
                region: "local".into(),
                created_at: now(),
                retention_days: None,
            })
            .await
            .unwrap();
        let b = store
            .scoped("t1")
            .insert_bot(NewBot {
                id: "b1".into(),
                region: "local".into(),
                meeting_url: "https://meet.google.com/abc-defg-hij".into(),
                platform: Platform::GoogleMeet,
                bot_name: "Bot".into(),
                join_at: now(),
                join_timeout_ms: 1,
                lobby_timeout_ms: 1,
                max_duration_ms: 1,
                nobody_joined_ms: 1,
                alone_ms: 1,
                silence_ms: 1,
                created_at: now(),
                transcription: None,
            })
            .await
            .unwrap();
        (store, b.0.id)
    }

    fn lease(bot: &str, worker: &str, generation: i64) -> Transition {
        let mut t = Transition::new(bot, BotStatus::Dispatched, None);
        t.expect_status = Some(BotStatus::Queued);
        t.expect_generation = Some(generation);
        t.lease_to = Some(worker.into());
        t
    }

    fn report(
        bot: &str,
        generation: i64,
        seq: i64,
        to: BotStatus,
        reason: Option<StatusReason>,
    ) -> Transition {
        let mut t = Transition::new(bot, to, reason);
        t.expect_generation = Some(generation);
        t.result_seq = Some(seq);
        t
    }

    #[tokio::test]
    async fn only_one_of_two_racing_leases_wins() {
        let (store, id) = store_with_bot().await;
        let (a, b) = tokio::join!(
            store.transition(lease(&id, "w-a", 0)),
            store.transition(lease(&id, "w-b", 0))
        );
        let wins = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Ok(Applied::Moved(..))))
            .count();
        assert_eq!(wins, 1, "{a:?} {b:?}");
        let bot = store.bot(&id).await.unwrap().unwrap();
        assert_eq!(bot.lease_generation, 1);
        assert_eq!(bot.status, "DISPATCHED");
    }

    #[tokio::test]
    async fn results_are_applied_once_in_order_and_stale_ones_refused() {
        let (store, id) = store_with_bot().await;
        store.transition(lease(&id, "w-a", 0)).await.unwrap();
        let joining = store
            .transition(report(&id, 1, 1, BotStatus::Joining, None))
            .await
            .unwrap();
        assert!(matches!(joining, Applied::Moved(..)));
        // The same frame again: acknowledged, not stored twice.
        let again = store
            .transition(report(&id, 1, 1, BotStatus::Joining, None))
            .await
            .unwrap();
        assert!(matches!(again, Applied::Duplicate));
        // A gap means a lost frame: refused, so the worker replays.
        let gap = store
            .transition(report(&id, 1, 3, BotStatus::InCall, None))
            .await;
        assert!(
            matches!(
                gap,
                Err(StoreError::Gap {
                    expected: 2,
                    got: 3
                })
            ),
            "{gap:?}"
        );
        // An old generation is refused outright.
        let stale = store
            .transition(report(&id, 0, 2, BotStatus::InCall, None))
            .await;
        assert!(
            matches!(stale, Err(StoreError::Stale { got: 0, current: 1 })),
            "{stale:?}"
        );
        store
            .transition(report(&id, 1, 2, BotStatus::InCall, None))
            .await
            .unwrap();
        let events = store.scoped("t1").events(&id).await.unwrap();
        let names: Vec<_> = events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(names, ["QUEUED", "DISPATCHED", "JOINING", "IN_CALL"]);
    }

    #[tokio::test]
    async fn a_frame_the_lifecycle_overtook_keeps_its_place_but_changes_nothing() {
        let (store, id) = store_with_bot().await;
        store.transition(lease(&id, "w-a", 0)).await.unwrap();
        let mut fail = Transition::new(&id, BotStatus::Failed, Some(StatusReason::WorkerLost));
        fail.expect_generation = Some(1);
        store.transition(fail).await.unwrap();
        let late = store
            .transition(report(&id, 1, 1, BotStatus::InCall, None))
            .await
            .unwrap();
        assert!(matches!(late, Applied::Unchanged));
        let bot = store.bot(&id).await.unwrap().unwrap();
        assert_eq!((bot.status.as_str(), bot.last_result_seq), ("FAILED", 1));
    }

    #[tokio::test]
    async fn requeue_frees_the_worker_and_closes_the_lease() {
        let (store, id) = store_with_bot().await;
        store.transition(lease(&id, "w-a", 0)).await.unwrap();
        let mut requeue = Transition::new(&id, BotStatus::Queued, None);
        requeue.expect_generation = Some(1);
        store.transition(requeue).await.unwrap();
        let bot = store.bot(&id).await.unwrap().unwrap();
        assert_eq!(bot.worker_id, None);
        let l = lease::Entity::find().one(&store.db).await.unwrap().unwrap();
        assert_eq!((l.generation, l.outcome.as_deref()), (1, Some("requeued")));
        assert!(l.released_at.is_some());
        // The next lease is a new generation.
        store.transition(lease(&id, "w-b", 1)).await.unwrap();
        assert_eq!(store.bot(&id).await.unwrap().unwrap().lease_generation, 2);
    }

    #[tokio::test]
    async fn scoped_reads_never_cross_tenants() {
        let (store, id) = store_with_bot().await;
        assert!(store.scoped("t1").bot(&id).await.unwrap().is_some());
        assert!(store.scoped("t2").bot(&id).await.unwrap().is_none());
        assert!(store.scoped("t2").events(&id).await.unwrap().is_empty());
        assert_eq!(store.scoped("t2").count_bots(None).await.unwrap(), 0);
        assert!(
            store
                .scoped("t2")
                .bots(&Window::first(10), None)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}
