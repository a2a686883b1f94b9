//! The sweep on a real database and object store: SQLite and a local
//! directory always; PostgreSQL and an S3-compatible server too when
//! `scripts/test` started them (`ATTACHE_TEST_POSTGRES_URL`,
//! `ATTACHE_TEST_S3_*`), each test on a database and bucket of its own.

mod fixtures;

use attache_protocol::{BotStatus, StatusReason};
use attache_tenant_policy::DataClass;
use chrono::Duration;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::*;
use crate::config::Config;
use crate::entity::{bot, recording, transcript_segment};
use crate::objects::ObjectStoreConfig;
use crate::store::Transition;
use fixtures::*;

#[tokio::test]
async fn exactly_what_expired_goes_held_data_stays_and_the_audit_chain_holds() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        add_tenant(store, "t1").await;
        add_tenant(store, "t2").await;
        for tenant_id in ["t1", "t2"] {
            ended_bot(&f, tenant_id, &format!("{tenant_id}-old"), days_before(40)).await;
            ended_bot(
                &f,
                tenant_id,
                &format!("{tenant_id}-recent"),
                days_before(10),
            )
            .await;
            ended_bot(&f, tenant_id, &format!("{tenant_id}-held"), days_before(40)).await;
            // Not final: whatever it has, nothing of it may go.
            queued_bot(store, tenant_id, &format!("{tenant_id}-queued")).await;
            media(
                &f,
                tenant_id,
                &format!("{tenant_id}-queued"),
                3,
                days_before(90),
            )
            .await;
            endpoint(store, tenant_id).await;
        }
        let t1 = store.scoped("t1");
        use DataClass::*;
        for (class, days) in [
            (Recordings, Some(30)),
            (Transcripts, Some(30)),
            (Chat, Some(30)),
            (Participants, None),
            (BotMetadata, Some(30)),
            (WebhookDeliveries, Some(7)),
        ] {
            t1.set_retention_class(class, days).await.unwrap();
        }
        let hold = t1
            .insert_legal_hold("h1".into(), Some("t1-held".into()), vec![0], "key:k".into())
            .await
            .unwrap();
        // Deliveries: expired (delivered, and failed about no bot), still
        // pending, about the held bot, and recent.
        delivery(store, "t1", Some("t1-old"), days_before(8), "DELIVERED", 2).await;
        delivery(store, "t1", None, days_before(20), "FAILED", 1).await;
        delivery(store, "t1", Some("t1-old"), days_before(20), "PENDING", 1).await;
        delivery(
            store,
            "t1",
            Some("t1-held"),
            days_before(20),
            "DELIVERED",
            1,
        )
        .await;
        delivery(
            store,
            "t1",
            Some("t1-recent"),
            days_before(1),
            "DELIVERED",
            1,
        )
        .await;
        delivery(store, "t2", Some("t2-old"), days_before(20), "DELIVERED", 1).await;

        let sweeper = Sweeper::new(store.clone(), f.stores.clone(), 2, 10_000, "test");
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(
            counts(&r),
            [
                ("recordings", 1),
                ("transcripts", 3),
                ("chat", 1),
                ("webhook_deliveries", 5)
            ],
            "{label}: {r:?}"
        );
        assert_eq!((r.objects, r.tenants, r.complete), (3, 2, true), "{label}");
        assert_eq!(r.oldest_expired, None, "{label}: nothing expired is left");
        // The old bot lost its recording (every chunk too), transcript and
        // chat; participants are kept forever, so the bot stays.
        assert_eq!(
            rows(store, "t1-old").await,
            [0, 0, 2, 0, 2, 1, 1],
            "{label}"
        );
        assert_eq!(objects_of(&f, "t1", "t1-old").await, 0, "{label}");
        for bot in ["t1-recent", "t1-held", "t1-queued"] {
            assert_eq!(rows(store, bot).await[..4], ALL[..4], "{label}: {bot}");
            assert_eq!(objects_of(&f, "t1", bot).await, 3, "{label}: {bot}");
        }
        assert_eq!(deliveries(store, "t1").await, (3, 3), "{label}");
        // The other tenant chose nothing: everything of it stays.
        for bot in ["t2-old", "t2-recent", "t2-held"] {
            assert_eq!(rows(store, bot).await, ALL, "{label}: {bot}");
            assert_eq!(objects_of(&f, "t2", bot).await, 3, "{label}: {bot}");
        }
        assert_eq!(deliveries(store, "t2").await, (1, 1), "{label}");

        // Again: nothing more.
        let again = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(again.total(), 0, "{label}: {again:?}");

        // Released, the held bot's data follows its retention.
        t1.release_legal_hold(&hold.id, "key:k").await.unwrap();
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(
            counts(&r),
            [
                ("recordings", 1),
                ("transcripts", 3),
                ("chat", 1),
                ("webhook_deliveries", 2)
            ],
            "{label}: {r:?}"
        );
        assert_eq!(
            rows(store, "t1-held").await,
            [0, 0, 2, 0, 2, 1, 1],
            "{label}"
        );

        // Participants expire too: now the bots themselves go, with their
        // events and warnings, and any object no recording named.
        f.objects
            .put(
                &crate::recordings::chunk_key("t1", "t1-old", 9, 0),
                b"stray".to_vec(),
            )
            .await
            .unwrap();
        t1.set_retention_class(Participants, Some(30))
            .await
            .unwrap();
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(
            counts(&r),
            [("participants", 4), ("bot_metadata", 8)],
            "{label}: {r:?}"
        );
        assert_eq!(r.objects, 1, "{label}: the stray chunk");
        for bot in ["t1-old", "t1-held"] {
            assert_eq!(rows(store, bot).await, [0; 7], "{label}: {bot}");
            assert_eq!(objects_of(&f, "t1", bot).await, 0, "{label}: {bot}");
        }
        assert_eq!(rows(store, "t1-recent").await, ALL, "{label}");
        assert_eq!(rows(store, "t1-queued").await[..4], ALL[..4], "{label}");
        assert_eq!(rows(store, "t1-queued").await[6], 1, "{label}");

        // Years later, everything ended has gone; the bot that never ended
        // has not.
        let r = sweeper
            .sweep(t(AS_OF) + Duration::days(3650))
            .await
            .unwrap();
        assert!(r.deleted[&BotMetadata] > 0, "{label}: {r:?}");
        assert_eq!(rows(store, "t1-recent").await, [0; 7], "{label}");
        assert_eq!(rows(store, "t1-queued").await[..4], ALL[..4], "{label}");
        assert_eq!(
            deliveries(store, "t1").await,
            (1, 1),
            "{label}: the pending one"
        );

        // Each sweep that deleted left an entry in the tenant's trail, and
        // the chain verifies.
        let trail = crate::audit::page(store.db(), Some("t1"), None, 100)
            .await
            .unwrap();
        let sweeps: Vec<_> = trail
            .iter()
            .filter(|e| e.action == "retentionSweep")
            .collect();
        assert_eq!(sweeps.len(), 4, "{label}: {trail:?}");
        assert_eq!(sweeps[0].actor, "test");
        assert!(
            sweeps
                .iter()
                .any(|e| e.target.as_deref().unwrap().contains("transcripts=3")),
            "{label}: {sweeps:?}"
        );
        assert!(
            crate::audit::page(store.db(), Some("t2"), None, 100)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            matches!(
                crate::audit::verify(store.db()).await.unwrap(),
                crate::audit::Verdict::Intact { entries: 4, .. }
            ),
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_hold_on_the_tenant_keeps_everything_until_released() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        add_tenant(store, "t1").await;
        ended_bot(&f, "t1", "b1", days_before(400)).await;
        endpoint(store, "t1").await;
        delivery(store, "t1", None, days_before(400), "DELIVERED", 1).await;
        let t1 = store.scoped("t1");
        for class in DataClass::ALL {
            t1.set_retention_class(class, Some(1)).await.unwrap();
        }
        let hold = t1
            .insert_legal_hold("h".into(), None, vec![0], "key:k".into())
            .await
            .unwrap();
        let sweeper = Sweeper::new(store.clone(), f.stores.clone(), 100, 10_000, "test");
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(r.total(), 0, "{label}: {r:?}");
        assert_eq!(r.oldest_expired, None, "{label}: held is not a backlog");
        assert_eq!(rows(store, "b1").await, ALL, "{label}");
        assert_eq!(objects_of(&f, "t1", "b1").await, 3, "{label}");
        assert_eq!(deliveries(store, "t1").await, (1, 1), "{label}");

        t1.release_legal_hold(&hold.id, "key:k").await.unwrap();
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(
            counts(&r),
            [
                ("recordings", 1),
                ("transcripts", 3),
                ("chat", 1),
                ("participants", 2),
                ("bot_metadata", 4),
                ("webhook_deliveries", 2),
            ],
            "{label}: {r:?}"
        );
        assert_eq!(rows(store, "b1").await, [0; 7], "{label}");
        assert_eq!(objects_of(&f, "t1", "b1").await, 0, "{label}");
    }
}

