//! What a bot saw, as it happens: the rows a live feed reads next
//! (`Subscription.botActivity`), and the webhook events of people joining
//! and leaving and of chat messages, which endpoints opt in to.
//!
//! Those events are written in the same transaction as the row they
//! announce. What would name a person or quote them stays sealed with the
//! bot's data key in the outbox, as in the row, and is opened only to be
//! sent ([`open_payload`]): an erasure leaves a waiting event unreadable
//! too.

use std::collections::BTreeSet;

use attache_protocol::DataKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Scoped;
use super::webhooks::{enqueue, event_payload};
use crate::entity::{bot_warning, chat_message, participant, speaker_segment};
use crate::sealing::{self, OpenError};

pub(crate) const PARTICIPANT_JOINED: &str = "participant.joined";
pub(crate) const PARTICIPANT_LEFT: &str = "participant.left";
pub(crate) const CHAT_MESSAGE: &str = "chat.message";

/// Event types an endpoint gets only if it names them: they carry names
/// and words, and come as often as people come and go and write.
pub(crate) const OPT_IN_EVENT_TYPES: [&str; 3] =
    [PARTICIPANT_JOINED, PARTICIPANT_LEFT, CHAT_MESSAGE];

/// The sealed part of a waiting event, as the outbox keeps it (base64 of
/// what the row holds).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Sealed {
    Stay {
        key: String,
        joined_at_ms: i64,
        id: String,
        name: String,
    },
    Message {
        key: String,
        sender: String,
        text: String,
    },
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The stored form of an event with sealed fields.
fn sealed_payload(event_type: &str, at: DateTime<Utc>, data: Value, sealed: Sealed) -> String {
    let mut v: Value = serde_json::from_str(&event_payload(event_type, at, data)).expect("json");
    v["sealed"] = serde_json::to_value(sealed).expect("json");
    v.to_string()
}

fn stay(p: &participant::Model) -> Option<Sealed> {
    let (Some(id), Some(name)) = (&p.participant_id_sealed, &p.name_sealed) else {
        return None;
    };
    Some(Sealed::Stay {
        key: p.participant_key.clone(),
        joined_at_ms: p.joined_at.timestamp_millis(),
        id: STANDARD.encode(id),
        name: STANDARD.encode(name),
    })
}

/// `participant.joined` for a stay just stored.
pub(super) async fn on_joined<C: ConnectionTrait>(
    db: &C,
    p: &participant::Model,
) -> Result<(), DbErr> {
    let Some(sealed) = stay(p) else {
        return Ok(());
    };
    let data = json!({ "botId": p.bot_id, "joinedAt": rfc3339(p.joined_at) });
    let payload = sealed_payload(PARTICIPANT_JOINED, p.joined_at, data, sealed);
    enqueue(
        db,
        &p.tenant_id,
        Some(&p.bot_id),
        PARTICIPANT_JOINED,
        payload,
        p.joined_at,
    )
    .await
}

/// `participant.left` for a stay that ended at `left_at`.
pub(super) async fn on_left<C: ConnectionTrait>(
    db: &C,
    p: &participant::Model,
    left_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(sealed) = stay(p) else {
        return Ok(());
    };
    let data = json!({
        "botId": p.bot_id,
        "joinedAt": rfc3339(p.joined_at),
        "leftAt": rfc3339(left_at),
    });
    let payload = sealed_payload(PARTICIPANT_LEFT, left_at, data, sealed);
    enqueue(
        db,
        &p.tenant_id,
        Some(&p.bot_id),
        PARTICIPANT_LEFT,
        payload,
        left_at,
    )
    .await
}

/// `chat.message` for a message just stored.
pub(super) async fn on_chat<C: ConnectionTrait>(
    db: &C,
    m: &chat_message::Model,
) -> Result<(), DbErr> {
    let (Some(sender), Some(text)) = (&m.sender_sealed, &m.text_sealed) else {
        return Ok(());
    };
    let sealed = Sealed::Message {
        key: m.message_key.clone(),
        sender: STANDARD.encode(sender),
        text: STANDARD.encode(text),
    };
    let data = json!({ "botId": m.bot_id, "sentAt": rfc3339(m.sent_at) });
    let payload = sealed_payload(CHAT_MESSAGE, m.sent_at, data, sealed);
    enqueue(
        db,
        &m.tenant_id,
        Some(&m.bot_id),
        CHAT_MESSAGE,
        payload,
        m.sent_at,
    )
    .await
}

