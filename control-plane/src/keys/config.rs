//! How a deployment reaches its key provider: typed settings, checked
//! before any port is bound. The CLI fills them from flags and environment;
//! tests fill them directly. Nothing here talks to a provider.

use std::path::PathBuf;
use std::time::Duration;

use attache_protocol::Secret;

use crate::config::ConfigError;

/// Which provider wraps new tenant keys (and, after a rotation, all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyProviderKind {
    /// A 32-byte key file on this machine (`--master-key-file`).
    Local,
    /// OpenBao or HashiCorp Vault, its Transit secrets engine.
    Vault,
    /// AWS KMS.
    Kms,
}

impl KeyProviderKind {
    pub const ALL: [KeyProviderKind; 3] = [
        KeyProviderKind::Local,
        KeyProviderKind::Vault,
        KeyProviderKind::Kms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyProviderKind::Local => "local",
            KeyProviderKind::Vault => "vault",
            KeyProviderKind::Kms => "kms",
        }
    }

    pub fn parse(s: &str) -> Option<KeyProviderKind> {
        KeyProviderKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for KeyProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key providers of a deployment. `provider` wraps every new key; the
/// others, when set, only open keys they wrapped before (a change of
/// provider in progress). The local key file is `Config::master_key_file`.
#[derive(Debug, Clone)]
pub struct KeyProviderConfig {
    pub provider: KeyProviderKind,
    pub vault: Option<VaultConfig>,
    pub kms: Option<KmsConfig>,
}

impl Default for KeyProviderConfig {
    fn default() -> Self {
        KeyProviderConfig {
            provider: KeyProviderKind::Local,
            vault: None,
            kms: None,
        }
    }
}

/// Where the Vault token comes from: never a command-line value.
#[derive(Debug, Clone)]
pub enum VaultToken {
    /// Read at start and again when Vault refuses it (a Vault Agent
    /// rewrites its sink file when it renews the token).
    File(PathBuf),
    /// From the environment (`ATTACHE_VAULT_TOKEN`).
    Value(Secret),
}

impl VaultToken {
    /// A token given by value (from the environment).
    pub fn value(token: impl Into<String>) -> VaultToken {
        VaultToken::Value(Secret::new(token))
    }
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// `https://vault.example:8200`.
    pub addr: String,
    pub token: VaultToken,
    /// Where the Transit engine is mounted (`transit`).
    pub transit_mount: String,
    /// The Transit key that wraps this deployment's tenant keys; a dedicated
    /// tenant may have one of its own (`attache admin tenant-key`).
    pub transit_key: String,
    /// A PEM file of CA certificates Vault's TLS certificate chains to,
    /// besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Plain http (a dev server, tests). Refused by production mode unless
    /// development fallbacks are allowed.
    pub allow_http: bool,
    /// One request's timeout.
    pub timeout: Duration,
}

impl VaultConfig {
    pub fn new(addr: impl Into<String>, token: VaultToken, transit_key: impl Into<String>) -> Self {
        VaultConfig {
            addr: addr.into(),
            token,
            transit_mount: "transit".into(),
            transit_key: transit_key.into(),
            ca_file: None,
            allow_http: false,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct KmsConfig {
    /// Key id, ARN or alias (`alias/attache`) that wraps this deployment's
    /// tenant keys; a dedicated tenant may have one of its own.
    pub key_id: String,
    /// `None`: the region of the standard AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// A KMS-compatible endpoint (a VPC endpoint, an emulator in tests).
    pub endpoint: Option<String>,
    /// Static credentials (tests); `None` uses the standard AWS chain
    /// (environment, profile, web identity, instance role), as S3 does.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

impl KmsConfig {
    pub fn new(key_id: impl Into<String>) -> Self {
        KmsConfig {
            key_id: key_id.into(),
            region: None,
            endpoint: None,
            access_key: None,
            secret_key: None,
        }
    }
}

impl std::fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("KmsConfig")
            .field("key_id", &self.key_id)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// A Transit key or mount name: what Vault accepts in a path segment.
fn valid_vault_name(s: &str, slashes: bool) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && (slashes || !s.contains('/'))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

pub(crate) fn valid_transit_key(s: &str) -> bool {
    valid_vault_name(s, false)
}

impl KeyProviderConfig {
    /// `production` refuses plain http to Vault unless `allow_dev_fallbacks`.
    pub(crate) fn validate(
        &self,
        production: bool,
        allow_dev_fallbacks: bool,
    ) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        match self.provider {
            KeyProviderKind::Vault if self.vault.is_none() => {
                return invalid("--key-provider vault needs --vault-addr and a token".into());
            }
            KeyProviderKind::Kms if self.kms.is_none() => {
                return invalid("--key-provider kms needs --kms-key-id".into());
            }
            _ => {}
        }
        if let Some(v) = &self.vault {
            let url = match url::Url::parse(&v.addr) {
                Ok(u) => u,
                Err(e) => return invalid(format!("vault address {:?}: {e}", v.addr)),
            };
            match url.scheme() {
                "https" => {}
                "http" if v.allow_http => {
                    if production && !allow_dev_fallbacks {
                        return Err(ConfigError::DevFallback(
                            "Vault over plain http: use an https address, or --allow-dev-fallbacks",
                        ));
                    }
                }
                "http" => {
                    return invalid(format!(
                        "vault address {:?} is plain http: use https (or --vault-allow-http for a dev server)",
                        v.addr
                    ));
                }
                other => return invalid(format!("vault address scheme {other:?}")),
            }
            if url.host_str().is_none() || url.query().is_some() {
                return invalid(format!("vault address {:?}", v.addr));
            }
            if !valid_vault_name(&v.transit_mount, true) {
                return invalid(format!("vault transit mount {:?}", v.transit_mount));
            }
            if !valid_transit_key(&v.transit_key) {
                return invalid(format!("vault transit key name {:?}", v.transit_key));
            }
            if v.timeout.is_zero() {
                return invalid("vault timeout must be positive".into());
            }
        }
        if let Some(k) = &self.kms
            && (k.key_id.trim().is_empty() || k.key_id.len() > 2048)
        {
            return invalid(format!("kms key id {:?}", k.key_id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(addr: &str) -> KeyProviderConfig {
        KeyProviderConfig {
            provider: KeyProviderKind::Vault,
            vault: Some(VaultConfig::new(
                addr,
                VaultToken::Value(Secret::new("t")),
                "attache",
            )),
            kms: None,
        }
    }

    #[test]
    fn names_round_trip() {
        for k in KeyProviderKind::ALL {
            assert_eq!(KeyProviderKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(KeyProviderKind::parse("hsm"), None);
    }

    #[test]
    fn vault_wants_https_unless_allowed_and_production_refuses_http() {
        vault("https://vault.example:8200")
            .validate(true, false)
            .unwrap();
        assert!(
            vault("http://127.0.0.1:8200")
                .validate(false, true)
                .is_err()
        );
        let mut c = vault("http://127.0.0.1:8200");
        c.vault.as_mut().unwrap().allow_http = true;
        c.validate(false, true).unwrap();
        assert!(matches!(
            c.validate(true, false),
            Err(ConfigError::DevFallback(_))
        ));
        c.validate(true, true).unwrap();
        assert!(vault("ftp://vault").validate(false, true).is_err());
        assert!(vault("not a url").validate(false, true).is_err());
    }

    #[test]
    fn names_and_missing_settings_are_checked() {
        let mut c = vault("https://vault.example");
        c.vault.as_mut().unwrap().transit_key = "../sys".into();
        assert!(c.validate(false, true).is_err());
        c.vault.as_mut().unwrap().transit_key = "a/b".into();
        assert!(c.validate(false, true).is_err(), "a key name has no slash");
        c.vault.as_mut().unwrap().transit_key = "tenant-acme_1.v2".into();
        c.vault.as_mut().unwrap().transit_mount = "kv/transit".into();
        c.validate(false, true).unwrap();
        c.vault = None;
        assert!(c.validate(false, true).is_err(), "vault without settings");
        let kms = KeyProviderConfig {
            provider: KeyProviderKind::Kms,
            vault: None,
            kms: None,
        };
        assert!(kms.validate(false, true).is_err());
        let kms = KeyProviderConfig {
            kms: Some(KmsConfig::new("alias/attache")),
            ..kms
        };
        kms.validate(true, false).unwrap();
    }
}
