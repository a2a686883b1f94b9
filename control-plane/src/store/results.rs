//! Result frames of many bots in one transaction: the ingest writer's
//! batches. Each frame passes the same fence as alone (the worker holds the
//! lease, the sequence number is the next one), is written in order, and
//! each bot's last sequence number moves once, by compare-and-swap, at the
//! end. If the transaction fails as a whole (a conflict, or one frame the
//! database refuses), every frame is applied again on its own, so one bad
//! frame costs only itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    Statement, TransactionTrait,
};

use super::fence::{self, Place};
use super::media::write_one;
use super::segments::Segments;
use super::{MediaWrite, Store, StoreError, Written};
use crate::entity::bot;

/// One frame's write, as its stream prepared it.
#[derive(Debug, Clone)]
pub(crate) struct ResultWrite {
    pub bot_id: String,
    /// The worker that sent it: only the lease holder may write.
    pub worker_id: String,
    pub generation: i64,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub write: MediaWrite,
}

impl Store {
    /// Applies `batch` (frames of many bots, each bot's in sequence order)
    /// and says what became of each, in the same order.
    pub(crate) async fn apply_results(
        &self,
        batch: Vec<ResultWrite>,
    ) -> Vec<Result<Written, StoreError>> {
        if batch.len() > 1 {
            match self.apply_together(batch.clone()).await {
                Ok(outcomes) => return outcomes,
                Err(e) => {
                    tracing::debug!(error = %e, frames = batch.len(), "result batch not applied together; one by one");
                }
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for r in batch {
            let bot = match self.bot(&r.bot_id).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    outcomes.push(Err(StoreError::NotFound));
                    continue;
                }
                Err(e) => {
                    outcomes.push(Err(e.into()));
                    continue;
                }
            };
            if let Err(e) = fence::holder(&bot, &r.worker_id, r.generation) {
                outcomes.push(Err(e));
                continue;
            }
            outcomes.push(
                self.apply_result(&r.bot_id, r.generation, r.seq, r.at, r.write)
                    .await,
            );
        }
        outcomes
    }

