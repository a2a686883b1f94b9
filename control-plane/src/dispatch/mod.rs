//! Dispatch: queued bots whose time has come go to a connected worker of
//! their region (or their tenant's dedicated pool) with room for them.
//! The queue is read per region and pool ([`plan`]), so one group's
//! backlog never holds up another's bots. With Redis, the bots come from
//! the group's dispatch stream (each offered to one replica; see
//! [`crate::bus::dispatch_queue`]); without it, or with Redis unreachable,
//! from the database. Either way, taking the lease is a compare-and-swap
//! in the database (through the lifecycle service), so two replicas never
//! lease one bot; [`assignment`] builds what the worker is sent.
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
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::bus::DispatchQueue;
use crate::entity::bot;
use crate::entity::names::QueueReason;
use crate::links::Candidate;
use crate::store::{Applied, StoreError, Transition, now};
pub(crate) use assignment::assignment;
use plan::{Group, choose_worker};

/// Bots leased per group and pass; the rest wait for the next pass.
const BATCH: u64 = 64;
/// How long a bot may be due without an entry in its dispatch stream
/// before it counts as missing from it rather than on its way.
const IN_FLIGHT: Duration = Duration::from_secs(2);
/// How often every group's due bots are checked against its stream, also
/// while the stream has entries.
const SWEEP: Duration = Duration::from_secs(10);
/// The oldest due bots a sweep checks per group.
const SWEEP_TAKE: u64 = 1_000;
/// How soon a dispatcher looks again at a stream whose due bots it has
/// room for but cannot read yet.
const SOON: Duration = Duration::from_millis(500);

pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    let started = Instant::now();
    let mut swept = Instant::now();
    loop {
        if let Some(q) = state.bus.dispatch_queue()
            && swept.elapsed() >= SWEEP
        {
            swept = Instant::now();
            if let Err(e) = sweep(&state, q).await {
                tracing::warn!(error = %e, "dispatch stream sweep failed; retrying");
            }
        }
        let wait = match dispatch_once(&state, started).await {
            Ok(false) => next_wait(&state).await,
            Ok(true) => next_wait(&state).await.min(SOON),
            Err(e) => {
                tracing::warn!(error = %e, "dispatch pass failed; retrying");
                state.config.dispatch_interval
            }
        };
        // The sweep's time comes round even with nothing to wake the pass.
        let wait = match state.bus.dispatch_queue() {
            Some(_) => wait.min(SWEEP.saturating_sub(swept.elapsed())),
            None => wait,
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

/// One pass; true if it should be repeated soon (see [`FromStream::Soon`]).
async fn dispatch_once(state: &AppState, started: Instant) -> Result<bool, StoreError> {
    let at = now();
    let queue = state.store.queue_groups(at).await?;
    if queue.is_empty() {
        return Ok(false);
    }
    let candidates = state.links.candidates();
    let mut active: HashMap<String, u32> = HashMap::new();
    if !candidates.is_empty() {
        for (w, n) in state.store.leases_per_worker().await? {
            active.insert(w, u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    let live: HashSet<Group> = state
        .store
        .live_worker_groups(state.config.worker_grace)
        .await?
        .into_iter()
        .map(|(region, pool)| Group { region, pool })
        .collect();
    let stream = state.bus.dispatch_queue();
    let mut soon = false;
    for step in plan::plan(&queue, &candidates, &active, &live, BATCH) {
        if step.take > 0 {
            let from_stream = match stream {
                Some(q) => {
                    lease_from_stream(
                        state,
                        q,
                        &step.group,
                        step.take,
                        at,
                        &candidates,
                        &mut active,
                    )
                    .await?
                }
                None => FromStream::Unreachable,
            };
            soon |= from_stream == FromStream::Soon;
            if from_stream == FromStream::Unreachable {
                lease(state, &step.group, step.take, at, &candidates, &mut active).await?;
            }
        }
        if let Some(reason) = step.waiting {
            wait(state, &step.group, reason, at, started).await?;
        }
    }
    Ok(soon)
}

/// Leases up to `take` of a group's oldest due bots to its workers, read
/// from the database (no Redis, or Redis unreachable).
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
    place(state, due, group, candidates, active).await?;
    Ok(())
}

/// What a pass over a group's dispatch stream came to.
#[derive(Debug, PartialEq, Eq)]
enum FromStream {
    /// Redis could not be used: read the database instead.
    Unreachable,
    Done,
    /// Due bots and room here, but their entries are on their way or held
    /// by another replica until they can be claimed: look again soon.
    Soon,
}

/// Leases up to `take` bots of a group from its dispatch stream.
async fn lease_from_stream(
    state: &AppState,
    queue: &DispatchQueue,
    group: &Group,
    take: u64,
    at: DateTime<Utc>,
    candidates: &[Candidate],
    active: &mut HashMap<String, u32>,
) -> Result<FromStream, StoreError> {
    let (region, pool) = (group.region.as_str(), group.pool.as_deref());
    let count = |outcome: &str, n: usize| {
        state
            .metrics
            .dispatch_entries
            .with_label_values(&[outcome])
            .inc_by(n as u64)
    };
    let taken = match queue.take(region, pool, take as usize).await {
        Ok(t) => t,
        Err(e) => return Ok(redis_failed(state, e)),
    };
    if taken.entries.is_empty() {
        // Due bots, room for them here, and nothing in the stream: their
        // entries were lost (Redis restarted, a publish was dropped) or
        // are still on their way (queued just now: the bus wakes this
        // dispatcher again once they are in). The lost ones are added again.
        return Ok(
            match add_missing(state, queue, region, pool, at, take).await? {
                Missing::Unreachable => FromStream::Unreachable,
                Missing::NoneDue | Missing::Added => FromStream::Done,
                Missing::OnTheirWay => FromStream::Soon,
            },
        );
    }
    count("claimed", taken.claimed);
    count("read", taken.entries.len() - taken.claimed);
    let ids: Vec<String> = taken.entries.iter().map(|e| e.bot_id.clone()).collect();
    // Due by now, not by the pass's start: a bot queued since then may
    // have its entry read already, and an entry settled unleased leaves
    // its bot waiting until it is found missing from the stream.
    let due_by = now();
    let mut ours: HashMap<String, bot::Model> = state
        .store
        .bots(&ids)
        .await?
        .into_iter()
        .filter(|b| {
            b.status == BotStatus::Queued
                && b.join_at <= due_by
                && b.region == region
                && b.pool.as_deref() == pool
        })
        .map(|b| (b.id.clone(), b))
        .collect();
    let (mut settled, mut waiting, mut bots) = (Vec::new(), Vec::new(), Vec::new());
    for e in taken.entries {
        match ours.remove(&e.bot_id) {
            Some(bot) => {
                bots.push(bot);
                waiting.push(e);
            }
            // Leased elsewhere, ended, not ours, or a second entry of a
            // bot: nothing to do but settle it.
            None => settled.push(e),
        }
    }
    let placed = place(state, bots, group, candidates, active).await?;
    let back = waiting.split_off(placed);
    settled.extend(waiting);
    count("settled", settled.len());
    count("put_back", back.len());
    if back.is_empty() {
        // Stale entries took the places of due bots: look again at once.
        state.dispatch_wakeup.notify_one();
    }
    // Unacknowledged entries are claimed again after the claim idle time.
    let acked = queue.done(region, pool, &settled).await;
    let returned = queue.put_back(region, pool, &back).await;
    if let Err(e) = acked.and(returned) {
        tracing::debug!(error = %e, "dispatch entries not settled; claimed again later");
    }
    Ok(FromStream::Done)
}

/// What checking a group's due bots against its stream found.
enum Missing {
    Unreachable,
    NoneDue,
    /// Bots due long enough to have an entry had none: added again.
    Added,
    /// Every due bot has its entry, or was queued too recently to tell.
    OnTheirWay,
}

/// Adds again the entries of a group's oldest `take` due bots that have
/// been due for longer than [`IN_FLIGHT`] and are missing from its stream.
async fn add_missing(
    state: &AppState,
    queue: &DispatchQueue,
    region: &str,
    pool: Option<&str>,
    at: DateTime<Utc>,
    take: u64,
) -> Result<Missing, StoreError> {
    let settled = at - chrono::Duration::from_std(IN_FLIGHT).unwrap_or_default();
    let due = state.store.due_bots(region, pool, at, take).await?;
    if due.is_empty() {
        return Ok(Missing::NoneDue);
    }
    let ids: Vec<String> = due
        .into_iter()
        .filter(|b| b.join_at.max(b.queued_at.unwrap_or(b.created_at)) <= settled)
        .map(|b| b.id)
        .collect();
    let unreachable = |e| {
        redis_failed(state, e);
        Ok(Missing::Unreachable)
    };
    let missing = match queue.missing(&ids).await {
        Ok(m) => m,
        Err(e) => return unreachable(e),
    };
    if missing.is_empty() {
        return Ok(Missing::OnTheirWay);
    }
    if let Err(e) = queue.add(region, pool, &missing).await {
        return unreachable(e);
    }
    state
        .metrics
        .dispatch_entries
        .with_label_values(&["readded"])
        .inc_by(missing.len() as u64);
    tracing::info!(
        region,
        pool = pool.unwrap_or("shared"),
        bots = missing.len(),
        "due bots missing from the dispatch stream added again"
    );
    state.dispatch_wakeup.notify_one();
    Ok(Missing::Added)
}

/// Checks every group's oldest due bots against its stream, entries or
/// not: an entry lost behind a long queue would otherwise wait for the
/// stream to empty. A lost entry's bot ages into the oldest checked.
async fn sweep(state: &AppState, queue: &DispatchQueue) -> Result<(), StoreError> {
    let at = now();
    for g in state.store.queue_groups(at).await? {
        let found = add_missing(state, queue, &g.region, g.pool.as_deref(), at, SWEEP_TAKE);
        if let Missing::Unreachable = found.await? {
            return Ok(());
        }
    }
    Ok(())
}

fn redis_failed(state: &AppState, e: redis::RedisError) -> FromStream {
    tracing::debug!(error = %e, "dispatch stream unreachable; reading the database");
    state
        .metrics
        .redis_fallbacks
        .with_label_values(&["dispatch"])
        .inc();
    FromStream::Unreachable
}

/// Leases taken at once in a pass. Each is a few round trips to the
/// database and one to the worker's link; taken one after the other, a
/// pass leased about 150 bots a second however many cores the database had.
const PLACING: usize = 8;

/// Places `bots`, in order, while the group has room: the first that finds
/// none and all after it wait for the next pass. Returns how many were
/// settled (leased, ended by a leave request, or taken by someone else).
/// Workers are chosen in order, so the leases spread as one at a time
/// would; the leases themselves are taken side by side.
async fn place(
    state: &AppState,
    bots: Vec<bot::Model>,
    group: &Group,
    candidates: &[Candidate],
    active: &mut HashMap<String, u32>,
) -> Result<usize, StoreError> {
    let mut jobs = Vec::with_capacity(bots.len());
    for bot in bots {
        if bot.leave_requested {
            jobs.push((bot, None));
            continue;
        }
        let Some(worker) = choose_worker(candidates, active, group) else {
            break;
        };
        *active.entry(worker.id.clone()).or_default() += 1;
        jobs.push((bot, Some(worker)));
    }
    let settled = jobs.len();
    let placing: Vec<_> = jobs
        .into_iter()
        .map(|(bot, worker)| place_one(state, bot, worker, group))
        .collect();
    let outcomes: Vec<_> = futures::stream::iter(placing)
        .buffer_unordered(PLACING)
        .collect()
        .await;
    let mut failed = None;
    for (worker, outcome) in outcomes {
        let leased = match outcome {
            Ok(leased) => leased,
            Err(e) => {
                failed.get_or_insert(e);
                false
            }
        };
        // A lease not taken leaves its worker's room as it was.
        if let (Some(w), false) = (worker, leased)
            && let Some(n) = active.get_mut(&w.id)
        {
            *n = n.saturating_sub(1);
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(settled),
    }
}

/// One bot of [`place`]: ended if it was asked to leave, else leased to
/// `worker`; with the worker, and whether it was leased or ended.
async fn place_one<'a>(
    state: &AppState,
    bot: bot::Model,
    worker: Option<&'a Candidate>,
    group: &Group,
) -> (Option<&'a Candidate>, Result<bool, StoreError>) {
    let outcome = match worker {
        None => {
            end_requeued(state, &bot).await;
            Ok(true)
        }
        Some(w) => lease_to(state, bot, w, group).await,
    };
    (worker, outcome)
}

/// A requeued bot asked to leave while it was being taken back from a
/// worker ends here.
async fn end_requeued(state: &AppState, bot: &bot::Model) {
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
}

/// Leases one queued bot to `worker` by compare-and-swap and sends the
/// worker its assignment. False if the bot was not leased (it moved
/// meanwhile: leased elsewhere, or ended).
async fn lease_to(
    state: &AppState,
    bot: bot::Model,
    worker: &Candidate,
    group: &Group,
) -> Result<bool, StoreError> {
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
            Ok(true)
        }
        Ok(_) | Err(StoreError::Conflict) | Err(StoreError::Stale { .. }) => Ok(false),
        Err(e) => Err(e),
    }
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
