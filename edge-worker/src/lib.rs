//! The Attaché edge worker: dials the control plane over QUIC (enrolling
//! once with a join token), takes bot assignments, runs each bot in its own
//! isolated browser context of a shared headless Chromium, and streams every
//! status change back until the control plane acknowledges it.

mod adapter;
pub mod audio;
mod browser;
mod config;
mod identity;
mod link;
mod metrics;
mod outbox;
mod session;
mod spool;
mod transcribe;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use identity::IdentityError;

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

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Runs until `shutdown`: reconnects with jittered backoff whenever the
    /// link drops; bots keep running meanwhile and their results wait.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Some(listener) = self.metrics_listener {
            let m = self.metrics.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let m = m.clone();
                    async move { m.render() }
                }),
            );
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
        }
        let spool = match spool::Spool::open(&self.config.data_dir.join("spool")) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the result spool; the worker cannot run bots");
                return;
            }
        };
        match spool.recover() {
            Ok(r) if r.leases > 0 => {
                tracing::warn!(
                    leases = r.leases,
                    frames = r.frames,
                    interrupted = r.interrupted,
                    "results of a previous run recovered from the spool; they are delivered now"
                );
                self.metrics.spool_recovered.inc_by(r.frames as u64);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the result spool"),
        }
        let browser = browser::BrowserPool::new(self.config.clone(), self.metrics.clone());
        link::run(
            self.config,
            self.identity,
            browser.clone(),
            spool,
            self.metrics,
            shutdown,
        )
        .await;
        browser.shutdown().await;
    }
}
