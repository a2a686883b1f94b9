//! Typed configuration of the control plane, validated before any port is
//! bound. The CLI fills it from flags and environment; tests fill it directly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use attache_protocol::SessionLimits;
use attache_tenant_policy::{validate_region, validate_tenant_name};

use crate::keys::{KeyProviderConfig, KeyProviderKind};
use crate::objects::ObjectStoreConfig;
use crate::transcription::DefaultTranscription;

#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the SQLite database (by default) and the fleet CA.
    pub data_dir: PathBuf,
    /// `postgres://…` in production; `None` means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Directory holding the fleet CA (`fleet-ca.pem`, `fleet-ca.key`),
    /// shared by every replica (a mounted secret). `None`: the data
    /// directory, where a CA is created on first start.
    pub fleet_ca_dir: Option<PathBuf>,
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    /// Names (DNS or IP) workers use to reach the fleet endpoint; they go in
    /// its server certificate.
    pub fleet_names: Vec<String>,
    /// Origins of sandbox meeting servers this deployment accepts bots for.
    pub sandbox_origins: Vec<String>,
    /// The sandboxes' replicas of the platforms' pages count as those
    /// platforms (`attache dev --platform-replicas`, and the tests).
    pub platform_replicas: bool,
    pub heartbeat_interval: Duration,
    /// How long a worker may be unreachable before its leases are taken back.
    pub worker_grace: Duration,
    pub dispatch_interval: Duration,
    /// With Redis: how long a dispatch entry a replica read may stay
    /// unacknowledged before another replica claims it (the first one
    /// died, or could not place the bot).
    pub dispatch_claim_idle: Duration,
    pub max_body_bytes: usize,
    pub default_limits: SessionLimits,
    /// Per tenant: bots created per minute (sustained) and in one burst.
    pub create_bot_per_minute: u32,
    pub create_bot_burst: u32,
    /// Refuse dev fallbacks (SQLite, self-signed fleet CA in the data dir)
    /// unless `allow_dev_fallbacks` says otherwise.
    pub production: bool,
    pub allow_dev_fallbacks: bool,
    /// Where recordings go for tenants whose home region is not in
    /// `region_object_stores`: a local directory by default, S3 in
    /// production. `None`: only the named regions keep data, and tenants of
    /// any other region cannot create bots (see `docs/governance.md`).
    pub object_store: Option<ObjectStoreConfig>,
    /// Per home region: the one store its tenants' recordings are written
    /// to and read from.
    pub region_object_stores: BTreeMap<String, ObjectStoreConfig>,
    /// Per tenant name: a store of its own, ahead of its region's (a
    /// dedicated tenant needs one).
    pub tenant_object_stores: BTreeMap<String, ObjectStoreConfig>,
    /// How long a bot whose join time has come may wait in the queue for a
    /// worker of its region (or pool) before it fails with `NO_CAPACITY`.
    pub queue_timeout: Duration,
    /// A single-tenant deployment: serves this tenant only, refuses to
    /// create any other, and refuses to start on a database that holds one.
    pub single_tenant: Option<String>,
    /// How long a recording's download URL stays valid.
    pub download_ttl: Duration,
    /// The URL clients reach this control plane at (for download links the
    /// local object store signs); `None`: `http://<http_addr>`.
    pub public_url: Option<String>,
    /// The key file that wraps every tenant's key with the local provider.
    /// `None`: `master.key` in the data directory, created on first start
    /// (a development fallback). Beside another provider: the file that
    /// opens keys it wrapped before a change of provider.
    pub master_key_file: Option<PathBuf>,
    /// Where the local provider keeps the keys erasure destroys (one per
    /// tenant and per bot-key generation); `None`: `erasable-keys/` in the
    /// data directory. Every replica must see the same directory.
    pub erasable_key_dir: Option<PathBuf>,
    /// Which key provider wraps tenant keys (the local key file by
    /// default), and how to reach Vault or KMS.
    pub key_provider: KeyProviderConfig,
    /// The speech-to-text engine of tenants that chose none.
    pub default_transcription: DefaultTranscription,
    /// Webhooks: the first retry's delay (doubling, with jitter, up to
    /// `webhook_retry_max`), how long a delivery is retried, how long an
    /// endpoint may fail before it is disabled, and one attempt's timeout.
    pub webhook_retry_base: Duration,
    pub webhook_retry_max: Duration,
    pub webhook_retry_for: Duration,
    pub webhook_disable_after: Duration,
    pub webhook_timeout: Duration,
    /// Allow webhook URLs on loopback and private networks, and plain
    /// http (development and tests); production sends only to public https.
    pub webhook_allow_private: bool,
    /// How long a console sign-in lasts.
    pub session_ttl: Duration,
    /// How long an invitation can be accepted.
    pub invitation_ttl: Duration,
    /// Allow identity providers on loopback and private networks, and plain
    /// http (development and tests); production signs in over public https.
    pub sso_allow_private: bool,
    /// Answer GraphQL introspection (`__schema`, `__type`).
    pub introspection: bool,
    /// GraphQL requests per minute for each tenant, and the burst above it.
    pub api_per_minute: u32,
    pub api_burst: u32,
    /// The retention sweep: how often each replica tries it (one replica
    /// at a time runs it, by a lease in the database), the most rows one
    /// statement deletes, and the most rows one sweep deletes before it
    /// leaves the rest to the next.
    pub retention_interval: Duration,
    pub retention_batch: u64,
    pub retention_budget: u64,
    /// Redis shared by every replica (fan-out of live events and commands,
    /// dispatch wake-ups, shared rate limits); `None`: in-process only.
    pub redis_url: Option<String>,
    /// Most result frames the ingest writer persists in one transaction
    /// (1: each frame in its own, as before batching).
    pub ingest_batch: usize,
}