    /// The whole batch in one transaction, or an error and nothing written.
    async fn apply_together(
        &self,
        batch: Vec<ResultWrite>,
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let txn = self.db.begin().await?;
        let ids: Vec<String> = {
            let mut ids: Vec<String> = batch.iter().map(|r| r.bot_id.clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let mut bots: HashMap<String, (bot::Model, i64)> = bot::Entity::find()
            .filter(bot::Column::Id.is_in(ids))
            .all(&txn)
            .await?
            .into_iter()
            .map(|b| {
                let first = b.last_result_seq;
                (b.id.clone(), (b, first))
            })
            .collect();
        let mut segments = Segments::read(
            &txn,
            batch.iter().filter_map(|r| match &r.write {
                MediaWrite::Transcript(s) => Some((r.bot_id.clone(), s.key.clone())),
                _ => None,
            }),
        )
        .await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for r in batch {
            let Some((bot, _)) = bots.get_mut(&r.bot_id) else {
                outcomes.push(Err(StoreError::NotFound));
                continue;
            };
            if let Err(e) = fence::holder(bot, &r.worker_id, r.generation) {
                outcomes.push(Err(e));
                continue;
            }
            match fence::sequence(bot, r.seq) {
                Ok(Place::Duplicate) => outcomes.push(Ok(Written::Duplicate)),
                Ok(Place::Next) => {
                    let last = r.write.last_seq(r.seq);
                    let written = match r.write {
                        MediaWrite::Transcript(s) => segments.put(bot, r.generation, r.at, s),
                        write => write_one(&txn, bot, r.generation, r.at, write).await?,
                    };
                    outcomes.push(Ok(written));
                    bot.last_result_seq = last;
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        segments.write(&txn).await?;
        let mut moves: Vec<_> = bots
            .into_values()
            .filter(|(bot, first)| bot.last_result_seq != *first)
            .map(|(bot, first)| (bot.id, bot.lease_generation, first, bot.last_result_seq))
            .collect();
        moves.sort();
        move_sequences(&txn, &moves).await?;
        txn.commit().await?;
        Ok(outcomes)
    }
}

/// Moves each bot's last result sequence number from `first` to `last`
/// (id, lease generation, first, last), by compare-and-swap: one
/// statement per few hundred bots, and a conflict if any bot's row moved
/// meanwhile.
async fn move_sequences(
    txn: &DatabaseTransaction,
    moves: &[(String, i64, i64, i64)],
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    for chunk in moves.chunks(500) {
        let mut n = 0;
        let mut place = || {
            n += 1;
            match backend {
                DbBackend::Postgres => format!("${n}"),
                _ => "?".to_string(),
            }
        };
        let rows: Vec<String> = chunk
            .iter()
            .map(|_| {
                format!(
                    "({}, CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT))",
                    place(),
                    place(),
                    place(),
                    place()
                )
            })
            .collect();
        let sql = format!(
            "UPDATE bots SET last_result_seq = v.column4 FROM (VALUES {}) AS v \
             WHERE bots.id = v.column1 AND bots.lease_generation = v.column2 \
             AND bots.last_result_seq = v.column3",
            rows.join(", ")
        );
        let values = chunk.iter().flat_map(|(id, generation, first, last)| {
            [
                id.clone().into(),
                (*generation).into(),
                (*first).into(),
                (*last).into(),
            ]
        });
        let moved = txn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        if moved.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::Conflict);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{lease, new_bot, postgres_store_with_tenant, store_with_tenant};
    use super::*;

    /// Each case on SQLite and on PostgreSQL, whose statements differ.
    macro_rules! on_both {
        ($case:ident) => {
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    super::$case(super::store_with_tenant().await).await
                }
                #[tokio::test]
                async fn postgres() {
                    if let Some(store) = super::postgres_store_with_tenant().await {
                        super::$case(store).await
                    }
                }
            }
        };
    }

    fn frame(bot: &str, worker: &str, generation: i64, seq: i64) -> ResultWrite {
        ResultWrite {
            bot_id: bot.into(),
            worker_id: worker.into(),
            generation,
            seq,
            at: crate::store::now(),
            write: MediaWrite::Warning {
                code: "NO_AUDIO".into(),
                detail: "silent".into(),
            },
        }
    }

    on_both!(one_transaction_applies_each_frame_by_its_own_fence);
    async fn one_transaction_applies_each_frame_by_its_own_fence(store: Store) {
        for id in ["a", "b"] {
            store.scoped("t1").insert_bot(new_bot(id)).await.unwrap();
            store.transition(lease(id, "w1", 0)).await.unwrap();
        }
        let g = store.bot("a").await.unwrap().unwrap().lease_generation;
        let outcomes = store
            .apply_results(vec![
                frame("a", "w1", g, 1),
                frame("b", "w1", g, 1),
                frame("a", "w1", g, 2),
                frame("a", "w1", g, 2),     // a replay: acknowledged again
                frame("b", "w1", g, 3),     // a gap: refused, b stays at 1
                frame("b", "w2", g, 2),     // not the holder
                frame("b", "w1", g + 1, 2), // not the lease
                frame("nobody", "w1", g, 1),
            ])
            .await;
        let kinds: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Ok(w) => format!("{w:?}"),
                Err(StoreError::Gap { .. }) => "Gap".into(),
                Err(StoreError::Stale { .. }) => "Stale".into(),
                Err(StoreError::NotFound) => "NotFound".into(),
                Err(e) => panic!("{e}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Applied",
                "Applied",
                "Applied",
                "Duplicate",
                "Gap",
                "Stale",
                "Stale",
                "NotFound"
            ]
        );
        let seq = |id: &'static str| {
            let store = store.clone();
            async move { store.bot(id).await.unwrap().unwrap().last_result_seq }
        };
        assert_eq!((seq("a").await, seq("b").await), (2, 1));

        // The next batch goes on from there.
        let outcomes = store
            .apply_results(vec![frame("b", "w1", g, 2), frame("a", "w1", g, 3)])
            .await;
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Written::Applied))));
        assert_eq!((seq("a").await, seq("b").await), (3, 2));
    }

    fn segment(bot: &str, g: i64, seq: i64, key: &str, text: &str, is_final: bool) -> ResultWrite {
        ResultWrite {
            write: MediaWrite::Transcript(crate::store::Segment {
                key: key.into(),
                start_ms: seq * 1_000,
                end_ms: seq * 1_000 + 900,
                speaker_sealed: None,
                text_sealed: text.as_bytes().to_vec(),
                confidence: 0.9,
                language: None,
                is_final,
            }),
            ..frame(bot, "w1", g, seq)
        }
    }

    on_both!(a_batchs_segments_are_written_together_in_frame_order);
    async fn a_batchs_segments_are_written_together_in_frame_order(store: Store) {
        for id in ["a", "b"] {
            store.scoped("t1").insert_bot(new_bot(id)).await.unwrap();
            store.transition(lease(id, "w1", 0)).await.unwrap();
        }
        let g = store.bot("a").await.unwrap().unwrap().lease_generation;
        // Stored before the batch: a's "k1" (partial) and "k2" (final).
        let before = store
            .apply_results(vec![
                segment("a", g, 1, "k1", "hel", false),
                segment("a", g, 2, "k2", "done", true),
            ])
            .await;
        assert!(before.iter().all(|o| matches!(o, Ok(Written::Applied))));
        let outcomes = store
            .apply_results(vec![
                segment("a", g, 3, "k1", "hello", true), // the stored partial made final
                segment("a", g, 4, "k2", "late", false), // a partial after its final
                segment("b", g, 1, "k1", "new", false),  // the same key, another bot
                segment("b", g, 2, "k1", "newer", true), // new in this batch, then final
                segment("b", g, 3, "k1", "stale", false), // refused in memory too
                segment("b", g, 4, "k3", "third", true),
            ])
            .await;
        let kinds: Vec<_> = outcomes.into_iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            kinds,
            [
                Written::Applied,
                Written::Refused("a partial segment after its final"),
                Written::Applied,
                Written::Applied,
                Written::Refused("a partial segment after its final"),
                Written::Applied,
            ]
        );
        let mut rows: Vec<(String, String, String, bool)> =
            crate::entity::transcript_segment::Entity::find()
                .all(store.db())
                .await
                .unwrap()
                .into_iter()
                .map(|r| {
                    let text = String::from_utf8(r.text_sealed).unwrap();
                    (r.bot_id, r.segment_key, text, r.is_final)
                })
                .collect();
        rows.sort();
        let row = |b: &str, k: &str, t: &str, f: bool| (b.into(), k.into(), t.into(), f);
        assert_eq!(
            rows,
            [
                row("a", "k1", "hello", true),
                row("a", "k2", "done", true),
                row("b", "k1", "newer", true),
                row("b", "k3", "third", true),
            ]
        );
        let seq = |id: &'static str| {
            let store = store.clone();
            async move { store.bot(id).await.unwrap().unwrap().last_result_seq }
        };
        assert_eq!((seq("a").await, seq("b").await), (4, 4));
    }

    on_both!(a_bot_whose_row_moved_meanwhile_is_a_conflict_for_the_whole_move);
    async fn a_bot_whose_row_moved_meanwhile_is_a_conflict_for_the_whole_move(store: Store) {
        for id in ["a", "b"] {
            store.scoped("t1").insert_bot(new_bot(id)).await.unwrap();
            store.transition(lease(id, "w1", 0)).await.unwrap();
        }
        let g = store.bot("a").await.unwrap().unwrap().lease_generation;
        let txn = store.db().begin().await.unwrap();
        // b's sequence moved on since the batch read it: the statement
        // moves a but not b, and the whole batch is refused.
        bot::Entity::update_many()
            .filter(bot::Column::Id.eq("b"))
            .col_expr(
                bot::Column::LastResultSeq,
                sea_orm::sea_query::Expr::value(7),
            )
            .exec(&txn)
            .await
            .unwrap();
        let moves = [("a".to_string(), g, 0, 2), ("b".to_string(), g, 0, 3)];
        assert!(matches!(
            move_sequences(&txn, &moves).await,
            Err(StoreError::Conflict)
        ));
        drop(txn);
        let txn = store.db().begin().await.unwrap();
        move_sequences(&txn, &moves).await.unwrap();
        txn.commit().await.unwrap();
        let seq = |id: &'static str| {
            let store = store.clone();
            async move { store.bot(id).await.unwrap().unwrap().last_result_seq }
        };
        assert_eq!((seq("a").await, seq("b").await), (2, 3));
    }

    on_both!(a_skipped_range_is_one_warning_and_the_sequence_goes_on_after_it);
    async fn a_skipped_range_is_one_warning_and_the_sequence_goes_on_after_it(store: Store) {
        store.scoped("t1").insert_bot(new_bot("a")).await.unwrap();
        store.transition(lease("a", "w1", 0)).await.unwrap();
        let g = store.bot("a").await.unwrap().unwrap().lease_generation;
        let skipped = ResultWrite {
            write: MediaWrite::Skipped {
                through: 9,
                detail: "8 results lost".into(),
            },
            ..frame("a", "w1", g, 2)
        };
        let outcomes = store
            .apply_results(vec![
                frame("a", "w1", g, 1),
                skipped,
                frame("a", "w1", g, 10),
            ])
            .await;
        assert!(
            outcomes.iter().all(|o| matches!(o, Ok(Written::Applied))),
            "{outcomes:?}"
        );
        assert_eq!(store.bot("a").await.unwrap().unwrap().last_result_seq, 10);
        // Alone too (a batch of one takes the single-frame path).
        let skipped = ResultWrite {
            write: MediaWrite::Skipped {
                through: 20,
                detail: "10 results lost".into(),
            },
            ..frame("a", "w1", g, 11)
        };
        assert!(matches!(
            store.apply_results(vec![skipped]).await[0],
            Ok(Written::Applied)
        ));
        assert_eq!(store.bot("a").await.unwrap().unwrap().last_result_seq, 20);
        let warnings: Vec<String> = crate::entity::bot_warning::Entity::find()
            .all(store.db())
            .await
            .unwrap()
            .into_iter()
            .map(|w| w.code)
            .collect();
        assert_eq!(
            warnings,
            ["NO_AUDIO", "RESULTS_LOST", "NO_AUDIO", "RESULTS_LOST"]
        );
    }
}
