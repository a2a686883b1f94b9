//! Residency end to end: a tenant's home region decides where its bots run
//! and where its recordings are kept. Two regions, each with a bucket of its
//! own on the S3-compatible server, a worker in one of them; a third region
//! with no store at all.

mod support;

use std::time::{Duration, Instant};

use attache_control_plane::{Config as CpConfig, ObjectStoreConfig, Objects};
use serde_json::json;
use support::{Api, Cluster, Options, own_postgres_database, s3_config};

/// Short enough for a test, long enough to watch a backlog wait.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(8);

/// This run's bucket for `region` (the S3 server outlives one test run).
fn bucket(region: &str) -> String {
    format!("attache-residency-{region}-{}", std::process::id())
}

fn s3_store(region: &str) -> ObjectStoreConfig {
    ObjectStoreConfig::S3(s3_config(&bucket(region)).expect("S3 is configured"))
}

/// Regions `eu` and `us` keep their data in their own buckets; no default
/// store, so any other region keeps nothing.
fn two_regions_on_s3(c: &mut CpConfig) {
    c.object_store = None;
    for region in ["eu", "us"] {
        c.region_object_stores
            .insert(region.to_string(), s3_store(region));
    }
    c.queue_timeout = QUEUE_TIMEOUT;
}

/// The same on local directories, for the tests that never record.
fn two_regions_on_disk(c: &mut CpConfig) {
    c.object_store = None;
    for region in ["eu", "us"] {
        let dir = c.data_dir.join(format!("objects-{region}"));
        c.region_object_stores
            .insert(region.to_string(), ObjectStoreConfig::Local { dir });
    }
    c.queue_timeout = QUEUE_TIMEOUT;
}

async fn keys_in(store: ObjectStoreConfig) -> Vec<String> {
    Objects::open(&store, b"unused".to_vec())
        .await
        .unwrap()
        .list("tenants/")
        .await
        .unwrap()
}

/// The tenant's bots, newest first, as `(status, statusReason)`.
async fn statuses(api: &Api) -> Vec<(String, Option<String>)> {
    let d = api
        .gql(
            "{ bots(first: 100) { totalCount edges { node { status statusReason } } } }",
            json!({}),
        )
        .await;
    d["bots"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["status"].as_str().unwrap().to_string(),
                n["statusReason"].as_str().map(str::to_string),
            )
        })
        .collect()
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what} within {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn create_backlog(api: &Api, cluster: &Cluster, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            api.create_bot(&cluster.meeting(&format!("backlog-{i}"), ""), "Waiting Bot")
                .await,
        );
    }
    ids
}

const CREATE: &str =
    "mutation($u: String!) { createBot(input: {meetingUrl: $u}) { id status statusReason } }";

/// A tenant whose region has no store cannot create a bot, and is told
/// which region; nothing of it is stored.
async fn refused_without_a_store(cluster: &Cluster, suffix: &str) {
    let (_, nowhere) = cluster.tenant_in(&format!("ap-{suffix}"), "ap").await;
    let (status, body) = nowhere
        .raw(CREATE, json!({ "u": cluster.meeting("ap-1", "") }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{status} {body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("region ap"), "{message}");
    assert_eq!(nowhere.bot_count().await, 0, "nothing was stored");
}

/// Region `us` has a store but no worker: its bots wait with the reason,
/// then fail with NO_CAPACITY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_workers_queues_with_a_reason_then_fails_no_capacity() {
    queue_story(None).await;
}

/// The same on PostgreSQL (the queue's per-region queries and the reason's
/// update), when `scripts/test` runs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_story_on_postgres() {
    match std::env::var("ATTACHE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            queue_story(Some(own_postgres_database(&url, "residency"))).await
        }
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_POSTGRES_URL is not set; run the suite with scripts/test")
        }
        _ => eprintln!("skipped: ATTACHE_TEST_POSTGRES_URL is not set"),
    }
}

async fn queue_story(database_url: Option<String>) {
    let cluster = Cluster::start_with(Options {
        database_url,
        create_bot_limit: Some((100_000, 100_000)),
        tweak: Some(two_regions_on_disk),
        ..Default::default()
    })
    .await;
    // Tenant names of their own: a PostgreSQL database outlives a run.
    let suffix = format!("{}-{}", std::process::id(), cluster.quic.port());
    refused_without_a_store(&cluster, &suffix).await;

    let (_, us) = cluster.tenant_in(&format!("us-{suffix}"), "us").await;
    let created = us
        .gql(CREATE, json!({ "u": cluster.meeting("us-1", "") }))
        .await;
    let id = created["createBot"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["createBot"]["status"], "QUEUED");
    wait_until("the bot says why it waits", Duration::from_secs(5), || {
        let us = us.clone();
        let id = id.clone();
        async move {
            let b = us.bot(&id).await;
            match (b["status"].as_str(), b["statusReason"].as_str()) {
                (Some("QUEUED"), Some("NO_WORKER_IN_REGION")) => Ok(()),
                _ => Err(b.to_string()),
            }
        }
    })
    .await;
    let b = us
        .wait_status(&id, "FAILED", QUEUE_TIMEOUT + Duration::from_secs(10))
        .await;
    assert_eq!(b["statusReason"], "NO_CAPACITY", "{b:#}");
    assert_eq!(
        support::statuses(&b),
        ["QUEUED", "FAILED"],
        "it never left the queue"
    );
    let failed = b["events"].as_array().unwrap().last().unwrap().clone();
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.contains("region us"), "{detail}");
    assert_eq!(failed["reason"], "NO_CAPACITY");
}

