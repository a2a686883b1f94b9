//! The Attaché control plane: the GraphQL API, API keys, dispatch of bots to
//! edge workers over the QUIC fleet link, and the stored truth of every bot.
//!
//! Build it with [`ControlPlane::build`] (binds its ports, opens and migrates
//! the database, loads or creates the fleet CA), then [`ControlPlane::run`]
//! until the shutdown token fires. Where each kind of change goes is in
//! `docs/architecture.md`.

// The way in: HTTP, GraphQL and the console, all through one guard.
mod access;
mod api;
mod auth;
mod console;
mod credentials;

// The lifecycle service, the only code that moves a bot, and what it tells.
mod bots;
mod bus;
mod events;
mod webhooks;

// Bots to workers and back.
mod dispatch;
mod fleet;
mod links;
mod recordings;
mod transcription;

// Governance: what expires, and its deletion.
mod retention;
// Erasure of a bot, a participant or a tenant, with signed certificates.
mod erasure;

// Stored truth, keys and objects.
mod audit;
mod entity;
mod keys;
mod objects;
mod residency;
mod sealing;
mod store;

// Start-up, operator commands, telemetry.
mod admin;
mod config;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admin::{Admin, AdminError, CreatedTenant, LeaseRecord, MAX_TOKEN_USES, WorkerToken};
pub use api::sdl;
pub use audit::{Entry as AuditEntry, Verdict as AuditVerdict};
pub use config::{Config, ConfigError};
pub use entity::names::Isolation;
pub use erasure::{CertificateSigner, VerifyError, verify as verify_erasure_certificate};
pub use keys::{
    KeyError, KeyProviderConfig, KeyProviderKind, KmsConfig, Rotation, RotationReport, RowChange,
    VaultConfig, VaultToken,
};
pub use objects::{ObjectError, ObjectStoreConfig, Objects, S3Config};
pub use retention::{SweepError, SweepReport};
pub use sealing::backfill::SealReport;
pub use store::Store;
pub use transcription::DefaultTranscription;

/// Creates a fleet CA in `dir` (or loads the one there) and returns its
/// fingerprint: how an operator makes the CA `--fleet-ca-dir` points to.
pub fn init_fleet_ca(dir: &std::path::Path) -> Result<String, fleet::CaError> {
    Ok(fleet::FleetCa::load_or_create(dir)?.fingerprint())
}