/// Whether a stored payload has fields that open only with its bot's key.
pub(crate) fn is_sealed(payload: &str) -> bool {
    payload.contains("\"sealed\"")
        && serde_json::from_str::<Value>(payload).is_ok_and(|v| v.get("sealed").is_some())
}

/// The body to send for a stored payload: with its sealed fields opened
/// into `data` (`participantId` and `name`, or `sender` and `text`).
pub(crate) fn open_payload(
    payload: &str,
    bot_id: &str,
    key: Option<&DataKey>,
) -> Result<String, OpenError> {
    let mut v: Value = serde_json::from_str(payload).map_err(|_| OpenError::NotText)?;
    let Some(sealed) = v.as_object_mut().and_then(|o| o.remove("sealed")) else {
        return Ok(payload.to_string());
    };
    let sealed: Sealed = serde_json::from_value(sealed).map_err(|_| OpenError::NotText)?;
    let bytes = |b64: &str| STANDARD.decode(b64).map_err(|_| OpenError::NotText);
    let fields = match sealed {
        Sealed::Stay {
            key: hash,
            joined_at_ms,
            id,
            name,
        } => {
            let joined_at =
                DateTime::<Utc>::from_timestamp_millis(joined_at_ms).ok_or(OpenError::NotText)?;
            let (id, name) =
                sealing::open_stay(key, bot_id, &hash, joined_at, &bytes(&id)?, &bytes(&name)?)?;
            [("participantId", id), ("name", name)]
        }
        Sealed::Message {
            key: hash,
            sender,
            text,
        } => {
            let (sender, text) =
                sealing::open_message(key, bot_id, &hash, &bytes(&sender)?, &bytes(&text)?)?;
            [("sender", sender), ("text", text)]
        }
    };
    for (k, value) in fields {
        v["data"][k] = Value::String(value);
    }
    Ok(v.to_string())
}

/// Where a reader of a bot's activity is: the last row of each kind it
/// has, and the stays and turns it saw begin but not yet end.
#[derive(Debug, Default, Clone)]
pub(crate) struct ActivityCursor {
    pub participants: i64,
    pub speakers: i64,
    pub chat: i64,
    pub warnings: i64,
    pub open_stays: BTreeSet<i64>,
    pub open_turns: BTreeSet<i64>,
}

/// A bot's rows past a cursor: new ones, and the open ones again.
#[derive(Debug, Default)]
pub(crate) struct ActivityRows {
    pub participants: Vec<participant::Model>,
    pub speakers: Vec<speaker_segment::Model>,
    pub chat: Vec<chat_message::Model>,
    pub warnings: Vec<bot_warning::Model>,
}

/// Rows with an id past `after` or among `open`.
fn past<C: ColumnTrait>(id: C, after: i64, open: &BTreeSet<i64>) -> Condition {
    let c = Condition::any().add(id.gt(after));
    if open.is_empty() {
        c
    } else {
        c.add(id.is_in(open.iter().copied()))
    }
}

