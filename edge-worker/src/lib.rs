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
mod outbox;
mod session;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use identity::IdentityError;

pub struct EdgeWorker {
    config: Arc<Config>,
    identity: identity::Identity,
}

impl EdgeWorker {
    /// Loads the worker's identity from its data directory, enrolling with
    /// the join token first if there is none yet.
    pub async fn build(config: Config) -> Result<EdgeWorker, IdentityError> {
        config.validate().map_err(IdentityError::Config)?;
        let identity = identity::load_or_enroll(&config).await?;
        Ok(EdgeWorker {
            config: Arc::new(config),
            identity,
        })
    }

    pub fn worker_id(&self) -> &str {
        &self.identity.worker_id
    }

    /// Runs until `shutdown`: reconnects with jittered backoff whenever the
    /// link drops; bots keep running meanwhile and their results wait.
    pub async fn run(self, shutdown: CancellationToken) {
        let browser = browser::BrowserPool::new(self.config.clone());
        link::run(self.config, self.identity, browser.clone(), shutdown).await;
        browser.shutdown().await;
    }
}
