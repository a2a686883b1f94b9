//! The backfill on rows written the way older versions wrote them: sealed
//! after one pass, nothing left in the clear, the API's answers unchanged,
//! a second pass a no-op; and results of a bot in its meeting across the
//! upgrade still find its rows.

use attache_protocol::{BotStatus, DataKey, Platform};
use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::Sealer;
use super::backfill::{SealReport, run};
use crate::entity::names::Stored;
use crate::entity::{bot, chat_message, participant, speaker_segment, transcript_segment};
use crate::keys::field_context;
use crate::store::{MatchKey, MediaWrite};
use crate::{Config, ControlPlane};

/// Everything personal the old rows hold; none may stay in the clear.
const CLEAR: [&str; 9] = [
    "https://meet.google.com/old-bots-url",
    "Legacy Scribe",
    "https://meet.google.com/never-dispatched",
    "Never Sent",
    "Ada Lovelace",
    "ada@example.org",
    "Grace Hopper",
    "Bob From Before",
    "minutes are attached",
];

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

/// An ended bot (nothing dispatches or repairs it), leased `generation`
/// times.
fn old_bot(id: &str, tenant_id: &str, url: &str, name: &str, generation: i64) -> bot::ActiveModel {
    bot::ActiveModel {
        id: Set(id.into()),
        tenant_id: Set(tenant_id.into()),
        region: Set("local".into()),
        meeting_url: Set(url.into()),
        platform: Set(Stored(Platform::GoogleMeet)),
        bot_name: Set(name.into()),
        status: Set(Stored(BotStatus::Ended)),
        status_reason: Set(Some("LEAVE_REQUESTED".into())),
        join_at: Set(at(0)),
        join_timeout_ms: Set(1),
        lobby_timeout_ms: Set(1),
        max_duration_ms: Set(1),
        nobody_joined_ms: Set(1),
        alone_ms: Set(1),
        silence_ms: Set(1),
        worker_id: Set(None),
        lease_generation: Set(generation),
        last_result_seq: Set(0),
        leave_requested: Set(false),
        created_at: Set(at(generation)),
        updated_at: Set(at(0)),
        ended_at: Set(Some(at(10_000))),
        data_key: Set(None),
        transcription: Set(None),
        ..Default::default()
    }
}

