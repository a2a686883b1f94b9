//! The webhook outbox. Events are written in the same transaction as the
//! change they announce (a status, a closed recording), one delivery per
//! subscribed endpoint, so an event is never announced for a change that
//! rolled back nor lost for one that committed. The delivery loop
//! (`crate::webhooks`) sends them in order per endpoint and bot.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde_json::json;

use super::{Scoped, Store, now};
use crate::entity::{
    bot, bot_event, tenant_notice, transcript_segment, webhook_attempt, webhook_delivery,
    webhook_endpoint,
};

pub(crate) const STATUS_CHANGED: &str = "bot.status_changed";
pub(crate) const BOT_ENDED: &str = "bot.ended";
pub(crate) const RECORDING_READY: &str = "recording.ready";
pub(crate) const TRANSCRIPT_READY: &str = "transcript.ready";
pub(crate) const ENDPOINT_DISABLED: &str = "webhook_endpoint.disabled";

/// Every event type an endpoint may subscribe to.
pub(crate) const EVENT_TYPES: [&str; 5] = [
    STATUS_CHANGED,
    BOT_ENDED,
    RECORDING_READY,
    TRANSCRIPT_READY,
    ENDPOINT_DISABLED,
];

/// The body of one event, as sent.
pub(crate) fn event_payload(
    event_type: &str,
    at: DateTime<Utc>,
    data: serde_json::Value,
) -> String {
    json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// The tenant's enabled endpoints.
async fn endpoints<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await
}

fn subscribes(e: &webhook_endpoint::Model, event_type: &str) -> bool {
    e.event_types.split(',').any(|t| t == event_type)
}

/// Queues `event_type` for every enabled endpoint of the tenant that
/// subscribes to it.
pub(super) async fn enqueue<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    bot_id: Option<&str>,
    event_type: &str,
    payload: String,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let endpoints = endpoints(db, tenant_id).await?;
    enqueue_to(db, &endpoints, bot_id, event_type, payload, at).await
}

