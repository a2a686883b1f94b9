//! Retention that deletes, end to end on PostgreSQL and SeaweedFS (an
//! S3-compatible server), with a real worker in the sandbox meeting: bots
//! hear a scripted meeting (transcript, chat, participants, speaker
//! timeline, recording, webhook deliveries), the tenant sets its rules and
//! a legal hold, and `attache admin retention-sweep --as-of` a month later
//! deletes exactly the expired classes, rows and objects; held data stays
//! until the hold is released; the audit chain verifies throughout.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use attache_control_plane::{DefaultTranscription, ObjectStoreConfig, Objects, S3Config};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A webhook receiver that accepts everything.
async fn receiver() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                // Headers, then the body its length says.
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    url
}

/// One `attache admin …` run on the cluster's deployment; its stdout.
fn admin(cluster: &Cluster, db: &str, s3: &S3Config, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_attache"));
    cmd.arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(cluster.dir.join("cp"))
        .arg("--database-url")
        .arg(db)
        .env("RUST_LOG", "warn");
    if args[0] == "retention-sweep" {
        cmd.args(["--s3-bucket", &s3.bucket, "--s3-region", &s3.region])
            .args(["--s3-endpoint", s3.endpoint.as_deref().unwrap()])
            .arg("--s3-path-style")
            .env("AWS_ACCESS_KEY_ID", s3.access_key.as_deref().unwrap_or(""))
            .env(
                "AWS_SECRET_ACCESS_KEY",
                s3.secret_key.as_deref().unwrap_or(""),
            );
    }
    let out = cmd.output().expect("attache runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "attache admin {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `class: n` lines of a sweep's output.
fn deleted(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let (class, rest) = l.split_once(": ")?;
            if class.contains(' ') {
                return None;
            }
            let n = rest.split_whitespace().next()?.parse().ok()?;
            Some((class.to_string(), n))
        })
        .collect()
}

fn objects_in(out: &str) -> u64 {
    let l = out.lines().find(|l| l.starts_with("recordings:")).unwrap();
    l.split('(')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = [
        "recordings",
        "transcripts",
        "chat",
        "participants",
        "bot_metadata",
        "webhook_deliveries",
    ]
    .into_iter()
    .map(|c| (c.to_string(), 0))
    .collect();
    for (c, n) in pairs {
        m.insert(c.to_string(), *n);
    }
    m
}

/// What a bot has, as the API shows it.
async fn have(api: &Api, id: &str) -> Value {
    api.gql(
        "query($id: ID!) { bot(id: $id) { status
            transcript { totalCount }
            chatMessages { text }
            participants { name }
            speakerTimeline { name }
            recording { status }
            events { status }
            warnings { code }
        } }",
        json!({ "id": id }),
    )
    .await["bot"]
        .clone()
}

/// Rows the sweep counts for the deliveries about `bots`: each delivery
/// and each of its attempts.
async fn delivery_rows(api: &Api, bots: &[&str]) -> u64 {
    let d = api
        .gql(
            "{ webhookEndpoints { deliveries(first: 500) { botId status attemptLog { at } } } }",
            json!({}),
        )
        .await;
    d["webhookEndpoints"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| bots.contains(&d["botId"].as_str().unwrap_or("")))
        .map(|d| 1 + d["attemptLog"].as_array().unwrap().len() as u64)
        .sum()
}

