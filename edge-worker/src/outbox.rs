//! Results waiting for the control plane's acknowledgement.
//!
//! Every status a bot reports becomes a numbered frame here. It stays until
//! the control plane says it has persisted it, and is written again on a
//! fresh stream after every reconnect; the control plane drops duplicates by
//! sequence number. (Frames live in memory: a worker restart loses the
//! unacknowledged ones, and its bots with them.)

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use attache_protocol::{BotReport, ResultBody, ResultFrame, encode_frame};
use uuid::Uuid;

use crate::session::SessionEvent;

/// Most unacknowledged frames kept per bot: a link down this long has lost
/// the bot's lease anyway, so the oldest frames go first.
const MAX_UNACKED: usize = 4096;

#[derive(Default)]
struct BotOut {
    next_seq: u64,
    unacked: VecDeque<ResultFrame>,
    /// Highest seq written on the current connection's stream.
    written: u64,
    stream: Option<quinn::SendStream>,
    finished: bool,
    /// Last write or acknowledgement: frames written long ago and still not
    /// acknowledged were lost with a stopped stream.
    progress: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Outbox {
    bots: HashMap<(Uuid, u64), BotOut>,
}

impl Outbox {
    pub(crate) fn push(&mut self, ev: SessionEvent) -> (Uuid, u64) {
        let key = (ev.bot_id, ev.generation);
        let out = self.bots.entry(key).or_default();
        out.next_seq += 1;
        if ev.last {
            out.finished = true;
        }
        out.unacked.push_back(ResultFrame {
            bot_id: ev.bot_id,
            generation: ev.generation,
            seq: out.next_seq,
            at_ms: ev.at_ms,
            body: ev.body,
        });
        if out.unacked.len() > MAX_UNACKED {
            out.unacked.pop_front();
        }
        key
    }

    pub(crate) fn ack(&mut self, bot_id: Uuid, generation: u64, seq: u64) {
        let key = (bot_id, generation);
        if let Some(out) = self.bots.get_mut(&key) {
            while out.unacked.front().is_some_and(|f| f.seq <= seq) {
                out.unacked.pop_front();
            }
            out.progress = Some(Instant::now());
            if out.finished && out.unacked.is_empty() {
                if let Some(mut s) = out.stream.take() {
                    let _ = s.finish();
                }
                self.bots.remove(&key);
            }
        }
    }

    /// Forgets a bot's pending frames (its lease is gone).
    pub(crate) fn forget(&mut self, bot_id: Uuid, generation: u64) {
        self.bots.remove(&(bot_id, generation));
    }

    /// Bots with results still on their way, with the last status they
    /// reported: a finished bot whose final status is not yet persisted is
    /// still this worker's to report.
    pub(crate) fn reports(&self) -> Vec<BotReport> {
        self.bots
            .iter()
            .filter_map(|(&(bot_id, generation), out)| {
                let status = out.unacked.iter().rev().find_map(|f| match &f.body {
                    ResultBody::Status { status, .. } => Some(*status),
                    _ => None,
                })?;
                Some(BotReport {
                    bot_id,
                    generation,
                    status,
                })
            })
            .collect()
    }

    pub(crate) fn pending(&self) -> usize {
        self.bots.values().map(|b| b.unacked.len()).sum()
    }

    /// The link dropped: streams are gone, everything unacknowledged will be
    /// written again.
    pub(crate) fn detach(&mut self) {
        for out in self.bots.values_mut() {
            out.stream = None;
            out.written = 0;
        }
    }

    /// Writes everything not yet written on this connection.
    pub(crate) async fn flush_all(
        &mut self,
        conn: &quinn::Connection,
    ) -> Result<(), quinn::ConnectionError> {
        let keys: Vec<_> = self.bots.keys().copied().collect();
        for key in keys {
            self.flush(key, conn).await?;
        }
        Ok(())
    }

