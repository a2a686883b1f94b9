//! What one dispatch pass takes from the queue, decided without I/O.
//!
//! The queue is read per group (a region, or a dedicated pool in it): each
//! group gets as many of its oldest due bots as its workers have room for,
//! so a group with no worker, or a full one, never holds up another. The
//! bots a group cannot place wait with a reason the API shows.
//!
//! Placement is strict: a shared tenant's bot runs only on a shared worker
//! of its region, a dedicated tenant's only on a worker of its pool.

use std::collections::{HashMap, HashSet};

use crate::entity::names::QueueReason;
use crate::links::Candidate;
use crate::store::QueueGroup;

/// Bots run on the workers of one region and pool (`None`: shared).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Group {
    pub region: String,
    pub pool: Option<String>,
}

impl Group {
    pub(crate) fn of(region: &str, pool: Option<&str>) -> Group {
        Group {
            region: region.to_string(),
            pool: pool.map(str::to_string),
        }
    }

    fn serves(&self, c: &Candidate) -> bool {
        c.region == self.region && c.pool == self.pool
    }
}

/// One group's part of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub group: Group,
    /// How many of its oldest due bots to lease now.
    pub take: u64,
    /// Why the rest wait, if some must.
    pub waiting: Option<QueueReason>,
}

/// Free room per candidate: capacity less the leases it holds.
fn free(c: &Candidate, active: &HashMap<String, u32>) -> u32 {
    c.capacity
        .saturating_sub(active.get(&c.id).copied().unwrap_or(0))
}

/// Plans a pass: per group with due bots, how many to take (at most
/// `per_group`, at most its room) and why the rest wait. `live` holds the
/// groups where some replica saw a worker connected lately (one this
/// replica has no link to still counts as a worker that exists).
pub(crate) fn plan(
    queue: &[QueueGroup],
    candidates: &[Candidate],
    active: &HashMap<String, u32>,
    live: &HashSet<Group>,
    per_group: u64,
) -> Vec<Step> {
    let mut steps: Vec<Step> = queue
        .iter()
        .filter(|q| q.due > 0)
        .map(|q| {
            let group = Group::of(&q.region, q.pool.as_deref());
            let mut here = candidates.iter().filter(|c| group.serves(c)).peekable();
            let has_worker = here.peek().is_some() || live.contains(&group);
            let room: u64 = here.map(|c| u64::from(free(c, active))).sum();
            let reason = match (has_worker, &group.pool) {
                (true, _) => QueueReason::WorkersBusy,
                (false, Some(_)) => QueueReason::NoWorkerInPool,
                (false, None) => QueueReason::NoWorkerInRegion,
            };
            let waiting = (q.due > room).then_some(reason);
            Step {
                take: q.due.min(room).min(per_group),
                waiting,
                group,
            }
        })
        .collect();
    steps.sort_by(|a, b| a.group.cmp(&b.group));
    steps
}

