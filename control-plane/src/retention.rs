//! The retention sweep: deletes, tenant by tenant, what each tenant's
//! retention says has expired (rows and objects), unless a legal hold
//! keeps it.
//!
//! - What has expired is decided by `attache_tenant_policy::Plan`: the
//!   store is asked for candidates, the plan keeps only the expired ones,
//!   and every delete repeats the store's conditions (final bot, cutoff,
//!   no hold) in its own statement (`store/sweep.rs`).
//! - One replica at a time: a sweep runs under a lease row in the database,
//!   taken by compare-and-swap and renewed between batches; a replica that
//!   cannot renew it stops.
//! - Bounded: at most `retention_batch` rows per statement and
//!   `retention_budget` rows per sweep; what is left waits for the next,
//!   and the next starts with the tenant this one could not finish.
//! - A bot's data goes before the bot; a bot goes only once its recording
//!   is deleted and nothing of it is held, never while it is not final.
//! - Each tenant's deletions are written to the audit log, which the sweep
//!   itself never touches.
//!
//! It must never delete anything the plan did not call expired, and never
//! a bot the lifecycle may still move.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use attache_protocol::BotStatus;
use attache_tenant_policy::{DataClass, Item, Plan, Verdict, retention_plan};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::audit::{AuditLog, Record};
use crate::metrics::Metrics;
use crate::recordings::bot_prefix;
use crate::residency::ObjectStores;
use crate::store::{Candidate, Scoped, Store, StoreError, now};

/// The lease's name in `job_leases`.
const LEASE: &str = "retention-sweep";
/// How long a lease lasts unless renewed; renewed after a third of it.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(60);
/// Object-store folders deleted at once.
const OBJECT_CONCURRENCY: usize = 8;
/// Candidate bots per page: small pages keep each delete statement cheap
/// (its subquery names every bot of the page) and a page's object-store
/// work well within a third of the lease.
const BOT_PAGE: u64 = 100;
/// Deliveries nothing will send again.
const SETTLED_DELIVERIES: [&str; 2] = ["DELIVERED", "FAILED"];

/// What one sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// The moment the sweep acted as of.
    pub as_of: DateTime<Utc>,
    /// Tenants looked at.
    pub tenants: u64,
    /// Rows deleted, per class (every class is present).
    pub deleted: BTreeMap<DataClass, u64>,
    /// Objects deleted (recordings and their chunks).
    pub objects: u64,
    /// How long past its expiry the oldest item is that has expired and
    /// is still there (the budget ran out, a recording is still open, the
    /// object store refused); `None` if nothing expired is left.
    pub oldest_expired: Option<chrono::Duration>,
    /// False if the sweep stopped at its budget or at shutdown.
    pub complete: bool,
}

impl SweepReport {
    fn new(as_of: DateTime<Utc>) -> SweepReport {
        SweepReport {
            as_of,
            tenants: 0,
            deleted: DataClass::ALL.into_iter().map(|c| (c, 0)).collect(),
            objects: 0,
            oldest_expired: None,
            complete: true,
        }
    }

    pub fn total(&self) -> u64 {
        self.deleted.values().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another sweep is running (its lease has not expired)")]
    Busy,
    #[error("the sweep's lease was taken over; another replica sweeps now")]
    LeaseLost,
}

impl From<sea_orm::DbErr> for SweepError {
    fn from(e: sea_orm::DbErr) -> SweepError {
        SweepError::Store(e.into())
    }
}

/// One deployment's sweeper: a replica's loop, or an operator's command.
pub(crate) struct Sweeper {
    pub store: Store,
    /// Every store of the deployment; each bot's objects are in the one
    /// its row names.
    pub objects: ObjectStores,
    pub audit: AuditLog,
    pub metrics: Option<Metrics>,
    /// Rows per statement.
    pub batch: u64,
    /// Rows per sweep.
    pub budget: u64,
    /// Who holds the lease (unique per process).
    pub holder: String,
    /// Who the audit log says deleted.
    pub actor: String,
    pub stop: CancellationToken,
    /// The tenant the last sweep ran out of budget in.
    resume_at: Mutex<Option<String>>,
}

/// The lease, renewed as the sweep goes.
struct Lease<'a> {
    store: &'a Store,
    holder: &'a str,
    renewed: Instant,
}

