//! The fleet: the QUIC endpoint edge workers dial, who is connected, and
//! the sweep that takes leases back from workers that are gone.

mod ca;
mod enroll;
mod liveness;
mod reconcile;
mod registry;
mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use attache_protocol::{ALPN_ENROLL, ALPN_FLEET, BotStatus, StatusReason};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use ca::CaError;
pub(crate) use ca::FleetCa;
pub(crate) use registry::{Candidate, Registry};
pub(crate) use session::assignment;

use crate::store::{Applied, StoreError, Transition};
use crate::{AppState, BuildError, Config};

/// Builds the QUIC endpoint: TLS 1.3 only, the CA-signed server certificate,
/// and client certificates verified against the fleet CA (optional at the
/// TLS layer so the enrollment ALPN can admit certificate-less workers; the
/// fleet ALPN refuses a connection without one).
pub(crate) fn endpoint(config: &Config, ca: &FleetCa) -> Result<quinn::Endpoint, BuildError> {
    let tls_err = |e: &dyn std::fmt::Display| BuildError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.root_der()).map_err(|e| tls_err(&e))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls_err(&e))?;
    let identity = ca.server_identity(&config.fleet_names)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| tls_err(&e))?;
    tls.alpn_protocols = vec![ALPN_FLEET.to_vec(), ALPN_ENROLL.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| tls_err(&e))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            idle_timeout(config).try_into().map_err(|e| tls_err(&e))?,
        ))
        .max_concurrent_bidi_streams(4u32.into())
        .max_concurrent_uni_streams(1024u32.into());
    server.transport_config(Arc::new(transport));
    quinn::Endpoint::server(server, config.quic_addr)
        .map_err(|e| BuildError::Bind(config.quic_addr, e))
}

/// A link is dead after four missed heartbeats; the grace period then
/// decides what happens to its bots.
pub(crate) fn idle_timeout(config: &Config) -> Duration {
    (config.heartbeat_interval * 4).max(Duration::from_secs(1))
}

/// Accepts connections until shutdown; each is served on its own task.
pub(crate) async fn serve(
    state: AppState,
    endpoint: quinn::Endpoint,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "fleet handshake failed");
                    return;
                }
            };
            state.metrics.quic_connections.inc();
            let alpn = conn
                .handshake_data()
                .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|h| h.protocol);
            match alpn.as_deref() {
                Some(ALPN_ENROLL) => enroll::serve(&state, conn).await,
                Some(ALPN_FLEET) => session::serve(&state, conn, shutdown).await,
                _ => conn.close(
                    attache_protocol::ErrorCode::ProtocolViolation
                        .quic_code()
                        .into(),
                    b"alpn",
                ),
            }
            state.metrics.quic_connections.dec();
        });
    }
}

/// Periodic sweep: drives every worker's liveness clock, takes back the
/// leases of lost workers, and resends what the event path may have missed.
pub(crate) async fn sweep(state: AppState, shutdown: CancellationToken) {
    let every = (state.config.heartbeat_interval / 2).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_once(&state).await {
            tracing::warn!(error = %e, "fleet sweep failed; retrying next tick");
        }
    }
}

