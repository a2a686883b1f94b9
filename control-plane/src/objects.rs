//! Object storage for recordings: a local directory by default (`attache
//! dev`), S3 or any S3-compatible store in production. This is one store;
//! which store a tenant's data goes to is `crate::residency`'s decision. Both sides offer the
//! same few operations and hand out short-lived download URLs: S3 presigns
//! them; the local store signs them with a key of its own and serves them on
//! `/downloads/…`.
//!
//! Keys are built by the control plane only (`tenants/<tenant>/bots/<bot>/…`),
//! and checked again here so no key can leave the store's root.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone)]
pub enum ObjectStoreConfig {
    /// A directory on this machine (development and single-host setups).
    Local {
        dir: PathBuf,
    },
    S3(S3Config),
}

#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// An S3-compatible endpoint; `None` is AWS itself.
    pub endpoint: Option<String>,
    /// Path-style addressing (most S3-compatible servers want it).
    pub force_path_style: bool,
    /// Static credentials; `None` uses the standard AWS chain (environment,
    /// profile, web identity, instance role).
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Create the bucket when it is missing (tests and demos; production
    /// buckets are provisioned with their policies by Terraform).
    pub create_bucket: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("force_path_style", &self.force_path_style)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object key")]
    BadKey,
    #[error("object store: {0}")]
    Io(String),
    #[error("object work stopped: {0}")]
    Task(String),
}

fn io(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Io(e.to_string())
}

/// What a download URL carries for the local store.
#[derive(Serialize, Deserialize)]
struct Grant {
    /// Object key.
    k: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// File name offered to the browser.
    f: String,
    /// Content type.
    t: String,
}

#[derive(Clone)]
pub struct Objects {
    inner: Arc<Backend>,
    /// Signs download links; the same on every replica of a deployment.
    signing_key: Arc<Vec<u8>>,
}

enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
}

/// Keys are relative paths of plain segments.
fn check_key(key: &str) -> Result<(), ObjectError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok { Ok(()) } else { Err(ObjectError::BadKey) }
}

