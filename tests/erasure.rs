//! Erasure on request, end to end on PostgreSQL and SeaweedFS (an
//! S3-compatible server) with a real worker in scripted sandbox meetings.
//!
//! A tenant erases one of its bots, or one person by name from every bot it
//! has; the platform operator erases a whole tenant. Each erasure is a job
//! that runs in the background: asking again for the same subject answers
//! the same job, and a bot under a legal hold is refused. A finished job
//! holds a certificate signed with the deployment's erasure key (published
//! at `/.well-known/attache-erasure-key`) that says what was removed, and
//! names a person only by a salted hash; a changed certificate no longer
//! verifies.
//!
//! Once a bot is erased, nothing it saw is in any table, column, object or
//! file of the deployment, while the tenant's other bots answer as before.
//! And a backup of the database and the bucket taken before the erasure,
//! restored beside the deployment's own master key file, no longer opens
//! the erased bot: the key that wrapped its data is destroyed, and the
//! tenant's other bots were moved to a new one first. Erasing a person
//! takes what they said, wrote and their presence out of every bot and
//! leaves everyone else's. Erasing a tenant leaves no row of its bots.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use attache_control_plane::{
    ControlPlane, DefaultTranscription, ObjectStoreConfig, Objects, S3Config,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, Value as Sql};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;
use tokio_util::sync::CancellationToken;

/// The PostgreSQL server `scripts/test` starts; `None` (the test is
/// skipped) when it is not running.
fn postgres_server() -> Option<String> {
    match std::env::var("ATTACHE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_POSTGRES_URL is not set; run the suite with scripts/test")
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            None
        }
    }
}

/// A PostgreSQL client program: the newest installed server's (the one
/// `scripts/services.sh` starts), else the one on PATH.
fn pg_program(name: &str) -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let program = e.path().join("bin").join(name);
            program.is_file().then_some((major, program))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A backup of the database at `url`, restored into a new database of the
/// same server: `pg_dump`, then `psql`. Returns the copy's URL.
fn back_up_database(server: &str, url: &str, dir: &Path) -> String {
    let dump = dir.join("backup.sql");
    let out = Command::new(pg_program("pg_dump"))
        .args(["--no-owner", "--no-privileges", "-f"])
        .arg(&dump)
        .arg(url)
        .output()
        .expect("pg_dump runs (Debian's postgresql package brings it)");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = own_postgres_database(server, "erasure_backup");
    let out = Command::new(pg_program("psql"))
        .arg(&copy)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&dump)
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "restoring the backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy
}

/// Copies every object of `from` into `to`; how many there were.
async fn back_up_bucket(from: &Objects, to: &Objects) -> usize {
    let keys = from.list("tenants/").await.unwrap();
    for key in &keys {
        let bytes = from.get(key).await.unwrap().expect("listed, so stored");
        to.put(key, bytes).await.unwrap();
    }
    keys.len()
}

