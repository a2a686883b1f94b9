//! A bot that hears, end to end through GraphQL: the sandbox's scripted
//! speakers talk through a real RTCPeerConnection, someone joins and leaves,
//! someone writes in the chat; the bot captures it all inside the page, and
//! the recording lands in the object store (a local directory, and a real
//! S3-compatible server), as long as the call, decodable and not silent,
//! with the script's speakers in the script's order.

mod support;

use std::time::Duration;

use attache_edge_worker::audio::decode_ogg_opus;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::Digest;
use support::*;

/// Speech RMS must clear this; silence sits far below it.
const RMS_FLOOR: f32 = 0.01;

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

fn event_at(bot: &Value, status: &str) -> DateTime<Utc> {
    let e = bot["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == status)
        .unwrap_or_else(|| panic!("no {status} in {bot:#}"));
    at(&e["at"])
}

fn rms(pcm: &[f32]) -> f32 {
    (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32).sqrt()
}

/// The sandbox's view of the meeting: its script and clip lengths.
async fn sandbox_view(cluster: &Cluster, meeting: &str) -> Value {
    reqwest::get(format!("{}/api/meetings/{meeting}", cluster.sandbox))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs the scripted meeting to its end and checks everything the bot
/// brought back.
async fn a_scripted_meeting_is_heard_and_recorded(cluster: Cluster, meeting: &str, query: &str) {
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting(meeting, &format!("admission=open&script=demo{query}")),
            "Listening Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;
    // The script's last event is Carol leaving at 9 s; give it 2 s more.
    tokio::time::sleep(Duration::from_secs(11)).await;
    cluster.host(meeting, "end", None).await;
    let bot = api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    assert_eq!(bot["statusReason"], "MEETING_ENDED");
    let view = sandbox_view(&cluster, meeting).await;
    let script = &view["script"];

    // The recording: closed, checked, as long as the call, downloadable.
    let m = api.media(&id).await;
    let in_call = event_at(&m, "IN_CALL");
    let ended = event_at(&m, "ENDED");
    let call_ms = (ended - in_call).num_milliseconds() as f64;
    let rec = &m["recording"];
    assert_eq!(rec["status"], "READY", "{m:#}");
    assert_eq!(rec["format"], "audio/ogg; codecs=opus");
    let duration = rec["durationMs"].as_f64().unwrap();
    assert!(
        (duration - call_ms).abs() <= 0.05 * call_ms,
        "recording {duration} ms for {call_ms} ms in the call"
    );
    let url = rec["downloadUrl"].as_str().expect("a download URL");
    let resp = reqwest::get(url).await.unwrap();
    assert!(resp.status().is_success(), "download: {}", resp.status());
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, rec["sizeBytes"].as_u64().unwrap());
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        rec["sha256"].as_str().unwrap()
    );
    let pcm = decode_ogg_opus(&bytes).expect("the recording decodes");
    let decoded_ms = pcm.len() as f64 / 16.0;
    assert!(
        (decoded_ms - call_ms).abs() <= 0.05 * call_ms,
        "decoded {decoded_ms} ms for {call_ms} ms in the call"
    );
    assert!(
        rms(&pcm) > RMS_FLOOR,
        "the recording is silent: {}",
        rms(&pcm)
    );
    eprintln!(
        "in call {call_ms} ms; recording {duration} ms ({:+.2}%), decoded {decoded_ms} ms, {} bytes, rms {:.3}",
        100.0 * (duration - call_ms) / call_ms,
        bytes.len(),
        rms(&pcm)
    );

    // The speaker timeline: the script's speakers, in its order, on time.
    let timeline = m["speakerTimeline"].as_array().unwrap();
    let said: Vec<&str> = timeline
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let speech = script["speech"].as_array().expect("the script's speech");
    let want: Vec<&str> = speech
        .iter()
        .map(|u| u["speaker"].as_str().unwrap())
        .collect();
    assert_eq!(said, want, "{timeline:#?}");
    for (seg, utterance) in timeline.iter().zip(speech) {
        let start = seg["startOffsetMs"].as_i64().unwrap();
        let script_at = utterance["at_ms"].as_i64().unwrap();
        assert!(
            (start - script_at).abs() <= 1_000,
            "{} spoke at {start} ms of the recording; the script says {script_at} ms",
            seg["name"]
        );
        let end = seg["endOffsetMs"].as_i64().expect("the turn ended");
        eprintln!(
            "{}: {start}..{end} ms of the recording; script {script_at} ms + {} ms",
            seg["name"],
            view["clip_ms"][utterance["clip"].as_str().unwrap()]
        );
        assert!(end > start);
        // The recording has their voice where the timeline says it is.
        let (a, b) = (
            start.max(0) as usize * 16,
            (end as usize * 16).min(pcm.len()),
        );
        assert!(
            rms(&pcm[a..b]) > RMS_FLOOR,
            "{}'s turn ({start}..{end} ms) is silent in the recording",
            seg["name"]
        );
    }
    // And nobody speaks before the first turn.
    let first = timeline[0]["startOffsetMs"].as_i64().unwrap() as usize;
    assert!(rms(&pcm[..(first.saturating_sub(300)) * 16]) < RMS_FLOOR);

    // Participants: everyone but the bot, with Carol's visit.
    let people = m["participants"].as_array().unwrap();
    let names: Vec<&str> = people.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in ["Alice", "Bob", "Carol"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        !names.contains(&"Listening Bot"),
        "the bot is not a participant"
    );
    let carol = people.iter().find(|p| p["name"] == "Carol").unwrap();
    let stayed = (at(&carol["leftAt"]) - at(&carol["joinedAt"])).num_milliseconds();
    assert!(
        (5_500..=7_500).contains(&stayed),
        "Carol stayed {stayed} ms; the script says 6.5 s"
    );

    // The chat.
    let chat = m["chatMessages"].as_array().unwrap();
    assert_eq!(chat.len(), 1, "{chat:#?}");
    assert_eq!(chat[0]["sender"], "Bob");
    assert_eq!(chat[0]["text"], "Notes are in the shared doc.");
    assert!(m["warnings"].as_array().unwrap().is_empty(), "{m:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_meeting_is_recorded_to_the_local_store() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    a_scripted_meeting_is_heard_and_recorded(cluster, "media-local", "").await;
}

/// The voices come from outside the bot's page, as from a platform's media
/// server: the sandbox sends each clip's Opus packets over its own peer
/// connection, and the bot hears and records them just the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voices_sent_from_outside_the_page_are_heard_and_recorded() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    a_scripted_meeting_is_heard_and_recorded(cluster, "media-remote", "&speakers=remote").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_meeting_is_recorded_to_s3() {
    let Some(s3) = s3_config("attache-media-test") else {
        return;
    };
    let mut cluster = Cluster::start_with(Options {
        object_store: Some(attache_control_plane::ObjectStoreConfig::S3(s3)),
        ..Default::default()
    })
    .await;
    cluster.add_worker(1).await;
    a_scripted_meeting_is_heard_and_recorded(cluster, "media-s3", "").await;
}

