//! The bus over Redis: one pub/sub channel every replica of a deployment
//! listens on, one
//! connection manager for publishing (and the shared rate limits), both
//! re-established on their own after Redis comes back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{DispatchQueue, Envelope, Health, Notice};
use crate::metrics::Metrics;

/// Most notices published in one round trip.
const BATCH: usize = 1024;
/// How long one Redis call may take before Redis counts as unreachable.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between attempts to reach Redis again.
const RETRY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub(crate) struct RedisLink {
    client: redis::Client,
    conn: Arc<Mutex<Option<ConnectionManager>>>,
    /// Starts every key and channel of this deployment, so deployments
    /// sharing one Redis (whose pub/sub ignores database numbers) never
    /// hear each other.
    namespace: Arc<str>,
}

impl RedisLink {
    pub(super) fn new(url: &str, namespace: &str) -> Result<RedisLink, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis-url: {e}"))?;
        Ok(RedisLink {
            client,
            conn: Arc::new(Mutex::new(None)),
            namespace: format!("attache:{namespace}").into(),
        })
    }

    /// A key or channel of this deployment's.
    pub(crate) fn name(&self, what: &str) -> String {
        format!("{}:{what}", self.namespace)
    }

    /// The connection for commands, if one was made; it reconnects on its
    /// own after a failure.
    pub(crate) fn connection(&self) -> Option<ConnectionManager> {
        self.conn.lock().expect("redis connection lock").clone()
    }

    /// The connection, made now if there is none yet.
    async fn connect(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.connection() {
            return Some(c);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY);
        let made = tokio::time::timeout(
            CALL_TIMEOUT * 2,
            self.client.get_connection_manager_with_config(config),
        )
        .await;
        match made {
            Ok(Ok(c)) => {
                *self.conn.lock().expect("redis connection lock") = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot reach Redis");
                None
            }
            Err(_) => None,
        }
    }
}

fn set_health(health: &watch::Sender<Health>, metrics: &Metrics, change: impl FnOnce(&mut Health)) {
    let before = *health.borrow();
    health.send_modify(change);
    let after = *health.borrow();
    metrics.redis_degraded.set(i64::from(after.degraded()));
    match (before.degraded(), after.degraded()) {
        (false, true) => tracing::warn!(
            listening = after.listening,
            publishing = after.publishing,
            "Redis unreachable: serving from PostgreSQL alone (dispatch polls, subscriptions re-read history, rate limits per replica)"
        ),
        (true, false) => tracing::info!("Redis reachable: notices cross replicas again"),
        _ => {}
    }
}

/// Where bots queued here go: their group's dispatch stream, and then a
/// wake-up for this replica's dispatcher, once they are in.
pub(super) struct Queued {
    pub queue: DispatchQueue,
    pub wakeup: Arc<tokio::sync::Notify>,
}

/// Publishes this replica's notices in batches, in order. What cannot be
/// published is dropped and counted, and a resync is owed: the first batch
/// that goes through again starts with one.
pub(super) async fn publish_loop(
    link: RedisLink,
    queued_to: Queued,
    replica: String,
    mut outbox: mpsc::Receiver<Notice>,
    health: Arc<watch::Sender<Health>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let channel = link.name("bus");
    let mut owe_resync = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Notice> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            n = outbox.recv_many(&mut batch, BATCH) => if n == 0 { return },
            _ = tick.tick() => {}
        }
        // One wake-up per batch wakes every dispatcher just as well.
        let mut woke = false;
        batch.retain(|n| *n != Notice::Dispatch || !std::mem::replace(&mut woke, true));
        // Bots queued go into their streams, and one wake-up goes out (and
        // to this replica's dispatcher, once they are in).
        let queued = batch.iter().any(|n| matches!(n, Notice::Queued { .. }));
        if queued && !woke {
            batch.push(Notice::Dispatch);
        }
        if owe_resync {
            batch.insert(0, Notice::Resync);
        }
        if batch.is_empty() {
            // Quiet: still have a connection ready (the shared rate limits
            // use it).
            if link.connection().is_none() {
                link.connect().await;
            }
            continue;
        }
        let sent = match link.connect().await {
            Some(mut conn) => {
                let mut pipe = redis::pipe();
                for n in &batch {
                    if let Notice::Queued {
                        region,
                        pool,
                        bot_id,
                    } = n
                    {
                        queued_to
                            .queue
                            .push(&mut pipe, region, pool.as_deref(), bot_id);
                        continue;
                    }
                    let wire = serde_json::to_string(&Envelope {
                        from: replica.clone(),
                        notice: n.clone(),
                    })
                    .expect("notices serialize");
                    pipe.cmd("PUBLISH").arg(&channel).arg(wire).ignore();
                }
                matches!(
                    tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(&mut conn)).await,
                    Ok(Ok(()))
                )
            }
            None => false,
        };
        if sent && queued {
            queued_to.wakeup.notify_one();
        }
        let outcome = if sent { "sent" } else { "dropped" };
        metrics
            .bus_notices
            .with_label_values(&[outcome])
            .inc_by(batch.len() as u64);
        if !sent {
            metrics
                .redis_fallbacks
                .with_label_values(&["publish"])
                .inc();
        }
        owe_resync = !sent;
        if health.borrow().publishing != sent {
            set_health(&health, &metrics, |h| h.publishing = sent);
        }
        batch.clear();
    }
}

/// Listens to every other replica's notices and hands them on in order.
/// Each new subscription bumps the epoch: whatever was published while
/// this replica was not listening is re-read from the database.
pub(super) async fn subscribe_loop(
    link: RedisLink,
    replica: String,
    incoming: mpsc::Sender<Notice>,
    health: Arc<watch::Sender<Health>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        let subscribed = async {
            let mut ps = link.client.get_async_pubsub().await?;
            ps.subscribe(link.name("bus")).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        match tokio::time::timeout(CALL_TIMEOUT * 2, subscribed).await {
            Ok(Ok(ps)) => {
                set_health(&health, &metrics, |h| {
                    h.listening = true;
                    h.epoch += 1;
                });
                let mut messages = ps.into_on_message();
                loop {
                    let msg = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let env: Envelope = match serde_json::from_slice(msg.get_payload_bytes()) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable notice on the bus; ignored");
                            continue;
                        }
                    };
                    if env.from == replica {
                        continue;
                    }
                    metrics.bus_notices.with_label_values(&["received"]).inc();
                    if incoming.send(env.notice).await.is_err() {
                        return;
                    }
                }
                set_health(&health, &metrics, |h| h.listening = false);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot subscribe to Redis"),
            Err(_) => tracing::debug!("subscribing to Redis timed out"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