impl Scoped<'_> {
    /// What of a bot's activity a reader at `cursor` has not had.
    pub(crate) async fn activity_since(
        &self,
        bot_id: &str,
        cursor: &ActivityCursor,
    ) -> Result<ActivityRows, DbErr> {
        let participants = participant::Entity::find()
            .filter(participant::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(participant::Column::BotId.eq(bot_id))
            .filter(past(
                participant::Column::Id,
                cursor.participants,
                &cursor.open_stays,
            ))
            .order_by_asc(participant::Column::Id)
            .all(self.db)
            .await?;
        let speakers = speaker_segment::Entity::find()
            .filter(speaker_segment::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(speaker_segment::Column::BotId.eq(bot_id))
            .filter(past(
                speaker_segment::Column::Id,
                cursor.speakers,
                &cursor.open_turns,
            ))
            .order_by_asc(speaker_segment::Column::Id)
            .all(self.db)
            .await?;
        let chat = chat_message::Entity::find()
            .filter(chat_message::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(chat_message::Column::BotId.eq(bot_id))
            .filter(chat_message::Column::Id.gt(cursor.chat))
            .order_by_asc(chat_message::Column::Id)
            .all(self.db)
            .await?;
        let warnings = bot_warning::Entity::find()
            .filter(bot_warning::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(bot_warning::Column::BotId.eq(bot_id))
            .filter(bot_warning::Column::Id.gt(cursor.warnings))
            .order_by_asc(bot_warning::Column::Id)
            .all(self.db)
            .await?;
        Ok(ActivityRows {
            participants,
            speakers,
            chat,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::Sealer;

    #[test]
    fn a_waiting_event_names_nobody_until_it_is_opened_with_its_bots_key() {
        let key = DataKey::generate();
        let s = Sealer::new(&key, "b1");
        let joined_at = DateTime::<Utc>::from_timestamp_millis(1_764_000_000_123).unwrap();
        let person = s.participant("spaces/abc/devices/7", "Alice Liddell", joined_at);
        let stay = participant::Model {
            id: 1,
            bot_id: "b1".into(),
            tenant_id: "t1".into(),
            participant_key: person.key_hash,
            name: String::new(),
            joined_at,
            left_at: None,
            participant_id_sealed: Some(person.id_sealed),
            name_sealed: Some(person.name_sealed),
        };
        let data = json!({ "botId": "b1", "joinedAt": rfc3339(joined_at) });
        let stored = sealed_payload(PARTICIPANT_JOINED, joined_at, data, stay_of(&stay));
        assert!(is_sealed(&stored));
        assert!(!stored.contains("Alice") && !stored.contains("devices/7"));

        let sent: Value =
            serde_json::from_str(&open_payload(&stored, "b1", Some(&key)).unwrap()).unwrap();
        assert_eq!(sent["type"], PARTICIPANT_JOINED);
        assert_eq!(sent["data"]["name"], "Alice Liddell");
        assert_eq!(sent["data"]["participantId"], "spaces/abc/devices/7");
        assert_eq!(sent["data"]["joinedAt"], "2025-11-24T16:00:00.123Z");
        assert!(sent.get("sealed").is_none());

        // Another bot's key, no key, or another bot's id: nothing opens.
        assert!(open_payload(&stored, "b1", Some(&DataKey::generate())).is_err());
        assert!(open_payload(&stored, "b1", None).is_err());
        assert!(open_payload(&stored, "b2", Some(&key)).is_err());

        let chat = s.chat("m-1", "Bob", "Notes are in the shared doc.");
        let m = chat_message::Model {
            id: 1,
            bot_id: "b1".into(),
            tenant_id: "t1".into(),
            message_key: chat.key_hash,
            sender: String::new(),
            text: String::new(),
            sent_at: joined_at,
            sender_sealed: Some(chat.sender_sealed),
            text_sealed: Some(chat.text_sealed),
            key_hashed: true,
        };
        let sealed = Sealed::Message {
            key: m.message_key.clone(),
            sender: STANDARD.encode(m.sender_sealed.as_ref().unwrap()),
            text: STANDARD.encode(m.text_sealed.as_ref().unwrap()),
        };
        let stored = sealed_payload(CHAT_MESSAGE, joined_at, json!({ "botId": "b1" }), sealed);
        assert!(!stored.contains("shared doc") && !stored.contains("Bob"));
        let sent: Value =
            serde_json::from_str(&open_payload(&stored, "b1", Some(&key)).unwrap()).unwrap();
        assert_eq!(sent["data"]["sender"], "Bob");
        assert_eq!(sent["data"]["text"], "Notes are in the shared doc.");

        // A payload with nothing sealed goes as it is.
        let plain = event_payload("bot.ended", joined_at, json!({ "botId": "b1" }));
        assert!(!is_sealed(&plain));
        assert_eq!(open_payload(&plain, "b1", None).unwrap(), plain);
    }

    fn stay_of(p: &participant::Model) -> Sealed {
        stay(p).expect("sealed")
    }
}
