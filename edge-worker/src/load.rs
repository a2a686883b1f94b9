//! What the worker's machine is doing: how busy its CPUs are and how many
//! of this worker's pages are stalled right now. Bots read it to tell
//! their own page hanging from the whole worker being starved
//! (`PAGE_UNRESPONSIVE` or `WORKER_OVERLOADED`).
//!
//! The CPU is sampled from `/proc/stat` once a second and smoothed over a
//! few seconds; where there is no `/proc/stat` it reads as idle. The same
//! pass reads the memory available (`/proc/meminfo`) and what the worker's
//! own processes (itself and its browser's) take, from which the worker
//! works out how many more bots it can hold ([`crate::capacity`]). Their
//! proportional set size, which costs the kernel a walk of each process's
//! pages, is read every [`PSS_EVERY`] samples.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capacity::{self, Bots, Cost, Room, Sample};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SAMPLE: Duration = Duration::from_secs(1);
/// Every how many samples the proportional set size is read: about 2 ms
/// per browser process.
const PSS_EVERY: u64 = 10;
/// A machine this busy, with more than one page stalled, is overloaded.
const OVERLOADED_BUSY: f64 = 0.85;

#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Smoothed share of CPU time not idle, in thousandths.
    busy_permille: AtomicU32,
    stalled_pages: AtomicU32,
    measured: Mutex<Measured>,
}

#[derive(Debug, Default)]
struct Measured {
    /// The latest sample (its `busy` is filled in when read), and how
    /// many have been taken.
    sample: Sample,
    taken: u64,
    /// What a bot costs, and the sample it was last taught.
    cost: Cost,
    taught: u64,
}

