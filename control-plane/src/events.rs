//! Live bot events inside one control plane process: every stored
//! transition is published here, and subscriptions filter what they may see.
//! The database stays the truth; a subscriber that falls behind is told to
//! re-read rather than holding unbounded memory.

use tokio::sync::broadcast;

use attache_protocol::TranscriptSegment;

use crate::entity::bot_event;

const CAPACITY: usize = 4096;

/// A transcript segment just stored (partial or final), in the clear: it
/// never leaves this process except to a subscriber of its own tenant.
#[derive(Debug, Clone)]
pub(crate) struct TranscriptEvent {
    pub tenant_id: String,
    pub bot_id: String,
    pub segment_key: String,
    pub segment: TranscriptSegment,
}

#[derive(Clone)]
pub(crate) struct EventHub {
    tx: broadcast::Sender<bot_event::Model>,
    transcripts: broadcast::Sender<TranscriptEvent>,
}

impl EventHub {
    pub(crate) fn new() -> Self {
        EventHub {
            tx: broadcast::channel(CAPACITY).0,
            transcripts: broadcast::channel(CAPACITY).0,
        }
    }

    pub(crate) fn publish_transcript(&self, event: TranscriptEvent) {
        let _ = self.transcripts.send(event);
    }

    pub(crate) fn subscribe_transcripts(&self) -> broadcast::Receiver<TranscriptEvent> {
        self.transcripts.subscribe()
    }

    pub(crate) fn publish(&self, event: bot_event::Model) {
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<bot_event::Model> {
        self.tx.subscribe()
    }
}
