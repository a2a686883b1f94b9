//! Personal fields at rest: each one sealed under its bot's data key and
//! bound to its place, and keyed hashes standing in for platform ids where
//! the store matches rows by them. Forgetting the bot's wrapped key (an
//! erasure) makes both unreadable, in backups too.
//!
//! Writers (createBot, result ingest, the [`backfill`] of rows older
//! versions stored in the clear) seal through [`Sealer`]; readers (the API,
//! dispatch) open with the `open_*` functions, which also read rows not
//! sealed yet. Both sides take a field's context from here, so they cannot
//! drift apart. Each context names the field, the bot and the row:
//!
//! | field | bound to (`attache/<field>/<bot>/<item>`) |
//! |---|---|
//! | `bot-name`, `meeting-url` | the bot's id |
//! | `participant-id`, `participant-name` | the id's hash and the stay's `joined_at` (ms) |
//! | `speaker-id`, `speaker-name` | the id's hash and the turn's `started_at` (ms) |
//! | `transcript`, `transcript-speaker` | the segment's key |
//! | `chat-sender`, `chat-text` | the stored message key (its hash) |
//!
//! Nothing here stores, logs or returns an opened value to anyone but its
//! caller.

pub(crate) mod backfill;
#[cfg(test)]
mod backfill_tests;

use attache_protocol::{DataKey, SealError};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

use crate::entity::{bot, chat_message, participant, speaker_segment, transcript_segment};
use crate::keys::{derive, field_context};

/// What a platform id is hashed for: the same id hashes alike for one bot
/// and purpose, so the store can match on it.
#[derive(Debug, Clone, Copy)]
enum Hashed {
    /// A person in the meeting: their stays and their speaking turns.
    Participant,
    /// A chat message, seen again after a reconnect.
    Message,
}

impl Hashed {
    fn name(self) -> &'static str {
        match self {
            Hashed::Participant => "participant",
            Hashed::Message => "chat-message",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("a sealed field of a bot with no data key")]
    NoKey,
    #[error("a sealed field does not open: {0}")]
    Seal(#[from] SealError),
    #[error("a sealed field does not hold text")]
    NotText,
}

/// The item a person's stay or speaking turn is bound to.
fn stay(key_hash: &str, at: DateTime<Utc>) -> String {
    format!("{key_hash}/{}", at.timestamp_millis())
}

fn open_with(
    key: Option<&DataKey>,
    field: &str,
    bot_id: &str,
    item: &str,
    sealed: &[u8],
) -> Result<String, OpenError> {
    let key = key.ok_or(OpenError::NoKey)?;
    let plain = key.open(&field_context(field, bot_id, item), sealed)?;
    String::from_utf8(plain).map_err(|_| OpenError::NotText)
}

/// A person's platform id, name and where they are stored, sealed.
#[derive(Debug, Clone)]
pub(crate) struct SealedPerson {
    /// What the store matches them by.
    pub key_hash: String,
    pub id_sealed: Vec<u8>,
    pub name_sealed: Vec<u8>,
}

/// A chat message's sender and text, sealed, and its id's hash.
#[derive(Debug, Clone)]
pub(crate) struct SealedChat {
    pub key_hash: String,
    pub sender_sealed: Vec<u8>,
    pub text_sealed: Vec<u8>,
}

/// Seals one bot's personal fields with its data key.
pub(crate) struct Sealer<'a> {
    key: &'a DataKey,
    bot_id: &'a str,
}

