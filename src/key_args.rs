//! Flags for the key provider that wraps tenant keys: the local key file,
//! OpenBao/Vault Transit or AWS KMS, mapped onto the control plane's typed
//! config. Secrets come from files or the environment, never from a flag.

use attache_control_plane::{
    KeyProviderConfig, KeyProviderKind, KmsConfig, VaultConfig, VaultToken,
};
use clap::Args;
use std::path::PathBuf;

/// Which key provider wraps tenant keys, and how to reach it.
#[derive(Args, Clone)]
pub(crate) struct KeyArgs {
    /// `local` (the master key file), `vault` (OpenBao or HashiCorp Vault
    /// Transit) or `kms` (AWS KMS).
    #[arg(long, env = "ATTACHE_KEY_PROVIDER", value_enum, default_value_t = KeyProviderArg::Local)]
    pub key_provider: KeyProviderArg,
    /// OpenBao/Vault address, https (`https://vault.internal:8200`).
    #[arg(long, env = "ATTACHE_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// A file holding the Vault token (a Vault Agent sink, a mounted
    /// secret), re-read when Vault refuses it. Else the token is read from
    /// ATTACHE_VAULT_TOKEN; it is never a flag.
    #[arg(long, env = "ATTACHE_VAULT_TOKEN_FILE")]
    pub vault_token_file: Option<PathBuf>,
    /// The Transit key that wraps this deployment's tenant keys.
    #[arg(long, env = "ATTACHE_VAULT_TRANSIT_KEY", default_value = "attache")]
    pub vault_transit_key: String,
    /// Where the Transit engine is mounted.
    #[arg(long, env = "ATTACHE_VAULT_TRANSIT_MOUNT", default_value = "transit")]
    pub vault_transit_mount: String,
    /// PEM CA certificates Vault's TLS certificate chains to.
    #[arg(long, env = "ATTACHE_VAULT_CA_FILE")]
    pub vault_ca_file: Option<PathBuf>,
    /// Allow a plain-http Vault address (a dev server); refused by
    /// --production without --allow-dev-fallbacks.
    #[arg(long, env = "ATTACHE_VAULT_ALLOW_HTTP")]
    pub vault_allow_http: bool,
    /// The KMS key (id, ARN or alias) that wraps this deployment's tenant
    /// keys. Credentials come from the standard AWS chain, as for S3.
    #[arg(long, env = "ATTACHE_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// KMS region; unset: the AWS chain's (AWS_REGION, profile).
    #[arg(long, env = "ATTACHE_KMS_REGION")]
    pub kms_region: Option<String>,
    /// A KMS-compatible endpoint (a VPC endpoint); AWS's if unset.
    #[arg(long, env = "ATTACHE_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyProviderArg {
    Local,
    Vault,
    Kms,
}

impl KeyArgs {
    pub(crate) fn config(&self) -> anyhow::Result<KeyProviderConfig> {
        let vault = match &self.vault_addr {
            None => None,
            Some(addr) => {
                let token = match &self.vault_token_file {
                    Some(f) => VaultToken::File(f.clone()),
                    None => match std::env::var("ATTACHE_VAULT_TOKEN") {
                        Ok(t) if !t.trim().is_empty() => VaultToken::value(t.trim()),
                        _ => anyhow::bail!(
                            "--vault-addr needs a token: --vault-token-file, or ATTACHE_VAULT_TOKEN"
                        ),
                    },
                };
                let mut v = VaultConfig::new(addr, token, &self.vault_transit_key);
                v.transit_mount = self.vault_transit_mount.clone();
                v.ca_file = self.vault_ca_file.clone();
                v.allow_http = self.vault_allow_http;
                Some(v)
            }
        };
        let kms = self.kms_key_id.as_ref().map(|id| {
            let mut k = KmsConfig::new(id);
            k.region = self.kms_region.clone();
            k.endpoint = self.kms_endpoint.clone();
            k
        });
        Ok(KeyProviderConfig {
            provider: match self.key_provider {
                KeyProviderArg::Local => KeyProviderKind::Local,
                KeyProviderArg::Vault => KeyProviderKind::Vault,
                KeyProviderArg::Kms => KeyProviderKind::Kms,
            },
            vault,
            kms,
        })
    }
}
