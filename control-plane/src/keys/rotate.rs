//! Rotation: every stored tenant key (and the platform key) wrapped again
//! under a new provider key, one row at a time, without touching any data.
//! The tenant keys themselves do not change, so bot data keys, transcripts,
//! chat and recordings stay as they are and open as before.
//!
//! - local: a new key file replaces `--master-key-file`;
//! - vault: a new version of the Transit key (`transit/keys/<k>/rotate`),
//!   or another Transit key;
//! - kms: another KMS key (`ReEncrypt` inside KMS), or the same key after
//!   KMS rotated its material;
//! - a provider change: keys wrapped by the other configured providers move
//!   to the primary one.
//!
//! Each row is replaced by compare-and-swap on its old bytes, so a rotation
//! may run beside serving replicas and be run again after a failure; rows
//! already on the target are left alone. A tenant on a provider key of its
//! own stays on it (rewrapped onto its newest version).

use std::path::PathBuf;
use std::sync::Arc;

use super::config::{KeyProviderKind, valid_transit_key};
use super::local::{LocalProvider, load_master_key};
use super::provider::{KeyProvider, ProviderError, Subject, WrappedKey};
use super::{KeyError, Keyring, Keys, PLATFORM_IDP, derived_key};
use crate::store::now;

/// What a rotation is asked to do, beside the configured providers.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    /// Local provider: the key file that replaces `--master-key-file`
    /// (created, readable by this user only, if it does not exist).
    pub new_master_key_file: Option<PathBuf>,
    /// Vault: move to this Transit key. Unset: a new version of the
    /// configured key.
    pub new_vault_transit_key: Option<String>,
    /// Vault: rewrap onto the key's newest version without making a new
    /// one (it was rotated in Vault already, or a rotation is resumed).
    pub keep_key_version: bool,
    /// KMS: move to this key (id, ARN or alias). Unset: re-encrypt under
    /// the configured key's current material.
    pub new_kms_key_id: Option<String>,
}

/// One stored key that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    /// `tenant <id>` or `platform`.
    pub subject: String,
    /// `provider:key` (`:vN` where the provider versions keys).
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default)]
pub struct RotationReport {
    /// `provider:key` every key now sits under (a dedicated tenant's aside).
    pub target: String,
    pub rewrapped: Vec<RowChange>,
    /// Already on the target.
    pub unchanged: usize,
    /// Tenants on a provider key of their own, rewrapped onto it.
    pub own_keys: usize,
    /// (subject, error): left as they were; run the rotation again.
    pub failed: Vec<(String, String)>,
    /// The operators' identity-provider secret, sealed before the platform
    /// key existed, was sealed again under it.
    pub resealed_operator_secret: bool,
}

/// What to do with one stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Onto the target key.
    Move,
    /// Onto the newest version of the key it is on (the target itself, or a
    /// dedicated tenant's own key).
    Refresh(String),
    Skip,
}

/// The pure decision: `target` is the key new keys go under, `old_default`
/// the deployment key before the rotation (same provider), as recorded.
pub(crate) fn plan(
    row: &WrappedKey,
    target_kind: KeyProviderKind,
    target: &str,
    old_default: Option<&str>,
) -> Step {
    if row.provider != target_kind {
        return Step::Move;
    }
    let Some(k) = row.key_id.as_deref() else {
        return Step::Move;
    };
    if k == target {
        return match target_kind {
            // A key file has no versions.
            KeyProviderKind::Local => Step::Skip,
            _ => Step::Refresh(k.to_string()),
        };
    }
    if target_kind == KeyProviderKind::Local || Some(k) == old_default {
        return Step::Move;
    }
    Step::Refresh(k.to_string())
}

fn shown(kind: KeyProviderKind, key: Option<&str>, version: Option<u32>) -> String {
    let mut s = format!("{kind}:{}", key.unwrap_or("unrecorded"));
    if let Some(v) = version {
        s.push_str(&format!(":v{v}"));
    }
    s
}

fn subject_name(s: &Subject) -> String {
    match s {
        Subject::Tenant(id) => format!("tenant {id}"),
        Subject::Platform => "platform".into(),
    }
}

/// The keyring after the rotation, the key it wraps under, the deployment
/// key before (as recorded), and the newest version where known.
struct Target {
    ring: Keyring,
    key: String,
    old_default: Option<String>,
    version: Option<u32>,
}

