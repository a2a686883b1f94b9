//! Operator actions that precede any API key: creating tenants and issuing
//! worker join tokens. Used by `attache admin …` (straight on the database)
//! and by `attache dev` and tests (on a built control plane).

use std::sync::Arc;
use std::time::Duration;

use attache_tenant_policy::{Role, validate_region, validate_tenant_name};

use crate::auth::{hash_secret, mint_api_key, random_hex};
use crate::config::Config;
use crate::entity::{join_token, tenant};
use crate::fleet::FleetCa;
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
}

#[derive(Clone)]
pub struct Admin {
    store: Store,
    ca: Arc<FleetCa>,
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
        Ok(Admin { store, ca })
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
            })
            .await?;
        let (row, api_key) = mint_api_key(&t.id, "initial owner key", Role::Owner, None);
        self.store.insert_api_key(row).await?;
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
        let (row, key) = mint_api_key(tenant_id, name, role, expires);
        self.store.insert_api_key(row).await?;
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
