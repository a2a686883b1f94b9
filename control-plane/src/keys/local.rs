//! The local key provider: 32-byte key files on this machine (the default
//! of `attache dev`, and of any deployment that mounts one as a secret).
//! A key file is named by its fingerprint, so stored keys record which file
//! wrapped them; during a rotation the provider holds the old file and the
//! new one. It never writes a key anywhere but the file it was asked to
//! create.

use std::path::Path;

use attache_protocol::DataKey;

use super::KeyError;
use super::config::KeyProviderKind;
use super::provider::{KeyProvider, ProviderError, Subject, Wrapped};

/// Loads the master key, creating it (readable by this user only) when
/// `create` allows and there is none.
pub(crate) fn load_master_key(path: &Path, create: bool) -> Result<DataKey, KeyError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => DataKey::from_bytes(&bytes).ok_or(KeyError::BadLength(shown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(KeyError::Missing(shown));
            }
            let key = DataKey::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(shown.clone(), e))?;
            }
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                #[cfg(unix)]
                use std::os::unix::fs::OpenOptionsExt;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                opts.mode(0o600);
                let mut f = opts
                    .open(&tmp)
                    .map_err(|e| KeyError::Io(shown.clone(), e))?;
                f.write_all(key.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| KeyError::Io(shown.clone(), e))?;
            }
            std::fs::rename(&tmp, path).map_err(|e| KeyError::Io(shown.clone(), e))?;
            tracing::info!(path = %shown, "created a master key");
            Ok(key)
        }
        Err(e) => Err(KeyError::Io(shown, e)),
    }
}

/// A key file's public name: 16 hex digits of an HMAC of a fixed label, so
/// it identifies the key without revealing anything of it.
pub(crate) fn fingerprint(key: &DataKey) -> String {
    hex::encode(&super::derive(key, "attache/key-id")[..8])
}

#[derive(Clone)]
pub(crate) struct LocalProvider {
    /// (fingerprint, key); the first wraps new keys.
    keys: Vec<(String, DataKey)>,
}

impl LocalProvider {
    pub(crate) fn new(primary: DataKey) -> LocalProvider {
        LocalProvider {
            keys: vec![(fingerprint(&primary), primary)],
        }
    }

    /// `next` becomes the key that wraps; the others still unwrap.
    pub(crate) fn with_primary(mut self, next: DataKey) -> LocalProvider {
        let id = fingerprint(&next);
        self.keys.retain(|(k, _)| *k != id);
        self.keys.insert(0, (id, next));
        self
    }

    /// Every key file held, the wrapping one first: the ones secrets sealed
    /// before the platform key existed were derived from.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &DataKey> {
        self.keys.iter().map(|(_, k)| k)
    }

    fn find(&self, key_id: &str) -> Result<&DataKey, ProviderError> {
        self.keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
            .ok_or_else(|| {
                ProviderError::NotConfigured(format!(
                    "a key wrapped by the local key file {key_id}, which this process was not given (it has {})",
                    self.keys
                        .iter()
                        .map(|(id, _)| id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

#[async_trait::async_trait]
impl KeyProvider for LocalProvider {
    fn kind(&self) -> KeyProviderKind {
        KeyProviderKind::Local
    }

    fn default_key(&self) -> &str {
        &self.keys[0].0
    }

    async fn wrap(
        &self,
        key_id: &str,
        subject: &Subject,
        key: &DataKey,
    ) -> Result<Wrapped, ProviderError> {
        Ok(Wrapped {
            bytes: self.find(key_id)?.wrap(&subject.aad(), key),
            key_id: key_id.to_string(),
        })
    }

    async fn unwrap(
        &self,
        key_id: Option<&str>,
        subject: &Subject,
        wrapped: &[u8],
    ) -> Result<DataKey, ProviderError> {
        let aad = subject.aad();
        let candidates: Vec<(&str, &DataKey)> = match key_id {
            Some(id) => vec![(id, self.find(id)?)],
            // Stored before key ids were: whichever held file opens it.
            None => self.keys.iter().map(|(id, k)| (id.as_str(), k)).collect(),
        };
        for (_, k) in &candidates {
            if let Ok(key) = k.unwrap_key(&aad, wrapped) {
                return Ok(key);
            }
        }
        Err(ProviderError::refused(
            KeyProviderKind::Local,
            key_id.unwrap_or("unrecorded"),
            format!("{subject} does not unwrap with the local key file"),
        ))
    }

    async fn resolve(&self, key_id: &str) -> Result<String, ProviderError> {
        self.find(key_id).map(|_| key_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        assert!(matches!(
            load_master_key(&path, false),
            Err(KeyError::Missing(_))
        ));
        let k1 = load_master_key(&path, true).unwrap();
        let k2 = load_master_key(&path, true).unwrap();
        assert_eq!(k1, k2, "made once, then loaded");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            load_master_key(&path, true),
            Err(KeyError::BadLength(_))
        ));
    }

    #[tokio::test]
    async fn wraps_under_its_primary_and_opens_with_any_held_file() {
        let (old, new) = (DataKey::generate(), DataKey::generate());
        let tenant = Subject::Tenant("t1".into());
        let key = DataKey::generate();
        let p = LocalProvider::new(old.clone());
        let old_id = p.default_key().to_string();
        assert_eq!(old_id, fingerprint(&old));
        assert_eq!(old_id.len(), 16);
        let w = p.wrap(&old_id, &tenant, &key).await.unwrap();
        assert_eq!(w.key_id, old_id);
        let w = w.bytes;
        // Keys stored before providers: the same bytes as the bare key file.
        assert_eq!(old.unwrap_key(b"attache/tenant-key/t1", &w).unwrap(), key);
        let p = p.with_primary(new.clone());
        assert_eq!(p.default_key(), fingerprint(&new));
        assert_eq!(p.unwrap(Some(&old_id), &tenant, &w).await.unwrap(), key);
        assert_eq!(p.unwrap(None, &tenant, &w).await.unwrap(), key);
        let moved = p
            .rewrap(Some(&old_id), &fingerprint(&new), &tenant, &w)
            .await
            .unwrap();
        assert_eq!(moved.key_id, fingerprint(&new));
        assert_eq!(new.unwrap_key(&tenant.aad(), &moved.bytes).unwrap(), key);
        // Bound to its tenant.
        assert!(matches!(
            p.unwrap(Some(&old_id), &Subject::Tenant("t2".into()), &w)
                .await,
            Err(ProviderError::Refused { .. })
        ));
        // A file it does not hold.
        let stranger = fingerprint(&DataKey::generate());
        assert!(matches!(
            p.unwrap(Some(&stranger), &tenant, &w).await,
            Err(ProviderError::NotConfigured(_))
        ));
        assert!(p.resolve(&stranger).await.is_err());
        assert_eq!(p.resolve(&old_id).await.unwrap(), old_id);
    }
}
