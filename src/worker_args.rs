//! `attache edge-worker`'s flags, and the drain timeout's format.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use attache_edge_worker::Config as WorkerConfig;
use clap::Args;

#[derive(Args)]
pub(crate) struct EdgeWorkerArgs {
    /// The control plane's fleet endpoint, `host:port`.
    #[arg(long, env = "ATTACHE_CONTROL_PLANE", default_value = "127.0.0.1:8443")]
    pub control_plane: String,
    #[arg(long, env = "ATTACHE_SERVER_NAME")]
    pub server_name: Option<String>,
    #[arg(
        long,
        env = "ATTACHE_WORKER_DATA_DIR",
        default_value = "./attache-worker"
    )]
    pub data_dir: PathBuf,
    /// Join token, needed until the worker has enrolled.
    #[arg(long, env = "ATTACHE_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// A file holding the join token (a mounted secret), instead of
    /// --join-token; a missing file is no token (an enrolled worker needs
    /// none).
    #[arg(long, env = "ATTACHE_JOIN_TOKEN_FILE")]
    pub join_token_file: Option<PathBuf>,
    /// Most bots at once. The worker measures how many more it can hold
    /// (CPU headroom, memory, pages loading) and takes at most this many.
    #[arg(long, env = "ATTACHE_CAPACITY", default_value_t = 4)]
    pub capacity: u32,
    /// Take --capacity bots whatever the machine measures.
    #[arg(long, env = "ATTACHE_FIXED_CAPACITY")]
    pub fixed_capacity: bool,
    /// Memory the worker leaves to the machine when it works out how many
    /// more bots it can hold.
    #[arg(long, env = "ATTACHE_MEMORY_RESERVE_MIB", default_value_t = 512)]
    pub memory_reserve_mib: u64,
    /// Most meeting pages loading at once (default: one per CPU, at least
    /// two); other bots wait their turn in JOINING, so that a join storm
    /// does not starve bots already in calls.
    #[arg(long, env = "ATTACHE_MAX_JOINING")]
    pub max_joining: Option<u32>,
    #[arg(long, env = "ATTACHE_CHROMIUM", default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
    /// Start Chromium with the first bot rather than with the worker (it
    /// holds a few hundred MiB while no bot runs; started ahead, the first
    /// bots of a burst do not wait for it).
    #[arg(long, env = "ATTACHE_BROWSER_ON_DEMAND")]
    pub browser_on_demand: bool,
    /// One more Chromium flag, without its leading dashes
    /// (`--chromium-arg renderer-process-limit=8`); repeatable, or
    /// space-separated in the environment variable.
    #[arg(
        long = "chromium-arg",
        env = "ATTACHE_CHROMIUM_ARGS",
        value_delimiter = ' '
    )]
    pub chromium_args: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "ATTACHE_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Python with faster-whisper, for the local speech-to-text engine.
    #[arg(long, env = "ATTACHE_STT_PYTHON")]
    pub stt_python: Option<PathBuf>,
    /// On SIGTERM (or the operator's drainWorker) the worker takes no new
    /// bots and hands back those not yet in a call; bots in calls go on
    /// until they end or this passes (`90s`, `30m`, `1h`; seconds if no
    /// unit), then leave with WORKER_SHUTDOWN. Then the worker exits 0.
    #[arg(long, env = "ATTACHE_DRAIN_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

/// `90`, `90s`, `30m`, `1h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: a number of seconds, or with s, m or h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

impl EdgeWorkerArgs {
    pub(crate) fn config(&self) -> anyhow::Result<WorkerConfig> {
        let mut c = WorkerConfig::new(&self.control_plane, &self.data_dir);
        c.server_name = self.server_name.clone();
        c.join_token = crate::secret_args::secret(
            self.join_token.as_deref(),
            self.join_token_file.as_deref(),
            "join-token",
            true,
        )?;
        c.capacity = self.capacity;
        c.fixed_capacity = self.fixed_capacity;
        c.memory_reserve_mib = self.memory_reserve_mib;
        if let Some(n) = self.max_joining {
            c.max_joining = n;
        }
        c.chromium = self.chromium.clone();
        c.browser_at_start = !self.browser_on_demand;
        c.chromium_args = self.chromium_args.clone();
        c.metrics_addr = self.metrics_addr;
        c.stt_python = self.stt_python.clone();
        c.drain_timeout = self.drain_timeout;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_timeouts_read_with_or_without_a_unit() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
    }
}
