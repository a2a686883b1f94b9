//! Generations of a tenant's bot keys: what makes an erasure hold for
//! copies of the database.
//!
//! A bot's data key is wrapped under a key-encryption key of its tenant's
//! current generation: an HMAC, keyed by the generation's secret, of the
//! tenant key and the generation's name. The secret is stored wrapped by
//! the key provider under a key made for that generation alone (a key file
//! in `erasable-keys/`, a Transit key, a KMS key). An erasure ([`Keys::roll`])
//! starts the next generation, moves every remaining bot of the tenant onto
//! it, and destroys the old generation's provider key: a database copy
//! taken before holds the erased bot's key wrapped under a secret nobody
//! can unwrap any more. Erasing a tenant destroys every generation.
//!
//! The data keys themselves never change, so workers holding one carry on
//! and nothing sealed is re-sealed; a roll rewrites one small wrapped key
//! per bot of the tenant.

use std::time::Duration;

use attache_protocol::DataKey;

use super::provider::{Subject, WrappedKey};
use super::{Keys, bot_context, provider_failed, recall, remember, unwrap_failed};
use crate::store::StoreError;

/// Bots moved per read during a roll.
const ROLL_PAGE: u64 = 500;
/// How long a roll waits, once no bot is left on the old generation, for a
/// bot created on it by a replica that read the generation just before it
/// was retired.
const SETTLE: Duration = Duration::from_millis(1500);

/// A new bot's data key, and the same key as stored with the bot.
pub(crate) struct NewBotKey {
    pub key: DataKey,
    pub wrapped: Vec<u8>,
    pub generation: i32,
}

/// What a roll did: the generations it destroyed
/// (`bot-key-generation:<tenant>/<n>@<provider>:<provider key id>`) and the
/// bots it moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rolled {
    pub destroyed: Vec<String>,
    pub moved: u64,
    /// The generation the tenant's bots are on now (`None`: the tenant's
    /// keys were all destroyed).
    pub current: Option<i32>,
}

fn cache_id(tenant_id: &str, generation: i32) -> String {
    format!("{tenant_id}/{generation}")
}

/// A tenant key with its erasable secret mixed in: what the tenant's data
/// is sealed under.
pub(super) fn mix(secret: &DataKey, base: &DataKey, tenant_id: &str) -> DataKey {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(format!("attache/tenant-key/{tenant_id}/").as_bytes());
    m.update(base.as_bytes());
    DataKey::from_bytes(&m.finalize().into_bytes()).expect("32 bytes")
}

fn kek(secret: &DataKey, tenant: &DataKey, tenant_id: &str, generation: i32) -> DataKey {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(format!("attache/bot-keys/{tenant_id}/{generation}/").as_bytes());
    m.update(tenant.as_bytes());
    DataKey::from_bytes(&m.finalize().into_bytes()).expect("32 bytes")
}

impl Keys {
    /// The key generation `n` of the tenant wraps bot keys under.
    async fn generation_key(&self, tenant_id: &str, n: i32) -> Result<DataKey, StoreError> {
        let id = cache_id(tenant_id, n);
        if let Some(k) = recall(&self.generations, &id) {
            return Ok(k);
        }
        let row = self
            .store
            .generation(tenant_id, n)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no bot-key generation {id}")))?;
        let wrapped = row.wrapped_secret.ok_or_else(|| {
            StoreError::Keys(format!(
                "bot-key generation {id} was destroyed by an erasure"
            ))
        })?;
        let secret = self
            .ring
            .unwrap(
                &WrappedKey {
                    bytes: wrapped,
                    provider: *row.provider,
                    key_id: Some(row.provider_key_id),
                },
                &Subject::Tenant(tenant_id.to_string()),
            )
            .await
            .map_err(provider_failed)?;
        let key = kek(&secret, &self.tenant_key(tenant_id).await?, tenant_id, n);
        remember(&self.generations, &id, &key);
        Ok(key)
    }

