//! The sandbox meeting: a small meeting web app shaped like the real
//! platforms (a lobby with a name field and "Ask to join", host admission,
//! a participant list, removal, the meeting ending), so bots can be tested
//! end to end with no outside service.
//!
//! Each meeting's behaviour is set in its URL (`/m/<id>?admission=deny`) or
//! through the control API under `/api/meetings`, so tests can script it.
//! A script (`?script=demo`, or a whole one posted to `/api/meetings`) adds
//! other participants who join, leave, speak and write in the chat; their
//! voices reach each admitted page as one remote `RTCPeerConnection` audio
//! track per speaker, as on a real platform.
//!
//! It keeps everything in memory and bounds every collection: it is a test
//! fixture and a demo, never a place to keep data.

mod meeting;
mod options;
mod peer;
mod routes;
mod script;
mod speech;

use std::sync::Arc;

pub use meeting::{
    Admission, AudioMode, MeetingOptions, MeetingView, Mix, ParticipantState, ParticipantView,
    SelfView, Speakers, Uplink, Wall,
};
pub use routes::{REPLICAS, router};
pub use script::{BUILTIN_SCRIPTS, ChatView, Script, ScriptedChat, ScriptedParticipant, Utterance};
pub use speech::{CLIPS, Clip};

/// Shared state of one sandbox server.
#[derive(Clone, Default)]
pub struct Sandbox {
    inner: Arc<meeting::Meetings>,
}

impl Sandbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the sandbox on an already bound listener until `shutdown`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, router(self))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}
