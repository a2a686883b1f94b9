//! Recordings in the object store.
//!
//! A worker streams its bot's Ogg/Opus recording as chunks on the bot's
//! result stream while the meeting runs. Each chunk is written to the object
//! store under the bot's lease generation before it is acknowledged, so a
//! worker lost mid-meeting leaves everything it sent so far. When the worker
//! says the recording is complete, the chunks are joined into one object and
//! checked against the worker's size and SHA-256. A recording whose worker
//! never closed it is joined by the control plane and kept as PARTIAL.
//! Chunks and the joined recording are stored sealed with the bot's data
//! key, each bound to its object key; sizes and hashes are of the audio.
//! All of a bot's objects live in its own store (`crate::residency`), the
//! one its tenant's region (or the tenant itself) was given.

use std::time::Duration;

use attache_protocol::DataKey;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::entity::names::RecordingStatus;
use crate::objects::{ObjectError, Objects};

pub(crate) const FORMAT: &str = "audio/ogg; codecs=opus";

/// Every object of one bot lives under this folder: its recording and
/// the chunks of each of its leases (retention deletes the folder).
pub(crate) fn bot_prefix(tenant_id: &str, bot_id: &str) -> String {
    format!("tenants/{tenant_id}/bots/{bot_id}/")
}

pub(crate) fn final_key(tenant_id: &str, bot_id: &str) -> String {
    format!("{}recording.ogg", bot_prefix(tenant_id, bot_id))
}

pub(crate) fn chunk_prefix(tenant_id: &str, bot_id: &str, generation: i64) -> String {
    format!("{}chunks/{generation}/", bot_prefix(tenant_id, bot_id))
}

/// Zero-padded offsets: the store's sorted listing is the byte order.
pub(crate) fn chunk_key(tenant_id: &str, bot_id: &str, generation: i64, offset: u64) -> String {
    format!(
        "{}{offset:016}",
        chunk_prefix(tenant_id, bot_id, generation)
    )
}

#[derive(Debug)]
pub(crate) struct Joined {
    pub size_bytes: i64,
    pub sha256: String,
    /// From the last Ogg page's granule position.
    pub duration_ms: Option<i64>,
}

/// Joins a recording's chunks into its final object. The chunks stay until
/// the caller has recorded the result (then [`drop_chunks`]), so a retry
/// joins the same bytes again. Opening, hashing and sealing the whole
/// recording run on a blocking thread, never on the async ones.
pub(crate) async fn join(
    objects: &Objects,
    key: &DataKey,
    tenant_id: &str,
    bot_id: &str,
    generation: i64,
) -> Result<Joined, ObjectError> {
    let keys = objects
        .list(&chunk_prefix(tenant_id, bot_id, generation))
        .await?;
    let mut sealed = Vec::with_capacity(keys.len());
    for chunk in keys {
        let offset: u64 = chunk
            .rsplit('/')
            .next()
            .and_then(|o| o.parse().ok())
            .ok_or(ObjectError::BadKey)?;
        let Some(bytes) = objects.get(&chunk).await? else {
            break;
        };
        sealed.push((offset, chunk, bytes));
    }
    let target = final_key(tenant_id, bot_id);
    let (key, bot, object_key) = (key.clone(), bot_id.to_string(), target.clone());
    let span = tracing::Span::current();
    let (joined, sealed_recording) = tokio::task::spawn_blocking(move || {
        let _g = span.entered();
        assemble(&key, &bot, &object_key, sealed)
    })
    .await
    .map_err(|e| ObjectError::Task(e.to_string()))?;
    objects.put(&target, sealed_recording).await?;
    Ok(joined)
}

/// Opens the chunks in offset order up to the first hole or chunk that
/// does not open, and seals the result for `object_key`.
fn assemble(
    key: &DataKey,
    bot_id: &str,
    object_key: &str,
    chunks: Vec<(u64, String, Vec<u8>)>,
) -> (Joined, Vec<u8>) {
    let mut bytes = Vec::new();
    for (offset, chunk, sealed) in chunks {
        if offset != bytes.len() as u64 {
            // A hole: what follows cannot be placed. Keep the prefix.
            tracing::warn!(
                bot_id,
                offset,
                have = bytes.len(),
                "recording has a hole; keeping what precedes it"
            );
            break;
        }
        match key.open(chunk.as_bytes(), &sealed) {
            Ok(plain) => bytes.extend_from_slice(&plain),
            Err(e) => {
                tracing::warn!(bot_id, offset, error = %e, "a recording chunk does not open; keeping what precedes it");
                break;
            }
        }
    }
    let joined = Joined {
        size_bytes: bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        duration_ms: ogg_opus_duration_ms(&bytes),
    };
    (joined, key.seal(object_key.as_bytes(), &bytes))
}

