//! sea-orm entities, one per table of `migrations/`. Ids are stored as text
//! so the same schema runs on SQLite and PostgreSQL.

pub mod api_key;
pub mod bot;
pub mod bot_event;
pub mod join_token;
pub mod lease;
pub mod tenant;
pub mod worker;