async fn target(current: &Keyring, r: &Rotation) -> Result<Target, KeyError> {
    let kind = current.primary;
    let misplaced = |flag: &str, for_kind: &str| {
        Err(KeyError::Provider(format!(
            "{flag} is for the {for_kind} provider; this deployment's is {kind}"
        )))
    };
    if r.new_master_key_file.is_some() && kind != KeyProviderKind::Local {
        return misplaced("--new-master-key-file", "local");
    }
    if (r.new_vault_transit_key.is_some() || r.keep_key_version) && kind != KeyProviderKind::Vault {
        return misplaced("--new-vault-transit-key / --keep-key-version", "vault");
    }
    if r.new_kms_key_id.is_some() && kind != KeyProviderKind::Kms {
        return misplaced("--new-kms-key-id", "kms");
    }
    let primary = current.primary().clone();
    let configured = primary.default_key().to_string();
    match kind {
        KeyProviderKind::Local => {
            let old = current
                .local
                .as_ref()
                .expect("the local provider is loaded");
            let Some(path) = &r.new_master_key_file else {
                // A provider change onto the local file needs no new key.
                return Ok(Target {
                    ring: current.rebuilt(None),
                    key: configured.clone(),
                    old_default: Some(configured),
                    version: None,
                });
            };
            let next = load_master_key(path, true)?;
            let local = Arc::new(LocalProvider::clone(old).with_primary(next));
            let key = local.default_key().to_string();
            if key == configured {
                return Err(KeyError::Provider(
                    "the new key file is the current one".into(),
                ));
            }
            Ok(Target {
                ring: current.rebuilt(Some(local)),
                key,
                old_default: Some(configured),
                version: None,
            })
        }
        KeyProviderKind::Vault => {
            let key = r
                .new_vault_transit_key
                .clone()
                .unwrap_or_else(|| configured.clone());
            if !valid_transit_key(&key) {
                return Err(KeyError::Provider(format!("transit key name {key:?}")));
            }
            let key = primary.resolve(&key).await?;
            let version = if key == configured && !r.keep_key_version {
                primary.rotate(&key).await?
            } else {
                None
            };
            Ok(Target {
                ring: current.rebuilt(None),
                key,
                old_default: Some(configured),
                version,
            })
        }
        KeyProviderKind::Kms => {
            let old_default = primary.resolve(&configured).await?;
            let key = match &r.new_kms_key_id {
                Some(k) => primary.resolve(k).await?,
                None => old_default.clone(),
            };
            Ok(Target {
                ring: current.rebuilt(None),
                key,
                old_default: Some(old_default),
                version: None,
            })
        }
    }
}

impl Keyring {
    /// The same providers, with `local` in place of the local one.
    fn rebuilt(&self, local: Option<Arc<LocalProvider>>) -> Keyring {
        let local = local.or_else(|| self.local.clone());
        let providers = self
            .providers
            .iter()
            .map(|p| match (&local, p.kind()) {
                (Some(l), KeyProviderKind::Local) => l.clone() as Arc<dyn KeyProvider>,
                _ => p.clone(),
            })
            .collect();
        Keyring {
            primary: self.primary,
            providers,
            local,
        }
    }
}

/// Wraps `row` as `step` says, under `ring`'s primary provider.
async fn rewrap(
    ring: &Keyring,
    row: &WrappedKey,
    subject: &Subject,
    step: &Step,
    target_key: &str,
) -> Result<WrappedKey, ProviderError> {
    let to = match step {
        Step::Move => target_key,
        Step::Refresh(k) => k.as_str(),
        Step::Skip => return Ok(row.clone()),
    };
    let primary = ring.primary();
    let w = if row.provider == primary.kind() {
        primary
            .rewrap(row.key_id.as_deref(), to, subject, &row.bytes)
            .await?
    } else {
        let key = ring.unwrap(row, subject).await?;
        primary.wrap(to, subject, &key).await?
    };
    Ok(WrappedKey {
        bytes: w.bytes,
        provider: primary.kind(),
        key_id: Some(w.key_id),
    })
}

