//! Repair: what the control plane does so stored leases and what workers
//! run agree again. On a worker's hello, and on its heartbeats when they
//! change, it compares the two (the pure [`reconcile`]); a periodic sweep drives every worker's liveness clock,
//! takes back the leases of lost workers and resends commands the event
//! path may have missed. Every move goes through the lifecycle service.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use attache_protocol::{BotReport, BotStatus, ControlMsg, ErrorCode, StatusReason};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::reconcile::{HeldLease, Repair, reconcile};
use crate::AppState;
use crate::dispatch::assignment;
use crate::entity::names::WorkerState;
use crate::store::{Applied, StoreError, Transition};

/// Compares the worker's hello with the stored leases and repairs the gap.
pub(super) async fn on_hello(state: &AppState, worker_id: &str, reported: &[BotReport]) {
    let Some(held) = held_leases(state, worker_id).await else {
        return;
    };
    for r in reconcile(&held, reported) {
        match r {
            Repair::Revoke { .. } | Repair::Cancel { .. } => tell(state, worker_id, r),
            Repair::Reassign { bot_id } => {
                if let Ok(Some(b)) = state.store.bot(&bot_id.to_string()).await
                    && let Some(a) = assignment(state, &b).await
                {
                    state.links.send(worker_id, ControlMsg::Assign(Box::new(a)));
                }
            }
            Repair::Expire { bot_id, generation } => {
                let id = bot_id.to_string();
                if let Err(e) =
                    expire_leases(state, worker_id, Some((&id, generation as i64)), None).await
                {
                    tracing::warn!(error = %e, "cannot expire a lease; the sweep will retry");
                }
            }
        }
    }
}

/// What a link remembers between heartbeats to reconcile them.
#[derive(Default)]
pub(super) struct Beats {
    /// The leases the last heartbeat listed.
    last: BTreeSet<(Uuid, u64)>,
    /// Started leases the worker stopped listing, and since when.
    missing: HashMap<(Uuid, u64), Instant>,
    /// Heartbeats since the last full look.
    since_full: u32,
}

/// A full look at the leases at least this often (in heartbeats), even
/// when nothing seems to change.
const FULL_EVERY: u32 = 10;

/// Reconciles one heartbeat with the stored leases, as `on_hello` does a
/// hello, but only when the worker's list changed, while a started lease
/// is missing from it, or every [`FULL_EVERY`] heartbeats, so a steady
/// fleet costs the database nothing. A bot the worker runs without a lease
/// is revoked and a leave request repeated at once; a started lease it no
/// longer lists (with no final status) is taken back only once it has
/// been missing for the grace period, so a final status still on its way
/// wins. Leases not yet taken up are the sweep's to send again.
pub(super) async fn on_heartbeat(
    state: &AppState,
    worker_id: &str,
    reported: &[BotReport],
    beats: &mut Beats,
) {
    let listed: BTreeSet<(Uuid, u64)> = reported.iter().map(|r| (r.bot_id, r.generation)).collect();
    beats.since_full += 1;
    let look = listed != beats.last || !beats.missing.is_empty() || beats.since_full >= FULL_EVERY;
    beats.last = listed;
    if !look {
        return;
    }
    beats.since_full = 0;
    let Some(held) = held_leases(state, worker_id).await else {
        return;
    };
    let now = Instant::now();
    let still: BTreeSet<(Uuid, u64)> = held.iter().map(|h| (h.bot_id, h.generation)).collect();
    beats.missing.retain(|k, _| still.contains(k));
    for r in reconcile(&held, reported) {
        match r {
            Repair::Revoke { bot_id, generation } => {
                tracing::info!(%bot_id, generation, "the worker runs a bot it holds no lease for; revoked");
                tell(state, worker_id, r);
            }
            Repair::Cancel { .. } => tell(state, worker_id, r),
            Repair::Reassign { .. } => {}
            Repair::Expire { bot_id, generation } => {
                let since = *beats.missing.entry((bot_id, generation)).or_insert(now);
                if now.duration_since(since) < state.config.worker_grace {
                    continue;
                }
                beats.missing.remove(&(bot_id, generation));
                tracing::warn!(%bot_id, generation, "the worker stopped running a bot without a final status");
                let id = bot_id.to_string();
                if let Err(e) =
                    expire_leases(state, worker_id, Some((&id, generation as i64)), None).await
                {
                    tracing::warn!(error = %e, "cannot expire a lease; the next heartbeat retries");
                }
            }
        }
    }
    // Listed again: no longer missing.
    for r in reported {
        beats.missing.remove(&(r.bot_id, r.generation));
    }
}

