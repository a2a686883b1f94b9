//! Delivery of spooled results on the current connection: one
//! unidirectional stream per lease, written from the spool's last
//! acknowledgement after every reconnect. The control plane drops
//! duplicates by sequence number.
//!
//! The outbox only reads the spool: a result reaches a stream only once it
//! is on disk, and leaves the spool only when the control plane has
//! acknowledged it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use attache_protocol::{BotReport, encode_frame};
use uuid::Uuid;

use crate::spool::Spool;

#[derive(Default)]
struct StreamState {
    /// Highest seq written on the current connection's stream.
    written: u64,
    stream: Option<quinn::SendStream>,
    /// Last write or acknowledgement: frames written long ago and still not
    /// acknowledged were lost with a stopped stream.
    progress: Option<Instant>,
}

pub(crate) struct Outbox {
    spool: Spool,
    streams: HashMap<(Uuid, u64), StreamState>,
}

impl Outbox {
    pub(crate) fn new(spool: Spool) -> Outbox {
        Outbox {
            spool,
            streams: HashMap::new(),
        }
    }

    pub(crate) async fn ack(&mut self, bot_id: Uuid, generation: u64, seq: u64) {
        let key = (bot_id, generation);
        self.spool
            .off_thread(move |s| s.ack(bot_id, generation, seq))
            .await;
        if let Some(s) = self.streams.get_mut(&key) {
            s.progress = Some(Instant::now());
        }
        let done = !self.spool.has(bot_id, generation);
        if done
            && let Some(mut s) = self.streams.remove(&key)
            && let Some(stream) = s.stream.as_mut()
        {
            let _ = stream.finish();
        }
    }

    /// Forgets a lease's pending results (it is no longer this worker's).
    pub(crate) async fn forget(&mut self, bot_id: Uuid, generation: u64) {
        self.spool
            .off_thread(move |s| s.forget(bot_id, generation))
            .await;
        self.streams.remove(&(bot_id, generation));
    }

    pub(crate) fn reports(&self) -> Vec<BotReport> {
        self.spool.reports()
    }

    pub(crate) fn pending(&self) -> usize {
        self.spool.pending()
    }

    /// The link dropped: streams are gone, everything unacknowledged will be
    /// written again.
    pub(crate) fn detach(&mut self) {
        self.streams.clear();
    }

    /// Writes everything not yet written on this connection.
    pub(crate) async fn flush_all(
        &mut self,
        conn: &quinn::Connection,
    ) -> Result<(), quinn::ConnectionError> {
        for key in self.spool.keys() {
            self.flush(key, conn).await?;
        }
        Ok(())
    }

    /// Writes the leases with new results.
    pub(crate) async fn flush_dirty(
        &mut self,
        conn: &quinn::Connection,
    ) -> Result<(), quinn::ConnectionError> {
        for key in self.spool.take_dirty() {
            self.flush(key, conn).await?;
        }
        Ok(())
    }

    async fn flush(
        &mut self,
        key: (Uuid, u64),
        conn: &quinn::Connection,
    ) -> Result<(), quinn::ConnectionError> {
        let state = self.streams.entry(key).or_default();
        let todo = self.spool.after(key.0, key.1, state.written);
        let Some(last) = todo.last().map(|f| f.seq) else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        for f in &todo {
            bytes.extend(encode_frame(f).expect("result frames fit the frame limit"));
        }
        if state.stream.is_none() {
            state.stream = Some(conn.open_uni().await?);
        }
        let stream = state.stream.as_mut().expect("stream opened");
        if stream.write_all(&bytes).await.is_err() {
            // The stream was stopped (the control plane could not persist):
            // a new stream replays from the last acknowledgement.
            state.stream = None;
            state.written = todo[0].seq - 1;
            return Ok(());
        }
        state.written = last;
        state.progress = Some(Instant::now());
        Ok(())
    }

    /// Marks for rewriting, on a fresh stream, every lease whose written
    /// frames have waited longer than `after` for an acknowledgement.
    /// Replaying is safe: the control plane drops what it already has.
    pub(crate) fn rewind_stalled(&mut self, now: Instant, after: Duration) -> usize {
        let mut n = 0;
        for (key, s) in self.streams.iter_mut() {
            let Some(front) = self.spool.first_unacked(key.0, key.1) else {
                continue;
            };
            let stalled =
                s.written >= front && s.progress.is_some_and(|t| now.duration_since(t) > after);
            if stalled {
                s.stream = None;
                s.written = front - 1;
                s.progress = Some(now);
                n += 1;
            }
        }
        n
    }
}