    /// A fresh secret, wrapped under a fresh erasable provider key: the
    /// key's id, and the wrapped secret as stored.
    pub(super) async fn new_erasable_secret(
        &self,
        subject: &Subject,
    ) -> Result<(String, WrappedKey), StoreError> {
        let provider = self.ring.primary();
        let name = format!("attache-erasable-{}", uuid::Uuid::new_v4().simple());
        let key_id = provider
            .create_erasable(&name)
            .await
            .map_err(provider_failed)?;
        let w = provider
            .wrap(&key_id, subject, &DataKey::generate())
            .await
            .map_err(provider_failed)?;
        Ok((
            w.key_id.clone(),
            WrappedKey {
                bytes: w.bytes,
                provider: provider.kind(),
                key_id: Some(w.key_id),
            },
        ))
    }

    /// Destroys an erasable key made for nothing (another replica won).
    pub(super) async fn discard_erasable(&self, key_id: &str) {
        if let Err(e) = self.ring.primary().destroy(key_id).await {
            tracing::warn!(error = %e, "cannot destroy an unused erasable key");
        }
    }

    /// Makes generation `n` of the tenant (or reads the one another replica
    /// made first).
    async fn make_generation(&self, tenant_id: &str, n: i32) -> Result<DataKey, StoreError> {
        let subject = Subject::Tenant(tenant_id.to_string());
        let (key_id, wrapped) = self.new_erasable_secret(&subject).await?;
        if !self
            .store
            .put_generation(tenant_id, n, &key_id, wrapped)
            .await?
        {
            // Another replica made it first: ours wraps nothing.
            self.discard_erasable(&key_id).await;
        }
        self.generation_key(tenant_id, n).await
    }

    /// The tenant's current generation and its key, made on first use.
    async fn current(&self, tenant_id: &str) -> Result<(i32, DataKey), StoreError> {
        // Read every time: another replica's erasure may have retired the
        // one this process used last.
        if let Some(g) = self.store.current_generation(tenant_id).await? {
            return Ok((
                g.generation,
                self.generation_key(tenant_id, g.generation).await?,
            ));
        }
        let next = self
            .store
            .generations(tenant_id)
            .await?
            .last()
            .map_or(1, |g| g.generation + 1);
        Ok((next, self.make_generation(tenant_id, next).await?))
    }

    /// A data key for a bot being created, wrapped under its tenant's
    /// current generation, to store with the bot in the insert that
    /// creates it.
    pub(crate) async fn new_bot_key(
        &self,
        tenant_id: &str,
        bot_id: &str,
    ) -> Result<NewBotKey, StoreError> {
        let (generation, kek) = self.current(tenant_id).await?;
        let key = DataKey::generate();
        let wrapped = kek.wrap(&bot_context(bot_id), &key);
        // A fresh id: nothing else can be cached under it.
        remember(&self.bots, bot_id, &key);
        Ok(NewBotKey {
            key,
            wrapped,
            generation,
        })
    }

    /// After the insert of a bot made with [`Keys::new_bot_key`]: if an
    /// erasure retired its generation meanwhile (and may already have
    /// destroyed it), the key (still in hand) is wrapped under the current
    /// one. True if it moved.
    pub(crate) async fn settle_new_bot(
        &self,
        tenant_id: &str,
        bot_id: &str,
        made: &NewBotKey,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.store.current_generation(tenant_id).await? else {
            return Ok(false);
        };
        if current.generation == made.generation {
            return Ok(false);
        }
        let kek = self.generation_key(tenant_id, current.generation).await?;
        let rewrapped = kek.wrap(&bot_context(bot_id), &made.key);
        Ok(self
            .store
            .move_bot_key(bot_id, &made.wrapped, rewrapped, current.generation)
            .await?)
    }

    /// Opens a bot's stored data key: under its generation, or under the
    /// tenant key itself for bots from before generations.
    pub(crate) async fn open_bot_key(
        &self,
        tenant_id: &str,
        bot_id: &str,
        generation: Option<i32>,
        wrapped: &[u8],
    ) -> Result<DataKey, StoreError> {
        let under = match generation {
            Some(n) => self.generation_key(tenant_id, n).await?,
            None => self.tenant_key(tenant_id).await?,
        };
        under
            .unwrap_key(&bot_context(bot_id), wrapped)
            .map_err(|e| unwrap_failed("a bot's data key", e))
    }