async fn sweep_once(state: &AppState) -> Result<(), StoreError> {
    // Workers that hold leases but never connected to this process (after a
    // control-plane restart) start their grace now.
    let leased = state.store.leased_bots(None).await?;
    let now = Instant::now();
    for b in &leased {
        if let Some(w) = &b.worker_id {
            state.fleet.note_unseen(w, now);
        }
    }
    let grace = state.config.worker_grace;
    for worker_id in state.fleet.tick(now, grace) {
        // Lost to this replica; another may still hear from it.
        if !state.store.worker_seen_within(&worker_id, grace).await? {
            tracing::warn!(worker_id = %worker_id, "worker lost");
            state
                .store
                .set_worker_state(&worker_id, "lost", None)
                .await?;
        }
    }
    // Taking leases back is idempotent, so every sweep repeats it for every
    // lost worker that still holds some: a failed or raced attempt is
    // repaired on the next tick. A worker another replica heard from within
    // the grace period is not lost.
    let holders: std::collections::BTreeSet<&str> = leased
        .iter()
        .filter_map(|b| b.worker_id.as_deref())
        .collect();
    for worker_id in holders {
        if !state.fleet.is_lost(worker_id)
            || state.store.worker_seen_within(worker_id, grace).await?
        {
            continue;
        }
        if let Err(e) = expire_leases(state, worker_id, None).await {
            tracing::warn!(worker_id, error = %e, "cannot take back leases yet; retrying next tick");
        }
    }
    // Commands that may have been lost: assignments not yet taken up, and
    // leave requests not yet obeyed.
    let stale_after =
        chrono::Duration::from_std(state.config.heartbeat_interval * 2).unwrap_or_default();
    for b in leased.iter().filter(|b| {
        b.status == BotStatus::Dispatched.as_str()
            && crate::store::now() - b.updated_at > stale_after
    }) {
        if let Some(w) = &b.worker_id
            && let Some(a) = assignment(state, b).await
        {
            state
                .fleet
                .send(w, attache_protocol::ControlMsg::Assign(Box::new(a)));
        }
    }
    for b in leased
        .iter()
        .filter(|b| b.leave_requested && b.status != BotStatus::Leaving.as_str())
    {
        if let (Some(w), Ok(bot_id)) = (&b.worker_id, b.id.parse()) {
            state.fleet.send(
                w,
                attache_protocol::ControlMsg::Cancel {
                    bot_id,
                    generation: b.lease_generation as u64,
                },
            );
        }
    }
    state
        .metrics
        .workers_connected
        .set(state.fleet.connected() as i64);
    Ok(())
}

/// What becomes of a bot whose worker is gone: in the meeting it fails with
/// WORKER_LOST (the customer is told); before that it is queued again, unless
/// the customer already asked it to leave.
pub(crate) fn lost_worker_outcome(
    status: BotStatus,
    leave_requested: bool,
) -> (BotStatus, Option<StatusReason>) {
    if status.is_in_meeting() {
        (BotStatus::Failed, Some(StatusReason::WorkerLost))
    } else if leave_requested {
        (BotStatus::Ended, Some(StatusReason::LeaveRequested))
    } else {
        (BotStatus::Queued, None)
    }
}

/// Takes back a worker's leases (all of them, or one bot's).
pub(crate) async fn expire_leases(
    state: &AppState,
    worker_id: &str,
    only: Option<(&str, i64)>,
) -> Result<(), StoreError> {
    for b in state.store.leased_bots(Some(worker_id)).await? {
        if only.is_some_and(|(id, g)| id != b.id || g != b.lease_generation) {
            continue;
        }
        let Some(status) = BotStatus::parse(&b.status) else {
            continue;
        };
        let (to, reason) = lost_worker_outcome(status, b.leave_requested);
        let mut t = Transition::new(&b.id, to, reason);
        t.expect_generation = Some(b.lease_generation);
        t.expect_status = Some(status);
        t.detail = Some(format!("worker {worker_id} lost"));
        match state.store.transition(t).await {
            Ok(Applied::Moved(_, ev)) => {
                // Should the worker still be (or come back) online, the
                // lease is no longer its own.
                if let Ok(bot_id) = b.id.parse() {
                    state.fleet.send(
                        worker_id,
                        attache_protocol::ControlMsg::Revoke {
                            bot_id,
                            generation: b.lease_generation as u64,
                        },
                    );
                }
                let outcome = if to == BotStatus::Queued {
                    "requeued"
                } else {
                    "failed"
                };
                state
                    .metrics
                    .leases_expired
                    .with_label_values(&[outcome])
                    .inc();
                state
                    .metrics
                    .transitions
                    .with_label_values(&[to.as_str()])
                    .inc();
                state.events.publish(ev);
            }
            Ok(_) | Err(StoreError::Conflict) | Err(StoreError::Stale { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    state.dispatch_wakeup.notify_one();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_worker_outcomes() {
        use BotStatus::*;
        let table = [
            (Dispatched, false, Queued, None),
            (Joining, false, Queued, None),
            (WaitingRoom, false, Queued, None),
            (InCall, false, Failed, Some(StatusReason::WorkerLost)),
            (Leaving, false, Failed, Some(StatusReason::WorkerLost)),
            (Joining, true, Ended, Some(StatusReason::LeaveRequested)),
            (InCall, true, Failed, Some(StatusReason::WorkerLost)),
        ];
        for (from, leave, to, reason) in table {
            assert_eq!(
                lost_worker_outcome(from, leave),
                (to, reason),
                "{from:?} leave={leave}"
            );
            from.check_transition(to, reason).unwrap();
        }
    }
}