impl<'a> Sealer<'a> {
    pub(crate) fn new(key: &'a DataKey, bot_id: &'a str) -> Sealer<'a> {
        Sealer { key, bot_id }
    }

    fn seal(&self, field: &str, item: &str, plain: &str) -> Vec<u8> {
        self.key
            .seal(&field_context(field, self.bot_id, item), plain.as_bytes())
    }

    /// HMAC-SHA256, under a key derived from the bot's data key, of a
    /// platform id: lowercase hex.
    fn hash(&self, what: Hashed, id: &str) -> String {
        let sub = derive(self.key, "attache/id-hash");
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&sub).expect("any key length");
        m.update(format!("{}/{}/", what.name(), self.bot_id).as_bytes());
        m.update(id.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// The stored form of a person's platform id, to find their rows by.
    pub(crate) fn participant_hash(&self, platform_id: &str) -> String {
        self.hash(Hashed::Participant, platform_id)
    }

    /// The stored form of a chat message's platform id.
    pub(crate) fn message_hash(&self, message_id: &str) -> String {
        self.hash(Hashed::Message, message_id)
    }

    /// The bot's meeting URL and name.
    pub(crate) fn bot(&self, meeting_url: &str, bot_name: &str) -> (Vec<u8>, Vec<u8>) {
        (
            self.seal("meeting-url", self.bot_id, meeting_url),
            self.seal("bot-name", self.bot_id, bot_name),
        )
    }

    fn person(&self, kind: &str, platform_id: &str, name: &str, at: DateTime<Utc>) -> SealedPerson {
        let key_hash = self.participant_hash(platform_id);
        let item = stay(&key_hash, at);
        SealedPerson {
            id_sealed: self.seal(&format!("{kind}-id"), &item, platform_id),
            name_sealed: self.seal(&format!("{kind}-name"), &item, name),
            key_hash,
        }
    }

    /// A stay in the meeting that began at `joined_at`.
    pub(crate) fn participant(
        &self,
        platform_id: &str,
        name: &str,
        joined_at: DateTime<Utc>,
    ) -> SealedPerson {
        self.person("participant", platform_id, name, joined_at)
    }

    /// A speaking turn that began at `started_at`.
    pub(crate) fn speaker(
        &self,
        platform_id: &str,
        name: &str,
        started_at: DateTime<Utc>,
    ) -> SealedPerson {
        self.person("speaker", platform_id, name, started_at)
    }

    pub(crate) fn chat(&self, message_id: &str, sender: &str, text: &str) -> SealedChat {
        let key_hash = self.message_hash(message_id);
        SealedChat {
            sender_sealed: self.seal("chat-sender", &key_hash, sender),
            text_sealed: self.seal("chat-text", &key_hash, text),
            key_hash,
        }
    }

    pub(crate) fn transcript_text(&self, segment_key: &str, text: &str) -> Vec<u8> {
        self.seal("transcript", segment_key, text)
    }

    pub(crate) fn transcript_speaker(&self, segment_key: &str, speaker: &str) -> Vec<u8> {
        self.seal("transcript-speaker", segment_key, speaker)
    }
}

/// A bot's meeting URL and name, as given at createBot.
pub(crate) fn open_bot(
    key: Option<&DataKey>,
    b: &bot::Model,
) -> Result<(String, String), OpenError> {
    let url = match &b.meeting_url_sealed {
        Some(s) => open_with(key, "meeting-url", &b.id, &b.id, s)?,
        None => b.meeting_url.clone(),
    };
    let name = match &b.bot_name_sealed {
        Some(s) => open_with(key, "bot-name", &b.id, &b.id, s)?,
        None => b.bot_name.clone(),
    };
    Ok((url, name))
}

/// A stay's platform id and name.
pub(crate) fn open_participant(
    key: Option<&DataKey>,
    p: &participant::Model,
) -> Result<(String, String), OpenError> {
    let (Some(id), Some(name)) = (&p.participant_id_sealed, &p.name_sealed) else {
        return Ok((p.participant_key.clone(), p.name.clone()));
    };
    open_stay(key, &p.bot_id, &p.participant_key, p.joined_at, id, name)
}

