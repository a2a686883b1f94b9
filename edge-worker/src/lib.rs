//! The Attaché edge worker: dials the control plane over QUIC (enrolling
//! once with a join token), takes bot assignments, runs each bot in its own
//! isolated browser context of a shared headless Chromium, and streams every
//! result back until the control plane acknowledges it.
//!
//! One way through: link → session → adapter (the platform's flow) and
//! capture → audio → transcribe → results → spool → outbox on the link.
//!
//! Shutdown ([`EdgeWorker::run`]), in this order:
//! 1. stop taking work: the link leaves its command loop and stops
//!    reconnecting; only acknowledgements are read from then on;
//! 2. bots leave: every session is cancelled, reports LEAVING and clicks
//!    leave;
//! 3. recordings closed: each session closes its page, finishes its
//!    recording and last transcript segments, then spools its final status;
//! 4. outbox flushed: while connected, results go to the control plane
//!    until every session is gone and everything is acknowledged, within
//!    the drain timeout; then the link closes. Unconnected, the worker
//!    waits as long for the sessions alone, and their results stay spooled
//!    for the next run;
//! 5. browser closed;
//! 6. tasks waited: every task the worker started (metrics server, bot
//!    sessions, capture listeners, encoder threads, speech-to-text engines,
//!    browser handler, command reader), for a bounded time. `/metrics` and
//!    `/healthz` answer until this step (`/healthz` says `draining` from
//!    step 1), so probes do not kill a draining worker.

/// Platform adapters: the join flow as data and a pure decision, and the page loop.
mod adapter;
/// The audio pipeline: PCM → 16 kHz mono → Opus → Ogg recording.
pub mod audio;
/// One shared headless Chromium, one isolated context per bot.
mod browser;
/// How many more bots the worker can hold, from what it measures.
mod capacity;
/// Audio capture from the meeting page into the recording and the transcriber.
mod capture;
/// The one wall clock every result is stamped with.
mod clock;
/// Typed configuration of an edge worker.
mod config;
/// The worker's key pair and fleet certificate, enrolment and TLS.
mod identity;
/// The QUIC link to the control plane: hello, heartbeats, commands, drain.
mod link;
/// How busy the worker's machine is, and how many of its pages are stalled.
mod load;
/// Prometheus metrics, and the `/metrics` endpoint.
mod metrics;
/// Delivery of spooled results on the current connection.
mod outbox;
/// What every stage of a bot emits: statuses and other results.
mod results;
/// The table of running bots, and each bot's life from assignment to end.
mod session;
/// Results on disk until the control plane acknowledges them.
mod spool;
/// Live transcription behind one speech-to-text trait.
mod transcribe;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use identity::IdentityError;

/// How long a stopped worker waits for its tasks once the browser is closed.
const TASKS_TIMEOUT: Duration = Duration::from_secs(5);

pub struct EdgeWorker {
    config: Arc<Config>,
    identity: identity::Identity,
    metrics: Arc<metrics::Metrics>,
    metrics_listener: Option<tokio::net::TcpListener>,
}

impl EdgeWorker {
    /// Loads the worker's identity from its data directory, enrolling with
    /// the join token first if there is none yet.
    pub async fn build(config: Config) -> Result<EdgeWorker, IdentityError> {
        config.validate().map_err(IdentityError::Config)?;
        let identity = identity::load_or_enroll(&config).await?;
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| IdentityError::Io(format!("metrics address {addr}"), e))?,
            ),
            None => None,
        };
        Ok(EdgeWorker {
            config: Arc::new(config),
            identity,
            metrics: Arc::new(metrics::Metrics::new()),
            metrics_listener,
        })
    }

    pub fn worker_id(&self) -> &str {
        &self.identity.worker_id
    }

    /// Where `/metrics` and `/healthz` are served, if they are.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Runs until `shutdown`: reconnects with jittered backoff whenever the
    /// link drops; bots keep running meanwhile and their results wait.
    /// Then shuts down in the order the crate's documentation gives.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        // `/metrics` and `/healthz` answer through the drain (a probe that
        // failed then would kill the bots still in calls), until the end.
        let served = CancellationToken::new();
        let serving = served.clone().drop_guard();
        if let Some(listener) = self.metrics_listener {
            metrics::serve(
                self.metrics.clone(),
                listener,
                shutdown.clone(),
                served,
                &tasks,
            );
        }
        let Some(spool) = open_spool(&self.config, &self.metrics, &tasks).await else {
            return;
        };
        let sampling = CancellationToken::new();
        let load = load::Load::start(&tasks, sampling.clone());
        let deps = session::BotDeps::new(self.config, self.metrics, spool, tasks.clone(), load);
        let browser = deps.browser.clone();
        if deps.config.browser_at_start {
            let warming = browser.clone();
            let (joining, spares) = (deps.joining.clone(), deps.config.max_joining as usize);
            tasks.spawn(async move { warming.warm(joining, spares).await });
        }
        link::run(self.identity, deps, shutdown).await;
        sampling.cancel();
        browser.shutdown().await;
        drop(serving);
        tasks.close();
        if tokio::time::timeout(TASKS_TIMEOUT, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(tasks = tasks.len(), "tasks still running at exit");
        }
    }
}

/// Opens the result spool and takes over what a previous run left in it.
async fn open_spool(
    config: &Config,
    metrics: &metrics::Metrics,
    tasks: &TaskTracker,
) -> Option<spool::Spool> {
    let dir = config.data_dir.join("spool");
    let opened = tasks
        .spawn_blocking(move || {
            let spool = spool::Spool::open(&dir)?;
            let recovered = spool.recover();
            Ok::<_, std::io::Error>((spool, recovered))
        })
        .await
        .expect("opening the spool does not panic");
    let (spool, recovered) = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the result spool; the worker cannot run bots");
            return None;
        }
    };
    match recovered {
        Ok(r) if r.leases > 0 => {
            tracing::warn!(
                leases = r.leases,
                frames = r.frames,
                interrupted = r.interrupted,
                "results of a previous run recovered from the spool; they are delivered now"
            );
            metrics.spool_recovered.inc_by(r.frames as u64);
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot read the result spool"),
    }
    Some(spool)
}
