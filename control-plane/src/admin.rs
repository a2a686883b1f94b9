//! Operator actions that precede any API key: creating tenants and issuing
//! worker join tokens; and the deployment's own chores: the audit chain,
//! retention defaults and a retention sweep on demand. Used by `attache
//! admin …` (straight on the database) and by `attache dev` and tests (on a
//! built control plane).

use std::sync::Arc;
use std::time::Duration;

use attache_tenant_policy::{
    DataClass, Role, validate_region, validate_retention_days, validate_tenant_name,
};

use crate::auth::{hash_secret, mint_api_key, random_hex};
use crate::config::Config;
use crate::entity::{join_token, tenant};
use crate::fleet::FleetCa;
use crate::objects::{ObjectStoreConfig, Objects};
use crate::retention::{SweepError, SweepReport, Sweeper};
use crate::store::{Store, now};
use crate::{AppState, BuildError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("a tenant named {0:?} already exists")]
    Exists(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
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
    objects: ObjectsAt,
    retention_batch: u64,
    retention_budget: u64,
}

/// The object store: open already (a running control plane's), or to be
/// opened by the commands that need it.
#[derive(Clone)]
enum ObjectsAt {
    Open(Objects),
    Config(ObjectStoreConfig, Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub tenant_id: String,
    pub name: String,
    pub region: String,
    /// Shown once; only its hash is stored.
    pub api_key: String,
}

#[derive(Debug, Clone)]
pub struct WorkerToken {
    /// `ajt_<id>_<secret>_<fleet CA fingerprint>`; spendable once.
    pub token: String,
    pub region: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl Admin {
    pub(crate) fn new(state: AppState) -> Admin {
        Admin {
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
        let master_key_file = config
            .master_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("master.key"));
        let master = crate::keys::load_master_key(
            &master_key_file,
            !config.production || config.allow_dev_fallbacks,
        )?;
        let objects = ObjectsAt::Config(
            config.object_store.clone(),
            crate::keys::derive(&master, "attache/download-links"),
        );
        let keys = crate::keys::Keys::new(master, store.clone());
        Ok(Admin {
            store,
            ca,
            keys,
            objects,
            retention_batch: config.retention_batch,
            retention_budget: config.retention_budget,
        })
    }

    async fn objects(&self) -> Result<Objects, AdminError> {
        match &self.objects {
            ObjectsAt::Open(o) => Ok(o.clone()),
            ObjectsAt::Config(c, key) => Ok(Objects::open(c, key.clone()).await?),
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
    /// sealed with a key derived from the master key.
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

    pub async fn create_tenant(
        &self,
        name: &str,
        region: &str,
    ) -> Result<CreatedTenant, AdminError> {
        validate_tenant_name(name).map_err(|e| AdminError::Invalid(e.to_string()))?;
        validate_region(region).map_err(|e| AdminError::Invalid(e.to_string()))?;
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

    pub async fn worker_token(
        &self,
        region: &str,
        ttl: Duration,
    ) -> Result<WorkerToken, AdminError> {
        validate_region(region).map_err(|e| AdminError::Invalid(e.to_string()))?;
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
            })
            .await?;
        Ok(WorkerToken {
            token: format!("ajt_{id}_{secret}_{}", self.ca.fingerprint()),
            region: region.to_string(),
            expires_at,
        })
    }
}