impl Lease<'_> {
    async fn keep(&mut self) -> Result<(), SweepError> {
        if self.renewed.elapsed() < LEASE_TTL / 3 {
            return Ok(());
        }
        let at = now();
        let until = at + chrono::Duration::from_std(LEASE_TTL).unwrap_or_default();
        if !self
            .store
            .take_job_lease(LEASE, self.holder, at, until)
            .await?
        {
            return Err(SweepError::LeaseLost);
        }
        self.renewed = Instant::now();
        Ok(())
    }
}

/// Where one tenant's sweep stands.
struct Run<'a> {
    scoped: Scoped<'a>,
    tenant_id: &'a str,
    plan: Plan,
    deleted: BTreeMap<DataClass, u64>,
}

impl Sweeper {
    pub(crate) fn new(
        store: Store,
        objects: ObjectStores,
        batch: u64,
        budget: u64,
        actor: &str,
    ) -> Sweeper {
        Sweeper {
            audit: AuditLog::new(store.clone()),
            store,
            objects,
            metrics: None,
            batch: batch.max(1),
            budget: budget.max(1),
            holder: format!("{actor}/{}", uuid::Uuid::new_v4().simple()),
            actor: actor.to_string(),
            stop: CancellationToken::new(),
            resume_at: Mutex::new(None),
        }
    }

    /// One sweep as of `as_of` (now, for the replicas' loop), under the
    /// lease: [`SweepError::Busy`] if another sweep holds it.
    pub(crate) async fn sweep(&self, as_of: DateTime<Utc>) -> Result<SweepReport, SweepError> {
        let at = now();
        let until = at + chrono::Duration::from_std(LEASE_TTL).unwrap_or_default();
        if !self
            .store
            .take_job_lease(LEASE, &self.holder, at, until)
            .await?
        {
            return Err(SweepError::Busy);
        }
        let mut lease = Lease {
            store: &self.store,
            holder: &self.holder,
            renewed: Instant::now(),
        };
        let result = self.sweep_leased(as_of, &mut lease).await;
        if let Err(e) = self
            .store
            .release_job_lease(LEASE, &self.holder, now())
            .await
        {
            tracing::warn!(error = %e, "cannot release the retention lease; it expires on its own");
        }
        result
    }

    async fn sweep_leased(
        &self,
        as_of: DateTime<Utc>,
        lease: &mut Lease<'_>,
    ) -> Result<SweepReport, SweepError> {
        let defaults = self.store.retention_defaults().await?;
        let mut tenants = self.store.tenant_ids().await?;
        // Round robin: start where the last sweep ran out.
        let resume = self.resume_at.lock().ok().and_then(|mut r| r.take());
        if let Some(at) = resume
            && let Some(i) = tenants.iter().position(|t| *t == at)
        {
            tenants.rotate_left(i);
        }
        let mut report = SweepReport::new(as_of);
        let mut left = self.budget;
        for tenant_id in &tenants {
            let scoped = self.store.scoped(tenant_id);
            let plan = retention_plan(
                &scoped.retention().await?,
                &defaults,
                &scoped.active_holds().await?,
                as_of,
            );
            let mut run = Run {
                scoped,
                tenant_id,
                plan,
                deleted: BTreeMap::new(),
            };
            report.tenants += 1;
            for class in DataClass::ALL {
                if left == 0 || self.stop.is_cancelled() {
                    break;
                }
                self.sweep_class(&mut run, class, &mut left, &mut report, lease)
                    .await?;
            }
            if (left == 0 || self.stop.is_cancelled()) && report.complete {
                report.complete = false;
                if let Ok(mut r) = self.resume_at.lock() {
                    *r = Some(tenant_id.clone());
                }
            }
            for class in DataClass::ALL {
                let Some(cutoff) = run.plan.cutoff(class) else {
                    continue;
                };
                if let Some(since) = run.scoped.oldest_expired(class, cutoff).await? {
                    let age = (cutoff - since).max(chrono::Duration::zero());
                    report.oldest_expired = report.oldest_expired.max(Some(age));
                }
            }
            for (class, n) in &run.deleted {
                *report.deleted.entry(*class).or_default() += n;
            }
            self.record(&run, as_of).await;
        }
        Ok(report)
    }