#[tokio::test]
async fn every_delete_sees_a_hold_placed_after_its_candidates_were_read() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        add_tenant(store, "t1").await;
        ended_bot(&f, "t1", "b1", days_before(400)).await;
        endpoint(store, "t1").await;
        let d = delivery(store, "t1", Some("b1"), days_before(400), "DELIVERED", 1).await;
        let t1 = store.scoped("t1");
        let cutoff = days_before(30);
        // The candidates, read before the hold.
        assert_eq!(
            t1.expired_bots(DataClass::Transcripts, cutoff, None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        t1.insert_legal_hold("h".into(), Some("b1".into()), vec![0], "key:k".into())
            .await
            .unwrap();
        let bots = ["b1".to_string()];
        for class in [
            DataClass::Transcripts,
            DataClass::Chat,
            DataClass::Participants,
        ] {
            assert_eq!(
                t1.delete_bot_rows(class, &bots, cutoff, 100).await.unwrap(),
                0,
                "{label}: {class:?}"
            );
        }
        assert_eq!(t1.delete_recording("b1", cutoff).await.unwrap(), 0);
        assert!(
            !t1.still_deletable(DataClass::Recordings, "b1", cutoff)
                .await
                .unwrap()
        );
        assert_eq!(t1.delete_deliveries(&[d], cutoff).await.unwrap(), 0);
        recording::Entity::delete_by_id("b1".to_string())
            .exec(store.db())
            .await
            .unwrap();
        assert_eq!(t1.delete_bots(&bots, cutoff).await.unwrap(), 0);
        // Another tenant's scope reaches none of it, held or not.
        let t2 = store.scoped("t2");
        assert_eq!(
            t2.delete_bot_rows(DataClass::Transcripts, &bots, cutoff, 100)
                .await
                .unwrap(),
            0
        );
        assert_eq!(t2.delete_bots(&bots, cutoff).await.unwrap(), 0);
        assert_eq!(t2.delete_deliveries(&[d], cutoff).await.unwrap(), 0);
        assert_eq!(rows(store, "b1").await, [3, 1, 2, 0, 2, 1, 1], "{label}");
    }
}

