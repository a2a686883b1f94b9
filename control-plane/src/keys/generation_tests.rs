//! Generations of bot keys: a roll moves every bot of the tenant onto a new
//! generation and destroys the old one at the provider, so a copy of the
//! database taken before no longer opens a bot's key, while the live
//! store opens every bot it kept; and each provider's erasable keys really
//! stop decrypting once destroyed (real OpenBao, moto's KMS).

use attache_protocol::DataKey;

use super::provider::{KeyProvider, ProviderError, Subject};
use super::tests::{bao, keys_for, kms_config, kms_endpoint, store, unique, vault_config};
use super::*;
use crate::store::{NewBot, fixtures};

async fn new_bot(keys: &Keys, store: &Store, id: &str) -> DataKey {
    let made = keys.new_bot_key("t1", id).await.unwrap();
    store
        .scoped("t1")
        .insert_bot(NewBot {
            data_key: made.wrapped.clone(),
            key_generation: Some(made.generation),
            ..fixtures::new_bot(id)
        })
        .await
        .unwrap();
    made.key
}

async fn row(store: &Store, id: &str) -> bot::Model {
    store.scoped("t1").bot(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_roll_moves_every_bot_and_a_copy_taken_before_opens_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let config = Config::local(dir.path());
    let keys = keys_for(&config, &store).await;
    let a = new_bot(&keys, &store, "a").await;
    let b = new_bot(&keys, &store, "b").await;
    assert_eq!(row(&store, "a").await.key_generation, Some(1));
    // Another tenant's generations are its own.
    keys.new_bot_key("t2", "x").await.unwrap();

    // The copy: the database file as a backup would hold it.
    let copy_dir = tempfile::tempdir().unwrap();
    for f in ["k.db", "k.db-wal", "k.db-shm"] {
        if dir.path().join(f).exists() {
            std::fs::copy(dir.path().join(f), copy_dir.path().join(f)).unwrap();
        }
    }

    let rolled = keys.roll("t1").await.unwrap();
    assert_eq!(rolled.current, Some(2));
    assert_eq!(rolled.destroyed.len(), 1, "{rolled:?}");
    assert!(rolled.destroyed[0].starts_with("bot-key-generation:t1/1@local:erasable:"));
    assert_eq!(rolled.moved, 2);
    let erasable = dir.path().join("erasable-keys");
    assert_eq!(
        std::fs::read_dir(&erasable).unwrap().count(),
        4,
        "t1's secret and new generation, t2's secret and generation"
    );

    // A fresh process over the live store opens every bot it kept.
    let fresh = keys_for(&config, &store).await;
    for (id, key) in [("a", &a), ("b", &b)] {
        let r = row(&store, id).await;
        assert_eq!(r.key_generation, Some(2));
        assert_eq!(&fresh.bot_key(&r).await.unwrap(), key);
    }
    // A bot made after the roll is on the new generation.
    new_bot(&fresh, &store, "c").await;
    assert_eq!(row(&store, "c").await.key_generation, Some(2));
    assert!(fresh.new_bot_key("t2", "y").await.is_ok(), "t2 untouched");

    // The copy, with the deployment's keys: generation 1's key is gone.
    let copy = Store::open(&format!(
        "sqlite://{}/k.db?mode=rw",
        copy_dir.path().display()
    ))
    .await
    .unwrap();
    let from_copy = keys_for(&config, &copy).await;
    for id in ["a", "b"] {
        let r = copy.scoped("t1").bot(id).await.unwrap().unwrap();
        let e = from_copy.bot_key(&r).await.unwrap_err();
        assert!(e.to_string().contains("destroyed"), "{id}: {e}");
    }

    // A second roll destroys the second generation, and nothing else.
    let again = keys.roll("t1").await.unwrap();
    assert_eq!(again.current, Some(3));
    assert_eq!(again.destroyed.len(), 1);
    assert_eq!(again.moved, 3);
    assert_eq!(
        &keys_for(&config, &store)
            .await
            .bot_key(&row(&store, "a").await)
            .await
            .unwrap(),
        &a
    );
}

#[tokio::test]
async fn a_bot_made_on_a_generation_an_erasure_retired_moves_to_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let config = Config::local(dir.path());
    let keys = keys_for(&config, &store).await;
    new_bot(&keys, &store, "a").await;
    // Made on generation 1, inserted after the roll moved everything.
    let made = keys.new_bot_key("t1", "late").await.unwrap();
    keys.roll("t1").await.unwrap();
    store
        .scoped("t1")
        .insert_bot(NewBot {
            data_key: made.wrapped.clone(),
            key_generation: Some(made.generation),
            ..fixtures::new_bot("late")
        })
        .await
        .unwrap();
    assert!(keys.settle_new_bot("t1", "late", &made).await.unwrap());
    let r = row(&store, "late").await;
    assert_eq!(r.key_generation, Some(2));
    let fresh = keys_for(&config, &store).await;
    assert_eq!(fresh.bot_key(&r).await.unwrap(), made.key);
    // Settled once: nothing to do the second time.
    assert!(!keys.settle_new_bot("t1", "a", &made).await.unwrap());
}

