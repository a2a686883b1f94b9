//! Dispatch: queued bots whose time has come go to a connected worker of
//! their region (or their tenant's dedicated pool) with room for them.
//! The queue is read per region and pool ([`plan`]), so one group's
//! backlog never holds up another's bots. Taking the lease is a
//! compare-and-swap in the database (through the lifecycle service), so
//! two replicas never lease one bot; [`assignment`] builds what the worker
//! is sent.
//!
//! A due bot that finds no room says why it waits (`queue_reason`, which
//! the API shows as its `statusReason`) and fails with `NO_CAPACITY` once
//! it has waited the queue timeout. Dispatch never places a bot outside
//! its group, whatever the backlog.

mod assignment;
mod plan;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use attache_protocol::{BotStatus, ControlMsg, StatusReason};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::entity::names::QueueReason;
use crate::links::Candidate;
use crate::store::{Applied, StoreError, Transition, now};
pub(crate) use assignment::assignment;
use plan::{Group, choose_worker};

/// Bots leased per group and pass; the rest wait for the next pass.
const BATCH: u64 = 64;

pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let started = Instant::now();
    loop {
        let wait = match dispatch_once(&state, started).await {
            Ok(()) => next_wait(&state).await,
            Err(e) => {
                tracing::warn!(error = %e, "dispatch pass failed; retrying");
                state.config.dispatch_interval
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.dispatch_wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Sleep until the next scheduled join, but never longer than the interval
/// (which also paces queue timeouts). Bots already due that found no room
/// wait for a wake-up: a worker connecting, a bot ending.
async fn next_wait(state: &AppState) -> Duration {
    let interval = state.config.dispatch_interval;
    let at = now();
    match state.store.next_join_after(at).await {
        Ok(Some(next)) => (next - at)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(5), interval),
        _ => interval,
    }
}

async fn dispatch_once(state: &AppState, started: Instant) -> Result<(), StoreError> {
    let at = now();
    let queue = state.store.queue_groups(at).await?;
    if queue.is_empty() {
        return Ok(());
    }
    let candidates = state.links.candidates();
    let mut active: HashMap<String, u32> = HashMap::new();
    if !candidates.is_empty() {
        for b in state.store.leased_bots(None).await? {
            if let Some(w) = b.worker_id {
                *active.entry(w).or_default() += 1;
            }
        }
    }
    let live: HashSet<Group> = state
        .store
        .live_worker_groups(state.config.worker_grace)
        .await?
        .into_iter()
        .map(|(region, pool)| Group { region, pool })
        .collect();
    for step in plan::plan(&queue, &candidates, &active, &live, BATCH) {
        if step.take > 0 {
            lease(state, &step.group, step.take, at, &candidates, &mut active).await?;
        }
        if let Some(reason) = step.waiting {
            wait(state, &step.group, reason, at, started).await?;
        }
    }
    Ok(())
}

/// Leases up to `take` of a group's oldest due bots to its workers.
async fn lease(
    state: &AppState,
    group: &Group,
    take: u64,
    at: DateTime<Utc>,
    candidates: &[Candidate],
    active: &mut HashMap<String, u32>,
) -> Result<(), StoreError> {
    let due = state
        .store
        .due_bots(&group.region, group.pool.as_deref(), at, take)
        .await?;
    for bot in due {
        if bot.leave_requested {
            // Asked to leave while it was being taken back from a worker.
            let mut t = Transition::new(
                &bot.id,
                BotStatus::Ended,
                Some(StatusReason::LeaveRequested),
            );
            t.expect_status = Some(BotStatus::Queued);
            t.expect_generation = Some(bot.lease_generation);
            if let Err(e) = state.bots.apply(t).await {
                tracing::debug!(bot_id = %bot.id, error = %e, "leave of a requeued bot not applied; next pass");
            }
            continue;
        }
        let Some(worker) = choose_worker(candidates, active, group) else {
            break;
        };
        let mut t = Transition::new(&bot.id, BotStatus::Dispatched, None);
        t.expect_status = Some(BotStatus::Queued);
        t.expect_generation = Some(bot.lease_generation);
        t.lease_to = Some(worker.id.clone());
        match state.bots.apply(t).await {
            Ok(Applied::Moved(leased, ev)) => {
                let due_since = leased
                    .join_at
                    .max(leased.queued_at.unwrap_or(leased.created_at));
                let waited = (ev.at - due_since).num_milliseconds().max(0) as f64 / 1000.0;
                state.metrics.dispatch_latency.observe(waited);
                *active.entry(worker.id.clone()).or_default() += 1;
                tracing::info!(bot_id = %leased.id, tenant_id = %leased.tenant_id, worker_id = %worker.id,
                    region = %group.region, pool = group.pool.as_deref().unwrap_or("shared"),
                    generation = leased.lease_generation, "bot dispatched");
                if let Some(a) = assignment(state, &leased).await {
                    // If the link dropped meanwhile, the worker's next hello
                    // (or the grace period) settles this lease.
                    state
                        .links
                        .send(&worker.id, ControlMsg::Assign(Box::new(a)));
                }
            }
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::Stale { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The group's due bots that found no room say why, and those that waited
/// past the queue timeout fail with `NO_CAPACITY`. Not before workers had
/// a grace period to reconnect to a control plane that just started: an
/// outage of the control plane is not a lack of workers.
async fn wait(
    state: &AppState,
    group: &Group,
    reason: QueueReason,
    at: DateTime<Utc>,
    started: Instant,
) -> Result<(), StoreError> {
    let pool = group.pool.as_deref();
    let noted = state
        .store
        .note_queue_reason(&group.region, pool, at, reason)
        .await?;
    if noted > 0 {
        tracing::info!(region = %group.region, pool = pool.unwrap_or("shared"), reason = reason.as_str(),
            bots = noted, "due bots wait in the queue");
    }
    if started.elapsed() < state.config.worker_grace {
        return Ok(());
    }
    let timeout = state.config.queue_timeout;
    let cutoff = at - chrono::Duration::from_std(timeout).unwrap_or_default();
    let expired = state
        .store
        .queued_since(&group.region, pool, cutoff, BATCH)
        .await?;
    for bot in expired {
        let (to, why) = if bot.leave_requested {
            (BotStatus::Ended, StatusReason::LeaveRequested)
        } else {
            (BotStatus::Failed, StatusReason::NoCapacity)
        };
        let mut t = Transition::new(&bot.id, to, Some(why));
        t.expect_status = Some(BotStatus::Queued);
        t.expect_generation = Some(bot.lease_generation);
        t.detail = Some(match pool {
            Some(p) => format!(
                "no worker of pool {p} had room for it within {} s ({})",
                timeout.as_secs(),
                reason.as_str()
            ),
            None => format!(
                "no worker of region {} had room for it within {} s ({})",
                group.region,
                timeout.as_secs(),
                reason.as_str()
            ),
        });
        match state.bots.apply(t).await {
            Ok(Applied::Moved(b, _)) => {
                tracing::warn!(bot_id = %b.id, tenant_id = %b.tenant_id, region = %group.region,
                    reason = reason.as_str(), "bot waited past the queue timeout");
            }
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::Stale { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
