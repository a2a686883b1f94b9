//! Operator actions that precede any API key: creating tenants and issuing
//! worker join tokens; and the deployment's own chores: the audit chain,
//! retention defaults and a retention sweep on demand. Used by `attache
//! admin …` (straight on the database) and by `attache dev` and tests (on a
//! built control plane).

use std::sync::Arc;
use std::time::Duration;

use attache_tenant_policy::{
    DataClass, Role, validate_pool, validate_region, validate_retention_days, validate_tenant_name,
};

use crate::auth::{hash_secret, mint_api_key, random_hex};
use crate::config::Config;
use crate::entity::names::{Isolation, Stored};
use crate::entity::{join_token, tenant};
use crate::fleet::FleetCa;
use crate::residency::ObjectStores;
use crate::retention::{SweepError, SweepReport, Sweeper};
use crate::store::{Store, now};
use crate::{AppState, BuildError};

/// The most workers one join token may enroll.
pub const MAX_TOKEN_USES: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("a tenant named {0:?} already exists")]
    Exists(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectError),
    #[error("retention sweep: {0}")]
    Sweep(#[from] SweepError),
}

#[derive(Clone)]
pub struct Admin {
    store: Store,
    ca: Arc<FleetCa>,
    keys: crate::keys::Keys,
    /// A single-tenant deployment's one tenant.
    single_tenant: Option<String>,
    objects: ObjectsAt,
    retention_batch: u64,
    retention_budget: u64,
}

/// The object stores: open already (a running control plane's), or to be
/// opened, from the deployment's config, by the commands that need them.
#[derive(Clone)]
enum ObjectsAt {
    Open(ObjectStores),
    Config(Box<Config>),
}

#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub tenant_id: String,
    pub name: String,
    pub region: String,
    pub isolation: Isolation,
    /// A dedicated tenant's worker pool.
    pub pool: Option<String>,
    /// Shown once; only its hash is stored.
    pub api_key: String,
}

/// One lease a bot was granted: which worker ran it, for how long.
#[derive(Debug, Clone)]
pub struct LeaseRecord {
    pub generation: i64,
    pub worker_id: String,
    /// The worker's pool; `None`: a shared worker.
    pub worker_pool: Option<String>,
    pub granted_at: chrono::DateTime<chrono::Utc>,
    pub released_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone)]
pub struct WorkerToken {
    /// `ajt_<id>_<secret>_<fleet CA fingerprint>`; enrolls `uses`
    /// workers at most.
    pub token: String,
    pub uses: u32,
    pub region: String,
    /// The dedicated pool the worker joins; `None`: shared.
    pub pool: Option<String>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Why a single-tenant deployment refuses to create a tenant, if it does.
pub(crate) fn single_tenant_refuses(single: Option<&str>, name: &str) -> Option<String> {
    match single {
        Some(only) if only != name => Some(format!(
            "this deployment serves only tenant {only}; it creates no other tenant"
        )),
        _ => None,
    }
}

impl Admin {
    pub(crate) fn new(state: AppState) -> Admin {
        Admin {
            single_tenant: state.config.single_tenant.clone(),
            store: state.store,
            ca: state.ca,
            keys: state.keys,
            objects: ObjectsAt::Open(state.objects),
            retention_batch: state.config.retention_batch,
            retention_budget: state.config.retention_budget,
        }
    }

