//! The key hierarchy behind sealed results:
//!
//! provider key → tenant key → bot data key.
//!
//! A key provider (a local key file by default, OpenBao/Vault Transit, or
//! AWS KMS; `config.rs`) wraps one key per tenant, under the deployment's
//! provider key or one a dedicated tenant names; each tenant key wraps one
//! data key per bot. Workers receive a bot's data key with its lease and
//! seal every result with it; the control plane stores every personal
//! field of the bot (see `crate::sealing`) and its recordings sealed under
//! the same key and opens them only for a reader allowed to see them. The platform has a key of its own, wrapped
//! the same way, from which download-link signing and the operators'
//! identity-provider secret are derived.
//!
//! Only wrapped keys are stored, each with the provider and provider key
//! that wrapped it, so `rotate.rs` can move them one at a time; unwrapped
//! ones live in memory, bounded. Nothing here ever logs a key.

mod config;
#[cfg(test)]
mod generation_tests;
mod generations;
mod kms;
mod local;
mod provider;
mod rotate;
#[cfg(test)]
mod tests;
mod vault;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use attache_protocol::{DataKey, SealError};

pub use config::{KeyProviderConfig, KeyProviderKind, KmsConfig, VaultConfig, VaultToken};
pub(crate) use local::load_master_key;
pub(crate) use provider::WrappedKey;
pub use rotate::{Rotation, RotationReport, RowChange};

use crate::config::Config;
use crate::entity::bot;
use crate::store::{Store, StoreError};
use local::LocalProvider;
use provider::{KeyProvider, ProviderError, Subject};

/// Unwrapped keys kept in memory before the cache starts over.
const CACHE_LIMIT: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("master key file {0} must hold exactly {KEY_LEN} bytes", KEY_LEN = attache_protocol::KEY_LEN)]
    BadLength(String),
    #[error("master key file {0} does not exist (production mode does not create one)")]
    Missing(String),
    #[error("key provider: {0}")]
    Provider(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl From<ProviderError> for KeyError {
    fn from(e: ProviderError) -> Self {
        KeyError::Provider(e.to_string())
    }
}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => KeyError::Db(e),
            e => KeyError::Provider(e.to_string()),
        }
    }
}

/// The providers a process holds: `primary` wraps every new key; the others
/// only open keys they wrapped before.
pub(crate) struct Keyring {
    primary: KeyProviderKind,
    providers: Vec<Arc<dyn KeyProvider>>,
    /// The key files, for secrets derived from them before the platform key
    /// existed.
    local: Option<Arc<LocalProvider>>,
}

impl Keyring {
    /// The providers `config` names. The local key file is loaded when it
    /// is the provider (and created unless production forbids) or when
    /// `--master-key-file` is given beside another provider (to open what
    /// it wrapped before: never created then).
    pub(crate) async fn open(config: &Config) -> Result<Keyring, KeyError> {
        let kp = &config.key_provider;
        let mut providers: Vec<Arc<dyn KeyProvider>> = Vec::new();
        let mut local = None;
        if kp.provider == KeyProviderKind::Local || config.master_key_file.is_some() {
            let path = config
                .master_key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("master.key"));
            let create = kp.provider == KeyProviderKind::Local
                && (!config.production || config.allow_dev_fallbacks);
            let erasable = config
                .erasable_key_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("erasable-keys"));
            let p = Arc::new(
                LocalProvider::new(load_master_key(&path, create)?).with_erasable_dir(erasable),
            );
            providers.push(p.clone());
            local = Some(p);
        }
        if let Some(v) = &kp.vault {
            providers.push(Arc::new(vault::VaultProvider::new(v)?));
        }
        if let Some(k) = &kp.kms {
            providers.push(Arc::new(kms::KmsProvider::new(k).await));
        }
        let ring = Keyring {
            primary: kp.provider,
            providers,
            local,
        };
        ring.get(kp.provider)
            .map_err(|e| KeyError::Provider(e.to_string()))?;
        Ok(ring)
    }

    fn get(&self, kind: KeyProviderKind) -> Result<&Arc<dyn KeyProvider>, ProviderError> {
        self.providers
            .iter()
            .find(|p| p.kind() == kind)
            .ok_or_else(|| {
                let hint = match kind {
                    KeyProviderKind::Local => "--master-key-file",
                    KeyProviderKind::Vault => "--vault-addr and a token",
                    KeyProviderKind::Kms => "--kms-key-id",
                };
                ProviderError::NotConfigured(format!(
                    "a key wrapped by {kind}, which this process is not configured for (give {hint})"
                ))
            })
    }

    pub(crate) fn primary(&self) -> &Arc<dyn KeyProvider> {
        self.get(self.primary).expect("checked at open")
    }

    /// Wraps a new key under the primary provider: `key_id`, or its
    /// deployment key.
    async fn wrap_new(
        &self,
        key_id: Option<&str>,
        subject: &Subject,
        key: &DataKey,
    ) -> Result<WrappedKey, ProviderError> {
        let p = self.primary();
        let w = p
            .wrap(key_id.unwrap_or(p.default_key()), subject, key)
            .await?;
        Ok(WrappedKey {
            bytes: w.bytes,
            provider: p.kind(),
            key_id: Some(w.key_id),
        })
    }

    async fn unwrap(&self, w: &WrappedKey, subject: &Subject) -> Result<DataKey, ProviderError> {
        self.get(w.provider)?
            .unwrap(w.key_id.as_deref(), subject, &w.bytes)
            .await
    }
}