async fn all_delivered(api: &Api) -> bool {
    let d = api
        .gql(
            "{ webhookEndpoints { deliveries(first: 500) { status } } }",
            json!({}),
        )
        .await;
    d["webhookEndpoints"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "DELIVERED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_classes_go_held_data_stays_and_the_audit_chain_verifies() {
    let Some(db) = fresh_postgres("retention") else {
        return;
    };
    let Some(s3) = s3_config(&format!("attache-retention-{}", std::process::id())) else {
        return;
    };
    let mut cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        object_store: Some(ObjectStoreConfig::S3(s3.clone())),
        tweak: Some(|c| c.default_transcription = DefaultTranscription::Local),
        ..Default::default()
    })
    .await;
    cluster.add_worker(2).await;
    let created = cluster.admin.create_tenant("acme", "local").await.unwrap();
    let tenant = created.tenant_id.clone();
    let api = Api::new(&cluster.http, &created.api_key);
    api.gql(
        "mutation($url: String!) { createWebhookEndpoint(input: {url: $url}) { endpoint { id } } }",
        json!({ "url": receiver().await }),
    )
    .await;

    // Two bots hear the scripted meeting, each in its own; a third waits
    // for tomorrow (not final: nothing of it may go).
    let swept = api
        .create_bot(
            &cluster.meeting("rt-swept", "admission=open&script=demo"),
            "Swept Bot",
        )
        .await;
    let held = api
        .create_bot(
            &cluster.meeting("rt-held", "admission=open&script=demo"),
            "Held Bot",
        )
        .await;
    let later = api
        .gql(
            "mutation($u: String!, $at: DateTime) { createBot(input: {meetingUrl: $u, joinAt: $at}) { id } }",
            json!({
                "u": cluster.meeting("rt-later", ""),
                "at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
            }),
        )
        .await["createBot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in [&swept, &held] {
        api.wait_status(id, "IN_CALL", Duration::from_secs(60))
            .await;
    }
    // The script's last words end at 14.6 s.
    tokio::time::sleep(Duration::from_secs(16)).await;
    for meeting in ["rt-swept", "rt-held"] {
        cluster.host(meeting, "end", None).await;
    }
    for id in [&swept, &held] {
        api.wait_status(id, "ENDED", Duration::from_secs(60)).await;
    }
    // Everything heard is stored, and every webhook delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let before = loop {
        let a = have(&api, &swept).await;
        let b = have(&api, &held).await;
        let ready = [&a, &b].iter().all(|m| {
            m["recording"]["status"] == "READY"
                && m["transcript"]["totalCount"].as_u64().unwrap() > 0
        });
        if ready && all_delivered(&api).await {
            break [a, b];
        }
        assert!(std::time::Instant::now() < deadline, "{a:#} {b:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for m in &before {
        assert_eq!(m["chatMessages"].as_array().unwrap().len(), 1, "{m:#}");
        assert!(m["participants"].as_array().unwrap().len() >= 3, "{m:#}");
        assert!(
            !m["speakerTimeline"].as_array().unwrap().is_empty(),
            "{m:#}"
        );
    }
    let segments = |m: &Value| m["transcript"]["totalCount"].as_u64().unwrap();
    let people = |m: &Value| {
        (m["participants"].as_array().unwrap().len()
            + m["speakerTimeline"].as_array().unwrap().len()) as u64
    };

    // In the bucket: each recording, and for the swept bot the chunks an
    // earlier lease left when it was dispatched again.
    let objects = Objects::open(&ObjectStoreConfig::S3(s3.clone()), b"test".to_vec())
        .await
        .unwrap();
    let prefix = |bot: &str| format!("tenants/{tenant}/bots/{bot}/");
    for offset in [0u64, 4096] {
        objects
            .put(
                &format!("{}chunks/0/{offset:016}", prefix(&swept)),
                vec![7; 16],
            )
            .await
            .unwrap();
    }
    // (An S3 listing of a folder is recursive.)
    let stored = |bot: String| {
        let objects = objects.clone();
        async move { objects.list(&bot).await.unwrap() }
    };
    assert_eq!(stored(prefix(&swept)).await.len(), 3);
    assert_eq!(stored(prefix(&held)).await.len(), 1);

    // Recordings, transcripts, chat, metadata and deliveries for 30 days;
    // participants and the speaker timeline kept; the second bot held.
    for (class, days) in [
        ("RECORDINGS", json!(30)),
        ("TRANSCRIPTS", json!(30)),
        ("CHAT", json!(30)),
        ("PARTICIPANTS", Value::Null),
        ("BOT_METADATA", json!(30)),
        ("WEBHOOK_DELIVERIES", json!(30)),
    ] {
        api.gql(
            "mutation($c: RetentionClass!, $d: Int) { setRetentionPolicy(input: {class: $c, retentionDays: $d}) { class } }",
            json!({ "c": class, "d": days }),
        )
        .await;
    }
    let hold = api
        .gql(
            "mutation($b: ID!) { setLegalHold(input: {botId: $b, reason: \"Matter 17\"}) { id } }",
            json!({ "b": held }),
        )
        .await["setLegalHold"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let as_of = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    // Deliveries about the swept bot and the waiting one go (their own
    // clock); those about the held bot stay.
    let want_deliveries = delivery_rows(&api, &[&swept, &later]).await;
    let held_deliveries = delivery_rows(&api, &[&held]).await;
    let out = admin(&cluster, &db, &s3, &["retention-sweep", "--as-of", &as_of]);
    assert_eq!(
        deleted(&out),
        expect(&[
            ("recordings", 1),
            ("transcripts", segments(&before[0])),
            ("chat", 1),
            ("webhook_deliveries", want_deliveries),
        ]),
        "{out}"
    );
    assert_eq!(
        objects_in(&out),
        3,
        "the recording and both stray chunks: {out}"
    );
    assert!(out.contains("nothing expired is left"), "{out}");

    let a = have(&api, &swept).await;
    assert_eq!(a["recording"], Value::Null, "{a:#}");
    assert_eq!(a["transcript"]["totalCount"], 0);
    assert!(a["chatMessages"].as_array().unwrap().is_empty());
    assert_eq!(people(&a), people(&before[0]), "participants are kept");
    assert_eq!(a["events"], before[0]["events"], "the bot waits for them");
    assert!(stored(prefix(&swept)).await.is_empty());
    assert_eq!(have(&api, &held).await, before[1], "held: untouched");
    assert_eq!(stored(prefix(&held)).await.len(), 1);
    assert_eq!(delivery_rows(&api, &[&held]).await, held_deliveries);
    assert_eq!(delivery_rows(&api, &[&swept, &later]).await, 0);
    assert_eq!(api.bot(&later).await["status"], "QUEUED");

    // Released, the held bot's data follows the same rules.
    api.gql(
        "mutation($h: ID!) { releaseLegalHold(id: $h) { active } }",
        json!({ "h": hold }),
    )
    .await;
    let out = admin(&cluster, &db, &s3, &["retention-sweep", "--as-of", &as_of]);
    assert_eq!(
        deleted(&out),
        expect(&[
            ("recordings", 1),
            ("transcripts", segments(&before[1])),
            ("chat", 1),
            ("webhook_deliveries", held_deliveries),
        ]),
        "{out}"
    );
    assert!(stored(prefix(&held)).await.is_empty());

    // Participants expire too: the ended bots go altogether; the waiting
    // one stays.
    api.gql(
        "mutation { setRetentionPolicy(input: {class: PARTICIPANTS, retentionDays: 30}) { class } }",
        json!({}),
    )
    .await;
    let out = admin(&cluster, &db, &s3, &["retention-sweep", "--as-of", &as_of]);
    let metadata = |m: &Value| {
        1 + (m["events"].as_array().unwrap().len() + m["warnings"].as_array().unwrap().len()) as u64
    };
    assert_eq!(
        deleted(&out),
        expect(&[
            ("participants", people(&before[0]) + people(&before[1])),
            ("bot_metadata", metadata(&before[0]) + metadata(&before[1])),
        ]),
        "the two bots with their events and warnings: {out}"
    );
    for id in [&swept, &held] {
        assert_eq!(
            api.error_code(
                "query($id: ID!) { bot(id: $id) { id } }",
                json!({ "id": id })
            )
            .await,
            "NOT_FOUND"
        );
    }
    assert_eq!(api.bot(&later).await["status"], "QUEUED");
    assert_eq!(api.bot_count().await, 1);

    // The tenant's trail says what retention deleted; the chain verifies.
    let trail = api
        .gql(
            "{ auditLog(first: 100) { actor action target } }",
            json!({}),
        )
        .await;
    let sweeps: Vec<&Value> = trail["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "retentionSweep")
        .collect();
    assert_eq!(sweeps.len(), 3, "{trail:#}");
    assert!(sweeps.iter().all(|e| e["actor"] == "operator:cli"));
    assert!(
        trail["auditLog"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "setLegalHold"
                && e["target"] == format!("legal_hold:{hold} bot:{held}")),
        "{trail:#}"
    );
    let verified = admin(&cluster, &db, &s3, &["verify-audit"]);
    assert!(verified.contains("audit log intact"), "{verified}");
    assert!(matches!(
        cluster.admin.verify_audit().await.unwrap(),
        attache_control_plane::AuditVerdict::Intact { .. }
    ));
}

/// The operator's defaults apply to tenants that chose nothing, and
/// `retention-defaults` shows and sets them in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_defaults_are_set_from_the_command_line() {
    let Some(db) = fresh_postgres("retention_defaults") else {
        return;
    };
    let Some(s3) = s3_config(&format!(
        "attache-retention-defaults-{}",
        std::process::id()
    )) else {
        return;
    };
    let cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        object_store: Some(ObjectStoreConfig::S3(s3.clone())),
        ..Default::default()
    })
    .await;
    let api = cluster.tenant("acme").await;
    let out = admin(
        &cluster,
        &db,
        &s3,
        &[
            "retention-defaults",
            "--class",
            "transcripts",
            "--days",
            "90",
        ],
    );
    assert!(out.contains("transcripts: 90 days"), "{out}");
    assert!(out.contains("chat: kept (no default)"), "{out}");
    let rules = api
        .gql(
            "{ retentionPolicy { class retentionDays source } }",
            json!({}),
        )
        .await;
    assert!(
        rules["retentionPolicy"].as_array().unwrap().contains(
            &json!({ "class": "TRANSCRIPTS", "retentionDays": 90, "source": "PLATFORM_DEFAULT" })
        ),
        "{rules}"
    );
    let out = admin(
        &cluster,
        &db,
        &s3,
        &["retention-defaults", "--class", "transcripts", "--keep"],
    );
    assert!(out.contains("transcripts: kept (no default)"), "{out}");
    // A sweep with nothing to do says so.
    let out = admin(&cluster, &db, &s3, &["retention-sweep"]);
    assert_eq!(deleted(&out), expect(&[]), "{out}");
    // Both changes are in the platform's trail.
    let mut trail = Vec::new();
    cluster.admin.export_audit(None, &mut trail).await.unwrap();
    let trail = String::from_utf8(trail).unwrap();
    assert_eq!(
        trail.matches("\"action\":\"setRetentionDefault\"").count(),
        2,
        "{trail}"
    );
    assert!(
        trail.contains("retention_default:transcripts=90"),
        "{trail}"
    );
}
