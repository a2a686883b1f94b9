//! All database access. Two doors, on purpose:
//!
//! - [`Scoped`]: everything a tenant's principal may read or ask for. It is
//!   built from an authenticated principal's tenant id and every query it
//!   runs filters on that id: this is the one place tenant scoping lives.
//! - The rest of [`Store`]: the control plane's own moves (leases, results
//!   from workers, sweeps). Every bot change is a compare-and-swap on
//!   (id, status, lease generation, result sequence), so replicas and racing
//!   tasks can never apply two conflicting moves.

use attache_protocol::{BotStatus, StatusReason, TransitionError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
};

mod keys;
mod media;
mod people;
pub(crate) use people::MemberRow;
mod webhooks;

pub(crate) use media::{MediaWrite, Stored};
pub(crate) use webhooks::{DueDelivery, EVENT_TYPES, EndpointInput};

use crate::entity::{api_key, bot, bot_event, join_token, lease, tenant, worker};
use attache_migrations::{Migrator, MigratorTrait};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("not found")]
    NotFound,
    #[error("lease generation {got} is stale (current {current})")]
    Stale { got: i64, current: i64 },
    #[error("result sequence gap: expected {expected}, got {got}")]
    Gap { expected: i64, got: i64 },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the bot changed concurrently; try again")]
    Conflict,
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

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

