//! Workers and join tokens: enrollment, and each worker's state as any
//! replica last saw it.

use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};

use super::{Store, now};
use crate::entity::names::{Stored, WorkerState};
use crate::entity::{join_token, worker};

impl Store {
    pub(crate) async fn insert_join_token(&self, t: join_token::Model) -> Result<(), DbErr> {
        join_token::ActiveModel {
            id: Set(t.id),
            secret_hash: Set(t.secret_hash),
            region: Set(t.region),
            created_at: Set(t.created_at),
            expires_at: Set(t.expires_at),
            used_at: Set(None),
            used_by_worker: Set(None),
            pool: Set(t.pool),
            max_uses: Set(t.max_uses),
            uses: Set(0),
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

    /// Spends one use of a join token and records the worker it enrolled,
    /// atomically: a token enrolls at most `max_uses` workers, ever.
    pub(crate) async fn enroll_worker(
        &self,
        token_id: &str,
        w: worker::Model,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let spent = join_token::Entity::update_many()
            .col_expr(join_token::Column::UsedAt, Expr::value(w.enrolled_at))
            .col_expr(join_token::Column::UsedByWorker, Expr::value(w.id.clone()))
            .col_expr(
                join_token::Column::Uses,
                Expr::col(join_token::Column::Uses).add(1),
            )
            .filter(join_token::Column::Id.eq(token_id))
            .filter(Expr::col(join_token::Column::Uses).lt(Expr::col(join_token::Column::MaxUses)))
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
            pool: Set(w.pool),
            drain_requested_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    pub(crate) async fn worker(&self, id: &str) -> Result<Option<worker::Model>, DbErr> {
        worker::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
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
            .filter(worker::Column::State.eq(Stored(WorkerState::Connected)))
            .filter(worker::Column::LastSeenAt.gt(since))
            .count(&self.db)
            .await?
            > 0)
    }

    /// The (region, pool) of every worker any replica saw connected within
    /// `window`: where a worker exists even if this replica has no link
    /// to it.
    pub(crate) async fn live_worker_groups(
        &self,
        window: std::time::Duration,
    ) -> Result<Vec<(String, Option<String>)>, DbErr> {
        let since = now() - chrono::Duration::from_std(window).unwrap_or_default();
        Ok(worker::Entity::find()
            .filter(worker::Column::State.eq(Stored(WorkerState::Connected)))
            .filter(worker::Column::LastSeenAt.gt(since))
            .filter(worker::Column::RevokedAt.is_null())
            .all(&self.db)
            .await?
            .into_iter()
            .map(|w| (w.region, w.pool))
            .collect())
    }

    /// Records a heartbeat (and repairs a `reconnecting` left behind by the
    /// replica the worker moved away from).
    /// Records the operator's request that a worker drain; false if it is
    /// unknown or revoked.
    pub(crate) async fn request_drain(&self, id: &str) -> Result<bool, DbErr> {
        let r = worker::Entity::update_many()
            .col_expr(worker::Column::DrainRequestedAt, Expr::value(now()))
            .filter(worker::Column::Id.eq(id))
            .filter(worker::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// The worker drained and went: a later start of it serves again.
    pub(crate) async fn clear_drain(&self, id: &str) -> Result<(), DbErr> {
        worker::Entity::update_many()
            .col_expr(
                worker::Column::DrainRequestedAt,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .filter(worker::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    pub(crate) async fn drain_requested(&self, id: &str) -> Result<bool, DbErr> {
        Ok(self
            .worker(id)
            .await?
            .is_some_and(|w| w.drain_requested_at.is_some()))
    }

    pub(crate) async fn touch_worker(&self, id: &str) -> Result<(), DbErr> {
        worker::Entity::update_many()
            .col_expr(worker::Column::LastSeenAt, Expr::value(now()))
            .col_expr(
                worker::Column::State,
                Expr::value(Stored(WorkerState::Connected)),
            )
            .filter(worker::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    pub(crate) async fn set_worker_state(
        &self,
        id: &str,
        state: WorkerState,
        capacity: Option<i32>,
    ) -> Result<(), DbErr> {
        let mut q = worker::Entity::update_many()
            .col_expr(worker::Column::State, Expr::value(Stored(state)));
        // Seen only when it is: a link found dropped, or a worker found
        // lost, must not look recently heard from to the other replicas.
        if state == WorkerState::Connected {
            q = q.col_expr(worker::Column::LastSeenAt, Expr::value(now()));
        }
        if let Some(c) = capacity {
            q = q.col_expr(worker::Column::Capacity, Expr::value(c));
        }
        q.filter(worker::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }
}