/// The platform id and name of a stay sealed by [`Sealer::participant`],
/// wherever they are kept (a row, or an event waiting to be sent).
pub(crate) fn open_stay(
    key: Option<&DataKey>,
    bot_id: &str,
    key_hash: &str,
    joined_at: DateTime<Utc>,
    id_sealed: &[u8],
    name_sealed: &[u8],
) -> Result<(String, String), OpenError> {
    let item = stay(key_hash, joined_at);
    Ok((
        open_with(key, "participant-id", bot_id, &item, id_sealed)?,
        open_with(key, "participant-name", bot_id, &item, name_sealed)?,
    ))
}

/// A speaking turn's platform id and name.
pub(crate) fn open_speaker(
    key: Option<&DataKey>,
    s: &speaker_segment::Model,
) -> Result<(String, String), OpenError> {
    let (Some(id), Some(name)) = (&s.participant_id_sealed, &s.name_sealed) else {
        return Ok((s.participant_key.clone(), s.name.clone()));
    };
    let item = stay(&s.participant_key, s.started_at);
    Ok((
        open_with(key, "speaker-id", &s.bot_id, &item, id)?,
        open_with(key, "speaker-name", &s.bot_id, &item, name)?,
    ))
}

/// A chat message's sender and text.
pub(crate) fn open_chat(
    key: Option<&DataKey>,
    m: &chat_message::Model,
) -> Result<(String, String), OpenError> {
    match (&m.sender_sealed, &m.text_sealed) {
        // Bound to the stored key: its hash, or in rows of the version
        // before, the platform's id.
        (Some(s), Some(t)) => open_message(key, &m.bot_id, &m.message_key, s, t),
        // Stored before chat was sealed at all.
        _ => Ok((m.sender.clone(), m.text.clone())),
    }
}

/// The sender and text of a message sealed by [`Sealer::chat`], wherever
/// they are kept.
pub(crate) fn open_message(
    key: Option<&DataKey>,
    bot_id: &str,
    message_key: &str,
    sender_sealed: &[u8],
    text_sealed: &[u8],
) -> Result<(String, String), OpenError> {
    Ok((
        open_with(key, "chat-sender", bot_id, message_key, sender_sealed)?,
        open_with(key, "chat-text", bot_id, message_key, text_sealed)?,
    ))
}

