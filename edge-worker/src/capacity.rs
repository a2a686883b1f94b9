//! How many more bots this worker can hold, from what it measures: the
//! machine's CPU headroom, its available memory, and the pages still
//! loading, against what a bot here has been seen to cost. `--capacity`
//! is the upper bound; the worker advertises the smaller of the two in
//! every heartbeat and refuses an assignment it has no room for, saying
//! which of them ran out.
//!
//! The cost of a bot is learnt from the worker's own processes (itself and
//! the browser it started). Its CPU is theirs shared among the bots
//! running. Its memory is what one more bot adds to their proportional set
//! size (shared pages counted once, not in every process that maps them):
//! the slope of that size against the number of bots, once the number has
//! varied; until then, their size less what they took with no bot, shared
//! among the bots. The browser's own processes, started with the first
//! bot, are so charged to the bots only until a second one ran. Until a bot has run,
//! a bot is taken to cost what it costs on a small machine with
//! audio-only capture ([`PRIOR_CORES`], [`PRIOR_MIB`]).

use std::fmt;

/// The share of the machine's cores bots may keep busy: the rest is the
/// margin that keeps bots in calls fed while others join.
pub(crate) const CPU_TARGET: f64 = 0.85;
/// A bot's cost before any has been measured.
pub(crate) const PRIOR_CORES: f64 = 0.25;
pub(crate) const PRIOR_MIB: f64 = 150.0;
/// A learnt cost moves this far towards each new measurement.
const LEARN: f64 = 0.2;
/// Each memory reading weighs this much less at every new one, in the
/// line through them (about twenty readings count).
const KEEP: f64 = 0.95;

/// One reading of the machine and of the worker's own processes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Sample {
    pub cores: f64,
    /// Share of the machine's CPU time that is busy, 0 to 1.
    pub busy: f64,
    /// The kernel's estimate of memory available without swapping.
    pub mem_available_mib: f64,
    /// CPU (in cores) and resident memory of the worker and its browser.
    pub own_cores: f64,
    pub own_mib: f64,
    /// Their proportional set size, in the samples it was read in.
    pub own_pss_mib: Option<f64>,
}

/// The worker's bots at this moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bots {
    pub active: u32,
    /// Active, but not yet in their call: their cost is not all in the
    /// sample yet.
    pub starting: u32,
    /// Waiting for their turn to load their page.
    pub waiting: u32,
}

/// What a bot costs here, as far as has been measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cost {
    pub cores: f64,
    pub mib: f64,
    /// The worker's own memory with no bot running.
    idle_mib: Option<f64>,
    /// Memory against bots, in the samples with every bot in its call.
    line: Line,
    learnt_cores: bool,
    learnt_mib: bool,
}

/// A straight line through (bots, MiB) readings, older ones weighing less.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Line {
    w: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl Line {
    fn add(&mut self, x: f64, y: f64) {
        for v in [
            &mut self.w,
            &mut self.x,
            &mut self.y,
            &mut self.xx,
            &mut self.xy,
        ] {
            *v *= KEEP;
        }
        self.w += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
    }

    /// What one more bot adds, once the readings' numbers of bots differ
    /// enough to tell a bot from what is there anyway.
    fn slope(&self) -> Option<f64> {
        if self.w <= 0.0 {
            return None;
        }
        let (mx, my) = (self.x / self.w, self.y / self.w);
        let var = self.xx / self.w - mx * mx;
        (var >= 0.2).then(|| (self.xy / self.w - mx * my) / var)
    }
}

impl Default for Cost {
    fn default() -> Self {
        Cost {
            cores: PRIOR_CORES,
            mib: PRIOR_MIB,
            idle_mib: None,
            line: Line::default(),
            learnt_cores: false,
            learnt_mib: false,
        }
    }
}

impl Cost {
    /// Takes in one sample: with no bot, what the worker costs by itself;
    /// with bots all in their calls, what each one adds.
    pub(crate) fn learn(&mut self, s: &Sample, bots: Bots) {
        if bots.active == 0 {
            if let Some(pss) = s.own_pss_mib {
                self.idle_mib = Some(self.idle_mib.map_or(pss, |m| m + (pss - m) * LEARN));
            }
            return;
        }
        if bots.starting > 0 || bots.waiting > 0 {
            return;
        }
        let n = f64::from(bots.active);
        let cores = (s.own_cores / n).clamp(0.01, 8.0);
        self.cores = ease(self.cores, cores, &mut self.learnt_cores);
        let Some(pss) = s.own_pss_mib else {
            return;
        };
        self.line.add(n, pss);
        let clamp = |mib: f64| mib.clamp(10.0, 16_384.0);
        match self.line.slope() {
            Some(added) => (self.mib, self.learnt_mib) = (clamp(added), true),
            None => {
                let each = clamp((pss - self.idle_mib.unwrap_or(0.0)) / n);
                self.mib = ease(self.mib, each, &mut self.learnt_mib);
            }
        }
    }
}

/// The first measurement, then a fifth of the way towards each next one.
fn ease(was: f64, now: f64, learnt: &mut bool) -> f64 {
    if std::mem::replace(learnt, true) {
        was + (now - was) * LEARN
    } else {
        now
    }
}

