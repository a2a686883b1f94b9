//! A worker spoken by hand, for the load harnesses: it enrolls like a real
//! one (once, with its join token, through `EdgeWorker::build`), then
//! speaks the fleet protocol itself over QUIC with mutual TLS, so that
//! thousands of bots cost no browser.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use attache_edge_worker::{Config as WorkerConfig, EdgeWorker};
use attache_protocol::{ALPN_FLEET, BotReport, PROTOCOL_VERSION, WorkerMsg, write_frame};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Enrolls a worker in `dir` with `token` (or reuses what an earlier
/// enrollment left there).
pub async fn enroll(control_plane: SocketAddr, token: Option<String>, dir: &Path) {
    if dir.join("worker.pem").exists() {
        return;
    }
    let mut wc = WorkerConfig::new(control_plane.to_string(), dir);
    wc.join_token = token;
    EdgeWorker::build(wc).await.expect("enrolls");
}

/// Connects as the worker enrolled in `dir` and says hello: its
/// connection and control stream.
pub async fn connect(
    control_plane: SocketAddr,
    dir: &Path,
    capacity: u32,
    bots: Vec<BotReport>,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let ca = CertificateDer::from_pem_file(dir.join("fleet-ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_file(dir.join("worker.pem")).unwrap()],
        PrivateKeyDer::from_pem_file(dir.join("worker.key")).unwrap(),
    )
    .unwrap();
    tls.alpn_protocols = vec![ALPN_FLEET.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    // As a real worker's link: kept alive while its streams wait on flow
    // control.
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(std::time::Duration::from_millis(250)));
    client.transport_config(Arc::new(transport));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(client);
    let conn = ep
        .connect(control_plane, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    write_frame(
        &mut send,
        &WorkerMsg::Hello {
            protocol_version: PROTOCOL_VERSION,
            software_version: "sim".into(),
            capacity,
            bots,
        },
    )
    .await
    .unwrap();
    (conn, send, recv)
}
