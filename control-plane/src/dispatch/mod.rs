//! Dispatch: queued bots whose time has come go to a connected worker of
//! their tenant's region with room for them. Taking the lease is a
//! compare-and-swap in the database (through the lifecycle service), so two
//! replicas never lease one bot; [`assignment`] builds what the worker is
//! sent.

mod assignment;

use std::collections::HashMap;
use std::time::Duration;

use attache_protocol::{BotStatus, ControlMsg};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::links::Candidate;
use crate::store::{Applied, StoreError, Transition, now};
pub(crate) use assignment::assignment;

/// Bots leased per pass; the rest wait for the next pass.
const BATCH: u64 = 64;

pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        let wait = match dispatch_once(&state).await {
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

/// Sleep until the next scheduled join, but never longer than the interval.
async fn next_wait(state: &AppState) -> Duration {
    let interval = state.config.dispatch_interval;
    match state.store.next_join_at().await {
        Ok(Some(at)) => (at - now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(Duration::from_millis(5), interval),
        _ => interval,
    }
}

/// The worker with the most free room in `region`; ties go to the lowest id
/// so decisions are reproducible.
pub(crate) fn choose_worker<'a>(
    candidates: &'a [Candidate],
    active: &HashMap<String, u32>,
    region: &str,
) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter(|c| c.region == region)
        .filter_map(|c| {
            let used = active.get(&c.id).copied().unwrap_or(0);
            (used < c.capacity).then_some((c, c.capacity - used))
        })
        .max_by(|(a, fa), (b, fb)| fa.cmp(fb).then_with(|| b.id.cmp(&a.id)))
        .map(|(c, _)| c)
}

async fn dispatch_once(state: &AppState) -> Result<(), StoreError> {
    let due = state.store.due_bots(now(), BATCH).await?;
    if due.is_empty() {
        return Ok(());
    }
    let candidates = state.links.candidates();
    if candidates.is_empty() {
        return Ok(());
    }
    let mut active: HashMap<String, u32> = HashMap::new();
    for b in state.store.leased_bots(None).await? {
        if let Some(w) = b.worker_id {
            *active.entry(w).or_default() += 1;
        }
    }
    for bot in due {
        if bot.leave_requested {
            // Asked to leave while it was being taken back from a worker.
            let mut t = Transition::new(
                &bot.id,
                BotStatus::Ended,
                Some(attache_protocol::StatusReason::LeaveRequested),
            );
            t.expect_status = Some(BotStatus::Queued);
            t.expect_generation = Some(bot.lease_generation);
            if let Err(e) = state.bots.apply(t).await {
                tracing::debug!(bot_id = %bot.id, error = %e, "leave of a requeued bot not applied; next pass");
            }
            continue;
        }
        let Some(worker) = choose_worker(&candidates, &active, &bot.region) else {
            continue;
        };
        let mut t = Transition::new(&bot.id, BotStatus::Dispatched, None);
        t.expect_status = Some(BotStatus::Queued);
        t.expect_generation = Some(bot.lease_generation);
        t.lease_to = Some(worker.id.clone());
        match state.bots.apply(t).await {
            Ok(Applied::Moved(leased, ev)) => {
                let due_since = leased.join_at.max(leased.created_at);
                let waited = (ev.at - due_since).num_milliseconds().max(0) as f64 / 1000.0;
                state.metrics.dispatch_latency.observe(waited);
                *active.entry(worker.id.clone()).or_default() += 1;
                tracing::info!(bot_id = %leased.id, tenant_id = %leased.tenant_id, worker_id = %worker.id,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, region: &str, capacity: u32) -> Candidate {
        Candidate {
            id: id.into(),
            region: region.into(),
            capacity,
        }
    }

    #[test]
    fn decisions() {
        let cands = [cand("a", "eu", 2), cand("b", "eu", 4), cand("c", "us", 8)];
        let active = |pairs: &[(&str, u32)]| -> HashMap<String, u32> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let table: [(&str, HashMap<String, u32>, Option<&str>); 7] = [
            ("eu", active(&[]), Some("b")),
            ("eu", active(&[("b", 3)]), Some("a")),
            ("eu", active(&[("b", 2)]), Some("a")),
            ("eu", active(&[("b", 1)]), Some("b")),
            ("eu", active(&[("a", 2), ("b", 4)]), None),
            ("us", active(&[("c", 7)]), Some("c")),
            ("ap", active(&[]), None),
        ];
        for (region, act, want) in table {
            assert_eq!(
                choose_worker(&cands, &act, region).map(|c| c.id.as_str()),
                want,
                "{region} {act:?}"
            );
        }
    }

    #[test]
    fn ties_go_to_the_lowest_id() {
        let cands = [cand("z", "eu", 2), cand("m", "eu", 2)];
        assert_eq!(
            choose_worker(&cands, &HashMap::new(), "eu").unwrap().id,
            "m"
        );
    }
}
