//! The one trait every key provider implements: wrap and unwrap a tenant's
//! (or the platform's) key under a named provider key. A provider never
//! sees bot data keys or any sealed data, and never stores anything: the
//! wrapped bytes it returns are stored by the caller, with the provider's
//! name and key id beside them.

use attache_protocol::DataKey;

use super::config::KeyProviderKind;

/// What a wrapped key belongs to. Every provider binds the wrapped bytes to
/// it (associated data, an encryption context), so a tenant's wrapped key
/// copied onto another tenant's row does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Tenant(String),
    /// The platform's own key (download links, the operators' sign-in).
    Platform,
}

impl Subject {
    /// The associated data of the local file and of Vault Transit. A
    /// tenant's is the one keys were sealed with before providers existed.
    pub(crate) fn aad(&self) -> Vec<u8> {
        match self {
            Subject::Tenant(id) => format!("attache/tenant-key/{id}").into_bytes(),
            Subject::Platform => b"attache/platform-key".to_vec(),
        }
    }

    /// The KMS encryption context (logged by CloudTrail, so no secrets).
    pub(crate) fn kms_context(&self) -> [(&'static str, String); 2] {
        match self {
            Subject::Tenant(id) => [
                ("attache:key", "tenant".to_string()),
                ("attache:tenant", id.clone()),
            ],
            Subject::Platform => [
                ("attache:key", "platform".to_string()),
                ("attache:tenant", "-".to_string()),
            ],
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Tenant(id) => write!(f, "the key of tenant {id}"),
            Subject::Platform => f.write_str("the platform key"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProviderError {
    /// The provider answered and said no: a wrong token or policy, no such
    /// key, a ciphertext that does not open. Retrying does not help.
    #[error("{provider} refused ({key}): {detail}")]
    Refused {
        provider: KeyProviderKind,
        key: String,
        detail: String,
    },
    /// It could not be reached or failed on its side (sealed, overloaded,
    /// a network error). Worth retrying later.
    #[error("{provider} unavailable ({key}): {detail}")]
    Unavailable {
        provider: KeyProviderKind,
        key: String,
        detail: String,
    },
    /// A key wrapped by a provider (or a local key file) this process was
    /// not given.
    #[error("{0}")]
    NotConfigured(String),
}

impl ProviderError {
    pub(crate) fn refused(
        provider: KeyProviderKind,
        key: &str,
        detail: impl std::fmt::Display,
    ) -> Self {
        ProviderError::Refused {
            provider,
            key: key.to_string(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn unavailable(
        provider: KeyProviderKind,
        key: &str,
        detail: impl std::fmt::Display,
    ) -> Self {
        ProviderError::Unavailable {
            provider,
            key: key.to_string(),
            detail: detail.to_string(),
        }
    }
}

/// A key wrapped by a provider, as stored: the bytes, and which provider
/// and which of its keys wrapped them. `key_id` is `None` only for keys
/// stored before providers were recorded (the local key file of the time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    pub bytes: Vec<u8>,
    pub provider: KeyProviderKind,
    pub key_id: Option<String>,
}

/// What a provider returns from a wrap: the bytes, and the id of the key
/// that wrapped them as it should be recorded (KMS answers an alias with
/// the key's ARN, so a repointed alias does not strand stored keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wrapped {
    pub bytes: Vec<u8>,
    pub key_id: String,
}

/// Wraps and unwraps keys under provider keys named by id: the
/// deployment's (`default_key`) or one a dedicated tenant names.
#[async_trait::async_trait]
pub(crate) trait KeyProvider: Send + Sync {
    fn kind(&self) -> KeyProviderKind;

    /// The key new tenant keys are wrapped under unless a tenant names its
    /// own, as configured (maybe an alias).
    fn default_key(&self) -> &str;

    async fn wrap(
        &self,
        key_id: &str,
        subject: &Subject,
        key: &DataKey,
    ) -> Result<Wrapped, ProviderError>;

    /// `key_id` is the one recorded with the wrapped bytes (`None`: not
    /// recorded, the provider finds it where it can).
    async fn unwrap(
        &self,
        key_id: Option<&str>,
        subject: &Subject,
        wrapped: &[u8],
    ) -> Result<DataKey, ProviderError>;

    /// Wraps `wrapped` again under `to` (which may be `from` itself, at its
    /// newest version). By default it unwraps and wraps; a provider that can
    /// re-encrypt without the key leaving it does so.
    async fn rewrap(
        &self,
        from: Option<&str>,
        to: &str,
        subject: &Subject,
        wrapped: &[u8],
    ) -> Result<Wrapped, ProviderError> {
        let key = self.unwrap(from, subject, wrapped).await?;
        self.wrap(to, subject, &key).await
    }

    /// Makes a new version of `key_id` where the provider versions its
    /// keys (Vault Transit) and returns it; `Ok(None)` where it does not.
    async fn rotate(&self, _key_id: &str) -> Result<Option<u32>, ProviderError> {
        Ok(None)
    }

    /// Checks that `key_id` exists and wraps, and returns the id stored
    /// keys record for it: before a rotation moves keys onto it.
    async fn resolve(&self, key_id: &str) -> Result<String, ProviderError>;

    /// The version of its key that wrapped these bytes, where the bytes say
    /// (Vault's `vault:vN:` prefix).
    fn version_of(&self, _wrapped: &[u8]) -> Option<u32> {
        None
    }

    /// Makes a key of its own that [`KeyProvider::destroy`] can destroy
    /// (`name`: lowercase letters, digits and dashes), and returns the id
    /// wraps under it take.
    async fn create_erasable(&self, name: &str) -> Result<String, ProviderError>;

    /// Destroys a key made by [`KeyProvider::create_erasable`]: nothing it
    /// wrapped opens again, here or in any copy of the wrapped bytes.
    /// Destroying a key already gone succeeds.
    async fn destroy(&self, key_id: &str) -> Result<(), ProviderError>;
}
