//! The AWS KMS provider: `Encrypt` and `Decrypt` of each tenant key under a
//! KMS key (the deployment's, or a dedicated tenant's), bound to the tenant
//! by the encryption context; a rotation re-encrypts inside KMS
//! (`ReEncrypt`), so the tenant key does not pass through this process.
//! Credentials come from the standard AWS chain, as for S3. Stored keys
//! record the key's ARN, which KMS returns even when an alias was asked.

use std::collections::HashMap;

use attache_protocol::DataKey;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;

use super::config::{KeyProviderKind, KmsConfig};
use super::provider::{KeyProvider, ProviderError, Subject, Wrapped};

const KIND: KeyProviderKind = KeyProviderKind::Kms;

pub(crate) struct KmsProvider {
    client: aws_sdk_kms::Client,
    key_id: String,
}

/// The encryption context of a subject, as KMS takes it.
pub(crate) fn context(subject: &Subject) -> HashMap<String, String> {
    subject
        .kms_context()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// KMS errors that say "later", as opposed to "no".
fn transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "KMSInternalException"
                | "DependencyTimeoutException"
                | "ThrottlingException"
                | "KeyUnavailableException"
        )
    )
}

fn classify<E, R>(key: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let service_code = e.as_service_error().map(|s| s.code());
    let detail = DisplayErrorContext(&e).to_string();
    match service_code {
        Some(code) if !transient(code) => ProviderError::refused(KIND, key, detail),
        _ => ProviderError::unavailable(KIND, key, detail),
    }
}

fn no_answer(key: &str, what: &str) -> ProviderError {
    ProviderError::unavailable(KIND, key, format!("no {what} in the answer"))
}