/// What ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `--capacity`.
    Configured,
    Cpu,
    Memory,
    /// Pages are waiting for their turn to load.
    Joins,
}

impl Limit {
    pub(crate) const ALL: [Limit; 4] = [Limit::Configured, Limit::Cpu, Limit::Memory, Limit::Joins];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::Configured => "configured",
            Limit::Cpu => "cpu",
            Limit::Memory => "memory",
            Limit::Joins => "joins",
        }
    }
}

/// How many more bots the worker can take, and why no more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Room {
    pub more: u32,
    pub limit: Limit,
    sample: Sample,
    cost: Cost,
    bots: Bots,
    cap: u32,
    reserve_mib: f64,
}

/// The room left, from one sample, the cost learnt so far, the bots
/// running, `--capacity` (`cap`) and the memory to leave the machine.
pub(crate) fn room(s: &Sample, cost: &Cost, bots: Bots, cap: u32, reserve_mib: f64) -> Room {
    let fits = |free: f64, each: f64| -> u32 {
        let n = (free / each).floor().max(0.0).min(f64::from(u32::MAX)) as u32;
        n.saturating_sub(bots.starting)
    };
    let configured = cap.saturating_sub(bots.active);
    let cpu = fits(s.cores * (CPU_TARGET - s.busy), cost.cores);
    let memory = fits(s.mem_available_mib - reserve_mib, cost.mib);
    let joins = if bots.waiting > 0 { 0 } else { u32::MAX };
    // The first limit reached, `--capacity` first among equals.
    let (mut more, limit) = [
        (configured, Limit::Configured),
        (memory, Limit::Memory),
        (joins, Limit::Joins),
        (cpu, Limit::Cpu),
    ]
    .into_iter()
    .min_by_key(|(n, _)| *n)
    .expect("four limits");
    // A worker with no bot takes one even on a machine busy with other
    // work, so that every worker makes progress; never without memory.
    if bots.active == 0 && limit == Limit::Cpu {
        more = more.max(1).min(configured);
    }
    Room {
        more,
        limit,
        sample: *s,
        cost: *cost,
        bots,
        cap,
        reserve_mib,
    }
}

/// The room `--capacity` alone leaves (`--fixed-capacity`); `cost` is
/// what a bot was measured to cost all the same.
pub(crate) fn fixed(bots: Bots, cap: u32, cost: Cost) -> Room {
    let unmeasured = Sample {
        cores: 1.0,
        mem_available_mib: f64::MAX,
        ..Sample::default()
    };
    Room {
        more: cap.saturating_sub(bots.active),
        limit: Limit::Configured,
        sample: unmeasured,
        cost,
        bots,
        cap,
        reserve_mib: 0.0,
    }
}

impl Room {
    /// What a bot was taken to cost.
    pub(crate) fn cost(&self) -> Cost {
        self.cost
    }
}

