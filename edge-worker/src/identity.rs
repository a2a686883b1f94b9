//! The worker's identity: a key pair made here (the private key never
//! leaves the data directory), a client certificate from the fleet CA, and
//! the CA itself. Enrollment trades a one-time join token for the
//! certificate; the token's CA fingerprint authenticates the control plane
//! before the worker sends it anything.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use attache_protocol::{
    ALPN_ENROLL, ALPN_FLEET, EnrollRequest, EnrollResponse, ErrorCode, read_frame, write_frame,
};
use rcgen::{CertificateParams, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

use crate::config::Config;

const KEY_FILE: &str = "worker.key";
const CERT_FILE: &str = "worker.pem";
const CA_FILE: &str = "fleet-ca.pem";
const META_FILE: &str = "worker.json";
const ENROLL_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("not enrolled yet and no join token given (attache admin worker-token)")]
    NoToken,
    #[error("join token is malformed")]
    BadToken,
    #[error("control plane refused enrollment ({0}): {1}")]
    Rejected(ErrorCode, String),
    #[error("cannot reach the control plane at {0}: {1}")]
    Unreachable(String, String),
    #[error("identity file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("certificate: {0}")]
    Cert(String),
}

#[derive(Serialize, Deserialize)]
struct Meta {
    worker_id: String,
    region: String,
    /// Absent in identities enrolled before pools: shared.
    #[serde(default)]
    pool: Option<String>,
}

pub(crate) struct Identity {
    pub worker_id: String,
    pub region: String,
    /// The dedicated pool this worker serves; `None`: shared.
    pub pool: Option<String>,
    chain: Vec<CertificateDer<'static>>,
    key_pem: String,
    ca: CertificateDer<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

use attache_protocol::cert_fingerprint as fingerprint;

fn cert_err(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Cert(e.to_string())
}

impl Identity {
    /// TLS for the fleet link: the fleet CA as the only root, our client
    /// certificate, TLS 1.3, the fleet ALPN.
    pub(crate) fn client_config(&self) -> Result<quinn::ClientConfig, IdentityError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(cert_err)?;
        let key = KeyPair::from_pem(&self.key_pem).map_err(cert_err)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(cert_err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.chain.clone(), key)
            .map_err(cert_err)?;
        tls.alpn_protocols = vec![ALPN_FLEET.to_vec()];
        quic_client(tls)
    }
}

pub(crate) fn quic_client(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, IdentityError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(cert_err)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(Duration::from_millis(250)))
        .max_idle_timeout(Some(
            Duration::from_secs(30).try_into().expect("idle timeout"),
        ));
    client.transport_config(Arc::new(transport));
    Ok(client)
}

pub(crate) async fn resolve(config: &Config) -> Result<SocketAddr, IdentityError> {
    tokio::net::lookup_host(&config.control_plane)
        .await
        .map_err(|e| IdentityError::Unreachable(config.control_plane.clone(), e.to_string()))?
        .next()
        .ok_or_else(|| {
            IdentityError::Unreachable(config.control_plane.clone(), "no address".into())
        })
}

pub(crate) fn client_endpoint(addr: SocketAddr) -> Result<quinn::Endpoint, IdentityError> {
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .expect("bind addr");
    quinn::Endpoint::client(bind).map_err(|e| IdentityError::Io("quic socket".into(), e))
}

pub(crate) async fn load_or_enroll(config: &Config) -> Result<Identity, IdentityError> {
    let dir = &config.data_dir;
    if dir.join(META_FILE).exists() {
        return load(dir);
    }
    let token = config.join_token.as_deref().ok_or(IdentityError::NoToken)?;
    enroll(config, token).await
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|e| IdentityError::Io(path.display().to_string(), e))
}

