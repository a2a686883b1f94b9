//! The audit log: who did what, to what, when, and how it went, for every
//! mutation and every console sign-in.
//!
//! Entries are only ever appended. Each carries the hash of the one before
//! it, so editing or deleting an entry breaks the chain from there on, and
//! [`verify`] (`attache admin verify-audit`) says where. The chain is one for
//! the whole deployment; tenants read the entries of their own tenant.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::access::Principal;
use crate::entity::audit_entry;
use crate::store::{Store, now};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One thing to record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// None: the platform's own trail.
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
}

/// An entry as exported (one JSON line each) and as hashed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<audit_entry::Model> for Entry {
    fn from(m: audit_entry::Model) -> Entry {
        Entry {
            seq: m.seq,
            at: m.at,
            tenant_id: m.tenant_id,
            actor: m.actor,
            action: m.action,
            target: m.target,
            outcome: m.outcome,
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}

/// The hash of an entry: SHA-256 over a JSON array of every field but the
/// hash itself (JSON strings cannot run into each other).
fn entry_hash(
    seq: i64,
    at: DateTime<Utc>,
    r: (&Option<String>, &str, &str, &Option<String>, &str),
    prev: &str,
) -> String {
    let (tenant, actor, action, target, outcome) = r;
    let body = serde_json::json!([
        seq,
        at.timestamp_millis(),
        tenant,
        actor,
        action,
        target,
        outcome,
        prev
    ]);
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// Appends entries, one at a time.
#[derive(Clone)]
pub(crate) struct AuditLog {
    store: Store,
    lock: Arc<Mutex<()>>,
}

impl AuditLog {
    pub(crate) fn new(store: Store) -> AuditLog {
        AuditLog {
            store,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Appends `r` after the current head. Another control plane appending
    /// at the same moment takes the same sequence number and one insert
    /// fails on the primary key; the loser reads the new head and tries again.
    pub(crate) async fn append(&self, r: Record) -> Result<Entry, DbErr> {
        let _one_at_a_time = self.lock.lock().await;
        let db = self.store.db();
        let mut last_err = None;
        for _ in 0..5 {
            let head = audit_entry::Entity::find()
                .order_by_desc(audit_entry::Column::Seq)
                .limit(1)
                .one(db)
                .await?;
            let (seq, prev) = match head {
                Some(h) => (h.seq + 1, h.hash),
                None => (1, GENESIS.to_string()),
            };
            let at = now();
            let hash = entry_hash(
                seq,
                at,
                (&r.tenant_id, &r.actor, &r.action, &r.target, &r.outcome),
                &prev,
            );
            let row = audit_entry::ActiveModel {
                seq: Set(seq),
                at: Set(at),
                tenant_id: Set(r.tenant_id.clone()),
                actor: Set(r.actor.clone()),
                action: Set(r.action.clone()),
                target: Set(r.target.clone()),
                outcome: Set(r.outcome.clone()),
                prev_hash: Set(prev),
                hash: Set(hash),
            };
            match row.insert(db).await {
                Ok(m) => return Ok(m.into()),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| DbErr::Custom("audit append".into())))
    }

    /// Appends, and logs rather than fails when the database refuses: the
    /// caller's work is already done and its answer must still go out.
    pub(crate) async fn record(&self, r: Record) {
        let action = r.action.clone();
        if let Err(e) = self.append(r).await {
            tracing::error!(error = %e, action, "cannot append to the audit log");
        }
    }
}

/// A page of one tenant's entries (or the platform's, for `None`), newest
/// first, before `before` if given.
pub(crate) async fn page(
    db: &DatabaseConnection,
    tenant_id: Option<&str>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Entry>, DbErr> {
    let mut q = audit_entry::Entity::find();
    q = match tenant_id {
        Some(t) => q.filter(audit_entry::Column::TenantId.eq(t)),
        None => q.filter(audit_entry::Column::TenantId.is_null()),
    };
    if let Some(b) = before {
        q = q.filter(audit_entry::Column::Seq.lt(b));
    }
    let rows = q
        .order_by_desc(audit_entry::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Entry::from).collect())
}

/// Entries in order from `after` (exclusive), for export and verification.
pub(crate) async fn after(
    db: &DatabaseConnection,
    tenant_id: Option<Option<&str>>,
    after: i64,
    limit: u64,
) -> Result<Vec<Entry>, DbErr> {
    let mut q = audit_entry::Entity::find().filter(audit_entry::Column::Seq.gt(after));
    match tenant_id {
        Some(Some(t)) => q = q.filter(audit_entry::Column::TenantId.eq(t)),
        Some(None) => q = q.filter(audit_entry::Column::TenantId.is_null()),
        None => {}
    }
    let rows = q
        .order_by_asc(audit_entry::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Entry::from).collect())
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is in place: how many, and the head's hash (keep it
    /// somewhere else to detect a truncated tail later).
    Intact { entries: i64, head: String },
    /// The first entry where the chain breaks, and how.
    Broken { seq: i64, reason: String },
}

/// Walks the whole chain.
pub(crate) async fn verify(db: &DatabaseConnection) -> Result<Verdict, DbErr> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    loop {
        let batch = after(db, None, expected_seq - 1, 1000).await?;
        if batch.is_empty() {
            return Ok(Verdict::Intact {
                entries: expected_seq - 1,
                head: prev,
            });
        }
        for e in batch {
            if e.seq != expected_seq {
                return Ok(Verdict::Broken {
                    seq: expected_seq,
                    reason: format!("entry {expected_seq} is missing (next is {})", e.seq),
                });
            }
            if e.prev_hash != prev {
                return Ok(Verdict::Broken {
                    seq: e.seq,
                    reason: "it does not follow the entry before it".into(),
                });
            }
            let want = entry_hash(
                e.seq,
                e.at,
                (&e.tenant_id, &e.actor, &e.action, &e.target, &e.outcome),
                &e.prev_hash,
            );
            if e.hash != want {
                return Ok(Verdict::Broken {
                    seq: e.seq,
                    reason: "its content does not match its hash".into(),
                });
            }
            prev = e.hash;
            expected_seq += 1;
        }
    }
}

/// What a mutation names as its target, noted by its resolver.
#[derive(Default)]
pub(crate) struct TargetNote(std::sync::Mutex<Option<String>>);

/// Notes what the running mutation acts on, for its audit entry.
pub(crate) fn note_target(ctx: &async_graphql::Context<'_>, target: impl Into<String>) {
    if let Some(n) = ctx.data_opt::<TargetNote>()
        && let Ok(mut slot) = n.0.lock()
    {
        *slot = Some(target.into());
    }
}

/// Records every root mutation field with its outcome: `ok`, or the error
/// code it failed with (`FORBIDDEN` for a denial).
pub(crate) struct AuditMutations;

impl ExtensionFactory for AuditMutations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AuditMutations)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for AuditMutations {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root_mutation = info.parent_type == "MutationRoot" && info.path_node.parent.is_none();
        if !root_mutation {
            return next.run(ctx, info).await;
        }
        let action = info.name.to_string();
        let result = next.run(ctx, info).await;
        let (Some(log), Some(principal)) =
            (ctx.data_opt::<AuditLog>(), ctx.data_opt::<Principal>())
        else {
            return result;
        };
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e
                .extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "BAD_USER_INPUT".to_string()),
        };
        let target = ctx
            .data_opt::<TargetNote>()
            .and_then(|n| n.0.lock().ok().and_then(|mut s| s.take()));
        log.record(Record {
            tenant_id: principal.audit_tenant(),
            actor: principal.actor.label(),
            action,
            target,
            outcome,
        })
        .await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::Expr;

    async fn log() -> (Store, AuditLog) {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let log = AuditLog::new(store.clone());
        for i in 0..5 {
            log.append(Record {
                tenant_id: Some("t1".into()),
                actor: "user:alice@acme.test".into(),
                action: format!("action{i}"),
                target: Some(format!("bot:{i}")),
                outcome: "ok".into(),
            })
            .await
            .unwrap();
        }
        (store, log)
    }

    #[tokio::test]
    async fn an_untouched_chain_verifies() {
        let (store, log) = log().await;
        let last = log
            .append(Record {
                tenant_id: None,
                actor: "operator:op@example.test".into(),
                action: "createTenant".into(),
                target: None,
                outcome: "ok".into(),
            })
            .await
            .unwrap();
        assert_eq!(last.seq, 6);
        assert_eq!(
            verify(store.db()).await.unwrap(),
            Verdict::Intact {
                entries: 6,
                head: last.hash
            }
        );
    }

    #[tokio::test]
    async fn an_edited_entry_is_found() {
        let (store, _) = log().await;
        audit_entry::Entity::update_many()
            .col_expr(audit_entry::Column::Outcome, Expr::value("FORBIDDEN"))
            .filter(audit_entry::Column::Seq.eq(3))
            .exec(store.db())
            .await
            .unwrap();
        match verify(store.db()).await.unwrap() {
            Verdict::Broken { seq, reason } => {
                assert_eq!(seq, 3);
                assert!(reason.contains("hash"), "{reason}");
            }
            v => panic!("{v:?}"),
        }
    }

    #[tokio::test]
    async fn a_deleted_entry_is_found() {
        let (store, _) = log().await;
        audit_entry::Entity::delete_many()
            .filter(audit_entry::Column::Seq.eq(2))
            .exec(store.db())
            .await
            .unwrap();
        assert_eq!(
            verify(store.db()).await.unwrap(),
            Verdict::Broken {
                seq: 2,
                reason: "entry 2 is missing (next is 3)".into()
            }
        );
    }

    #[tokio::test]
    async fn a_rewritten_chain_with_a_recomputed_hash_still_breaks_at_the_next() {
        let (store, _) = log().await;
        // Edit entry 2 and fix its own hash: entry 3 no longer follows it.
        let e2 = after(store.db(), None, 1, 1).await.unwrap().remove(0);
        let forged_target = Some("bot:other".to_string());
        let forged = entry_hash(
            e2.seq,
            e2.at,
            (
                &e2.tenant_id,
                &e2.actor,
                &e2.action,
                &forged_target,
                &e2.outcome,
            ),
            &e2.prev_hash,
        );
        audit_entry::Entity::update_many()
            .col_expr(audit_entry::Column::Target, Expr::value("bot:other"))
            .col_expr(audit_entry::Column::Hash, Expr::value(forged))
            .filter(audit_entry::Column::Seq.eq(2))
            .exec(store.db())
            .await
            .unwrap();
        assert_eq!(
            verify(store.db()).await.unwrap(),
            Verdict::Broken {
                seq: 3,
                reason: "it does not follow the entry before it".into()
            }
        );
    }

    #[tokio::test]
    async fn pages_are_per_tenant() {
        let (store, log) = log().await;
        log.append(Record {
            tenant_id: Some("t2".into()),
            actor: "key:abc".into(),
            action: "createBot".into(),
            target: None,
            outcome: "ok".into(),
        })
        .await
        .unwrap();
        let t1 = page(store.db(), Some("t1"), None, 100).await.unwrap();
        assert_eq!(t1.len(), 5);
        assert!(t1.windows(2).all(|w| w[0].seq > w[1].seq));
        let older = page(store.db(), Some("t1"), Some(3), 100).await.unwrap();
        assert_eq!(older.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(
            page(store.db(), Some("t2"), None, 100).await.unwrap().len(),
            1
        );
        assert!(page(store.db(), None, None, 100).await.unwrap().is_empty());
    }
}