impl Config {
    /// Defaults for one machine, everything under `data_dir`.
    pub fn local(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            object_store: Some(ObjectStoreConfig::Local {
                dir: data_dir.join("objects"),
            }),
            region_object_stores: BTreeMap::new(),
            tenant_object_stores: BTreeMap::new(),
            queue_timeout: Duration::from_secs(600),
            single_tenant: None,
            download_ttl: Duration::from_secs(15 * 60),
            public_url: None,
            data_dir,
            database_url: None,
            fleet_ca_dir: None,
            http_addr: "127.0.0.1:8080".parse().expect("addr"),
            quic_addr: "127.0.0.1:8443".parse().expect("addr"),
            fleet_names: vec!["localhost".into(), "127.0.0.1".into()],
            sandbox_origins: Vec::new(),
            platform_replicas: false,
            heartbeat_interval: Duration::from_secs(2),
            worker_grace: Duration::from_secs(15),
            dispatch_interval: Duration::from_secs(1),
            dispatch_claim_idle: Duration::from_secs(30),
            max_body_bytes: 256 * 1024,
            default_limits: SessionLimits::default(),
            create_bot_per_minute: 120,
            create_bot_burst: 60,
            production: false,
            allow_dev_fallbacks: true,
            master_key_file: None,
            erasable_key_dir: None,
            key_provider: KeyProviderConfig::default(),
            default_transcription: DefaultTranscription::None,
            webhook_retry_base: Duration::from_secs(5),
            webhook_retry_max: Duration::from_secs(3600),
            webhook_retry_for: Duration::from_secs(26 * 3600),
            webhook_disable_after: Duration::from_secs(5 * 86_400),
            webhook_timeout: Duration::from_secs(10),
            webhook_allow_private: true,
            session_ttl: Duration::from_secs(12 * 3600),
            invitation_ttl: Duration::from_secs(7 * 86_400),
            sso_allow_private: true,
            introspection: true,
            api_per_minute: 1200,
            api_burst: 300,
            retention_interval: Duration::from_secs(600),
            retention_batch: 1000,
            retention_budget: 200_000,
            redis_url: None,
            ingest_batch: 512,
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("attache.db").display()
            )
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fleet_names.is_empty() {
            return Err(ConfigError::Invalid(
                "fleet names must name at least one host".into(),
            ));
        }
        if self.worker_grace < self.heartbeat_interval * 2 {
            return Err(ConfigError::Invalid(
                "worker grace must be at least two heartbeat intervals".into(),
            ));
        }
        if self.heartbeat_interval.is_zero() || self.dispatch_interval.is_zero() {
            return Err(ConfigError::Invalid("intervals must be positive".into()));
        }
        if self.production && !self.allow_dev_fallbacks && self.database_url.is_none() {
            return Err(ConfigError::DevFallback(
                "SQLite: set --database-url to PostgreSQL, or --allow-dev-fallbacks",
            ));
        }
        if self.production && !self.allow_dev_fallbacks && self.fleet_ca_dir.is_none() {
            return Err(ConfigError::DevFallback(
                "a fleet CA created in the data directory: set --fleet-ca-dir to the managed CA, or --allow-dev-fallbacks",
            ));
        }
        for region in self.region_object_stores.keys() {
            validate_region(region)
                .map_err(|e| ConfigError::Invalid(format!("object store of {region:?}: {e}")))?;
        }
        for tenant in self.tenant_object_stores.keys() {
            validate_tenant_name(tenant)
                .map_err(|e| ConfigError::Invalid(format!("object store of {tenant:?}: {e}")))?;
        }
        if let Some(t) = &self.single_tenant {
            validate_tenant_name(t)
                .map_err(|e| ConfigError::Invalid(format!("single tenant: {e}")))?;
        }
        let local = |s: &ObjectStoreConfig| matches!(s, ObjectStoreConfig::Local { .. });
        if self.production
            && !self.allow_dev_fallbacks
            && (self.object_store.as_ref().is_some_and(local)
                || self.region_object_stores.values().any(local)
                || self.tenant_object_stores.values().any(local))
        {
            return Err(ConfigError::DevFallback(
                "recordings in a local directory: set --s3-bucket (or --s3-bucket-for REGION=BUCKET), or --allow-dev-fallbacks",
            ));
        }
        if self.queue_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "the queue timeout must be positive".into(),
            ));
        }
        if self.production
            && !self.allow_dev_fallbacks
            && self.key_provider.provider == KeyProviderKind::Local
            && self.master_key_file.is_none()
        {
            return Err(ConfigError::DevFallback(
                "a master key created in the data directory: set --master-key-file to the managed key, --key-provider vault or kms, or --allow-dev-fallbacks",
            ));
        }
        self.key_provider
            .validate(self.production, self.allow_dev_fallbacks)?;
        if self.production && self.webhook_allow_private {
            return Err(ConfigError::Invalid(
                "webhooks to private networks are for development only".into(),
            ));
        }
        if self.production && self.sso_allow_private {
            return Err(ConfigError::Invalid(
                "identity providers on private networks are for development only".into(),
            ));
        }
        if self.session_ttl.is_zero() || self.invitation_ttl.is_zero() {
            return Err(ConfigError::Invalid(
                "session and invitation lifetimes must be positive".into(),
            ));
        }
        if self.api_per_minute == 0 || self.create_bot_per_minute == 0 {
            return Err(ConfigError::Invalid("rate limits must be positive".into()));
        }
        if self.webhook_retry_base.is_zero() || self.webhook_retry_max < self.webhook_retry_base {
            return Err(ConfigError::Invalid(
                "webhook retry delays must be positive and the maximum at least the first".into(),
            ));
        }
        if self.retention_interval.is_zero()
            || !(1..=10_000).contains(&self.retention_batch)
            || self.retention_budget < self.retention_batch
        {
            return Err(ConfigError::Invalid(
                "retention: the interval must be positive, a batch 1 to 10000 rows, and a sweep's budget at least one batch".into(),
            ));
        }
        if self.download_ttl.is_zero() || self.download_ttl > Duration::from_secs(7 * 86_400) {
            return Err(ConfigError::Invalid(
                "download URL lifetime must be between 1 second and 7 days".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("production mode refuses a development fallback: {0}")]
    DevFallback(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_sqlite_unless_asked() {
        let mut c = Config::local("/tmp/x");
        c.validate().unwrap();
        c.production = true;
        c.allow_dev_fallbacks = false;
        assert!(matches!(c.validate(), Err(ConfigError::DevFallback(_))));
        c.database_url = Some("postgres://db/attache".into());
        assert!(
            matches!(c.validate(), Err(ConfigError::DevFallback(_))),
            "self-made CA"
        );
        c.fleet_ca_dir = Some("/run/secrets/fleet-ca".into());
        assert!(
            matches!(c.validate(), Err(ConfigError::DevFallback(_))),
            "recordings on local disk"
        );
        c.object_store = Some(s3("recordings"));
        assert!(
            matches!(c.validate(), Err(ConfigError::DevFallback(_))),
            "a master key made on the spot"
        );
        c.master_key_file = Some("/run/secrets/master.key".into());
        assert!(c.validate().is_err(), "webhooks to private networks");
        c.webhook_allow_private = false;
        assert!(
            c.validate().is_err(),
            "identity providers on private networks"
        );
        c.sso_allow_private = false;
        c.validate().unwrap();
    }

    fn s3(bucket: &str) -> ObjectStoreConfig {
        ObjectStoreConfig::S3(crate::objects::S3Config {
            bucket: bucket.into(),
            region: "eu-west-1".into(),
            endpoint: None,
            force_path_style: false,
            access_key: None,
            secret_key: None,
            create_bucket: false,
        })
    }

    fn production() -> Config {
        let mut c = Config::local("/tmp/x");
        c.production = true;
        c.allow_dev_fallbacks = false;
        c.database_url = Some("postgres://db/attache".into());
        c.fleet_ca_dir = Some("/run/secrets/fleet-ca".into());
        c.master_key_file = Some("/run/secrets/master.key".into());
        c.webhook_allow_private = false;
        c.sso_allow_private = false;
        c.object_store = Some(s3("recordings"));
        c
    }

    #[test]
    fn production_refuses_a_local_store_for_any_region_or_tenant() {
        production().validate().unwrap();
        // Only the named regions keep data: no default store is fine.
        let mut c = production();
        c.object_store = None;
        c.region_object_stores.insert("eu-west-1".into(), s3("eu"));
        c.validate().unwrap();
        let local = || ObjectStoreConfig::Local {
            dir: "/tmp/x/objects".into(),
        };
        let mut c = production();
        c.region_object_stores.insert("eu-west-1".into(), local());
        assert!(matches!(c.validate(), Err(ConfigError::DevFallback(_))));
        let mut c = production();
        c.tenant_object_stores.insert("acme".into(), local());
        assert!(matches!(c.validate(), Err(ConfigError::DevFallback(_))));
        c.allow_dev_fallbacks = true;
        c.validate().unwrap();
    }

    #[test]
    fn store_names_and_the_queue_timeout_are_checked() {
        let mut c = Config::local("/tmp/x");
        c.region_object_stores.insert("EU West".into(), s3("eu"));
        assert!(c.validate().is_err());
        let mut c = Config::local("/tmp/x");
        c.tenant_object_stores.insert("Acme Inc".into(), s3("acme"));
        assert!(c.validate().is_err());
        let mut c = Config::local("/tmp/x");
        c.single_tenant = Some("not a name".into());
        assert!(c.validate().is_err());
        let mut c = Config::local("/tmp/x");
        c.queue_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn production_with_vault_or_kms_needs_no_key_file() {
        let mut c = Config::local("/tmp/x");
        c.production = true;
        c.allow_dev_fallbacks = false;
        c.database_url = Some("postgres://db/attache".into());
        c.fleet_ca_dir = Some("/run/secrets/fleet-ca".into());
        c.object_store = Some(ObjectStoreConfig::S3(crate::objects::S3Config {
            bucket: "recordings".into(),
            region: "eu-west-1".into(),
            endpoint: None,
            force_path_style: false,
            access_key: None,
            secret_key: None,
            create_bucket: false,
        }));
        c.webhook_allow_private = false;
        c.sso_allow_private = false;
        assert!(
            matches!(c.validate(), Err(ConfigError::DevFallback(_))),
            "the key file made in the data dir"
        );
        c.key_provider = KeyProviderConfig {
            provider: KeyProviderKind::Kms,
            vault: None,
            kms: Some(crate::keys::KmsConfig::new("alias/attache")),
        };
        c.validate().unwrap();
        let mut vault = crate::keys::VaultConfig::new(
            "http://vault:8200",
            crate::keys::VaultToken::value("t"),
            "attache",
        );
        vault.allow_http = true;
        c.key_provider = KeyProviderConfig {
            provider: KeyProviderKind::Vault,
            vault: Some(vault),
            kms: None,
        };
        assert!(
            matches!(c.validate(), Err(ConfigError::DevFallback(_))),
            "plain http to Vault"
        );
        c.key_provider.vault.as_mut().unwrap().addr = "https://vault:8200".into();
        c.validate().unwrap();
    }

    #[test]
    fn grace_shorter_than_two_heartbeats_is_refused() {
        let mut c = Config::local("/tmp/x");
        c.worker_grace = c.heartbeat_interval;
        assert!(c.validate().is_err());
    }
}