impl Objects {
    /// Opens the store. `signing_key` signs download links: every replica
    /// of a deployment must use the same one.
    pub async fn open(
        config: &ObjectStoreConfig,
        signing_key: Vec<u8>,
    ) -> Result<Objects, ObjectError> {
        let backend = match config {
            ObjectStoreConfig::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(io)?;
                Backend::Local { root: dir.clone() }
            }
            ObjectStoreConfig::S3(c) => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_sdk_s3::config::Region::new(c.region.clone()));
                if let (Some(a), Some(s)) = (&c.access_key, &c.secret_key) {
                    loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                        a.clone(),
                        s.clone(),
                        None,
                        None,
                        "attache-config",
                    ));
                }
                if let Some(ep) = &c.endpoint {
                    loader = loader.endpoint_url(ep.clone());
                }
                let shared = loader.load().await;
                let conf = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(c.force_path_style)
                    .build();
                let client = aws_sdk_s3::Client::from_conf(conf);
                if c.create_bucket {
                    let exists = client.head_bucket().bucket(&c.bucket).send().await.is_ok();
                    if !exists {
                        client
                            .create_bucket()
                            .bucket(&c.bucket)
                            .send()
                            .await
                            .map_err(|e| io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                    }
                }
                Backend::S3 {
                    client,
                    bucket: c.bucket.clone(),
                }
            }
        };
        Ok(Objects {
            inner: Arc::new(backend),
            signing_key: Arc::new(signing_key),
        })
    }

    pub fn kind(&self) -> &'static str {
        match &*self.inner {
            Backend::Local { .. } => "local",
            Backend::S3 { .. } => "s3",
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        check_key(key)?;
        match &*self.inner {
            Backend::Local { root, .. } => {
                let path = root.join(key);
                tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
                    .await
                    .map_err(io)?
            }
            Backend::S3 { client, bucket } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(bytes.into())
                    .send()
                    .await
                    .map_err(|e| io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                Ok(())
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        check_key(key)?;
        match &*self.inner {
            Backend::Local { root, .. } => match tokio::fs::read(root.join(key)).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(e)),
            },
            Backend::S3 { client, bucket } => {
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(out) => {
                        let body = out.body.collect().await.map_err(io)?;
                        Ok(Some(body.into_bytes().to_vec()))
                    }
                    Err(e) => {
                        let e = e.into_service_error();
                        if e.is_no_such_key() {
                            Ok(None)
                        } else {
                            Err(io(aws_sdk_s3::error::DisplayErrorContext(e)))
                        }
                    }
                }
            }
        }
    }

    /// Deletes one object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        check_key(key)?;
        match &*self.inner {
            Backend::Local { root, .. } => match tokio::fs::remove_file(root.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(e)),
            },
            Backend::S3 { client, bucket } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                Ok(())
            }
        }
    }

    /// Deletes every object under `prefix` (a folder, ending in `/`), at
    /// any depth, and says how many there were. Nothing there is not an
    /// error.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, ObjectError> {
        if !prefix.ends_with('/') {
            return Err(ObjectError::BadKey);
        }
        check_key(prefix.trim_end_matches('/'))?;
        match &*self.inner {
            Backend::Local { root, .. } => {
                let dir = root.join(prefix.trim_end_matches('/'));
                tokio::task::spawn_blocking(move || {
                    let n = count_files(&dir)?;
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => Ok(n),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(n),
                        Err(e) => Err(io(e)),
                    }
                })
                .await
                .map_err(io)?
            }
            Backend::S3 { client, bucket } => {
                use aws_sdk_s3::types::{Delete, ObjectIdentifier};
                let mut n = 0;
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                    let keys: Vec<ObjectIdentifier> = page
                        .contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .map(|k| ObjectIdentifier::builder().key(k).build().map_err(io))
                        .collect::<Result<_, _>>()?;
                    if keys.is_empty() {
                        continue;
                    }
                    let count = keys.len() as u64;
                    // One request per listed page (at most 1,000 keys).
                    let delete = Delete::builder()
                        .set_objects(Some(keys))
                        .quiet(true)
                        .build()
                        .map_err(io)?;
                    let out = client
                        .delete_objects()
                        .bucket(bucket)
                        .delete(delete)
                        .send()
                        .await
                        .map_err(|e| io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                    if let Some(e) = out.errors().first() {
                        return Err(ObjectError::Io(format!(
                            "deleting {}: {}",
                            e.key().unwrap_or("?"),
                            e.message().unwrap_or("refused")
                        )));
                    }
                    n += count;
                }
                Ok(n)
            }
        }
    }

    /// Keys under `prefix` (a folder, ending in `/`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        check_key(prefix.trim_end_matches('/'))?;
        let mut keys = match &*self.inner {
            Backend::Local { root, .. } => {
                let dir = root.join(prefix.trim_end_matches('/'));
                let prefix = prefix.to_string();
                tokio::task::spawn_blocking(move || -> Result<Vec<String>, ObjectError> {
                    let mut out = Vec::new();
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                        Err(e) => return Err(io(e)),
                    };
                    for entry in entries {
                        let entry = entry.map_err(io)?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if entry.file_type().map_err(io)?.is_file() && !name.starts_with(".tmp-") {
                            out.push(format!("{}/{name}", prefix.trim_end_matches('/')));
                        }
                    }
                    Ok(out)
                })
                .await
                .map_err(io)??
            }
            Backend::S3 { client, bucket } => {
                let mut out = Vec::new();
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                    out.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(String::from)),
                    );
                }
                out
            }
        };
        keys.sort();
        Ok(keys)
    }

    /// A URL on this control plane that downloads `key` without
    /// credentials until `ttl` passes. Downloads go through the control
    /// plane (not a presigned store URL) because stored objects are sealed:
    /// it opens them for the holder of the link. `base` is its public URL.
    pub fn download_url(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        ttl: Duration,
        base: &str,
    ) -> Result<String, ObjectError> {
        download_url(&self.signing_key, key, file_name, content_type, ttl, base)
    }

    /// Checks a download token: the object's key, file name and content
    /// type if the token is genuine and unexpired.
    #[cfg(test)]
    pub(crate) fn redeem(&self, token: &str) -> Option<(String, String, String)> {
        redeem(&self.signing_key, token)
    }
}

/// A signed `/downloads/…` link for `key` (see [`Objects::download_url`]).
pub(crate) fn download_url(
    signing_key: &[u8],
    key: &str,
    file_name: &str,
    content_type: &str,
    ttl: Duration,
    base: &str,
) -> Result<String, ObjectError> {
    check_key(key)?;
    let grant = Grant {
        k: key.to_string(),
        e: chrono::Utc::now().timestamp() + ttl.as_secs() as i64,
        f: file_name.to_string(),
        t: content_type.to_string(),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&grant).map_err(io)?);
    let mac = sign(signing_key, payload.as_bytes());
    Ok(format!(
        "{}/downloads/{payload}.{}",
        base.trim_end_matches('/'),
        URL_SAFE_NO_PAD.encode(mac)
    ))
}

