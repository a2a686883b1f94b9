//! Results waiting for the control plane's acknowledgement.
//!
//! Every status a bot reports becomes a numbered frame here. It stays until
//! the control plane says it has persisted it, and is written again on a
//! fresh stream after every reconnect; the control plane drops duplicates by
//! sequence number. (Frames live in memory: a worker restart loses the
//! unacknowledged ones, and its bots with them.)

use std::collections::{HashMap, VecDeque};

use attache_protocol::{ResultFrame, encode_frame};
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
        Ok(())
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
