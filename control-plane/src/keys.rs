//! The key hierarchy behind sealed results.
//!
//! A master key (a local key file by default, `--master-key-file`) wraps
//! one key per tenant; each tenant key wraps one data key per bot. Workers
//! receive a bot's data key with its lease and seal every result with it;
//! the control plane stores transcripts, chat and recordings sealed under
//! the same key and opens them only for a reader allowed to see them.
//! Only wrapped keys are stored; unwrapped ones live in memory, bounded.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use attache_protocol::{DataKey, KEY_LEN, SealError};

use crate::entity::bot;
use crate::store::{Store, StoreError};

/// Unwrapped keys kept in memory before the cache starts over.
const CACHE_LIMIT: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("master key file {0} must hold exactly {KEY_LEN} bytes")]
    BadLength(String),
    #[error("master key file {0} does not exist (production mode does not create one)")]
    Missing(String),
}

#[derive(Clone)]
pub(crate) struct Keys {
    master: Arc<DataKey>,
    store: Store,
    tenants: Arc<Mutex<HashMap<String, DataKey>>>,
    bots: Arc<Mutex<HashMap<String, DataKey>>>,
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

fn tenant_context(tenant_id: &str) -> Vec<u8> {
    format!("attache/tenant-key/{tenant_id}").into_bytes()
}

fn bot_context(bot_id: &str) -> Vec<u8> {
    format!("attache/bot-key/{bot_id}").into_bytes()
}

fn unwrap_failed(what: &str, e: SealError) -> StoreError {
    StoreError::Corrupt(format!("{what} does not unwrap: {e}"))
}

/// Loads the master key, creating it (readable by this user only) when
/// `create` allows and there is none.
pub(crate) fn load_master_key(path: &Path, create: bool) -> Result<DataKey, KeyError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => DataKey::from_bytes(&bytes).ok_or(KeyError::BadLength(shown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(KeyError::Missing(shown));
            }
            let key = DataKey::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(shown.clone(), e))?;
            }
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                #[cfg(unix)]
                use std::os::unix::fs::OpenOptionsExt;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                opts.mode(0o600);
                let mut f = opts
                    .open(&tmp)
                    .map_err(|e| KeyError::Io(shown.clone(), e))?;
                f.write_all(key.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| KeyError::Io(shown.clone(), e))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| KeyError::Io(shown.clone(), e))?;
            tracing::info!(path = %shown, "created a master key");
            Ok(key)
        }
        Err(e) => Err(KeyError::Io(shown, e)),
    }
}

impl Keys {
    pub(crate) fn new(master: DataKey, store: Store) -> Keys {
        Keys {
            master: Arc::new(master),
            store,
            tenants: Arc::default(),
            bots: Arc::default(),
        }
    }

    /// The tenant's key, made on first use.
    pub(crate) async fn tenant_key(&self, tenant_id: &str) -> Result<DataKey, StoreError> {
        if let Some(k) = recall(&self.tenants, tenant_id) {
            return Ok(k);
        }
        let ctx = tenant_context(tenant_id);
        let wrapped = match self.store.tenant_wrapped_key(tenant_id).await? {
            Some(w) => w,
            None => {
                let fresh = self.master.wrap(&ctx, &DataKey::generate());
                self.store.put_tenant_key(tenant_id, fresh).await?
            }
        };
        let key = self
            .master
            .unwrap_key(&ctx, &wrapped)
            .map_err(|e| unwrap_failed("a tenant key", e))?;
        remember(&self.tenants, tenant_id, &key);
        Ok(key)
    }

    /// The bot's data key, made on first use (at its first dispatch).
    pub(crate) async fn bot_key(&self, bot: &bot::Model) -> Result<DataKey, StoreError> {
        if let Some(k) = recall(&self.bots, &bot.id) {
            return Ok(k);
        }
        let tenant = self.tenant_key(&bot.tenant_id).await?;
        let ctx = bot_context(&bot.id);
        let wrapped = match &bot.data_key {
            Some(w) => w.clone(),
            None => {
                let fresh = tenant.wrap(&ctx, &DataKey::generate());
                self.store.put_bot_key(&bot.id, fresh).await?
            }
        };
        let key = tenant
            .unwrap_key(&ctx, &wrapped)
            .map_err(|e| unwrap_failed("a bot's data key", e))?;
        remember(&self.bots, &bot.id, &key);
        Ok(key)
    }

    /// The key that seals a domain's identity-provider client secret: the
    /// tenant's key, or for the operators' provider one derived from the
    /// master key.
    async fn idp_key(&self, domain: &str) -> Result<DataKey, StoreError> {
        if domain == attache_tenant_policy::PLATFORM {
            let bytes = derive(&self.master, "attache/platform-idp");
            return DataKey::from_bytes(&bytes)
                .ok_or_else(|| StoreError::Corrupt("derived key length".into()));
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
        let plain = self
            .idp_key(domain)
            .await?
            .open(&ctx, sealed)
            .map_err(|e| unwrap_failed("an identity provider's secret", e))?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Corrupt("an identity provider's secret is not text".into()))
    }

    /// The bot's data key if it has one; `None` before its first dispatch.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        assert!(matches!(
            load_master_key(&path, false),
            Err(KeyError::Missing(_))
        ));
        let k1 = load_master_key(&path, true).unwrap();
        let k2 = load_master_key(&path, true).unwrap();
        assert_eq!(k1, k2, "made once, then loaded");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            load_master_key(&path, true),
            Err(KeyError::BadLength(_))
        ));
    }
}
