//! Erasure as the API shows it: asking for one (a bot, a participant by
//! name, or, for the operator, a tenant) and following its job to the
//! signed certificate.
//!
//! A mutation only checks and records the job; the erasure itself runs in
//! the background (`crate::erasure`). Asking again for a subject whose job
//! has not failed answers that job, so a retried request erases once. The
//! certificate names the requester by key or membership id, never by
//! email, and a participant only by a salted hash; the name is kept sealed
//! with the tenant's key while the job runs, and dropped when it ends.

use async_graphql::{Context, Enum, ID, Object, Result};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};
use sea_orm::Set;

use super::error::ApiError;
use super::guard::guard;
use crate::access::{Actor, Principal};
use crate::audit::note_target;
use crate::entity::erasure_job;
use crate::erasure::{BOT, PARTICIPANT, TENANT, certificate, name_context};
use crate::keys::derive;
use crate::store::erasure::QUEUED;
use crate::store::now;

const MAX_NAME_CHARS: usize = 200;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum ErasureSubject {
    /// One bot: every row and object of it.
    Bot,
    /// One person, by display name, in every bot of the tenant.
    Participant,
    /// A whole tenant (the operator's).
    Tenant,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum ErasureStatus {
    /// Waiting for a replica to run it (or, with a reason, for its bot to
    /// leave its meeting, or to be tried again).
    Queued,
    Running,
    /// Erased; the certificate is ready.
    Done,
    /// Not erased; `statusReason` says why (`LEGAL_HOLD: …`).
    Failed,
}

/// An erasure and its outcome.
pub(crate) struct ErasureJob(pub erasure_job::Model);

#[Object]
impl ErasureJob {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn subject(&self) -> ErasureSubject {
        match self.0.subject.as_str() {
            BOT => ErasureSubject::Bot,
            PARTICIPANT => ErasureSubject::Participant,
            _ => ErasureSubject::Tenant,
        }
    }
    /// The bot's or the tenant's id; null for a participant.
    async fn subject_id(&self) -> Option<&str> {
        if self.0.subject == PARTICIPANT {
            return None;
        }
        self.0.subject_id.as_deref()
    }
    async fn status(&self) -> ErasureStatus {
        match self.0.status.as_str() {
            "RUNNING" => ErasureStatus::Running,
            "DONE" => ErasureStatus::Done,
            "FAILED" => ErasureStatus::Failed,
            _ => ErasureStatus::Queued,
        }
    }
    /// Why it waits or failed: a code, a colon, a sentence.
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    /// The signed certificate once DONE: a JWS (flattened JSON, EdDSA)
    /// whose key is at `/.well-known/attache-erasure-key`.
    async fn certificate(&self) -> Option<&str> {
        self.0.certificate.as_deref()
    }
    /// `key:<id>`, `member:<id>` or `operator`.
    async fn requested_by(&self) -> &str {
        &self.0.requested_by
    }
    async fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
}

/// Who asked, as a certificate may name them: no email.
fn requester(p: &Principal) -> String {
    match (&p.actor, &p.member_id) {
        (Actor::Key { id }, _) => format!("key:{id}"),
        (Actor::User { .. }, Some(m)) => format!("member:{m}"),
        (Actor::User { .. }, None) => "operator".to_string(),
    }
}

fn new_job(
    tenant_id: &str,
    subject: &str,
    subject_id: String,
    by: String,
) -> erasure_job::ActiveModel {
    erasure_job::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(tenant_id.to_string()),
        subject: Set(subject.to_string()),
        subject_id: Set(Some(subject_id)),
        name_sealed: Set(None),
        name_salt: Set(None),
        name_hash: Set(None),
        status: Set(QUEUED.to_string()),
        status_reason: Set(None),
        progress: Set(None),
        certificate: Set(None),
        requested_by: Set(by),
        requested_at: Set(now()),
        started_at: Set(None),
        completed_at: Set(None),
        holder: Set(None),
        lease_until: Set(None),
        attempts: Set(0),
    }
}

#[derive(Default)]
pub(crate) struct ErasureQuery;

#[Object]
impl ErasureQuery {
    /// Erasure jobs, newest first (up to 100): the tenant's own, or for
    /// the operator every tenant erasure.
    async fn erasure_jobs(&self, ctx: &Context<'_>) -> Result<Vec<ErasureJob>> {
        let (state, principal) = super::guard::guard_signed_in(ctx)?;
        let rows = if principal.allows(Action::ManageTenants) {
            state.store.tenant_erasure_jobs().await
        } else {
            let (_, _, scoped) = guard(ctx, Action::EraseData)?;
            scoped.erasure_jobs().await
        }
        .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(ErasureJob).collect())
    }

    async fn erasure_job(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ErasureJob>> {
        let (state, principal) = super::guard::guard_signed_in(ctx)?;
        let row = if principal.allows(Action::ManageTenants) {
            state
                .store
                .erasure_job(&id)
                .await
                .map_err(ApiError::from)?
                .filter(|j| j.subject == TENANT)
        } else {
            let (_, _, scoped) = guard(ctx, Action::EraseData)?;
            scoped.erasure_job(&id).await.map_err(ApiError::from)?
        };
        Ok(row.map(ErasureJob))
    }
}

