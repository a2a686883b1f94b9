//! Erasure: a bot, a participant (by name, in every bot of the tenant) or
//! a whole tenant, erased in the background and proven by a signed
//! certificate.
//!
//! The API only records a job (`api/erasure.rs`); the replicas' loop here
//! claims one at a time (a lease on the job's row, so a job survives a
//! restart and runs again wherever its lease ran out) and runs it. Every
//! step is safe to repeat, and what a step removed is saved with the job
//! before the next, so the certificate counts what every attempt removed.
//!
//! - **A bot**: once it is final (a bot still in its meeting is asked to
//!   leave, and the job waits), every row and object of it is deleted —
//!   transcripts, chat, participants and the speaker timeline, webhook
//!   deliveries, recordings with every chunk of every lease, events,
//!   warnings and the bot row with its wrapped data key.
//! - **A participant**: in every bot of the tenant, the stays, speaking
//!   turns, transcript segments and chat messages whose (sealed) name is
//!   theirs, and the webhook deliveries of the bots they were in (a payload
//!   cannot be cut). The recording's mixed audio is not cut.
//! - **A tenant** (the operator's): every bot as above, then everything
//!   else of the tenant but its audit trail, then its keys.
//!
//! Each then destroys keys: a bot or participant erasure rolls the
//! tenant's bot-key generation (`keys::generations`), a tenant erasure
//! destroys every generation and the tenant key, so no copy of the database
//! or the bucket taken before opens what was erased. A legal hold covering
//! what is asked fails the job (`LEGAL_HOLD`); for a participant, bots
//! under a hold are kept and counted.

pub mod certificate;

use std::collections::BTreeMap;
use std::time::Duration;

use attache_protocol::TranscriptionProvider;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use certificate::{CertificateSigner, VerifyError, verify};

use crate::AppState;
use crate::audit::Record;
use crate::entity::{bot, erasure_job};
use crate::recordings::bot_prefix;
use crate::store::erasure::{DONE, FAILED};
use crate::store::{PeopleIds, Scoped, StoreError, now};

/// How long a claim on a job holds without being renewed.
const LEASE: Duration = Duration::from_secs(60);
/// How often an idle replica looks for a job.
const POLL: Duration = Duration::from_secs(2);
/// How long a job waits for its bot to leave before looking again.
const WAIT: Duration = Duration::from_secs(2);
/// How long a job that failed on the way (a database or a store that did
/// not answer) waits before it is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// Rows per delete statement.
const BATCH: u64 = 1000;
/// Bots read per page.
const PAGE: u64 = 100;

pub(crate) const BOT: &str = "BOT";
pub(crate) const PARTICIPANT: &str = "PARTICIPANT";
pub(crate) const TENANT: &str = "TENANT";

/// A reason a job waits or failed: its code, then a sentence.
pub(crate) const LEGAL_HOLD: &str = "LEGAL_HOLD";
pub(crate) const WAITING_FOR_BOT: &str = "WAITING_FOR_BOT_TO_END";

/// What a job removed so far, saved with it between steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Progress {
    pub removed: BTreeMap<String, u64>,
    pub objects: Vec<String>,
    pub keys_destroyed: Vec<String>,
    pub transcription: Vec<Value>,
    /// Bots already erased whole (a tenant's erasure resumes after them).
    pub bots_done: Vec<String>,
    /// Bots a participant's erasure left because a legal hold keeps them.
    pub held_bots: u64,
    /// The data was deleted; only keys are left to destroy.
    pub data_gone: bool,
}

impl Progress {
    fn add(&mut self, class: &str, n: u64) {
        *self.removed.entry(class.to_string()).or_default() += n;
    }
}