impl Load {
    /// Starts sampling until `stop`.
    pub(crate) fn start(tasks: &TaskTracker, stop: CancellationToken) -> Arc<Load> {
        let load = Arc::new(Load::default());
        // The first reading at once: the hello already tells the truth.
        let own = own_processes(true);
        load.observe(Sample {
            cores: cores(),
            busy: 0.0,
            mem_available_mib: mem_available_mib().unwrap_or(f64::MAX),
            own_cores: 0.0,
            own_mib: mib(own.rss_bytes),
            own_pss_mib: own.pss_bytes.map(mib),
        });
        let sampled = load.clone();
        tasks.spawn(async move {
            let mut last = cpu_ticks();
            let mut own_last = (own, Instant::now());
            let mut taken = 0u64;
            let mut tick = tokio::time::interval(SAMPLE);
            // An interval's first tick is at once.
            tick.tick().await;
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
                taken += 1;
                let own = (
                    own_processes(taken.is_multiple_of(PSS_EVERY)),
                    Instant::now(),
                );
                let secs = own.1.duration_since(own_last.1).as_secs_f64().max(0.001);
                let ticks = own.0.ticks.saturating_sub(own_last.0.ticks);
                own_last = own;
                sampled.observe(Sample {
                    cores: cores(),
                    busy: 0.0,
                    mem_available_mib: mem_available_mib().unwrap_or(f64::MAX),
                    own_cores: ticks as f64 / TICKS_PER_SEC / secs,
                    own_mib: mib(own_last.0.rss_bytes),
                    own_pss_mib: own_last.0.pss_bytes.map(mib),
                });
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

    pub(crate) fn observe(&self, sample: Sample) {
        let mut m = self.measured.lock().expect("load lock");
        m.sample = sample;
        m.taken += 1;
    }

    /// How many more bots the worker can hold now, at most `cap` in all,
    /// leaving `reserve_mib` of memory to the machine. Each new sample
    /// teaches the cost of a bot once.
    pub(crate) fn room(&self, bots: Bots, cap: u32, reserve_mib: f64) -> Room {
        let mut m = self.measured.lock().expect("load lock");
        let mut sample = m.sample;
        if m.taken == 0 {
            // Not measured yet: an idle machine with memory to spare.
            sample.cores = cores();
            sample.mem_available_mib = f64::MAX;
        }
        sample.busy = self.busy();
        if m.taken > m.taught {
            m.taught = m.taken;
            m.cost.learn(&sample, bots);
        }
        capacity::room(&sample, &m.cost, bots, cap, reserve_mib)
    }

    /// Resident memory of the worker and its browser at the last sample.
    pub(crate) fn own_mib(&self) -> u32 {
        self.measured.lock().expect("load lock").sample.own_mib as u32
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

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;
const PAGE_BYTES: u64 = 4096;

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// `MemAvailable` from `/proc/meminfo`, in MiB.
fn mem_available_mib() -> Option<f64> {
    let kb = kib_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )?;
    Some(kb as f64 / 1024.0)
}

/// A `Name:   123 kB` line of a `/proc` file, in KiB.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// CPU time and memory of this process and all it started.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Own {
    pub ticks: u64,
    pub rss_bytes: u64,
    /// Proportional set size, when asked for and readable.
    pub pss_bytes: Option<u64>,
}

/// Reads every process's `stat` once and sums this process's tree (the
/// browser and its renderers are its descendants); with `pss`, their
/// proportional set sizes too.
pub(crate) fn own_processes(pss: bool) -> Own {
    let mut procs: Vec<(u32, u32, u64, u64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // After the command's closing parenthesis: state, ppid, ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            procs.push((pid, num(1) as u32, num(11) + num(12), num(21) * PAGE_BYTES));
        }
    }
    let mut tree = vec![std::process::id()];
    let mut own = Own::default();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &(pid, ppid, ticks, rss) in &procs {
            if pid == parent {
                own.ticks += ticks;
                own.rss_bytes += rss;
            }
            if ppid == parent && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        i += 1;
    }
    if pss {
        // A child that ended since is simply not counted.
        own.pss_bytes = pss_bytes(tree[0])
            .map(|me| me + tree[1..].iter().filter_map(|&p| pss_bytes(p)).sum::<u64>());
    }
    own
}

/// `Pss` from `/proc/<pid>/smaps_rollup`.
fn pss_bytes(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(kib_field(&rollup, "Pss:")? * 1024)
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
        assert!(mem_available_mib().expect("/proc/meminfo") > 0.0);
    }

    #[test]
    fn the_workers_own_processes_include_its_children() {
        let alone = own_processes(true);
        assert!(alone.rss_bytes > 0);
        let alone_pss = alone.pss_bytes.expect("smaps_rollup is readable");
        assert!(alone_pss > 0 && alone_pss <= alone.rss_bytes, "{alone:?}");
        // A child that holds 64 MiB resident.
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,time; b=bytearray(64<<20); print(1, flush=True); time.sleep(30)",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let with_child = own_processes(true);
        child.kill().ok();
        child.wait().ok();
        assert!(
            with_child.rss_bytes >= alone.rss_bytes + (60 << 20),
            "{alone:?} then {with_child:?}"
        );
        // The child's own pages are its alone: all in its share.
        assert!(
            with_child.pss_bytes.unwrap() >= alone_pss + (60 << 20),
            "{alone:?} then {with_child:?}"
        );
        assert!(own_processes(false).pss_bytes.is_none());
    }

    #[test]
    fn room_is_read_from_the_latest_sample_and_teaches_once() {
        let load = Load::default();
        let bots = Bots {
            active: 2,
            starting: 0,
            waiting: 0,
        };
        // Before any sample: only --capacity bounds it.
        assert_eq!(load.room(bots, 4, 512.0).more, 2);
        load.observe(Sample {
            cores: 2.0,
            busy: 0.0,
            mem_available_mib: 512.0 + 150.0,
            own_cores: 0.4,
            own_mib: 300.0,
            own_pss_mib: Some(200.0),
        });
        let r = load.room(bots, 6, 512.0);
        assert_eq!((r.more, r.limit), (1, capacity::Limit::Memory));
    }
}