/// Queues `event_type` for those of `endpoints` (one tenant's) that
/// subscribe to it.
async fn enqueue_to<C: ConnectionTrait>(
    db: &C,
    endpoints: &[webhook_endpoint::Model],
    bot_id: Option<&str>,
    event_type: &str,
    payload: String,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    for e in endpoints.iter().filter(|e| subscribes(e, event_type)) {
        webhook_delivery::ActiveModel {
            webhook_id: Set(format!("msg_{}", uuid::Uuid::new_v4().simple())),
            tenant_id: Set(e.tenant_id.clone()),
            endpoint_id: Set(e.id.clone()),
            bot_id: Set(bot_id.map(String::from)),
            event_type: Set(event_type.to_string()),
            payload: Set(payload.clone()),
            status: Set("PENDING".into()),
            attempts: Set(0),
            next_attempt_at: Set(at),
            last_error: Set(None),
            created_at: Set(at),
            delivered_at: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Events of one stored status change. The tenant's endpoints are read
/// once for all of them; a bot's segments are counted only for an
/// endpoint that wants to hear of its transcript.
pub(super) async fn on_status<C: ConnectionTrait>(
    db: &C,
    b: &bot::Model,
    ev: &bot_event::Model,
) -> Result<(), DbErr> {
    let endpoints = endpoints(db, &b.tenant_id).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let data = json!({
        "botId": b.id,
        "status": ev.status,
        "reason": ev.reason,
        "detail": ev.detail,
        "at": ev.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let to = |event_type: &'static str, data: serde_json::Value| {
        enqueue_to(
            db,
            &endpoints,
            Some(&b.id),
            event_type,
            event_payload(event_type, ev.at, data),
            ev.at,
        )
    };
    to(STATUS_CHANGED, data.clone()).await?;
    if !ev.status.is_final() {
        return Ok(());
    }
    to(BOT_ENDED, data).await?;
    if !endpoints.iter().any(|e| subscribes(e, TRANSCRIPT_READY)) {
        return Ok(());
    }
    let segments = transcript_segment::Entity::find()
        .filter(transcript_segment::Column::BotId.eq(b.id.clone()))
        .filter(transcript_segment::Column::IsFinal.eq(true))
        .count(db)
        .await?;
    if segments > 0 {
        let data = json!({ "botId": b.id, "segments": segments });
        to(TRANSCRIPT_READY, data).await?;
    }
    Ok(())
}

/// The event of a closed recording (READY, PARTIAL, CORRUPT or EMPTY).
pub(super) async fn on_recording<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    bot_id: &str,
    status: &str,
    size_bytes: i64,
    duration_ms: Option<i64>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let data = json!({
        "botId": bot_id,
        "status": status,
        "sizeBytes": size_bytes,
        "durationMs": duration_ms,
    });
    enqueue(
        db,
        tenant_id,
        Some(bot_id),
        RECORDING_READY,
        event_payload(RECORDING_READY, at, data),
        at,
    )
    .await
}

/// A delivery due now, with where it goes.
#[derive(Debug, Clone)]
pub(crate) struct DueDelivery {
    pub delivery: webhook_delivery::Model,
    pub endpoint: webhook_endpoint::Model,
}

/// What a tenant registers.
#[derive(Debug, Clone)]
pub(crate) struct EndpointInput {
    pub url: String,
    pub event_types: Vec<String>,
    pub secret_sealed: Vec<u8>,
}

impl Store {
    /// Deliveries to attempt now: for each (endpoint, bot), only the oldest
    /// pending one, so a bot's events arrive in order.
    pub(crate) async fn due_deliveries(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, DbErr> {
        let pending = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Status.eq("PENDING"))
            .order_by_asc(webhook_delivery::Column::Id)
            .limit(5_000)
            .all(&self.db)
            .await?;
        let mut seen = std::collections::HashSet::new();
        let mut endpoints = std::collections::HashMap::new();
        let mut out = Vec::new();
        for d in pending {
            let queue = (
                d.endpoint_id.clone(),
                d.bot_id.clone().unwrap_or_else(|| d.webhook_id.clone()),
            );
            // The head of its queue, due, and not being sent elsewhere.
            if !seen.insert(queue)
                || d.next_attempt_at > at
                || d.claimed_until.is_some_and(|c| c > at)
            {
                continue;
            }
            if !endpoints.contains_key(&d.endpoint_id) {
                let e = webhook_endpoint::Entity::find_by_id(d.endpoint_id.clone())
                    .one(&self.db)
                    .await?;
                endpoints.insert(d.endpoint_id.clone(), e);
            }
            if let Some(Some(e)) = endpoints.get(&d.endpoint_id)
                && e.enabled
            {
                out.push(DueDelivery {
                    delivery: d,
                    endpoint: e.clone(),
                });
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Records a successful attempt.
    /// Claims a due delivery for one attempt by this replica, until
    /// `until`: true if it is this replica's to send. Another replica that
    /// read it too finds it changed (its next attempt moved) and leaves
    /// it (its claim is taken); a replica that dies mid-attempt leaves it
    /// due again at `until`.
    pub(crate) async fn claim_delivery(
        &self,
        d: &webhook_delivery::Model,
        until: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let at = now();
        let r = webhook_delivery::Entity::update_many()
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .filter(webhook_delivery::Column::Status.eq("PENDING"))
            .filter(webhook_delivery::Column::Attempts.eq(d.attempts))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(at))
            .filter(
                Condition::any()
                    .add(webhook_delivery::Column::ClaimedUntil.is_null())
                    .add(webhook_delivery::Column::ClaimedUntil.lte(at)),
            )
            .col_expr(webhook_delivery::Column::ClaimedUntil, Expr::value(until))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    pub(crate) async fn delivered(
        &self,
        d: &webhook_delivery::Model,
        status_code: i32,
        duration_ms: i64,
    ) -> Result<(), DbErr> {
        let at = now();
        let txn = self.db.begin().await?;
        // An endpoint answering again after failing: what waits out its
        // backoff goes now, in order, not each at its own retry time.
        let was_failing = webhook_endpoint::Entity::find_by_id(d.endpoint_id.clone())
            .one(&txn)
            .await?
            .is_some_and(|e| e.failing_since.is_some());
        if was_failing {
            webhook_delivery::Entity::update_many()
                .filter(webhook_delivery::Column::EndpointId.eq(d.endpoint_id.clone()))
                .filter(webhook_delivery::Column::Status.eq("PENDING"))
                .filter(webhook_delivery::Column::Id.ne(d.id))
                .filter(webhook_delivery::Column::NextAttemptAt.gt(at))
                .filter(webhook_delivery::Column::Attempts.gt(0))
                .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(at))
                .exec(&txn)
                .await?;
        }
        attempt(&txn, d, at, Some(status_code), None, duration_ms).await?;
        webhook_delivery::Entity::update_many()
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .col_expr(webhook_delivery::Column::Status, Expr::value("DELIVERED"))
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::value(d.attempts + 1),
            )
            .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(at))
            .col_expr(
                webhook_delivery::Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .exec(&txn)
            .await?;
        webhook_endpoint::Entity::update_many()
            .filter(webhook_endpoint::Column::Id.eq(d.endpoint_id.clone()))
            .col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .exec(&txn)
            .await?;
        txn.commit().await
    }

    /// Records a failed attempt: retried at `retry_at`, or given up on
    /// (`None`). Disables the endpoint once it has failed since longer than
    /// `disable_after`, tells the tenant, and says so (true).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn failed_attempt(
        &self,
        d: &webhook_delivery::Model,
        status_code: Option<i32>,
        error: &str,
        duration_ms: i64,
        retry_at: Option<DateTime<Utc>>,
        disable_after: chrono::Duration,
    ) -> Result<bool, DbErr> {
        let at = now();
        let txn = self.db.begin().await?;
        attempt(&txn, d, at, status_code, Some(error), duration_ms).await?;
        let mut q = webhook_delivery::Entity::update_many()
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::value(d.attempts + 1),
            )
            .col_expr(webhook_delivery::Column::LastError, Expr::value(error))
            .col_expr(
                webhook_delivery::Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        q = match retry_at {
            Some(t) => q.col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(t)),
            None => q.col_expr(webhook_delivery::Column::Status, Expr::value("FAILED")),
        };
        q.exec(&txn).await?;
        let endpoint = webhook_endpoint::Entity::find_by_id(d.endpoint_id.clone())
            .one(&txn)
            .await?;
        let mut disabled = false;
        if let Some(e) = endpoint {
            let since = e.failing_since.unwrap_or(at);
            if e.failing_since.is_none() {
                webhook_endpoint::Entity::update_many()
                    .filter(webhook_endpoint::Column::Id.eq(e.id.clone()))
                    .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(at))
                    .exec(&txn)
                    .await?;
            } else if e.enabled && at - since >= disable_after {
                let reason = format!(
                    "every delivery failed since {}; last error: {error}",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                webhook_endpoint::Entity::update_many()
                    .filter(webhook_endpoint::Column::Id.eq(e.id.clone()))
                    .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
                    .col_expr(
                        webhook_endpoint::Column::DisabledReason,
                        Expr::value(reason.clone()),
                    )
                    .exec(&txn)
                    .await?;
                tenant_notice::ActiveModel {
                    tenant_id: Set(e.tenant_id.clone()),
                    kind: Set(ENDPOINT_DISABLED.into()),
                    message: Set(format!(
                        "Webhook endpoint {} ({}) was disabled: {reason}",
                        e.id, e.url
                    )),
                    at: Set(at),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                let data = json!({ "endpointId": e.id, "url": e.url, "reason": reason });
                enqueue(
                    &txn,
                    &e.tenant_id,
                    None,
                    ENDPOINT_DISABLED,
                    event_payload(ENDPOINT_DISABLED, at, data),
                    at,
                )
                .await?;
                disabled = true;
            }
        }
        txn.commit().await?;
        Ok(disabled)
    }

    pub(crate) async fn close_recording_event(
        &self,
        tenant_id: &str,
        bot_id: &str,
        status: &str,
        size_bytes: i64,
        duration_ms: Option<i64>,
    ) -> Result<(), DbErr> {
        on_recording(
            &self.db,
            tenant_id,
            bot_id,
            status,
            size_bytes,
            duration_ms,
            now(),
        )
        .await
    }
}

async fn attempt<C: ConnectionTrait>(
    db: &C,
    d: &webhook_delivery::Model,
    at: DateTime<Utc>,
    status_code: Option<i32>,
    error: Option<&str>,
    duration_ms: i64,
) -> Result<(), DbErr> {
    webhook_attempt::ActiveModel {
        delivery_id: Set(d.id),
        tenant_id: Set(d.tenant_id.clone()),
        at: Set(at),
        status_code: Set(status_code),
        error: Set(error.map(|e| e.chars().take(500).collect())),
        duration_ms: Set(duration_ms),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

impl Scoped<'_> {
    pub(crate) async fn webhook_endpoints(&self) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
        webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(self.tenant_id.clone()))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .all(self.db)
            .await
    }

    pub(crate) async fn webhook_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<webhook_endpoint::Model>, DbErr> {
        webhook_endpoint::Entity::find_by_id(id.to_string())
            .filter(webhook_endpoint::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    pub(crate) async fn insert_webhook_endpoint(
        &self,
        id: String,
        e: EndpointInput,
    ) -> Result<webhook_endpoint::Model, DbErr> {
        webhook_endpoint::ActiveModel {
            id: Set(id),
            tenant_id: Set(self.tenant_id.clone()),
            url: Set(e.url),
            event_types: Set(e.event_types.join(",")),
            secret_sealed: Set(e.secret_sealed),
            enabled: Set(true),
            disabled_reason: Set(None),
            failing_since: Set(None),
            created_at: Set(now()),
        }
        .insert(self.db)
        .await
    }

    /// Deletes an endpoint and its outbox. False if it is not this tenant's.
    pub(crate) async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool, DbErr> {
        let Some(e) = self.webhook_endpoint(id).await? else {
            return Ok(false);
        };
        let txn = self.db.begin().await?;
        let ids: Vec<i64> = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::EndpointId.eq(e.id.clone()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::DeliveryId.is_in(ids))
            .exec(&txn)
            .await?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(e.id.clone()))
            .exec(&txn)
            .await?;
        webhook_endpoint::Entity::delete_by_id(e.id)
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Turns a disabled endpoint back on; its pending events go again.
    pub(crate) async fn enable_webhook_endpoint(&self, id: &str) -> Result<bool, DbErr> {
        let r = webhook_endpoint::Entity::update_many()
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::TenantId.eq(self.tenant_id.clone()))
            .col_expr(webhook_endpoint::Column::Enabled, Expr::value(true))
            .col_expr(
                webhook_endpoint::Column::DisabledReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                webhook_endpoint::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .exec(self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// An endpoint's deliveries, newest first.
    pub(crate) async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: u64,
    ) -> Result<Vec<webhook_delivery::Model>, DbErr> {
        webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(limit)
            .all(self.db)
            .await
    }

    pub(crate) async fn webhook_attempts(
        &self,
        delivery_id: i64,
    ) -> Result<Vec<webhook_attempt::Model>, DbErr> {
        webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(webhook_attempt::Column::DeliveryId.eq(delivery_id))
            .order_by_asc(webhook_attempt::Column::Id)
            .all(self.db)
            .await
    }

    pub(crate) async fn notices(&self) -> Result<Vec<tenant_notice::Model>, DbErr> {
        tenant_notice::Entity::find()
            .filter(tenant_notice::Column::TenantId.eq(self.tenant_id.clone()))
            .order_by_desc(tenant_notice::Column::Id)
            .limit(100)
            .all(self.db)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fixture() -> (Store, webhook_endpoint::Model) {
        let store = super::super::fixtures::store_with_tenant().await;
        let e = webhook_endpoint::ActiveModel {
            id: Set("e1".into()),
            tenant_id: Set("t1".into()),
            url: Set("https://hooks.example/h".into()),
            event_types: Set(EVENT_TYPES.join(",")),
            secret_sealed: Set(vec![1]),
            enabled: Set(true),
            disabled_reason: Set(None),
            failing_since: Set(Some(now())),
            created_at: Set(now()),
        }
        .insert(store.db())
        .await
        .unwrap();
        (store, e)
    }

    async fn delivery(
        store: &Store,
        bot: &str,
        next: DateTime<Utc>,
        attempts: i32,
    ) -> webhook_delivery::Model {
        webhook_delivery::ActiveModel {
            webhook_id: Set(format!("msg_{}", uuid::Uuid::new_v4().simple())),
            tenant_id: Set("t1".into()),
            endpoint_id: Set("e1".into()),
            bot_id: Set(Some(bot.into())),
            event_type: Set(STATUS_CHANGED.into()),
            payload: Set("{}".into()),
            status: Set("PENDING".into()),
            attempts: Set(attempts),
            next_attempt_at: Set(next),
            last_error: Set(None),
            created_at: Set(now()),
            delivered_at: Set(None),
            claimed_until: Set(None),
            ..Default::default()
        }
        .insert(store.db())
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn one_replica_claims_each_attempt_and_a_recovered_endpoint_gets_its_backlog_at_once() {
        let (store, _) = fixture().await;
        let later = now() + chrono::Duration::minutes(10);
        let a = delivery(&store, "b1", now() - chrono::Duration::seconds(1), 3).await;
        let b = delivery(&store, "b2", later, 4).await;
        let due = store.due_deliveries(now(), 10).await.unwrap();
        assert_eq!(due.len(), 1, "b2 waits out its backoff");

        // Two replicas read the same head; one claims it.
        let until = now() + chrono::Duration::seconds(60);
        assert!(store.claim_delivery(&a, until).await.unwrap());
        assert!(!store.claim_delivery(&a, until).await.unwrap());
        assert!(
            store.due_deliveries(now(), 10).await.unwrap().is_empty(),
            "a claimed delivery is nobody else's to send"
        );

        // The endpoint answers again: b2's retry is due now, not in ten
        // minutes; a's claim is cleared by its outcome.
        store.delivered(&a, 200, 5).await.unwrap();
        let due = store.due_deliveries(now(), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].delivery.id, b.id);
        assert!(due[0].delivery.next_attempt_at <= now());
        let a = webhook_delivery::Entity::find_by_id(a.id)
            .one(store.db())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.status.as_str(), a.claimed_until), ("DELIVERED", None));
        // A claim that ran out (its replica died) is taken again.
        let b = due[0].delivery.clone();
        assert!(
            store
                .claim_delivery(&b, now() - chrono::Duration::seconds(1))
                .await
                .unwrap()
        );
        let b = webhook_delivery::Entity::find_by_id(b.id)
            .one(store.db())
            .await
            .unwrap()
            .unwrap();
        assert!(store.claim_delivery(&b, until).await.unwrap());
    }
}