/// Each auto-leave rule ends its bot with its own reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_leave_rules_end_bots_with_their_reasons() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(5).await;
    let api = cluster.tenant("acme").await;
    let cases = [
        (
            "al-nobody",
            "admission=open&script=empty",
            serde_json::json!({"nobodyJoinedSeconds": 2}),
            "ENDED",
            "NOBODY_JOINED",
        ),
        (
            "al-alone",
            "admission=open&script=leaves",
            serde_json::json!({"aloneSeconds": 2}),
            "ENDED",
            "ALONE_TOO_LONG",
        ),
        (
            "al-quiet",
            "admission=open&script=quiet",
            serde_json::json!({"silenceSeconds": 3}),
            "ENDED",
            "SILENCE_TOO_LONG",
        ),
        (
            "al-max",
            "admission=open&script=demo",
            serde_json::json!({"maxDurationSeconds": 2}),
            "ENDED",
            "MAX_DURATION",
        ),
        (
            "al-lobby",
            "admission=never",
            serde_json::json!({"lobbyTimeoutSeconds": 2}),
            "FAILED",
            "LOBBY_TIMEOUT",
        ),
    ];
    let mut bots = Vec::new();
    for (meeting, query, rules, _, _) in &cases {
        bots.push(
            api.create_bot_with(&cluster.meeting(meeting, query), rules.clone())
                .await,
        );
    }
    for (id, (meeting, _, _, status, reason)) in bots.iter().zip(&cases) {
        let b = api.wait_status(id, status, Duration::from_secs(40)).await;
        assert_eq!(b["statusReason"], *reason, "{meeting}: {b:#}");
    }
    // The rules are stored with the bot; defaults fill the rest.
    let d = api
        .gql(
            "query($id: ID!) { bot(id: $id) { autoLeave { aloneSeconds silenceSeconds maxDurationSeconds } } }",
            serde_json::json!({ "id": bots[1] }),
        )
        .await;
    let rules = &d["bot"]["autoLeave"];
    assert_eq!(rules["aloneSeconds"], 2);
    assert_eq!(rules["silenceSeconds"], 900);
    // Out-of-range rules are refused before anything is created.
    for bad in [0, -5, 100_000] {
        let code = api
            .error_code(
                "mutation($u: String!, $a: AutoLeaveInput) { createBot(input: {meetingUrl: $u, autoLeave: $a}) { id } }",
                serde_json::json!({ "u": cluster.meeting("x", ""), "a": { "aloneSeconds": bad } }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "aloneSeconds {bad}");
    }
    assert_eq!(api.bot_count().await, cases.len() as u64);
}

