//! Typed configuration of an edge worker.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` of the control plane's fleet (QUIC) endpoint.
    pub control_plane: String,
    /// Name to verify in the control plane's certificate; defaults to the
    /// host part of `control_plane`.
    pub server_name: Option<String>,
    /// Holds the worker's key, certificate and the fleet CA after enrolling.
    pub data_dir: PathBuf,
    /// One-time join token (`attache admin worker-token`), needed only until
    /// the worker has enrolled.
    pub join_token: Option<String>,
    /// Most bots this worker runs at once. Unless `fixed_capacity`, the
    /// worker takes fewer when it measures that it cannot hold more (CPU,
    /// memory, pages loading): this is the upper bound.
    pub capacity: u32,
    /// Advertise `capacity` as it is, without measuring (a host whose
    /// other work is accounted for elsewhere).
    pub fixed_capacity: bool,
    /// Memory left to the machine when the worker works out its room.
    pub memory_reserve_mib: u64,
    /// Most meeting pages loading at once; other bots wait their turn
    /// (in JOINING) so that a join storm does not starve bots in calls.
    pub max_joining: u32,
    pub chromium: PathBuf,
    /// Start Chromium with the worker, so that the first bots of a burst
    /// do not wait for it; otherwise with the first bot.
    pub browser_at_start: bool,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Extra Chromium flags (without leading dashes).
    pub chromium_args: Vec<String>,
    /// Where to serve `/metrics`; off when unset.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Python with faster-whisper for the local speech-to-text engine;
    /// `None`: `$ATTACHE_STT_PYTHON`, else `~/.cache/attache/stt-venv`.
    pub stt_python: Option<PathBuf>,
    /// How long a draining worker (SIGTERM, or the operator's
    /// `drainWorker`) lets bots in calls go on before they leave with
    /// WORKER_SHUTDOWN.
    pub drain_timeout: Duration,
}

impl Config {
    pub fn new(control_plane: impl Into<String>, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            control_plane: control_plane.into(),
            server_name: None,
            data_dir: data_dir.into(),
            join_token: None,
            capacity: 4,
            fixed_capacity: false,
            memory_reserve_mib: 512,
            max_joining: default_max_joining(),
            chromium: PathBuf::from("/usr/bin/chromium"),
            browser_at_start: true,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            chromium_args: Vec::new(),
            metrics_addr: None,
            stt_python: None,
            drain_timeout: Duration::from_secs(3600),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.capacity == 0 {
            return Err("capacity must be at least 1".into());
        }
        if self.max_joining == 0 {
            return Err("max-joining must be at least 1".into());
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return Err("reconnect backoff bounds are inconsistent".into());
        }
        if self.host().is_empty() {
            return Err(format!(
                "control plane address {:?} has no host",
                self.control_plane
            ));
        }
        Ok(())
    }

    pub(crate) fn host(&self) -> String {
        let cp = self.control_plane.trim();
        match cp.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            None => cp.to_string(),
        }
    }

    pub(crate) fn server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(|| self.host())
    }
}

/// Pages loading at once by default: one per CPU, and at least two.
pub fn default_max_joining() -> u32 {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get() as u32)
        .max(2)
}
