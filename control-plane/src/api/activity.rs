//! A bot's activity as one feed (`Subscription.botActivity`): people
//! joining and leaving, speaking turns starting and stopping, chat
//! messages and warnings, each once, in the order they happened.
//!
//! The feed reads the stored rows, which are the truth; a live prompt (from
//! this process, or from another replica through the bus) says there is
//! more to read. It remembers the last row of each kind it sent and the
//! stays and turns still open, so each read is of what is new.

use async_graphql::{Enum, ID, SimpleObject};
use attache_protocol::DataKey;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::media::{BotWarning, ChatMessage, Participant, SpeakerSegment};
use crate::AppState;
use crate::entity::bot;
use crate::store::{ActivityCursor, ActivityRows};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum BotActivityKind {
    ParticipantJoined,
    ParticipantLeft,
    SpeakingStarted,
    SpeakingStopped,
    ChatMessage,
    Warning,
}

impl BotActivityKind {
    fn is_an_end(self) -> bool {
        matches!(
            self,
            BotActivityKind::ParticipantLeft | BotActivityKind::SpeakingStopped
        )
    }
}

/// One thing the bot saw happen. `participant` is set for
/// `PARTICIPANT_JOINED` and `PARTICIPANT_LEFT` (the stay), `speaker` for
/// `SPEAKING_STARTED` and `SPEAKING_STOPPED` (the turn), `chatMessage` and
/// `warning` for theirs.
#[derive(SimpleObject)]
pub(crate) struct BotActivity {
    bot_id: ID,
    kind: BotActivityKind,
    /// When it happened, as the bot saw it.
    at: DateTime<Utc>,
    participant: Option<Participant>,
    speaker: Option<SpeakerSegment>,
    chat_message: Option<ChatMessage>,
    warning: Option<BotWarning>,
}

impl BotActivity {
    fn new(bot_id: &str, kind: BotActivityKind, at: DateTime<Utc>) -> Self {
        BotActivity {
            bot_id: ID(bot_id.to_string()),
            kind,
            at,
            participant: None,
            speaker: None,
            chat_message: None,
            warning: None,
        }
    }
}

/// What one subscriber has been sent of one bot's activity.
pub(crate) struct ActivityFeed {
    state: AppState,
    pub(crate) bot: bot::Model,
    key: Option<Option<DataKey>>,
    cursor: ActivityCursor,
}

impl ActivityFeed {
    pub(crate) fn new(state: AppState, bot: bot::Model) -> Self {
        ActivityFeed {
            state,
            bot,
            key: None,
            cursor: ActivityCursor::default(),
        }
    }

    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    /// Everything stored since the last read, oldest first.
    pub(crate) async fn next(&mut self) -> Result<Vec<BotActivity>, ApiError> {
        let scoped = self.state.store.scoped(&self.bot.tenant_id);
        let rows = scoped.activity_since(&self.bot.id, &self.cursor).await?;
        if rows.participants.is_empty()
            && rows.speakers.is_empty()
            && rows.chat.is_empty()
            && rows.warnings.is_empty()
        {
            return Ok(Vec::new());
        }
        let zero = match rows.speakers.is_empty() {
            true => None,
            false => scoped.recording(&self.bot.id).await?.map(|r| r.started_at),
        };
        if self.key.is_none() {
            let key = self
                .state
                .keys
                .existing_bot_key(&self.bot)
                .await
                .map_err(ApiError::internal)?;
            self.key = Some(key);
        }
        let key = self.key.clone().flatten();
        let mut out = self.items(rows, key.as_ref(), zero)?;
        // What ended in the same instant as something began went first.
        out.sort_by_key(|a| (a.at, !a.kind.is_an_end()));
        Ok(out)
    }

    /// The rows as activity, moving the cursor past them.
    fn items(
        &mut self,
        rows: ActivityRows,
        key: Option<&DataKey>,
        zero: Option<DateTime<Utc>>,
    ) -> Result<Vec<BotActivity>, ApiError> {
        use BotActivityKind as K;
        let c = &mut self.cursor;
        let id = self.bot.id.as_str();
        let mut out = Vec::new();
        for p in rows.participants {
            let new = p.id > c.participants;
            c.participants = c.participants.max(p.id);
            if new {
                let mut a = BotActivity::new(id, K::ParticipantJoined, p.joined_at);
                a.participant = Some(Participant::open(key, p.clone())?);
                out.push(a);
            }
            match p.left_at {
                Some(left_at) if new || c.open_stays.contains(&p.id) => {
                    c.open_stays.remove(&p.id);
                    let mut a = BotActivity::new(id, K::ParticipantLeft, left_at);
                    a.participant = Some(Participant::open(key, p)?);
                    out.push(a);
                }
                Some(_) => {}
                None => {
                    c.open_stays.insert(p.id);
                }
            }
        }
        for s in rows.speakers {
            let new = s.id > c.speakers;
            c.speakers = c.speakers.max(s.id);
            if new {
                let mut a = BotActivity::new(id, K::SpeakingStarted, s.started_at);
                a.speaker = Some(SpeakerSegment::open(key, s.clone(), zero)?);
                out.push(a);
            }
            match s.ended_at {
                Some(ended_at) if new || c.open_turns.contains(&s.id) => {
                    c.open_turns.remove(&s.id);
                    let mut a = BotActivity::new(id, K::SpeakingStopped, ended_at);
                    a.speaker = Some(SpeakerSegment::open(key, s, zero)?);
                    out.push(a);
                }
                Some(_) => {}
                None => {
                    c.open_turns.insert(s.id);
                }
            }
        }
        for m in rows.chat {
            c.chat = c.chat.max(m.id);
            let mut a = BotActivity::new(id, K::ChatMessage, m.sent_at);
            a.chat_message = Some(ChatMessage::open(key, m)?);
            out.push(a);
        }
        for w in rows.warnings {
            c.warnings = c.warnings.max(w.id);
            let mut a = BotActivity::new(id, K::Warning, w.at);
            a.warning = Some(BotWarning::from(w));
            out.push(a);
        }
        Ok(out)
    }
}