/// Someone speaks but no audio reaches the bot: a warning, in GraphQL and in
/// metrics. Junk the page pushes into the capture binding is dropped and
/// counted, and the bot carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_hears_nothing_says_so_and_junk_frames_are_dropped() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting(
                "muted",
                "admission=open&script=demo-loop&audio=muted&corrupt_frames=5",
            ),
            "Deaf Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let warning = loop {
        let m = api.media(&id).await;
        let warnings = m["warnings"].as_array().unwrap();
        if let Some(w) = warnings.iter().find(|w| w["code"] == "NO_AUDIO") {
            break w.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no warning: {m:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(warning["code"], "NO_AUDIO");
    assert!(warning["message"].as_str().unwrap().contains("no audio"));
    assert_eq!(
        api.bot(&id).await["status"],
        "IN_CALL",
        "a warning is not an ending"
    );

    let cp = cluster.metrics().await;
    assert!(
        metric(
            &cp,
            "attache_control_plane_bot_warnings_total{code=\"NO_AUDIO\"}"
        ) >= 1.0
    );
    let worker = cluster.worker_metrics_text(0).await;
    assert!(metric(&worker, "attache_edge_worker_no_audio_warnings_total ") >= 1.0);
    assert!(
        metric(&worker, "attache_edge_worker_audio_frames_corrupt_total ") >= 5.0,
        "{worker}"
    );
    assert!(metric(&worker, "attache_edge_worker_audio_frames_total ") > 50.0);

    api.leave(&id).await;
    let b = api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED");
    let rec = &api.media(&id).await["recording"];
    assert_eq!(rec["status"], "READY", "{rec:#}");
}

/// The guest called `name` in the sandbox's view of `meeting`: what its
/// page sent into the meeting.
async fn uplink_of(cluster: &Cluster, meeting: &str, name: &str) -> Value {
    let view = sandbox_view(cluster, meeting).await;
    let guest = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["host"] == false && p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {view:#}"));
    guest["uplink"].clone()
}

/// Nothing from the bot reaches a meeting: where the lobby offers
/// microphone and camera toggles the bot switches both off before it asks
/// to join, and where it does not, its microphone sends silence and it has
/// no camera (Chromium's fake devices would send a tone and a test
/// pattern).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_sends_no_sound_and_no_picture() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(2).await;
    let api = cluster.tenant("acme").await;
    let toggled = api
        .create_bot(&cluster.meeting("toggles", "admission=open"), "Quiet Bot")
        .await;
    let bare = api
        .create_bot(
            &cluster.meeting("no-toggles", "admission=open&device_toggles=false"),
            "Quiet Bot",
        )
        .await;
    for id in [&toggled, &bare] {
        api.wait_status(id, "IN_CALL", Duration::from_secs(30))
            .await;
    }
    // Long enough for a test tone (Chromium's beeps once a second) and
    // dozens of camera frames.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let t = uplink_of(&cluster, "toggles", "Quiet Bot").await;
    assert_eq!(t["mic_on"], false, "microphone switched off: {t}");
    assert_eq!(t["camera_on"], false, "camera switched off: {t}");
    assert_eq!(t["video_frames"], 0, "{t}");

    let b = uplink_of(&cluster, "no-toggles", "Quiet Bot").await;
    assert_eq!(
        b["mic_on"], true,
        "with no toggles the page sends its microphone: {b}"
    );
    assert!(
        b["audio_peak"].as_f64().unwrap() < 0.001,
        "what the microphone sends is silence: {b}"
    );
    assert_eq!(b["camera_on"], false, "there is no camera: {b}");
    assert_eq!(b["video_frames"], 0, "{b}");

    for id in [&toggled, &bare] {
        api.leave(id).await;
        api.wait_status(id, "ENDED", Duration::from_secs(30)).await;
    }
}

/// The README's demo: Bob starts 75 ms after Alice stops, less than the
/// pause that ends an utterance, yet each is a segment of their own,
/// named: the platform's change of speaker cuts the utterance too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_who_follow_each_other_are_never_one_segment() {
    let mut cluster = Cluster::start_with(Options {
        tweak: Some(|c| {
            c.default_transcription = attache_control_plane::DefaultTranscription::Local
        }),
        ..Default::default()
    })
    .await;
    cluster.add_worker(1).await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting("demo", "admission=open&script=demo"),
            "Scribe",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(40))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let segments = loop {
        let t = api
            .gql(
                "query($id: ID!) { bot(id: $id) { transcript(first: 100) { edges { node { speaker text isFinal startMs endMs } } } } }",
                serde_json::json!({ "id": id }),
            )
            .await;
        let segments: Vec<Value> = t["bot"]["transcript"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .filter(|s| s["isFinal"] == true)
            .collect();
        let heard = |w: &str| {
            segments
                .iter()
                .any(|s| s["text"].as_str().unwrap().to_lowercase().contains(w))
        };
        if heard("launch") && heard("yesterday") {
            break segments;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not transcribed: {segments:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("segments: {segments:#?}");
    let said_by = |w: &str| -> Vec<&Value> {
        segments
            .iter()
            .filter(|s| s["text"].as_str().unwrap().to_lowercase().contains(w))
            .collect()
    };
    for s in said_by("launch") {
        assert!(
            !s["text"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("release"),
            "Alice's and Bob's words in one segment: {s:#}"
        );
        assert_eq!(s["speaker"], "Alice", "{s:#}");
    }
    for s in said_by("release") {
        assert_eq!(s["speaker"], "Bob", "{s:#}");
    }
    api.leave(&id).await;
    api.wait_status(&id, "ENDED", Duration::from_secs(60)).await;
}
