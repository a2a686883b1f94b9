//! The fleet certificate authority: created in the data directory on first
//! start, it signs the control plane's QUIC server certificate and every
//! enrolled worker's client certificate.
//!
//! The CA's private key never leaves this module's files (mode 0600). Join
//! tokens carry the SHA-256 of the CA certificate so that a worker enrolling
//! for the first time can pin it without any other out-of-band step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("fleet CA file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

pub(crate) struct FleetCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// What the QUIC server presents: its leaf, then the CA.
pub(crate) struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

const CA_CERT: &str = "fleet-ca.pem";
const CA_KEY: &str = "fleet-ca.key";
const WORKER_CERT_DAYS: u64 = 365;

impl FleetCa {
    /// Loads the CA from the configured directory (which must hold one), or
    /// from the data directory, creating it there on first start.
    pub(crate) fn for_config(config: &crate::Config) -> Result<FleetCa, CaError> {
        match &config.fleet_ca_dir {
            Some(dir) => FleetCa::load(dir),
            None => FleetCa::load_or_create(&config.data_dir),
        }
    }

    fn load(dir: &Path) -> Result<FleetCa, CaError> {
        let cert_pem = read(&dir.join(CA_CERT))?;
        let key = KeyPair::from_pem(&read(&dir.join(CA_KEY))?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        let cert_der = pem_to_der(&cert_pem)?;
        Ok(FleetCa {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    /// Loads the CA from `dir`, creating it on first start.
    pub(crate) fn load_or_create(dir: &Path) -> Result<FleetCa, CaError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if cert_path.exists() && key_path.exists() {
            return FleetCa::load(dir);
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Attaché");
        dn.push(DnType::CommonName, "Attaché fleet CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time_now() - Duration::from_secs(3600);
        params.not_after = time_now() + Duration::from_secs(10 * 365 * 86_400);
        let cert = params.self_signed(&key)?;
        std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert.pem())?;
        Ok(FleetCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Hex SHA-256 of the CA certificate, as pinned in join tokens.
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// A fresh server certificate for the QUIC endpoint, valid for `names`
    /// (DNS names or IP addresses the workers dial).
    pub(crate) fn server_identity(&self, names: &[String]) -> Result<ServerIdentity, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Attaché control plane");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time_now() - Duration::from_secs(3600);
        params.not_after = time_now() + Duration::from_secs(WORKER_CERT_DAYS * 86_400);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Signs a worker's CSR. Only the public key is taken from the request:
    /// the subject (worker id, region), the pool (a `urn:attache:pool:NAME`
    /// URI name, for a worker of a dedicated pool) and the usages are ours.
    pub(crate) fn sign_worker(
        &self,
        csr_pem: &str,
        worker_id: &str,
        region: &str,
        pool: Option<&str>,
    ) -> Result<(String, String), CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, worker_id);
        dn.push(DnType::OrganizationalUnitName, region);
        params.distinguished_name = dn;
        if let Some(pool) = pool {
            params.subject_alt_names = vec![SanType::URI(pool_uri(pool).try_into()?)];
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = time_now() - Duration::from_secs(3600);
        params.not_after = time_now() + Duration::from_secs(WORKER_CERT_DAYS * 86_400);
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok((cert.pem(), fingerprint(cert.der())))
    }

    pub(crate) fn root_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }
}

pub(crate) use attache_protocol::cert_fingerprint as fingerprint;

/// How a worker's certificate names its pool.
fn pool_uri(pool: &str) -> String {
    format!("urn:attache:pool:{pool}")
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>, CaError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| CaError::Cert(rcgen::Error::CouldNotParseCertificate))
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, contents: &str) -> Result<(), CaError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|source| CaError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded_with_the_same_fingerprint() {
        let dir = std::env::temp_dir().join(format!("attache-ca-{}", uuid::Uuid::new_v4()));
        let a = FleetCa::load_or_create(&dir).unwrap();
        let b = FleetCa::load_or_create(&dir).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(CA_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_managed_ca_directory_is_used_never_created() {
        let managed = std::env::temp_dir().join(format!("attache-ca-{}", uuid::Uuid::new_v4()));
        let data = std::env::temp_dir().join(format!("attache-data-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&managed).unwrap();
        let mut config = crate::Config::local(&data);
        config.fleet_ca_dir = Some(managed.clone());
        assert!(
            FleetCa::for_config(&config).is_err(),
            "an empty managed dir is an error"
        );
        assert!(
            !managed.join(CA_KEY).exists(),
            "and nothing is created in it"
        );
        let made = FleetCa::load_or_create(&managed).unwrap();
        let used = FleetCa::for_config(&config).unwrap();
        assert_eq!(made.fingerprint(), used.fingerprint());
        assert!(
            !data.join(CA_KEY).exists(),
            "the data dir gets no CA of its own"
        );
        std::fs::remove_dir_all(managed).unwrap();
    }

    #[test]
    fn worker_subject_comes_from_us_not_the_csr() {
        let dir = std::env::temp_dir().join(format!("attache-ca-{}", uuid::Uuid::new_v4()));
        let ca = FleetCa::load_or_create(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut req = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        req.distinguished_name
            .push(DnType::CommonName, "someone-else");
        let csr = req.serialize_request(&key).unwrap().pem().unwrap();
        let (pem, fp) = ca.sign_worker(&csr, "w-1", "local", None).unwrap();
        assert_eq!(fp.len(), 64);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let names_pool = |pem: &str| {
            let der = pem_to_der(pem).unwrap();
            der.windows(b"urn:attache:pool:".len())
                .any(|w| w == b"urn:attache:pool:")
        };
        assert!(!names_pool(&pem), "no pool, no pool name");
        assert!(ca.sign_worker("not a csr", "w-1", "local", None).is_err());
        // A pool worker's certificate names its pool.
        let (pem, _) = ca.sign_worker(&csr, "w-2", "local", Some("acme")).unwrap();
        assert!(names_pool(&pem));
        let der = pem_to_der(&pem).unwrap();
        assert!(
            der.windows(21).any(|w| w == b"urn:attache:pool:acme"),
            "the pool's own name"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
