//! Dedicated tenants end to end: a tenant with a worker pool and a bucket
//! of its own, beside a shared tenant, each with several bots that outnumber
//! its workers' room. No bot runs on the other's workers, no object lands in
//! the other's bucket. And a single-tenant deployment serves one tenant.

mod support;

use std::time::Duration;

use attache_control_plane::{
    Config as CpConfig, ControlPlane, Isolation, ObjectStoreConfig, Objects,
};
use serde_json::json;
use support::{Api, Cluster, Options, s3_config};

/// Bots per tenant (the 20), and room per worker: bots outnumber
/// their workers' room five to one, so each tenant's queue waits in waves
/// while the other's worker may have room. About 100 s on a loaded 2-core
/// machine: eight Chromium bots at a time, three seconds in each meeting.
const BOTS: usize = 20;
const CAPACITY: u32 = 4;

fn bucket(what: &str) -> String {
    format!("attache-isolation-{what}-{}", std::process::id())
}

fn s3_store(what: &str) -> ObjectStoreConfig {
    ObjectStoreConfig::S3(s3_config(&bucket(what)).expect("S3 is configured"))
}

/// The shared tenants' bucket by default, and acme's own.
fn shared_and_dedicated_buckets(c: &mut CpConfig) {
    c.object_store = Some(s3_store("shared"));
    c.tenant_object_stores
        .insert("acme".into(), s3_store("acme"));
}

async fn keys_in(store: ObjectStoreConfig) -> Vec<String> {
    Objects::open(&store, b"unused".to_vec())
        .await
        .unwrap()
        .list("tenants/")
        .await
        .unwrap()
}

async fn run_bots(api: &Api, cluster: &Cluster, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..BOTS {
        ids.push(
            api.create_bot_with(
                &cluster.meeting(&format!("{tag}-{i}"), "admission=open&script=demo-loop"),
                json!({ "maxDurationSeconds": 3 }),
            )
            .await,
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_tenant_runs_only_on_its_pool_and_keeps_only_its_bucket() {
    if s3_config("probe").is_none() {
        return;
    }
    let mut cluster = Cluster::start_with(Options {
        create_bot_limit: Some((100_000, 100_000)),
        tweak: Some(shared_and_dedicated_buckets),
        ..Default::default()
    })
    .await;
    let shared_worker = cluster.add_worker_in(CAPACITY, "local", None).await;
    let pool_worker = cluster
        .add_worker_in(CAPACITY, "local", Some("acme-pool"))
        .await;
    let acme = cluster
        .admin
        .create_tenant_in("acme", "local", Isolation::Dedicated, Some("acme-pool"))
        .await
        .unwrap();
    assert_eq!(acme.pool.as_deref(), Some("acme-pool"));
    let acme_api = Api::new(&cluster.http, &acme.api_key);
    let (shared_id, shared_api) = cluster.tenant_in("globex", "local").await;

    // A dedicated tenant with no bucket of its own keeps nothing anywhere.
    let beta = cluster
        .admin
        .create_tenant_in("beta", "local", Isolation::Dedicated, Some("beta-pool"))
        .await
        .unwrap();
    let (_, body) = Api::new(&cluster.http, &beta.api_key)
        .raw(
            "mutation($u: String!) { createBot(input: {meetingUrl: $u}) { id } }",
            json!({ "u": cluster.meeting("beta", "") }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("dedicated"),
        "{body}"
    );
    // Pools are the tenant's own; flags that make no sense are refused.
    for (name, isolation, pool) in [
        ("gamma", Isolation::Dedicated, Some("acme-pool")),
        ("delta", Isolation::Dedicated, None),
        ("eps", Isolation::Shared, Some("eps-pool")),
    ] {
        assert!(
            cluster
                .admin
                .create_tenant_in(name, "local", isolation, pool)
                .await
                .is_err(),
            "{name}"
        );
    }

    let acme_bots = run_bots(&acme_api, &cluster, "acme").await;
    let shared_bots = run_bots(&shared_api, &cluster, "globex").await;
    for (api, ids) in [(&acme_api, &acme_bots), (&shared_api, &shared_bots)] {
        for id in ids {
            let b = api.wait_status(id, "ENDED", Duration::from_secs(240)).await;
            assert_eq!(b["statusReason"], "MAX_DURATION", "{b:#}");
        }
    }

    // Every lease of every bot went to its own kind of worker.
    for (ids, worker, pool) in [
        (&acme_bots, &pool_worker, Some("acme-pool")),
        (&shared_bots, &shared_worker, None),
    ] {
        for id in ids {
            let leases = cluster.admin.bot_leases(id).await.unwrap();
            assert!(!leases.is_empty(), "{id} never ran");
            for l in leases {
                assert_eq!(&l.worker_id, worker, "{id}: {l:?}");
                assert_eq!(l.worker_pool.as_deref(), pool, "{id}: {l:?}");
            }
        }
    }

    // Every recording is in its tenant's bucket, and nothing else is there.
    for (api, ids) in [(&acme_api, &acme_bots), (&shared_api, &shared_bots)] {
        for id in ids {
            let rec = loop {
                let rec = api.media(id).await["recording"].clone();
                if rec["status"] != "RECORDING" {
                    break rec;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(rec["status"], "READY", "{id}: {rec:#}");
        }
    }
    let acme_keys = keys_in(s3_store("acme")).await;
    let shared_keys = keys_in(s3_store("shared")).await;
    for (keys, tenant, ids) in [
        (&acme_keys, &acme.tenant_id, &acme_bots),
        (&shared_keys, &shared_id, &shared_bots),
    ] {
        for id in ids {
            let want = format!("tenants/{tenant}/bots/{id}/recording.ogg");
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        let prefix = format!("tenants/{tenant}/");
        assert!(
            keys.iter().all(|k| k.starts_with(&prefix)),
            "another tenant's object: {keys:?}"
        );
    }
}

fn solo(c: &mut CpConfig) {
    c.single_tenant = Some("solo".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_tenant_deployment_serves_one_tenant() {
    let cluster = Cluster::start_with(Options {
        tweak: Some(solo),
        ..Default::default()
    })
    .await;
    let t = cluster.admin.create_tenant("solo", "local").await.unwrap();
    let err = cluster
        .admin
        .create_tenant("other", "local")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only tenant solo"), "{err}");
    assert_eq!(
        Api::new(&cluster.http, &t.api_key).bot_count().await,
        0,
        "the one tenant is served"
    );

    // A deployment for another single tenant refuses this database.
    let mut c = support::cp_config(
        &cluster.dir.join("cp"),
        &cluster.sandbox,
        "127.0.0.1:0".parse().unwrap(),
    );
    c.single_tenant = Some("someone-else".into());
    let refused = ControlPlane::build(c).await.err().expect("refused");
    assert!(refused.to_string().contains("solo"), "{refused}");
}
