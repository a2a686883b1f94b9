//! Live bot events: every stored transition and transcript segment is
//! published here, to this process's subscribers and, through the bus, to
//! every other replica's. A live event is a prompt, not the record: the
//! database stays the truth, subscribers read stored events from it in
//! order, and one that falls behind re-reads rather than holding unbounded
//! memory.

use tokio::sync::broadcast;

use attache_protocol::{BotStatus, TranscriptSegment};

use crate::bus::{Bus, Notice};
use crate::entity::bot_event;

const CAPACITY: usize = 4096;

/// A bot moved: its stored event's id and new status.
#[derive(Debug, Clone)]
pub(crate) struct BotMoved {
    pub tenant_id: String,
    pub bot_id: String,
    pub event_id: i64,
    pub status: BotStatus,
}

/// A transcript segment just stored (partial or final). Stored here, it
/// comes with its words in the clear, which never leave this process
/// except to a subscriber of its own tenant; from another replica, with
/// its key only (`segment: None`), to be read sealed from the database.
#[derive(Debug, Clone)]
pub(crate) struct TranscriptEvent {
    pub tenant_id: String,
    pub bot_id: String,
    pub segment_key: String,
    pub segment: Option<TranscriptSegment>,
}

/// Something a bot saw was stored (a person joined or left, someone
/// started or stopped speaking, a chat message, a warning): a prompt to
/// read what is new of the bot's activity, which carries nothing itself.
#[derive(Debug, Clone)]
pub(crate) struct ActivityEvent {
    pub tenant_id: String,
    pub bot_id: String,
}

#[derive(Clone)]
pub(crate) struct EventHub {
    tx: broadcast::Sender<BotMoved>,
    transcripts: broadcast::Sender<TranscriptEvent>,
    activity: broadcast::Sender<ActivityEvent>,
    bus: Bus,
}

impl EventHub {
    pub(crate) fn new(bus: Bus) -> Self {
        EventHub {
            tx: broadcast::channel(CAPACITY).0,
            transcripts: broadcast::channel(CAPACITY).0,
            activity: broadcast::channel(CAPACITY).0,
            bus,
        }
    }

    /// The bus live feeds ride on: subscribers ask it whether to re-read.
    pub(crate) fn bus(&self) -> &Bus {
        &self.bus
    }

    /// A segment was stored here.
    pub(crate) fn publish_transcript(&self, event: TranscriptEvent) {
        self.bus.publish(Notice::Segment {
            tenant_id: event.tenant_id.clone(),
            bot_id: event.bot_id.clone(),
            segment_key: event.segment_key.clone(),
        });
        self.deliver_transcript(event);
    }

    /// To this process's subscribers only.
    pub(crate) fn deliver_transcript(&self, event: TranscriptEvent) {
        let _ = self.transcripts.send(event);
    }

    pub(crate) fn subscribe_transcripts(&self) -> broadcast::Receiver<TranscriptEvent> {
        self.transcripts.subscribe()
    }

    /// Some of a bot's activity was stored here.
    pub(crate) fn publish_activity(&self, event: ActivityEvent) {
        self.bus.publish(Notice::Activity {
            tenant_id: event.tenant_id.clone(),
            bot_id: event.bot_id.clone(),
        });
        self.deliver_activity(event);
    }

    /// To this process's subscribers only.
    pub(crate) fn deliver_activity(&self, event: ActivityEvent) {
        let _ = self.activity.send(event);
    }

    pub(crate) fn subscribe_activity(&self) -> broadcast::Receiver<ActivityEvent> {
        self.activity.subscribe()
    }

    /// A transition was stored here.
    pub(crate) fn publish(&self, event: &bot_event::Model) {
        let moved = BotMoved {
            tenant_id: event.tenant_id.clone(),
            bot_id: event.bot_id.clone(),
            event_id: event.id,
            status: event.status.0,
        };
        self.bus.publish(Notice::Moved {
            tenant_id: moved.tenant_id.clone(),
            bot_id: moved.bot_id.clone(),
            event_id: moved.event_id,
            status: moved.status,
        });
        self.deliver(moved);
    }

    /// To this process's subscribers only. No receivers is fine: nobody is
    /// watching.
    pub(crate) fn deliver(&self, moved: BotMoved) {
        let _ = self.tx.send(moved);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BotMoved> {
        self.tx.subscribe()
    }
}