impl KmsProvider {
    pub(crate) async fn new(c: &KmsConfig) -> KmsProvider {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &c.region {
            loader = loader.region(aws_sdk_kms::config::Region::new(r.clone()));
        }
        if let (Some(a), Some(s)) = (&c.access_key, &c.secret_key) {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
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
        KmsProvider {
            client: aws_sdk_kms::Client::new(&shared),
            key_id: c.key_id.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }
}

#[async_trait::async_trait]
impl KeyProvider for KmsProvider {
    fn kind(&self) -> KeyProviderKind {
        KIND
    }

    fn default_key(&self) -> &str {
        &self.key_id
    }

    async fn wrap(
        &self,
        key_id: &str,
        subject: &Subject,
        key: &DataKey,
    ) -> Result<Wrapped, ProviderError> {
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(key.as_bytes().to_vec()))
            .set_encryption_context(Some(context(subject)))
            .send()
            .await
            .map_err(|e| classify(key_id, e))?;
        Ok(Wrapped {
            bytes: out
                .ciphertext_blob()
                .ok_or_else(|| no_answer(key_id, "ciphertext"))?
                .as_ref()
                .to_vec(),
            key_id: out.key_id().unwrap_or(key_id).to_string(),
        })
    }

    async fn unwrap(
        &self,
        key_id: Option<&str>,
        subject: &Subject,
        wrapped: &[u8],
    ) -> Result<DataKey, ProviderError> {
        let shown = key_id.unwrap_or(&self.key_id);
        // The recorded key is named, so a ciphertext of another key is
        // refused rather than opened with whatever key it names.
        let out = self
            .client
            .decrypt()
            .set_key_id(key_id.map(str::to_string))
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_encryption_context(Some(context(subject)))
            .send()
            .await
            .map_err(|e| classify(shown, e))?;
        out.plaintext()
            .and_then(|p| DataKey::from_bytes(p.as_ref()))
            .ok_or_else(|| ProviderError::refused(KIND, shown, format!("{subject}: not a key")))
    }

    async fn rewrap(
        &self,
        from: Option<&str>,
        to: &str,
        subject: &Subject,
        wrapped: &[u8],
    ) -> Result<Wrapped, ProviderError> {
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .set_source_key_id(from.map(str::to_string))
            .set_source_encryption_context(Some(context(subject)))
            .destination_key_id(to)
            .set_destination_encryption_context(Some(context(subject)))
            .send()
            .await
            .map_err(|e| classify(to, e))?;
        Ok(Wrapped {
            bytes: out
                .ciphertext_blob()
                .ok_or_else(|| no_answer(to, "ciphertext"))?
                .as_ref()
                .to_vec(),
            key_id: out.key_id().unwrap_or(to).to_string(),
        })
    }

    async fn resolve(&self, key_id: &str) -> Result<String, ProviderError> {
        let out = self
            .client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(key_id, e))?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| no_answer(key_id, "key metadata"))?;
        if !meta.enabled() {
            return Err(ProviderError::refused(KIND, key_id, "the key is disabled"));
        }
        // KMS always says both; an emulator may leave the usage out.
        let usage_ok = meta
            .key_usage()
            .is_none_or(|u| *u == aws_sdk_kms::types::KeyUsageType::EncryptDecrypt);
        let spec_ok = meta
            .key_spec()
            .is_none_or(|s| *s == aws_sdk_kms::types::KeySpec::SymmetricDefault);
        if !usage_ok || !spec_ok {
            return Err(ProviderError::refused(
                KIND,
                key_id,
                "the key is not a symmetric encryption key",
            ));
        }
        Ok(meta.arn().unwrap_or(key_id).to_string())
    }

    /// A symmetric KMS key of its own (`kms:CreateKey`, tagged with the
    /// name), recorded by its ARN.
    async fn create_erasable(&self, name: &str) -> Result<String, ProviderError> {
        let tag = aws_sdk_kms::types::Tag::builder()
            .tag_key("attache:erasable")
            .tag_value(name)
            .build()
            .map_err(|e| ProviderError::refused(KIND, name, e))?;
        let out = self
            .client
            .create_key()
            .description(format!("Attaché erasable key {name}"))
            .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
            .tags(tag)
            .send()
            .await
            .map_err(|e| classify(name, e))?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| no_answer(name, "key metadata"))?;
        Ok(meta.arn().unwrap_or(meta.key_id()).to_string())
    }

    /// Disables the key at once and schedules its deletion after KMS's
    /// shortest waiting period (7 days): a disabled key decrypts nothing
    /// from the moment it is disabled.
    async fn destroy(&self, key_id: &str) -> Result<(), ProviderError> {
        let gone = |e: &ProviderError| match e {
            ProviderError::Refused { detail, .. } => {
                detail.contains("NotFoundException")
                    || detail.contains("pending deletion")
                    || detail.contains("PendingDeletion")
            }
            _ => false,
        };
        // The key's id in the caller's account: KMS takes it or the ARN,
        // emulators only the id.
        let id = key_id.split_once(":key/").map_or(key_id, |(_, id)| id);
        if let Err(e) = self
            .client
            .disable_key()
            .key_id(id)
            .send()
            .await
            .map_err(|e| classify(key_id, e))
        {
            if gone(&e) {
                return Ok(());
            }
            return Err(e);
        }
        match self
            .client
            .schedule_key_deletion()
            .key_id(id)
            .pending_window_in_days(7)
            .send()
            .await
            .map_err(|e| classify(key_id, e))
        {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_names_the_tenant_and_no_secret() {
        let c = context(&Subject::Tenant("t-1".into()));
        assert_eq!(c.len(), 2);
        assert_eq!(c["attache:key"], "tenant");
        assert_eq!(c["attache:tenant"], "t-1");
        assert_eq!(context(&Subject::Platform)["attache:key"], "platform");
    }

    #[test]
    fn only_service_side_failures_are_transient() {
        assert!(transient(Some("ThrottlingException")));
        assert!(transient(Some("KMSInternalException")));
        assert!(!transient(Some("InvalidCiphertextException")));
        assert!(!transient(Some("AccessDeniedException")));
        assert!(!transient(Some("NotFoundException")));
        assert!(!transient(None));
    }
}
