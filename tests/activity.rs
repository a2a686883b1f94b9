//! What a bot sees, as it happens: people joining and leaving, speaking
//! turns and chat reach a `botActivity` subscriber while the meeting goes
//! on, each once and in order, and reach a webhook endpoint that opted in
//! to `participant.joined`, `participant.left` and `chat.message`, signed,
//! with the names opened only to be sent. An endpoint that did not opt in
//! gets none of them.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use support::*;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// (kind, who) of each item: the person, the speaker or the sender.
fn summary(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|a| {
            let who = [
                &a["participant"]["name"],
                &a["speaker"]["name"],
                &a["chatMessage"]["sender"],
                &a["warning"]["code"],
            ]
            .into_iter()
            .find_map(|v| v.as_str())
            .unwrap_or_else(|| panic!("an item with nothing in it: {a}"));
            (a["kind"].as_str().unwrap().to_string(), who.to_string())
        })
        .collect()
}

async fn endpoint(api: &Api, url: &str, types: Option<&[&str]>) -> String {
    let v = api
        .gql(
            "mutation($url: String!, $types: [String!]) {
               createWebhookEndpoint(input: { url: $url, eventTypes: $types }) { secret endpoint { eventTypes } } }",
            json!({ "url": url, "types": types }),
        )
        .await;
    v["createWebhookEndpoint"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bots_activity_arrives_live_once_in_order_and_to_the_endpoints_that_opted_in() {
    let mut cluster = Cluster::start_with(Options {
        tweak: Some(|c| c.webhook_allow_private = true),
        ..Default::default()
    })
    .await;
    cluster.add_worker(1).await;
    let api = cluster.tenant("acme").await;

    // An unknown type is refused, naming the ones there are.
    let (_, refused) = api
        .raw(
            "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/h\", eventTypes: [\"participant.speaking\"] }) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let msg = refused["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("chat.message"), "{msg}");

    let (opted, _stop1) = Receiver::new(0).await;
    let (plain, _stop2) = Receiver::new(0).await;
    let secret = endpoint(
        &api,
        &opted.url(),
        Some(&[
            "participant.joined",
            "participant.left",
            "chat.message",
            "bot.ended",
        ]),
    )
    .await;
    endpoint(&api, &plain.url(), None).await;

    let meeting = "activity";
    let id = api
        .create_bot(
            &cluster.meeting(meeting, "admission=open&script=demo"),
            "Listening Bot",
        )
        .await;
    let feed = subscribe_activity(&api, &id).await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;
    // Carol leaves 9 s into the script; Bob's turn ends before 11 s.
    tokio::time::sleep(Duration::from_secs(11)).await;
    cluster.host(meeting, "end", None).await;
    api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    let live = tokio::time::timeout(Duration::from_secs(10), feed)
        .await
        .expect("the feed ends when the bot has ended")
        .unwrap();
    let items: Vec<Value> = live.iter().map(|(_, v)| v.clone()).collect();
    eprintln!("{:#?}", summary(&items));

    // What the script did, each once.
    let got = summary(&items);
    let count = |kind: &str, who: &str| got.iter().filter(|(k, w)| k == kind && w == who).count();
    for who in ["Alice", "Bob", "Carol"] {
        assert_eq!(count("PARTICIPANT_JOINED", who), 1, "{who}: {got:?}");
    }
    assert_eq!(count("PARTICIPANT_LEFT", "Carol"), 1, "{got:?}");
    assert_eq!(count("PARTICIPANT_LEFT", "Alice"), 0, "{got:?}");
    assert_eq!(count("CHAT_MESSAGE", "Bob"), 1, "{got:?}");
    let turns: Vec<&str> = got
        .iter()
        .filter(|(k, _)| k == "SPEAKING_STARTED")
        .map(|(_, w)| w.as_str())
        .collect();
    assert_eq!(turns, ["Alice", "Bob"], "{got:?}");
    assert_eq!(
        got.iter().filter(|(k, _)| k == "SPEAKING_STOPPED").count(),
        2,
        "{got:?}"
    );
    assert!(
        got.iter().all(|(k, _)| k != "WARNING"),
        "no warning: {got:?}"
    );
    assert!(items.iter().all(|a| a["botId"] == id.as_str()));
    let chat = items.iter().find(|a| a["kind"] == "CHAT_MESSAGE").unwrap();
    assert_eq!(chat["chatMessage"]["text"], "Notes are in the shared doc.");
    let carol_left = items
        .iter()
        .find(|a| a["kind"] == "PARTICIPANT_LEFT")
        .unwrap();
    assert_eq!(carol_left["at"], carol_left["participant"]["leftAt"]);

    // In the order it happened, and as it happened: Carol's leaving and
    // Bob's message reached the subscriber while the meeting went on.
    // A turn's end is known only once the worker has heard the silence
    // after it, so it may come after the next turn's start; everything
    // else comes in the order it happened, and each end after its start.
    let times: Vec<DateTime<Utc>> = items
        .iter()
        .filter(|a| a["kind"] != "SPEAKING_STOPPED")
        .map(|a| at(&a["at"]))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for (n, stop) in items.iter().enumerate() {
        if stop["kind"] == "SPEAKING_STOPPED" {
            let who = &stop["speaker"]["name"];
            let start = items[..n]
                .iter()
                .rfind(|a| a["kind"] == "SPEAKING_STARTED" && &a["speaker"]["name"] == who)
                .unwrap_or_else(|| panic!("{who} stopped before starting: {items:?}"));
            assert!(at(&start["at"]) <= at(&stop["at"]), "{start} {stop}");
        }
    }
    for (arrived, a) in &live {
        if a["kind"] == "PARTICIPANT_LEFT" || a["kind"] == "CHAT_MESSAGE" {
            let late = (*arrived - at(&a["at"])).num_milliseconds();
            eprintln!("{} arrived {late} ms after it happened", a["kind"]);
            assert!(late < 3_000, "{} arrived {late} ms late", a["kind"]);
        }
    }

    // A subscriber who comes after the end gets the same, then the end.
    let replay = tokio::time::timeout(Duration::from_secs(10), subscribe_activity(&api, &id).await)
        .await
        .expect("a finished bot's feed completes")
        .unwrap();
    let replayed: Vec<Value> = replay.into_iter().map(|(_, v)| v).collect();
    let times: Vec<DateTime<Utc>> = replayed.iter().map(|a| at(&a["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // (Things that happened in the same millisecond may come in either
    // order.)
    let mut again = summary(&replayed);
    let mut first = got.clone();
    again.sort();
    first.sort();
    assert_eq!(again, first);

    // The endpoint that opted in: each person's arrival, Carol's leaving
    // and the message, with names, signed; the other: none of them.
    let wanted: HashSet<(String, String)> = [
        ("participant.joined", "Alice"),
        ("participant.joined", "Bob"),
        ("participant.joined", "Carol"),
        ("participant.left", "Carol"),
        ("chat.message", "Bob"),
    ]
    .into_iter()
    .map(|(t, w)| (t.to_string(), w.to_string()))
    .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let opted_events = loop {
        let events = opted.events();
        let bodies: Vec<Value> = events
            .iter()
            .map(|d| serde_json::from_str(&d.body).unwrap())
            .collect();
        let ended = bodies.iter().any(|b| b["type"] == "bot.ended")
            && plain.events().iter().any(|d| d.body.contains("bot.ended"));
        if ended && bodies.len() > wanted.len() || tokio::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut seen = Vec::new();
    for d in &opted_events {
        assert!(verify(&secret, d), "a signature does not verify: {d:?}");
        let b: Value = serde_json::from_str(&d.body).unwrap();
        assert!(b.get("sealed").is_none(), "{b}");
        assert_eq!(b["data"]["botId"], id.as_str());
        let who = b["data"]["name"]
            .as_str()
            .or(b["data"]["sender"].as_str())
            .unwrap_or("");
        seen.push((b["type"].as_str().unwrap().to_string(), who.to_string()));
        if b["type"] == "chat.message" {
            assert_eq!(b["data"]["text"], "Notes are in the shared doc.");
        }
        if b["type"] == "participant.joined" {
            assert!(
                b["data"]["participantId"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            );
        }
    }
    let activity: Vec<(String, String)> = seen
        .iter()
        .filter(|(t, _)| t != "bot.ended")
        .cloned()
        .collect();
    assert_eq!(
        activity.iter().cloned().collect::<HashSet<_>>(),
        wanted,
        "{seen:?}"
    );
    assert_eq!(activity.len(), wanted.len(), "each once: {seen:?}");
    // In order per bot: the end comes last.
    assert_eq!(seen.last().unwrap().0, "bot.ended", "{seen:?}");
    let unasked: Vec<String> = plain
        .events()
        .iter()
        .map(|d| serde_json::from_str::<Value>(&d.body).unwrap()["type"].to_string())
        .filter(|t| t.contains("participant.") || t.contains("chat."))
        .collect();
    assert!(unasked.is_empty(), "not opted in, yet got {unasked:?}");
    assert!(
        plain.events().iter().any(|d| d.body.contains("bot.ended")),
        "the default endpoint still gets its events"
    );
}
