use sea_orm::entity::prelude::*;

/// An erasure of a bot, a participant (by name, across every bot of the
/// tenant) or a whole tenant, run in the background by whichever replica
/// holds its lease, and its signed certificate once done.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erasure_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// `BOT`, `PARTICIPANT` or `TENANT`.
    pub subject: String,
    /// The bot's or the tenant's id; `None` for a participant.
    pub subject_id: Option<String>,
    /// A participant's name, sealed with the tenant's key while the job
    /// runs; dropped when it ends.
    pub name_sealed: Option<Vec<u8>>,
    /// The salt and the salted hash the certificate names a participant by.
    pub name_salt: Option<String>,
    pub name_hash: Option<String>,
    /// `QUEUED`, `RUNNING`, `DONE` or `FAILED`.
    pub status: String,
    /// Why it waits or failed (a code and a sentence).
    pub status_reason: Option<String>,
    /// What it removed so far (JSON), kept across attempts.
    pub progress: Option<String>,
    /// The signed certificate (a JWS in JSON), once `DONE`.
    pub certificate: Option<String>,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    /// The replica running it, and until when its claim holds.
    pub holder: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub attempts: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
