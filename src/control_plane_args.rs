//! `attache control-plane`: the flags of one replica and the config they
//! make.

use std::net::SocketAddr;
use std::time::Duration;

use attache_control_plane::{Config as CpConfig, DefaultTranscription};
use clap::Args;

use crate::cli::{DeploymentArgs, ObjectStoreArgs};

#[derive(Args)]
pub(crate) struct ControlPlaneArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,
    #[arg(long, env = "ATTACHE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    #[arg(long, env = "ATTACHE_QUIC_ADDR", default_value = "127.0.0.1:8443")]
    quic_addr: SocketAddr,
    /// Names workers dial (DNS names or IPs), comma-separated.
    #[arg(
        long,
        env = "ATTACHE_FLEET_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    fleet_names: Vec<String>,
    /// Sandbox meeting origins to accept bots for, comma-separated.
    #[arg(long, env = "ATTACHE_SANDBOX_ORIGINS", value_delimiter = ',')]
    sandbox_origins: Vec<String>,
    #[arg(long, env = "ATTACHE_HEARTBEAT_MS", default_value_t = 2000)]
    heartbeat_ms: u64,
    #[arg(long, env = "ATTACHE_WORKER_GRACE_MS", default_value_t = 15000)]
    worker_grace_ms: u64,
    #[arg(long, env = "ATTACHE_DISPATCH_INTERVAL_MS", default_value_t = 1000)]
    dispatch_interval_ms: u64,
    #[arg(long, env = "ATTACHE_LOBBY_TIMEOUT_MS")]
    lobby_timeout_ms: Option<u64>,
    /// Refuse development fallbacks (SQLite, CA in the data dir).
    #[arg(long, env = "ATTACHE_PRODUCTION")]
    production: bool,
    #[arg(long, env = "ATTACHE_ALLOW_DEV_FALLBACKS")]
    allow_dev_fallbacks: bool,
    #[command(flatten)]
    objects: ObjectStoreArgs,
    /// How long a bot whose join time has come waits for a worker of its
    /// region (or pool) before it fails with NO_CAPACITY.
    #[arg(long, env = "ATTACHE_QUEUE_TIMEOUT_SECONDS", default_value_t = 600)]
    queue_timeout_seconds: u64,
    /// The URL clients reach this control plane at, for download links.
    #[arg(long, env = "ATTACHE_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long a recording's download URL stays valid.
    #[arg(long, env = "ATTACHE_DOWNLOAD_TTL_SECONDS", default_value_t = 900)]
    download_ttl_seconds: u64,
    /// Speech-to-text for tenants with no settings of their own: `none`, or
    /// `local` (the engine on each worker).
    #[arg(long, env = "ATTACHE_DEFAULT_TRANSCRIPTION", default_value = "none", value_parser = ["none", "local"])]
    default_transcription: String,
    /// Allow webhooks to plain http and private addresses (development).
    #[arg(long, env = "ATTACHE_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Allow identity providers on plain http and private addresses
    /// (development).
    #[arg(long, env = "ATTACHE_SSO_ALLOW_PRIVATE")]
    sso_allow_private: bool,
    /// Answer GraphQL introspection; by default on, and off with
    /// --production.
    #[arg(long, env = "ATTACHE_INTROSPECTION")]
    introspection: Option<bool>,
    /// How long a console sign-in lasts.
    #[arg(long, env = "ATTACHE_SESSION_TTL_MINUTES", default_value_t = 720)]
    session_ttl_minutes: u64,
    /// GraphQL requests per minute per tenant.
    #[arg(long, env = "ATTACHE_API_PER_MINUTE", default_value_t = 1200)]
    api_per_minute: u32,
    /// How often each replica tries the retention sweep (one replica runs
    /// it at a time).
    #[arg(
        long,
        env = "ATTACHE_RETENTION_INTERVAL_SECONDS",
        default_value_t = 600
    )]
    retention_interval_seconds: u64,
    /// Most rows one statement of the retention sweep deletes.
    #[arg(long, env = "ATTACHE_RETENTION_BATCH", default_value_t = 1000)]
    retention_batch: u64,
    /// Redis (`redis://:password@host:6379/0`, or `rediss://` for TLS),
    /// shared by every replica: live events and commands reach the replica
    /// that needs them at once, dispatch wakes on every replica, and rate
    /// limits hold across replicas. Unset: this replica alone (one box).
    /// PostgreSQL stays the truth; with Redis down, replicas serve from it.
    #[arg(long, env = "ATTACHE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// A file holding the Redis URL (a mounted secret), instead of
    /// --redis-url.
    #[arg(long, env = "ATTACHE_REDIS_URL_FILE")]
    redis_url_file: Option<std::path::PathBuf>,
}

impl ControlPlaneArgs {
    pub(crate) fn config(self) -> anyhow::Result<CpConfig> {
        let mut c = self.deployment.config()?;
        self.objects.apply(&mut c);
        c.queue_timeout = Duration::from_secs(self.queue_timeout_seconds);
        c.http_addr = self.http_addr;
        c.quic_addr = self.quic_addr;
        c.fleet_names = self.fleet_names;
        c.sandbox_origins = self.sandbox_origins;
        c.heartbeat_interval = Duration::from_millis(self.heartbeat_ms);
        c.worker_grace = Duration::from_millis(self.worker_grace_ms);
        c.dispatch_interval = Duration::from_millis(self.dispatch_interval_ms);
        if let Some(l) = self.lobby_timeout_ms {
            c.default_limits.lobby_timeout_ms = l;
        }
        c.production = self.production;
        c.allow_dev_fallbacks = self.allow_dev_fallbacks || !self.production;
        c.public_url = self.public_url;
        c.download_ttl = Duration::from_secs(self.download_ttl_seconds);
        c.sso_allow_private = self.sso_allow_private;
        c.introspection = self.introspection.unwrap_or(!self.production);
        c.session_ttl = Duration::from_secs(self.session_ttl_minutes * 60);
        c.api_per_minute = self.api_per_minute;
        c.retention_interval = Duration::from_secs(self.retention_interval_seconds);
        c.retention_batch = self.retention_batch;
        c.default_transcription = if self.default_transcription == "local" {
            DefaultTranscription::Local
        } else {
            DefaultTranscription::None
        };
        c.webhook_allow_private = self.webhook_allow_private;
        c.redis_url = crate::secret_args::secret(
            self.redis_url.as_deref(),
            self.redis_url_file.as_deref(),
            "redis-url",
            false,
        )?;
        Ok(c)
    }
}
