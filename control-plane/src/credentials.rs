//! API keys that have authenticated, kept in memory so that a request need
//! not read the database, and never used past a change that could take a
//! key's right away.
//!
//! Every such change — a key revoked, a member's role changed or the member
//! removed, a tenant erased — moves the credential generation on after it
//! commits and before it answers: this process's own counter and, with
//! Redis, a counter every replica reads on each request. A kept key is used
//! only while the generation is the one it was loaded under, and the
//! generation is read before the key's row, so a row read before a change is
//! never used after it: a revoked key or a removed member stops at the next
//! request on every replica.
//!
//! Where replicas cannot tell each other (PostgreSQL without Redis), and
//! while Redis does not answer, nothing is kept: every request reads the
//! database, as before. One SQLite database has one control plane, whose
//! own counter is the whole truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use crate::bus::{Bus, CALL_TIMEOUT, RedisLink};
use crate::entity::api_key;
use crate::metrics::Metrics;
use crate::store::Store;

/// The longest a kept key is used without reading its row again, whatever
/// the generation says (a change whose Redis increment failed is seen by
/// then).
const MAX_AGE: Duration = Duration::from_secs(30);
/// Most keys kept; past it, all are dropped and kept again as they come.
const MAX_KEYS: usize = 10_000;

/// A key that authenticated, with the generation it was loaded under.
#[derive(Clone)]
pub(crate) struct Kept {
    pub row: api_key::Model,
    generation: u64,
    loaded: Instant,
}

enum Truth {
    /// This process alone changes credentials (one SQLite database).
    Local,
    /// Replicas share the generation in Redis (the bus has a link), under
    /// this key.
    Shared { bus: Box<Bus>, name: String },
    /// Replicas that cannot tell each other: nothing is kept.
    Off,
}

#[derive(Clone)]
pub(crate) struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    truth: Truth,
    /// The generation where this process alone keeps it.
    local: Mutex<u64>,
    keys: Mutex<HashMap<String, Kept>>,
    metrics: Metrics,
}

impl Credentials {
    pub(crate) fn new(store: &Store, bus: &Bus, metrics: Metrics) -> Credentials {
        let truth = match bus.link() {
            Some(link) => Truth::Shared {
                bus: Box::new(bus.clone()),
                name: link.name("credential-generation"),
            },
            None if store.is_postgres() => Truth::Off,
            None => Truth::Local,
        };
        Credentials {
            inner: Arc::new(Inner {
                truth,
                local: Mutex::new(0),
                keys: Mutex::default(),
                metrics,
            }),
        }
    }

    /// The generation now, or `None` when kept keys cannot be trusted.
    pub(crate) async fn generation(&self) -> Option<u64> {
        match &self.inner.truth {
            Truth::Local => Some(*self.inner.local.lock().expect("generation lock")),
            Truth::Off => None,
            // Not waited for while the bus knows Redis is down.
            Truth::Shared { bus, .. } if bus.health().degraded() => {
                self.fallback();
                None
            }
            Truth::Shared { bus, name } => {
                let mut conn = bus.link().and_then(RedisLink::connection)?;
                match tokio::time::timeout(CALL_TIMEOUT, conn.get::<_, Option<u64>>(name)).await {
                    Ok(Ok(g)) => Some(g.unwrap_or(0)),
                    _ => {
                        self.fallback();
                        None
                    }
                }
            }
        }
    }

    /// The key kept under `id`, if it was loaded under `generation` and not
    /// too long ago.
    pub(crate) fn get(&self, id: &str, generation: u64) -> Option<Kept> {
        let keys = self.inner.keys.lock().expect("credentials lock");
        keys.get(id)
            .filter(|k| k.generation == generation && k.loaded.elapsed() < MAX_AGE)
            .cloned()
    }

    /// Keeps a key that authenticated, read under `generation`.
    pub(crate) fn keep(&self, row: api_key::Model, generation: u64) {
        let mut keys = self.inner.keys.lock().expect("credentials lock");
        if keys.len() >= MAX_KEYS && !keys.contains_key(&row.id) {
            keys.clear();
        }
        keys.insert(
            row.id.clone(),
            Kept {
                row,
                generation,
                loaded: Instant::now(),
            },
        );
    }

    /// Notes a kept key's new `last_used_at`.
    pub(crate) fn touched(&self, id: &str, at: chrono::DateTime<chrono::Utc>) {
        if let Some(k) = self
            .inner
            .keys
            .lock()
            .expect("credentials lock")
            .get_mut(id)
        {
            k.row.last_used_at = Some(at);
        }
    }

    /// Says that a key may have lost its right (revoked, its member changed
    /// or removed, its tenant erased): every kept key is read again, here at
    /// once and on every replica at its next request. Called after the
    /// change commits, before the caller is answered.
    pub(crate) async fn changed(&self) {
        self.inner.keys.lock().expect("credentials lock").clear();
        match &self.inner.truth {
            Truth::Local => *self.inner.local.lock().expect("generation lock") += 1,
            Truth::Off => {}
            Truth::Shared { bus, name } => {
                let incremented = match bus.link().and_then(RedisLink::connection) {
                    Some(mut conn) => matches!(
                        tokio::time::timeout(CALL_TIMEOUT, conn.incr::<_, _, u64>(name, 1)).await,
                        Ok(Ok(_))
                    ),
                    None => false,
                };
                if !incremented {
                    // Other replicas read the row again within MAX_AGE.
                    tracing::warn!("could not tell the other replicas that a credential changed");
                    self.fallback();
                }
            }
        }
    }

    fn fallback(&self) {
        self.inner
            .metrics
            .redis_fallbacks
            .with_label_values(&["credentials"])
            .inc();
    }
}
