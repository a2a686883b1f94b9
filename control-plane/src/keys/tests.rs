//! The hierarchy through a real store: data sealed under a bot's key before
//! a rotation (or a change of provider) opens after it, in a process that
//! holds only the new provider key. The Vault tests run against the real
//! OpenBao server `scripts/test` starts, the KMS tests against moto's KMS
//! emulator; without them they are skipped, or fail when
//! `ATTACHE_REQUIRE_SERVICES` is set.

use std::path::Path;

use attache_protocol::DataKey;
use serde_json::json;

use super::*;
use crate::entity::tenant;
use crate::store::{NewBot, now};

fn service(vars: &[&str], what: &str) -> Option<Vec<String>> {
    let got: Vec<Option<String>> = vars
        .iter()
        .map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .collect();
    if got.iter().all(Option::is_some) {
        return Some(got.into_iter().flatten().collect());
    }
    if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() {
        panic!(
            "{} not set: run the suite with scripts/test ({what})",
            vars.join(", ")
        );
    }
    eprintln!(
        "skipped: {} not set (scripts/test starts {what})",
        vars.join(", ")
    );
    None
}

/// The OpenBao dev server of `scripts/test`.
pub(super) struct Bao {
    addr: String,
    pub(super) token: String,
    /// Its TLS CA (`start_bao` serves https).
    ca: Option<std::path::PathBuf>,
}

pub(super) fn bao() -> Option<Bao> {
    let v = service(
        &["ATTACHE_TEST_BAO_ADDR", "ATTACHE_TEST_BAO_TOKEN"],
        "OpenBao",
    )?;
    let mut v = v.into_iter();
    Some(Bao {
        addr: v.next().unwrap(),
        token: v.next().unwrap(),
        ca: std::env::var_os("ATTACHE_TEST_BAO_CA_FILE")
            .filter(|c| !c.is_empty())
            .map(Into::into),
    })
}

/// moto's KMS endpoint.
pub(super) fn kms_endpoint() -> Option<String> {
    service(&["ATTACHE_TEST_KMS_ENDPOINT"], "moto's KMS").map(|mut v| v.remove(0))
}

pub(super) fn unique(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// A Transit key of the test's own, so tests that rotate do not meet.
async fn transit_key(b: &Bao, name: &str) {
    let mut http = reqwest::Client::builder();
    if let Some(ca) = &b.ca {
        http = http.tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap(),
        );
    }
    let r = http
        .build()
        .unwrap()
        .post(format!("{}/v1/transit/keys/{name}", b.addr))
        .header("X-Vault-Token", &b.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "creating {name}: {}", r.status());
}

pub(super) fn vault_config(b: &Bao, token: &str, key: &str) -> VaultConfig {
    let mut v = VaultConfig::new(&b.addr, VaultToken::value(token), key);
    v.allow_http = b.addr.starts_with("http:");
    v.ca_file = b.ca.clone();
    v
}

pub(super) fn kms_config(endpoint: &str, key_id: &str) -> KmsConfig {
    KmsConfig {
        key_id: key_id.to_string(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_string()),
        access_key: Some("attache-test".into()),
        secret_key: Some("attache-test".into()),
    }
}

