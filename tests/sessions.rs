//! A whole session: a scripted meeting is transcribed by the worker's local
//! engine with the speakers' names, while the control plane restarts, the
//! worker's link is cut and the tenant's webhook receiver refuses and goes
//! away. Nothing acknowledged is lost: every segment arrives exactly once,
//! in order, and every event reaches the receiver, signed, in order per
//! bot, once per webhook-id.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attache_control_plane::{Config, ControlPlane, DefaultTranscription};
use attache_edge_worker::EdgeWorker;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use support::*;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// What the script's people say (`scripts/make-speech.sh`).
const SCRIPT: [(&str, u64, &str, &str); 4] = [
    (
        "Alice",
        1_000,
        "alice-1",
        "Good morning everyone. Let's review the launch plan.",
    ),
    (
        "Bob",
        5_500,
        "bob-1",
        "The release candidate passed every test yesterday.",
    ),
    ("Carol", 9_500, "carol-1", "I will write the announcement."),
    (
        "Alice",
        12_000,
        "alice-2",
        "Great, then we ship on Thursday.",
    ),
];
/// The last clip ends at 14.6 s.
const SCRIPT_MS: u64 = 14_700;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate: word-level edit distance over the reference's length.
fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for i in 1..=r.len() {
        let mut cur = vec![i; h.len() + 1];
        for j in 1..=h.len() {
            let sub = prev[j - 1] + usize::from(r[i - 1] != h[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

#[test]
fn word_error_rate_counts_edits() {
    assert_eq!(wer("the cat sat", "The cat, sat."), 0.0);
    assert!((wer("the cat sat", "the hat sat down") - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(wer("a b", ""), 1.0);
}

/// A UDP relay in front of the control plane's fleet port that can cut the
/// link both ways, as a network partition would.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

async fn relay(upstream: SocketAddr, stop: CancellationToken) -> Relay {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(upstream).await.unwrap();
    let addr = front.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    {
        let (front, back, cut, client, stop) = (
            front.clone(),
            back.clone(),
            cut.clone(),
            client.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let (n, from) = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = front.recv_from(&mut buf) => r.unwrap(),
                };
                *client.lock().unwrap() = Some(from);
                if !cut.load(Ordering::SeqCst) {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let cut = cut.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = back.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
                };
                let to = *client.lock().unwrap();
                if let (false, Some(to)) = (cut.load(Ordering::SeqCst), to) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    Relay { addr, cut }
}

fn config(dir: &std::path::Path, sandbox: &str, quic: SocketAddr) -> Config {
    let mut c = cp_config(dir, sandbox, quic);
    c.default_transcription = DefaultTranscription::Local;
    c.webhook_retry_base = Duration::from_millis(200);
    c.webhook_retry_max = Duration::from_secs(1);
    c.webhook_disable_after = Duration::from_secs(8);
    c
}

fn median_p95(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_meeting_is_transcribed_and_nothing_is_lost_across_cuts() {
    let dir = temp_dir("sessions");
    let stop = CancellationToken::new();
    let sandbox = start_sandbox(stop.clone()).await;

    // The control plane's first life.
    let cp = ControlPlane::build(config(&dir, &sandbox, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let quic = cp.quic_addr();
    let admin = cp.admin();
    let key = admin.create_tenant("acme", "local").await.unwrap().api_key;
    let api = Api::new(&format!("http://{}", cp.http_addr()), &key);
    let first_life = CancellationToken::new();
    let first = tokio::spawn(cp.run(first_life.clone()));

    // The tenant's receivers: one that refuses three times and will go
    // away for a while, one that never answers.
    let (receiver, receiver_stop) = Receiver::new(3).await;
    let created = api
        .gql(
            "mutation($url: String!) { createWebhookEndpoint(input: {url: $url}) { secret endpoint { id eventTypes } } }",
            json!({ "url": receiver.url() }),
        )
        .await;
    let secret = created["createWebhookEndpoint"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let endpoint_id = created["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    api.gql(
        "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, eventTypes: [\"bot.status_changed\"]}) { secret } }",
        json!({ "url": format!("http://127.0.0.1:{dead_port}/gone") }),
    )
    .await;
    // Secrets are shown once: listing endpoints has no secret field.
    let listed = api
        .raw("{ webhookEndpoints { id secret } }", json!({}))
        .await;
    assert!(listed.1.get("errors").is_some(), "{listed:?}");

    // The worker reaches the control plane through a link that can be cut.
    let relay = relay(quic, stop.clone()).await;
    let mut wc =
        attache_edge_worker::Config::new(relay.addr.to_string(), temp_dir("sessions-worker"));
    wc.chromium = chromium();
    wc.reconnect_min = Duration::from_millis(100);
    wc.reconnect_max = Duration::from_millis(400);
    wc.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    wc.join_token = Some(
        admin
            .worker_token("local", Duration::from_secs(60))
            .await
            .unwrap()
            .token,
    );
    let worker = EdgeWorker::build(wc).await.unwrap();
    let worker_metrics = worker.metrics_addr().unwrap();
    tokio::spawn(worker.run(stop.clone()));

    // The meeting: four turns by three people.
    let script = json!({
        "participants": [{ "name": "Alice" }, { "name": "Bob" }, { "name": "Carol" }],
        "speech": SCRIPT.iter().map(|(who, at, clip, _)| json!({ "speaker": who, "at_ms": at, "clip": clip })).collect::<Vec<_>>(),
    });
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/api/meetings"))
        .json(&json!({ "id": "standup", "admission": "open", "custom_script": script }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let id = api
        .create_bot(&format!("{sandbox}/m/standup"), "Scribe")
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(40))
        .await;
    let in_call = Instant::now();

    // 2.5 s in: the control plane restarts and the receiver goes away.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    receiver_stop.cancel();
    first_life.cancel();
    first.await.unwrap().unwrap();
    let cp = ControlPlane::build(config(&dir, &sandbox, quic))
        .await
        .unwrap();
    let api = Api::new(&format!("http://{}", cp.http_addr()), &key);
    tokio::spawn(cp.run(stop.clone()));
    let live = subscribe_transcript(&api, &id).await;

    // 7 s in: the worker's link is cut for two seconds.
    tokio::time::sleep(Duration::from_millis(7_000).saturating_sub(in_call.elapsed())).await;
    relay.cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.cut.store(false, Ordering::SeqCst);
    let receiver_stop = receiver.restart().await;

    // After the last words, the host ends the meeting.
    tokio::time::sleep(Duration::from_millis(SCRIPT_MS + 2_000).saturating_sub(in_call.elapsed()))
        .await;
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/api/meetings/standup/end"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let b = api.wait_status(&id, "ENDED", Duration::from_secs(90)).await;
    assert_eq!(b["statusReason"], "MEETING_ENDED", "{b:#}");

    // The transcript: every final segment once, in time order.
    let t = api
        .gql(
            "query($id: ID!) { bot(id: $id) { transcriptText warnings { code message }
               events { status at }
               transcript(first: 500) { totalCount edges { node { id startMs endMs speaker text isFinal confidence language } } } } }",
            json!({ "id": id }),
        )
        .await;
    let bot = &t["bot"];
    let segments: Vec<&Value> = bot["transcript"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert!(
        segments.iter().all(|s| s["isFinal"] == true),
        "no partial is left once the bot has ended: {segments:#?}"
    );
    let ids: HashSet<&str> = segments.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), segments.len(), "each segment once");
    let starts: Vec<i64> = segments
        .iter()
        .map(|s| s["startMs"].as_i64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "in order: {starts:?}"
    );
    let heard: Vec<String> = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let said: Vec<&str> = SCRIPT.iter().map(|s| s.3).collect();
    let error_rate = wer(&said.join(" "), &heard.join(" "));
    println!("transcript: {heard:?}");
    println!(
        "word error rate: {:.1}% over {} words",
        error_rate * 100.0,
        words(&said.join(" ")).len()
    );
    // Whisper tiny.en on espeak speech: 3.8% measured; the bound leaves margin.
    assert!(error_rate <= 0.15, "WER {error_rate}: {heard:?}");

    // Speakers: in the script's order, named from the speaking indicators.
    let mut named: Vec<&str> = Vec::new();
    for s in &segments {
        let who = s["speaker"].as_str().unwrap_or("(unnamed)");
        if named.last() != Some(&who) {
            named.push(who);
        }
    }
    assert_eq!(named, ["Alice", "Bob", "Carol", "Alice"], "{segments:#?}");
    for s in &segments {
        let c = s["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c) && s["language"] == "en", "{s}");
    }
    let text = bot["transcriptText"].as_str().unwrap();
    assert!(
        text.lines().count() == segments.len() && text.contains("] Bob: "),
        "{text}"
    );
    assert_eq!(bot["warnings"], json!([]), "{bot:#}");

    // Live: partials while words were spoken, then the finals.
    let live = tokio::time::timeout(Duration::from_secs(30), live)
        .await
        .expect("the subscription ends with the bot")
        .unwrap();
    let live_finals: Vec<&Value> = live
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s["isFinal"] == true)
        .collect();
    let partials = live.iter().filter(|(_, s)| s["isFinal"] == false).count();
    println!(
        "live: {} partial and {} final segments",
        partials,
        live_finals.len()
    );
    assert!(partials > 0, "partials came live: {live:#?}");
    for (_, p) in live.iter().filter(|(_, s)| s["isFinal"] == false) {
        assert!(
            ids.contains(p["id"].as_str().unwrap()),
            "every partial became a final: {p}"
        );
    }
    // Latency from the end of an utterance to its final segment, for the
    // utterances that ended after the subscription began.
    let call_start = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "IN_CALL")
        .map(|e| e["at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap())
        .unwrap();
    let mut first_final: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for (at, s) in &live {
        if s["isFinal"] == true {
            first_final.entry(s["id"].as_str().unwrap()).or_insert(*at);
        }
    }
    let latencies: Vec<f64> = segments
        .iter()
        .filter_map(|s| {
            let arrived = first_final.get(s["id"].as_str().unwrap())?;
            let ended = call_start + chrono::Duration::milliseconds(s["endMs"].as_i64().unwrap());
            Some((*arrived - ended).num_milliseconds() as f64)
        })
        .filter(|ms| *ms > 0.0)
        .collect();
    if !latencies.is_empty() {
        let (p50, p95) = median_p95(latencies.clone());
        println!(
            "end of utterance to final segment: median {p50:.0} ms, p95 {p95:.0} ms over {} utterances",
            latencies.len()
        );
    }
    let wm = reqwest::get(format!("http://{worker_metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        wm.contains("attache_edge_worker_link_reconnects_total"),
        "{wm}"
    );

    // Webhooks: everything arrives, signed, in order, once per id.
    let deadline = Instant::now() + Duration::from_secs(30);
    let want_types = [
        "bot.ended",
        "recording.ready",
        "transcript.ready",
        "webhook_endpoint.disabled",
    ];
    let got = loop {
        let got = receiver.events();
        let types: HashSet<String> = got
            .iter()
            .map(|d| {
                serde_json::from_str::<Value>(&d.body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        if want_types.iter().all(|t| types.contains(*t)) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    receiver_stop.cancel();
    assert!(
        receiver.requests.load(Ordering::SeqCst) as usize > got.len(),
        "the first attempts were refused"
    );
    let mut seen_ids = HashSet::new();
    let mut statuses = Vec::new();
    let mut types = Vec::new();
    for d in &got {
        assert!(verify(&secret, d), "signature of {d:?}");
        assert!(seen_ids.insert(d.id.clone()), "{} delivered twice", d.id);
        let v: Value = serde_json::from_str(&d.body).unwrap();
        types.push(v["type"].as_str().unwrap().to_string());
        if v["type"] == "webhook_endpoint.disabled" {
            // The tenant is told on its working endpoint.
            assert!(
                v["data"]["reason"].as_str().unwrap().contains("failed"),
                "{v}"
            );
            continue;
        }
        assert_eq!(v["data"]["botId"], id.as_str());
        if v["type"] == "bot.status_changed" {
            statuses.push(v["data"]["status"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(statuses, statuses_of(&b), "every status, in order");
    for t in want_types {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let ended_at = types.iter().position(|t| t == "bot.ended").unwrap();
    assert!(
        types.iter().position(|t| t == "recording.ready").unwrap() < ended_at,
        "per bot in order: the recording closes before the bot ends: {types:?}"
    );
    let hooks = api
        .gql(
            "{ webhookEndpoints { id url enabled disabledReason deliveries(first: 100) { id status attempts createdAt deliveredAt attemptLog { statusCode error } } } notices { kind message } }",
            json!({}),
        )
        .await;
    let endpoints = hooks["webhookEndpoints"].as_array().unwrap();
    let good = endpoints
        .iter()
        .find(|e| e["id"] == endpoint_id.as_str())
        .unwrap();
    assert_eq!(good["enabled"], true);
    let deliveries = good["deliveries"].as_array().unwrap();
    assert!(
        deliveries.iter().all(|d| d["status"] == "DELIVERED"),
        "{good:#}"
    );
    let took = |d: &&Value| {
        let at = |k: &str| d[k].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
        (at("deliveredAt") - at("createdAt")).num_milliseconds() as f64
    };
    let first_try: Vec<f64> = deliveries
        .iter()
        .filter(|d| d["attempts"] == 1)
        .map(|d| took(&d))
        .collect();
    let all: Vec<f64> = deliveries.iter().map(|d| took(&d)).collect();
    if !first_try.is_empty() {
        let (p50, p95) = median_p95(first_try.clone());
        let (a50, a95) = median_p95(all);
        println!(
            "webhook delivery latency: median {p50:.0} ms, p95 {p95:.0} ms on the first attempt ({} events); \
             median {a50:.0} ms, p95 {a95:.0} ms over all {} events, through the refusals and the outage",
            first_try.len(),
            deliveries.len()
        );
    }
    let retried: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["attempts"].as_i64().unwrap() > 1)
        .collect();
    assert!(!retried.is_empty(), "{good:#}");
    assert!(
        retried
            .iter()
            .all(|d| d["attemptLog"].as_array().unwrap().len()
                == d["attempts"].as_i64().unwrap() as usize)
    );
    // The endpoint that never answered was disabled, and the tenant told.
    let dead = endpoints
        .iter()
        .find(|e| e["id"] != endpoint_id.as_str())
        .unwrap();
    assert_eq!(dead["enabled"], false, "{dead:#}");
    assert!(
        dead["disabledReason"].as_str().unwrap().contains("failed"),
        "{dead:#}"
    );
    assert!(
        hooks["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "webhook_endpoint.disabled"),
        "{hooks:#}"
    );
    stop.cancel();
}

fn statuses_of(bot: &Value) -> Vec<String> {
    bot["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect()
}