pub(crate) async fn drop_chunks(objects: &Objects, tenant_id: &str, bot_id: &str, generation: i64) {
    match objects
        .list(&chunk_prefix(tenant_id, bot_id, generation))
        .await
    {
        Ok(keys) => {
            for k in keys {
                if let Err(e) = objects.delete(&k).await {
                    tracing::warn!(bot_id, error = %e, "cannot delete a recording chunk");
                }
            }
        }
        Err(e) => tracing::warn!(bot_id, error = %e, "cannot list recording chunks"),
    }
}

/// Duration of an Ogg/Opus stream: the last page's granule position less
/// the pre-skip, at 48 kHz. `None` if the bytes are not Ogg/Opus.
pub(crate) fn ogg_opus_duration_ms(bytes: &[u8]) -> Option<i64> {
    let head = bytes.windows(8).position(|w| w == b"OpusHead")?;
    let pre_skip = u16::from_le_bytes([*bytes.get(head + 10)?, *bytes.get(head + 11)?]) as i64;
    // Walk the pages from the start: a capture pattern inside a packet is
    // not a page.
    let mut pos = 0;
    let mut granule = None;
    while pos + 27 <= bytes.len() && &bytes[pos..pos + 4] == b"OggS" {
        let g = i64::from_le_bytes(bytes[pos + 6..pos + 14].try_into().ok()?);
        let segments = bytes[pos + 26] as usize;
        let table = bytes.get(pos + 27..pos + 27 + segments)?;
        let body: usize = table.iter().map(|&l| l as usize).sum();
        let end = pos + 27 + segments + body;
        if end > bytes.len() {
            break;
        }
        if g >= 0 {
            granule = Some(g);
        }
        pos = end;
    }
    granule.map(|g| ((g - pre_skip).max(0)) / 48)
}

/// Closes, as PARTIAL, recordings whose bot ended without its worker
/// closing them (the worker was lost). Runs until `shutdown`.
pub(crate) async fn close_orphans(state: AppState, shutdown: CancellationToken) {
    let every = (state.config.heartbeat_interval * 5).max(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let orphans = match state.store.orphaned_recordings().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for unclosed recordings");
                continue;
            }
        };
        for r in orphans {
            let found = match state.store.bot(&r.bot_id).await {
                Ok(Some(b)) => match state.objects.for_bot(&b) {
                    // Joined in the bot's own store, where its chunks are.
                    Ok(objects) => state
                        .keys
                        .bot_key(&b)
                        .await
                        .map(|k| (k, objects.clone()))
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Ok(None) => Err("the bot is gone".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let (key, objects) = match found {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(bot_id = %r.bot_id, error = %e, "cannot open an unclosed recording");
                    continue;
                }
            };
            match join(&objects, &key, &r.tenant_id, &r.bot_id, r.generation).await {
                Ok(j) => {
                    let status = if j.size_bytes > 0 {
                        RecordingStatus::Partial
                    } else {
                        RecordingStatus::Empty
                    };
                    if let Err(e) = state
                        .store
                        .close_recording(
                            &r.bot_id,
                            status,
                            j.size_bytes,
                            j.duration_ms,
                            Some(j.sha256),
                        )
                        .await
                    {
                        tracing::warn!(bot_id = %r.bot_id, error = %e, "cannot close a recording");
                        continue;
                    }
                    tracing::info!(bot_id = %r.bot_id, size = j.size_bytes, "unclosed recording kept as partial");
                    drop_chunks(&objects, &r.tenant_id, &r.bot_id, r.generation).await;
                }
                Err(e) => {
                    tracing::warn!(bot_id = %r.bot_id, error = %e, "cannot join an unclosed recording")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(granule: i64, body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS".to_vec();
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&[0; 12]);
        p.push(1);
        p.push(body.len() as u8);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn duration_comes_from_the_last_page() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 1]);
        head.extend_from_slice(&312u16.to_le_bytes());
        head.extend_from_slice(&[0; 7]);
        let mut bytes = page(0, &head);
        bytes.extend(page(-1, b"a packet with OggS inside"));
        bytes.extend(page(48_000 + 312, b"audio"));
        bytes.extend(page(96_000 + 312, b"audio"));
        assert_eq!(ogg_opus_duration_ms(&bytes), Some(2_000));
        // A torn last page does not count.
        let mut torn = bytes.clone();
        torn.extend(&page(144_000 + 312, b"audio")[..20]);
        assert_eq!(ogg_opus_duration_ms(&torn), Some(2_000));
        assert_eq!(ogg_opus_duration_ms(b"not ogg"), None);
    }

    #[test]
    fn chunk_keys_sort_by_offset() {
        let mut keys: Vec<String> = [100_000u64, 9, 1_000]
            .iter()
            .map(|&o| chunk_key("t", "b", 1, o))
            .collect();
        keys.sort();
        assert!(keys[0].ends_with("0000000000000009"));
        assert!(keys[2].ends_with("0000000000100000"));
    }
}
