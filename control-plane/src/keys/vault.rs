//! The Vault provider: OpenBao or HashiCorp Vault's Transit engine wraps
//! each tenant key (`transit/encrypt/<key>`, `transit/decrypt/<key>`) over
//! its HTTP API, bound to the tenant by Transit's associated data. The
//! Transit key never leaves Vault; this process sees only the tenant keys
//! it asked to unwrap. It never logs or returns the token.

use std::sync::RwLock;
use std::time::Duration;

use attache_protocol::{DataKey, Secret};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::KeyError;
use super::config::{KeyProviderKind, VaultConfig, VaultToken, valid_transit_key};
use super::provider::{KeyProvider, ProviderError, Subject, Wrapped};

const KIND: KeyProviderKind = KeyProviderKind::Vault;
/// Attempts at a request that failed on Vault's side or on the way.
const ATTEMPTS: u32 = 3;

pub(crate) struct VaultProvider {
    http: reqwest::Client,
    /// `https://vault:8200/v1/transit`.
    base: String,
    transit_key: String,
    source: VaultToken,
    token: RwLock<Secret>,
}

fn read_token(source: &VaultToken) -> Result<Secret, String> {
    match source {
        VaultToken::Value(s) => Ok(s.clone()),
        VaultToken::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("vault token file {}: {e}", path.display()))?;
            let t = text.trim();
            if t.is_empty() {
                return Err(format!("vault token file {} is empty", path.display()));
            }
            Ok(Secret::new(t))
        }
    }
}

/// `vault:v3:…` → 3.
pub(crate) fn ciphertext_version(wrapped: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(wrapped).ok()?;
    let rest = s.strip_prefix("vault:v")?;
    rest.split_once(':')?.0.parse().ok()
}

/// Vault's `{"errors": [...]}`, or the start of whatever came back.
fn error_text(body: &str) -> String {
    match serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
    {
        // Vault answers a missing key or path with no words at all.
        Some(a) if a.is_empty() => "no such key or path".into(),
        Some(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        None => body.chars().take(200).collect(),
    }
}

/// What a response's status means for the caller.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// The token was refused: re-read a token file once, then give up.
    Forbidden,
    Refused,
    Retry,
}

fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Ok,
        403 => Outcome::Forbidden,
        429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Refused,
    }
}

/// The body of an encrypt or decrypt: the associated data binds the
/// ciphertext to its tenant.
fn transit_body(field: &str, value: String, subject: &Subject) -> Value {
    json!({ field: value, "associated_data": B64.encode(subject.aad()) })
}

impl VaultProvider {
    pub(crate) fn new(c: &VaultConfig) -> Result<VaultProvider, KeyError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(c.timeout)
            .connect_timeout(c.timeout.min(Duration::from_secs(5)));
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| KeyError::Provider(format!("vault CA file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| KeyError::Provider(format!("vault CA file {}: {e}", ca.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| KeyError::Provider(format!("vault client: {e}")))?;
        let token = read_token(&c.token).map_err(KeyError::Provider)?;
        Ok(VaultProvider {
            http,
            base: format!(
                "{}/v1/{}",
                c.addr.trim_end_matches('/'),
                c.transit_mount.trim_matches('/')
            ),
            transit_key: c.transit_key.clone(),
            source: c.token.clone(),
            token: RwLock::new(token),
        })
    }

    fn token(&self) -> Secret {
        self.token.read().expect("vault token").clone()
    }

    /// One Transit call: `data` of the answer. Retries what failed on
    /// Vault's side with backoff, and re-reads a token file once when the
    /// token is refused.
    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        if !valid_transit_key(key) {
            return Err(ProviderError::refused(KIND, key, "not a transit key name"));
        }
        let url = format!("{}/{path}", self.base);
        let mut reloaded = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("X-Vault-Token", self.token().expose());
            if let Some(b) = body {
                req = req.json(b);
            }
            let failed = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    match outcome(status) {
                        Outcome::Ok => {
                            let v: Value = if text.trim().is_empty() {
                                Value::Null
                            } else {
                                serde_json::from_str(&text).map_err(|e| {
                                    ProviderError::unavailable(KIND, key, format!("answer: {e}"))
                                })?
                            };
                            return Ok(v["data"].clone());
                        }
                        Outcome::Forbidden
                            if !reloaded && matches!(self.source, VaultToken::File(_)) =>
                        {
                            reloaded = true;
                            let fresh = read_token(&self.source)
                                .map_err(|e| ProviderError::refused(KIND, key, e))?;
                            *self.token.write().expect("vault token") = fresh;
                            continue;
                        }
                        Outcome::Forbidden | Outcome::Refused => {
                            return Err(ProviderError::refused(
                                KIND,
                                key,
                                format!("{status} on {path}: {}", error_text(&text)),
                            ));
                        }
                        Outcome::Retry => ProviderError::unavailable(
                            KIND,
                            key,
                            format!("{status} on {path}: {}", error_text(&text)),
                        ),
                    }
                }
                Err(e) => ProviderError::unavailable(KIND, key, format!("{path}: {e}")),
            };
            if attempt >= ATTEMPTS {
                return Err(failed);
            }
            tokio::time::sleep(crate::webhooks::retry_delay(
                attempt,
                Duration::from_millis(200),
                Duration::from_secs(2),
            ))
            .await;
        }
    }
}