/// The whole story on real S3: a tenant in `eu` (with a worker) records to
/// the `eu` bucket only, while a backlog of 100 due bots in `us` (no
/// worker) waits with its reason without delaying it, then fails with
/// NO_CAPACITY. A tenant of a region with no store is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_region_runs_and_keeps_its_own_and_no_backlog_delays_another() {
    if s3_config("probe").is_none() {
        return;
    }
    let mut cluster = Cluster::start_with(Options {
        create_bot_limit: Some((100_000, 100_000)),
        tweak: Some(two_regions_on_s3),
        ..Default::default()
    })
    .await;
    cluster.add_worker_in(1, "eu", None).await;
    refused_without_a_store(&cluster, "s3").await;
    let (eu_tenant, eu) = cluster.tenant_in("acme-eu", "eu").await;
    let (_, us) = cluster.tenant_in("acme-us", "us").await;

    // 100 due bots in us first, so they are all older than eu's bot.
    let backlog = create_backlog(&us, &cluster, 100).await;
    let id = eu
        .create_bot_with(
            &cluster.meeting("res-eu", "admission=open&script=demo-loop"),
            json!({ "maxDurationSeconds": 6 }),
        )
        .await;
    // eu's bot is taken while every one of us's still waits, with its
    // reason: the backlog held nothing up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dispatched = loop {
        let b = eu.bot(&id).await;
        if b["status"] != "QUEUED" {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "eu's bot was never dispatched: {b:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(dispatched["status"], "FAILED", "{dispatched:#}");
    let waiting = statuses(&us).await;
    assert_eq!(waiting.len(), backlog.len());
    assert!(
        waiting.iter().all(|(s, _)| s == "QUEUED"),
        "eu's bot was dispatched before us's backlog timed out: {waiting:?}"
    );
    wait_until(
        "us's backlog says why it waits",
        Duration::from_secs(5),
        || {
            let us = us.clone();
            async move {
                let s = statuses(&us).await;
                match s
                    .iter()
                    .all(|(s, r)| s == "QUEUED" && r.as_deref() == Some("NO_WORKER_IN_REGION"))
                {
                    true => Ok(()),
                    false => Err(format!("{s:?}")),
                }
            }
        },
    )
    .await;

    // The eu bot records, in eu's bucket only.
    let b = eu.wait_status(&id, "ENDED", Duration::from_secs(60)).await;
    assert_eq!(b["statusReason"], "MAX_DURATION", "{b:#}");
    let rec = loop {
        let rec = eu.media(&id).await["recording"].clone();
        if rec["status"] != "RECORDING" {
            break rec;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rec["status"], "READY", "{rec:#}");
    let eu_keys = keys_in(s3_store("eu")).await;
    assert!(
        eu_keys.contains(&format!("tenants/{eu_tenant}/bots/{id}/recording.ogg")),
        "{eu_keys:?}"
    );
    assert!(
        eu_keys
            .iter()
            .all(|k| k.starts_with(&format!("tenants/{eu_tenant}/"))),
        "only eu's tenant in eu's bucket: {eu_keys:?}"
    );
    assert!(
        keys_in(s3_store("us")).await.is_empty(),
        "nothing in us's bucket"
    );
    assert!(
        !cluster.dir.join("cp/objects").exists(),
        "and nothing on the control plane's disk"
    );
    // Downloads read it back from eu's bucket.
    let url = rec["downloadUrl"].as_str().unwrap();
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), 200);
    let bytes = got.bytes().await.unwrap();
    assert_eq!(bytes.len() as i64, rec["sizeBytes"].as_i64().unwrap());
    assert!(bytes.starts_with(b"OggS"));

    // The backlog fails with NO_CAPACITY and never reached a worker.
    wait_until(
        "us's backlog fails with NO_CAPACITY",
        QUEUE_TIMEOUT + Duration::from_secs(30),
        || {
            let us = us.clone();
            async move {
                let s = statuses(&us).await;
                match s
                    .iter()
                    .all(|(s, r)| s == "FAILED" && r.as_deref() == Some("NO_CAPACITY"))
                {
                    true => Ok(()),
                    false => Err(format!("{s:?}")),
                }
            }
        },
    )
    .await;
    for bot in backlog.iter().take(5) {
        assert!(cluster.admin.bot_leases(bot).await.unwrap().is_empty());
    }
    assert!(keys_in(s3_store("us")).await.is_empty());
}
