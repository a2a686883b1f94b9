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
use crate::entity::names::{QueueReason, Stored};
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
    pub platform: Platform,
    /// The bot's data key, wrapped under its tenant's bot-key generation
    /// `key_generation` (`crate::keys::Keys::new_bot_key`).
    pub data_key: Vec<u8>,
    pub key_generation: Option<i32>,
    /// The W3C `traceparent` of the request that created it.
    pub trace_parent: Option<String>,
    /// The meeting URL and the bot's name, sealed with its data key
    /// (`crate::sealing::Sealer::bot`).
    pub meeting_url_sealed: Vec<u8>,
    pub bot_name_sealed: Vec<u8>,
    pub join_at: DateTime<Utc>,
    pub join_timeout_ms: i64,
    pub lobby_timeout_ms: i64,
    pub max_duration_ms: i64,
    pub nobody_joined_ms: i64,
    pub alone_ms: i64,
    pub silence_ms: i64,
    pub created_at: DateTime<Utc>,
    pub transcription: Option<String>,
    /// Its tenant's dedicated pool, if it has one.
    pub pool: Option<String>,
    /// The object store its recordings go to (`crate::residency::place`).
    pub object_store: String,
}

/// Queued bots that are due, per region and pool: what dispatch plans
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueGroup {
    pub region: String,
    pub pool: Option<String>,
    pub due: u64,
}

fn in_group(region: &str, pool: Option<&str>) -> Condition {
    let pool = match pool {
        Some(p) => bot::Column::Pool.eq(p),
        None => bot::Column::Pool.is_null(),
    };
    Condition::all()
        .add(bot::Column::Status.eq(BotStatus::Queued.as_str()))
        .add(bot::Column::Region.eq(region))
        .add(pool)
}

