//! sea-orm entities, one per table of `migrations/`. Ids are stored as text
//! so the same schema runs on SQLite and PostgreSQL.

pub mod api_key;
pub mod audit_entry;
pub mod bot;
pub mod bot_event;
pub mod bot_warning;
pub mod chat_message;
pub mod console_session;
pub mod identity_provider;
pub mod invitation;
pub mod job_lease;
pub mod join_token;
pub mod lease;
pub mod legal_hold;
pub mod login_state;
pub mod member;
pub mod names;
pub mod operator;
pub mod participant;
pub mod platform_key;
pub mod policy_override;
pub mod recording;
pub mod retention_default;
pub mod retention_policy;
pub mod speaker_segment;
pub mod tenant;
pub mod tenant_key;
pub mod tenant_notice;
pub mod transcript_segment;
pub mod transcription_setting;
pub mod user;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod worker;
