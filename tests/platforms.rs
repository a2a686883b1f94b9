//! The real adapters of Meet, Teams and Zoom, end to end through the
//! sandbox's replicas of those platforms' pages (`/platform/<kind>/<id>`,
//! which the control plane classifies as the platforms they copy): a whole
//! call with its recording, roster, speakers and chat, behind a cookie
//! banner and an overlay; and every way each platform can turn a bot away,
//! each with its own reason.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(40);

/// The bot's name, with letters no US keyboard has: the platform gets it
/// as given.
const BOT_NAME: &str = "Zoë Ó Note Taker";

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every flow one platform's page has, with one bot each.
async fn a_platform_end_to_end(
    kind: &str,
    platform: &str,
    call_query: &str,
    turned_away: &[(&str, &str)],
) {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(4).await;
    let api = cluster.tenant("acme").await;

    // The whole call: banner, overlay, toggles, join, the demo script.
    let call = format!("{kind}-call");
    let id = api
        .create_bot(&cluster.platform_meeting(kind, &call, call_query), BOT_NAME)
        .await;
    assert_eq!(api.bot(&id).await["platform"], platform);
    api.wait_status(&id, "WAITING_ROOM", WAIT).await;
    // Several reads in the lobby, which shows call controls too (the
    // lobby times out after 4 s in the tests).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(api.bot(&id).await["status"], "WAITING_ROOM");
    cluster.host(&call, "admit", Some(BOT_NAME)).await;
    api.wait_status(&id, "IN_CALL", WAIT).await;

    // The failures, while the call goes on.
    let mut failing = Vec::new();
    for (i, (query, reason)) in turned_away.iter().enumerate() {
        // Each in another of the page's variants.
        let meeting = format!("{kind}-away-{i}");
        let query = format!("{query}&variant={i}");
        let bot = api
            .create_bot(
                &cluster.platform_meeting(kind, &meeting, &query),
                "Turned Away",
            )
            .await;
        failing.push((bot, meeting, *reason));
    }
    let leaver = api
        .create_bot(
            &cluster.platform_meeting(kind, &format!("{kind}-leave"), "admission=open&variant=1"),
            "Leaving Bot",
        )
        .await;
    let kicked = api
        .create_bot(
            &cluster.platform_meeting(kind, &format!("{kind}-kick"), "admission=open&variant=2"),
            "Kicked Bot",
        )
        .await;

    // The demo's speech is over by 8.5 s into the call; Carol has left.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let u = uplink(&cluster, &call, BOT_NAME).await;
    assert_eq!(
        (u["mic_on"].as_bool(), u["camera_on"].as_bool()),
        (Some(false), Some(false)),
        "{u}"
    );
    assert_eq!(
        u["notices_open"], false,
        "the call's notices are acknowledged: {u}"
    );
    cluster.host(&call, "end", None).await;
    let b = api.wait_status(&id, "ENDED", WAIT).await;
    assert_eq!(b["statusReason"], "MEETING_ENDED", "{b:#}");
    // Said by the platform's end screen (on Teams, an end-to-end encrypted
    // call's own), not guessed from its controls going away.
    let last = b["events"].as_array().and_then(|e| e.last()).cloned();
    assert_eq!(
        last.map(|e| e["detail"].clone()),
        Some(json!("the meeting ended")),
        "{b:#}"
    );

    let m = api.media(&id).await;
    let mut people = names(&m["participants"], "name");
    people.sort();
    assert_eq!(people, ["Alice", "Bob", "Carol"], "each once: {m:#}");
    let turns: Vec<String> = names(&m["speakerTimeline"], "name");
    assert_eq!(
        turns.first().map(String::as_str),
        Some("Alice"),
        "{:#}",
        m["speakerTimeline"]
    );
    assert!(turns.iter().any(|n| n == "Bob"), "{turns:?}");
    assert!(
        turns.iter().all(|n| n == "Alice" || n == "Bob"),
        "{turns:?}"
    );
    let chat = &m["chatMessages"];
    assert_eq!(names(chat, "sender"), ["Bob"], "{chat:#}");
    assert_eq!(chat[0]["text"], "Notes are in the shared doc.");
    let rec = &m["recording"];
    assert_eq!(rec["status"], "READY", "{rec:#}");
    assert!(rec["durationMs"].as_i64().unwrap() > 5_000, "{rec:#}");
    assert!(
        !m["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "NO_AUDIO"),
        "the bot heard the call: {m:#}"
    );

    // Leaving is done on the platform's side too (Zoom asks to confirm),
    // not by the page going quiet.
    api.wait_status(&leaver, "IN_CALL", WAIT).await;
    api.leave(&leaver).await;
    let b = api.wait_status(&leaver, "ENDED", WAIT).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED", "{b:#}");
    let seat = cluster
        .participant(&format!("{kind}-leave"), "Leaving Bot")
        .await;
    assert_eq!(seat["state"], "left", "{seat:#}");

    api.wait_status(&kicked, "IN_CALL", WAIT).await;
    cluster
        .host(&format!("{kind}-kick"), "remove", Some("Kicked Bot"))
        .await;
    let b = api.wait_status(&kicked, "FAILED", WAIT).await;
    assert_eq!(b["statusReason"], "KICKED", "{b:#}");

    for (bot, meeting, reason) in failing {
        let b = api.wait_status(&bot, "FAILED", WAIT).await;
        assert_eq!(b["statusReason"], reason, "{meeting}: {b:#}");
    }
}

async fn uplink(cluster: &Cluster, meeting: &str, name: &str) -> Value {
    cluster.participant(meeting, name).await["uplink"].clone()
}

/// The whole call's meeting: the host admits, the demo script, a cookie
/// banner and an overlay, the page's second variant, and a title in each
/// platform's words for an ending (only the platform's own status elements
/// say that).
const CALL: &str = "admission=manual&script=demo&overlays=true&variant=1\
    &title=Call%20ended%2C%20the%20meeting%20has%20ended%3A%20a%20retro";

const TURNED_AWAY: [(&str, &str); 4] = [
    ("admission=deny&admit_after_ms=300", "ADMISSION_DENIED"),
    ("missing=true", "MEETING_NOT_FOUND"),
    ("wall=sign_in", "SIGN_IN_REQUIRED"),
    ("wall=bots", "BLOCKED_BY_PLATFORM"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_meet_through_its_replica() {
    a_platform_end_to_end("meet", "GOOGLE_MEET", CALL, &TURNED_AWAY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_through_its_replica() {
    a_platform_end_to_end("teams", "TEAMS", CALL, &TURNED_AWAY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoom_through_its_replica() {
    let mut away = TURNED_AWAY.to_vec();
    away.push(("passcode=4242", "WRONG_PASSCODE"));
    away.push(("passcode=4242&pwd=1111", "WRONG_PASSCODE"));
    // The call in the client's iframe#webclient, as the web client often
    // runs: read, clicked, typed into and heard inside the frame.
    let call = format!("{CALL}&frame=webclient");
    a_platform_end_to_end("zoom", "ZOOM", &call, &away).await;
}

/// The bot's recording, decoded (16 kHz mono).
async fn recording(api: &Api, id: &str) -> Vec<f32> {
    let rec = &api.media(id).await["recording"];
    assert_eq!(rec["status"], "READY", "{rec:#}");
    let url = rec["downloadUrl"].as_str().expect("a download URL");
    let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    attache_edge_worker::audio::decode_ogg_opus(&bytes).expect("the recording decodes")
}

/// RMS of the recording between two moments (seconds).
fn rms_between(pcm: &[f32], from_s: f32, to_s: f32) -> f32 {
    let (a, b) = ((from_s * 16_000.0) as usize, (to_s * 16_000.0) as usize);
    let part = &pcm[a.min(pcm.len())..b.min(pcm.len())];
    (part.iter().map(|s| s * s).sum::<f32>() / part.len().max(1) as f32).sqrt()
}

/// Teams' server-mixed track: with it the bot hears each voice once (the
/// mix only, not the mix and the speakers' own tracks); a mix that stays
/// silent for 20 s while the speakers' tracks carry sound gives way to
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_mixed_audio_is_heard_once_and_a_silent_mix_gives_way() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(3).await;
    let api = cluster.tenant("acme").await;
    let mut bots = Vec::new();
    for mix in ["none", "mixed", "silent"] {
        let url = cluster.platform_meeting(
            "teams",
            &format!("teams-mix-{mix}"),
            &format!("admission=open&script=demo-loop&mix={mix}"),
        );
        bots.push(api.create_bot(&url, "Listening Bot").await);
    }
    for id in &bots {
        api.wait_status(id, "IN_CALL", WAIT).await;
    }
    // Two rounds of the 20 s script, and some.
    tokio::time::sleep(Duration::from_secs(36)).await;
    for id in &bots {
        api.leave(id).await;
    }
    let mut heard = Vec::new();
    for id in &bots {
        api.wait_status(id, "ENDED", WAIT).await;
        heard.push(recording(&api, id).await);
    }
    let (plain, mixed, silent) = (&heard[0], &heard[1], &heard[2]);
    // The first round's speech (1–15 s of each 20).
    let (p, m) = (rms_between(plain, 2.0, 14.0), rms_between(mixed, 2.0, 14.0));
    println!(
        "speech rms: separate tracks {p:.4}, with a mix {m:.4}, ratio {:.2}",
        m / p
    );
    assert!(p > 0.01, "the speakers are heard: {p}");
    assert!(
        (0.85..1.15).contains(&(m / p)),
        "each voice once, not twice: {m} against {p}"
    );
    // A silent mix: nothing in the first round, the speakers in the second.
    let (first, second) = (
        rms_between(silent, 2.0, 14.0),
        rms_between(silent, 23.0, 34.0),
    );
    println!("silent mix: first round {first:.4}, second round {second:.4}");
    assert!(
        first < 0.005,
        "only the silent mix is heard at first: {first}"
    );
    assert!(second > 0.01, "then the speakers' own tracks: {second}");
}

/// A large Meet's grid shows only some of the people in it: the People
/// button's count says the others are there, so the bot is not alone when
/// no other tile shows; and where the count says nobody else came, the
/// bot still leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meet_counts_the_people_its_grid_leaves_out() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(2).await;
    let api = cluster.tenant("acme").await;
    let rules = json!({ "nobodyJoinedSeconds": 2, "aloneSeconds": 2 });
    // One host in the call, and only the bot's own tile on screen.
    let crowded = api
        .create_bot_with(
            &cluster.platform_meeting("meet", "meet-grid", "admission=open&tiles=1"),
            rules.clone(),
        )
        .await;
    let empty = api
        .create_bot_with(
            &cluster.platform_meeting(
                "meet",
                "meet-grid-empty",
                "admission=open&script=empty&tiles=1",
            ),
            rules,
        )
        .await;
    api.wait_status(&crowded, "IN_CALL", WAIT).await;
    let b = api.wait_status(&empty, "ENDED", WAIT).await;
    assert_eq!(b["statusReason"], "NOBODY_JOINED", "{b:#}");
    // Well past both rules' 2 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let b = api.bot(&crowded).await;
    assert_eq!(b["status"], "IN_CALL", "{b:#}");
    api.leave(&crowded).await;
    let b = api.wait_status(&crowded, "ENDED", WAIT).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED", "{b:#}");
}
