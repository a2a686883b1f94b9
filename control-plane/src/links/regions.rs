//! What each region's workers hold, per pool (`shared`, or a dedicated
//! tenant's), as the autoscaling gauges show it: the workers connected,
//! their capacity, the bots they run and the room left for new ones (a
//! draining worker takes none).

use std::collections::{BTreeMap, HashMap};

use super::WorkerView;
use crate::entity::worker;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RegionLoad {
    pub workers: i64,
    pub capacity: i64,
    pub active_bots: i64,
    pub free: i64,
}

/// The pool label of the gauges: a dedicated pool's name, or `shared`.
pub(crate) fn pool_label(pool: Option<&str>) -> &str {
    pool.unwrap_or("shared")
}

/// Every region and pool with an enrolled worker, from the stored workers
/// and what this replica's links report; keyed by (region, pool label).
pub(crate) fn region_loads(
    workers: &[worker::Model],
    views: &HashMap<String, WorkerView>,
) -> BTreeMap<(String, String), RegionLoad> {
    let mut out: BTreeMap<(String, String), RegionLoad> = BTreeMap::new();
    for w in workers.iter().filter(|w| w.revoked_at.is_none()) {
        let key = (w.region.clone(), pool_label(w.pool.as_deref()).to_string());
        let r = out.entry(key).or_default();
        let Some(v) = views.get(&w.id).filter(|v| v.connected) else {
            continue;
        };
        // What it measured in its last heartbeat (or said in its hello).
        let capacity = v.load.capacity;
        r.workers += 1;
        r.capacity += i64::from(capacity);
        r.active_bots += i64::from(v.load.active_bots);
        if !v.draining && !v.load.draining {
            r.free += i64::from(capacity.saturating_sub(v.load.active_bots));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use attache_protocol::Load;

    fn worker(id: &str, region: &str, revoked: bool) -> worker::Model {
        in_pool(id, region, None, revoked)
    }

    fn in_pool(id: &str, region: &str, pool: Option<&str>, revoked: bool) -> worker::Model {
        worker::Model {
            id: id.into(),
            region: region.into(),
            hostname: id.into(),
            cert_fingerprint: String::new(),
            capacity: 4,
            state: crate::entity::names::Stored(crate::entity::names::WorkerState::Connected),
            enrolled_at: crate::store::now(),
            last_seen_at: None,
            revoked_at: revoked.then(crate::store::now),
            pool: pool.map(str::to_string),
            drain_requested_at: None,
        }
    }

    fn view(connected: bool, draining: bool, capacity: u32, active: u32) -> WorkerView {
        WorkerView {
            connected,
            draining,
            load: Load {
                active_bots: active,
                capacity,
                rss_mib: 0,
                draining: false,
            },
            software_version: String::new(),
        }
    }

    #[test]
    fn free_room_counts_connected_workers_that_take_bots() {
        let workers = [
            worker("a", "eu", false),
            worker("b", "eu", false),
            worker("c", "eu", false),
            worker("f", "eu", false),
            worker("d", "us", false),
            worker("e", "us", true),
            in_pool("p", "eu", Some("acme"), false),
        ];
        let views = HashMap::from([
            ("a".to_string(), view(true, false, 4, 1)),
            ("b".to_string(), view(true, true, 4, 2)),
            ("c".to_string(), view(false, false, 4, 0)),
            // Connected, and it measured no room: it counts with none.
            ("f".to_string(), view(true, false, 0, 0)),
            ("e".to_string(), view(true, false, 4, 0)),
            ("p".to_string(), view(true, false, 2, 1)),
        ]);
        let loads = region_loads(&workers, &views);
        let key = |r: &str, p: &str| (r.to_string(), p.to_string());
        assert_eq!(
            loads[&key("eu", "shared")],
            RegionLoad {
                workers: 3,
                capacity: 8,
                active_bots: 3,
                free: 3,
            },
            "a's and f's room: b drains, c is away"
        );
        assert_eq!(
            loads[&key("eu", "acme")],
            RegionLoad {
                workers: 1,
                capacity: 2,
                active_bots: 1,
                free: 1,
            },
            "the pool apart from the region's shared workers"
        );
        assert_eq!(
            loads[&key("us", "shared")],
            RegionLoad::default(),
            "d away, e revoked"
        );
    }
}
