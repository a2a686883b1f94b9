//! The dispatch queue on Redis: one stream per region and pool, read by
//! every replica's dispatcher through one consumer group, so each queued
//! bot is offered to one replica instead of all of them racing for it.
//!
//! An entry names a bot and nothing else; the dispatcher reads the bot from
//! the database and takes its lease by compare-and-swap, which alone
//! decides: a lost entry delays a bot until the dispatcher finds it missing
//! (a group with due bots in the database, room here and nothing in its
//! stream re-adds them), and a duplicated one is dropped when its bot is no
//! longer queued. Entries are acknowledged and deleted once their bot is
//! leased or gone from the queue, so a stream holds only waiting bots. An
//! entry a replica read and never acknowledged (it died) is claimed by
//! another after `claim_idle` (XAUTOCLAIM). A set beside the streams holds
//! the bots with an entry, for that check.

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};

use super::RedisLink;
use super::redis_link::CALL_TIMEOUT;

/// The consumer group every replica's dispatcher reads through.
const GROUP: &str = "dispatchers";
/// The one field of an entry: the bot's id.
const BOT: &str = "bot";

/// One entry read from a group's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: String,
    pub bot_id: String,
}

/// Entries read from a group's stream, and which of them another replica
/// had read and never acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub entries: Vec<Entry>,
    pub claimed: usize,
}

#[derive(Clone)]
pub(crate) struct DispatchQueue {
    link: RedisLink,
    consumer: String,
    claim_idle: Duration,
}

impl DispatchQueue {
    pub(crate) fn new(link: RedisLink, consumer: &str, claim_idle: Duration) -> DispatchQueue {
        DispatchQueue {
            link,
            consumer: consumer.to_string(),
            claim_idle,
        }
    }

    /// The stream of a region's shared workers, or of a pool in it.
    pub(crate) fn key(&self, region: &str, pool: Option<&str>) -> String {
        self.link.name(&match pool {
            Some(p) => format!("dispatch:{region}:pool:{p}"),
            None => format!("dispatch:{region}"),
        })
    }

    fn members(&self) -> String {
        self.link.name("dispatch:queued")
    }

    /// Appends the commands that queue `bot_id` to `pipe` (the bus sends
    /// them with its notices, in one round trip).
    pub(crate) fn push(
        &self,
        pipe: &mut redis::Pipeline,
        region: &str,
        pool: Option<&str>,
        bot_id: &str,
    ) {
        pipe.cmd("XADD")
            .arg(self.key(region, pool))
            .arg("*")
            .arg(BOT)
            .arg(bot_id)
            .ignore();
        pipe.cmd("SADD").arg(self.members()).arg(bot_id).ignore();
    }

    /// Queues these bots of one group now.
    pub(crate) async fn add(
        &self,
        region: &str,
        pool: Option<&str>,
        bot_ids: &[String],
    ) -> Result<(), redis::RedisError> {
        let mut pipe = redis::pipe();
        for id in bot_ids {
            self.push(&mut pipe, region, pool, id);
        }
        let mut conn = self.conn()?;
        timed(pipe.query_async::<()>(&mut conn)).await
    }

    /// Which of `bot_ids` have no entry in any stream.
    pub(crate) async fn missing(
        &self,
        bot_ids: &[String],
    ) -> Result<Vec<String>, redis::RedisError> {
        if bot_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn()?;
        let present: Vec<bool> = timed(conn.smismember(self.members(), bot_ids)).await?;
        Ok(bot_ids
            .iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// Up to `n` entries of a group's stream for this replica: first those
    /// left unacknowledged longer than `claim_idle` (by a replica that died,
    /// or by this one), then new ones.
    pub(crate) async fn take(
        &self,
        region: &str,
        pool: Option<&str>,
        n: usize,
    ) -> Result<Taken, redis::RedisError> {
        let key = self.key(region, pool);
        let mut conn = self.conn()?;
        let mut taken = Taken::default();
        if n == 0 {
            return Ok(taken);
        }
        let idle = self.claim_idle.as_millis() as u64;
        let claimed = match timed(
            conn.xautoclaim_options::<_, _, _, _, _, StreamAutoClaimReply>(
                &key,
                GROUP,
                &self.consumer,
                idle,
                "0-0",
                StreamAutoClaimOptions::default().count(n),
            ),
        )
        .await
        {
            Ok(reply) => reply.claimed,
            Err(e) if e.code() == Some("NOGROUP") => {
                self.create_group(&mut conn, &key).await?;
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        taken.claimed = claimed.len();
        taken.entries.extend(claimed.iter().filter_map(entry));
        let want = n.saturating_sub(claimed.len());
        if want > 0 {
            let opts = StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(want);
            let reply: Option<StreamReadReply> =
                timed(conn.xread_options(&[&key], &[">"], &opts)).await?;
            for k in reply.map(|r| r.keys).unwrap_or_default() {
                taken.entries.extend(k.ids.iter().filter_map(entry));
            }
        }
        Ok(taken)
    }

    /// These entries are settled (their bot was leased, or is no longer
    /// queued): acknowledged, deleted, and their bots out of the set.
    pub(crate) async fn done(
        &self,
        region: &str,
        pool: Option<&str>,
        entries: &[Entry],
    ) -> Result<(), redis::RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.key(region, pool);
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let bots: Vec<&str> = entries.iter().map(|e| e.bot_id.as_str()).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(&key).arg(GROUP).arg(&ids).ignore();
        pipe.cmd("XDEL").arg(&key).arg(&ids).ignore();
        pipe.cmd("SREM").arg(self.members()).arg(&bots).ignore();
        let mut conn = self.conn()?;
        timed(pipe.query_async::<()>(&mut conn)).await
    }

    /// These entries' bots could not be placed here after all: they go to
    /// the back of the stream for any replica with room.
    pub(crate) async fn put_back(
        &self,
        region: &str,
        pool: Option<&str>,
        entries: &[Entry],
    ) -> Result<(), redis::RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.key(region, pool);
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XACK").arg(&key).arg(GROUP).arg(&ids).ignore();
        pipe.cmd("XDEL").arg(&key).arg(&ids).ignore();
        for e in entries {
            self.push(&mut pipe, region, pool, &e.bot_id);
        }
        let mut conn = self.conn()?;
        timed(pipe.query_async::<()>(&mut conn)).await
    }

    async fn create_group(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        key: &str,
    ) -> Result<(), redis::RedisError> {
        // From the stream's first entry: bots queued before any replica
        // read are offered too.
        match timed(conn.xgroup_create_mkstream::<_, _, _, ()>(key, GROUP, "0")).await {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    fn conn(&self) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
        self.link.connection().ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "no connection to Redis yet"))
        })
    }
}

/// An entry without a bot (not one of ours) reads as naming none: the
/// dispatcher finds no such bot and settles it.
fn entry(s: &StreamId) -> Option<Entry> {
    Some(Entry {
        id: s.id.clone(),
        bot_id: s.get::<String>(BOT).unwrap_or_default(),
    })
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, redis::RedisError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis did not answer in time",
            )))
        })
}
