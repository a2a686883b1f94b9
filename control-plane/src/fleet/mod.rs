//! The fleet: the QUIC endpoint edge workers dial, and what happens on each
//! connection. It knows links, not media:
//!
//! - [`enroll`]: a new worker spends its join token for a certificate;
//! - [`link`]: the handshake and the control loop of an enrolled worker;
//! - [`repair`]: hello reconciliation, the liveness sweep, lease expiry;
//! - [`ingest`]: result streams, checked by the pure [`validate`], then
//!   written.
//!
//! Bots move only through the lifecycle service (`crate::bots`); links are
//! kept in `crate::links`.

mod ca;
mod enroll;
mod ingest;
mod link;
mod reconcile;
mod repair;
mod validate;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use attache_protocol::{ALPN_ENROLL, ALPN_FLEET};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use ca::CaError;
pub(crate) use ca::FleetCa;
pub(crate) use repair::sweep;
pub(crate) use writer::ResultWriter;

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
        let link_tasks = tasks.clone();
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
                Some(ALPN_FLEET) => link::serve(&state, conn, shutdown, link_tasks).await,
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