/// Sends the command a Revoke or Cancel repair stands for.
fn tell(state: &AppState, worker_id: &str, r: Repair) {
    let msg = match r {
        Repair::Revoke { bot_id, generation } => ControlMsg::Revoke { bot_id, generation },
        Repair::Cancel { bot_id, generation } => ControlMsg::Cancel { bot_id, generation },
        Repair::Reassign { .. } | Repair::Expire { .. } => return,
    };
    state.links.send(worker_id, msg);
}

/// The leases the database says `worker_id` holds; `None` (logged) if it
/// cannot say now.
async fn held_leases(state: &AppState, worker_id: &str) -> Option<Vec<HeldLease>> {
    match state.store.leased_bots(Some(worker_id)).await {
        Ok(bots) => Some(
            bots.iter()
                .filter_map(|b| {
                    Some(HeldLease {
                        bot_id: b.id.parse().ok()?,
                        generation: b.lease_generation as u64,
                        status: b.status.0,
                        leave_requested: b.leave_requested,
                    })
                })
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read leases to reconcile; the sweep will retry");
            None
        }
    }
}

/// Periodic sweep: drives every worker's liveness clock, takes back the
/// leases of lost workers, and resends what the event path may have missed.
pub(crate) async fn sweep(state: AppState, shutdown: CancellationToken) {
    let every = (state.config.heartbeat_interval / 2).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_once(&state).await {
            tracing::warn!(error = %e, "fleet sweep failed; retrying next tick");
        }
    }
}

async fn sweep_once(state: &AppState) -> Result<(), StoreError> {
    // Workers that hold leases but never connected to this process (after a
    // control-plane restart) start their grace now.
    let leased = state.store.leased_bots(None).await?;
    let now = Instant::now();
    for b in &leased {
        if let Some(w) = &b.worker_id {
            state.links.note_unseen(w, now);
        }
    }
    let grace = state.config.worker_grace;
    for worker_id in state.links.tick(now, grace) {
        // Lost to this replica; another may still hear from it.
        if !state.store.worker_seen_within(&worker_id, grace).await? {
            tracing::warn!(worker_id = %worker_id, "worker lost");
            state
                .store
                .set_worker_state(&worker_id, WorkerState::Lost, None)
                .await?;
        }
    }
    // Taking leases back is idempotent, so every sweep repeats it for every
    // lost worker that still holds some: a failed or raced attempt is
    // repaired on the next tick. A worker another replica heard from within
    // the grace period is not lost.
    let holders: std::collections::BTreeSet<&str> = leased
        .iter()
        .filter_map(|b| b.worker_id.as_deref())
        .collect();
    for worker_id in holders {
        if !state.links.is_lost(worker_id)
            || state.store.worker_seen_within(worker_id, grace).await?
        {
            continue;
        }
        if let Err(e) = expire_leases(state, worker_id, None, None).await {
            tracing::warn!(worker_id, error = %e, "cannot take back leases yet; retrying next tick");
        }
    }
    // Commands that may have been lost: assignments not yet taken up, and
    // leave requests not yet obeyed.
    let stale_after =
        chrono::Duration::from_std(state.config.heartbeat_interval * 2).unwrap_or_default();
    for b in leased.iter().filter(|b| {
        b.status == BotStatus::Dispatched && crate::store::now() - b.updated_at > stale_after
    }) {
        if let Some(w) = &b.worker_id
            && !runs(state, w, b)
            && let Some(a) = assignment(state, b).await
        {
            state.links.send(w, ControlMsg::Assign(Box::new(a)));
        }
    }
    for b in leased
        .iter()
        .filter(|b| b.leave_requested && b.status != BotStatus::Leaving)
        .filter(|b| b.worker_id.as_deref().is_some_and(|w| runs(state, w, b)))
    {
        if let (Some(w), Ok(bot_id)) = (&b.worker_id, b.id.parse()) {
            state.links.send(
                w,
                ControlMsg::Cancel {
                    bot_id,
                    generation: b.lease_generation as u64,
                },
            );
        }
    }
    state
        .metrics
        .workers_connected
        .set(state.links.connected() as i64);
    Ok(())
}