impl Keys {
    /// Rewraps every stored tenant key and the platform key as `r` says.
    /// Rows that fail are reported and left as they were.
    pub(crate) async fn rotate(&self, r: &Rotation) -> Result<RotationReport, KeyError> {
        let t = target(&self.ring, r).await?;
        let kind = t.ring.primary;
        let mut report = RotationReport {
            target: shown(kind, Some(&t.key), t.version),
            ..RotationReport::default()
        };
        let store = &self.store;
        let mut rows: Vec<(Subject, WrappedKey)> = Vec::new();
        if let Some(w) = store.platform_wrapped_key().await? {
            rows.push((Subject::Platform, w));
        }
        let mut after: Option<String> = None;
        loop {
            let page = store.tenant_keys_after(after.as_deref(), 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            rows.extend(page.into_iter().map(|(id, w)| (Subject::Tenant(id), w)));
        }
        for (subject, row) in rows {
            let step = plan(&row, kind, &t.key, t.old_default.as_deref());
            let p = t.ring.get(row.provider).ok();
            let version = p.and_then(|p| p.version_of(&row.bytes));
            if step == Step::Skip
                || (matches!(step, Step::Refresh(_)) && t.version.is_some() && version == t.version)
            {
                report.unchanged += 1;
                continue;
            }
            let name = subject_name(&subject);
            let from = shown(row.provider, row.key_id.as_deref(), version);
            let moved = match rewrap(&t.ring, &row, &subject, &step, &t.key).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(subject = %name, error = %e, "key not rewrapped");
                    report.failed.push((name, e.to_string()));
                    continue;
                }
            };
            let to = shown(
                moved.provider,
                moved.key_id.as_deref(),
                t.ring.primary().version_of(&moved.bytes),
            );
            let swapped = match &subject {
                Subject::Platform => store.rewrap_platform_key(&row.bytes, moved).await?,
                Subject::Tenant(id) => store.rewrap_tenant_key(id, &row.bytes, moved).await?,
            };
            if !swapped {
                report
                    .failed
                    .push((name, "changed while being rewrapped".into()));
                continue;
            }
            if matches!(step, Step::Refresh(ref k) if *k != t.key) {
                report.own_keys += 1;
            }
            report.rewrapped.push(RowChange {
                subject: name,
                from,
                to,
            });
        }
        self.move_erasable(&t.ring, &mut report).await?;
        report.resealed_operator_secret = self.reseal_operator_secret().await?;
        Ok(report)
    }

    /// After a change of provider: every erasable secret (each tenant's,
    /// each live bot-key generation's) onto an erasable key of its own at
    /// the new provider, and the old erasable key destroyed. A rotation
    /// within one provider leaves them: each is a key of its own already.
    async fn move_erasable(
        &self,
        ring: &Keyring,
        report: &mut RotationReport,
    ) -> Result<(), KeyError> {
        let kind = ring.primary;
        let mut rows: Vec<(String, Option<i32>, WrappedKey)> = Vec::new();
        for (tenant_id, w) in self.store.tenant_secrets().await? {
            rows.push((tenant_id, None, w));
        }
        for g in self.store.live_generations().await? {
            let Some(bytes) = g.wrapped_secret else {
                continue;
            };
            rows.push((
                g.tenant_id,
                Some(g.generation),
                WrappedKey {
                    bytes,
                    provider: *g.provider,
                    key_id: Some(g.provider_key_id),
                },
            ));
        }
        for (tenant_id, generation, row) in rows {
            if row.provider == kind {
                continue;
            }
            let name = match generation {
                None => format!("the erasable secret of tenant {tenant_id}"),
                Some(n) => format!("bot-key generation {tenant_id}/{n}"),
            };
            let subject = Subject::Tenant(tenant_id.clone());
            let moved = async {
                let secret = ring.unwrap(&row, &subject).await?;
                let p = ring.primary();
                let key_id = p
                    .create_erasable(&format!(
                        "attache-erasable-{}",
                        uuid::Uuid::new_v4().simple()
                    ))
                    .await?;
                let w = p.wrap(&key_id, &subject, &secret).await?;
                Ok::<_, ProviderError>(WrappedKey {
                    bytes: w.bytes,
                    provider: kind,
                    key_id: Some(w.key_id),
                })
            }
            .await;
            let moved = match moved {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(subject = %name, error = %e, "erasable secret not moved");
                    report.failed.push((name, e.to_string()));
                    continue;
                }
            };
            let from = shown(row.provider, row.key_id.as_deref(), None);
            let to = shown(moved.provider, moved.key_id.as_deref(), None);
            let swapped = match generation {
                None => {
                    self.store
                        .move_tenant_secret(&tenant_id, &row.bytes, moved)
                        .await?
                }
                Some(n) => {
                    self.store
                        .move_generation_secret(&tenant_id, n, &row.bytes, moved)
                        .await?
                }
            };
            if !swapped {
                report
                    .failed
                    .push((name, "changed while being moved".into()));
                continue;
            }
            // The old key wraps nothing any more.
            if let (Ok(p), Some(k)) = (ring.get(row.provider), row.key_id.as_deref())
                && let Err(e) = p.destroy(k).await
            {
                tracing::warn!(subject = %name, error = %e, "cannot destroy the erasable key it moved from");
            }
            report.rewrapped.push(RowChange {
                subject: name,
                from,
                to,
            });
        }
        Ok(())
    }

    /// Seals the operators' identity-provider secret under the platform key
    /// if it was sealed under a key derived from the local key file.
    async fn reseal_operator_secret(&self) -> Result<bool, KeyError> {
        let domain = attache_tenant_policy::PLATFORM;
        let Some(mut row) = self.store.identity_provider(domain).await? else {
            return Ok(false);
        };
        let ctx = format!("attache/idp-secret/{domain}").into_bytes();
        let current = derived_key(&self.platform_key().await?, PLATFORM_IDP)?;
        if current.open(&ctx, &row.client_secret_sealed).is_ok() {
            return Ok(false);
        }
        let secret = self
            .open_idp_secret(domain, &row.client_secret_sealed)
            .await?;
        row.client_secret_sealed = current.seal(&ctx, secret.as_bytes());
        row.updated_at = now();
        self.store.put_identity_provider(row).await?;
        Ok(true)
    }

    /// Puts a tenant on a provider key of its own (a dedicated tenant's),
    /// of the primary provider: its key is made under it, or rewrapped onto
    /// it. The tenant's data is untouched.
    pub(crate) async fn set_tenant_provider_key(
        &self,
        tenant_id: &str,
        key_id: &str,
    ) -> Result<RowChange, KeyError> {
        let primary = self.ring.primary().clone();
        if primary.kind() == KeyProviderKind::Local {
            return Err(KeyError::Provider(
                "the local provider has one key file for every tenant; a tenant key of its own needs vault or kms".into(),
            ));
        }
        let key = primary.resolve(key_id).await?;
        let subject = Subject::Tenant(tenant_id.to_string());
        let name = subject_name(&subject);
        loop {
            let Some(row) = self.store.tenant_wrapped_key(tenant_id).await? else {
                let fresh = attache_protocol::DataKey::generate();
                let w = self.ring.wrap_new(Some(&key), &subject, &fresh).await?;
                let stored = self
                    .store
                    .put_tenant_key(tenant_id, w.clone(), None)
                    .await?;
                if stored == w {
                    return Ok(RowChange {
                        subject: name,
                        from: "none".into(),
                        to: shown(
                            w.provider,
                            w.key_id.as_deref(),
                            primary.version_of(&w.bytes),
                        ),
                    });
                }
                continue;
            };
            let from = shown(
                row.provider,
                row.key_id.as_deref(),
                self.ring
                    .get(row.provider)
                    .ok()
                    .and_then(|p| p.version_of(&row.bytes)),
            );
            let moved = rewrap(&self.ring, &row, &subject, &Step::Move, &key).await?;
            let to = shown(
                moved.provider,
                moved.key_id.as_deref(),
                primary.version_of(&moved.bytes),
            );
            if self
                .store
                .rewrap_tenant_key(tenant_id, &row.bytes, moved)
                .await?
            {
                return Ok(RowChange {
                    subject: name,
                    from,
                    to,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: KeyProviderKind, key: Option<&str>) -> WrappedKey {
        WrappedKey {
            bytes: vec![1],
            provider: kind,
            key_id: key.map(str::to_string),
        }
    }

    #[test]
    fn each_stored_key_gets_the_right_step() {
        use KeyProviderKind::*;
        let cases = [
            // (row, target kind, target, old default) → step
            (row(Local, None), Local, "new", Some("old"), Step::Move),
            (
                row(Local, Some("old")),
                Local,
                "new",
                Some("old"),
                Step::Move,
            ),
            (
                row(Local, Some("older")),
                Local,
                "new",
                Some("old"),
                Step::Move,
            ),
            (
                row(Local, Some("new")),
                Local,
                "new",
                Some("old"),
                Step::Skip,
            ),
            // A provider change moves everything of the other providers.
            (
                row(Local, Some("old")),
                Vault,
                "attache",
                Some("attache"),
                Step::Move,
            ),
            (
                row(Kms, Some("arn:a")),
                Vault,
                "attache",
                Some("attache"),
                Step::Move,
            ),
            // A new version of the same Transit key.
            (
                row(Vault, Some("attache")),
                Vault,
                "attache",
                Some("attache"),
                Step::Refresh("attache".into()),
            ),
            // Another Transit key for the deployment.
            (
                row(Vault, Some("attache")),
                Vault,
                "attache-2",
                Some("attache"),
                Step::Move,
            ),
            // A dedicated tenant stays on its own key.
            (
                row(Vault, Some("tenant-acme")),
                Vault,
                "attache-2",
                Some("attache"),
                Step::Refresh("tenant-acme".into()),
            ),
            (
                row(Kms, Some("arn:old")),
                Kms,
                "arn:new",
                Some("arn:old"),
                Step::Move,
            ),
            (
                row(Kms, Some("arn:own")),
                Kms,
                "arn:new",
                Some("arn:old"),
                Step::Refresh("arn:own".into()),
            ),
        ];
        for (r, kind, target, old, want) in cases {
            assert_eq!(plan(&r, kind, target, old), want, "{r:?} → {kind}:{target}");
        }
    }

    #[test]
    fn changes_are_shown_with_versions() {
        assert_eq!(
            shown(KeyProviderKind::Vault, Some("attache"), Some(2)),
            "vault:attache:v2"
        );
        assert_eq!(
            shown(KeyProviderKind::Local, None, None),
            "local:unrecorded"
        );
    }
}
