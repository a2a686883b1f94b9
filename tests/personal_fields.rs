//! After a real meeting on PostgreSQL, nothing personal that the bot saw or
//! was given is stored in the clear: its name, its meeting URL, the
//! participants' names and platform ids, who spoke, the chat, the
//! transcript and the webhook outbox. Every text and binary column of
//! every table is searched, and the control plane's object store too,
//! while the API still answers with all of it.

mod support;

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, Value as Sql};
use serde_json::{Value, json};
use support::*;

fn postgres_url() -> Option<String> {
    match std::env::var("ATTACHE_TEST_POSTGRES_URL") {
        // What is searched is what this meeting left, under this control
        // plane's keys.
        Ok(u) if !u.is_empty() => Some(own_postgres_database(&u, "sealing")),
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_POSTGRES_URL is not set; run the suite with scripts/test")
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            None
        }
    }
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

/// Files under `dir` whose bytes hold `needle`.
fn find_in_files(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_bot_saw_is_stored_in_the_clear() {
    let Some(url) = postgres_url() else { return };
    // In every personal value, and nowhere else: never hex, so no hash or
    // id can hold it by chance.
    let tag = format!(
        "qzx{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let (zelda, ignatius, philippa) = (
        format!("Zelda {tag}"),
        format!("Ignatius {tag}"),
        format!("Philippa {tag}"),
    );
    let chat_text = format!("the minutes for {tag} are in the doc");
    let bot_name = format!("Scribe {tag}");
    let meeting = format!("sealed-{tag}");

    let mut cluster = Cluster::start_with(Options {
        database_url: Some(url.clone()),
        tweak: Some(|c| {
            c.default_transcription = attache_control_plane::DefaultTranscription::Local;
            c.webhook_allow_private = true;
        }),
        ..Default::default()
    })
    .await;
    cluster.add_worker(1).await;
    let api = cluster
        .tenant(&format!("sealing-{}", std::process::id()))
        .await;
    // Webhook events wait in the outbox (nobody listens there).
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    api.gql(
        "mutation($url: String!) { createWebhookEndpoint(input: {url: $url}) { secret } }",
        json!({ "url": format!("http://127.0.0.1:{dead_port}/hooks") }),
    )
    .await;

    let script = json!({
        "participants": [
            { "name": zelda },
            { "name": ignatius },
            { "name": philippa, "join_ms": 1_500, "leave_ms": 6_000 },
        ],
        "speech": [
            { "speaker": zelda, "at_ms": 1_000, "clip": "alice-1" },
            { "speaker": ignatius, "at_ms": 5_500, "clip": "bob-1" },
        ],
        "chat": [{ "sender": ignatius, "at_ms": 3_000, "text": chat_text }],
    });
    let r = reqwest::Client::new()
        .post(format!("{}/api/meetings", cluster.sandbox))
        .json(&json!({ "id": meeting, "admission": "open", "custom_script": script }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let meeting_url = cluster.meeting(&meeting, "");
    let id = api.create_bot(&meeting_url, &bot_name).await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(40))
        .await;
    // The platform's ids for the three, while all three are there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut ids = Vec::new();
    for who in [&zelda, &ignatius, &philippa] {
        let p = cluster.participant(&meeting, who).await;
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    // Ignatius's turn ends at about 9 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.host(&meeting, "end", None).await;
    let ended = api.wait_status(&id, "ENDED", Duration::from_secs(60)).await;
    assert_eq!(ended["statusReason"], "MEETING_ENDED", "{ended:#}");

    // The API answers with everything, opened.
    let bot = api.bot(&id).await;
    assert_eq!(bot["botName"], bot_name.as_str());
    assert_eq!(bot["meetingUrl"], meeting_url.as_str());
    let m = api.media(&id).await;
    let people = names(&m["participants"]);
    for who in [&zelda, &ignatius, &philippa] {
        assert!(people.contains(who), "{who} in {people:?}");
    }
    let platform_ids: Vec<&str> = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["participantId"].as_str().unwrap())
        .collect();
    for pid in &ids {
        assert!(platform_ids.contains(&pid.as_str()), "{pid} in {m:#}");
    }
    assert_eq!(
        names(&m["speakerTimeline"]),
        [zelda.clone(), ignatius.clone()]
    );
    assert_eq!(m["chatMessages"][0]["sender"], ignatius.as_str());
    assert_eq!(m["chatMessages"][0]["text"], chat_text.as_str());
    let t = api
        .gql(
            "query($id: ID!) { bot(id: $id) { transcriptText transcript { edges { node { speaker text } } } } }",
            json!({ "id": id }),
        )
        .await;
    let speakers: Vec<&str> = t["bot"]["transcript"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["speaker"].as_str())
        .collect();
    assert!(
        speakers.contains(&zelda.as_str()),
        "transcribed with speakers: {t:#}"
    );
    println!("transcript: {}", t["bot"]["transcriptText"]);

    // And nothing of it is stored in the clear.
    let mut needles = vec![tag.clone(), meeting_url.clone()];
    needles.extend(ids);
    let mut clear = Vec::new();
    for needle in &needles {
        for (table, column, n) in find_in_database(&url, needle).await {
            clear.push(format!("{needle:?} in {table}.{column} ({n} rows)"));
        }
        for file in find_in_files(&cluster.dir.join("cp"), needle) {
            clear.push(format!("{needle:?} in {file}"));
        }
    }
    assert!(clear.is_empty(), "stored in the clear: {clear:#?}");
    // The search does find what is there: the tenant's name, say.
    let tenant = format!("sealing-{}", std::process::id());
    assert!(
        find_in_database(&url, &tenant)
            .await
            .iter()
            .any(|(t, c, _)| t == "tenants" && c == "name")
    );
}
