//! Seals what older versions stored in the clear: bots' meeting URLs and
//! names, participants' and speakers' names and platform ids, transcript
//! speakers, and chat (sender and text, and the platform's message id,
//! which may hold both), then empties the clear columns.
//!
//! A schema migration cannot reach the keys, so the control plane does
//! this itself: on every start, on a background task of its tracker
//! ([`on_start`]), and `attache migrate` runs the same pass to the end
//! before it returns. A pass reads each table in id order, in batches of
//! [`BATCH`], and seals a batch per transaction with updates conditional on
//! the row still being in the clear: idempotent, and safe with several
//! replicas at it at once. A row whose bot's key cannot be read is skipped
//! and counted, never guessed at.

use std::collections::HashMap;
use std::time::Duration;

use attache_protocol::DataKey;
use tokio_util::sync::CancellationToken;

use super::{Sealer, open_chat};
use crate::AppState;
use crate::keys::Keys;
use crate::store::backfill::{SealedBot, SealedChatRow, SealedPersonRow, SealedSpeakerRow};
use crate::store::{Store, StoreError};

/// Rows read and sealed per transaction.
pub(crate) const BATCH: u64 = 200;
/// How long a pass that failed (the database went away) waits to start over.
const RETRY: Duration = Duration::from_secs(30);

/// What one pass sealed, per table, and how many rows it could not.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SealReport {
    pub bots: u64,
    pub participants: u64,
    pub speaker_segments: u64,
    pub transcript_segments: u64,
    pub chat_messages: u64,
    /// Rows left as they were: their bot's key does not unwrap, or a sealed
    /// chat row does not open.
    pub skipped: u64,
}

impl SealReport {
    pub fn sealed(&self) -> u64 {
        self.bots
            + self.participants
            + self.speaker_segments
            + self.transcript_segments
            + self.chat_messages
    }
}

/// The data keys of the bots a pass meets; `None` for a bot that is gone
/// (its rows went with it) or whose key does not unwrap.
struct KeyRing<'a> {
    store: &'a Store,
    keys: &'a Keys,
    known: HashMap<String, Option<DataKey>>,
}

impl KeyRing<'_> {
    async fn get(&mut self, bot_id: &str) -> Result<Option<DataKey>, StoreError> {
        if let Some(k) = self.known.get(bot_id) {
            return Ok(k.clone());
        }
        if self.known.len() >= 1_000 {
            self.known.clear();
        }
        let key = match self.store.bot(bot_id).await? {
            None => None,
            // Made now for a bot an older version never dispatched.
            Some(b) => match self.keys.bot_key(&b).await {
                Ok(k) => Some(k),
                Err(StoreError::Corrupt(why)) => {
                    tracing::warn!(bot_id, %why, "a bot's key does not unwrap; its rows stay as they are");
                    None
                }
                Err(e) => return Err(e),
            },
        };
        self.known.insert(bot_id.to_string(), key.clone());
        Ok(key)
    }
}