impl fmt::Display for Room {
    /// Why the worker takes no more (or what bounds it), for a refusal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, c) = (&self.sample, &self.cost);
        match self.limit {
            Limit::Configured => write!(
                f,
                "the worker runs {} bots, its most (--capacity {})",
                self.bots.active, self.cap
            ),
            Limit::Cpu => write!(
                f,
                "the machine's CPU is busy ({:.1} of {} cores, {:.0}% kept free) and a bot here takes about {:.2} cores; {} bots are still starting",
                s.busy * s.cores,
                s.cores,
                (1.0 - CPU_TARGET) * 100.0,
                c.cores,
                self.bots.starting
            ),
            Limit::Memory => write!(
                f,
                "{:.0} MiB of memory is available, {:.0} MiB kept for the machine, and a bot here takes about {:.0} MiB; {} bots are still starting",
                s.mem_available_mib, self.reserve_mib, c.mib, self.bots.starting
            ),
            Limit::Joins => write!(
                f,
                "{} bots are waiting for their turn to load their meeting pages",
                self.bots.waiting
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(busy: f64, mem_available_mib: f64) -> Sample {
        Sample {
            cores: 2.0,
            busy,
            mem_available_mib,
            own_cores: 0.0,
            own_mib: 0.0,
            own_pss_mib: None,
        }
    }

    fn bots(active: u32, starting: u32, waiting: u32) -> Bots {
        Bots {
            active,
            starting,
            waiting,
        }
    }

    #[test]
    fn the_first_limit_reached_bounds_the_room_and_is_named() {
        let cost = Cost::default();
        // Idle machine, plenty of memory: --capacity bounds it.
        let r = room(&machine(0.0, 20_000.0), &cost, bots(2, 0, 0), 6, 512.0);
        assert_eq!((r.more, r.limit), (4, Limit::Configured));
        assert!(r.to_string().contains("--capacity 6"), "{r}");
        // Half busy: 0.7 of 2 cores left to fill, at 0.25 each, is two bots.
        let r = room(&machine(0.5, 20_000.0), &cost, bots(2, 0, 0), 10, 512.0);
        assert_eq!((r.more, r.limit), (2, Limit::Cpu));
        let r = room(&machine(0.7, 20_000.0), &cost, bots(2, 0, 0), 10, 512.0);
        assert_eq!((r.more, r.limit), (1, Limit::Cpu));
        assert!(r.to_string().contains("1.4 of 2 cores"), "{r}");
        // Memory for two more bots only.
        let r = room(&machine(0.0, 812.0), &cost, bots(2, 0, 0), 10, 512.0);
        assert_eq!((r.more, r.limit), (2, Limit::Memory));
        assert!(r.to_string().contains("812 MiB"), "{r}");
        // Pages waiting for their turn: no more now.
        let r = room(&machine(0.0, 20_000.0), &cost, bots(3, 3, 1), 10, 512.0);
        assert_eq!((r.more, r.limit), (0, Limit::Joins));
    }

    #[test]
    fn bots_still_starting_are_counted_before_they_cost() {
        let cost = Cost::default();
        let r = room(&machine(0.2, 20_000.0), &cost, bots(4, 3, 0), 30, 512.0);
        // (0.85 - 0.2) * 2 / 0.25 = 5, less the 3 starting.
        assert_eq!((r.more, r.limit), (2, Limit::Cpu));
    }

    #[test]
    fn an_idle_worker_takes_one_bot_on_a_busy_machine_but_not_without_memory() {
        let cost = Cost::default();
        let r = room(&machine(1.0, 20_000.0), &cost, bots(0, 0, 0), 4, 512.0);
        assert_eq!((r.more, r.limit), (1, Limit::Cpu));
        let r = room(&machine(1.0, 20_000.0), &cost, bots(1, 0, 0), 4, 512.0);
        assert_eq!(r.more, 0);
        let r = room(&machine(0.0, 300.0), &cost, bots(0, 0, 0), 4, 512.0);
        assert_eq!((r.more, r.limit), (0, Limit::Memory));
    }

    #[test]
    fn a_bot_costs_what_it_was_measured_to_add() {
        let mut cost = Cost::default();
        let idle = Sample {
            own_cores: 0.02,
            own_pss_mib: Some(400.0),
            ..machine(0.1, 20_000.0)
        };
        cost.learn(&idle, bots(0, 0, 0));
        // Starting bots teach nothing: a page loading costs more than one
        // in its call.
        let loading = Sample {
            own_cores: 1.5,
            own_pss_mib: Some(700.0),
            ..idle
        };
        cost.learn(&loading, bots(4, 2, 0));
        assert_eq!((cost.cores, cost.mib), (PRIOR_CORES, PRIOR_MIB));
        let steady = Sample {
            own_cores: 0.6,
            own_pss_mib: Some(800.0),
            ..idle
        };
        cost.learn(&steady, bots(4, 0, 0));
        assert!((cost.cores - 0.15).abs() < 1e-9, "{}", cost.cores);
        assert!((cost.mib - 100.0).abs() < 1e-9, "{}", cost.mib);
        // Later samples move it a fifth of the way; one without a memory
        // reading teaches the CPU only.
        let heavier = Sample {
            own_cores: 1.0,
            own_pss_mib: None,
            ..steady
        };
        cost.learn(&heavier, bots(4, 0, 0));
        assert!((cost.cores - 0.17).abs() < 1e-9, "{}", cost.cores);
        assert!((cost.mib - 100.0).abs() < 1e-9, "{}", cost.mib);
        // So that many bots fit the measured headroom.
        let r = room(&machine(0.5, 20_000.0), &cost, bots(4, 0, 0), 30, 512.0);
        assert_eq!((r.more, r.limit), (4, Limit::Cpu));
    }

    #[test]
    fn memory_is_what_one_more_bot_adds_once_the_number_has_varied() {
        let mut cost = Cost::default();
        // 200 MiB before the browser started, 250 more with it, and each
        // bot adds 70.
        let with = |bots: f64| Sample {
            own_pss_mib: Some(200.0 + 250.0 + 70.0 * bots),
            ..machine(0.0, 5_000.0)
        };
        cost.learn(
            &Sample {
                own_pss_mib: Some(200.0),
                ..machine(0.0, 20_000.0)
            },
            bots(0, 0, 0),
        );
        // One bot: the browser is charged to it, nothing tells them apart.
        for _ in 0..3 {
            cost.learn(&with(1.0), bots(1, 0, 0));
        }
        assert!((cost.mib - 320.0).abs() < 1e-9, "{}", cost.mib);
        // Two, then five: the slope is the bot alone.
        for _ in 0..3 {
            cost.learn(&with(2.0), bots(2, 0, 0));
        }
        assert!((cost.mib - 70.0).abs() < 1e-6, "{}", cost.mib);
        for _ in 0..3 {
            cost.learn(&with(5.0), bots(5, 0, 0));
        }
        assert!((cost.mib - 70.0).abs() < 1e-6, "{}", cost.mib);
        // 5,000 MiB available, 512 kept: 64 bots' worth.
        let r = room(&with(5.0), &cost, bots(5, 0, 0), 1000, 512.0);
        assert_eq!((r.more, r.limit), (64, Limit::Memory));
    }
}