/// The worker of `group` with the most free room; ties go to the lowest id
/// so decisions are reproducible.
pub(crate) fn choose_worker<'a>(
    candidates: &'a [Candidate],
    active: &HashMap<String, u32>,
    group: &Group,
) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter(|c| group.serves(c))
        .map(|c| (c, free(c, active)))
        .filter(|(_, room)| *room > 0)
        .max_by(|(a, fa), (b, fb)| fa.cmp(fb).then_with(|| b.id.cmp(&a.id)))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, region: &str, pool: Option<&str>, capacity: u32) -> Candidate {
        Candidate {
            id: id.into(),
            region: region.into(),
            pool: pool.map(str::to_string),
            capacity,
        }
    }

    fn active(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn shared(region: &str) -> Group {
        Group::of(region, None)
    }

    #[test]
    fn decisions() {
        let cands = [
            cand("a", "eu", None, 2),
            cand("b", "eu", None, 4),
            cand("c", "us", None, 8),
            cand("p", "eu", Some("acme"), 8),
        ];
        let acme = Group::of("eu", Some("acme"));
        let table: [(Group, HashMap<String, u32>, Option<&str>); 10] = [
            (shared("eu"), active(&[]), Some("b")),
            (shared("eu"), active(&[("b", 3)]), Some("a")),
            (shared("eu"), active(&[("b", 2)]), Some("a")),
            (shared("eu"), active(&[("b", 1)]), Some("b")),
            (shared("eu"), active(&[("a", 2), ("b", 4)]), None),
            (shared("us"), active(&[("c", 7)]), Some("c")),
            (shared("ap"), active(&[]), None),
            // A shared bot never goes to a pool worker, even with room.
            (shared("eu"), active(&[("a", 2), ("b", 4)]), None),
            // A pool's bot goes only to its pool.
            (acme.clone(), active(&[]), Some("p")),
            (acme, active(&[("p", 8)]), None),
        ];
        for (group, act, want) in table {
            assert_eq!(
                choose_worker(&cands, &act, &group).map(|c| c.id.as_str()),
                want,
                "{group:?} {act:?}"
            );
        }
        // Another pool, or the same pool in another region: nobody.
        assert!(choose_worker(&cands, &HashMap::new(), &Group::of("eu", Some("other"))).is_none());
        assert!(choose_worker(&cands, &HashMap::new(), &Group::of("us", Some("acme"))).is_none());
    }

    #[test]
    fn ties_go_to_the_lowest_id() {
        let cands = [cand("z", "eu", None, 2), cand("m", "eu", None, 2)];
        assert_eq!(
            choose_worker(&cands, &HashMap::new(), &shared("eu"))
                .unwrap()
                .id,
            "m"
        );
    }

    fn due(region: &str, pool: Option<&str>, n: u64) -> QueueGroup {
        QueueGroup {
            region: region.into(),
            pool: pool.map(str::to_string),
            due: n,
        }
    }

    fn step(region: &str, pool: Option<&str>, take: u64, waiting: Option<QueueReason>) -> Step {
        Step {
            group: Group::of(region, pool),
            take,
            waiting,
        }
    }

    #[test]
    fn each_group_is_planned_on_its_own() {
        use QueueReason::*;
        let cands = [
            cand("eu-1", "eu", None, 2),
            cand("eu-2", "eu", None, 3),
            cand("pool-1", "eu", Some("acme"), 1),
        ];
        let none = HashSet::new();
        let us_live: HashSet<Group> = [shared("us")].into();
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            &str,
            Vec<QueueGroup>,
            HashMap<String, u32>,
            &HashSet<Group>,
            Vec<Step>,
        )> = vec![
            (
                "a backlog in a region with no worker does not hold up another",
                vec![due("us", None, 100), due("eu", None, 1)],
                active(&[]),
                &none,
                vec![
                    step("eu", None, 1, None),
                    step("us", None, 0, Some(NoWorkerInRegion)),
                ],
            ),
            (
                "room is the sum over the group's workers",
                vec![due("eu", None, 3)],
                active(&[("eu-1", 1), ("eu-2", 2)]),
                &none,
                vec![step("eu", None, 2, Some(WorkersBusy))],
            ),
            (
                "a full region says its workers are busy",
                vec![due("eu", None, 2)],
                active(&[("eu-1", 2), ("eu-2", 3)]),
                &none,
                vec![step("eu", None, 0, Some(WorkersBusy))],
            ),
            (
                "a worker on another replica exists: busy, not missing",
                vec![due("us", None, 1)],
                active(&[]),
                &us_live,
                vec![step("us", None, 0, Some(WorkersBusy))],
            ),
            (
                "no more than the batch per group",
                vec![due("eu", None, 5)],
                active(&[]),
                &none,
                vec![step("eu", None, 2, None)],
            ),
            (
                "a pool has its own room; the shared workers are not its",
                vec![due("eu", Some("acme"), 3), due("eu", Some("zeta"), 1)],
                active(&[]),
                &none,
                vec![
                    step("eu", Some("acme"), 1, Some(WorkersBusy)),
                    step("eu", Some("zeta"), 0, Some(NoWorkerInPool)),
                ],
            ),
            (
                "nothing due, nothing planned",
                vec![due("eu", None, 0)],
                active(&[]),
                &none,
                vec![],
            ),
        ];
        for (what, queue, act, live, want) in table {
            assert_eq!(plan(&queue, &cands, &act, live, 2), want, "{what}");
        }
    }
}
