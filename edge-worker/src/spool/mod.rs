//! Results waiting for the control plane's acknowledgement, on disk.
//!
//! Every result a session emits is numbered, sealed with its lease's data
//! key and appended to that lease's spool file before anything else happens
//! to it; the link then writes it to the control plane, which acknowledges
//! it once persisted. A result in the spool survives a lost link (it is
//! written again on the next connection; the control plane drops
//! duplicates) and a killed worker process (a restarted worker replays its
//! spool, and reports each bot that was still running as FAILED
//! WORKER_RESTARTED). Files are flushed to the page cache on every append
//! and synced to disk on every heartbeat.
//!
//! A spool file is a header (the lease and its data key, wrapped by the
//! worker's own spool key) followed by length-prefixed sealed frames; an
//! `.acked` file beside it holds the highest acknowledged sequence number.
//! A torn last record (the process died mid-write) is ignored.
//!
//! Every method that touches the disk blocks; it must never run on an async
//! thread. Async callers go through [`Spool::off_thread`].

mod recover;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use attache_protocol::{BotReport, BotStatus, DataKey, ResultBody, ResultFrame, encode_frame};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

/// Most unacknowledged frames kept in memory per lease: a link down this
/// long has lost the lease anyway, so the oldest go first (and are counted).
pub(super) const MAX_UNACKED: usize = 8192;

#[derive(Serialize, Deserialize)]
struct Header {
    bot_id: Uuid,
    generation: u64,
    #[serde(with = "serde_bytes")]
    wrapped_key: Vec<u8>,
}

struct Lease {
    key: DataKey,
    next_seq: u64,
    acked: u64,
    unacked: VecDeque<ResultFrame>,
    /// Unacknowledged frames dropped for want of room: the first and last
    /// sequence numbers. The control plane is told with one `Skipped`
    /// frame in their place, so the stream goes on after them.
    skipped: Option<(u64, u64)>,
    /// Statuses of the unacknowledged frames, for hellos.
    last_status: Option<BotStatus>,
    finished: bool,
    file: Option<std::fs::File>,
    path: PathBuf,
}

impl Lease {
    /// Where the `Skipped` frame goes, if frames were dropped: the first
    /// dropped one not acknowledged.
    fn skipped_seq(&self) -> Option<u64> {
        let (from, through) = self.skipped?;
        (through > self.acked).then(|| from.max(self.acked + 1))
    }
}

/// What a restarted worker found in its spool.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Leases with frames to replay.
    pub leases: usize,
    pub frames: usize,
    /// Leases whose bot was still running when the worker stopped.
    pub interrupted: usize,
}

#[derive(Default)]
struct Inner {
    leases: HashMap<(Uuid, u64), Lease>,
    /// Leases with frames the link has not written yet.
    dirty: HashSet<(Uuid, u64)>,
    dropped: u64,
}

/// Shared by every session (which append) and the link (which delivers).
#[derive(Clone)]
pub(crate) struct Spool {
    dir: PathBuf,
    spool_key: Arc<DataKey>,
    inner: Arc<Mutex<Inner>>,
    pub(crate) wake: Arc<Notify>,
}

fn header_context(bot_id: Uuid, generation: u64) -> Vec<u8> {
    format!("attache/spool/{bot_id}/{generation}").into_bytes()
}