#[tokio::test]
async fn an_open_recording_keeps_its_bot_and_shows_as_backlog() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        add_tenant(store, "t1").await;
        ended_bot(&f, "t1", "b1", days_before(40)).await;
        recording::Entity::update_many()
            .col_expr(
                recording::Column::Status,
                sea_orm::sea_query::Expr::value("RECORDING"),
            )
            .exec(store.db())
            .await
            .unwrap();
        let t1 = store.scoped("t1");
        for class in DataClass::ALL {
            t1.set_retention_class(class, Some(30)).await.unwrap();
        }
        let sweeper = Sweeper::new(store.clone(), f.stores.clone(), 100, 10_000, "test");
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        assert_eq!(
            counts(&r),
            [("transcripts", 3), ("chat", 1), ("participants", 2)],
            "{label}: {r:?}"
        );
        assert_eq!(rows(store, "b1").await, [0, 0, 0, 1, 2, 1, 1], "{label}");
        assert_eq!(objects_of(&f, "t1", "b1").await, 3, "{label}");
        assert_eq!(r.oldest_expired, Some(Duration::days(10)), "{label}");
    }
}

#[tokio::test]
async fn sweeps_are_bounded_and_the_next_one_goes_on() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        add_tenant(store, "t1").await;
        queued_bot(store, "t1", "b1").await;
        let mut tr = Transition::new("b1", BotStatus::Ended, Some(StatusReason::LeaveRequested));
        tr.at = days_before(12);
        store.transition(tr).await.unwrap();
        let db = store.db();
        for i in 0..25 {
            transcript_segment::ActiveModel {
                bot_id: Set("b1".into()),
                tenant_id: Set("t1".into()),
                generation: Set(1),
                segment_key: Set(format!("1:{i}")),
                start_ms: Set(i),
                end_ms: Set(i),
                speaker: Set(None),
                text_sealed: Set(vec![0]),
                confidence: Set(1.0),
                language: Set(None),
                is_final: Set(true),
                updated_at: Set(days_before(12)),
                ..Default::default()
            }
            .insert(db)
            .await
            .unwrap();
        }
        store
            .scoped("t1")
            .set_retention_class(DataClass::Transcripts, Some(10))
            .await
            .unwrap();
        let sweeper = Sweeper::new(store.clone(), f.stores.clone(), 3, 10, "test");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = sweeper.sweep(t(AS_OF)).await.unwrap();
            seen.push((
                r.deleted[&DataClass::Transcripts],
                r.complete,
                r.oldest_expired,
            ));
        }
        assert_eq!(
            seen,
            [
                (10, false, Some(Duration::days(2))),
                (10, false, Some(Duration::days(2))),
                (5, true, None)
            ],
            "{label}"
        );
    }
}