    /// Opens the database and fleet CA of a deployment without serving.
    pub async fn open(config: &Config) -> Result<Admin, BuildError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| BuildError::DataDir(config.data_dir.display().to_string(), e))?;
        let store = Store::open(&config.database_url()).await?;
        store.migrate().await?;
        let ca = Arc::new(FleetCa::for_config(config)?);
        let keys = crate::keys::Keys::new(crate::keys::Keyring::open(config).await?, store.clone());
        Ok(Admin {
            store,
            ca,
            keys,
            single_tenant: config.single_tenant.clone(),
            objects: ObjectsAt::Config(Box::new(config.clone())),
            retention_batch: config.retention_batch,
            retention_budget: config.retention_budget,
        })
    }

    async fn objects(&self) -> Result<ObjectStores, AdminError> {
        match &self.objects {
            ObjectsAt::Open(o) => Ok(o.clone()),
            ObjectsAt::Config(c) => {
                let link_key = self
                    .keys
                    .derived("attache/download-links")
                    .await
                    .map_err(crate::keys::KeyError::from)?;
                Ok(ObjectStores::open(c, link_key).await?)
            }
        }
    }

    /// Sets the platform's default retention for a class, in days (`None`:
    /// no default; the class is kept unless a tenant says otherwise).
    /// Stored in the database: every replica follows it at its next sweep.
    pub async fn set_retention_default(
        &self,
        class: DataClass,
        days: Option<i64>,
    ) -> Result<(), AdminError> {
        let days = days
            .map(validate_retention_days)
            .transpose()
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.store.set_retention_default(class, days).await?;
        let shown = days.map_or("none".to_string(), |d| d.to_string());
        self.audit(
            None,
            "setRetentionDefault",
            Some(format!("retention_default:{}={shown}", class.as_str())),
        )
        .await
    }

    /// The key this deployment signs erasure certificates with, as the
    /// JWKS `/.well-known/attache-erasure-key` serves.
    pub async fn erasure_key(&self) -> Result<serde_json::Value, AdminError> {
        Ok(self.erasure_signer().await?.jwks())
    }

    /// Checks an erasure certificate against this deployment's key and
    /// returns what it certifies.
    pub async fn verify_erasure(&self, certificate: &str) -> Result<serde_json::Value, AdminError> {
        let jwks = self.erasure_key().await?;
        crate::erasure::verify(certificate, &jwks).map_err(|e| AdminError::Invalid(e.to_string()))
    }

    async fn erasure_signer(&self) -> Result<crate::erasure::CertificateSigner, AdminError> {
        let seed = self
            .keys
            .derived(crate::erasure::certificate::PURPOSE)
            .await
            .map_err(crate::keys::KeyError::from)?;
        Ok(crate::erasure::CertificateSigner::from_seed(&seed))
    }

    /// The platform's default per class (every class, `None` where unset).
    pub async fn retention_defaults(&self) -> Result<Vec<(DataClass, Option<u32>)>, AdminError> {
        let d = self
            .store
            .retention_defaults()
            .await
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        Ok(DataClass::ALL
            .into_iter()
            .map(|c| (c, d.0.get(&c).copied()))
            .collect())
    }

    /// One retention sweep as if it were `as_of`: deletes what has expired
    /// by then and says what. Waits for a sweep another replica is running
    /// to finish (up to a lease's lifetime).
    pub async fn retention_sweep(
        &self,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<SweepReport, AdminError> {
        let sweeper = Sweeper::new(
            self.store.clone(),
            self.objects().await?,
            self.retention_batch,
            self.retention_budget,
            "operator:cli",
        );
        let deadline = std::time::Instant::now() + crate::retention::LEASE_TTL * 2;
        loop {
            match sweeper.sweep(as_of).await {
                Err(SweepError::Busy) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    /// Seals every personal field an older version stored in the clear
    /// (what each start of the control plane also does, in the background)
    /// and says how many rows it sealed. `attache migrate` runs it.
    pub async fn seal_personal_fields(&self) -> Result<crate::SealReport, AdminError> {
        let never = tokio_util::sync::CancellationToken::new();
        crate::sealing::backfill::run(&self.store, &self.keys, &never)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Db(e) => AdminError::Db(e),
                e => AdminError::Invalid(e.to_string()),
            })
    }

    /// Invites `email` into a tenant with `role` (the first owner, say),
    /// valid for a week. Recorded in the tenant's audit trail.
    pub async fn invite(&self, tenant_id: &str, email: &str, role: Role) -> Result<(), AdminError> {
        let email = email.trim().to_lowercase();
        if !email.contains('@') {
            return Err(AdminError::Invalid(format!(
                "{email:?} is not an email address"
            )));
        }
        if self.store.tenant(tenant_id).await?.is_none() {
            return Err(AdminError::Invalid(format!("no tenant {tenant_id}")));
        }
        let expires = now() + chrono::Duration::days(7);
        self.store
            .scoped(tenant_id)
            .invite(&email, role, "operator:cli", expires)
            .await?;
        self.audit(
            Some(tenant_id),
            "inviteMember",
            Some(format!("invitation:{email}")),
        )
        .await
    }

    /// Adds `email` to a tenant with `role` directly, without an invitation
    /// (bootstrapping a tenant whose identity provider is not set yet).
    pub async fn add_member(
        &self,
        tenant_id: &str,
        email: &str,
        role: Role,
    ) -> Result<String, AdminError> {
        if self.store.tenant(tenant_id).await?.is_none() {
            return Err(AdminError::Invalid(format!("no tenant {tenant_id}")));
        }
        let user = self.store.signed_in_user(email, None).await?;
        if self.store.member_of(tenant_id, &user.id).await?.is_some() {
            return Err(AdminError::Invalid(format!("{email} is already a member")));
        }
        self.store
            .scoped(tenant_id)
            .invite(
                &user.email,
                role,
                "operator:cli",
                now() + chrono::Duration::minutes(1),
            )
            .await?;
        let m = self
            .store
            .join_tenant(tenant_id, &user, None)
            .await?
            .ok_or_else(|| AdminError::Invalid("the membership was not created".into()))?;
        self.audit(
            Some(tenant_id),
            "addMember",
            Some(format!("member:{}", m.id)),
        )
        .await?;
        Ok(m.id)
    }

    /// A console session for an operator without the identity provider
    /// (break-glass, when it is down): the cookie value, shown once.
    pub async fn operator_session(&self, email: &str, ttl: Duration) -> Result<String, AdminError> {
        if !self.store.is_operator(email).await? {
            return Err(AdminError::Invalid(format!("{email} is not an operator")));
        }
        let user = self.store.signed_in_user(email, None).await?;
        let (token, id) = crate::auth::mint_session_token();
        let at = now();
        self.store
            .insert_session(crate::entity::console_session::Model {
                id,
                user_id: user.id,
                tenant_id: None,
                member_id: None,
                operator: true,
                created_at: at,
                expires_at: at + chrono::Duration::from_std(ttl).unwrap_or_default(),
                last_seen_at: at,
                revoked_at: None,
            })
            .await?;
        self.audit(
            None,
            "breakGlassSession",
            Some(format!("operator:{}", email.to_lowercase())),
        )
        .await?;
        Ok(token)
    }

    /// Lets `email` sign in to the console as the platform operator.
    pub async fn add_operator(&self, email: &str) -> Result<(), AdminError> {
        if !email.contains('@') {
            return Err(AdminError::Invalid(format!(
                "{email:?} is not an email address"
            )));
        }
        self.store.add_operator(email).await?;
        self.audit(
            None,
            "addOperator",
            Some(format!("operator:{}", email.to_lowercase())),
        )
        .await
    }

    pub async fn remove_operator(&self, email: &str) -> Result<bool, AdminError> {
        let removed = self.store.remove_operator(email).await?;
        self.audit(
            None,
            "removeOperator",
            Some(format!("operator:{}", email.to_lowercase())),
        )
        .await?;
        Ok(removed)
    }

    /// The identity provider operators sign in with; its client secret is
    /// sealed with a key derived from the platform key.
    pub async fn set_operator_sso(
        &self,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<(), AdminError> {
        let issuer =
            url::Url::parse(issuer).map_err(|e| AdminError::Invalid(format!("issuer: {e}")))?;
        if client_id.is_empty() || client_secret.is_empty() {
            return Err(AdminError::Invalid(
                "client id and secret are required".into(),
            ));
        }
        let domain = attache_tenant_policy::PLATFORM;
        let sealed = self
            .keys
            .seal_idp_secret(domain, client_secret)
            .await
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.store
            .put_identity_provider(crate::entity::identity_provider::Model {
                domain: domain.to_string(),
                issuer: issuer.as_str().trim_end_matches('/').to_string(),
                client_id: client_id.to_string(),
                client_secret_sealed: sealed,
                allowed_domains: String::new(),
                updated_at: now(),
            })
            .await?;
        self.audit(None, "setOperatorSso", Some("identity_provider".into()))
            .await
    }

    /// Rewraps every stored tenant key and the platform key under a new
    /// provider key (see `keys/rotate.rs`); no data is touched. Recorded in
    /// the audit log, with how many keys moved and how many failed.
    pub async fn rotate_master_key(
        &self,
        rotation: &crate::keys::Rotation,
    ) -> Result<crate::keys::RotationReport, AdminError> {
        let report = self.keys.rotate(rotation).await?;
        crate::audit::AuditLog::new(self.store.clone())
            .append(crate::audit::Record {
                tenant_id: None,
                actor: "operator:cli".into(),
                action: "rotateMasterKey".into(),
                target: Some(format!(
                    "keys:{} rewrapped={} failed={}",
                    report.target,
                    report.rewrapped.len(),
                    report.failed.len()
                )),
                outcome: if report.failed.is_empty() {
                    "ok".into()
                } else {
                    "partial".into()
                },
            })
            .await?;
        Ok(report)
    }

    /// Puts a (dedicated) tenant on a provider key of its own: a Transit
    /// key name or a KMS key id of the configured provider. Its key is
    /// rewrapped onto it; later rotations leave it there.
    pub async fn set_tenant_provider_key(
        &self,
        tenant_id: &str,
        provider_key: &str,
    ) -> Result<crate::keys::RowChange, AdminError> {
        if self.store.tenant(tenant_id).await?.is_none() {
            return Err(AdminError::Invalid(format!("no tenant {tenant_id}")));
        }
        let change = self
            .keys
            .set_tenant_provider_key(tenant_id, provider_key)
            .await?;
        self.audit(
            Some(tenant_id),
            "setTenantProviderKey",
            Some(format!("tenant_key:{}", change.to)),
        )
        .await?;
        Ok(change)
    }

    /// Walks the whole audit chain.
    pub async fn verify_audit(&self) -> Result<crate::audit::Verdict, AdminError> {
        Ok(crate::audit::verify(self.store.db()).await?)
    }

    /// Writes audit entries as JSON lines, oldest first: one tenant's, or
    /// every entry when `tenant_id` is None.
    pub async fn export_audit(
        &self,
        tenant_id: Option<&str>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, AdminError> {
        let mut last = 0;
        let mut n = 0;
        loop {
            let filter = tenant_id.map(Some);
            let batch = crate::audit::after(self.store.db(), filter, last, 1000).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for e in batch {
                last = e.seq;
                n += 1;
                let line =
                    serde_json::to_string(&e).map_err(|e| AdminError::Invalid(e.to_string()))?;
                writeln!(out, "{line}").map_err(|e| AdminError::Invalid(e.to_string()))?;
            }
        }
    }

    async fn audit(
        &self,
        tenant_id: Option<&str>,
        action: &str,
        target: Option<String>,
    ) -> Result<(), AdminError> {
        crate::audit::AuditLog::new(self.store.clone())
            .append(crate::audit::Record {
                tenant_id: tenant_id.map(str::to_string),
                actor: "operator:cli".into(),
                action: action.to_string(),
                target,
                outcome: "ok".into(),
            })
            .await?;
        Ok(())
    }

    /// Creates a shared tenant (its bots run on its region's shared workers).
    pub async fn create_tenant(
        &self,
        name: &str,
        region: &str,
    ) -> Result<CreatedTenant, AdminError> {
        self.create_tenant_in(name, region, Isolation::Shared, None)
            .await
    }

    /// Creates a tenant: `Shared`, or `Dedicated` with the pool its bots
    /// (and only its bots) run on.
    pub async fn create_tenant_in(
        &self,
        name: &str,
        region: &str,
        isolation: Isolation,
        pool: Option<&str>,
    ) -> Result<CreatedTenant, AdminError> {
        validate_tenant_name(name).map_err(|e| AdminError::Invalid(e.to_string()))?;
        validate_region(region).map_err(|e| AdminError::Invalid(e.to_string()))?;
        if let Some(why) = single_tenant_refuses(self.single_tenant.as_deref(), name) {
            return Err(AdminError::Invalid(why));
        }
        let pool = match (isolation, pool) {
            (Isolation::Shared, None) => None,
            (Isolation::Shared, Some(_)) => {
                return Err(AdminError::Invalid(
                    "a shared tenant has no pool; use --isolation dedicated".into(),
                ));
            }
            (Isolation::Dedicated, None) => {
                return Err(AdminError::Invalid(
                    "a dedicated tenant needs --pool NAME".into(),
                ));
            }
            (Isolation::Dedicated, Some(p)) => {
                validate_pool(p).map_err(|e| AdminError::Invalid(e.to_string()))?;
                if self.store.tenant_with_pool(p).await?.is_some() {
                    return Err(AdminError::Invalid(format!(
                        "pool {p} already belongs to another tenant"
                    )));
                }
                Some(p.to_string())
            }
        };
        if self.store.tenant_by_name(name).await?.is_some() {
            return Err(AdminError::Exists(name.to_string()));
        }
        let t = self
            .store
            .insert_tenant(tenant::Model {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.to_string(),
                region: region.to_string(),
                created_at: now(),
                retention_days: None,
                isolation: Stored(isolation),
                pool,
            })
            .await?;
        let (row, api_key) = mint_api_key(&t.id, "initial owner key", Role::Owner, None, None);
        self.store.insert_api_key(row).await?;
        self.audit(None, "createTenant", Some(format!("tenant:{}", t.id)))
            .await?;
        Ok(CreatedTenant {
            tenant_id: t.id,
            name: t.name,
            region: t.region,
            isolation: t.isolation.0,
            pool: t.pool,
            api_key,
        })
    }

    /// Issues another API key for an existing tenant.
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        name: &str,
        role: Role,
        ttl: Option<Duration>,
    ) -> Result<String, AdminError> {
        if self.store.tenant(tenant_id).await?.is_none() {
            return Err(AdminError::Invalid(format!("no tenant {tenant_id}")));
        }
        let expires = ttl.map(|d| now() + chrono::Duration::from_std(d).unwrap_or_default());
        let (row, key) = mint_api_key(tenant_id, name, role, expires, None);
        let target = format!("api_key:{}", row.id);
        self.store.insert_api_key(row).await?;
        self.audit(Some(tenant_id), "createApiKey", Some(target))
            .await?;
        Ok(key)
    }

    /// A join token for a shared worker of `region`.
    pub async fn worker_token(
        &self,
        region: &str,
        ttl: Duration,
    ) -> Result<WorkerToken, AdminError> {
        self.worker_token_in(region, None, ttl).await
    }

    /// A join token for a worker of `region`, in a dedicated tenant's
    /// `pool` if one is given: the worker's certificate names the pool, and
    /// it runs that tenant's bots and no one else's.
    pub async fn worker_token_in(
        &self,
        region: &str,
        pool: Option<&str>,
        ttl: Duration,
    ) -> Result<WorkerToken, AdminError> {
        self.shared_worker_token(region, pool, ttl, 1).await
    }

    /// A join token that `uses` workers may enroll with until it expires:
    /// one secret for an autoscaled group of workers. Each worker keeps the
    /// identity it enrolled with in its data directory and needs no token
    /// again; a worker that lost its data directory spends another use.
    pub async fn shared_worker_token(
        &self,
        region: &str,
        pool: Option<&str>,
        ttl: Duration,
        uses: u32,
    ) -> Result<WorkerToken, AdminError> {
        if !(1..=MAX_TOKEN_USES).contains(&uses) {
            return Err(AdminError::Invalid(format!(
                "a join token enrolls 1 to {MAX_TOKEN_USES} workers, not {uses}"
            )));
        }
        validate_region(region).map_err(|e| AdminError::Invalid(e.to_string()))?;
        if let Some(p) = pool {
            validate_pool(p).map_err(|e| AdminError::Invalid(e.to_string()))?;
        }
        let id = random_hex(8);
        let secret = random_hex(32);
        let created_at = now();
        let expires_at = created_at + chrono::Duration::from_std(ttl).unwrap_or_default();
        self.store
            .insert_join_token(join_token::Model {
                id: id.clone(),
                secret_hash: hash_secret(&secret),
                region: region.to_string(),
                created_at,
                expires_at,
                used_at: None,
                used_by_worker: None,
                pool: pool.map(str::to_string),
                max_uses: uses as i32,
                uses: 0,
            })
            .await?;
        Ok(WorkerToken {
            token: format!("ajt_{id}_{secret}_{}", self.ca.fingerprint()),
            uses,
            region: region.to_string(),
            pool: pool.map(str::to_string),
            expires_at,
        })
    }

    /// Every lease a bot was granted, oldest first, with each worker's
    /// pool: which machines ran it (support, and the isolation tests).
    pub async fn bot_leases(&self, bot_id: &str) -> Result<Vec<LeaseRecord>, AdminError> {
        let mut out = Vec::new();
        for l in self.store.leases_of(bot_id).await? {
            let worker = self.store.worker(&l.worker_id).await?;
            out.push(LeaseRecord {
                generation: l.generation,
                worker_pool: worker.and_then(|w| w.pool),
                worker_id: l.worker_id,
                granted_at: l.granted_at,
                released_at: l.released_at,
            });
        }
        Ok(out)
    }
}