pub(crate) fn now() -> DateTime<Utc> {
    // Millisecond precision: what every backend stores exactly.
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl Store {
    pub async fn open(url: &str) -> Result<Store, DbErr> {
        let mut opts = ConnectOptions::new(url.to_string());
        opts.sqlx_logging(false)
            .max_connections(if url.starts_with("sqlite") { 1 } else { 16 });
        let db = Database::connect(opts).await?;
        if url.starts_with("sqlite") {
            for pragma in [
                "PRAGMA journal_mode = WAL",
                "PRAGMA foreign_keys = ON",
                "PRAGMA busy_timeout = 5000",
            ] {
                db.execute_unprepared(pragma).await?;
            }
        }
        Ok(Store { db })
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    pub fn scoped(&self, tenant_id: &str) -> Scoped<'_> {
        Scoped {
            db: &self.db,
            tenant_id: tenant_id.to_string(),
        }
    }

    // ---- tenants and keys -------------------------------------------------

    pub(crate) async fn insert_tenant(&self, t: tenant::Model) -> Result<tenant::Model, DbErr> {
        tenant::ActiveModel {
            id: Set(t.id),
            name: Set(t.name),
            region: Set(t.region),
            created_at: Set(t.created_at),
            retention_days: Set(t.retention_days),
        }
        .insert(&self.db)
        .await
    }

    pub(crate) async fn tenant_by_name(&self, name: &str) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find()
            .filter(tenant::Column::Name.eq(name))
            .one(&self.db)
            .await
    }

    pub(crate) async fn tenant(&self, id: &str) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    pub(crate) async fn insert_api_key(&self, k: api_key::Model) -> Result<(), DbErr> {
        api_key::ActiveModel {
            id: Set(k.id),
            tenant_id: Set(k.tenant_id),
            name: Set(k.name),
            secret_hash: Set(k.secret_hash),
            role: Set(k.role),
            created_at: Set(k.created_at),
            expires_at: Set(k.expires_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
            member_id: Set(k.member_id),
            created_by: Set(k.created_by),
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    pub(crate) async fn api_key(&self, id: &str) -> Result<Option<api_key::Model>, DbErr> {
        api_key::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    /// Records use at most once a minute per key, to keep reads cheap.
    pub(crate) async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
            .filter(api_key::Column::Id.eq(id))
            .filter(
                Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(at - chrono::Duration::seconds(60))),
            )
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    // ---- fleet ------------------------------------------------------------

    pub(crate) async fn insert_join_token(&self, t: join_token::Model) -> Result<(), DbErr> {
        join_token::ActiveModel {
            id: Set(t.id),
            secret_hash: Set(t.secret_hash),
            region: Set(t.region),
            created_at: Set(t.created_at),
            expires_at: Set(t.expires_at),
            used_at: Set(None),
            used_by_worker: Set(None),
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    pub(crate) async fn join_token(&self, id: &str) -> Result<Option<join_token::Model>, DbErr> {
        join_token::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    /// Spends a join token and records the worker it enrolled, atomically:
    /// a token can enroll one worker, ever.
    pub(crate) async fn enroll_worker(
        &self,
        token_id: &str,
        w: worker::Model,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let spent = join_token::Entity::update_many()
            .col_expr(join_token::Column::UsedAt, Expr::value(w.enrolled_at))
            .col_expr(join_token::Column::UsedByWorker, Expr::value(w.id.clone()))
            .filter(join_token::Column::Id.eq(token_id))
            .filter(join_token::Column::UsedAt.is_null())
            .exec(&txn)
            .await?;
        if spent.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        worker::ActiveModel {
            id: Set(w.id),
            region: Set(w.region),
            hostname: Set(w.hostname),
            cert_fingerprint: Set(w.cert_fingerprint),
            capacity: Set(w.capacity),
            state: Set(w.state),
            enrolled_at: Set(w.enrolled_at),
            last_seen_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    pub(crate) async fn worker_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<worker::Model>, DbErr> {
        worker::Entity::find()
            .filter(worker::Column::CertFingerprint.eq(fingerprint))
            .filter(worker::Column::RevokedAt.is_null())
            .one(&self.db)
            .await
    }

    /// Whether any replica recorded a sign of life from this worker within
    /// `window`.
    pub(crate) async fn worker_seen_within(
        &self,
        id: &str,
        window: std::time::Duration,
    ) -> Result<bool, DbErr> {
        let since = now() - chrono::Duration::from_std(window).unwrap_or_default();
        Ok(worker::Entity::find()
            .filter(worker::Column::Id.eq(id))
            .filter(worker::Column::State.eq("connected"))
            .filter(worker::Column::LastSeenAt.gt(since))
            .count(&self.db)
            .await?
            > 0)
    }

    /// Records a heartbeat (and repairs a `reconnecting` left behind by the
    /// replica the worker moved away from).
    pub(crate) async fn touch_worker(&self, id: &str) -> Result<(), DbErr> {
        worker::Entity::update_many()
            .col_expr(worker::Column::LastSeenAt, Expr::value(now()))
            .col_expr(worker::Column::State, Expr::value("connected"))
            .filter(worker::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    pub(crate) async fn set_worker_state(
        &self,
        id: &str,
        state: &str,
        capacity: Option<i32>,
    ) -> Result<(), DbErr> {
        let mut q = worker::Entity::update_many()
            .col_expr(worker::Column::State, Expr::value(state))
            .col_expr(worker::Column::LastSeenAt, Expr::value(now()));
        if let Some(c) = capacity {
            q = q.col_expr(worker::Column::Capacity, Expr::value(c));
        }
        q.filter(worker::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    // ---- bots: the control plane's side ---------------------------------

    /// Queued bots whose join time has come, oldest first.
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
        if let Some(g) = t.expect_generation
            && bot.lease_generation != g
        {
            return Err(StoreError::Stale {
                got: g,
                current: bot.lease_generation,
            });
        }
        let from = BotStatus::parse(&bot.status)
            .ok_or_else(|| StoreError::Corrupt(format!("bot {} status {}", bot.id, bot.status)))?;
        if let Some(s) = t.expect_status
            && s != from
        {
            return Err(StoreError::Conflict);
        }
        if let Some(seq) = t.result_seq {
            if seq <= bot.last_result_seq {
                return Ok(Applied::Duplicate);
            }
            if seq != bot.last_result_seq + 1 {
                return Err(StoreError::Gap {
                    expected: bot.last_result_seq + 1,
                    got: seq,
                });
            }
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
            .filter(bot::Column::Status.eq(bot.status.clone()))
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
            status: Set(t.to.as_str().to_string()),
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

/// Everything one tenant's principal may touch. Built only from an
/// authenticated principal; every query filters on `tenant_id`.
pub struct Scoped<'a> {
    db: &'a DatabaseConnection,
    tenant_id: String,
}

/// A page of bots, newest first.
pub(crate) struct BotPage {
    pub bots: Vec<bot::Model>,
    pub has_next: bool,
}

impl Scoped<'_> {
    pub(crate) async fn tenant(&self) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find_by_id(self.tenant_id.clone())
            .one(self.db)
            .await
    }

    pub(crate) async fn bot(&self, id: &str) -> Result<Option<bot::Model>, DbErr> {
        bot::Entity::find_by_id(id.to_string())
            .filter(bot::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    pub(crate) async fn insert_bot(&self, b: bot::Model) -> Result<bot::Model, DbErr> {
        debug_assert_eq!(b.tenant_id, self.tenant_id);
        let txn = self.db.begin().await?;
        let model = bot::ActiveModel {
            id: Set(b.id.clone()),
            tenant_id: Set(self.tenant_id.clone()),
            region: Set(b.region),
            meeting_url: Set(b.meeting_url),
            platform: Set(b.platform),
            bot_name: Set(b.bot_name),
            status: Set(BotStatus::Queued.as_str().to_string()),
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
            status: Set(BotStatus::Queued.as_str().to_string()),
            reason: Set(None),
            detail: Set(None),
            at: Set(model.created_at),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        webhooks::on_status(&txn, &model, &event).await?;
        txn.commit().await?;
        Ok(model)
    }

    /// Newest first; `after` is the (created_at, id) of the last bot seen.
    pub(crate) async fn bots(
        &self,
        first: u64,
        after: Option<(DateTime<Utc>, String)>,
        status: Option<BotStatus>,
    ) -> Result<BotPage, DbErr> {
        let mut q = bot::Entity::find().filter(bot::Column::TenantId.eq(self.tenant_id.clone()));
        if let Some(s) = status {
            q = q.filter(bot::Column::Status.eq(s.as_str()));
        }
        if let Some((at, id)) = after {
            q = q.filter(
                Condition::any().add(bot::Column::CreatedAt.lt(at)).add(
                    Condition::all()
                        .add(bot::Column::CreatedAt.eq(at))
                        .add(bot::Column::Id.lt(id)),
                ),
            );
        }
        let mut bots = q
            .order_by_desc(bot::Column::CreatedAt)
            .order_by_desc(bot::Column::Id)
            .limit(first + 1)
            .all(self.db)
            .await?;
        let has_next = bots.len() as u64 > first;
        bots.truncate(first as usize);
        Ok(BotPage { bots, has_next })
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
            .insert_bot(bot::Model {
                id: "b1".into(),
                tenant_id: "t1".into(),
                region: "local".into(),
                meeting_url: "https://meet.google.com/abc-defg-hij".into(),
                platform: "GOOGLE_MEET".into(),
                bot_name: "Bot".into(),
                status: "QUEUED".into(),
                status_reason: None,
                join_at: now(),
                join_timeout_ms: 1,
                lobby_timeout_ms: 1,
                max_duration_ms: 1,
                nobody_joined_ms: 1,
                alone_ms: 1,
                silence_ms: 1,
                worker_id: None,
                lease_generation: 0,
                last_result_seq: 0,
                leave_requested: false,
                created_at: now(),
                updated_at: now(),
                ended_at: None,
                data_key: None,
                transcription: None,
            })
            .await
            .unwrap();
        (store, b.id)
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
                .bots(10, None, None)
                .await
                .unwrap()
                .bots
                .is_empty()
        );
    }
}