    /// One class of one tenant, until nothing of it has expired or the
    /// budget is spent.
    async fn sweep_class(
        &self,
        run: &mut Run<'_>,
        class: DataClass,
        left: &mut u64,
        report: &mut SweepReport,
        lease: &mut Lease<'_>,
    ) -> Result<(), SweepError> {
        let Some(cutoff) = run.plan.cutoff(class) else {
            return Ok(());
        };
        if class == DataClass::WebhookDeliveries {
            return self.sweep_deliveries(run, cutoff, left, lease).await;
        }
        let page_size = self.batch.min(BOT_PAGE);
        let mut after = None;
        while *left > 0 && !self.stop.is_cancelled() {
            let page = run
                .scoped
                .expired_bots(class, cutoff, after.as_ref(), page_size)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.ended_at.map(|at| (at, last.bot_id.clone()));
            let expired: Vec<Candidate> = page
                .iter()
                .filter(|c| expired(&run.plan, class, c))
                .cloned()
                .collect();
            let bots: Vec<String> = expired.iter().map(|c| c.bot_id.clone()).collect();
            let n = match class {
                DataClass::Recordings => {
                    self.delete_recordings(run, &expired, cutoff, report)
                        .await?
                }
                DataClass::BotMetadata => self.delete_bots(run, &expired, cutoff, report).await?,
                _ => {
                    let mut n = 0;
                    while *left > n && !self.stop.is_cancelled() {
                        let step = (*left - n).min(self.batch);
                        let got = run
                            .scoped
                            .delete_bot_rows(class, &bots, cutoff, step)
                            .await?;
                        self.count(run, class, got);
                        n += got;
                        lease.keep().await?;
                        if got == 0 {
                            break;
                        }
                    }
                    n
                }
            };
            if matches!(class, DataClass::Recordings | DataClass::BotMetadata) {
                self.count(run, class, n);
            }
            *left = left.saturating_sub(n);
            lease.keep().await?;
            if after.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Each bot's objects, then its recording row; a bot whose objects
    /// cannot be deleted keeps its row, to be tried again next time.
    async fn delete_recordings(
        &self,
        run: &Run<'_>,
        bots: &[Candidate],
        cutoff: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<u64, SweepError> {
        let results: Vec<Result<(u64, u64), SweepError>> = futures::stream::iter(bots.to_vec())
            .map(|c: Candidate| async move {
                let bot_id = c.bot_id;
                // Objects have no statement to guard them: look again.
                if !run
                    .scoped
                    .still_deletable(DataClass::Recordings, &bot_id, cutoff)
                    .await?
                {
                    return Ok((0, 0));
                }
                let objects = match self.delete_objects(run.tenant_id, &bot_id, &c.object_store).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(%bot_id, error = %e, "cannot delete a recording's objects; trying again next sweep");
                        return Ok((0, 0));
                    }
                };
                let rows = run.scoped.delete_recording(&bot_id, cutoff).await?;
                Ok((rows, objects))
            })
            .buffer_unordered(OBJECT_CONCURRENCY)
            .collect()
            .await;
        let mut rows = 0;
        for r in results {
            let (n, objects) = r?;
            rows += n;
            report.objects += objects;
            if let Some(m) = &self.metrics {
                m.retention_objects_deleted.inc_by(objects);
            }
        }
        Ok(rows)
    }

    /// Bots whose data is all gone: first any object left under them
    /// (chunks of a lease that never recorded), then their rows.
    async fn delete_bots(
        &self,
        run: &Run<'_>,
        bots: &[Candidate],
        cutoff: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<u64, SweepError> {
        let cleared: Vec<Option<(String, u64)>> = futures::stream::iter(bots.to_vec())
            .map(|c: Candidate| async move {
                let bot_id = c.bot_id;
                match self.delete_objects(run.tenant_id, &bot_id, &c.object_store).await {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(%bot_id, objects = n, "deleted objects no recording named");
                        }
                        Some((bot_id, n))
                    }
                    Err(e) => {
                        tracing::warn!(%bot_id, error = %e, "cannot clear a bot's objects; keeping the bot");
                        None
                    }
                }
            })
            .buffer_unordered(OBJECT_CONCURRENCY)
            .collect()
            .await;
        let mut ids = Vec::new();
        for (bot_id, objects) in cleared.into_iter().flatten() {
            ids.push(bot_id);
            report.objects += objects;
            if let Some(m) = &self.metrics {
                m.retention_objects_deleted.inc_by(objects);
            }
        }
        let cleared = ids;
        if cleared.is_empty() {
            return Ok(0);
        }
        Ok(run.scoped.delete_bots(&cleared, cutoff).await?)
    }

    /// Every object of one bot, in the store its row names.
    async fn delete_objects(
        &self,
        tenant_id: &str,
        bot_id: &str,
        store: &Option<String>,
    ) -> Result<u64, String> {
        let objects = self
            .objects
            .named(store.as_deref())
            .map_err(|e| e.to_string())?;
        objects
            .delete_prefix(&bot_prefix(tenant_id, bot_id))
            .await
            .map_err(|e| e.to_string())
    }