fn load(dir: &Path) -> Result<Identity, IdentityError> {
    use rustls::pki_types::pem::PemObject;
    let meta: Meta = serde_json::from_str(&read(&dir.join(META_FILE))?).map_err(cert_err)?;
    let chain = vec![
        CertificateDer::from_pem_slice(read(&dir.join(CERT_FILE))?.as_bytes()).map_err(cert_err)?,
    ];
    let ca =
        CertificateDer::from_pem_slice(read(&dir.join(CA_FILE))?.as_bytes()).map_err(cert_err)?;
    Ok(Identity {
        worker_id: meta.worker_id,
        region: meta.region,
        pool: meta.pool,
        chain,
        key_pem: read(&dir.join(KEY_FILE))?,
        ca,
    })
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), IdentityError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(if private { 0o600 } else { 0o644 });
    opts.open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| IdentityError::Io(path.display().to_string(), e))
}

async fn enroll(config: &Config, token: &str) -> Result<Identity, IdentityError> {
    let parts: Vec<&str> = token.trim().split('_').collect();
    let ca_pin = match parts.as_slice() {
        ["ajt", _, _, fp] if fp.len() == 64 => fp.to_string(),
        _ => return Err(IdentityError::BadToken),
    };
    let key = KeyPair::generate().map_err(cert_err)?;
    let csr = CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(cert_err)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(cert_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            pin: ca_pin.clone(),
            provider: provider(),
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_ENROLL.to_vec()];
    let addr = resolve(config).await?;
    let endpoint = client_endpoint(addr)?;
    let unreachable = |e: &dyn std::fmt::Display| {
        IdentityError::Unreachable(config.control_plane.clone(), e.to_string())
    };
    let exchange = async {
        let conn = endpoint
            .connect_with(quic_client(tls)?, addr, &config.server_name())
            .map_err(|e| unreachable(&e))?
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| unreachable(&e))?;
        let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        write_frame(
            &mut send,
            &EnrollRequest {
                token: token.trim().to_string(),
                csr_pem: csr,
                hostname: hostname.trim().to_string(),
            },
        )
        .await
        .map_err(|e| unreachable(&e))?;
        let _ = send.finish();
        let resp: Option<EnrollResponse> =
            read_frame(&mut recv).await.map_err(|e| unreachable(&e))?;
        conn.close(0u32.into(), b"enrolled");
        resp.ok_or_else(|| unreachable(&"no answer"))
    };
    let resp = tokio::time::timeout(ENROLL_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(&"enrollment timed out"))??;
    endpoint.wait_idle().await;
    let (worker_id, region, pool, cert_pem, ca_pem) = match resp {
        EnrollResponse::Enrolled {
            worker_id,
            region,
            cert_pem,
            ca_pem,
            pool,
        } => (worker_id, region, pool, cert_pem, ca_pem),
        EnrollResponse::Rejected { code, message } => {
            return Err(IdentityError::Rejected(code, message));
        }
    };
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| IdentityError::Io(dir.display().to_string(), e))?;
    write(&dir.join(KEY_FILE), &key.serialize_pem(), true)?;
    write(&dir.join(CERT_FILE), &cert_pem, false)?;
    write(&dir.join(CA_FILE), &ca_pem, false)?;
    let meta = serde_json::to_string(&Meta {
        worker_id,
        region,
        pool,
    })
    .map_err(cert_err)?;
    write(&dir.join(META_FILE), &meta, false)?;
    let id = load(dir)?;
    if fingerprint(&id.ca) != ca_pin {
        return Err(IdentityError::Cert(
            "fleet CA differs from the one the join token names".into(),
        ));
    }
    tracing::info!(worker_id = %id.worker_id, region = %id.region,
        pool = id.pool.as_deref().unwrap_or("shared"), "enrolled with the control plane");
    Ok(id)
}

/// Trusts exactly the CA whose SHA-256 the join token carries, then checks
/// the server certificate against it as usual (name, validity, signature).
#[derive(Debug)]
struct PinnedCa {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General("fleet CA does not match the join token".into())
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
