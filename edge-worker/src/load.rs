//! What the worker's machine is doing: how busy its CPUs are and how many
//! of this worker's pages are stalled right now. Bots read it to tell
//! their own page hanging from the whole worker being starved
//! (`PAGE_UNRESPONSIVE` or `WORKER_OVERLOADED`).
//!
//! The CPU is sampled from `/proc/stat` once a second and smoothed over a
//! few seconds; where there is no `/proc/stat` it reads as idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SAMPLE: Duration = Duration::from_secs(1);
/// A machine this busy, with more than one page stalled, is overloaded.
const OVERLOADED_BUSY: f64 = 0.85;

#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Smoothed share of CPU time not idle, in thousandths.
    busy_permille: AtomicU32,
    stalled_pages: AtomicU32,
}

impl Load {
    /// Starts sampling until `stop`.
    pub(crate) fn start(tasks: &TaskTracker, stop: CancellationToken) -> Arc<Load> {
        let load = Arc::new(Load::default());
        let sampled = load.clone();
        tasks.spawn(async move {
            let mut last = cpu_ticks();
            let mut tick = tokio::time::interval(SAMPLE);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = cpu_ticks();
                if let (Some((b0, t0)), Some((b1, t1))) = (last, now)
                    && t1 > t0
                {
                    let busy = (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64;
                    sampled.observe_busy(busy);
                }
                last = now;
            }
        });
        load
    }

    pub(crate) fn observe_busy(&self, busy: f64) {
        let was = self.busy();
        // About a three-second average.
        let smoothed = was + (busy.clamp(0.0, 1.0) - was) / 3.0;
        self.busy_permille
            .store((smoothed * 1000.0).round() as u32, Ordering::Relaxed);
    }

    /// Share of the machine's CPU time that is busy, 0 to 1.
    pub(crate) fn busy(&self) -> f64 {
        self.busy_permille.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub(crate) fn stalled_pages(&self) -> u32 {
        self.stalled_pages.load(Ordering::Relaxed)
    }

    /// Whether a page's stall is the worker's: the CPU saturated and other
    /// pages stalled along with it. One page hanging on an idle machine is
    /// that page's own fault.
    pub(crate) fn overloaded(&self) -> bool {
        self.busy() >= OVERLOADED_BUSY && self.stalled_pages() >= 2
    }

    /// Counts a page as stalled until the guard is dropped.
    pub(crate) fn stall(self: &Arc<Self>) -> StallGuard {
        self.stalled_pages.fetch_add(1, Ordering::Relaxed);
        StallGuard(self.clone())
    }
}

pub(crate) struct StallGuard(Arc<Load>);

impl Drop for StallGuard {
    fn drop(&mut self) {
        self.0.stalled_pages.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Busy and total ticks of the whole machine, from `/proc/stat`.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stalled_page_is_not_an_overloaded_worker() {
        let load = Arc::new(Load::default());
        for _ in 0..20 {
            load.observe_busy(1.0);
        }
        assert!(load.busy() > 0.95);
        let first = load.stall();
        assert!(!load.overloaded(), "one page alone hung");
        let second = load.stall();
        assert!(
            load.overloaded(),
            "two pages stalled on a saturated machine"
        );
        drop(first);
        assert_eq!(load.stalled_pages(), 1);
        drop(second);
        for _ in 0..20 {
            load.observe_busy(0.2);
        }
        let _a = load.stall();
        let _b = load.stall();
        assert!(
            !load.overloaded(),
            "pages stalled on an idle machine hung on their own"
        );
    }

    #[test]
    fn the_machine_is_read() {
        let (busy, total) = cpu_ticks().expect("/proc/stat");
        assert!(total > 0 && busy <= total);
    }
}