async fn kms_key(endpoint: &str) -> String {
    let p = kms::KmsProvider::new(&kms_config(endpoint, "unused")).await;
    p.client()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

/// A store in `dir` with tenants t1 and t2, and bot b1 of t1.
pub(super) async fn store(dir: &Path) -> Store {
    let store = Store::open(&format!("sqlite://{}/k.db?mode=rwc", dir.display()))
        .await
        .unwrap();
    populate(store).await
}

/// The same on the PostgreSQL server of `scripts/test`, in a database of
/// the test's own.
async fn pg_store() -> Option<Store> {
    use sea_orm::ConnectionTrait;
    let url = service(&["ATTACHE_TEST_POSTGRES_URL"], "PostgreSQL")?.remove(0);
    let name = unique("keys").replace('-', "_");
    let admin = Store::open(&url).await.unwrap();
    admin
        .db()
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(populate(Store::open(&format!("{base}/{name}")).await.unwrap()).await)
}

async fn populate(store: Store) -> Store {
    store.migrate().await.unwrap();
    for (id, name) in [("t1", "acme"), ("t2", "globex")] {
        store
            .insert_tenant(tenant::Model {
                id: id.into(),
                name: name.into(),
                region: "local".into(),
                created_at: now(),
                retention_days: None,
                isolation: crate::entity::names::Stored(crate::entity::names::Isolation::Shared),
                pool: None,
            })
            .await
            .unwrap();
    }
    store
        .scoped("t1")
        .insert_bot(NewBot {
            data_key: Vec::new(),
            ..crate::store::fixtures::new_bot("b1")
        })
        .await
        .unwrap();
    // A bot as older versions stored it: its key is made when first used.
    {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        bot::Entity::update_many()
            .filter(bot::Column::Id.eq("b1"))
            .col_expr(bot::Column::DataKey, Expr::value(Option::<Vec<u8>>::None))
            .exec(store.db())
            .await
            .unwrap();
    }
    store
}

pub(super) async fn keys_for(config: &Config, store: &Store) -> Keys {
    Keys::new(Keyring::open(config).await.unwrap(), store.clone())
}

pub(super) async fn bot(store: &Store) -> bot::Model {
    store.scoped("t1").bot("b1").await.unwrap().unwrap()
}

/// What a bot's result looks like in the database: sealed under its key.
struct Sealed {
    transcript: Vec<u8>,
    webhook_secret: Vec<u8>,
}

const WORDS: &[u8] = b"Good morning everyone.";
const SECRET: &[u8] = b"whsec_abc";

async fn seal_some(keys: &Keys, store: &Store) -> Sealed {
    let k = keys.bot_key(&bot(store).await).await.unwrap();
    let t1 = keys.tenant_key("t1").await.unwrap();
    Sealed {
        transcript: k.seal(&field_context("transcript", "b1", "s1"), WORDS),
        webhook_secret: t1.seal(b"webhook/e1", SECRET),
    }
}

/// Opens what `seal_some` sealed, as a fresh process would.
async fn opens(keys: &Keys, store: &Store, s: &Sealed) {
    let k = keys.bot_key(&bot(store).await).await.unwrap();
    assert_eq!(
        k.open(&field_context("transcript", "b1", "s1"), &s.transcript)
            .unwrap(),
        WORDS
    );
    let t1 = keys.tenant_key("t1").await.unwrap();
    assert_eq!(t1.open(b"webhook/e1", &s.webhook_secret).unwrap(), SECRET);
}

#[tokio::test]
async fn a_rotated_key_file_opens_everything_sealed_before_and_the_old_file_is_not_needed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    rotate_the_key_file(dir.path(), store).await;
}

#[tokio::test]
async fn a_rotation_on_postgres_swaps_each_row() {
    let Some(store) = pg_store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    rotate_the_key_file(dir.path(), store).await;
}