/// Everything the request handlers and background loops share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub events: events::EventHub,
    /// What crosses replicas (Redis), or this process alone.
    pub bus: bus::Bus,
    pub metrics: metrics::Metrics,
    /// Who is connected to this process, and how to send them commands.
    pub links: links::Registry,
    /// The lifecycle service: the only way a bot moves.
    pub bots: bots::Bots,
    /// Where result frames are persisted, in batches.
    pub results: fleet::ResultWriter,
    pub dispatch_wakeup: Arc<Notify>,
    /// Rung when an erasure is asked for.
    pub erasure_wakeup: Arc<Notify>,
    pub ca: Arc<fleet::FleetCa>,
    /// Every object store, and which one holds each bot's recordings.
    pub objects: residency::ObjectStores,
    pub keys: keys::Keys,
    pub policies: access::Policies,
    pub audit: audit::AuditLog,
    /// For calls to identity providers.
    pub oidc_http: reqwest::Client,
    /// Base of URLs handed to clients (download links).
    pub public_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("fleet CA: {0}")]
    Ca(#[from] fleet::CaError),
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("fleet TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Objects(#[from] objects::ObjectError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Policy(#[from] attache_tenant_policy::PolicyError),
    #[error("this deployment serves only tenant {only}, but its database holds others: {others}")]
    NotSingleTenant { only: String, others: String },
}

pub struct ControlPlane {
    state: AppState,
    http: tokio::net::TcpListener,
    quic: quinn::Endpoint,
    bus_driver: Option<bus::Driver>,
}

impl ControlPlane {
    pub async fn build(config: Config) -> Result<ControlPlane, BuildError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| BuildError::DataDir(config.data_dir.display().to_string(), e))?;
        let store = Store::open(&config.database_url()).await?;
        store.migrate().await?;
        if let Some(only) = &config.single_tenant {
            let others = store.other_tenants(only).await?;
            if !others.is_empty() {
                return Err(BuildError::NotSingleTenant {
                    only: only.clone(),
                    others: others.join(", "),
                });
            }
        }
        let ca = Arc::new(fleet::FleetCa::for_config(&config)?);
        let http = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|e| BuildError::Bind(config.http_addr, e))?;
        let quic = fleet::endpoint(&config, &ca)?;
        // The platform key comes first: a key provider that cannot be
        // reached or refuses this process stops the start here.
        let keys = keys::Keys::new(keys::Keyring::open(&config).await?, store.clone());
        let link_key = keys
            .derived("attache/download-links")
            .await
            .map_err(keys::KeyError::from)?;
        let objects = residency::ObjectStores::open(&config, link_key).await?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", http.local_addr().expect("bound listener")));
        let metrics = metrics::Metrics::new();
        let (bus, bus_driver) = match &config.redis_url {
            Some(url) => {
                // Replicas of one deployment share its fleet CA.
                let deployment: String = ca
                    .fingerprint()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(16)
                    .collect();
                let (bus, driver) = bus::Bus::redis(
                    url,
                    &deployment,
                    config.dispatch_claim_idle,
                    metrics.clone(),
                )
                .map_err(|e| BuildError::Config(ConfigError::Invalid(e)))?;
                (bus, Some(driver))
            }
            None => (bus::Bus::local(metrics.clone()), None),
        };
        let events = events::EventHub::new(bus.clone());
        let links = links::Registry::default();
        let dispatch_wakeup = Arc::new(Notify::new());
        let bots = bots::Bots::new(
            store.clone(),
            events.clone(),
            metrics.clone(),
            links.clone(),
            dispatch_wakeup.clone(),
        );
        // PostgreSQL takes several writing transactions at once; SQLite one.
        let lanes = if store.is_postgres() { 4 } else { 1 };
        let results =
            fleet::ResultWriter::start(store.clone(), lanes, config.ingest_batch, metrics.clone());
        let state = AppState {
            results,
            policies: access::Policies::new(
                store.clone(),
                credentials::Credentials::new(&store, &bus, metrics.clone()),
            )
            .await?,
            audit: audit::AuditLog::new(store.clone()),
            oidc_http: console::oidc::http_client(),
            objects,
            keys,
            public_url,
            config: Arc::new(config),
            store,
            events,
            bus,
            metrics,
            links,
            bots,
            dispatch_wakeup,
            erasure_wakeup: Arc::new(Notify::new()),
            ca,
        };
        Ok(ControlPlane {
            state,
            http,
            quic,
            bus_driver,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener")
    }

    pub fn quic_addr(&self) -> SocketAddr {
        self.quic.local_addr().expect("bound endpoint")
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.state.clone())
    }

    /// Serves until `shutdown`, then drains in this order:
    ///
    /// 1. HTTP stops accepting and finishes the requests in flight;
    /// 2. the fleet endpoint closes every worker link (workers keep their
    ///    bots and results, and reconnect to another replica);
    /// 3. the background loops (dispatch, the fleet sweep, webhook delivery,
    ///    unclosed recordings, the retention sweep, erasure jobs, sealing rows older
    ///    versions stored in the clear) end after their current pass or
    ///    batch;
    /// 4. every tracked task (links, result streams) is awaited;
    /// 5. the QUIC endpoint goes idle.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let tasks = TaskTracker::new();
        let ControlPlane {
            state,
            http,
            quic,
            bus_driver,
        } = self;
        if let Some(d) = bus_driver {
            tasks.spawn(d.run(state.clone(), shutdown.clone()));
        }
        tasks.spawn(dispatch::run(state.clone(), shutdown.clone()));
        tasks.spawn(fleet::sweep(state.clone(), shutdown.clone()));
        tasks.spawn(recordings::close_orphans(state.clone(), shutdown.clone()));
        tasks.spawn(webhooks::deliver(state.clone(), shutdown.clone()));
        tasks.spawn(retention::run(state.clone(), shutdown.clone()));
        tasks.spawn(erasure::run(state.clone(), shutdown.clone()));
        tasks.spawn(sealing::backfill::on_start(state.clone(), shutdown.clone()));
        tasks.spawn(fleet::serve(
            state.clone(),
            quic.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
        let app = api::router(state.clone(), shutdown.clone());
        let served = axum::serve(http, app)
            .with_graceful_shutdown({
                let s = shutdown.clone();
                async move { s.cancelled().await }
            })
            .await;
        shutdown.cancel();
        quic.close(0u32.into(), b"control plane shutting down");
        tasks.close();
        tasks.wait().await;
        quic.wait_idle().await;
        served
    }
}