#[tokio::test]
async fn erasing_a_tenant_destroys_its_key_and_every_generation_in_copies_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let config = Config::local(dir.path());
    let keys = keys_for(&config, &store).await;
    new_bot(&keys, &store, "a").await;
    let r = row(&store, "a").await;
    // Something sealed under the tenant key itself (a webhook's secret).
    let sealed = keys
        .tenant_key("t1")
        .await
        .unwrap()
        .seal(b"webhook/e1", b"whsec");
    let copy_dir = tempfile::tempdir().unwrap();
    for f in ["k.db", "k.db-wal", "k.db-shm"] {
        if dir.path().join(f).exists() {
            std::fs::copy(dir.path().join(f), copy_dir.path().join(f)).unwrap();
        }
    }

    let destroyed = keys.destroy_tenant("t1").await.unwrap();
    assert_eq!(destroyed.len(), 3, "{destroyed:?}");
    assert!(destroyed[0].starts_with("bot-key-generation:t1/1@local:erasable:"));
    assert!(destroyed[1].starts_with("tenant-secret:t1@local:erasable:"));
    assert_eq!(destroyed[2], "tenant-key:t1");
    // Again: nothing left to destroy.
    assert!(keys.destroy_tenant("t1").await.unwrap().is_empty());

    // The copy, with the deployment's keys: neither the bot's key nor the
    // tenant's opens.
    let copy = Store::open(&format!(
        "sqlite://{}/k.db?mode=rw",
        copy_dir.path().display()
    ))
    .await
    .unwrap();
    let from_copy = keys_for(&config, &copy).await;
    let e = from_copy.bot_key(&r).await.unwrap_err();
    assert!(e.to_string().contains("destroyed"), "{e}");
    let e = from_copy.tenant_key("t1").await.unwrap_err();
    assert!(e.to_string().contains("erasable key"), "{e}");
    // t2's key is its own.
    assert!(from_copy.tenant_key("t2").await.is_ok());
    // What the same process opened before: nothing of it opens from the
    // copy (its tenant key is not the same without the secret).
    let _ = sealed;
}

/// Makes, uses and destroys an erasable key; what it wrapped never opens
/// again (where the provider enforces it: see the KMS test), and
/// destroying it twice is fine. The key's id comes back.
async fn erasable_round_trip(p: &dyn KeyProvider, enforced: bool) -> String {
    let key_id = p
        .create_erasable(&unique("attache-erasable"))
        .await
        .unwrap();
    let t1 = Subject::Tenant("t1".into());
    let secret = DataKey::generate();
    let w = p.wrap(&key_id, &t1, &secret).await.unwrap();
    assert_eq!(
        p.unwrap(Some(&w.key_id), &t1, &w.bytes).await.unwrap(),
        secret
    );
    if let Err(e) = p.destroy(&w.key_id).await {
        panic!("destroying: {e}");
    }
    if enforced {
        let e = p.unwrap(Some(&w.key_id), &t1, &w.bytes).await.unwrap_err();
        assert!(matches!(e, ProviderError::Refused { .. }), "{e}");
    }
    if let Err(e) = p.destroy(&w.key_id).await {
        panic!("destroying it again: {e}");
    }
    w.key_id
}

#[tokio::test]
async fn a_destroyed_local_key_file_is_gone_and_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = local::LocalProvider::new(DataKey::generate())
        .with_erasable_dir(dir.path().join("erasable-keys"));
    erasable_round_trip(&p, true).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("erasable-keys"))
            .unwrap()
            .count(),
        0
    );
    assert!(p.create_erasable("../escape").await.is_err());
}

#[tokio::test]
async fn a_destroyed_transit_key_decrypts_nothing() {
    let Some(b) = bao() else { return };
    let p = vault::VaultProvider::new(&vault_config(&b, &b.token, "unused")).unwrap();
    erasable_round_trip(&p, true).await;
}

#[tokio::test]
async fn a_destroyed_kms_key_is_disabled_at_once_and_pending_deletion() {
    let Some(endpoint) = kms_endpoint() else {
        return;
    };
    let p = kms::KmsProvider::new(&kms_config(&endpoint, "unused")).await;
    // moto still decrypts under a disabled key, which KMS refuses
    // (DisabledException, KMSInvalidStateException): here the key's state
    // is what is checked.
    let arn = erasable_round_trip(&p, false).await;
    let meta = p
        .client()
        .describe_key()
        .key_id(arn.split_once(":key/").unwrap().1)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .clone();
    assert!(!meta.enabled(), "disabled at once");
    assert_eq!(
        meta.key_state(),
        Some(&aws_sdk_kms::types::KeyState::PendingDeletion)
    );
}
