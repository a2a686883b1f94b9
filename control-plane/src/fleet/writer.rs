//! The ingest writer: result frames from every bot stream on this replica
//! are persisted in batches, many frames of many bots per transaction,
//! instead of one transaction each. A stream hands its frames over in
//! order, without waiting for the one before to commit (up to a bound of
//! its own), and acknowledges each once its batch has committed: each
//! bot's frames stay in order and nothing is acknowledged before it is
//! stored.
//!
//! Flow control: each lane's queue is bounded. When the database falls
//! behind, streams wait to hand over their next frame, stop reading, and
//! QUIC's flow control holds the workers back (their frames wait in their
//! spools): memory stays bounded however far behind the database is.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{ResultWrite, Store, StoreError, Written};

/// Frames waiting per lane; past that, streams wait.
const QUEUE: usize = 1024;

struct Pending {
    write: ResultWrite,
    done: oneshot::Sender<Result<Written, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct ResultWriter {
    lanes: Arc<[mpsc::Sender<Pending>]>,
}

impl ResultWriter {
    /// `lanes` transactions at once (one for SQLite, which has a single
    /// writer), each of at most `max_batch` frames; a bot's frames always
    /// take the same lane.
    pub(crate) fn start(
        store: Store,
        lanes: usize,
        max_batch: usize,
        metrics: Metrics,
    ) -> ResultWriter {
        let lanes: Vec<_> = (0..lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(lane(store.clone(), rx, max_batch.max(1), metrics.clone()));
                tx
            })
            .collect();
        ResultWriter {
            lanes: lanes.into(),
        }
    }

    /// Hands one frame's write to its lane (waiting while the lane is
    /// full); the answer comes once its batch has committed (or failed).
    /// A bot's frames handed over in order are committed in order.
    pub(crate) async fn submit(&self, write: ResultWrite) -> Result<Committed, StoreError> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        write.bot_id.hash(&mut h);
        let lane = &self.lanes[(h.finish() % self.lanes.len() as u64) as usize];
        let (done, outcome) = oneshot::channel();
        lane.send(Pending { write, done })
            .await
            .map_err(|_| stopped())?;
        Ok(Committed(outcome))
    }
}

/// A write in a lane's hands: what became of it, once its batch is done.
pub(crate) struct Committed(oneshot::Receiver<Result<Written, StoreError>>);

impl Committed {
    /// The outcome if the batch is already done.
    pub(crate) fn ready(&mut self) -> Option<Result<Written, StoreError>> {
        match self.0.try_recv() {
            Ok(o) => Some(o),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(stopped())),
        }
    }

    pub(crate) async fn outcome(self) -> Result<Written, StoreError> {
        self.0.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt("the ingest writer has stopped".into())
}

async fn lane(store: Store, mut rx: mpsc::Receiver<Pending>, max_batch: usize, metrics: Metrics) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        metrics.ingest_batch_frames.observe(batch.len() as f64);
        let (writes, done): (Vec<_>, Vec<_>) = batch.drain(..).map(|p| (p.write, p.done)).unzip();
        let outcomes = store.apply_results(writes).await;
        for (d, o) in done.into_iter().zip(outcomes) {
            let _ = d.send(o);
        }
    }
}
