//! A bot that hears: the sandbox's host speaks through a real
//! RTCPeerConnection, the bot captures the remote track inside the page, and
//! the worker writes a recording that decodes to the host's voice.

mod support;

use std::time::{Duration, Instant};

use attache_edge_worker::audio::decode_ogg_opus;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_records_what_the_meeting_says() {
    let mut cluster = Cluster::start().await;
    cluster.add_worker(2).await;
    let api = cluster.tenant("acme").await;
    let id = api
        .create_bot(
            &cluster.meeting("media", "admission=open&speech=true"),
            "Listening Bot",
        )
        .await;
    api.wait_status(&id, "IN_CALL", Duration::from_secs(30))
        .await;
    let in_call = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    api.leave(&id).await;
    api.wait_status(&id, "ENDED", Duration::from_secs(30)).await;
    let heard_for = in_call.elapsed();

    let path = cluster.worker_dirs[0]
        .join("recordings")
        .join(format!("{id}-1.ogg"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pcm = decode_ogg_opus(&bytes).expect("the recording decodes");
    let secs = pcm.len() as f64 / 16_000.0;
    // Capture starts with the call's audio and stops when the bot leaves.
    assert!(
        secs > 4.0 && secs <= heard_for.as_secs_f64() + 1.0,
        "recorded {secs:.2} s of {heard_for:?}"
    );
    // The host's tone (220 Hz, 1.5 s of every 2 s at 0.3) is in it.
    let rms = (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32).sqrt();
    assert!(rms > 0.05, "recording is silent: rms {rms}");
    let loud = pcm
        .chunks(1600)
        .filter(|c| c.iter().map(|s| s.abs()).fold(0.0, f32::max) > 0.1)
        .count();
    let quiet = pcm.chunks(1600).count() - loud;
    assert!(
        loud > 0 && quiet > 0,
        "turns of speech and silence: {loud} loud, {quiet} quiet 100 ms windows"
    );

    // The worker counts what it captured, and nothing was malformed.
    let metrics = reqwest::get(format!("http://{}/metrics", cluster.worker_metrics[0]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    assert!(
        value("attache_edge_worker_audio_frames_total ") >= 200.0,
        "{metrics}"
    );
    assert_eq!(
        value("attache_edge_worker_audio_frames_corrupt_total "),
        0.0
    );
    assert!(value("attache_edge_worker_recorded_seconds_total ") >= 4.0);
}