/// A transcript segment's speaker (if one was named) and text.
pub(crate) fn open_transcript(
    key: Option<&DataKey>,
    m: &transcript_segment::Model,
) -> Result<(Option<String>, String), OpenError> {
    let speaker = match &m.speaker_sealed {
        Some(s) => Some(open_with(
            key,
            "transcript-speaker",
            &m.bot_id,
            &m.segment_key,
            s,
        )?),
        None => m.speaker.clone(),
    };
    let text = open_with(key, "transcript", &m.bot_id, &m.segment_key, &m.text_sealed)?;
    Ok((speaker, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn person_row(bot_id: &str, p: &SealedPerson, joined: i64) -> participant::Model {
        participant::Model {
            id: 1,
            bot_id: bot_id.into(),
            tenant_id: "t".into(),
            participant_key: p.key_hash.clone(),
            name: String::new(),
            joined_at: at(joined),
            left_at: None,
            participant_id_sealed: Some(p.id_sealed.clone()),
            name_sealed: Some(p.name_sealed.clone()),
        }
    }

    #[test]
    fn a_stay_opens_in_its_own_row_only() {
        let key = DataKey::generate();
        let s = Sealer::new(&key, "b1");
        let ada = s.participant("ada@example.com", "Ada", at(1_000));
        let row = person_row("b1", &ada, 1_000);
        assert_eq!(
            open_participant(Some(&key), &row).unwrap(),
            ("ada@example.com".to_string(), "Ada".to_string())
        );
        // Moved to another stay, another person, another bot, or opened
        // with another key: refused.
        let later = person_row("b1", &ada, 2_000);
        assert!(open_participant(Some(&key), &later).is_err());
        let bob = s.participant("bob", "Bob", at(1_000));
        let mut swapped = person_row("b1", &bob, 1_000);
        swapped.name_sealed = Some(ada.name_sealed.clone());
        assert!(open_participant(Some(&key), &swapped).is_err());
        assert!(open_participant(Some(&key), &person_row("b2", &ada, 1_000)).is_err());
        assert!(open_participant(Some(&DataKey::generate()), &row).is_err());
        assert!(matches!(
            open_participant(None, &row),
            Err(OpenError::NoKey)
        ));
        // A name is not a speaker's name.
        let turn = s.speaker("ada@example.com", "Ada", at(1_000));
        assert_eq!(turn.key_hash, ada.key_hash, "one person, one hash");
        let mut as_stay = row.clone();
        as_stay.name_sealed = Some(turn.name_sealed);
        assert!(open_participant(Some(&key), &as_stay).is_err());
    }

    #[test]
    fn hashes_match_alike_and_reveal_nothing_without_the_key() {
        let key = DataKey::generate();
        let s = Sealer::new(&key, "b1");
        let h = s.participant_hash("Ada Lovelace");
        assert_eq!(h, s.participant_hash("Ada Lovelace"));
        assert_eq!(h.len(), 64);
        assert!(!h.contains("Ada"));
        assert_ne!(h, s.participant_hash("Ada lovelace"));
        assert_ne!(h, s.message_hash("Ada Lovelace"), "purposes differ");
        assert_ne!(h, Sealer::new(&key, "b2").participant_hash("Ada Lovelace"));
        let other = DataKey::generate();
        assert_ne!(
            h,
            Sealer::new(&other, "b1").participant_hash("Ada Lovelace")
        );
    }

    #[test]
    fn rows_not_sealed_yet_read_as_stored() {
        let p = participant::Model {
            participant_key: "ada@example.com".into(),
            name: "Ada".into(),
            participant_id_sealed: None,
            name_sealed: None,
            ..person_row(
                "b1",
                &Sealer::new(&DataKey::generate(), "b1").participant("x", "y", at(0)),
                0,
            )
        };
        assert_eq!(
            open_participant(None, &p).unwrap(),
            ("ada@example.com".to_string(), "Ada".to_string())
        );
    }

    #[test]
    fn chat_and_transcripts_are_bound_to_their_keys() {
        let key = DataKey::generate();
        let s = Sealer::new(&key, "b1");
        let c = s.chat("Bob\u{0}hello\u{0}0", "Bob", "hello");
        assert!(!c.key_hash.contains("Bob"));
        let mut m = chat_message::Model {
            id: 1,
            bot_id: "b1".into(),
            tenant_id: "t".into(),
            message_key: c.key_hash.clone(),
            sender: String::new(),
            text: String::new(),
            sent_at: at(0),
            sender_sealed: Some(c.sender_sealed.clone()),
            text_sealed: Some(c.text_sealed.clone()),
            key_hashed: true,
        };
        assert_eq!(
            open_chat(Some(&key), &m).unwrap(),
            ("Bob".to_string(), "hello".to_string())
        );
        m.message_key = s.message_hash("another");
        assert!(open_chat(Some(&key), &m).is_err());

        let t = transcript_segment::Model {
            id: 1,
            bot_id: "b1".into(),
            tenant_id: "t".into(),
            generation: 1,
            segment_key: "1:u1".into(),
            start_ms: 0,
            end_ms: 1,
            speaker: None,
            text_sealed: s.transcript_text("1:u1", "hi"),
            confidence: 1.0,
            language: None,
            is_final: true,
            updated_at: at(0),
            speaker_sealed: Some(s.transcript_speaker("1:u1", "Ada")),
        };
        assert_eq!(
            open_transcript(Some(&key), &t).unwrap(),
            (Some("Ada".to_string()), "hi".to_string())
        );
        let elsewhere = transcript_segment::Model {
            segment_key: "1:u2".into(),
            ..t
        };
        assert!(open_transcript(Some(&key), &elsewhere).is_err());
    }
}