/// Whether the worker's last heartbeat says it runs this bot's lease.
fn runs(state: &AppState, worker_id: &str, b: &crate::entity::bot::Model) -> bool {
    state.links.observed(worker_id).is_some_and(|bots| {
        bots.iter()
            .any(|r| r.bot_id.to_string() == b.id && r.generation == b.lease_generation as u64)
    })
}

/// What the worker refused tells the control plane something about the
/// lease: a full or draining worker gives the bot back (it is queued
/// again); a worker that runs a newer lease, or no longer runs this one,
/// settles it through its own results (its final status is on the way), so
/// nothing moves, but commands for that lease stop being repeated.
pub(super) async fn on_refused(
    state: &AppState,
    worker_id: &str,
    bot_id: uuid::Uuid,
    generation: u64,
    code: ErrorCode,
    message: &str,
) {
    state
        .metrics
        .commands_refused
        .with_label_values(&[code.as_str()])
        .inc();
    if code == ErrorCode::StaleGeneration {
        state.links.forget(worker_id, bot_id, generation);
    }
    if code != ErrorCode::ResourceExhausted {
        return;
    }
    // Until its next heartbeat, the worker takes no more.
    state.links.full(worker_id);
    let id = bot_id.to_string();
    let why = format!("worker {worker_id} refused it: {message}");
    if let Err(e) =
        expire_leases(state, worker_id, Some((&id, generation as i64)), Some(&why)).await
    {
        tracing::warn!(error = %e, "cannot requeue a refused bot; the sweep will retry");
    }
}

/// What becomes of a bot whose worker is gone: in the meeting it fails with
/// WORKER_LOST (the customer is told); before that it is queued again, unless
/// the customer already asked it to leave.
pub(crate) fn lost_worker_outcome(
    status: BotStatus,
    leave_requested: bool,
) -> (BotStatus, Option<StatusReason>) {
    if status.is_in_meeting() {
        (BotStatus::Failed, Some(StatusReason::WorkerLost))
    } else if leave_requested {
        (BotStatus::Ended, Some(StatusReason::LeaveRequested))
    } else {
        (BotStatus::Queued, None)
    }
}

/// Takes back a worker's leases (all of them, or one bot's), saying why
/// in each bot's event (`why`; else that the worker was lost).
pub(super) async fn expire_leases(
    state: &AppState,
    worker_id: &str,
    only: Option<(&str, i64)>,
    why: Option<&str>,
) -> Result<(), StoreError> {
    for b in state.store.leased_bots(Some(worker_id)).await? {
        if only.is_some_and(|(id, g)| id != b.id || g != b.lease_generation) {
            continue;
        }
        let status = b.status.0;
        let (to, reason) = lost_worker_outcome(status, b.leave_requested);
        let mut t = Transition::new(&b.id, to, reason);
        t.expect_generation = Some(b.lease_generation);
        t.expect_status = Some(status);
        t.detail = Some(why.map_or_else(|| format!("worker {worker_id} lost"), str::to_string));
        match state.bots.apply(t).await {
            Ok(Applied::Moved(..)) => {
                // Should the worker still be (or come back) online, the
                // lease is no longer its own.
                if let Ok(bot_id) = b.id.parse() {
                    state.links.send(
                        worker_id,
                        ControlMsg::Revoke {
                            bot_id,
                            generation: b.lease_generation as u64,
                        },
                    );
                }
                let outcome = if to == BotStatus::Queued {
                    "requeued"
                } else {
                    "failed"
                };
                state
                    .metrics
                    .leases_expired
                    .with_label_values(&[outcome])
                    .inc();
            }
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::Stale { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_worker_outcomes() {
        use BotStatus::*;
        let table = [
            (Dispatched, false, Queued, None),
            (Joining, false, Queued, None),
            (WaitingRoom, false, Queued, None),
            (InCall, false, Failed, Some(StatusReason::WorkerLost)),
            (Leaving, false, Failed, Some(StatusReason::WorkerLost)),
            (Joining, true, Ended, Some(StatusReason::LeaveRequested)),
            (InCall, true, Failed, Some(StatusReason::WorkerLost)),
        ];
        for (from, leave, to, reason) in table {
            assert_eq!(
                lost_worker_outcome(from, leave),
                (to, reason),
                "{from:?} leave={leave}"
            );
            from.check_transition(to, reason).unwrap();
        }
    }
}
