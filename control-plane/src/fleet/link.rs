//! One enrolled worker's link: the handshake (hello, welcome), the control
//! loop (heartbeats, refusals, commands out) and the result streams it
//! opens, each handed to [`super::ingest`]. It records what the worker
//! says it runs (observed state) and leaves every decision about bots to
//! repair and the lifecycle service.

use std::time::{Duration, Instant};

use attache_protocol::{
    ControlMsg, ErrorCode, IoFrameError, PROTOCOL_VERSION, WorkerMsg, read_frame, write_frame,
};
use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::ca::fingerprint;
use super::{ingest, repair};
use crate::AppState;
use crate::entity::names::WorkerState;
use crate::entity::worker;
use crate::links::{Hello, Link};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands queued for one worker; a worker this far behind is overloaded.
const COMMAND_QUEUE: usize = 256;

fn close(conn: &quinn::Connection, code: ErrorCode, why: &str) {
    conn.close(code.quic_code().into(), why.as_bytes());
}

async fn identify(state: &AppState, conn: &quinn::Connection) -> Option<worker::Model> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    let leaf = certs.first()?;
    state
        .store
        .worker_by_fingerprint(&fingerprint(leaf))
        .await
        .ok()?
}

pub(super) async fn serve(
    state: &AppState,
    conn: quinn::Connection,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let Some(worker) = identify(state, &conn).await else {
        close(
            &conn,
            ErrorCode::Unauthenticated,
            "unknown or revoked worker certificate",
        );
        return;
    };
    let span = tracing::info_span!("fleet", worker_id = %worker.id, region = %worker.region,
        pool = worker.pool.as_deref().unwrap_or("shared"));
    let outcome = run(state, &conn, &worker, shutdown, tasks)
        .instrument(span.clone())
        .await;
    if let Err((code, why)) = outcome {
        state
            .metrics
            .frames_rejected
            .with_label_values(&[code.as_str()])
            .inc();
        span.in_scope(|| tracing::warn!(code = %code, "closing worker link: {why}"));
        close(&conn, code, &why);
    }
}

/// Reads the hello, answers welcome.
async fn handshake(
    state: &AppState,
    worker: &worker::Model,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<Hello, (ErrorCode, String)> {
    let violation = |why: String| (ErrorCode::ProtocolViolation, why);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame::<WorkerMsg, _>(recv))
        .await
        .map_err(|_| violation("no hello".into()))?
        .map_err(|e| violation(format!("bad hello: {e}")))?;
    let Some(WorkerMsg::Hello {
        protocol_version,
        software_version,
        capacity,
        bots,
    }) = hello
    else {
        return Err(violation("first message must be hello".into()));
    };
    if protocol_version != PROTOCOL_VERSION {
        return Err(violation(format!(
            "protocol version {protocol_version} is not {PROTOCOL_VERSION}"
        )));
    }
    write_frame(
        send,
        &ControlMsg::Welcome {
            worker_id: worker.id.clone(),
            region: worker.region.clone(),
            heartbeat_interval_ms: state.config.heartbeat_interval.as_millis() as u64,
        },
    )
    .await
    .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
    let software_version: String = software_version.chars().take(64).collect();
    Ok(Hello {
        region: worker.region.clone(),
        pool: worker.pool.clone(),
        capacity,
        software_version,
        bots,
    })
}

fn drained_and_gone(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c)) if c.reason.as_ref() == attache_protocol::DRAINED
    )
}