#[derive(Clone)]
pub(crate) struct Keys {
    ring: Arc<Keyring>,
    store: Store,
    tenants: Arc<Mutex<HashMap<String, DataKey>>>,
    bots: Arc<Mutex<HashMap<String, DataKey>>>,
    /// Keys of bot-key generations, by `<tenant>/<generation>`.
    generations: Arc<Mutex<HashMap<String, DataKey>>>,
    platform: Arc<tokio::sync::OnceCell<DataKey>>,
}

fn remember(cache: &Mutex<HashMap<String, DataKey>>, id: &str, key: &DataKey) {
    let mut c = cache.lock().expect("key cache");
    if c.len() >= CACHE_LIMIT {
        c.clear();
    }
    c.insert(id.to_string(), key.clone());
}

fn recall(cache: &Mutex<HashMap<String, DataKey>>, id: &str) -> Option<DataKey> {
    cache.lock().expect("key cache").get(id).cloned()
}

fn bot_context(bot_id: &str) -> Vec<u8> {
    format!("attache/bot-key/{bot_id}").into_bytes()
}

fn unwrap_failed(what: &str, e: SealError) -> StoreError {
    StoreError::Corrupt(format!("{what} does not unwrap: {e}"))
}

fn provider_failed(e: ProviderError) -> StoreError {
    StoreError::Keys(e.to_string())
}

const PLATFORM_IDP: &str = "attache/platform-idp";

impl Keys {
    pub(crate) fn new(ring: Keyring, store: Store) -> Keys {
        Keys {
            ring: Arc::new(ring),
            store,
            tenants: Arc::default(),
            bots: Arc::default(),
            generations: Arc::default(),
            platform: Arc::default(),
        }
    }

    /// The platform's key, made on first use.
    pub(crate) async fn platform_key(&self) -> Result<DataKey, StoreError> {
        self.platform
            .get_or_try_init(|| async {
                let subject = Subject::Platform;
                let wrapped = match self.store.platform_wrapped_key().await? {
                    Some(w) => w,
                    None => {
                        let fresh = DataKey::generate();
                        let w = self
                            .ring
                            .wrap_new(None, &subject, &fresh)
                            .await
                            .map_err(provider_failed)?;
                        let stored = self.store.put_platform_key(w.clone()).await?;
                        if stored == w {
                            return Ok(fresh);
                        }
                        stored
                    }
                };
                self.ring
                    .unwrap(&wrapped, &subject)
                    .await
                    .map_err(provider_failed)
            })
            .await
            .cloned()
    }

    /// A key for another purpose, derived from the platform key: the same
    /// on every replica of a deployment.
    pub(crate) async fn derived(&self, purpose: &str) -> Result<Vec<u8>, StoreError> {
        Ok(derive(&self.platform_key().await?, purpose))
    }

