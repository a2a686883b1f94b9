//! A restarted worker's spool: every lease a previous run left is taken
//! over and replayed from its last acknowledgement, and a bot that was
//! still in its meeting is told, truthfully, what became of it. Files that
//! cannot be read are set aside, never deleted.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use attache_protocol::{
    BotStatus, FrameDecoder, ResultBody, ResultFrame, StatusReason, WarningCode,
};

use super::{Header, Lease, Recovered, Spool, header_context};
use crate::clock::now_ms;

impl Spool {
    /// Reads what a previous run of this worker left. Every lease found is
    /// replayed from its last acknowledgement; a bot that was still running
    /// gets a RESULTS_LOST warning and a final FAILED WORKER_RESTARTED.
    pub(crate) fn recover(&self) -> std::io::Result<Recovered> {
        let mut out = Recovered::default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "spool"))
            .collect();
        files.sort();
        for path in files {
            match self.recover_one(&path) {
                Ok(Some((frames, interrupted))) => {
                    out.leases += 1;
                    out.frames += frames;
                    out.interrupted += interrupted as usize;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable spool file; set aside");
                    let _ = std::fs::rename(&path, path.with_extension("unreadable"));
                }
            }
        }
        Ok(out)
    }

    fn recover_one(&self, path: &Path) -> std::io::Result<Option<(usize, bool)>> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let bytes = std::fs::read(path)?;
        let mut dec = FrameDecoder::new();
        dec.push(&bytes);
        let header: Header = dec
            .next_frame()
            .map_err(|e| bad(&e.to_string()))?
            .ok_or_else(|| bad("no header"))?;
        let key = self
            .spool_key
            .unwrap_key(
                &header_context(header.bot_id, header.generation),
                &header.wrapped_key,
            )
            .map_err(|e| bad(&e.to_string()))?;
        let acked = std::fs::read(path.with_extension("acked"))
            .ok()
            .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0);
        let mut frames = Vec::new();
        // A torn last record ends the file; anything before it counts.
        while let Ok(Some(f)) = dec.next_frame::<ResultFrame>() {
            frames.push(f);
        }
        let next_seq = frames.last().map_or(0, |f| f.seq);
        let last_body = frames.last().and_then(|f| f.open(&key).ok());
        let finished = matches!(
            last_body,
            Some(ResultBody::Status { status, .. }) if status.is_final()
        );
        let mut last_status = None;
        for f in frames.iter().rev() {
            if let Ok(ResultBody::Status { status, .. }) = f.open(&key) {
                last_status = Some(status);
                break;
            }
        }
        let mut unacked: VecDeque<ResultFrame> =
            frames.into_iter().filter(|f| f.seq > acked).collect();
        // More than the spool keeps in memory: the oldest are dropped, and
        // the control plane told so in their place.
        let mut skipped = None;
        let mut overflow = 0;
        while unacked.len() > super::MAX_UNACKED {
            let oldest = unacked.pop_front().expect("not empty");
            skipped = Some((skipped.map_or(oldest.seq, |(from, _)| from), oldest.seq));
            overflow += 1;
        }
        if finished && unacked.is_empty() {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(path.with_extension("acked"));
            return Ok(None);
        }
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let n = unacked.len();
        let k = (header.bot_id, header.generation);
        {
            let mut inner = self.lock();
            inner.leases.insert(
                k,
                Lease {
                    key,
                    next_seq,
                    acked,
                    unacked,
                    skipped,
                    last_status,
                    finished,
                    file: Some(file),
                    path: path.to_path_buf(),
                },
            );
            inner.dirty.insert(k);
            inner.dropped += overflow;
        }
        if !finished {
            let at = now_ms();
            let since = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64);
            let gap = since.map_or(String::new(), |s| {
                format!(
                    " {:.1} s after its last spooled result",
                    (at - s).max(0) as f64 / 1000.0
                )
            });
            // The two results pushed below go in after what was spooled; what
            // no longer fits the spool's room is dropped, oldest first.
            let lost = (n + 2).saturating_sub(super::MAX_UNACKED);
            let detail = format!(
                "the worker process restarted{gap}; {} results were spooled and are delivered, \
                 {lost} emitted results were lost; audio not yet encoded into the recording (at most its \
                 last 2 s) and events not yet observed were not captured",
                next_seq.saturating_sub(lost as u64)
            );
            self.push(
                k.0,
                k.1,
                at,
                ResultBody::Warning {
                    code: WarningCode::ResultsLost,
                    detail: detail.clone(),
                },
                false,
            );
            self.push(
                k.0,
                k.1,
                at,
                ResultBody::Status {
                    status: BotStatus::Failed,
                    reason: Some(StatusReason::WorkerRestarted),
                    detail: Some(
                        "the worker process restarted while the bot was in its meeting".into(),
                    ),
                },
                true,
            );
        }
        Ok(Some((n, !finished)))
    }
}
