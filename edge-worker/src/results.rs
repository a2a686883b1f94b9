//! What every stage of a bot emits: its status changes (through the
//! [`Reporter`]) and everything else it observes or produces (through an
//! [`Emitter`]): participants, chat, speakers, warnings, recording chunks,
//! transcript segments. Each result is stamped with [`now_ms`] or its own
//! capture time, numbered, sealed and appended to the spool before anything
//! else happens to it; the link delivers it from there.
//!
//! This module sits under every stage and above the spool alone: it must
//! never reach up into the session, the adapter, capture or transcription.
//! It never writes to disk on an async thread: an async caller's append
//! runs on a blocking thread, and the caller resumes once it is spooled.

use std::sync::{Arc, Mutex};

use attache_protocol::{BotStatus, ResultBody, StatusReason};
use uuid::Uuid;

pub(crate) use crate::clock::now_ms;
use crate::spool::Spool;

/// Sends one bot's results (other than its status) from anywhere: async
/// tasks, or the encoder thread.
#[derive(Clone)]
pub(crate) struct Emitter {
    bot_id: Uuid,
    generation: u64,
    spool: Spool,
}

impl Emitter {
    pub(crate) fn new(bot_id: Uuid, generation: u64, spool: Spool) -> Emitter {
        Emitter {
            bot_id,
            generation,
            spool,
        }
    }

    /// Spools one result (numbered, sealed, on disk) for delivery.
    pub(crate) async fn send(&self, at_ms: i64, body: ResultBody) {
        self.spooled(at_ms, body, false).await;
    }

    /// The same, from a thread outside the async runtime.
    pub(crate) fn blocking(&self, at_ms: i64, body: ResultBody) {
        self.spool
            .push(self.bot_id, self.generation, at_ms, body, false);
    }

    /// Appends on a blocking thread; returns once the result is spooled.
    /// `last` marks the session's final result.
    async fn spooled(&self, at_ms: i64, body: ResultBody, last: bool) {
        let (bot_id, generation) = (self.bot_id, self.generation);
        self.spool
            .off_thread(move |s| s.push(bot_id, generation, at_ms, body, last))
            .await;
    }

    #[cfg(test)]
    pub(crate) fn for_tests(spool: Spool, key: attache_protocol::DataKey) -> Emitter {
        spool.begin(Uuid::nil(), 1, key).expect("test spool");
        Emitter::new(Uuid::nil(), 1, spool)
    }
}

/// The last status a bot reported, shared with the table that heartbeats
/// are made from.
#[derive(Clone)]
pub(crate) struct LastStatus(Arc<Mutex<BotStatus>>);

impl LastStatus {
    pub(crate) fn new(status: BotStatus) -> LastStatus {
        LastStatus(Arc::new(Mutex::new(status)))
    }

    pub(crate) fn get(&self) -> BotStatus {
        *self.0.lock().expect("status lock")
    }

    fn set(&self, status: BotStatus) {
        *self.0.lock().expect("status lock") = status;
    }
}

/// How a session tells the world what happened: each status change is
/// recorded for heartbeats, then spooled like any other result.
pub(crate) struct Reporter {
    emitter: Emitter,
    last: LastStatus,
}

impl Reporter {
    pub(crate) fn new(emitter: Emitter, last: LastStatus) -> Reporter {
        Reporter { emitter, last }
    }

    pub(crate) fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    pub(crate) async fn status(&self, status: BotStatus) {
        self.send(status, None, None, false).await;
    }

    /// The session's final status, its last result.
    pub(crate) async fn finish(
        &self,
        status: BotStatus,
        reason: StatusReason,
        detail: Option<String>,
    ) {
        self.send(status, Some(reason), detail, true).await;
    }

    async fn send(
        &self,
        status: BotStatus,
        reason: Option<StatusReason>,
        detail: Option<String>,
        last: bool,
    ) {
        self.last.set(status);
        // Spooled at once; the link delivers it when it can.
        let body = ResultBody::Status {
            status,
            reason,
            detail,
        };
        self.emitter.spooled(now_ms(), body, last).await;
    }
}
