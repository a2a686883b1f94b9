//! Residency: where a tenant's data is kept. A tenant's recordings go to
//! one object store, chosen when each bot is created and kept on the bot
//! row (`bots.object_store`): the tenant's own store if the deployment has
//! one for it, else its home region's, else the deployment's default store.
//! A tenant with none of these cannot create bots; nothing of it is ever
//! written to another region's store. Where its bots *run* is dispatch's
//! part (`crate::dispatch`): the workers of the bot's region, or of its
//! tenant's dedicated pool.
//!
//! Every read and write of a bot's objects (chunks, the joined recording,
//! downloads, joins of orphaned recordings) asks [`ObjectStores::for_bot`];
//! nothing here decides by the object key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::entity::bot;
use crate::entity::names::Isolation;
use crate::entity::tenant;
use crate::objects::{self, ObjectError, ObjectStoreConfig, Objects};

/// The store of tenants whose region has none of its own, and of bots
/// created before residency.
pub(crate) const DEFAULT_STORE: &str = "default";

fn region_store(region: &str) -> String {
    format!("region/{region}")
}

fn tenant_store(name: &str) -> String {
    format!("tenant/{name}")
}

/// Why a tenant has nowhere to keep its data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoStore {
    #[error(
        "tenant {tenant} is dedicated and this deployment has no object store of its own for it, so it keeps no recordings anywhere; ask the operator to configure one"
    )]
    Dedicated { tenant: String },
    #[error(
        "region {region} (the home region of tenant {tenant}) has no object store on this deployment, and recordings are kept only in their tenant's region; ask the operator to configure one for {region}"
    )]
    Region { tenant: String, region: String },
    #[error("object store {0:?} is not configured on this deployment")]
    Unconfigured(String),
}

/// The names of the stores a deployment has; what [`place`] decides from.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreNames {
    pub default: bool,
    pub regions: Vec<String>,
    pub tenants: Vec<String>,
}

impl StoreNames {
    pub(crate) fn of(config: &Config) -> StoreNames {
        StoreNames {
            default: config.object_store.is_some(),
            regions: config.region_object_stores.keys().cloned().collect(),
            tenants: config.tenant_object_stores.keys().cloned().collect(),
        }
    }
}

/// The store a new bot of `tenant` keeps its recordings in: the tenant's
/// own, else (for a shared tenant) its region's, else the default.
pub(crate) fn place(names: &StoreNames, tenant: &tenant::Model) -> Result<String, NoStore> {
    if names.tenants.contains(&tenant.name) {
        return Ok(tenant_store(&tenant.name));
    }
    if tenant.isolation == Isolation::Dedicated {
        return Err(NoStore::Dedicated {
            tenant: tenant.name.clone(),
        });
    }
    if names.regions.contains(&tenant.region) {
        return Ok(region_store(&tenant.region));
    }
    if names.default {
        return Ok(DEFAULT_STORE.to_string());
    }
    Err(NoStore::Region {
        tenant: tenant.name.clone(),
        region: tenant.region.clone(),
    })
}

/// Every object store of the deployment, by the name bots keep.
#[derive(Clone)]
pub(crate) struct ObjectStores {
    stores: Arc<HashMap<String, Objects>>,
    names: Arc<StoreNames>,
    /// Signs download links; the same for every store and every replica.
    signing_key: Arc<Vec<u8>>,
}

impl ObjectStores {
    pub(crate) async fn open(
        config: &Config,
        signing_key: Vec<u8>,
    ) -> Result<ObjectStores, ObjectError> {
        let mut wanted: Vec<(String, &ObjectStoreConfig)> = Vec::new();
        if let Some(c) = &config.object_store {
            wanted.push((DEFAULT_STORE.to_string(), c));
        }
        for (region, c) in &config.region_object_stores {
            wanted.push((region_store(region), c));
        }
        for (tenant, c) in &config.tenant_object_stores {
            wanted.push((tenant_store(tenant), c));
        }
        let mut stores = HashMap::new();
        for (name, c) in wanted {
            let store = Objects::open(c, signing_key.clone()).await?;
            tracing::info!(store = %name, config = ?c, "object store opened");
            stores.insert(name, store);
        }
        Ok(ObjectStores {
            stores: Arc::new(stores),
            names: Arc::new(StoreNames::of(config)),
            signing_key: Arc::new(signing_key),
        })
    }

    /// Where a new bot of `tenant` will keep its recordings.
    pub(crate) fn place(&self, tenant: &tenant::Model) -> Result<String, NoStore> {
        place(&self.names, tenant)
    }

    /// The one store that holds this bot's objects.
    pub(crate) fn for_bot(&self, b: &bot::Model) -> Result<&Objects, NoStore> {
        self.named(b.object_store.as_deref())
    }

    /// The store a bot row names (`bots.object_store`; `None`: the default),
    /// for callers that read the name and not the whole bot (the retention
    /// sweep).
    pub(crate) fn named(&self, name: Option<&str>) -> Result<&Objects, NoStore> {
        let name = name.unwrap_or(DEFAULT_STORE);
        self.stores
            .get(name)
            .ok_or_else(|| NoStore::Unconfigured(name.to_string()))
    }

