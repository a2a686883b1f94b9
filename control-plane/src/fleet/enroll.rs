//! One-time enrollment: a worker with a join token and a fresh key pair
//! gets a client certificate naming its id, region and (for a dedicated
//! tenant's worker) pool, all taken from the token. The token is spent
//! in the same transaction that records the worker.

use std::time::Duration;

use attache_protocol::{EnrollRequest, EnrollResponse, ErrorCode, read_frame_limited, write_frame};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::{hash_secret, random_hex};
use crate::entity::names::{Stored, WorkerState};
use crate::entity::worker;
use crate::store::now;

const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HOSTNAME: usize = 255;

pub(super) async fn serve(state: &AppState, conn: quinn::Connection) {
    let result = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(state, &conn)).await;
    match result {
        Ok(Ok(())) => {
            // Let the worker read the answer and close first.
            let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, conn.closed()).await;
        }
        Ok(Err(code)) => conn.close(code.quic_code().into(), b"enrollment failed"),
        Err(_) => conn.close(
            ErrorCode::BadUserInput.quic_code().into(),
            b"enrollment timed out",
        ),
    }
}

async fn exchange(state: &AppState, conn: &quinn::Connection) -> Result<(), ErrorCode> {
    let (mut send, mut recv) = conn
        .accept_bi()
        .await
        .map_err(|_| ErrorCode::BadUserInput)?;
    // A token, a CSR and a hostname: a few KiB. This peer is not yet
    // authenticated, so it gets no more.
    let req: EnrollRequest = match read_frame_limited(&mut recv, 16 * 1024).await {
        Ok(Some(r)) => r,
        _ => {
            state
                .metrics
                .frames_rejected
                .with_label_values(&["enroll_malformed"])
                .inc();
            return Err(ErrorCode::ProtocolViolation);
        }
    };
    let response = match enroll(state, &req).await {
        Ok(r) => r,
        Err((code, message)) => {
            tracing::warn!(code = %code, "worker enrollment refused: {message}");
            EnrollResponse::Rejected {
                code,
                message: message.to_string(),
            }
        }
    };
    write_frame(&mut send, &response)
        .await
        .map_err(|_| ErrorCode::Internal)?;
    send.finish().map_err(|_| ErrorCode::Internal)?;
    Ok(())
}

async fn enroll(
    state: &AppState,
    req: &EnrollRequest,
) -> Result<EnrollResponse, (ErrorCode, &'static str)> {
    const INVALID: (ErrorCode, &str) = (ErrorCode::Unauthenticated, "invalid or spent join token");
    let parts: Vec<&str> = req.token.trim().split('_').collect();
    let [prefix, id, secret, ca_fp] = parts.as_slice() else {
        return Err(INVALID);
    };
    if *prefix != "ajt" || *ca_fp != state.ca.fingerprint() {
        return Err(INVALID);
    }
    let internal = |_| (ErrorCode::Internal, "internal error");
    let token = state.store.join_token(id).await.map_err(internal)?;
    let presented = hash_secret(secret);
    let stored = token
        .as_ref()
        .map(|t| t.secret_hash.clone())
        .unwrap_or_default();
    let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
    let token = match token {
        Some(t) if matches && t.uses < t.max_uses && t.expires_at > now() => t,
        _ => return Err(INVALID),
    };
    let hostname: String = req
        .hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(MAX_HOSTNAME)
        .collect();
    let worker_id = format!("w-{}", random_hex(6));
    let (cert_pem, fingerprint) = state
        .ca
        .sign_worker(
            &req.csr_pem,
            &worker_id,
            &token.region,
            token.pool.as_deref(),
        )
        .map_err(|_| {
            (
                ErrorCode::BadUserInput,
                "certificate signing request is not valid",
            )
        })?;
    let enrolled = state
        .store
        .enroll_worker(
            &token.id,
            worker::Model {
                id: worker_id.clone(),
                region: token.region.clone(),
                hostname,
                cert_fingerprint: fingerprint,
                capacity: 0,
                state: Stored(WorkerState::Enrolled),
                enrolled_at: now(),
                last_seen_at: None,
                revoked_at: None,
                pool: token.pool.clone(),
                drain_requested_at: None,
            },
        )
        .await
        .map_err(internal)?;
    if !enrolled {
        return Err(INVALID);
    }
    tracing::info!(worker_id = %worker_id, region = %token.region,
        pool = token.pool.as_deref().unwrap_or("shared"), "worker enrolled");
    Ok(EnrollResponse::Enrolled {
        worker_id,
        region: token.region,
        cert_pem,
        ca_pem: state.ca.cert_pem().to_string(),
        pool: token.pool,
    })
}