#[async_trait::async_trait]
impl KeyProvider for VaultProvider {
    fn kind(&self) -> KeyProviderKind {
        KIND
    }

    fn default_key(&self) -> &str {
        &self.transit_key
    }

    async fn wrap(
        &self,
        key_id: &str,
        subject: &Subject,
        key: &DataKey,
    ) -> Result<Wrapped, ProviderError> {
        let body = transit_body("plaintext", B64.encode(key.as_bytes()), subject);
        let data = self
            .call(
                key_id,
                reqwest::Method::POST,
                &format!("encrypt/{key_id}"),
                Some(&body),
            )
            .await?;
        let ct = data["ciphertext"]
            .as_str()
            .filter(|c| c.starts_with("vault:v"))
            .ok_or_else(|| ProviderError::unavailable(KIND, key_id, "no ciphertext in answer"))?;
        Ok(Wrapped {
            bytes: ct.as_bytes().to_vec(),
            key_id: key_id.to_string(),
        })
    }

    async fn unwrap(
        &self,
        key_id: Option<&str>,
        subject: &Subject,
        wrapped: &[u8],
    ) -> Result<DataKey, ProviderError> {
        let key_id = key_id.unwrap_or(&self.transit_key);
        let ct = std::str::from_utf8(wrapped)
            .map_err(|_| ProviderError::refused(KIND, key_id, "not a transit ciphertext"))?;
        let body = transit_body("ciphertext", ct.to_string(), subject);
        let data = self
            .call(
                key_id,
                reqwest::Method::POST,
                &format!("decrypt/{key_id}"),
                Some(&body),
            )
            .await?;
        data["plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .and_then(|b| DataKey::from_bytes(&b))
            .ok_or_else(|| ProviderError::refused(KIND, key_id, format!("{subject}: not a key")))
    }

    // Transit's own rewrap takes no associated data (OpenBao 2.7 refuses
    // such ciphertexts), so the default unwrap-then-wrap is used.

    async fn rotate(&self, key_id: &str) -> Result<Option<u32>, ProviderError> {
        let data = self
            .call(
                key_id,
                reqwest::Method::POST,
                &format!("keys/{key_id}/rotate"),
                None,
            )
            .await?;
        if let Some(v) = data["latest_version"].as_u64() {
            return Ok(Some(v as u32));
        }
        // Older servers answer 204 without the key.
        let data = self
            .call(
                key_id,
                reqwest::Method::GET,
                &format!("keys/{key_id}"),
                None,
            )
            .await?;
        Ok(data["latest_version"].as_u64().map(|v| v as u32))
    }

    async fn resolve(&self, key_id: &str) -> Result<String, ProviderError> {
        match self
            .call(
                key_id,
                reqwest::Method::GET,
                &format!("keys/{key_id}"),
                None,
            )
            .await
        {
            Ok(data) if data["supports_encryption"] == json!(true) => Ok(key_id.to_string()),
            Ok(_) => Err(ProviderError::refused(
                KIND,
                key_id,
                "the transit key does not encrypt",
            )),
            // A policy that may only encrypt and decrypt cannot read the
            // key: a probe shows whether it wraps.
            Err(ProviderError::Refused { detail, .. }) if detail.starts_with("403") => {
                let probe = Subject::Tenant("attache-probe".into());
                let w = self.wrap(key_id, &probe, &DataKey::generate()).await?;
                self.unwrap(Some(key_id), &probe, &w.bytes).await?;
                Ok(key_id.to_string())
            }
            Err(e) => Err(e),
        }
    }

    fn version_of(&self, wrapped: &[u8]) -> Option<u32> {
        ciphertext_version(wrapped)
    }

    /// A Transit key of its own, deletable (`deletion_allowed`): the token
    /// needs `create` and `update` on `keys/attache-*` and `keys/*/config`.
    async fn create_erasable(&self, name: &str) -> Result<String, ProviderError> {
        let body = json!({ "type": "aes256-gcm96" });
        self.call(
            name,
            reqwest::Method::POST,
            &format!("keys/{name}"),
            Some(&body),
        )
        .await?;
        let config = json!({ "deletion_allowed": true });
        self.call(
            name,
            reqwest::Method::POST,
            &format!("keys/{name}/config"),
            Some(&config),
        )
        .await?;
        Ok(name.to_string())
    }

    /// Deletes the Transit key, every version of it: what it wrapped never
    /// decrypts again (and needs `delete` on `keys/attache-*`).
    async fn destroy(&self, key_id: &str) -> Result<(), ProviderError> {
        let config = json!({ "deletion_allowed": true });
        match self
            .call(
                key_id,
                reqwest::Method::POST,
                &format!("keys/{key_id}/config"),
                Some(&config),
            )
            .await
        {
            Ok(_) => {}
            // Gone already.
            Err(ProviderError::Refused { detail, .. })
                if detail.starts_with("404")
                    || detail.contains("no such key")
                    || detail.contains("no existing key") =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.call(
            key_id,
            reqwest::Method::DELETE,
            &format!("keys/{key_id}"),
            None,
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_statuses_and_errors_are_read() {
        assert_eq!(ciphertext_version(b"vault:v1:abc"), Some(1));
        assert_eq!(ciphertext_version(b"vault:v12:abc=="), Some(12));
        assert_eq!(ciphertext_version(b"vault:vx:abc"), None);
        assert_eq!(ciphertext_version(&[0xff, 0x00]), None);
        assert_eq!(outcome(200), Outcome::Ok);
        assert_eq!(outcome(204), Outcome::Ok);
        assert_eq!(outcome(403), Outcome::Forbidden);
        assert_eq!(outcome(400), Outcome::Refused);
        assert_eq!(outcome(404), Outcome::Refused);
        assert_eq!(outcome(503), Outcome::Retry, "sealed or standby");
        assert_eq!(outcome(429), Outcome::Retry);
        assert_eq!(
            error_text(r#"{"errors":["permission denied"]}"#),
            "permission denied"
        );
        assert_eq!(error_text("<html>"), "<html>");
        assert_eq!(error_text(r#"{"errors":[]}"#), "no such key or path");
    }

    #[test]
    fn bodies_bind_the_tenant() {
        let b = transit_body("plaintext", "AAAA".into(), &Subject::Tenant("t1".into()));
        assert_eq!(b["plaintext"], "AAAA");
        assert_eq!(
            B64.decode(b["associated_data"].as_str().unwrap()).unwrap(),
            b"attache/tenant-key/t1"
        );
    }

    #[test]
    fn a_token_file_is_trimmed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "s.abc\n").unwrap();
        assert_eq!(
            read_token(&VaultToken::File(p.clone())).unwrap().expose(),
            "s.abc"
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(read_token(&VaultToken::File(p)).is_err());
        assert!(read_token(&VaultToken::File(dir.path().join("none"))).is_err());
    }
}