    /// Forgets a bot's key in this process (its row is gone).
    pub(crate) fn forget_bot(&self, bot_id: &str) {
        self.bots.lock().expect("key cache").remove(bot_id);
    }

    /// Starts the tenant's next generation, moves every bot of the tenant
    /// onto it and destroys every older one at the key provider.
    pub(crate) async fn roll(&self, tenant_id: &str) -> Result<Rolled, StoreError> {
        let next = self
            .store
            .generations(tenant_id)
            .await?
            .last()
            .map_or(1, |g| g.generation + 1);
        let kek = self.make_generation(tenant_id, next).await?;
        self.store
            .retire_generations_before(tenant_id, next)
            .await?;
        let mut rolled = Rolled {
            current: Some(next),
            ..Rolled::default()
        };
        rolled.moved = self.move_bots(tenant_id, next, &kek).await?;
        // A bot created on the old generation by a replica that read it
        // just before it was retired.
        tokio::time::sleep(SETTLE).await;
        rolled.moved += self.move_bots(tenant_id, next, &kek).await?;
        rolled.destroyed = self.destroy_generations(tenant_id, Some(next)).await?;
        Ok(rolled)
    }

    async fn move_bots(&self, tenant_id: &str, to: i32, kek: &DataKey) -> Result<u64, StoreError> {
        let mut moved = 0;
        loop {
            let page = self
                .store
                .bots_off_generation(tenant_id, to, ROLL_PAGE)
                .await?;
            if page.is_empty() {
                return Ok(moved);
            }
            for (bot_id, wrapped, generation) in page {
                let key = match recall(&self.bots, &bot_id) {
                    Some(k) => k,
                    None => {
                        self.open_bot_key(tenant_id, &bot_id, generation, &wrapped)
                            .await?
                    }
                };
                let rewrapped = kek.wrap(&bot_context(&bot_id), &key);
                if self
                    .store
                    .move_bot_key(&bot_id, &wrapped, rewrapped, to)
                    .await?
                {
                    moved += 1;
                }
            }
        }
    }

    /// Destroys every generation of the tenant but `keep`, at the provider
    /// and in the database.
    pub(crate) async fn destroy_generations(
        &self,
        tenant_id: &str,
        keep: Option<i32>,
    ) -> Result<Vec<String>, StoreError> {
        let mut destroyed = Vec::new();
        for g in self.store.generations(tenant_id).await? {
            if Some(g.generation) == keep || g.destroyed_at.is_some() {
                continue;
            }
            self.ring
                .get(*g.provider)
                .map_err(provider_failed)?
                .destroy(&g.provider_key_id)
                .await
                .map_err(provider_failed)?;
            self.store
                .destroy_generation(tenant_id, g.generation)
                .await?;
            let id = cache_id(tenant_id, g.generation);
            self.generations.lock().expect("key cache").remove(&id);
            destroyed.push(format!(
                "bot-key-generation:{id}@{}:{}",
                g.provider.as_str(),
                g.provider_key_id
            ));
        }
        Ok(destroyed)
    }

    /// Destroys the tenant's key itself (and every generation): nothing of
    /// the tenant's opens again.
    pub(crate) async fn destroy_tenant(&self, tenant_id: &str) -> Result<Vec<String>, StoreError> {
        let mut destroyed = self.destroy_generations(tenant_id, None).await?;
        if let Some((key_id, w)) = self.store.tenant_secret(tenant_id).await? {
            self.ring
                .get(w.provider)
                .map_err(provider_failed)?
                .destroy(&key_id)
                .await
                .map_err(provider_failed)?;
            destroyed.push(format!(
                "tenant-secret:{tenant_id}@{}:{key_id}",
                w.provider.as_str()
            ));
        }
        if self.store.delete_tenant_key(tenant_id).await? {
            destroyed.push(format!("tenant-key:{tenant_id}"));
        }
        self.tenants.lock().expect("key cache").remove(tenant_id);
        Ok(destroyed)
    }
}