async fn run(
    state: &AppState,
    conn: &quinn::Connection,
    worker: &worker::Model,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) -> Result<(), (ErrorCode, String)> {
    let violation = |why: String| (ErrorCode::ProtocolViolation, why);
    let (mut send, mut recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| violation("no control stream".into()))?
        .map_err(|e| violation(format!("no control stream: {e}")))?;
    let hello = handshake(state, worker, &mut send, &mut recv).await?;
    let (capacity, reported) = (hello.capacity, hello.bots.clone());
    tracing::info!(
        capacity,
        bots = reported.len(),
        software_version = %hello.software_version,
        "worker connected"
    );

    let (tx, mut rx) = mpsc::channel::<ControlMsg>(COMMAND_QUEUE);
    let writer = tasks.spawn(
        async move {
            while let Some(msg) = rx.recv().await {
                if write_frame(&mut send, &msg).await.is_err() {
                    break;
                }
            }
        }
        .in_current_span(),
    );
    let conn_id = conn.stable_id();
    let link = Link {
        conn_id,
        tx: tx.clone(),
        conn: conn.clone(),
    };
    if let Some(old) = state.links.connect(&worker.id, hello, link) {
        close(
            &old.conn,
            ErrorCode::Forbidden,
            "replaced by a newer connection",
        );
    }
    let _ = state
        .store
        .set_worker_state(&worker.id, WorkerState::Connected, Some(capacity as i32))
        .await;
    state
        .metrics
        .workers_connected
        .set(state.links.connected() as i64);

    // The operator asked it to drain (maybe through another replica, or
    // while it was away).
    let mut drain_asked = state
        .store
        .drain_requested(&worker.id)
        .await
        .unwrap_or(false);
    if drain_asked {
        state.links.drain(&worker.id);
    }
    let outcome = async {
        repair::on_hello(state, &worker.id, &reported).await;
        state.bots.wake_dispatch();
        // Heartbeats reach the database at most this often: enough for other
        // replicas to know the worker is alive, well inside the grace period.
        let touch_every = state.config.worker_grace / 4;
        let mut last_touch = Instant::now();
        let mut beats = repair::Beats::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                frame = read_frame::<WorkerMsg, _>(&mut recv) => match frame {
                    Ok(Some(WorkerMsg::Heartbeat { load, bots })) => {
                        state.metrics.frames_received.with_label_values(&["control"]).inc();
                        // Observed state: what the sweep compares with the
                        // leases, and what this link reconciles them with.
                        repair::on_heartbeat(state, &worker.id, &bots, &mut beats).await;
                        state.links.heartbeat(&worker.id, load, bots);
                        if last_touch.elapsed() >= touch_every {
                            last_touch = Instant::now();
                            if let Err(e) = state.store.touch_worker(&worker.id).await {
                                tracing::warn!(error = %e, "cannot record a heartbeat");
                            }
                            if !drain_asked && state.store.drain_requested(&worker.id).await.unwrap_or(false) {
                                drain_asked = true;
                                tracing::info!("the operator asked this worker to drain");
                                state.links.drain(&worker.id);
                            }
                        }
                    }
                    Ok(Some(WorkerMsg::Refused { bot_id, generation, code, message })) => {
                        tracing::info!(%bot_id, generation, code = %code, "worker refused a command: {message}");
                        repair::on_refused(state, &worker.id, bot_id, generation, code, &message).await;
                    }
                    Ok(Some(WorkerMsg::Hello { .. })) => return Err(violation("second hello".into())),
                    Ok(None) => return Ok(()),
                    Err(IoFrameError::Io(_)) => return Ok(()),
                    Err(e) => return Err(violation(format!("control stream: {e}"))),
                },
                uni = conn.accept_uni() => match uni {
                    Ok(stream) => {
                        tasks.spawn(
                            ingest::results(state.clone(), worker.id.clone(), stream, tx.clone())
                                .in_current_span(),
                        );
                    }
                    Err(_) => return Ok(()),
                },
            }
        }
    }
    .await;
    if drained_and_gone(conn) {
        // It drained and went: the operator's request is carried out.
        let _ = state.store.clear_drain(&worker.id).await;
    }
    state.links.disconnect(&worker.id, conn_id);
    let _ = state
        .store
        .set_worker_state(&worker.id, WorkerState::Reconnecting, None)
        .await;
    state
        .metrics
        .workers_connected
        .set(state.links.connected() as i64);
    writer.abort();
    tracing::info!("worker link closed");
    outcome
}
