use sea_orm::entity::prelude::*;

use super::names::{Stored, WorkerState};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub region: String,
    pub hostname: String,
    /// SHA-256 of the worker's client certificate (DER), hex.
    pub cert_fingerprint: String,
    pub capacity: i32,
    pub state: Stored<WorkerState>,
    pub enrolled_at: DateTimeUtc,
    pub last_seen_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// The dedicated pool it was enrolled into (named in its certificate);
    /// `None`: a shared worker of its region.
    pub pool: Option<String>,
    /// The operator asked it to drain (`drainWorker`); cleared once it has
    /// drained and gone.
    pub drain_requested_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
