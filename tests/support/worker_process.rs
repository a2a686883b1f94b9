//! An `attache edge-worker` process the harness started: its Chromium
//! renderers, and SIGTERM or SIGKILL to it.

use std::process::{Child, Command};
use std::time::Duration;

pub struct WorkerProcess {
    pub(super) child: Child,
    pub(super) killed: bool,
}

impl WorkerProcess {
    /// Chromium renderer processes under this worker, found by walking
    /// `/proc` for its descendants.
    pub fn renderers(&self) -> std::collections::BTreeSet<i32> {
        let root = self.child.id() as i32;
        let mut parent = std::collections::HashMap::new();
        let mut renderer = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid …: comm may hold spaces, so read after ')'.
            let Some(ppid) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            parent.insert(pid, ppid);
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("--type=renderer") {
                renderer.insert(pid);
            }
        }
        let under_root = |mut p: i32| {
            for _ in 0..64 {
                match parent.get(&p) {
                    Some(&pp) if pp == root => return true,
                    Some(&pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        };
        renderer.into_iter().filter(|&p| under_root(p)).collect()
    }

    /// Its process group (it leads its own).
    pub fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM to the worker itself, as an operator or Kubernetes sends it:
    /// the worker shuts its bots and its Chromium down on its own. Returns
    /// its exit status, or `None` if it still runs after `within`.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-s", "TERM"])
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.killed = true;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGKILL to the whole process group: no goodbye, no cleanup.
    pub fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{pgid}"))
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
