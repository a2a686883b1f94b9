//! The Attaché schema, as sea-orm migrations that run unchanged on SQLite (the
//! embedded default) and PostgreSQL (production). Migrations only ever add:
//! a released migration is never edited.

pub use sea_orm_migration::prelude::*;

mod m0001_foundation;
mod m0002_media;
mod m0003_sessions;
mod m0004_console;
mod m0005_residency;
mod m0006_key_providers;
mod m0007_retention;
mod m0008_sealed_personal_fields;
mod m0009_erasure;
mod m0010_webhook_claims;
mod m0011_join_token_uses;
mod m0012_bot_trace;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_foundation::Migration),
            Box::new(m0002_media::Migration),
            Box::new(m0003_sessions::Migration),
            Box::new(m0004_console::Migration),
            Box::new(m0005_residency::Migration),
            Box::new(m0006_key_providers::Migration),
            Box::new(m0007_retention::Migration),
            Box::new(m0008_sealed_personal_fields::Migration),
            Box::new(m0009_erasure::Migration),
            Box::new(m0010_webhook_claims::Migration),
            Box::new(m0011_join_token_uses::Migration),
            Box::new(m0012_bot_trace::Migration),
        ]
    }
}