    pub(crate) async fn flush(
        &mut self,
        key: (Uuid, u64),
        conn: &quinn::Connection,
    ) -> Result<(), quinn::ConnectionError> {
        let Some(out) = self.bots.get_mut(&key) else {
            return Ok(());
        };
        let todo: Vec<&ResultFrame> = out.unacked.iter().filter(|f| f.seq > out.written).collect();
        if todo.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        let mut last = out.written;
        for f in todo {
            bytes.extend(encode_frame(f).expect("result frames fit the frame limit"));
            last = f.seq;
        }
        if out.stream.is_none() {
            out.stream = Some(conn.open_uni().await?);
        }
        let stream = out.stream.as_mut().expect("stream opened");
        if stream.write_all(&bytes).await.is_err() {
            // The stream was stopped (the control plane could not persist):
            // a new stream replays from the last acknowledgement.
            out.stream = None;
            out.written = out.unacked.front().map_or(0, |f| f.seq - 1);
            return Ok(());
        }
        out.written = last;
        out.progress = Some(Instant::now());
        Ok(())
    }

    /// Marks for rewriting, on a fresh stream, every bot whose written frames
    /// have waited longer than `after` for an acknowledgement (the control
    /// plane stopped the stream, say, after failing to persist). Replaying is
    /// safe: the control plane drops what it already has.
    pub(crate) fn rewind_stalled(&mut self, now: Instant, after: Duration) -> usize {
        let mut n = 0;
        for out in self.bots.values_mut() {
            let Some(front) = out.unacked.front() else {
                continue;
            };
            let stalled = out.written >= front.seq
                && out.progress.is_some_and(|t| now.duration_since(t) > after);
            if stalled {
                out.stream = None;
                out.written = front.seq - 1;
                out.progress = Some(now);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attache_protocol::{BotStatus, ResultBody};

    fn ev(bot: u128, last: bool) -> SessionEvent {
        SessionEvent {
            bot_id: Uuid::from_u128(bot),
            generation: 1,
            at_ms: 0,
            body: ResultBody::Status {
                status: BotStatus::Joining,
                reason: None,
                detail: None,
            },
            last,
        }
    }

    #[test]
    fn numbers_per_bot_and_forgets_only_what_is_acked() {
        let mut o = Outbox::default();
        o.push(ev(1, false));
        o.push(ev(1, false));
        o.push(ev(2, false));
        assert_eq!(o.pending(), 3);
        o.ack(Uuid::from_u128(1), 1, 1);
        assert_eq!(o.pending(), 2);
        let seqs: Vec<u64> = o.bots[&(Uuid::from_u128(1), 1)]
            .unacked
            .iter()
            .map(|f| f.seq)
            .collect();
        assert_eq!(seqs, vec![2]);
        // A stale or repeated ack changes nothing.
        o.ack(Uuid::from_u128(1), 1, 1);
        o.ack(Uuid::from_u128(1), 7, 9);
        assert_eq!(o.pending(), 2);
    }

    #[test]
    fn frames_written_but_never_acknowledged_are_rewritten() {
        let mut o = Outbox::default();
        o.push(ev(1, false));
        o.push(ev(1, true));
        let key = (Uuid::from_u128(1), 1);
        let t0 = Instant::now();
        {
            let out = o.bots.get_mut(&key).unwrap();
            out.written = 2;
            out.progress = Some(t0);
        }
        assert_eq!(
            o.rewind_stalled(t0 + Duration::from_millis(500), Duration::from_secs(1)),
            0
        );
        assert_eq!(
            o.rewind_stalled(t0 + Duration::from_secs(2), Duration::from_secs(1)),
            1
        );
        assert_eq!(
            o.bots[&key].written, 0,
            "everything unacknowledged goes again"
        );
        let reports = o.reports();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].status, BotStatus::Joining);
    }

    #[test]
    fn finished_bot_is_dropped_once_fully_acked() {
        let mut o = Outbox::default();
        o.push(ev(1, false));
        o.push(ev(1, true));
        o.ack(Uuid::from_u128(1), 1, 1);
        assert_eq!(o.bots.len(), 1);
        o.ack(Uuid::from_u128(1), 1, 2);
        assert!(o.bots.is_empty());
    }
}