async fn rotate_the_key_file(dir: &Path, store: Store) {
    let mut config = Config::local(dir);
    let old_file = dir.join("master.key");
    let keys = keys_for(&config, &store).await;
    let sealed = seal_some(&keys, &store).await;
    let links = keys.derived("attache/download-links").await.unwrap();
    keys.tenant_key("t2").await.unwrap();
    // The operators' sign-in secret as versions before the platform key
    // sealed it: under a key derived from the key file itself.
    let ctx = b"attache/idp-secret/platform";
    let legacy = derived_key(&load_master_key(&old_file, false).unwrap(), PLATFORM_IDP)
        .unwrap()
        .seal(ctx, b"client-secret");
    store
        .put_identity_provider(crate::entity::identity_provider::Model {
            domain: attache_tenant_policy::PLATFORM.into(),
            issuer: "https://idp.example".into(),
            client_id: "attache".into(),
            client_secret_sealed: legacy,
            allowed_domains: String::new(),
            updated_at: now(),
        })
        .await
        .unwrap();
    assert_eq!(
        keys.open_idp_secret(
            attache_tenant_policy::PLATFORM,
            &store
                .identity_provider("platform")
                .await
                .unwrap()
                .unwrap()
                .client_secret_sealed
        )
        .await
        .unwrap(),
        "client-secret"
    );
    let old_id = local::fingerprint(&load_master_key(&old_file, false).unwrap());
    assert_eq!(
        store
            .tenant_wrapped_key("t1")
            .await
            .unwrap()
            .unwrap()
            .key_id,
        Some(old_id.clone())
    );

    let new_file = dir.join("next/master.key");
    let rotation = Rotation {
        new_master_key_file: Some(new_file.clone()),
        ..Rotation::default()
    };
    let report = keys.rotate(&rotation).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.rewrapped.len(), 3, "platform, t1, t2: {report:?}");
    assert!(report.resealed_operator_secret);
    let new_id = local::fingerprint(&load_master_key(&new_file, false).unwrap());
    assert_eq!(report.target, format!("local:{new_id}"));
    assert!(
        report
            .rewrapped
            .iter()
            .all(|c| c.from == format!("local:{old_id}"))
    );

    // Only the new file: everything opens, download links sign the same.
    std::fs::remove_file(&old_file).unwrap();
    config.master_key_file = Some(new_file.clone());
    let after = keys_for(&config, &store).await;
    opens(&after, &store, &sealed).await;
    assert_eq!(
        after.derived("attache/download-links").await.unwrap(),
        links
    );
    let row = store.identity_provider("platform").await.unwrap().unwrap();
    assert_eq!(
        after
            .open_idp_secret(attache_tenant_policy::PLATFORM, &row.client_secret_sealed)
            .await
            .unwrap(),
        "client-secret"
    );
    // Nothing is left on the old file: a second run moves nothing.
    let again = after.rotate(&Rotation::default()).await.unwrap();
    assert!(
        again.rewrapped.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.unchanged, 3);
}

#[tokio::test]
async fn stored_keys_are_bound_to_their_tenant_and_strangers_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let config = Config::local(dir.path());
    let keys = keys_for(&config, &store).await;
    keys.tenant_key("t1").await.unwrap();
    keys.tenant_key("t2").await.unwrap();
    // t1's wrapped key copied onto t2's row does not open as t2's.
    let w1 = store.tenant_wrapped_key("t1").await.unwrap().unwrap();
    let w2 = store.tenant_wrapped_key("t2").await.unwrap().unwrap();
    assert!(store.rewrap_tenant_key("t2", &w2.bytes, w1).await.unwrap());
    let fresh = keys_for(&config, &store).await;
    assert!(matches!(
        fresh.tenant_key("t2").await,
        Err(StoreError::Keys(_))
    ));
    // A compare-and-swap on bytes that are no longer there does nothing.
    assert!(!store.rewrap_tenant_key("t1", b"stale", w2).await.unwrap());
    // A process without the key provider a key was wrapped by.
    let other = tempfile::tempdir().unwrap();
    let stranger = keys_for(&Config::local(other.path()), &store).await;
    let e = stranger.tenant_key("t1").await.unwrap_err();
    assert!(e.to_string().contains("was not given"), "{e}");
}

