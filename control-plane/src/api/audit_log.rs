//! The audit trail as the API shows it: the caller's tenant's, or the
//! platform's for the operator.
//!
//! Read-only: entries are written by the audit extension as mutations
//! finish, never here, and a tenant's caller only ever sees its own trail.

use async_graphql::{Context, Object, Result, SimpleObject};
use attache_tenant_policy::Action;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use super::paging::page_size;
use crate::audit;

/// Most entries in one page.
const MAX_PAGE: i32 = 500;

#[derive(SimpleObject)]
pub(crate) struct AuditEntry {
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: Option<String>,
    /// `ok`, or the error code the action ended with (`FORBIDDEN`, …).
    outcome: String,
    hash: String,
}

impl From<audit::Entry> for AuditEntry {
    fn from(e: audit::Entry) -> AuditEntry {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            hash: e.hash,
        }
    }
}

#[derive(Default)]
pub(crate) struct AuditLogQuery;

#[Object]
impl AuditLogQuery {
    /// The caller's audit trail (the tenant's, or the platform's for the
    /// operator), newest first; `before` pages back by sequence number.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEntry>> {
        let (state, p, _) = guard(ctx, Action::ReadAudit)?;
        let first = page_size(first, MAX_PAGE)?;
        let trail = p.audit_tenant();
        let rows = audit::page(state.store.db(), trail.as_deref(), before, first)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}