/// Seals every row still in the clear, to the end or until `cancel`.
pub(crate) async fn run(
    store: &Store,
    keys: &Keys,
    cancel: &CancellationToken,
) -> Result<SealReport, StoreError> {
    let mut ring = KeyRing {
        store,
        keys,
        known: HashMap::new(),
    };
    let mut report = SealReport::default();

    let mut after = String::new();
    while !cancel.is_cancelled() {
        let rows = store.clear_bots(&after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        let mut sealed = Vec::new();
        for b in &rows {
            let Some(key) = ring.get(&b.id).await? else {
                report.skipped += 1;
                continue;
            };
            let (meeting_url_sealed, bot_name_sealed) =
                Sealer::new(&key, &b.id).bot(&b.meeting_url, &b.bot_name);
            sealed.push(SealedBot {
                id: b.id.clone(),
                meeting_url_sealed,
                bot_name_sealed,
            });
        }
        report.bots += store.seal_bots(sealed).await?;
    }

    let mut after = 0;
    while !cancel.is_cancelled() {
        let rows = store.clear_participants(after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut sealed = Vec::new();
        for p in &rows {
            let Some(key) = ring.get(&p.bot_id).await? else {
                report.skipped += 1;
                continue;
            };
            let s =
                Sealer::new(&key, &p.bot_id).participant(&p.participant_key, &p.name, p.joined_at);
            sealed.push(SealedPersonRow {
                id: p.id,
                key_hash: s.key_hash,
                id_sealed: s.id_sealed,
                name_sealed: s.name_sealed,
            });
        }
        report.participants += store.seal_participants(sealed).await?;
    }

    let mut after = 0;
    while !cancel.is_cancelled() {
        let rows = store.clear_speaker_segments(after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut sealed = Vec::new();
        for t in &rows {
            let Some(key) = ring.get(&t.bot_id).await? else {
                report.skipped += 1;
                continue;
            };
            let s = Sealer::new(&key, &t.bot_id).speaker(&t.participant_key, &t.name, t.started_at);
            sealed.push(SealedPersonRow {
                id: t.id,
                key_hash: s.key_hash,
                id_sealed: s.id_sealed,
                name_sealed: s.name_sealed,
            });
        }
        report.speaker_segments += store.seal_speaker_segments(sealed).await?;
    }

    let mut after = 0;
    while !cancel.is_cancelled() {
        let rows = store.clear_transcript_speakers(after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut sealed = Vec::new();
        for t in &rows {
            let (Some(key), Some(speaker)) = (ring.get(&t.bot_id).await?, &t.speaker) else {
                report.skipped += 1;
                continue;
            };
            sealed.push(SealedSpeakerRow {
                id: t.id,
                speaker_sealed: Sealer::new(&key, &t.bot_id)
                    .transcript_speaker(&t.segment_key, speaker),
            });
        }
        report.transcript_segments += store.seal_transcript_speakers(sealed).await?;
    }

    let mut after = 0;
    while !cancel.is_cancelled() {
        let rows = store.clear_chat_messages(after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut sealed = Vec::new();
        for m in &rows {
            let Some(key) = ring.get(&m.bot_id).await? else {
                report.skipped += 1;
                continue;
            };
            // Sealed under its platform id by the version before, or not
            // sealed at all by the one before that.
            let (sender, text) = match open_chat(Some(&key), m) {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::warn!(bot_id = %m.bot_id, row = m.id, error = %e, "a chat message does not open; left as it is");
                    report.skipped += 1;
                    continue;
                }
            };
            let s = Sealer::new(&key, &m.bot_id).chat(&m.message_key, &sender, &text);
            sealed.push(SealedChatRow {
                id: m.id,
                bot_id: m.bot_id.clone(),
                key_hash: s.key_hash,
                sender_sealed: s.sender_sealed,
                text_sealed: s.text_sealed,
            });
        }
        report.chat_messages += store.seal_chat_messages(sealed).await?;
    }
    Ok(report)
}

/// The pass every start runs in the background: to the end, starting over
/// after a failure, until shutdown.
pub(crate) async fn on_start(state: AppState, shutdown: CancellationToken) {
    loop {
        match run(&state.store, &state.keys, &shutdown).await {
            Ok(r) if r.sealed() + r.skipped == 0 => {
                tracing::debug!("no personal field is stored in the clear");
                return;
            }
            Ok(r) => {
                tracing::info!(
                    bots = r.bots,
                    participants = r.participants,
                    speaker_segments = r.speaker_segments,
                    transcript_segments = r.transcript_segments,
                    chat_messages = r.chat_messages,
                    skipped = r.skipped,
                    finished = !shutdown.is_cancelled(),
                    "sealed personal fields an older version stored in the clear"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "sealing rows stored in the clear failed; starting over in {RETRY:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}