/// A dispatched bot's rows, as the versions before this one stored them.
async fn old_rows(cp: &ControlPlane, tenant_id: &str, bot_id: &str) -> DataKey {
    let db = cp.state.store.db();
    let b = bot::Entity::find_by_id(bot_id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    // Made at its first dispatch.
    let key = cp.state.keys.bot_key(&b).await.unwrap();
    for (who, name, joined, left) in [
        ("ada@example.org", "Ada Lovelace", 0, Some(5_000)),
        ("Grace Hopper", "Grace Hopper", 1_000, None),
    ] {
        participant::ActiveModel {
            bot_id: Set(bot_id.into()),
            tenant_id: Set(tenant_id.into()),
            participant_key: Set(who.into()),
            name: Set(name.into()),
            joined_at: Set(at(joined)),
            left_at: Set(left.map(at)),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        speaker_segment::ActiveModel {
            bot_id: Set(bot_id.into()),
            tenant_id: Set(tenant_id.into()),
            participant_key: Set(who.into()),
            name: Set(name.into()),
            started_at: Set(at(joined + 200)),
            ended_at: Set(left.map(|_| at(joined + 900))),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
    }
    transcript_segment::ActiveModel {
        bot_id: Set(bot_id.into()),
        tenant_id: Set(tenant_id.into()),
        generation: Set(1),
        segment_key: Set("1:u1".into()),
        start_ms: Set(200),
        end_ms: Set(900),
        speaker: Set(Some("Ada Lovelace".into())),
        text_sealed: Set(key.seal(
            &field_context("transcript", bot_id, "1:u1"),
            b"the minutes are attached",
        )),
        confidence: Set(0.9),
        language: Set(Some("en".into())),
        is_final: Set(true),
        updated_at: Set(at(900)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    // Chat sealed under the platform's message id, which may hold the
    // sender and the text…
    let id = "Bob From Before/minutes are attached/0";
    chat_message::ActiveModel {
        bot_id: Set(bot_id.into()),
        tenant_id: Set(tenant_id.into()),
        message_key: Set(id.into()),
        sender: Set(String::new()),
        text: Set(String::new()),
        sender_sealed: Set(Some(key.seal(
            &field_context("chat-sender", bot_id, id),
            b"Bob From Before",
        ))),
        text_sealed: Set(Some(key.seal(
            &field_context("chat-text", bot_id, id),
            b"minutes are attached",
        ))),
        sent_at: Set(at(2_000)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    // … and, before that, not sealed at all.
    chat_message::ActiveModel {
        bot_id: Set(bot_id.into()),
        tenant_id: Set(tenant_id.into()),
        message_key: Set("m-2".into()),
        sender: Set("Ada Lovelace".into()),
        text: Set("see you, Grace Hopper".into()),
        sent_at: Set(at(3_000)),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    key
}

async fn ask(cp: &ControlPlane, key: &str, query: &str, variables: Value) -> Value {
    let app = crate::api::router(cp.state.clone(), CancellationToken::new());
    let req = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::from(
            json!({ "query": query, "variables": variables }).to_string(),
        ))
        .unwrap();
    let body = app.oneshot(req).await.unwrap().into_body();
    let v: Value = serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
    assert!(v.get("errors").is_none(), "{v:#}");
    v["data"].clone()
}

const EVERYTHING: &str = "query($a: ID!, $b: ID!) {
    a: bot(id: $a) { id meetingUrl botName platform status }
    b: bot(id: $b) { id meetingUrl botName
        participants { participantId name joinedAt leftAt }
        speakerTimeline { participantId name startedAt endedAt startOffsetMs endOffsetMs }
        chatMessages { sender text sentAt }
        transcript { totalCount edges { node { id startMs endMs speaker text isFinal } } }
        transcriptText }
    bots { edges { node { id meetingUrl botName } } } }";

/// Every stored row of these bots in the tables that hold personal
/// fields, as text.
async fn stored(cp: &ControlPlane, bot_ids: &[&str]) -> String {
    let db = cp.state.store.db();
    let ours = |id: &String| bot_ids.contains(&id.as_str());
    let mut out = String::new();
    for b in bot::Entity::find().all(db).await.unwrap() {
        if ours(&b.id) {
            out += &format!("{b:?}\n");
        }
    }
    for p in participant::Entity::find().all(db).await.unwrap() {
        if ours(&p.bot_id) {
            out += &format!("{p:?}\n");
        }
    }
    for s in speaker_segment::Entity::find().all(db).await.unwrap() {
        if ours(&s.bot_id) {
            out += &format!("{s:?}\n");
        }
    }
    for t in transcript_segment::Entity::find().all(db).await.unwrap() {
        if ours(&t.bot_id) {
            out += &format!("{t:?}\n");
        }
    }
    for m in chat_message::Entity::find().all(db).await.unwrap() {
        if ours(&m.bot_id) {
            out += &format!("{m:?}\n");
        }
    }
    out
}

async fn old_rows_are_sealed_and_read_the_same(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::local(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.quic_addr = "127.0.0.1:0".parse().unwrap();
    config.database_url = database_url;
    let cp = ControlPlane::build(config).await.unwrap();
    let tenant = cp
        .admin()
        .create_tenant(
            &format!("backfill-{}", uuid::Uuid::new_v4().simple()),
            "local",
        )
        .await
        .unwrap();
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let db = cp.state.store.db();
    old_bot(&a, &tenant.tenant_id, CLEAR[2], CLEAR[3], 0)
        .insert(db)
        .await
        .unwrap();
    old_bot(&b, &tenant.tenant_id, CLEAR[0], CLEAR[1], 1)
        .insert(db)
        .await
        .unwrap();
    let key = old_rows(&cp, &tenant.tenant_id, &b).await;
    let vars = json!({ "a": a, "b": b });

    let before = ask(&cp, &tenant.api_key, EVERYTHING, vars.clone()).await;
    assert_eq!(before["a"]["meetingUrl"], CLEAR[2]);
    assert_eq!(before["b"]["botName"], CLEAR[1]);
    assert_eq!(
        before["b"]["participants"][0]["participantId"],
        "ada@example.org"
    );
    assert_eq!(before["b"]["speakerTimeline"][1]["name"], "Grace Hopper");
    assert_eq!(before["b"]["chatMessages"][0]["sender"], "Bob From Before");
    assert_eq!(before["b"]["chatMessages"][1]["sender"], "Ada Lovelace");
    assert_eq!(
        before["b"]["transcriptText"],
        "[00:00] Ada Lovelace: the minutes are attached"
    );
    let clear = stored(&cp, &[&a, &b]).await;
    assert!(CLEAR.iter().all(|c| clear.contains(c)), "{clear}");

    let cancel = CancellationToken::new();
    let report = run(&cp.state.store, &cp.state.keys, &cancel).await.unwrap();
    assert_eq!(
        report,
        SealReport {
            bots: 2,
            participants: 2,
            speaker_segments: 2,
            transcript_segments: 1,
            chat_messages: 2,
            skipped: 0,
        }
    );
    let sealed = stored(&cp, &[&a, &b]).await;
    for c in CLEAR {
        assert!(!sealed.contains(c), "{c:?} is still in the clear: {sealed}");
    }
    assert_eq!(
        ask(&cp, &tenant.api_key, EVERYTHING, vars.clone()).await,
        before,
        "the API answers as before"
    );
    // The bot never dispatched has its key now, and its Assign opens.
    let never = cp.state.store.bot(&a).await.unwrap().unwrap();
    assert!(never.data_key.is_some());
    let assign = crate::dispatch::assignment(&cp.state, &never)
        .await
        .unwrap();
    assert_eq!(
        (assign.meeting_url.as_str(), assign.bot_name.as_str()),
        (CLEAR[2], CLEAR[3])
    );

    // Idempotent: nothing left to do.
    let again = run(&cp.state.store, &cp.state.keys, &cancel).await.unwrap();
    assert_eq!(again, SealReport::default());

    // Results of a bot in its meeting across the upgrade: Grace leaves,
    // and a chat message the worker sends again is the same message.
    let s = Sealer::new(&key, &b);
    let grace = MatchKey {
        hash: s.participant_hash("Grace Hopper"),
        clear: "Grace Hopper".into(),
    };
    let store = &cp.state.store;
    store
        .apply_result(
            &b,
            1,
            1,
            at(9_000),
            MediaWrite::ParticipantLeft { key: grace },
        )
        .await
        .unwrap();
    let chat = s.chat("m-2", "Ada Lovelace", "see you, Grace Hopper");
    store
        .apply_result(
            &b,
            1,
            2,
            at(9_500),
            MediaWrite::Chat {
                key: MatchKey {
                    hash: chat.key_hash,
                    clear: "m-2".into(),
                },
                sender_sealed: chat.sender_sealed,
                text_sealed: chat.text_sealed,
            },
        )
        .await
        .unwrap();
    let after = ask(&cp, &tenant.api_key, EVERYTHING, vars).await;
    assert_eq!(before["b"]["participants"][1]["leftAt"], Value::Null);
    assert!(
        after["b"]["participants"][1]["leftAt"].is_string(),
        "{after:#}"
    );
    assert_eq!(after["b"]["chatMessages"], before["b"]["chatMessages"]);

    // Their rows go with them.
    bot::Entity::delete_many()
        .filter(bot::Column::Id.is_in([a, b]))
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn old_rows_are_sealed_and_read_the_same_on_sqlite() {
    old_rows_are_sealed_and_read_the_same(None).await;
}

#[tokio::test]
async fn old_rows_are_sealed_and_read_the_same_on_postgres() {
    if let Some(url) = crate::store::fixtures::postgres_database().await {
        old_rows_are_sealed_and_read_the_same(Some(url)).await
    }
}