#[derive(Default)]
pub(crate) struct ErasureMutation;

#[Object]
impl ErasureMutation {
    /// Erases a bot: every row and object of it, and its data key. A bot
    /// still in its meeting is asked to leave first. Refused (LEGAL_HOLD)
    /// while a legal hold covers it.
    async fn erase_bot(&self, ctx: &Context<'_>, id: ID) -> Result<ErasureJob> {
        let (state, principal, scoped) = guard(ctx, Action::EraseData)?;
        note_target(ctx, format!("erasure:bot:{}", id.0));
        let tenant_id = &principal.tenant_id;
        if let Some(j) = state
            .store
            .open_erasure_job(tenant_id, BOT, &id)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(ErasureJob(j));
        }
        if scoped.bot(&id).await.map_err(ApiError::from)?.is_none() {
            return Err(ApiError::NotFound.into());
        }
        if scoped.held(Some(&id)).await.map_err(ApiError::from)? {
            return Err(ApiError::LegalHold(
                "a legal hold keeps this bot; release it first".into(),
            )
            .into());
        }
        let job = state
            .store
            .insert_erasure_job(new_job(tenant_id, BOT, id.0.clone(), requester(principal)))
            .await
            .map_err(ApiError::from)?;
        note_target(ctx, format!("erasure:{} bot:{}", job.id, id.0));
        tracing::info!(%tenant_id, job = %job.id, bot_id = %id.0, "bot erasure asked");
        state.erasure_wakeup.notify_one();
        Ok(ErasureJob(job))
    }

    /// Erases one person from every bot of the tenant: the transcript
    /// segments they spoke, their chat messages, their stays and speaking
    /// turns (matched by display name, trimmed, ignoring case), and the
    /// webhook deliveries of the bots they were in. Bots under a legal hold
    /// keep theirs (the certificate counts them).
    async fn erase_participant(&self, ctx: &Context<'_>, name: String) -> Result<ErasureJob> {
        let (state, principal, scoped) = guard(ctx, Action::EraseData)?;
        note_target(ctx, "erasure:participant");
        let tenant_id = &principal.tenant_id;
        let wanted = certificate::normalize(&name);
        if wanted.is_empty()
            || wanted.chars().count() > MAX_NAME_CHARS
            || wanted.chars().any(char::is_control)
        {
            return Err(ApiError::BadInput(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters on one line"
            ))
            .into());
        }
        if scoped.held(None).await.map_err(ApiError::from)? {
            return Err(ApiError::LegalHold(
                "a legal hold keeps the tenant's data; release it first".into(),
            )
            .into());
        }
        let key = state
            .keys
            .tenant_key(tenant_id)
            .await
            .map_err(ApiError::from)?;
        // The same person asked for twice is one job: matched by a keyed
        // hash only this tenant's key makes.
        let subject_id = {
            use hmac::{Hmac, Mac};
            let sub = derive(&key, "attache/erasure-subject");
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(&sub).expect("any key length");
            m.update(wanted.as_bytes());
            hex::encode(m.finalize().into_bytes())
        };
        if let Some(j) = state
            .store
            .open_erasure_job(tenant_id, PARTICIPANT, &subject_id)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(ErasureJob(j));
        }
        let mut job = new_job(tenant_id, PARTICIPANT, subject_id, requester(principal));
        let id = job.id.clone().unwrap();
        let (salt, hash) = certificate::salted_name(&wanted);
        job.name_sealed = Set(Some(key.seal(&name_context(&id), wanted.as_bytes())));
        job.name_salt = Set(Some(salt));
        job.name_hash = Set(Some(hash));
        let job = state
            .store
            .insert_erasure_job(job)
            .await
            .map_err(ApiError::from)?;
        note_target(ctx, format!("erasure:{} participant", job.id));
        tracing::info!(%tenant_id, job = %job.id, "participant erasure asked");
        state.erasure_wakeup.notify_one();
        Ok(ErasureJob(job))
    }

    /// Erases a tenant (operator only): every bot, setting, member, key
    /// and endpoint of it, then its keys; its audit trail is kept.
    async fn erase_tenant(&self, ctx: &Context<'_>, id: ID) -> Result<ErasureJob> {
        let (state, principal, _) = guard(ctx, Action::ManageTenants)?;
        note_target(ctx, format!("erasure:tenant:{}", id.0));
        if let Some(j) = state
            .store
            .open_erasure_job(&id, TENANT, &id)
            .await
            .map_err(ApiError::from)?
        {
            return Ok(ErasureJob(j));
        }
        if state
            .store
            .tenant(&id)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::NotFound.into());
        }
        if state
            .store
            .scoped(&id)
            .held(None)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::LegalHold(
                "a legal hold keeps this tenant's data; release it first".into(),
            )
            .into());
        }
        let job = state
            .store
            .insert_erasure_job(new_job(&id, TENANT, id.0.clone(), requester(principal)))
            .await
            .map_err(ApiError::from)?;
        note_target(ctx, format!("erasure:{} tenant:{}", job.id, id.0));
        tracing::info!(tenant_id = %id.0, job = %job.id, "tenant erasure asked");
        state.erasure_wakeup.notify_one();
        Ok(ErasureJob(job))
    }
}
