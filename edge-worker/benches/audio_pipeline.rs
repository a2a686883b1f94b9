//! The audio pipeline, 48 kHz stereo float → 16 kHz mono Opus in Ogg, as
//! real-time streams per core; and, in the same run, the same conversion by
//! ffmpeg (`-ar 16000 -ac 1 -c:a libopus -b:a 24k -application voip`) on the
//! same input, as the baseline.
//!
//!     cargo bench -p attache-edge-worker --bench audio_pipeline
//!
//! Criterion reports both times; the last lines print streams per core for
//! each and the ratio.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use attache_edge_worker::audio::AudioPipeline;
use criterion::{Criterion, Throughput, criterion_group};

const SECONDS: usize = 20;
const RATE: usize = 48_000;

/// Speech-like input: a few drifting partials with an amplitude envelope
/// and a little noise, stereo, 20 s.
fn input() -> Vec<f32> {
    let mut seed = 0x2545_f491_u32;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32 - 0.5) * 0.02
    };
    (0..SECONDS * RATE)
        .flat_map(|i| {
            let t = i as f32 / RATE as f32;
            let env = (0.5 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin()).powi(2);
            let f0 = 140.0 + 30.0 * (t * 0.7).sin();
            let v = (1..5)
                .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                .sum::<f32>()
                * 0.25
                * env;
            let n = noise();
            [v + n, v * 0.9 + n]
        })
        .collect()
}

fn run_pipeline(pcm: &[f32]) -> usize {
    let mut p = AudioPipeline::new(RATE as u32, 2, Vec::with_capacity(128 * 1024)).unwrap();
    // 20 ms chunks, as the page delivers them.
    for chunk in pcm.chunks(2 * RATE / 50) {
        p.push(chunk).unwrap();
    }
    p.finish().unwrap().0.len()
}

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_ffmpeg(raw: &[u8]) -> usize {
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-threads",
            "1",
            "-f",
            "f32le",
            "-ar",
            "48000",
            "-ac",
            "2",
            "-i",
            "pipe:0",
        ])
        .args([
            "-ar",
            "16000",
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "24k",
            "-application",
            "voip",
            "-f",
            "ogg",
            "pipe:1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut stdin = child.stdin.take().unwrap();
    let raw = raw.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&raw));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout.len()
}

fn bench(c: &mut Criterion) {
    let pcm = input();
    let raw: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut g = c.benchmark_group("48k_stereo_to_16k_mono_opus_20s");
    g.throughput(Throughput::Elements(SECONDS as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("attache_pipeline", |b| {
        b.iter(|| run_pipeline(std::hint::black_box(&pcm)))
    });
    if ffmpeg_available() {
        g.bench_function("ffmpeg_baseline", |b| {
            b.iter(|| run_ffmpeg(std::hint::black_box(&raw)))
        });
    }
    g.finish();
}

/// One summary with the same inputs, best of five, single-threaded.
fn summary() {
    let pcm = input();
    let raw: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let best = |f: &dyn Fn() -> usize| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let ours = best(&|| run_pipeline(&pcm));
    let per_core = |d: Duration| SECONDS as f64 / d.as_secs_f64();
    println!(
        "attache pipeline: {:.1} ms per {SECONDS} s of audio = {:.0} real-time streams per core",
        ours.as_secs_f64() * 1e3,
        per_core(ours)
    );
    if ffmpeg_available() {
        let theirs = best(&|| run_ffmpeg(&raw));
        println!(
            "ffmpeg baseline:  {:.1} ms per {SECONDS} s of audio = {:.0} real-time streams per core (includes process start)",
            theirs.as_secs_f64() * 1e3,
            per_core(theirs)
        );
        println!(
            "ratio (attache / ffmpeg streams per core): {:.2}",
            per_core(ours) / per_core(theirs)
        );
    } else {
        println!("ffmpeg not installed: no baseline (apt-get install ffmpeg)");
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    // Under `cargo test` the benchmarks run once as a smoke test; the
    // summary is for `cargo bench`.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