/// A control plane on a restored backup: a data directory (and fleet CA)
/// of its own, the restored database and bucket, and the deployment's
/// master key file, with whatever its directory holds at the time.
struct Restored {
    api: Api,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn restore(cluster: &Cluster, db: &str, store: &S3Config, api_key: &str) -> Restored {
    let master_key = cluster.dir.join("cp").join("master.key");
    assert!(
        master_key.is_file(),
        "the deployment's master key file: {}",
        master_key.display()
    );
    let dir = temp_dir("erasure-restored");
    let mut c = cp_config(&dir, &cluster.sandbox, "127.0.0.1:0".parse().unwrap());
    c.database_url = Some(db.to_string());
    c.object_store = Some(ObjectStoreConfig::S3(store.clone()));
    c.master_key_file = Some(master_key);
    // The deployment's keys: its key file and its erasable keys (as they
    // are at the time, so after an erasure without the destroyed ones).
    c.erasable_key_dir = Some(cluster.dir.join("cp").join("erasable-keys"));
    c.default_transcription = DefaultTranscription::Local;
    let cp = ControlPlane::build(c)
        .await
        .expect("a control plane starts on the restored backup");
    let api = Api::new(&format!("http://{}", cp.http_addr()), api_key);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(cp.run(shutdown.clone()));
    Restored {
        api,
        shutdown,
        task,
    }
}

impl Restored {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// The platform operator's console session.
struct Operator {
    http: String,
    cookie: String,
}

impl Operator {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        operator_gql(&self.http, &self.cookie, query, variables).await
    }
}

/// Who asks about an erasure job: a tenant's API key, or the operator.
enum Caller<'a> {
    Key(&'a Api),
    Console(&'a Operator),
}

const JOB: &str =
    "id subject subjectId status statusReason certificate requestedBy requestedAt completedAt";

/// `mutation { <op>(<arg>: $x) { …job } }`.
fn erase(op: &str, arg: &str, ty: &str) -> String {
    format!("mutation($x: {ty}) {{ {op}({arg}: $x) {{ {JOB} }} }}")
}

impl Caller<'_> {
    /// The job as the caller sees it now (`null` if it does not).
    async fn job(&self, id: &str) -> Value {
        match self {
            Caller::Key(api) => api
                .gql(
                    &format!("query($id: ID!) {{ erasureJob(id: $id) {{ {JOB} }} }}"),
                    json!({ "id": id }),
                )
                .await["erasureJob"]
                .clone(),
            // The operator's list holds the tenant erasures.
            Caller::Console(op) => op
                .gql(&format!("{{ erasureJobs {{ {JOB} }} }}"), json!({}))
                .await["erasureJobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["id"] == id)
                .cloned()
                .unwrap_or(Value::Null),
        }
    }
}

/// Polls the job until it is DONE; panics with it if it FAILED.
async fn wait_done(who: &Caller<'_>, id: &str) -> Value {
    let within = Duration::from_secs(90);
    let deadline = Instant::now() + within;
    loop {
        let job = who.job(id).await;
        match job["status"].as_str() {
            Some("DONE") => return job,
            Some("FAILED") => panic!("erasure job {id} failed: {job:#}"),
            _ if Instant::now() > deadline => {
                panic!("erasure job {id} not done within {within:?}: {job:#}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("not base64url ({e}): {s}"))
}

/// The deployment's erasure key set, checked for its shape.
async fn erasure_key(http: &str) -> Value {
    let r = reqwest::get(format!("{http}/.well-known/attache-erasure-key"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("a JWKS: {\"keys\": [...]}");
    assert!(!keys.is_empty(), "{jwks}");
    for k in keys {
        assert_eq!(k["kty"], "OKP", "{k}");
        assert_eq!(k["crv"], "Ed25519", "{k}");
        assert_eq!(k["alg"], "EdDSA", "{k}");
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["kid"].is_string(), "{k}");
        assert_eq!(b64url(k["x"].as_str().unwrap()).unwrap().len(), 32, "{k}");
    }
    jwks
}

/// The payload of a certificate (a JWS in flattened JSON) whose signature
/// verifies with the key of `jwks` its header names; why not otherwise.
fn verified(certificate: &str, jwks: &Value) -> Result<Value, String> {
    let jws: Value = serde_json::from_str(certificate).map_err(|e| format!("not JSON: {e}"))?;
    let part = |k: &str| {
        jws[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no {k}: {jws}"))
    };
    let (protected, payload, signature) =
        (part("protected")?, part("payload")?, part("signature")?);
    let header: Value = serde_json::from_slice(&b64url(&protected)?)
        .map_err(|e| format!("protected header: {e}"))?;
    if header["alg"] != "EdDSA" {
        return Err(format!("alg: {header}"));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or_else(|| format!("no key {kid} in {jwks}"))?;
    let x: [u8; 32] = b64url(jwk["x"].as_str().unwrap_or(""))?
        .try_into()
        .map_err(|_| "x is not 32 bytes")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let sig: [u8; 64] = b64url(&signature)?
        .try_into()
        .map_err(|_| "the signature is not 64 bytes")?;
    key.verify_strict(
        format!("{protected}.{payload}").as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|e| format!("signature: {e}"))?;
    serde_json::from_slice(&b64url(&payload)?).map_err(|e| format!("payload: {e}"))
}

/// The certificate with its payload changed and its signature kept.
fn tampered(certificate: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut jws: Value = serde_json::from_str(certificate).unwrap();
    let mut payload: Value =
        serde_json::from_slice(&b64url(jws["payload"].as_str().unwrap()).unwrap()).unwrap();
    change(&mut payload);
    jws["payload"] = json!(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()));
    jws.to_string()
}

fn rfc3339(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
}

const CLASSES: [&str; 6] = [
    "recordings",
    "transcripts",
    "chat",
    "participants",
    "bot_metadata",
    "webhook_deliveries",
];

/// What every certificate of a done job says, and that it verifies while
/// a changed payload or signature does not. Returns the payload.
fn check_certificate(job: &Value, jwks: &Value, tenant: &str) -> Value {
    let cert = job["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("a done job has its certificate: {job:#}"));
    let payload = verified(cert, jwks)
        .unwrap_or_else(|e| panic!("the certificate does not verify: {e}\n{cert}"));
    assert_eq!(payload["version"], 1, "{payload:#}");
    assert_eq!(payload["job"], job["id"], "{payload:#}");
    assert_eq!(payload["tenant"], tenant, "{payload:#}");
    assert_eq!(payload["requested_by"], job["requestedBy"], "{payload:#}");
    let requested = rfc3339(&payload["requested_at"]);
    let completed = rfc3339(&payload["completed_at"]);
    assert!(completed >= requested, "{payload:#}");
    assert!(
        (requested - rfc3339(&job["requestedAt"]))
            .num_milliseconds()
            .abs()
            < 1000,
        "the job's request time: {payload:#} {job:#}"
    );
    for class in CLASSES {
        assert!(
            payload["removed"][class].is_u64(),
            "removed.{class}: {payload:#}"
        );
    }
    assert!(payload["objects"]["deleted"].is_u64(), "{payload:#}");
    let hashes = payload["objects"]["sha256"]
        .as_array()
        .expect("objects.sha256");
    assert!(
        hashes.iter().all(|h| h
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))),
        "{payload:#}"
    );
    assert!(
        payload["keys_destroyed"]
            .as_array()
            .expect("keys_destroyed")
            .iter()
            .all(Value::is_string),
        "{payload:#}"
    );
    assert!(
        payload["transcription"]
            .as_array()
            .expect("transcription")
            .iter()
            .all(|t| t["provider"].is_string()),
        "{payload:#}"
    );

    // Changed by anyone without the deployment's key, it no longer verifies.
    let more = tampered(cert, |p| {
        let n = p["removed"]["transcripts"].as_u64().unwrap();
        p["removed"]["transcripts"] = json!(n + 1);
    });
    assert!(verified(&more, jwks).is_err(), "a changed count verifies");
    let elsewhere = tampered(cert, |p| p["tenant"] = json!("another-tenant"));
    assert!(
        verified(&elsewhere, jwks).is_err(),
        "a changed tenant verifies"
    );
    let mut jws: Value = serde_json::from_str(cert).unwrap();
    let mut sig = b64url(jws["signature"].as_str().unwrap()).unwrap();
    sig[0] ^= 1;
    jws["signature"] = json!(URL_SAFE_NO_PAD.encode(&sig));
    assert!(
        verified(&jws.to_string(), jwks).is_err(),
        "a changed signature verifies"
    );
    payload
}

/// `(table, column, found)` for every column of every table holding
/// `needle`: text of any type (cast, case-insensitively), bytes as bytes.
async fn find_in_database(url: &str, needle: &str) -> Vec<(String, String, i64)> {
    let db = Database::connect(url).await.unwrap();
    let columns = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty
             FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY 1, 2",
        ))
        .await
        .unwrap();
    assert!(
        columns.len() > 50,
        "every table's columns: {}",
        columns.len()
    );
    let mut found = Vec::new();
    for row in columns {
        let table: String = row.try_get("", "t").unwrap();
        let column: String = row.try_get("", "c").unwrap();
        let ty: String = row.try_get("", "ty").unwrap();
        let (sql, value) = if ty == "bytea" {
            (
                format!(
                    "SELECT count(*) AS n FROM \"{table}\" WHERE position($1::bytea in \"{column}\") > 0"
                ),
                Sql::Bytes(Some(needle.as_bytes().to_vec())),
            )
        } else {
            (
                format!(
                    "SELECT count(*) AS n FROM \"{table}\" WHERE strpos(lower(\"{column}\"::text), lower($1)) > 0"
                ),
                Sql::String(Some(needle.to_string())),
            )
        };
        let n: i64 = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [value],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        if n > 0 {
            found.push((table, column, n));
        }
    }
    found
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && bytes
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Files under `dir` whose bytes hold `needle`.
fn find_in_files(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && holds(&bytes, needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Every object of the store whose key or bytes hold one of `needles`.
async fn find_in_objects(objects: &Objects, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for key in objects.list("tenants/").await.unwrap() {
        let bytes = objects.get(&key).await.unwrap().unwrap_or_default();
        for needle in needles {
            if holds(key.as_bytes(), needle) || holds(&bytes, needle) {
                found.push(format!("{needle:?} in object {key}"));
            }
        }
    }
    found
}

async fn count(url: &str, sql: &str, value: &str) -> i64 {
    let db = Database::connect(url).await.unwrap();
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [Sql::String(Some(value.to_string()))],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "n")
    .unwrap()
}

/// `(table, rows)` of bot `id`: its own row, and its rows in every table
/// with a `bot_id` column.
async fn rows_of_bot(url: &str, id: &str) -> Vec<(String, i64)> {
    let db = Database::connect(url).await.unwrap();
    let tables = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT DISTINCT table_name::text AS t FROM information_schema.columns
             WHERE table_schema = current_schema() AND column_name = 'bot_id' ORDER BY 1",
        ))
        .await
        .unwrap();
    assert!(tables.len() >= 8, "tables with a bot_id: {}", tables.len());
    let mut queries = vec![(
        "bots".to_string(),
        "SELECT count(*) AS n FROM bots WHERE id = $1".to_string(),
    )];
    for row in tables {
        let t: String = row.try_get("", "t").unwrap();
        let sql = format!("SELECT count(*) AS n FROM \"{t}\" WHERE bot_id::text = $1");
        queries.push((t, sql));
    }
    let mut found = Vec::new();
    for (table, sql) in queries {
        let n = count(url, &sql, id).await;
        if n > 0 {
            found.push((table, n));
        }
    }
    found
}

/// The sandbox meeting `id`, open to anyone, playing `script`; its URL.
async fn scripted_meeting(cluster: &Cluster, id: &str, script: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/api/meetings", cluster.sandbox))
        .json(&json!({ "id": id, "admission": "open", "custom_script": script }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    cluster.meeting(id, "")
}

/// Everything a bot has that the API shows, with `recording` fields.
fn what_a_bot_has(recording: &str) -> String {
    format!(
        "query($id: ID!) {{ bot(id: $id) {{ botName meetingUrl status
            participants {{ participantId name joinedAt leftAt }}
            speakerTimeline {{ participantId name startedAt endedAt }}
            chatMessages {{ sender text sentAt }}
            transcriptText
            transcript(first: 500) {{ totalCount edges {{ node {{ id speaker text startMs endMs }} }} }}
            recording {{ {recording} }}
        }} }}"
    )
}

/// What the bot has, without anything that changes from one ask to the
/// next (download links).
async fn seen(api: &Api, id: &str) -> Value {
    api.gql(
        &what_a_bot_has("status sizeBytes sha256"),
        json!({ "id": id }),
    )
    .await["bot"]
        .clone()
}

fn segments(bot: &Value) -> Vec<Value> {
    bot["transcript"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn spoken_by(bot: &Value, who: &str) -> Vec<Value> {
    segments(bot)
        .into_iter()
        .filter(|s| s["speaker"] == who)
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The entries of `list` whose `field` is not `who`.
fn without(list: &Value, field: &str, who: &str) -> Vec<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e[field] != who)
        .cloned()
        .collect()
}

/// Waits for the ended bot's READY recording and a transcript with a
/// segment by each of `speakers`; returns what it has.
async fn wait_heard(api: &Api, id: &str, speakers: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = seen(api, id).await;
        if b["recording"]["status"] == "READY"
            && speakers.iter().all(|who| !spoken_by(&b, who).is_empty())
        {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "bot {id}: a READY recording and words by {speakers:?}: {b:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The personal values a bot holds, as the API shows them: what a copy
/// must not give back.
fn personal_values(bot: &Value) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut add = |v: &Value| {
        if let Some(s) = v.as_str() {
            found.insert(s.trim().to_string());
        }
    };
    add(&bot["botName"]);
    add(&bot["meetingUrl"]);
    for list in ["participants", "speakerTimeline"] {
        for p in bot[list].as_array().unwrap() {
            add(&p["participantId"]);
            add(&p["name"]);
        }
    }
    for m in bot["chatMessages"].as_array().unwrap() {
        add(&m["sender"]);
        add(&m["text"]);
    }
    for s in segments(bot) {
        add(&s["speaker"]);
        add(&s["text"]);
    }
    // Long enough that no other string holds one by chance.
    found.into_iter().filter(|s| s.len() >= 6).collect()
}

fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

/// Bytes of `values` that came back in a GraphQL answer's data.
fn readable_bytes(values: &[String], answer: &Value) -> usize {
    let mut shown = Vec::new();
    strings_in(&answer["data"], &mut shown);
    values
        .iter()
        .filter(|v| shown.iter().any(|s| s.contains(v.as_str())))
        .map(|v| v.len())
        .sum()
}

async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_erased_is_gone_everywhere_and_no_earlier_backup_opens_it() {
    let Some(server) = postgres_server() else {
        return;
    };
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // The S3 server outlives one run: buckets of this run's own.
    let run = format!("{}-{}", std::process::id(), n % 1_000_000_000);
    let Some(s3) = s3_config(&format!("attache-erasure-{run}")) else {
        return;
    };
    let backup_s3 = s3_config(&format!("attache-erasure-backup-{run}")).expect("S3 is configured");
    let db = own_postgres_database(&server, "erasure");

    // One tag per meeting, in each of its personal values and nowhere
    // else: never hex, so no hash or id can hold one by chance.
    let (tag1, tag2, tag3) = (format!("qzu{n}"), format!("qzw{n}"), format!("qzy{n}"));
    let (zelda, ignatius) = (format!("Zelda {tag1}"), format!("Ignatius {tag1}"));
    let minutes = format!("the minutes for {tag1} are in the doc");
    let scribe = format!("Scribe {tag1}");
    let (philippa, rupert) = (format!("Philippa {tag2}"), format!("Rupert {tag2}"));
    let her_note = format!("my draft for {tag2} is attached");
    let his_note = format!("read the draft for {tag2}, looks good");
    let clerk = format!("Clerk {tag2}");
    let octavia = format!("Octavia {tag3}");
    let courier = format!("Courier {tag3}");

    let mut cluster = Cluster::start_with(Options {
        database_url: Some(db.clone()),
        object_store: Some(ObjectStoreConfig::S3(s3.clone())),
        api_limit: Some((100_000, 100_000)),
        tweak: Some(|c| c.default_transcription = DefaultTranscription::Local),
        ..Default::default()
    })
    .await;
    cluster.add_worker(2).await;
    let acme = cluster.admin.create_tenant("acme", "local").await.unwrap();
    let tenant = acme.tenant_id.clone();
    let api = Api::new(&cluster.http, &acme.api_key);
    let (globex_id, globex) = cluster.tenant_in("globex", "local").await;
    cluster
        .admin
        .add_operator("ops@platform.test")
        .await
        .unwrap();
    let operator = Operator {
        http: cluster.http.clone(),
        cookie: cluster
            .admin
            .operator_session("ops@platform.test", Duration::from_secs(3600))
            .await
            .unwrap(),
    };
    let jwks = erasure_key(&cluster.http).await;

    // Two meetings at once: the bot to erase hears Zelda and Ignatius; the
    // bot that stays hears Philippa (to be erased later) and Rupert.
    let meeting1 = format!("erase-{tag1}");
    let meeting2 = format!("keep-{tag2}");
    let url1 = scripted_meeting(
        &cluster,
        &meeting1,
        json!({
            "participants": [{ "name": zelda }, { "name": ignatius }],
            "speech": [
                { "speaker": zelda, "at_ms": 1_000, "clip": "alice-1" },
                { "speaker": ignatius, "at_ms": 5_500, "clip": "bob-1" },
            ],
            "chat": [{ "sender": ignatius, "at_ms": 3_000, "text": minutes }],
        }),
    )
    .await;
    let url2 = scripted_meeting(
        &cluster,
        &meeting2,
        json!({
            "participants": [{ "name": philippa }, { "name": rupert }],
            "speech": [
                { "speaker": philippa, "at_ms": 1_000, "clip": "alice-1" },
                { "speaker": rupert, "at_ms": 5_500, "clip": "bob-1" },
            ],
            "chat": [
                { "sender": philippa, "at_ms": 2_500, "text": her_note },
                { "sender": rupert, "at_ms": 7_000, "text": his_note },
            ],
        }),
    )
    .await;
    let erased = api.create_bot(&url1, &scribe).await;
    let kept = api.create_bot(&url2, &clerk).await;
    for id in [&erased, &kept] {
        api.wait_status(id, "IN_CALL", Duration::from_secs(40))
            .await;
    }
    // The last words end 8.9 s into each call.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for meeting in [&meeting1, &meeting2] {
        cluster.host(meeting, "end", None).await;
    }
    for id in [&erased, &kept] {
        let b = api.wait_status(id, "ENDED", Duration::from_secs(60)).await;
        assert_eq!(b["statusReason"], "MEETING_ENDED", "{b:#}");
    }
    let before1 = wait_heard(&api, &erased, &[zelda.as_str()]).await;
    let before2 = wait_heard(&api, &kept, &[philippa.as_str(), rupert.as_str()]).await;
    assert_eq!(before1["botName"], scribe.as_str());
    let people = names(&before1["participants"]);
    assert!(
        people.contains(&zelda) && people.contains(&ignatius),
        "{people:?}"
    );
    assert_eq!(before1["chatMessages"][0]["text"], minutes.as_str());
    let people = names(&before2["participants"]);
    assert!(
        people.contains(&philippa) && people.contains(&rupert),
        "{people:?}"
    );
    let notes: Vec<&str> = before2["chatMessages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, [her_note.as_str(), his_note.as_str()]);
    let timeline = names(&before2["speakerTimeline"]);
    assert!(
        timeline.contains(&philippa) && timeline.contains(&rupert),
        "{timeline:?}"
    );
    let live_link = api.media(&erased).await["recording"]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, bytes) = fetch(&live_link).await;
    assert!(ok(status) && bytes.starts_with(b"OggS"), "{status}");

    // A backup of the database and the bucket, as an operator takes one.
    let backup_db = back_up_database(&server, &db, &temp_dir("erasure-backup"));
    let live = Objects::open(&ObjectStoreConfig::S3(s3.clone()), b"unused".to_vec())
        .await
        .unwrap();
    let backup = Objects::open(
        &ObjectStoreConfig::S3(backup_s3.clone()),
        b"unused".to_vec(),
    )
    .await
    .unwrap();
    let copied = back_up_bucket(&live, &backup).await;
    let prefix1 = format!("tenants/{tenant}/bots/{erased}/");
    assert!(
        !live.list(&prefix1).await.unwrap().is_empty(),
        "the bot's recording is in the bucket ({copied} objects copied)"
    );

    // The other tenant's bot (erased with its tenant at the end) hears a
    // meeting meanwhile.
    let meeting3 = format!("gone-{tag3}");
    let url3 = scripted_meeting(
        &cluster,
        &meeting3,
        json!({
            "participants": [{ "name": octavia }],
            "speech": [{ "speaker": octavia, "at_ms": 500, "clip": "carol-1" }],
            "chat": [{ "sender": octavia, "at_ms": 500, "text": format!("goodbye from {tag3}") }],
        }),
    )
    .await;
    let gone = globex.create_bot(&url3, &courier).await;

    // Restored beside the deployment's master key file, the backup opens:
    // everything the bot has, and its recording.
    let secrets = personal_values(&before1);
    let all_secrets: usize = secrets.iter().map(String::len).sum();
    let with_link = what_a_bot_has("status sizeBytes sha256 downloadUrl");
    let restored = restore(&cluster, &backup_db, &backup_s3, &acme.api_key).await;
    let (_, answer) = restored.api.raw(&with_link, json!({ "id": erased })).await;
    assert!(
        answer.get("errors").is_none(),
        "the backup opens before the erasure: {answer}"
    );
    let mut shown = answer["data"]["bot"].clone();
    let link = shown["recording"]
        .as_object_mut()
        .unwrap()
        .remove("downloadUrl")
        .unwrap();
    assert_eq!(shown, before1, "the backup answers as the deployment did");
    let link = link.as_str().unwrap().to_string();
    let (status, bytes) = fetch(&link).await;
    assert!(
        ok(status) && bytes.starts_with(b"OggS"),
        "the backup's recording downloads: {status}"
    );
    assert_eq!(readable_bytes(&secrets, &answer), all_secrets);
    println!(
        "erasure: readable bytes in the backup before the erasure: {}",
        all_secrets + bytes.len()
    );
    // The same link, on the next control plane of the backup.
    let download_path = link[link.find("/downloads/").expect("a download link")..].to_string();
    restored.stop().await;

    // A bot under a legal hold is not erased.
    let hold = api
        .gql(
            "mutation($b: ID!) { setLegalHold(input: {botId: $b, reason: \"Matter 7\"}) { id } }",
            json!({ "b": kept }),
        )
        .await["setLegalHold"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.error_code(&erase("eraseBot", "id", "ID!"), json!({ "x": kept }))
            .await,
        "LEGAL_HOLD"
    );
    api.gql(
        "mutation($h: ID!) { releaseLegalHold(id: $h) { active } }",
        json!({ "h": hold }),
    )
    .await;

    // The first bot is erased; asking again answers the same job.
    let rows = rows_of_bot(&db, &erased).await;
    assert!(
        rows.iter().any(|(t, _)| t == "transcript_segments"),
        "the search finds the bot's rows: {rows:?}"
    );
    let started = Instant::now();
    let job = api
        .gql(&erase("eraseBot", "id", "ID!"), json!({ "x": erased }))
        .await["eraseBot"]
        .clone();
    assert_eq!(job["subject"], "BOT", "{job:#}");
    assert_eq!(job["subjectId"], erased.as_str(), "{job:#}");
    assert_ne!(job["status"], "FAILED", "{job:#}");
    let again = api
        .gql(&erase("eraseBot", "id", "ID!"), json!({ "x": erased }))
        .await["eraseBot"]
        .clone();
    assert_eq!(again["id"], job["id"], "one job per subject");
    let job_id = job["id"].as_str().unwrap().to_string();
    let job = wait_done(&Caller::Key(&api), &job_id).await;
    println!(
        "erasure: bot erased in {} ms",
        started.elapsed().as_millis()
    );
    assert!(job["completedAt"].is_string(), "{job:#}");
    let again = api
        .gql(&erase("eraseBot", "id", "ID!"), json!({ "x": erased }))
        .await["eraseBot"]
        .clone();
    assert_eq!(again["id"], job["id"], "done, it is still the same job");
    assert_eq!(again["status"], "DONE");

    // Its certificate says what went, signed by the deployment.
    let cert = check_certificate(&job, &jwks, &tenant);
    assert_eq!(
        cert["subject"],
        json!({ "kind": "bot", "id": erased }),
        "{cert:#}"
    );
    let removed = &cert["removed"];
    assert_eq!(
        removed["transcripts"], before1["transcript"]["totalCount"],
        "{cert:#}"
    );
    assert_eq!(removed["chat"], 1, "{cert:#}");
    assert!(removed["recordings"].as_u64().unwrap() >= 1, "{cert:#}");
    assert!(
        removed["participants"].as_u64().unwrap()
            >= before1["participants"].as_array().unwrap().len() as u64,
        "{cert:#}"
    );
    assert!(cert["objects"]["deleted"].as_u64().unwrap() > 0, "{cert:#}");
    let destroyed = cert["keys_destroyed"].as_array().unwrap();
    assert!(!destroyed.is_empty(), "{cert:#}");
    assert!(
        !cert.to_string().to_lowercase().contains(&tag1),
        "nothing personal in the certificate: {cert:#}"
    );
    // A destroyed local key is gone from beside the master key file.
    let erasable = cluster.dir.join("cp").join("erasable-keys");
    let mut files = 0;
    for key in destroyed {
        if let Some((_, name)) = key.as_str().unwrap().split_once("@local:erasable:") {
            let file = erasable.join(format!("{name}.key"));
            assert!(!file.exists(), "{} is still there", file.display());
            files += 1;
        }
    }
    assert!(
        files > 0,
        "a generation's key file was destroyed: {destroyed:?}"
    );
    assert!(
        std::fs::read_dir(&erasable).unwrap().count() >= 1,
        "the current generation's key file is left"
    );
    println!(
        "erasure: removed {} and {} objects; keys destroyed: {destroyed:?}",
        cert["removed"], cert["objects"]["deleted"]
    );

    // The bot is gone: from the API, from every table, column, object and
    // file of the deployment.
    assert_eq!(
        api.error_code(
            "query($id: ID!) { bot(id: $id) { id } }",
            json!({ "id": erased })
        )
        .await,
        "NOT_FOUND"
    );
    let rows = rows_of_bot(&db, &erased).await;
    assert!(rows.is_empty(), "rows of the erased bot: {rows:?}");
    let mut needles = vec![tag1.clone(), url1.clone()];
    for p in before1["participants"].as_array().unwrap() {
        needles.push(p["participantId"].as_str().unwrap().to_string());
    }
    let mut clear = Vec::new();
    for needle in &needles {
        for (table, column, n) in find_in_database(&db, needle).await {
            clear.push(format!("{needle:?} in {table}.{column} ({n} rows)"));
        }
        for file in find_in_files(&cluster.dir.join("cp"), needle) {
            clear.push(format!("{needle:?} in {file}"));
        }
    }
    clear.extend(find_in_objects(&live, &needles).await);
    clear.extend(
        live.list("tenants/")
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.contains(&erased))
            .map(|k| format!("object {k}")),
    );
    assert!(clear.is_empty(), "left of the erased bot: {clear:#?}");
    // The search does find what is there: the tenant's name, say.
    assert!(
        find_in_database(&db, "acme")
            .await
            .iter()
            .any(|(t, c, _)| t == "tenants" && c == "name")
    );
    let (status, _) = fetch(&live_link).await;
    assert!(!ok(status), "the erased recording's link: {status}");

    // The tenant's other bot is untouched, and opens under the new keys.
    assert_eq!(seen(&api, &kept).await, before2, "the other bot");
    let rec = api.media(&kept).await["recording"].clone();
    let (status, bytes) = fetch(rec["downloadUrl"].as_str().unwrap()).await;
    assert!(ok(status) && bytes.starts_with(b"OggS"), "{status}");
    assert_eq!(bytes.len() as i64, rec["sizeBytes"].as_i64().unwrap());

    // The backup taken before, restored beside the same master key file:
    // the erased bot no longer opens, its recording no longer downloads.
    let restored = restore(&cluster, &backup_db, &backup_s3, &acme.api_key).await;
    let (status, answer) = restored.api.raw(&with_link, json!({ "id": erased })).await;
    assert!(
        !answer.to_string().to_lowercase().contains(&tag1),
        "the backup still opens the erased bot ({status}): {answer}"
    );
    let mut readable = readable_bytes(&secrets, &answer);
    let mut links = vec![format!("{}{download_path}", restored.api.http)];
    if let Some(l) = answer["data"]["bot"]["recording"]["downloadUrl"].as_str() {
        links.push(l.to_string());
    }
    for l in &links {
        let (status, bytes) = fetch(l).await;
        if ok(status) {
            readable += bytes.len();
        }
    }
    println!("erasure: readable bytes in pre-erasure copies: {readable}");
    assert_eq!(
        readable, 0,
        "the backup opens the erased bot: {answer}; links {links:?}"
    );
    restored.stop().await;

    // Philippa is erased from every bot of the tenant, named as the caller
    // writes her name; Rupert stays.
    let asked = format!("  {}  ", philippa.to_uppercase());
    let participant = api
        .gql(
            &erase("eraseParticipant", "name", "String!"),
            json!({ "x": asked }),
        )
        .await["eraseParticipant"]
        .clone();
    assert_eq!(participant["subject"], "PARTICIPANT", "{participant:#}");
    let again = api
        .gql(
            &erase("eraseParticipant", "name", "String!"),
            json!({ "x": asked }),
        )
        .await["eraseParticipant"]
        .clone();
    assert_eq!(again["id"], participant["id"], "one job per subject");
    let participant_id = participant["id"].as_str().unwrap().to_string();
    let participant = wait_done(&Caller::Key(&api), &participant_id).await;
    let mut plain = participant.clone();
    plain["certificate"] = Value::Null;
    let plain = plain.to_string().to_lowercase();
    assert!(
        !plain.contains("philippa") && !plain.contains(&tag2),
        "the job does not name her: {plain}"
    );
    let cert = check_certificate(&participant, &jwks, &tenant);
    let text = format!("{cert} {}", participant["certificate"]).to_lowercase();
    assert!(
        !text.contains("philippa") && !text.contains(&tag2),
        "the certificate does not name her: {cert:#}"
    );
    let subject = &cert["subject"];
    assert_eq!(subject["kind"], "participant", "{cert:#}");
    assert_eq!(subject.as_object().unwrap().len(), 3, "{cert:#}");
    let salt = subject["salt"].as_str().unwrap();
    assert!(
        !salt.is_empty() && salt.bytes().all(|b| b.is_ascii_hexdigit()),
        "{cert:#}"
    );
    let hash = hex::encode(Sha256::digest(
        format!("{salt}{}", asked.trim().to_lowercase()).as_bytes(),
    ));
    assert_eq!(subject["sha256"], hash, "her salted hash: {cert:#}");
    let hers = spoken_by(&before2, &philippa);
    assert_eq!(cert["removed"]["transcripts"], hers.len(), "{cert:#}");
    assert_eq!(cert["removed"]["chat"], 1, "{cert:#}");
    assert!(
        cert["removed"]["participants"].as_u64().unwrap() >= 1,
        "{cert:#}"
    );

    let after = seen(&api, &kept).await;
    assert!(
        !after.to_string().to_lowercase().contains("philippa"),
        "nothing of her is left: {after:#}"
    );
    assert_eq!(
        after["participants"].as_array().unwrap(),
        &without(&before2["participants"], "name", &philippa)
    );
    assert!(names(&after["participants"]).contains(&rupert));
    assert_eq!(
        after["speakerTimeline"].as_array().unwrap(),
        &without(&before2["speakerTimeline"], "name", &philippa)
    );
    assert!(names(&after["speakerTimeline"]).contains(&rupert));
    assert_eq!(
        after["chatMessages"].as_array().unwrap(),
        &without(&before2["chatMessages"], "sender", &philippa)
    );
    assert_eq!(after["chatMessages"][0]["text"], his_note.as_str());
    let left: Vec<Value> = segments(&before2)
        .into_iter()
        .filter(|s| s["speaker"] != philippa.as_str())
        .collect();
    assert_eq!(segments(&after), left, "everyone else's words stay");
    assert!(!spoken_by(&after, &rupert).is_empty());
    assert_eq!(after["transcript"]["totalCount"], left.len());
    assert_eq!(after["botName"], clerk.as_str());
    assert!(
        find_in_database(&db, &philippa).await.is_empty(),
        "her name is stored nowhere in the clear"
    );

    // The tenant's erasures, newest first; no other tenant sees them.
    let jobs = api
        .gql(&format!("{{ erasureJobs {{ {JOB} }} }}"), json!({}))
        .await["erasureJobs"]
        .as_array()
        .unwrap()
        .clone();
    let at = |id: &str| {
        jobs.iter()
            .position(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("job {id} in {jobs:#?}"))
    };
    assert!(at(&participant_id) < at(&job_id), "newest first: {jobs:#?}");
    let times: Vec<_> = jobs.iter().map(|j| rfc3339(&j["requestedAt"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{jobs:#?}");
    let theirs = globex
        .gql(&format!("{{ erasureJobs {{ {JOB} }} }}"), json!({}))
        .await;
    assert!(!theirs.to_string().contains(&job_id), "{theirs}");
    let (_, theirs) = globex
        .raw(
            &format!("query($id: ID!) {{ erasureJob(id: $id) {{ {JOB} }} }}"),
            json!({ "id": job_id }),
        )
        .await;
    assert!(
        theirs.get("errors").is_some() || theirs["data"]["erasureJob"].is_null(),
        "another tenant's job: {theirs}"
    );

    // The operator erases the other tenant: no row of its bots is left.
    globex
        .wait_status(&gone, "IN_CALL", Duration::from_secs(40))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.host(&meeting3, "end", None).await;
    globex
        .wait_status(&gone, "ENDED", Duration::from_secs(60))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rec = globex.media(&gone).await["recording"].clone();
        if !rec.is_null() && rec["status"] != "RECORDING" {
            break;
        }
        assert!(Instant::now() < deadline, "the recording closes: {rec}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!rows_of_bot(&db, &gone).await.is_empty());
    let prefix3 = format!("tenants/{globex_id}/");
    assert!(!live.list(&prefix3).await.unwrap().is_empty());
    let whole = operator
        .gql(
            &erase("eraseTenant", "id", "ID!"),
            json!({ "x": globex_id }),
        )
        .await["eraseTenant"]
        .clone();
    assert_eq!(whole["subject"], "TENANT", "{whole:#}");
    assert_eq!(whole["subjectId"], globex_id.as_str(), "{whole:#}");
    let again = operator
        .gql(
            &erase("eraseTenant", "id", "ID!"),
            json!({ "x": globex_id }),
        )
        .await["eraseTenant"]
        .clone();
    assert_eq!(again["id"], whole["id"], "one job per subject");
    let whole_id = whole["id"].as_str().unwrap().to_string();
    let whole = wait_done(&Caller::Console(&operator), &whole_id).await;
    let cert = check_certificate(&whole, &jwks, &globex_id);
    assert_eq!(
        cert["subject"],
        json!({ "kind": "tenant", "id": globex_id }),
        "{cert:#}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM bots WHERE tenant_id = $1",
            &globex_id
        )
        .await,
        0
    );
    let rows = rows_of_bot(&db, &gone).await;
    assert!(rows.is_empty(), "rows of the erased tenant's bot: {rows:?}");
    // Its keys: the tenant key, its erasable secret and every generation,
    // destroyed at the provider (their files) and gone from the database.
    let destroyed: Vec<&str> = cert["keys_destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        destroyed.contains(&format!("tenant-key:{globex_id}").as_str()),
        "{destroyed:?}"
    );
    for prefix in ["tenant-secret:", "bot-key-generation:"] {
        let entry = destroyed
            .iter()
            .find(|k| k.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {destroyed:?}"));
        let (_, name) = entry.split_once("@local:erasable:").unwrap();
        let file = cluster
            .dir
            .join("cp")
            .join("erasable-keys")
            .join(format!("{name}.key"));
        assert!(!file.exists(), "{} is still there", file.display());
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM tenant_keys WHERE tenant_id = $1",
            &globex_id
        )
        .await,
        0
    );
    assert!(live.list(&prefix3).await.unwrap().is_empty());
    let mut clear: Vec<String> = find_in_database(&db, &tag3)
        .await
        .into_iter()
        .map(|(t, c, n)| format!("{t}.{c} ({n} rows)"))
        .collect();
    clear.extend(find_in_objects(&live, std::slice::from_ref(&tag3)).await);
    assert!(clear.is_empty(), "left of the erased tenant: {clear:#?}");
    let (status, body) = globex.raw("{ bots { totalCount } }", json!({})).await;
    assert!(
        status >= 400 || body.get("errors").is_some() || body["data"]["bots"]["totalCount"] == 0,
        "the erased tenant's key ({status}): {body}"
    );

    // Only the operator erases a tenant; acme's own bot stays.
    assert_eq!(
        api.error_code(&erase("eraseTenant", "id", "ID!"), json!({ "x": tenant }))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(api.bot(&kept).await["status"], "ENDED");
}