/// Why a job stopped short.
#[derive(Debug)]
enum Stop {
    /// It cannot be done as asked: FAILED with this code and sentence.
    Refused(&'static str, String),
    /// Not yet: queued again with this reason.
    Wait(String),
    /// Something on the way failed; tried again later.
    Trouble(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Trouble(e.to_string())
    }
}

impl From<sea_orm::DbErr> for Stop {
    fn from(e: sea_orm::DbErr) -> Stop {
        Stop::Trouble(format!("database: {e}"))
    }
}

/// The deployment's certificate signer (the same on every replica).
pub(crate) async fn signer(state: &AppState) -> Result<CertificateSigner, StoreError> {
    // The same derivation as `Admin::erasure_key`.
    Ok(CertificateSigner::from_seed(
        &state.keys.derived(certificate::PURPOSE).await?,
    ))
}

/// One job, as its runner sees it.
struct Run<'a> {
    state: &'a AppState,
    job: erasure_job::Model,
    holder: &'a str,
    progress: Progress,
}

impl Run<'_> {
    /// Saves progress and renews the claim.
    async fn keep(&self) -> Result<(), Stop> {
        let until = now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let saved = serde_json::to_string(&self.progress).expect("JSON");
        if !self
            .state
            .store
            .keep_erasure_job(&self.job.id, self.holder, &saved, until)
            .await?
        {
            return Err(Stop::Trouble("the job's lease was lost".into()));
        }
        Ok(())
    }

    fn scoped(&self) -> Scoped<'_> {
        self.state.store.scoped(&self.job.tenant_id)
    }

    /// Every row and object of one final bot; the bot row last.
    async fn delete_bot(&mut self, b: &bot::Model) -> Result<(), Stop> {
        let state = self.state;
        self.progress
            .transcription
            .extend(transcription_entry(state, b).await);
        let scoped = state.store.scoped(&b.tenant_id);
        let cutoff = now() + chrono::Duration::days(1);
        let ids = [b.id.clone()];
        use attache_tenant_policy::DataClass::*;
        for class in [Transcripts, Chat, Participants] {
            loop {
                let n = scoped.delete_bot_rows(class, &ids, cutoff, BATCH).await?;
                if n == 0 {
                    break;
                }
                self.progress.add(class.as_str(), n);
            }
        }
        let deliveries = scoped.erase_deliveries(&ids).await?;
        self.progress.add(WebhookDeliveries.as_str(), deliveries);
        // Objects have no statement: listed, hashed, deleted.
        let objects = state
            .objects
            .named(b.object_store.as_deref())
            .map_err(|e| Stop::Trouble(e.to_string()))?;
        let prefix = bot_prefix(&b.tenant_id, &b.id);
        let keys = objects
            .list(&prefix)
            .await
            .map_err(|e| Stop::Trouble(format!("listing {prefix}: {e}")))?;
        objects
            .delete_prefix(&prefix)
            .await
            .map_err(|e| Stop::Trouble(format!("deleting {prefix}: {e}")))?;
        self.progress
            .objects
            .extend(keys.iter().map(|k| certificate::object_hash(k)));
        let recordings = scoped.erase_recordings(&b.id).await?;
        self.progress.add(Recordings.as_str(), recordings);
        let rows = scoped.delete_bots(&ids, cutoff).await?;
        if rows == 0 && scoped.bot(&b.id).await?.is_some() {
            return Err(Stop::Trouble(format!(
                "bot {} changed while it was erased",
                b.id
            )));
        }
        self.progress.add(BotMetadata.as_str(), rows);
        state.keys.forget_bot(&b.id);
        self.progress
            .keys_destroyed
            .push(format!("bot-data-key:{}", b.id));
        self.progress.bots_done.push(b.id.clone());
        self.keep().await
    }

    /// The bot, final; or a wait while it leaves.
    async fn final_bot(&self, b: bot::Model) -> Result<bot::Model, Stop> {
        if b.status.is_final() {
            return Ok(b);
        }
        let b = self.state.bots.request_leave(b).await?;
        if b.status.is_final() {
            return Ok(b);
        }
        Err(Stop::Wait(format!(
            "{WAITING_FOR_BOT}: bot {} was asked to leave its meeting",
            b.id
        )))
    }

    async fn roll(&mut self) -> Result<(), Stop> {
        let rolled = self.state.keys.roll(&self.job.tenant_id).await?;
        self.progress.keys_destroyed.extend(rolled.destroyed);
        self.progress.add("bot_keys_rewrapped", rolled.moved);
        self.keep().await
    }

    async fn erase_bot(&mut self) -> Result<(), Stop> {
        let bot_id = self.job.subject_id.clone().unwrap_or_default();
        if !self.progress.data_gone {
            if let Some(b) = self.scoped().bot(&bot_id).await? {
                if self.scoped().held(Some(&bot_id)).await? {
                    return Err(Stop::Refused(
                        LEGAL_HOLD,
                        "a legal hold keeps this bot".into(),
                    ));
                }
                let b = self.final_bot(b).await?;
                self.delete_bot(&b).await?;
            }
            self.progress.data_gone = true;
            self.keep().await?;
        }
        self.roll().await
    }

    async fn erase_participant(&mut self) -> Result<(), Stop> {
        if !self.progress.data_gone {
            let sealed = self.job.name_sealed.clone().ok_or_else(|| {
                Stop::Refused("INTERNAL", "the name to erase is no longer stored".into())
            })?;
            let tenant_key = self.state.keys.tenant_key(&self.job.tenant_id).await?;
            let name = tenant_key
                .open(&name_context(&self.job.id), &sealed)
                .ok()
                .and_then(|p| String::from_utf8(p).ok())
                .ok_or_else(|| {
                    Stop::Refused("INTERNAL", "the name to erase does not open".into())
                })?;
            let wanted = certificate::normalize(&name);
            let mut after: Option<String> = None;
            loop {
                let page = self.scoped().bot_page(after.as_deref(), PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for b in page {
                    if self.scoped().held(Some(&b.id)).await? {
                        self.progress.held_bots += 1;
                        continue;
                    }
                    self.erase_person_in(&b, &wanted).await?;
                }
            }
            self.progress.data_gone = true;
            self.keep().await?;
        }
        self.roll().await
    }

    /// One person's rows in one bot.
    async fn erase_person_in(&mut self, b: &bot::Model, wanted: &str) -> Result<(), Stop> {
        use crate::sealing::{open_chat, open_participant, open_speaker, open_transcript};
        let Some(key) = self.state.keys.existing_bot_key(b).await? else {
            return Ok(());
        };
        let key = Some(&key);
        let people = self.scoped().people_of(&b.id).await?;
        let is = |name: &str| certificate::normalize(name) == wanted;
        let mut ids = PeopleIds::default();
        for p in &people.stays {
            if open_participant(key, p).is_ok_and(|(_, n)| is(&n)) {
                ids.stays.push(p.id);
            }
        }
        for s in &people.turns {
            if open_speaker(key, s).is_ok_and(|(_, n)| is(&n)) {
                ids.turns.push(s.id);
            }
        }
        for t in &people.segments {
            if open_transcript(key, t).is_ok_and(|(s, _)| s.as_deref().is_some_and(is)) {
                ids.segments.push(t.id);
            }
        }
        for m in &people.chat {
            if open_chat(key, m).is_ok_and(|(s, _)| is(&s)) {
                ids.chat.push(m.id);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.scoped().delete_people(&ids).await?;
        use attache_tenant_policy::DataClass::*;
        self.progress.add(
            Participants.as_str(),
            (ids.stays.len() + ids.turns.len()) as u64,
        );
        self.progress
            .add(Transcripts.as_str(), ids.segments.len() as u64);
        self.progress.add(Chat.as_str(), ids.chat.len() as u64);
        let deliveries = self
            .scoped()
            .erase_deliveries(std::slice::from_ref(&b.id))
            .await?;
        self.progress.add(WebhookDeliveries.as_str(), deliveries);
        self.keep().await
    }

    async fn erase_tenant(&mut self) -> Result<(), Stop> {
        let tenant_id = self.job.tenant_id.clone();
        if !self.progress.data_gone {
            if self.scoped().tenant().await?.is_some() && self.scoped().held(None).await? {
                return Err(Stop::Refused(
                    LEGAL_HOLD,
                    "a legal hold keeps this tenant's data".into(),
                ));
            }
            // Every bot out of its meeting first.
            let mut after: Option<String> = None;
            let mut waiting = 0;
            loop {
                let page = self.scoped().bot_page(after.as_deref(), PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for b in page {
                    if !b.status.is_final()
                        && !self.state.bots.request_leave(b).await?.status.is_final()
                    {
                        waiting += 1;
                    }
                }
            }
            if waiting > 0 {
                return Err(Stop::Wait(format!(
                    "{WAITING_FOR_BOT}: {waiting} bots were asked to leave their meetings"
                )));
            }
            loop {
                let page = self.scoped().bot_page(None, PAGE).await?;
                if page.is_empty() {
                    break;
                }
                for b in page {
                    self.delete_bot(&b).await?;
                }
            }
            self.progress.data_gone = true;
            self.keep().await?;
        }
        // The keys before the tenant row: deleting it deletes its key row
        // (a foreign key), and with it the record of the secret to destroy.
        let destroyed = self.state.keys.destroy_tenant(&tenant_id).await?;
        self.progress.keys_destroyed.extend(destroyed);
        self.keep().await?;
        let rows = self.scoped().delete_tenant_rows().await?;
        // Its keys went with it.
        self.state.policies.credentials().changed().await;
        self.progress.add("tenant_settings", rows);
        self.keep().await
    }

    /// The signed certificate of a finished job.
    async fn certificate(&self, completed: DateTime<Utc>) -> Result<String, Stop> {
        let subject = match self.job.subject.as_str() {
            PARTICIPANT => json!({
                "kind": "participant",
                "salt": self.job.name_salt,
                "sha256": self.job.name_hash,
            }),
            BOT => json!({ "kind": "bot", "id": self.job.subject_id }),
            _ => json!({ "kind": "tenant", "id": self.job.subject_id }),
        };
        let mut removed = serde_json::Map::new();
        for class in attache_tenant_policy::DataClass::ALL {
            let n = self
                .progress
                .removed
                .get(class.as_str())
                .copied()
                .unwrap_or(0);
            removed.insert(class.as_str().to_string(), n.into());
        }
        for (k, n) in &self.progress.removed {
            removed.entry(k.clone()).or_insert((*n).into());
        }
        let mut objects = self.progress.objects.clone();
        objects.sort();
        objects.dedup();
        let mut payload = json!({
            "version": 1,
            "job": self.job.id,
            "tenant": self.job.tenant_id,
            "subject": subject,
            "removed": removed,
            "objects": { "deleted": objects.len(), "sha256": objects },
            "keys_destroyed": self.progress.keys_destroyed,
            "transcription": self.progress.transcription,
            "requested_by": self.job.requested_by,
            "requested_at": rfc3339(self.job.requested_at),
            "completed_at": rfc3339(completed),
        });
        if self.progress.held_bots > 0 {
            payload["kept_under_legal_hold"] = json!({ "bots": self.progress.held_bots });
        }
        if self.job.subject == PARTICIPANT {
            payload["not_cut"] = json!(["the mixed audio of recordings they were heard in"]);
        }
        Ok(signer(self.state).await?.sign(&payload))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What a participant's name is sealed with while their erasure runs.
pub(crate) fn name_context(job_id: &str) -> Vec<u8> {
    format!("attache/erasure-name/{job_id}").into_bytes()
}

/// What the certificate says of where a bot's audio was transcribed, and
/// whether that provider was asked to delete it.
async fn transcription_entry(state: &AppState, b: &bot::Model) -> Option<Value> {
    let spec = match crate::transcription::spec_for(state, b).await {
        Ok(s) => s?,
        Err(e) => {
            return Some(
                json!({ "provider": "unknown", "deletion": format!("the bot's provider could not be read: {e}") }),
            );
        }
    };
    Some(match spec.provider {
        TranscriptionProvider::Local { .. } => json!({
            "provider": "local",
            "deletion": "not needed: transcribed on the edge worker, no audio left the deployment",
        }),
        TranscriptionProvider::OpenAiCompatible { endpoint, .. } => json!({
            "provider": "openai-compatible",
            "host": url::Url::parse(&endpoint).ok().and_then(|u| u.host_str().map(str::to_string)),
            "deletion": "no deletion API: the OpenAI-compatible transcription API offers none, so the provider was not asked",
        }),
        TranscriptionProvider::Deepgram { .. } => json!({
            "provider": "deepgram",
            "deletion": "no deletion API for streamed audio: the provider was not asked",
        }),
    })
}

/// Claims and runs one job; false if there was none.
async fn run_one(state: &AppState, holder: &str) -> Result<bool, StoreError> {
    let at = now();
    let until = at + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let Some(job) = state.store.claim_erasure_job(holder, at, until).await? else {
        return Ok(false);
    };
    let progress = job
        .progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    let mut run = Run {
        state,
        job,
        holder,
        progress,
    };
    let started = std::time::Instant::now();
    let result = match run.job.subject.as_str() {
        BOT => run.erase_bot().await,
        PARTICIPANT => run.erase_participant().await,
        TENANT => run.erase_tenant().await,
        other => Err(Stop::Refused(
            "INTERNAL",
            format!("unknown subject {other}"),
        )),
    };
    let id = run.job.id.clone();
    let tenant_id = run.job.tenant_id.clone();
    let (status, reason, certificate) = match result {
        Ok(()) => {
            let completed = now();
            match run.certificate(completed).await {
                Ok(c) => (DONE, None, Some(c)),
                Err(Stop::Trouble(e)) | Err(Stop::Wait(e)) => {
                    tracing::warn!(job = %id, error = %e, "cannot sign an erasure certificate; trying again");
                    state
                        .store
                        .defer_erasure_job(
                            &id,
                            holder,
                            &format!("RETRYING: {e}"),
                            now() + chrono::Duration::from_std(RETRY).unwrap_or_default(),
                        )
                        .await?;
                    return Ok(true);
                }
                Err(Stop::Refused(code, e)) => (FAILED, Some(format!("{code}: {e}")), None),
            }
        }
        Err(Stop::Refused(code, e)) => (FAILED, Some(format!("{code}: {e}")), None),
        Err(Stop::Wait(reason)) => {
            state
                .store
                .defer_erasure_job(
                    &id,
                    holder,
                    &reason,
                    now() + chrono::Duration::from_std(WAIT).unwrap_or_default(),
                )
                .await?;
            return Ok(true);
        }
        Err(Stop::Trouble(e)) => {
            tracing::warn!(job = %id, error = %e, "an erasure step failed; trying again");
            state
                .store
                .defer_erasure_job(
                    &id,
                    holder,
                    &format!("RETRYING: {e}"),
                    now() + chrono::Duration::from_std(RETRY).unwrap_or_default(),
                )
                .await?;
            return Ok(true);
        }
    };
    state
        .store
        .finish_erasure_job(&id, holder, status, reason.clone(), certificate, now())
        .await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(job = %id, %tenant_id, subject = %run.job.subject, status, elapsed_ms, "erasure finished");
    state
        .metrics
        .erasures
        .with_label_values(&[run.job.subject.as_str(), status])
        .inc();
    state
        .audit
        .record(Record {
            tenant_id: (run.job.subject != TENANT).then(|| tenant_id.clone()),
            actor: "system:erasure".into(),
            action: "erasureFinished".into(),
            target: Some(format!("erasure:{id} {}", status.to_lowercase())),
            outcome: if status == DONE {
                "ok".into()
            } else {
                reason.unwrap_or_default()
            },
        })
        .await;
    Ok(true)
}

/// The replicas' loop: runs queued jobs one at a time until `shutdown`. A
/// job cut short by it is taken up again, by any replica, when its lease
/// runs out; every step is safe to repeat.
pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let holder = format!("erasure/{}", uuid::Uuid::new_v4().simple());
    loop {
        let busy = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = run_one(&state, &holder) => match r {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %e, "erasure jobs cannot be read");
                    false
                }
            },
        };
        if !busy {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.erasure_wakeup.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