    /// The tenant's key, made on first use, under the tenant's own provider
    /// key if it names one (`set_tenant_provider_key`). A key made since
    /// erasure existed mixes in the tenant's erasable secret (see
    /// `generations.rs`), which a tenant's erasure destroys.
    pub(crate) async fn tenant_key(&self, tenant_id: &str) -> Result<DataKey, StoreError> {
        if let Some(k) = recall(&self.tenants, tenant_id) {
            return Ok(k);
        }
        let subject = Subject::Tenant(tenant_id.to_string());
        let base = match self.store.tenant_wrapped_key(tenant_id).await? {
            Some(w) => self
                .ring
                .unwrap(&w, &subject)
                .await
                .map_err(provider_failed)?,
            None => {
                let fresh = DataKey::generate();
                let w = self
                    .ring
                    .wrap_new(None, &subject, &fresh)
                    .await
                    .map_err(provider_failed)?;
                // The secret goes in the same insert: a tenant key is never
                // seen without the secret it is used with.
                let (secret_key, secret) = self.new_erasable_secret(&subject).await?;
                let stored = self
                    .store
                    .put_tenant_key(tenant_id, w.clone(), Some(secret))
                    .await?;
                if stored == w {
                    fresh
                } else {
                    // Another replica stored the tenant's key first.
                    self.discard_erasable(&secret_key).await;
                    self.ring
                        .unwrap(&stored, &subject)
                        .await
                        .map_err(provider_failed)?
                }
            }
        };
        let key = match self.store.tenant_secret(tenant_id).await? {
            None => base,
            Some((key_id, w)) => {
                if w.bytes.is_empty() {
                    return Err(StoreError::Keys(format!(
                        "the key of tenant {tenant_id} was destroyed by an erasure"
                    )));
                }
                let secret = self.ring.unwrap(&w, &subject).await.map_err(|e| {
                    StoreError::Keys(format!(
                        "the key of tenant {tenant_id} (its erasable key {key_id}): {e}"
                    ))
                })?;
                generations::mix(&secret, &base, tenant_id)
            }
        };
        remember(&self.tenants, tenant_id, &key);
        Ok(key)
    }

    /// The bot's data key. Bots get theirs when they are created; one
    /// created by an older version without one gets it here, on first use.
    pub(crate) async fn bot_key(&self, bot: &bot::Model) -> Result<DataKey, StoreError> {
        if let Some(k) = recall(&self.bots, &bot.id) {
            return Ok(k);
        }
        let (wrapped, generation) = match &bot.data_key {
            Some(w) => (w.clone(), bot.key_generation),
            None => {
                let tenant = self.tenant_key(&bot.tenant_id).await?;
                let fresh = tenant.wrap(&bot_context(&bot.id), &DataKey::generate());
                (self.store.put_bot_key(&bot.id, fresh).await?, None)
            }
        };
        let key = self
            .open_bot_key(&bot.tenant_id, &bot.id, generation, &wrapped)
            .await?;
        remember(&self.bots, &bot.id, &key);
        Ok(key)
    }

    /// The key that seals a domain's identity-provider client secret: the
    /// tenant's key, or for the operators' provider one derived from the
    /// platform key.
    async fn idp_key(&self, domain: &str) -> Result<DataKey, StoreError> {
        if domain == attache_tenant_policy::PLATFORM {
            return derived_key(&self.platform_key().await?, PLATFORM_IDP);
        }
        self.tenant_key(domain).await
    }

    pub(crate) async fn seal_idp_secret(
        &self,
        domain: &str,
        secret: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let ctx = format!("attache/idp-secret/{domain}").into_bytes();
        Ok(self.idp_key(domain).await?.seal(&ctx, secret.as_bytes()))
    }

    pub(crate) async fn open_idp_secret(
        &self,
        domain: &str,
        sealed: &[u8],
    ) -> Result<String, StoreError> {
        let ctx = format!("attache/idp-secret/{domain}").into_bytes();
        let mut opened = self.idp_key(domain).await?.open(&ctx, sealed);
        if opened.is_err() && domain == attache_tenant_policy::PLATFORM {
            // Sealed before the platform key existed: under a key derived
            // from the local key file itself (until a rotation reseals it).
            for k in self.ring.local.iter().flat_map(|l| l.keys()) {
                if let Ok(p) = derived_key(k, PLATFORM_IDP)?.open(&ctx, sealed) {
                    opened = Ok(p);
                    break;
                }
            }
        }
        let plain = opened.map_err(|e| unwrap_failed("an identity provider's secret", e))?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Corrupt("an identity provider's secret is not text".into()))
    }

    /// The bot's data key if it has one; `None` only for a bot an older
    /// version created and never dispatched (nothing of it is sealed).
    pub(crate) async fn existing_bot_key(
        &self,
        bot: &bot::Model,
    ) -> Result<Option<DataKey>, StoreError> {
        if bot.data_key.is_none() {
            return Ok(None);
        }
        self.bot_key(bot).await.map(Some)
    }
}

fn derived_key(from: &DataKey, purpose: &str) -> Result<DataKey, StoreError> {
    DataKey::from_bytes(&derive(from, purpose))
        .ok_or_else(|| StoreError::Corrupt("derived key length".into()))
}

/// A key for another purpose, derived from `master` (HMAC-SHA256 of the
/// purpose): the same on every replica that shares the master key.
pub(crate) fn derive(master: &DataKey, purpose: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(master.as_bytes()).expect("any key length");
    m.update(purpose.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// What a stored sealed value is bound to: its table, row and column.
pub(crate) fn field_context(kind: &str, bot_id: &str, key: &str) -> Vec<u8> {
    format!("attache/{kind}/{bot_id}/{key}").into_bytes()
}
