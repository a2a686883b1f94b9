//! The local key provider: 32-byte key files on this machine (the default
//! of `attache dev`, and of any deployment that mounts one as a secret).
//! A key file is named by its fingerprint, so stored keys record which file
//! wrapped them; during a rotation the provider holds the old file and the
//! new one. It never writes a key anywhere but the file it was asked to
//! create.
//!
//! Keys an erasure destroys (one per tenant and per generation of its bot
//! keys) are files of their own in a directory (`--erasable-key-dir`, by
//! default `erasable-keys/` in the data dir), named by the key's id: destroying one overwrites and
//! removes its file. Back that directory up apart from the database, or
//! not at all: a copy of it brings erased data back for anyone who also
//! holds a copy of the database.

use std::path::{Path, PathBuf};

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

/// The prefix of an erasable key's id.
const ERASABLE: &str = "erasable:";

#[derive(Clone)]
pub(crate) struct LocalProvider {
    /// (fingerprint, key); the first wraps new keys.
    keys: Vec<(String, DataKey)>,
    /// Where erasable keys are kept (`None`: this provider makes none).
    erasable: Option<PathBuf>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 96
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl LocalProvider {
    pub(crate) fn new(primary: DataKey) -> LocalProvider {
        LocalProvider {
            keys: vec![(fingerprint(&primary), primary)],
            erasable: None,
        }
    }

    /// Keeps erasable keys in `dir` (made when the first one is).
    pub(crate) fn with_erasable_dir(mut self, dir: PathBuf) -> LocalProvider {
        self.erasable = Some(dir);
        self
    }

    fn erasable_path(&self, key_id: &str) -> Result<PathBuf, ProviderError> {
        let name = key_id.strip_prefix(ERASABLE).unwrap_or(key_id);
        let dir = self.erasable.as_ref().ok_or_else(|| {
            ProviderError::NotConfigured(
                "an erasable key, and this process has no directory for them".into(),
            )
        })?;
        if !valid_name(name) {
            return Err(ProviderError::refused(
                KeyProviderKind::Local,
                key_id,
                "not an erasable key's name",
            ));
        }
        Ok(dir.join(format!("{name}.key")))
    }

    /// The key `key_id` names: a held key file, or an erasable key.
    fn key(&self, key_id: &str) -> Result<DataKey, ProviderError> {
        if !key_id.starts_with(ERASABLE) {
            return self.find(key_id).cloned();
        }
        let path = self.erasable_path(key_id)?;
        match std::fs::read(&path) {
            Ok(bytes) => DataKey::from_bytes(&bytes).ok_or_else(|| {
                ProviderError::refused(KeyProviderKind::Local, key_id, "not a 32-byte key")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ProviderError::refused(
                KeyProviderKind::Local,
                key_id,
                "destroyed (no such erasable key)",
            )),
            Err(e) => Err(ProviderError::unavailable(
                KeyProviderKind::Local,
                key_id,
                format!("{}: {e}", path.display()),
            )),
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
            bytes: self.key(key_id)?.wrap(&subject.aad(), key),
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
        let candidates: Vec<(&str, DataKey)> = match key_id {
            Some(id) => vec![(id, self.key(id)?)],
            // Stored before key ids were: whichever held file opens it.
            None => self
                .keys
                .iter()
                .map(|(id, k)| (id.as_str(), k.clone()))
                .collect(),
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
        self.key(key_id).map(|_| key_id.to_string())
    }

    async fn create_erasable(&self, name: &str) -> Result<String, ProviderError> {
        let key_id = format!("{ERASABLE}{name}");
        let path = self.erasable_path(&key_id)?;
        let failed = |e: std::io::Error| {
            ProviderError::unavailable(
                KeyProviderKind::Local,
                &key_id,
                format!("{}: {e}", path.display()),
            )
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut f = opts.open(&path).map_err(failed)?;
        f.write_all(DataKey::generate().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(failed)?;
        Ok(key_id)
    }

    async fn destroy(&self, key_id: &str) -> Result<(), ProviderError> {
        let path = self.erasable_path(key_id)?;
        let failed = |e: std::io::Error| {
            ProviderError::unavailable(
                KeyProviderKind::Local,
                key_id,
                format!("{}: {e}", path.display()),
            )
        };
        // Overwritten before it is unlinked, so the blocks hold no key.
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(&[0u8; attache_protocol::KEY_LEN])
                    .and_then(|_| f.sync_all())
                    .map_err(failed)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(failed(e)),
        }
        std::fs::remove_file(&path).map_err(failed)
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