impl Spool {
    /// Opens the spool in `dir`, with the worker's spool key (made on first
    /// start, readable by the worker only).
    pub(crate) fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join("spool.key");
        let key = match std::fs::read(&key_path) {
            Ok(b) => DataKey::from_bytes(&b).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "spool.key is not a key")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = DataKey::generate();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&key_path)?;
                f.write_all(key.as_bytes())?;
                f.sync_all()?;
                key
            }
            Err(e) => return Err(e),
        };
        Ok(Spool {
            dir: dir.to_path_buf(),
            spool_key: Arc::new(key),
            inner: Arc::default(),
            wake: Arc::new(Notify::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("spool lock")
    }

    fn path(&self, bot_id: Uuid, generation: u64) -> PathBuf {
        self.dir.join(format!("{bot_id}-{generation}.spool"))
    }

    /// Starts a lease's spool (idempotent).
    pub(crate) fn begin(&self, bot_id: Uuid, generation: u64, key: DataKey) -> std::io::Result<()> {
        let mut inner = self.lock();
        if inner.leases.contains_key(&(bot_id, generation)) {
            return Ok(());
        }
        let path = self.path(bot_id, generation);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let header = Header {
            bot_id,
            generation,
            wrapped_key: self
                .spool_key
                .wrap(&header_context(bot_id, generation), &key),
        };
        file.write_all(&encode_frame(&header).expect("small header"))?;
        inner.leases.insert(
            (bot_id, generation),
            Lease {
                key,
                next_seq: 0,
                acked: 0,
                unacked: VecDeque::new(),
                skipped: None,
                last_status: None,
                finished: false,
                file: Some(file),
                path,
            },
        );
        Ok(())
    }

    /// Numbers, seals and appends one result. `last` marks a session's
    /// final result. Returns false if the lease is unknown (revoked).
    pub(crate) fn push(
        &self,
        bot_id: Uuid,
        generation: u64,
        at_ms: i64,
        body: ResultBody,
        last: bool,
    ) -> bool {
        let mut inner = self.lock();
        let Inner {
            leases,
            dirty,
            dropped,
        } = &mut *inner;
        let Some(lease) = leases.get_mut(&(bot_id, generation)) else {
            return false;
        };
        lease.next_seq += 1;
        if let ResultBody::Status { status, .. } = &body {
            lease.last_status = Some(*status);
        }
        let frame = ResultFrame::seal(&lease.key, bot_id, generation, lease.next_seq, at_ms, &body);
        if let Some(f) = lease.file.as_mut() {
            let bytes = encode_frame(&frame).expect("result frames fit the frame limit");
            if let Err(e) = f.write_all(&bytes) {
                // Still delivered from memory while the process lives.
                tracing::error!(%bot_id, error = %e, "cannot append to the spool");
                lease.file = None;
            }
        }
        lease.unacked.push_back(frame);
        if lease.unacked.len() > MAX_UNACKED
            && let Some(oldest) = lease.unacked.pop_front()
        {
            let from = lease.skipped.map_or(oldest.seq, |(from, _)| from);
            lease.skipped = Some((from, oldest.seq));
            *dropped += 1;
        }
        if last {
            lease.finished = true;
        }
        dirty.insert((bot_id, generation));
        drop(inner);
        self.wake.notify_one();
        true
    }

    /// Everything up to `seq` is persisted: forget it; a finished lease
    /// with nothing left loses its files.
    pub(crate) fn ack(&self, bot_id: Uuid, generation: u64, seq: u64) {
        let mut inner = self.lock();
        let key = (bot_id, generation);
        let Some(lease) = inner.leases.get_mut(&key) else {
            return;
        };
        if seq <= lease.acked {
            return;
        }
        lease.acked = seq;
        while lease.unacked.front().is_some_and(|f| f.seq <= seq) {
            lease.unacked.pop_front();
        }
        if lease.skipped.is_some_and(|(_, through)| through <= seq) {
            lease.skipped = None;
        }
        if lease.finished && lease.unacked.is_empty() && lease.acked >= lease.next_seq {
            let lease = inner.leases.remove(&key).expect("present");
            inner.dirty.remove(&key);
            drop(inner);
            let _ = std::fs::remove_file(&lease.path);
            let _ = std::fs::remove_file(lease.path.with_extension("acked"));
            return;
        }
        let acked_path = lease.path.with_extension("acked");
        drop(inner);
        // Not synced: losing it only means replaying frames the control
        // plane already has, which it drops.
        let _ = std::fs::write(acked_path, seq.to_le_bytes());
    }

    /// Drops a lease that is no longer this worker's, with its files.
    pub(crate) fn forget(&self, bot_id: Uuid, generation: u64) {
        let mut inner = self.lock();
        inner.dirty.remove(&(bot_id, generation));
        if let Some(lease) = inner.leases.remove(&(bot_id, generation)) {
            let _ = std::fs::remove_file(&lease.path);
            let _ = std::fs::remove_file(lease.path.with_extension("acked"));
        }
    }

    /// Unacknowledged frames after `written`, for the link to send; frames
    /// dropped for want of room are one `Skipped` frame in their place.
    pub(crate) fn after(&self, bot_id: Uuid, generation: u64, written: u64) -> Vec<ResultFrame> {
        let inner = self.lock();
        let Some(l) = inner.leases.get(&(bot_id, generation)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(seq) = l.skipped_seq()
            && seq > written
        {
            let (_, through) = l.skipped.expect("a skipped range");
            let body = ResultBody::Skipped { through };
            let at_ms = crate::clock::now_ms();
            out.push(ResultFrame::seal(
                &l.key, bot_id, generation, seq, at_ms, &body,
            ));
        }
        out.extend(l.unacked.iter().filter(|f| f.seq > written).cloned());
        out
    }

    /// The lowest unacknowledged sequence number of a lease, if any.
    pub(crate) fn first_unacked(&self, bot_id: Uuid, generation: u64) -> Option<u64> {
        let inner = self.lock();
        inner
            .leases
            .get(&(bot_id, generation))
            .and_then(|l| l.skipped_seq().or(l.unacked.front().map(|f| f.seq)))
    }

    /// Leases with new frames since the last call.
    pub(crate) fn take_dirty(&self) -> Vec<(Uuid, u64)> {
        self.lock().dirty.drain().collect()
    }

    /// Whether the lease still has results in the spool.
    pub(crate) fn has(&self, bot_id: Uuid, generation: u64) -> bool {
        self.lock().leases.contains_key(&(bot_id, generation))
    }

    pub(crate) fn keys(&self) -> Vec<(Uuid, u64)> {
        self.lock().leases.keys().copied().collect()
    }

    pub(crate) fn pending(&self) -> usize {
        self.lock().leases.values().map(|l| l.unacked.len()).sum()
    }

    /// Leases whose final result is not acknowledged yet, with the last
    /// status they reported.
    pub(crate) fn reports(&self) -> Vec<BotReport> {
        self.lock()
            .leases
            .iter()
            .filter(|(_, l)| !l.unacked.is_empty())
            .filter_map(|(&(bot_id, generation), l)| {
                Some(BotReport {
                    bot_id,
                    generation,
                    status: l.last_status?,
                })
            })
            .collect()
    }

    /// Syncs every spool file to disk. Appends go on meanwhile: the files
    /// are synced through their own handles, outside the lock.
    pub(crate) fn sync(&self) {
        let files: Vec<std::fs::File> = self
            .lock()
            .leases
            .values()
            .filter_map(|l| l.file.as_ref()?.try_clone().ok())
            .collect();
        for f in files {
            let _ = f.sync_data();
        }
    }

    /// Runs `op` on a blocking thread and waits for it: how async code
    /// appends, acknowledges and syncs without stalling its thread. The
    /// caller waits, so the operation never outlives it; a panic in `op`
    /// is the caller's. During the runtime's shutdown, `op` may not run at
    /// all, and the caller waits until it is dropped.
    pub(crate) async fn off_thread<T, F>(&self, op: F) -> T
    where
        F: FnOnce(&Spool) -> T + Send + 'static,
        T: Send + 'static,
    {
        let spool = self.clone();
        match tokio::task::spawn_blocking(move || op(&spool)).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down and never ran `op`: so is the
            // caller, which is dropped at its next await.
            Err(_) => std::future::pending().await,
        }
    }

    /// Frames dropped for want of room since the start.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attache_protocol::{StatusReason, WarningCode};

    fn status(s: BotStatus) -> ResultBody {
        ResultBody::Status {
            status: s,
            reason: None,
            detail: None,
        }
    }

    fn open_all(frames: &[ResultFrame], key: &DataKey) -> Vec<ResultBody> {
        frames.iter().map(|f| f.open(key).unwrap()).collect()
    }

    #[test]
    fn numbers_seals_and_forgets_what_is_acked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let (bot, key) = (Uuid::from_u128(1), DataKey::generate());
        s.begin(bot, 1, key.clone()).unwrap();
        assert!(s.push(bot, 1, 10, status(BotStatus::Joining), false));
        assert!(s.push(bot, 1, 11, status(BotStatus::InCall), false));
        assert!(!s.push(Uuid::from_u128(9), 1, 0, status(BotStatus::Joining), false));
        let frames = s.after(bot, 1, 0);
        assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(open_all(&frames, &key)[1], status(BotStatus::InCall));
        s.ack(bot, 1, 1);
        assert_eq!(s.after(bot, 1, 0).len(), 1);
        assert_eq!(s.reports()[0].status, BotStatus::InCall);
        assert_eq!(s.take_dirty(), vec![(bot, 1)]);
        assert!(s.take_dirty().is_empty());
    }

    #[test]
    fn frames_dropped_for_want_of_room_are_one_skipped_frame_in_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let (bot, key) = (Uuid::from_u128(1), DataKey::generate());
        s.begin(bot, 1, key.clone()).unwrap();
        s.push(bot, 1, 0, status(BotStatus::Joining), false);
        s.ack(bot, 1, 1);
        // Five more than the spool keeps: seq 2..=6 are dropped.
        for i in 0..MAX_UNACKED + 5 {
            s.push(bot, 1, i as i64, status(BotStatus::InCall), false);
        }
        assert_eq!(s.dropped(), 5);
        let frames = s.after(bot, 1, 0);
        assert_eq!(frames.len(), MAX_UNACKED + 1);
        assert_eq!(frames[0].seq, 2);
        assert_eq!(
            frames[0].open(&key).unwrap(),
            ResultBody::Skipped { through: 6 }
        );
        assert_eq!(frames[1].seq, 7, "the stream goes on after the gap");
        assert_eq!(s.first_unacked(bot, 1), Some(2));
        // Written once on this stream: not again.
        assert_eq!(s.after(bot, 1, 2)[0].seq, 7);
        // The control plane acknowledges through the gap.
        s.ack(bot, 1, 6);
        let frames = s.after(bot, 1, 0);
        assert_eq!(frames[0].seq, 7);
        assert_eq!(frames.len(), MAX_UNACKED);
        assert_eq!(s.first_unacked(bot, 1), Some(7));
    }

    #[test]
    fn a_restarted_worker_replays_its_spool_and_fails_the_running_bot() {
        let dir = tempfile::tempdir().unwrap();
        let (bot, key) = (Uuid::from_u128(1), DataKey::generate());
        {
            let s = Spool::open(dir.path()).unwrap();
            s.begin(bot, 3, key.clone()).unwrap();
            for (i, st) in [BotStatus::Joining, BotStatus::InCall]
                .into_iter()
                .enumerate()
            {
                s.push(bot, 3, i as i64, status(st), false);
            }
            s.push(
                bot,
                3,
                5,
                ResultBody::Chat {
                    message_id: "m".into(),
                    sender: "Ann".into(),
                    text: "secret plan".into(),
                },
                false,
            );
            s.ack(bot, 3, 1);
            // The process dies here: nothing is closed.
            std::mem::forget(s);
        }
        // The spool on disk holds no plaintext.
        let raw = std::fs::read(dir.path().join(format!("{bot}-3.spool"))).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"secret plan"));
        // A torn record at the end is ignored.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(format!("{bot}-3.spool")))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();

        let s = Spool::open(dir.path()).unwrap();
        let r = s.recover().unwrap();
        assert_eq!(
            r,
            Recovered {
                leases: 1,
                frames: 2,
                interrupted: 1
            }
        );
        let frames = s.after(bot, 3, 0);
        assert_eq!(
            frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![2, 3, 4, 5],
            "replayed from the acknowledgement, then a warning and the final status"
        );
        let bodies = open_all(&frames, &key);
        assert!(matches!(
            &bodies[2],
            ResultBody::Warning { code: WarningCode::ResultsLost, detail } if detail.contains("3 results were spooled")
        ));
        assert!(matches!(
            bodies[3],
            ResultBody::Status {
                status: BotStatus::Failed,
                reason: Some(StatusReason::WorkerRestarted),
                ..
            }
        ));
        assert_eq!(s.reports()[0].status, BotStatus::Failed);
        // Once everything is acknowledged the files go.
        s.ack(bot, 3, 5);
        assert!(!dir.path().join(format!("{bot}-3.spool")).exists());
        let again = Spool::open(dir.path()).unwrap();
        assert_eq!(again.recover().unwrap(), Recovered::default());
    }

    #[test]
    fn a_finished_and_acknowledged_lease_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (bot, key) = (Uuid::from_u128(2), DataKey::generate());
        {
            let s = Spool::open(dir.path()).unwrap();
            s.begin(bot, 1, key).unwrap();
            s.push(bot, 1, 0, status(BotStatus::Joining), false);
            s.push(
                bot,
                1,
                1,
                ResultBody::Status {
                    status: BotStatus::Ended,
                    reason: Some(StatusReason::MeetingEnded),
                    detail: None,
                },
                true,
            );
            // Acknowledged on disk, but the process died before deleting.
            std::fs::write(
                dir.path().join(format!("{bot}-1.acked")),
                2u64.to_le_bytes(),
            )
            .unwrap();
            std::mem::forget(s);
        }
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.recover().unwrap(), Recovered::default());
        assert!(!dir.path().join(format!("{bot}-1.spool")).exists());
    }
}
