//! All database access. Two doors, on purpose:
//!
//! - [`Scoped`]: everything a tenant's principal may read or ask for. It is
//!   built from an authenticated principal's tenant id and every query it
//!   runs filters on that id: this is the one place tenant scoping lives.
//! - The rest of [`Store`]: the control plane's own moves (leases, results
//!   from workers, sweeps). Every bot change is a compare-and-swap on
//!   (id, status, lease generation, result sequence), so replicas and racing
//!   tasks can never apply two conflicting moves.

use attache_protocol::{BotStatus, TransitionError};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait};

mod activity;
pub(crate) mod backfill;
mod bots;
pub(crate) mod erasure;
pub(crate) mod fence;
#[cfg(test)]
pub(crate) mod fixtures;
mod fleet;
mod generations;
mod keys;
mod media;
mod people;
mod results;
mod retention;
mod segments;
mod sweep;
mod tenants;
mod webhooks;
mod window;

pub(crate) use activity::{
    ActivityCursor, ActivityRows, OPT_IN_EVENT_TYPES, is_sealed, open_payload,
};
pub(crate) use bots::{Applied, NewBot, QueueGroup, Transition};
pub(crate) use erasure::PeopleIds;
pub(crate) use media::{MatchKey, MediaWrite, Written};
pub(crate) use people::MemberRow;
pub(crate) use results::ResultWrite;
pub(crate) use segments::Segment;
pub(crate) use sweep::Candidate;
pub(crate) use webhooks::{DueDelivery, EVENT_TYPES, EndpointInput};
pub(crate) use window::{Slice, Window};

use crate::entity::tenant;
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
    /// The key provider refused or could not be reached.
    #[error("key provider: {0}")]
    Keys(String),
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    pub(crate) fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres
    }
}

/// The names of the statuses `keep` holds for, as stored: for a query's
/// `IN (…)`.
pub(crate) fn statuses_where(keep: fn(BotStatus) -> bool) -> Vec<&'static str> {
    BotStatus::ALL
        .iter()
        .filter(|s| keep(**s))
        .map(|s| s.as_str())
        .collect()
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
}

/// Everything one tenant's principal may touch. Built only from an
/// authenticated principal; every query filters on `tenant_id`.
pub struct Scoped<'a> {
    db: &'a DatabaseConnection,
    tenant_id: String,
}

impl Scoped<'_> {
    pub(crate) async fn tenant(&self) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find_by_id(self.tenant_id.clone())
            .one(self.db)
            .await
    }
}
