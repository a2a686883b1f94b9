//! A sandbox bot's whole life through the public API, seen both by polling
//! and on the `botEvents` subscription; and the ways a meeting can end it.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const JOIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_joins_waits_is_admitted_and_ends_with_the_meeting() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(2).await;
    let api = cluster.tenant("acme").await;
    let url = cluster.meeting("life", "admit_after_ms=800");
    let id = api.create_bot(&url, "Lifecycle Bot").await;
    let sub = subscribe(&api, &id).await;

    api.wait_status(&id, "IN_CALL", JOIN).await;
    let bot_seat = cluster.participant("life", "Lifecycle Bot").await;
    assert_eq!(bot_seat["state"], "admitted");

    cluster.host("life", "end", None).await;
    let bot = api.wait_status(&id, "ENDED", JOIN).await;
    assert_eq!(bot["statusReason"], "MEETING_ENDED");
    assert!(bot["endedAt"].is_string());
    let want = [
        "QUEUED",
        "DISPATCHED",
        "JOINING",
        "WAITING_ROOM",
        "IN_CALL",
        "ENDED",
    ];
    assert_eq!(statuses(&bot), want, "polled history");
    let live = tokio::time::timeout(Duration::from_secs(10), sub)
        .await
        .expect("subscription completes")
        .unwrap()
        .expect("no subscription error");
    assert_eq!(live, want, "subscription");

    let metrics = cluster.metrics().await;
    assert!(
        metrics.contains("attache_control_plane_bots{status=\"ENDED\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("attache_control_plane_dispatch_latency_seconds_count 1"));
    assert!(metrics.contains("attache_control_plane_fleet_workers_connected 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_lobby_timeout_removal_and_leave_each_have_their_reason() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(4).await;
    let api = cluster.tenant("acme").await;

    let denied = api
        .create_bot(
            &cluster.meeting("deny", "admission=deny&admit_after_ms=500"),
            "Denied Bot",
        )
        .await;
    let ignored = api
        .create_bot(&cluster.meeting("never", "admission=never"), "Ignored Bot")
        .await;
    let kicked = api
        .create_bot(&cluster.meeting("kick", "admit_after_ms=200"), "Kicked Bot")
        .await;
    let leaver = api
        .create_bot(&cluster.meeting("leave", "admission=open"), "Leaving Bot")
        .await;

    let b = api.wait_status(&denied, "FAILED", JOIN).await;
    assert_eq!(b["statusReason"], "ADMISSION_DENIED");
    assert!(statuses(&b).contains(&"WAITING_ROOM".to_string()));

    api.wait_status(&kicked, "IN_CALL", JOIN).await;
    cluster.host("kick", "remove", Some("Kicked Bot")).await;
    let b = api.wait_status(&kicked, "FAILED", JOIN).await;
    assert_eq!(b["statusReason"], "KICKED");

    api.wait_status(&leaver, "IN_CALL", JOIN).await;
    assert_eq!(api.leave(&leaver).await["id"], leaver.as_str());
    let b = api.wait_status(&leaver, "ENDED", JOIN).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED");
    assert_eq!(statuses(&b)[statuses(&b).len() - 2], "LEAVING");
    // Leaving twice is harmless.
    assert_eq!(api.leave(&leaver).await["status"], "ENDED");

    // Never admitted: the lobby timeout (4 s in tests) fails it, truthfully.
    let b = api.wait_status(&ignored, "FAILED", JOIN).await;
    assert_eq!(b["statusReason"], "LOBBY_TIMEOUT");
    assert!(
        !statuses(&b).contains(&"IN_CALL".to_string()),
        "never reported in call from the lobby"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_and_queued_bots_wait_and_can_be_called_off() {
    let mut cluster = Cluster::start().await;
    let api = cluster.tenant("acme").await;
    // No worker yet: the bot stays queued.
    let early = api
        .create_bot(&cluster.meeting("sched", "admission=open"), "Early Bot")
        .await;
    let join_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let d = api
        .gql(
            "mutation($u: String!, $t: DateTime) { createBot(input: {meetingUrl: $u, joinAt: $t}) { id status joinAt } }",
            json!({ "u": cluster.meeting("sched2", "admission=open"), "t": join_at.to_rfc3339() }),
        )
        .await;
    let later = d["createBot"]["id"].as_str().unwrap().to_string();
    assert_eq!(api.leave(&early).await["status"], "ENDED");
    let b = api.bot(&early).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED");
    assert_eq!(statuses(&b), ["QUEUED", "ENDED"]);

    cluster.add_worker(2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        api.bot(&later).await["status"],
        "QUEUED",
        "joinAt is in the future"
    );
    let b = api.wait_status(&later, "IN_CALL", JOIN).await;
    let dispatched = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "DISPATCHED")
        .unwrap();
    let at: chrono::DateTime<chrono::Utc> = dispatched["at"].as_str().unwrap().parse().unwrap();
    assert!(
        at >= join_at - chrono::Duration::milliseconds(1),
        "dispatched at {at}, before joinAt {join_at}"
    );
}

/// Status texts are the platform's, not the participants' or the
/// meeting's: a chat message, a display name and a meeting title that read
/// like an ending or a lobby end nothing and keep nobody out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_participants_write_or_are_called_ends_nothing() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    let api = cluster.tenant("acme").await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/meetings", cluster.sandbox))
        .json(&json!({
            "id": "wordy",
            "title": "Call ended? Meeting ended: the retro",
            "admission": "open",
            "custom_script": {
                "participants": [{ "name": "Host" }, { "name": "You've been removed", "join_ms": 500 }],
                "chat": [
                    { "sender": "Host", "at_ms": 800, "text": "Meeting ended? No, the meeting has ended for Bob only." },
                    { "sender": "Host", "at_ms": 900, "text": "Someone in the call denied your request to join" },
                    { "sender": "Host", "at_ms": 1000, "text": "Asking to be let in? I will let you in" },
                ],
            },
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let id = api
        .create_bot(&cluster.meeting("wordy", ""), "Reading Bot")
        .await;
    api.wait_status(&id, "IN_CALL", JOIN).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = api.media(&id).await;
        let texts: Vec<&str> = m["chatMessages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["text"].as_str())
            .collect();
        if texts.len() == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "chat not read: {m:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Reads for a few seconds more, past the absence debounce.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b = api.bot(&id).await;
    assert_eq!(b["status"], "IN_CALL", "{b:#}");
    api.leave(&id).await;
    let b = api.wait_status(&id, "ENDED", JOIN).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED");
}

/// A cookie banner over the lobby is answered, and a notice lying over the
/// join button does not take the bot's click.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banners_and_overlays_do_not_keep_the_bot_out() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(1).await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting("covered", "admission=open&overlays=true"),
            "Covered Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", JOIN).await;
    api.leave(&id).await;
    let b = api.wait_status(&id, "ENDED", JOIN).await;
    assert_eq!(b["statusReason"], "LEAVE_REQUESTED");
}