impl Store {
    /// How many queued bots are due at `at`, per region and pool.
    pub(crate) async fn queue_groups(&self, at: DateTime<Utc>) -> Result<Vec<QueueGroup>, DbErr> {
        let rows = bot::Entity::find()
            .select_only()
            .column(bot::Column::Region)
            .column(bot::Column::Pool)
            .column_as(bot::Column::Id.count(), "n")
            .filter(bot::Column::Status.eq(BotStatus::Queued.as_str()))
            .filter(bot::Column::JoinAt.lte(at))
            .group_by(bot::Column::Region)
            .group_by(bot::Column::Pool)
            .into_tuple::<(String, Option<String>, i64)>()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(region, pool, n)| QueueGroup {
                region,
                pool,
                due: n.max(0) as u64,
            })
            .collect())
    }

    /// The oldest due bots of one region and pool.
    pub(crate) async fn due_bots(
        &self,
        region: &str,
        pool: Option<&str>,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<bot::Model>, DbErr> {
        bot::Entity::find()
            .filter(in_group(region, pool))
            .filter(bot::Column::JoinAt.lte(at))
            .order_by_asc(bot::Column::JoinAt)
            .order_by_asc(bot::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Due bots of one region and pool that have waited in the queue since
    /// `cutoff` or longer (both their join time and their entry into the
    /// queue are at or before it).
    pub(crate) async fn queued_since(
        &self,
        region: &str,
        pool: Option<&str>,
        cutoff: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<bot::Model>, DbErr> {
        bot::Entity::find()
            .filter(in_group(region, pool))
            .filter(bot::Column::JoinAt.lte(cutoff))
            .filter(
                Condition::any().add(bot::Column::QueuedAt.lte(cutoff)).add(
                    Condition::all()
                        .add(bot::Column::QueuedAt.is_null())
                        .add(bot::Column::CreatedAt.lte(cutoff)),
                ),
            )
            .order_by_asc(bot::Column::JoinAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Says why the due, queued bots of one region and pool still wait.
    /// Not a move: no event, no generation change; the next move clears it.
    pub(crate) async fn note_queue_reason(
        &self,
        region: &str,
        pool: Option<&str>,
        at: DateTime<Utc>,
        reason: QueueReason,
    ) -> Result<u64, DbErr> {
        let stored = Stored(reason);
        Ok(bot::Entity::update_many()
            .col_expr(bot::Column::QueueReason, Expr::value(stored))
            .filter(in_group(region, pool))
            .filter(bot::Column::JoinAt.lte(at))
            .filter(
                Condition::any()
                    .add(bot::Column::QueueReason.is_null())
                    .add(bot::Column::QueueReason.ne(stored)),
            )
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// The earliest join time after `at` of a queued bot, to know when to
    /// wake up. (Bots already due are the dispatcher's; a wake-up brings
    /// it back when a worker comes or a bot is queued.)
    pub(crate) async fn next_join_after(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbErr> {
        Ok(bot::Entity::find()
            .filter(bot::Column::Status.eq(BotStatus::Queued.as_str()))
            .filter(bot::Column::JoinAt.gt(at))
            .order_by_asc(bot::Column::JoinAt)
            .one(&self.db)
            .await?
            .map(|b| b.join_at))
    }

    /// Every lease a bot was granted, oldest first: which workers ran it.
    pub(crate) async fn leases_of(&self, bot_id: &str) -> Result<Vec<lease::Model>, DbErr> {
        lease::Entity::find()
            .filter(lease::Column::BotId.eq(bot_id))
            .order_by_asc(lease::Column::Generation)
            .all(&self.db)
            .await
    }

    /// Bots under lease, optionally only those of one worker.
    pub(crate) async fn leased_bots(
        &self,
        worker_id: Option<&str>,
    ) -> Result<Vec<bot::Model>, DbErr> {
        let mut q = bot::Entity::find()
            .filter(bot::Column::Status.is_in(super::statuses_where(BotStatus::is_leased)));
        if let Some(w) = worker_id {
            q = q.filter(bot::Column::WorkerId.eq(w));
        }
        q.all(&self.db).await
    }

    /// How many leases each worker holds: counted in the database, so a
    /// dispatch pass does not read every leased bot to learn it.
    pub(crate) async fn leases_per_worker(&self) -> Result<Vec<(String, i64)>, DbErr> {
        bot::Entity::find()
            .select_only()
            .column(bot::Column::WorkerId)
            .column_as(bot::Column::Id.count(), "n")
            .filter(bot::Column::Status.is_in(super::statuses_where(BotStatus::is_leased)))
            .filter(bot::Column::WorkerId.is_not_null())
            .group_by(bot::Column::WorkerId)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await
    }

    pub(crate) async fn bot(&self, id: &str) -> Result<Option<bot::Model>, DbErr> {
        bot::Entity::find_by_id(id.to_string()).one(&self.db).await
    }

    /// The bots of `ids` that exist, in one query, in no particular order.
    pub(crate) async fn bots(&self, ids: &[String]) -> Result<Vec<bot::Model>, DbErr> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        bot::Entity::find()
            .filter(bot::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await
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
                )
                // Why it waited in the queue is over once it moves.
                .col_expr(
                    bot::Column::QueueReason,
                    Expr::value(Option::<Stored<QueueReason>>::None),
                );
            if t.to == BotStatus::Queued {
                q = q.col_expr(bot::Column::QueuedAt, Expr::value(t.at));
            }
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
        // The compare-and-swap, returning the row as it now is.
        let Some(updated) = q.exec_with_returning(&txn).await?.into_iter().next() else {
            return Err(StoreError::Conflict);
        };
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
            meeting_url: Set(String::new()),
            platform: Set(Stored(b.platform)),
            bot_name: Set(String::new()),
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
            data_key: Set(Some(b.data_key)),
            transcription: Set(b.transcription),
            pool: Set(b.pool),
            object_store: Set(Some(b.object_store)),
            queued_at: Set(Some(b.created_at)),
            queue_reason: Set(None),
            meeting_url_sealed: Set(Some(b.meeting_url_sealed)),
            bot_name_sealed: Set(Some(b.bot_name_sealed)),
            key_generation: Set(b.key_generation),
            trace_parent: Set(b.trace_parent),
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
        let store = fixtures::store_with_tenant().await;
        let b = store
            .scoped("t1")
            .insert_bot(fixtures::new_bot("b1"))
            .await
            .unwrap();
        (store, b.0.id)
    }

    use super::super::fixtures::{self, lease};

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
    async fn leases_are_counted_per_worker_and_only_while_held() {
        let store = fixtures::store_with_tenant().await;
        for (id, worker) in [
            ("a", Some("w1")),
            ("b", Some("w1")),
            ("c", Some("w2")),
            ("d", None),
        ] {
            store
                .scoped("t1")
                .insert_bot(fixtures::new_bot(id))
                .await
                .unwrap();
            if let Some(w) = worker {
                store.transition(lease(id, w, 0)).await.unwrap();
            }
        }
        // An ended bot holds nothing.
        let g = store.bot("c").await.unwrap().unwrap().lease_generation;
        store
            .transition(report(
                "c",
                g,
                1,
                BotStatus::Ended,
                Some(StatusReason::MeetingEnded),
            ))
            .await
            .unwrap();
        let mut counts = store.leases_per_worker().await.unwrap();
        counts.sort();
        assert_eq!(counts, [("w1".to_string(), 2)]);
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

    async fn queue_bot(
        store: &Store,
        id: &str,
        region: &str,
        pool: Option<&str>,
        at: DateTime<Utc>,
    ) {
        store
            .scoped("t1")
            .insert_bot(NewBot {
                region: region.into(),
                join_at: at,
                created_at: at,
                pool: pool.map(str::to_string),
                ..fixtures::new_bot(id)
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_queue_is_read_per_region_and_pool() {
        let (store, b1) = store_with_bot().await;
        let t0 = now() - chrono::Duration::seconds(100);
        queue_bot(&store, "us-1", "us", None, t0).await;
        queue_bot(
            &store,
            "us-2",
            "us",
            None,
            t0 + chrono::Duration::seconds(1),
        )
        .await;
        queue_bot(&store, "p-1", "us", Some("acme"), t0).await;
        queue_bot(
            &store,
            "later",
            "us",
            None,
            now() + chrono::Duration::hours(1),
        )
        .await;
        let mut groups = store.queue_groups(now()).await.unwrap();
        groups.sort_by(|a, b| (&a.region, &a.pool).cmp(&(&b.region, &b.pool)));
        let counts: Vec<_> = groups
            .iter()
            .map(|g| (g.region.as_str(), g.pool.as_deref(), g.due))
            .collect();
        assert_eq!(
            counts,
            [("local", None, 1), ("us", None, 2), ("us", Some("acme"), 1)]
        );
        let ids = |bots: Vec<bot::Model>| bots.into_iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.due_bots("us", None, now(), 10).await.unwrap()),
            ["us-1", "us-2"]
        );
        assert_eq!(
            ids(store.due_bots("us", Some("acme"), now(), 10).await.unwrap()),
            ["p-1"]
        );
        assert_eq!(
            ids(store.due_bots("us", None, now(), 1).await.unwrap()),
            ["us-1"]
        );

        // A reason for the due bots of one group only, noted once.
        let noted = store
            .note_queue_reason("us", None, now(), QueueReason::NoWorkerInRegion)
            .await
            .unwrap();
        assert_eq!(noted, 2);
        let again = store
            .note_queue_reason("us", None, now(), QueueReason::NoWorkerInRegion)
            .await
            .unwrap();
        assert_eq!(again, 0, "nothing to change");
        let reason = |id: &str| {
            let store = store.clone();
            let id = id.to_string();
            async move {
                store
                    .bot(&id)
                    .await
                    .unwrap()
                    .unwrap()
                    .queue_reason
                    .map(|r| r.0)
            }
        };
        assert_eq!(reason("us-1").await, Some(QueueReason::NoWorkerInRegion));
        assert_eq!(reason("p-1").await, None, "another pool");
        assert_eq!(reason("later").await, None, "not due yet");
        assert_eq!(reason(&b1).await, None, "another region");

        // Waited since before the cutoff: its join time and its queueing.
        let cutoff = t0 + chrono::Duration::milliseconds(500);
        assert_eq!(
            ids(store.queued_since("us", None, cutoff, 10).await.unwrap()),
            ["us-1"]
        );

        // Leased, the reason is gone; queued again, the wait starts over.
        store.transition(lease("us-1", "w-a", 0)).await.unwrap();
        assert_eq!(reason("us-1").await, None);
        let mut requeue = Transition::new("us-1", BotStatus::Queued, None);
        requeue.expect_generation = Some(1);
        store.transition(requeue).await.unwrap();
        let b = store.bot("us-1").await.unwrap().unwrap();
        assert!(b.queued_at.unwrap() > cutoff);
        assert!(
            store
                .queued_since("us", None, cutoff, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.next_join_after(now()).await.unwrap(),
            Some(store.bot("later").await.unwrap().unwrap().join_at),
            "only future joins wake the dispatcher"
        );
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