    /// A signed link that downloads `key` through this control plane.
    pub(crate) fn download_url(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        ttl: Duration,
        base: &str,
    ) -> Result<String, ObjectError> {
        objects::download_url(&self.signing_key, key, file_name, content_type, ttl, base)
    }

    /// The key, file name and content type of a genuine, unexpired token.
    pub(crate) fn redeem(&self, token: &str) -> Option<(String, String, String)> {
        objects::redeem(&self.signing_key, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::names::Stored;

    fn tenant(name: &str, region: &str, isolation: Isolation) -> tenant::Model {
        tenant::Model {
            id: format!("id-{name}"),
            name: name.into(),
            region: region.into(),
            created_at: crate::store::now(),
            retention_days: None,
            isolation: Stored(isolation),
            pool: (isolation == Isolation::Dedicated).then(|| format!("{name}-pool")),
        }
    }

    #[test]
    fn placement() {
        use Isolation::*;
        let names = |default: bool, regions: &[&str], tenants: &[&str]| StoreNames {
            default,
            regions: regions.iter().map(|s| s.to_string()).collect(),
            tenants: tenants.iter().map(|s| s.to_string()).collect(),
        };
        let no_region = |t: &str, r: &str| {
            Err(NoStore::Region {
                tenant: t.into(),
                region: r.into(),
            })
        };
        let table: Vec<(StoreNames, tenant::Model, Result<String, NoStore>)> = vec![
            // A single store serves everyone (the deployment before residency).
            (
                names(true, &[], &[]),
                tenant("a", "eu", Shared),
                Ok("default".into()),
            ),
            // A region's own store wins over the default.
            (
                names(true, &["eu"], &[]),
                tenant("a", "eu", Shared),
                Ok("region/eu".into()),
            ),
            (
                names(true, &["eu"], &[]),
                tenant("a", "us", Shared),
                Ok("default".into()),
            ),
            // Only named regions: any other region has nowhere to keep data.
            (
                names(false, &["eu"], &[]),
                tenant("a", "eu", Shared),
                Ok("region/eu".into()),
            ),
            (
                names(false, &["eu"], &[]),
                tenant("a", "ap", Shared),
                no_region("a", "ap"),
            ),
            (
                names(false, &[], &[]),
                tenant("a", "eu", Shared),
                no_region("a", "eu"),
            ),
            // A tenant's own store wins over its region's.
            (
                names(true, &["eu"], &["a"]),
                tenant("a", "eu", Shared),
                Ok("tenant/a".into()),
            ),
            (
                names(false, &[], &["a"]),
                tenant("a", "eu", Dedicated),
                Ok("tenant/a".into()),
            ),
            // A dedicated tenant never falls back to a shared store.
            (
                names(true, &["eu"], &["b"]),
                tenant("a", "eu", Dedicated),
                Err(NoStore::Dedicated { tenant: "a".into() }),
            ),
        ];
        for (names, t, want) in table {
            assert_eq!(place(&names, &t), want, "{names:?} {}/{}", t.name, t.region);
        }
    }

    #[test]
    fn the_refusal_names_the_region() {
        let err = place(
            &StoreNames::default(),
            &tenant("acme", "eu-west-1", Isolation::Shared),
        )
        .unwrap_err();
        assert!(err.to_string().contains("region eu-west-1"), "{err}");
    }

    #[tokio::test]
    async fn each_bot_reads_and_writes_only_its_own_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::local(dir.path());
        c.object_store = None;
        for r in ["eu", "us"] {
            c.region_object_stores.insert(
                r.into(),
                ObjectStoreConfig::Local {
                    dir: dir.path().join(r),
                },
            );
        }
        let stores = ObjectStores::open(&c, b"k".to_vec()).await.unwrap();
        let eu = stores.place(&tenant("a", "eu", Isolation::Shared)).unwrap();
        let mut b = bot_in(&eu);
        stores
            .for_bot(&b)
            .unwrap()
            .put("x/1", b"eu".to_vec())
            .await
            .unwrap();
        assert!(dir.path().join("eu/x/1").exists());
        assert!(!dir.path().join("us/x/1").exists());
        // A bot whose store is gone from the configuration is an error, not
        // a read from some other store.
        b.object_store = None;
        assert_eq!(
            stores.for_bot(&b).err(),
            Some(NoStore::Unconfigured("default".into()))
        );
    }

    fn bot_in(store: &str) -> bot::Model {
        let at = crate::store::now();
        bot::Model {
            id: "b".into(),
            tenant_id: "t".into(),
            region: "eu".into(),
            meeting_url: String::new(),
            platform: Stored(attache_protocol::Platform::Sandbox),
            bot_name: String::new(),
            status: Stored(attache_protocol::BotStatus::Queued),
            status_reason: None,
            join_at: at,
            join_timeout_ms: 0,
            lobby_timeout_ms: 0,
            max_duration_ms: 0,
            nobody_joined_ms: 0,
            alone_ms: 0,
            silence_ms: 0,
            worker_id: None,
            lease_generation: 0,
            last_result_seq: 0,
            leave_requested: false,
            created_at: at,
            updated_at: at,
            ended_at: None,
            data_key: None,
            transcription: None,
            pool: None,
            object_store: Some(store.into()),
            queued_at: None,
            queue_reason: None,
            meeting_url_sealed: None,
            bot_name_sealed: None,
            key_generation: None,
            trace_parent: None,
        }
    }
}
