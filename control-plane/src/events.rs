//! Live bot events inside one control plane process: every stored
//! transition is published here, and subscriptions filter what they may see.
//! The database stays the truth; a subscriber that falls behind is told to
//! re-read rather than holding unbounded memory.

use tokio::sync::broadcast;

use crate::entity::bot_event;

const CAPACITY: usize = 4096;

#[derive(Clone)]
pub(crate) struct EventHub {
    tx: broadcast::Sender<bot_event::Model>,
}

impl EventHub {
    pub(crate) fn new() -> Self {
        EventHub {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    pub(crate) fn publish(&self, event: bot_event::Model) {
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<bot_event::Model> {
        self.tx.subscribe()
    }
}
