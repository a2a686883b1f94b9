//! What a process group costs, read from `/proc`: proportional set size
//! (PSS: shared pages counted once) and CPU time, split by kind of
//! process (the worker, Chromium's browser process, and each `--type=` of
//! Chromium helper).

use std::collections::BTreeMap;

/// One kind of process in the group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub procs: usize,
    pub pss_kib: u64,
    /// User and system time, in clock ticks (`getconf CLK_TCK`, 100 here).
    pub cpu_ticks: u64,
}

/// The group's usage by kind of process.
#[derive(Debug, Clone, Default)]
pub struct GroupUsage {
    pub kinds: BTreeMap<String, Usage>,
}

impl GroupUsage {
    pub fn total(&self) -> Usage {
        self.kinds.values().fold(Usage::default(), |a, u| Usage {
            procs: a.procs + u.procs,
            pss_kib: a.pss_kib + u.pss_kib,
            cpu_ticks: a.cpu_ticks + u.cpu_ticks,
        })
    }

    /// `kind PSS/processes`, for every kind.
    pub fn pss_split(&self) -> String {
        let split: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, u)| format!("{k} {:.0} MiB/{}", u.pss_kib as f64 / 1024.0, u.procs))
            .collect();
        split.join(", ")
    }

    /// CPU used by each kind since `before`, in cores over `secs`.
    pub fn cpu_split_since(&self, before: &GroupUsage, secs: f64) -> String {
        let split: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, u)| {
                let was = before.kinds.get(k).map_or(0, |b| b.cpu_ticks);
                format!(
                    "{k} {:.3}",
                    ticks_to_cores(u.cpu_ticks.saturating_sub(was), secs)
                )
            })
            .collect();
        split.join(", ")
    }
}

/// Clock ticks over `secs` seconds, as cores.
pub fn ticks_to_cores(ticks: u64, secs: f64) -> f64 {
    ticks as f64 / 100.0 / secs
}

/// Busy and total ticks of the whole machine (`/proc/stat`'s first line).
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU ticks of every thread in the processes of group `pgid`, summed by
/// kind of process and thread name (`renderer/CrRendererMain`, …): where a
/// process's time goes, without a profiler. Names are the kernel's (15
/// characters at most).
pub fn thread_ticks(pgid: i32) -> BTreeMap<String, u64> {
    let mut by_thread = BTreeMap::new();
    for (pid, kind) in group_pids(pgid) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = &stat[open + 1..close];
            // Numbered pool threads are one kind of thread.
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
            let after: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let field = |i: usize| {
                after
                    .get(i)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            *by_thread.entry(format!("{kind}/{name}")).or_default() += field(11) + field(12);
        }
    }
    by_thread
}

/// The threads that used most CPU between two readings, as cores over
/// `secs`: `name cores` for the `top` of them.
pub fn top_threads(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    secs: f64,
    top: usize,
) -> String {
    let mut used: Vec<(&String, u64)> = after
        .iter()
        .map(|(k, v)| (k, v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect();
    used.sort_by_key(|u| std::cmp::Reverse(u.1));
    let split: Vec<String> = used
        .iter()
        .take(top)
        .map(|(k, v)| format!("{k} {:.3}", ticks_to_cores(*v, secs)))
        .collect();
    split.join(", ")
}

/// The processes of group `pgid`, with their kind.
fn group_pids(pgid: i32) -> Vec<(i32, String)> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let pgrp = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<i32>().ok());
        if pgrp == Some(pgid) {
            pids.push((pid, process_kind(pid)));
        }
    }
    pids
}

/// The worker, its speech-to-text engine, Chromium's browser process, or a
/// helper's `--type=`.
fn process_kind(pid: i32) -> String {
    let cmdline =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
            .into_owned();
    // Chromium rewrites its command line into one space-separated string;
    // the worker's own names the chromium binary as a flag.
    let mut args = cmdline.split(['\0', ' ']);
    let program = args.next().unwrap_or_default();
    match args.find_map(|a| a.strip_prefix("--type=")) {
        Some(t) => t.to_string(),
        None if program.ends_with("attache") => "worker".to_string(),
        None if cmdline.contains("attache_stt.py") => "speech-to-text".to_string(),
        None => "browser".to_string(),
    }
}

/// Every process whose process group is `pgid`.
pub fn group_usage(pgid: i32) -> GroupUsage {
    let mut usage = GroupUsage::default();
    for (pid, kind) in group_pids(pgid) {
        let (Ok(stat), Ok(rollup)) = (
            std::fs::read_to_string(format!("/proc/{pid}/stat")),
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")),
        ) else {
            continue;
        };
        // Fields after the command name: state ppid pgrp ... utime (12th)
        // stime (13th).
        let after: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
            .split_whitespace()
            .collect();
        let field = |i: usize| {
            after
                .get(i)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let pss = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let u = usage.kinds.entry(kind).or_default();
        u.procs += 1;
        u.pss_kib += pss;
        u.cpu_ticks += field(11) + field(12);
    }
    usage
}