#[tokio::test]
async fn one_sweep_at_a_time() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        let sweeper = Sweeper::new(store.clone(), f.stores.clone(), 10, 100, "test");
        let at = now();
        assert!(
            store
                .take_job_lease(LEASE, "other", at, at + Duration::seconds(60))
                .await
                .unwrap()
        );
        assert!(
            matches!(sweeper.sweep(t(AS_OF)).await, Err(SweepError::Busy)),
            "{label}"
        );
        // Only its holder renews it.
        assert!(
            !store
                .take_job_lease(LEASE, "third", at, at + Duration::seconds(60))
                .await
                .unwrap()
        );
        assert!(
            store
                .take_job_lease(LEASE, "other", at, at + Duration::seconds(90))
                .await
                .unwrap()
        );
        // Given back (or expired), it is anyone's.
        store.release_job_lease(LEASE, "other", at).await.unwrap();
        sweeper.sweep(t(AS_OF)).await.unwrap();
        // And the sweep gave it back too.
        assert!(
            store
                .take_job_lease(LEASE, "third", now(), now() + Duration::seconds(60))
                .await
                .unwrap(),
            "{label}"
        );
    }
}

#[tokio::test]
async fn defaults_apply_to_tenants_that_chose_nothing() {
    for f in fixtures().await {
        let label = f.label;
        let store = &f.store;
        add_tenant(store, "t1").await;
        add_tenant(store, "t2").await;
        ended_bot(&f, "t1", "b1", days_before(100)).await;
        ended_bot(&f, "t2", "b2", days_before(100)).await;
        store
            .set_retention_default(DataClass::Transcripts, Some(90))
            .await
            .unwrap();
        // t2 keeps its transcripts forever; t1 follows the default; its
        // first setting covers its chat.
        store
            .scoped("t2")
            .set_retention_class(DataClass::Transcripts, None)
            .await
            .unwrap();
        store.scoped("t1").set_retention(Some(60)).await.unwrap();
        let sweeper = Sweeper::new(store.clone(), f.stores.clone(), 100, 10_000, "test");
        let r = sweeper.sweep(t(AS_OF)).await.unwrap();
        // t1's one number (60) covers recordings, transcripts and chat and
        // comes before the default.
        assert_eq!(
            counts(&r),
            [("recordings", 1), ("transcripts", 3), ("chat", 1)],
            "{label}: {r:?}"
        );
        assert_eq!(rows(store, "b2").await, ALL, "{label}");
        store
            .set_retention_default(DataClass::Transcripts, None)
            .await
            .unwrap();
        assert!(store.retention_defaults().await.unwrap().0.is_empty());
    }
}

/// A bot's objects are deleted from the store its row names and no other;
/// a bot whose store this deployment lacks keeps its recording (a backlog,
/// not an error).
#[tokio::test]
async fn objects_go_from_the_store_the_bot_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::local(dir.path());
    config.region_object_stores.insert(
        "eu".into(),
        ObjectStoreConfig::Local {
            dir: dir.path().join("eu"),
        },
    );
    let stores = ObjectStores::open(&config, b"k".to_vec()).await.unwrap();
    let default = stores.named(None).unwrap().clone();
    let eu = stores.named(Some("region/eu")).unwrap().clone();
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let f = Fixture {
        label: "sqlite+two stores",
        store: store.clone(),
        stores: stores.clone(),
        objects: eu.clone(),
        _dir: dir,
    };
    add_tenant(&store, "t1").await;
    ended_bot(&f, "t1", "b-eu", days_before(40)).await;
    ended_bot(&f, "t1", "b-gone", days_before(40)).await;
    for (bot, name) in [("b-eu", "region/eu"), ("b-gone", "region/gone")] {
        bot::Entity::update_many()
            .col_expr(
                bot::Column::ObjectStore,
                sea_orm::sea_query::Expr::value(name),
            )
            .filter(bot::Column::Id.eq(bot))
            .exec(store.db())
            .await
            .unwrap();
    }
    // The same key in the default store is not the bot's.
    let key = crate::recordings::final_key("t1", "b-eu");
    default.put(&key, b"other".to_vec()).await.unwrap();
    store
        .scoped("t1")
        .set_retention_class(DataClass::Recordings, Some(30))
        .await
        .unwrap();
    let sweeper = Sweeper::new(store.clone(), stores, 100, 10_000, "test");
    let r = sweeper.sweep(t(AS_OF)).await.unwrap();
    assert_eq!(counts(&r), [("recordings", 1)], "{}: {r:?}", f.label);
    assert_eq!(r.objects, 3);
    assert_eq!(objects_of(&f, "t1", "b-eu").await, 0);
    assert!(default.get(&key).await.unwrap().is_some());
    assert_eq!(
        rows(&store, "b-gone").await[3],
        1,
        "kept: its store is not here"
    );
    assert_eq!(r.oldest_expired, Some(Duration::days(10)));
}