/// The key, file name and content type of a genuine, unexpired token.
pub(crate) fn redeem(signing_key: &[u8], token: &str) -> Option<(String, String, String)> {
    let (payload, mac) = token.split_once('.')?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    let mut m = Hmac::<Sha256>::new_from_slice(signing_key).ok()?;
    m.update(payload.as_bytes());
    m.verify_slice(&mac).ok()?;
    let grant: Grant = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    if grant.e < chrono::Utc::now().timestamp() || check_key(&grant.k).is_err() {
        return None;
    }
    Some((grant.k, grant.f, grant.t))
}

fn sign(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Files under `dir`, at any depth; a missing `dir` holds none.
fn count_files(dir: &Path) -> Result<u64, ObjectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            n += count_files(&entry.path())?;
        } else if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            n += 1;
        }
    }
    Ok(n)
}

/// Writes beside the target, then renames: readers never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ObjectError> {
    let dir = path.parent().ok_or(ObjectError::BadKey)?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_the_root() {
        for bad in [
            "", "/abs", "a/../b", "a//b", "a/./b", "a b", "a/b/", "..", "a\\b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        check_key("tenants/t-1/bots/b_2/recording.ogg").unwrap();
    }

    #[tokio::test]
    async fn local_store_round_trips_and_signs_downloads() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ObjectStoreConfig::Local {
            dir: dir.path().join("objects"),
        };
        let store = Objects::open(&cfg, b"link key".to_vec()).await.unwrap();
        store.put("a/b/1", b"one".to_vec()).await.unwrap();
        store.put("a/b/2", b"two".to_vec()).await.unwrap();
        assert_eq!(store.get("a/b/1").await.unwrap().unwrap(), b"one");
        assert_eq!(store.list("a/b/").await.unwrap(), vec!["a/b/1", "a/b/2"]);
        store.delete("a/b/1").await.unwrap();
        store.delete("a/b/1").await.unwrap();
        assert!(store.get("a/b/1").await.unwrap().is_none());
        assert!(store.list("nothing/").await.unwrap().is_empty());
        // A folder goes at any depth; its neighbours stay.
        store
            .put("t/x/bots/b/recording.ogg", b"r".to_vec())
            .await
            .unwrap();
        store
            .put("t/x/bots/b/chunks/1/0", b"c".to_vec())
            .await
            .unwrap();
        store
            .put("t/x/bots/b/chunks/2/0", b"c".to_vec())
            .await
            .unwrap();
        store
            .put("t/x/bots/bb/recording.ogg", b"r".to_vec())
            .await
            .unwrap();
        assert_eq!(store.delete_prefix("t/x/bots/b/").await.unwrap(), 3);
        assert_eq!(store.delete_prefix("t/x/bots/b/").await.unwrap(), 0);
        assert!(store.get("t/x/bots/b/chunks/1/0").await.unwrap().is_none());
        assert!(
            store
                .get("t/x/bots/bb/recording.ogg")
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.delete_prefix("t/x/bots/b").await.is_err(), "a folder");
        assert!(store.delete_prefix("../").await.is_err());

        let url = store
            .download_url(
                "a/b/2",
                "r.ogg",
                "audio/ogg",
                Duration::from_secs(60),
                "http://x/",
            )
            .unwrap();
        let token = url.strip_prefix("http://x/downloads/").unwrap();
        assert_eq!(
            store.redeem(token).unwrap(),
            ("a/b/2".into(), "r.ogg".into(), "audio/ogg".into())
        );
        // Any change to the token breaks it.
        let mut forged = token.to_string();
        forged.insert(3, 'A');
        assert!(store.redeem(&forged).is_none());
        assert!(store.redeem("garbage").is_none());
        // The same key survives a restart; an expired grant is refused.
        let again = Objects::open(&cfg, b"link key".to_vec()).await.unwrap();
        assert!(again.redeem(token).is_some());
        let expired = store
            .download_url("a/b/2", "r.ogg", "audio/ogg", Duration::ZERO, "http://x")
            .unwrap();
        let other = Objects::open(&cfg, b"another key".to_vec()).await.unwrap();
        assert!(
            other.redeem(token).is_none(),
            "links are bound to the signing key"
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert!(store.redeem(expired.rsplit('/').next().unwrap()).is_none());
    }
}