    async fn sweep_deliveries(
        &self,
        run: &mut Run<'_>,
        cutoff: DateTime<Utc>,
        left: &mut u64,
        lease: &mut Lease<'_>,
    ) -> Result<(), SweepError> {
        let class = DataClass::WebhookDeliveries;
        let mut after = 0;
        while *left > 0 && !self.stop.is_cancelled() {
            let page = run
                .scoped
                .expired_deliveries(cutoff, after, self.batch.min(*left))
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            let ids: Vec<i64> = page
                .iter()
                .filter(|d| {
                    let item = Item {
                        bot_id: d.bot_id.as_deref(),
                        since: Some(d.created_at),
                        settled: SETTLED_DELIVERIES.contains(&d.status.as_str()),
                    };
                    matches!(run.plan.verdict(class, item), Verdict::Expired(_))
                })
                .map(|d| d.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let n = run.scoped.delete_deliveries(&ids, cutoff).await?;
            self.count(run, class, n);
            *left = left.saturating_sub(n);
            lease.keep().await?;
        }
        Ok(())
    }

    fn count(&self, run: &mut Run<'_>, class: DataClass, n: u64) {
        if n == 0 {
            return;
        }
        *run.deleted.entry(class).or_default() += n;
        if let Some(m) = &self.metrics {
            m.retention_deleted
                .with_label_values(&[class.as_str()])
                .inc_by(n);
        }
    }

    /// One audit entry per tenant and sweep that deleted anything: how
    /// much of what (never what it was).
    async fn record(&self, run: &Run<'_>, as_of: DateTime<Utc>) {
        let parts: Vec<String> = DataClass::ALL
            .into_iter()
            .filter_map(|c| {
                let n = run.deleted.get(&c).copied().unwrap_or(0);
                (n > 0).then(|| format!("{}={n}", c.as_str()))
            })
            .collect();
        if parts.is_empty() {
            return;
        }
        tracing::info!(tenant_id = %run.tenant_id, deleted = %parts.join(" "), "retention deleted expired data");
        self.audit
            .record(Record {
                tenant_id: Some(run.tenant_id.to_string()),
                actor: self.actor.clone(),
                action: "retentionSweep".into(),
                target: Some(format!(
                    "as_of={} {}",
                    as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    parts.join(" ")
                )),
                outcome: "ok".into(),
            })
            .await;
    }
}

/// The plan's word on one candidate bot.
fn expired(plan: &Plan, class: DataClass, c: &Candidate) -> bool {
    let item = Item {
        bot_id: Some(&c.bot_id),
        since: c.ended_at,
        settled: BotStatus::parse(&c.status).is_some_and(|s| s.is_final()),
    };
    matches!(plan.verdict(class, item), Verdict::Expired(_))
}

/// The replicas' loop: a sweep soon after start, then every
/// `retention_interval`, each under the lease (a replica that finds it
/// taken skips its turn). Runs until `shutdown`; a sweep in progress stops
/// after its current batch.
pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let mut sweeper = Sweeper::new(
        state.store.clone(),
        state.objects.clone(),
        state.config.retention_batch,
        state.config.retention_budget,
        "system:retention",
    );
    sweeper.metrics = Some(state.metrics.clone());
    sweeper.stop = shutdown.clone();
    let every = state.config.retention_interval;
    let mut next = tokio::time::Instant::now() + every.min(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + every;
        let started = Instant::now();
        let outcome = match sweeper.sweep(now()).await {
            Ok(r) => {
                let m = &state.metrics;
                m.retention_oldest_expired
                    .set(r.oldest_expired.map(|d| d.num_seconds()).unwrap_or(0));
                m.retention_sweep_seconds
                    .observe(started.elapsed().as_secs_f64());
                if r.total() > 0 {
                    tracing::info!(
                        deleted = r.total(),
                        objects = r.objects,
                        complete = r.complete,
                        "retention sweep"
                    );
                }
                if r.complete { "complete" } else { "incomplete" }
            }
            Err(SweepError::Busy) => "skipped",
            Err(e) => {
                tracing::warn!(error = %e, "retention sweep failed");
                "failed"
            }
        };
        state
            .metrics
            .retention_sweeps
            .with_label_values(&[outcome])
            .inc();
    }
}

#[cfg(test)]
mod tests;