#[tokio::test]
async fn vault_wraps_bound_to_the_tenant_and_rereads_a_refused_token_file() {
    let Some(b) = bao() else { return };
    let name = unique("unit");
    transit_key(&b, &name).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "not-the-token\n").unwrap();
    let mut c = vault_config(&b, &b.token, &name);
    c.token = VaultToken::File(token_file.clone());
    let p = vault::VaultProvider::new(&c).unwrap();
    // The agent renews the token: the file changes after the provider read it.
    std::fs::write(&token_file, format!("{}\n", b.token)).unwrap();
    let t1 = Subject::Tenant("t1".into());
    let key = DataKey::generate();
    let w = p.wrap(&name, &t1, &key).await.unwrap();
    assert_eq!(w.key_id, name);
    assert_eq!(p.version_of(&w.bytes), Some(1));
    assert_eq!(p.unwrap(Some(&name), &t1, &w.bytes).await.unwrap(), key);
    assert!(matches!(
        p.unwrap(Some(&name), &Subject::Tenant("t2".into()), &w.bytes)
            .await,
        Err(ProviderError::Refused { .. })
    ));
    assert!(matches!(
        p.unwrap(Some(&unique("missing")), &t1, &w.bytes).await,
        Err(ProviderError::Refused { .. })
    ));
    assert_eq!(p.rotate(&name).await.unwrap(), Some(2));
    let moved = p.rewrap(Some(&name), &name, &t1, &w.bytes).await.unwrap();
    assert_eq!(p.version_of(&moved.bytes), Some(2));
    assert_eq!(p.unwrap(Some(&name), &t1, &moved.bytes).await.unwrap(), key);
    assert_eq!(p.resolve(&name).await.unwrap(), name);
    assert!(p.resolve(&unique("missing")).await.is_err());
    // A wrong token, in the environment: refused, not retried forever.
    let bad = vault::VaultProvider::new(&vault_config(&b, "wrong", &name)).unwrap();
    let e = bad.wrap(&name, &t1, &key).await.unwrap_err();
    assert!(matches!(e, ProviderError::Refused { .. }), "{e}");
    // Nothing listens: unavailable.
    let nobody = Bao {
        addr: "http://127.0.0.1:9".into(),
        token: b.token.clone(),
        ca: None,
    };
    let gone = vault::VaultProvider::new(&vault_config(&nobody, &b.token, &name)).unwrap();
    assert!(matches!(
        gone.wrap(&name, &t1, &key).await,
        Err(ProviderError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn vault_rotation_and_a_dedicated_tenant_key_keep_data_open() {
    let Some(b) = bao() else { return };
    let (deployment, dedicated, next) = (unique("dep"), unique("acme"), unique("dep2"));
    for k in [&deployment, &dedicated, &next] {
        transit_key(&b, k).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let mut config = Config::local(dir.path());
    config.key_provider = KeyProviderConfig {
        provider: KeyProviderKind::Vault,
        vault: Some(vault_config(&b, &b.token, &deployment)),
        kms: None,
    };
    let keys = keys_for(&config, &store).await;
    let sealed = seal_some(&keys, &store).await;
    assert!(
        !dir.path().join("master.key").exists(),
        "no local key file with vault"
    );
    let row = store.tenant_wrapped_key("t1").await.unwrap().unwrap();
    assert_eq!(row.provider, KeyProviderKind::Vault);
    assert_eq!(row.key_id.as_deref(), Some(deployment.as_str()));
    assert!(row.bytes.starts_with(b"vault:v1:"));
    // t2 is dedicated: its key moves onto a Transit key of its own.
    keys.tenant_key("t2").await.unwrap();
    let change = keys
        .set_tenant_provider_key("t2", &dedicated)
        .await
        .unwrap();
    assert_eq!(change.from, format!("vault:{deployment}:v1"));
    assert_eq!(change.to, format!("vault:{dedicated}:v1"));

    // A new version of the deployment key.
    let report = keys.rotate(&Rotation::default()).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.target, format!("vault:{deployment}:v2"));
    assert_eq!(report.own_keys, 1, "{report:?}");
    let t1 = report
        .rewrapped
        .iter()
        .find(|c| c.subject == "tenant t1")
        .unwrap();
    assert_eq!(t1.from, format!("vault:{deployment}:v1"));
    assert_eq!(t1.to, format!("vault:{deployment}:v2"));
    let fresh = keys_for(&config, &store).await;
    opens(&fresh, &store, &sealed).await;
    assert_eq!(
        store
            .tenant_wrapped_key("t2")
            .await
            .unwrap()
            .unwrap()
            .key_id,
        Some(dedicated.clone())
    );

    // Then onto another Transit key altogether; the old one is retired.
    let report = fresh
        .rotate(&Rotation {
            new_vault_transit_key: Some(next.clone()),
            ..Rotation::default()
        })
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let row = store.tenant_wrapped_key("t1").await.unwrap().unwrap();
    assert_eq!(row.key_id.as_deref(), Some(next.as_str()));
    config.key_provider.vault = Some(vault_config(&b, &b.token, &next));
    let moved = keys_for(&config, &store).await;
    opens(&moved, &store, &sealed).await;
    // Refused flags for another provider.
    assert!(
        moved
            .rotate(&Rotation {
                new_kms_key_id: Some("k".into()),
                ..Rotation::default()
            })
            .await
            .is_err()
    );
}

#[tokio::test]
async fn kms_wraps_under_arns_and_a_provider_change_from_the_key_file_moves_every_key() {
    let Some(endpoint) = kms_endpoint() else {
        return;
    };
    let (a, b) = (kms_key(&endpoint).await, kms_key(&endpoint).await);
    let p = kms::KmsProvider::new(&kms_config(&endpoint, &a)).await;
    let alias = format!("alias/{}", unique("attache"));
    p.client()
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    let t1 = Subject::Tenant("t1".into());
    let key = DataKey::generate();
    let w = p.wrap(&alias, &t1, &key).await.unwrap();
    assert_eq!(w.key_id, a, "an alias is recorded as the key's ARN");
    assert_eq!(p.resolve(&alias).await.unwrap(), a);
    assert_eq!(p.unwrap(Some(&a), &t1, &w.bytes).await.unwrap(), key);
    assert!(matches!(
        p.unwrap(Some(&a), &Subject::Tenant("t2".into()), &w.bytes)
            .await,
        Err(ProviderError::Refused { .. })
    ));
    assert!(
        p.unwrap(Some(&b), &t1, &w.bytes).await.is_err(),
        "the recorded key is named"
    );
    let moved = p.rewrap(Some(&a), &b, &t1, &w.bytes).await.unwrap();
    assert_eq!(moved.key_id, b);
    assert_eq!(p.unwrap(Some(&b), &t1, &moved.bytes).await.unwrap(), key);

    // A deployment on its key file moves to KMS.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let mut config = Config::local(dir.path());
    let keys = keys_for(&config, &store).await;
    let sealed = seal_some(&keys, &store).await;
    // A bot on a generation, whose secret is under a local erasable key.
    let made = keys.new_bot_key("t1", "g1").await.unwrap();
    config.master_key_file = Some(dir.path().join("master.key"));
    config.key_provider = KeyProviderConfig {
        provider: KeyProviderKind::Kms,
        vault: None,
        kms: Some(kms_config(&endpoint, &a)),
    };
    let both = keys_for(&config, &store).await;
    // Until the rotation, keys the file wrapped still open beside KMS.
    opens(&both, &store, &sealed).await;
    let report = both.rotate(&Rotation::default()).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.target, format!("kms:{a}"));
    assert!(
        report
            .rewrapped
            .iter()
            .all(|c| c.from.starts_with("local:"))
    );
    config.master_key_file = None;
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    let kms_only = keys_for(&config, &store).await;
    opens(&kms_only, &store, &sealed).await;
    // The erasable secrets moved onto KMS keys of their own; the files
    // they were under are gone.
    assert_eq!(
        kms_only
            .open_bot_key("t1", "g1", Some(made.generation), &made.wrapped)
            .await
            .unwrap(),
        made.key
    );
    assert!(
        report
            .rewrapped
            .iter()
            .any(|c| c.subject.starts_with("bot-key generation t1/") && c.to.starts_with("kms:")),
        "{report:?}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("erasable-keys"))
            .unwrap()
            .count(),
        0
    );
    let row = store.tenant_wrapped_key("t1").await.unwrap().unwrap();
    assert_eq!(
        (row.provider, row.key_id),
        (KeyProviderKind::Kms, Some(a.clone()))
    );

    // Then onto another KMS key, re-encrypted inside KMS.
    let report = kms_only
        .rotate(&Rotation {
            new_kms_key_id: Some(b.clone()),
            ..Rotation::default()
        })
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.rewrapped.iter().all(|c| c.to == format!("kms:{b}")));
    config.key_provider.kms = Some(kms_config(&endpoint, &b));
    opens(&keys_for(&config, &store).await, &store, &sealed).await;
}
