//! Transcripts as the API shows them: segments opened from their sealed
//! rows, a bot's transcript as a connection or as plain text, and the
//! cursors that page through it.
//!
//! Every function here takes a store already scoped by the guard of the
//! resolver that calls it; none of them may be reached any other way.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, Result, SimpleObject};
use attache_protocol::DataKey;

use super::error::ApiError;
use super::paging::{self, TotalCount, decode_cursor, encode_cursor};
use super::sealed::bot_key;
use crate::entity::{bot, transcript_segment};
use crate::sealing::open_transcript;
use crate::store::Scoped;

/// Segments read from the store at once when a whole transcript is read.
const BATCH: u64 = 500;
/// Most segments in one page of a connection.
const MAX_PAGE: i32 = 500;
const DEFAULT_PAGE: i32 = 100;

/// A stretch of speech as text.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct TranscriptSegment {
    /// Stable across the partial versions and the final one.
    pub(super) id: ID,
    /// Milliseconds into the recording.
    start_ms: i64,
    end_ms: i64,
    /// Who spoke, from the platform's speaker signal; null when it named
    /// nobody or several people.
    speaker: Option<String>,
    text: String,
    /// The engine's confidence, 0 to 1.
    confidence: f64,
    language: Option<String>,
    /// False while the words may still change.
    pub(super) is_final: bool,
}

impl TranscriptSegment {
    pub(crate) fn open(
        key: Option<&DataKey>,
        m: &transcript_segment::Model,
    ) -> Result<Self, ApiError> {
        let (speaker, text) = open_transcript(key, m).map_err(ApiError::internal)?;
        Ok(TranscriptSegment {
            id: ID(m.segment_key.clone()),
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            speaker,
            text,
            confidence: m.confidence,
            language: m.language.clone(),
            is_final: m.is_final,
        })
    }

    /// A segment just stored by this process, still in the clear.
    pub(crate) fn live(segment_key: &str, s: &attache_protocol::TranscriptSegment) -> Self {
        TranscriptSegment {
            id: ID(segment_key.to_string()),
            start_ms: s.start_ms as i64,
            end_ms: s.end_ms as i64,
            speaker: s.speaker.clone(),
            text: s.text.clone(),
            confidence: s.confidence as f64,
            language: s.language.clone(),
            is_final: s.is_final,
        }
    }

    /// One line of the plain-text transcript: `[mm:ss] Name: text`.
    fn line(&self) -> String {
        let s = self.start_ms.max(0) / 1000;
        format!(
            "[{:02}:{:02}] {}: {}",
            s / 60,
            s % 60,
            self.speaker.as_deref().unwrap_or("Unknown speaker"),
            self.text.trim()
        )
    }
}

fn encode_segment_cursor(m: &transcript_segment::Model) -> String {
    encode_cursor(m.start_ms, m.id)
}

fn decode_segment_cursor(c: &str) -> Result<(i64, i64), ApiError> {
    decode_cursor(c)
}

/// Every segment stored for a bot, in time order, opened.
pub(crate) async fn stored(
    ctx: &Context<'_>,
    scoped: &Scoped<'_>,
    b: &bot::Model,
) -> Result<Vec<TranscriptSegment>, ApiError> {
    let key = bot_key(ctx, b).await?;
    rows(scoped, &b.id)
        .await?
        .iter()
        .map(|r| TranscriptSegment::open(key.as_ref(), r))
        .collect()
}

/// Every row of a bot's transcript, in time order, still sealed.
pub(super) async fn rows(
    scoped: &Scoped<'_>,
    bot_id: &str,
) -> Result<Vec<transcript_segment::Model>, ApiError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let rows = scoped.transcript(bot_id, after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = Some((last.start_ms, last.id));
        out.extend(rows);
    }
    Ok(out)
}

/// One page of a bot's transcript, after `after`.
pub(crate) async fn page(
    ctx: &Context<'_>,
    scoped: &Scoped<'_>,
    b: &bot::Model,
    (first, after): (Option<i32>, Option<String>),
    (last, before): (Option<i32>, Option<String>),
) -> Result<Connection<String, TranscriptSegment, TotalCount, EmptyFields>> {
    let after = after.map(|c| decode_segment_cursor(&c)).transpose()?;
    let before = before.map(|c| decode_segment_cursor(&c)).transpose()?;
    let window = paging::window(first, after, last, before, DEFAULT_PAGE, MAX_PAGE)?;
    let page = scoped
        .transcript_window(&b.id, &window)
        .await
        .map_err(ApiError::from)?;
    let total_count = scoped
        .count_transcript(&b.id)
        .await
        .map_err(ApiError::from)?;
    let key = bot_key(ctx, b).await?;
    let mut conn = Connection::with_additional_fields(
        page.has_previous,
        page.has_next,
        TotalCount { total_count },
    );
    for r in &page.items {
        conn.edges.push(Edge::new(
            encode_segment_cursor(r),
            TranscriptSegment::open(key.as_ref(), r)?,
        ));
    }
    Ok(conn)
}

/// A bot's final transcript as plain text, one line per final segment.
pub(crate) async fn text(
    ctx: &Context<'_>,
    scoped: &Scoped<'_>,
    b: &bot::Model,
) -> Result<String, ApiError> {
    let key = bot_key(ctx, b).await?;
    let lines = rows(scoped, &b.id)
        .await?
        .iter()
        .filter(|r| r.is_final)
        .map(|r| TranscriptSegment::open(key.as_ref(), r).map(|s| s.line()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn segment_cursors_round_trip() {
        let m = transcript_segment::Model {
            id: 42,
            bot_id: "b".into(),
            tenant_id: "t".into(),
            generation: 1,
            segment_key: "1:u1".into(),
            start_ms: 1500,
            end_ms: 2500,
            speaker: None,
            text_sealed: vec![],
            confidence: 0.9,
            language: None,
            is_final: true,
            updated_at: Utc::now(),
            speaker_sealed: None,
        };
        assert_eq!(
            decode_segment_cursor(&encode_segment_cursor(&m)).unwrap(),
            (1500, 42)
        );
        assert!(decode_segment_cursor("zz").is_err());
    }

    #[test]
    fn plain_text_lines_name_the_speaker_and_the_minute() {
        let s = TranscriptSegment {
            id: ID("1:u1".into()),
            start_ms: 61_500,
            end_ms: 63_000,
            speaker: Some("Ada".into()),
            text: " hello there ".into(),
            confidence: 1.0,
            language: None,
            is_final: true,
        };
        assert_eq!(s.line(), "[01:01] Ada: hello there");
        let nobody = TranscriptSegment {
            speaker: None,
            start_ms: -5,
            ..s
        };
        assert_eq!(nobody.line(), "[00:00] Unknown speaker: hello there");
    }
}
