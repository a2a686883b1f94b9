//! The operator's view of the platform: every tenant, the fleet by region,
//! and creating a tenant with its first owner's invitation.
//!
//! Every field asks the guard for a platform action (`ManageTenants`,
//! `ReadFleet`, `ManageFleet`), which only the operator holds; a tenant's caller gets
//! FORBIDDEN here, never another tenant's data.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use attache_tenant_policy::{Action, Role, validate_region, validate_tenant_name};
use chrono::{DateTime, Utc};

use super::error::ApiError;
use super::guard::guard;
use super::members::{Invitation, check_email};
use crate::AppState;
use crate::audit::note_target;
use crate::entity::names::{Isolation, Stored};
use crate::entity::tenant;
use crate::store::now;

#[derive(SimpleObject)]
pub(crate) struct TenantSummary {
    id: ID,
    name: String,
    region: String,
    /// `SHARED`, or `DEDICATED` (its bots run only on its pool's workers).
    isolation: String,
    /// A dedicated tenant's worker pool.
    pool: Option<String>,
    created_at: DateTime<Utc>,
    members: u64,
}

#[derive(SimpleObject)]
pub(crate) struct FleetWorker {
    id: ID,
    hostname: String,
    /// The dedicated tenant's pool it was enrolled into; null: shared.
    pool: Option<String>,
    /// `connected`, `reconnecting`, `lost`, or `revoked`.
    state: String,
    draining: bool,
    capacity: i32,
    active_bots: i32,
    rss_mib: i32,
    /// The worker's software version, as it said when it connected; null
    /// while it has no link to the replica answering.
    software_version: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub(crate) struct Region {
    name: String,
    workers: Vec<FleetWorker>,
    capacity: i32,
    active_bots: i32,
}

#[derive(SimpleObject)]
pub(crate) struct CreatedTenant {
    tenant: TenantSummary,
    /// The owner's invitation: they sign in through the tenant's identity
    /// provider once it is set.
    owner_invitation: Invitation,
}

#[derive(Default)]
pub(crate) struct PlatformQuery;

#[Object]
impl PlatformQuery {
    /// Every tenant (operator only).
    async fn tenants(&self, ctx: &Context<'_>) -> Result<Vec<TenantSummary>> {
        let (state, _, _) = guard(ctx, Action::ManageTenants)?;
        let rows = state.store.tenants().await.map_err(ApiError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for t in rows {
            out.push(summary(state, t).await?);
        }
        Ok(out)
    }

    /// Regions with their workers and load (operator only).
    async fn regions(&self, ctx: &Context<'_>) -> Result<Vec<Region>> {
        let (state, _, _) = guard(ctx, Action::ReadFleet)?;
        let workers = state.store.workers().await.map_err(ApiError::from)?;
        let live = state.links.views();
        let mut regions: Vec<Region> = Vec::new();
        for w in workers {
            let worker = fleet_worker(&w, live.get(&w.id));
            match regions.iter_mut().find(|r| r.name == w.region) {
                Some(r) => r.workers.push(worker),
                None => regions.push(Region {
                    name: w.region.clone(),
                    workers: vec![worker],
                    capacity: 0,
                    active_bots: 0,
                }),
            }
        }
        for r in &mut regions {
            let live: Vec<&FleetWorker> = r
                .workers
                .iter()
                .filter(|w| w.state == "connected")
                .collect();
            r.capacity = live.iter().map(|w| w.capacity).sum();
            r.active_bots = live.iter().map(|w| w.active_bots).sum();
        }
        Ok(regions)
    }
}

/// A worker as the operator sees it: its stored row and what its link (if
/// it has one to this replica) reports.
fn fleet_worker(
    w: &crate::entity::worker::Model,
    view: Option<&crate::links::WorkerView>,
) -> FleetWorker {
    let connected = view.is_some_and(|v| v.connected);
    // Draining now (as its link says), or asked to and not yet done.
    let draining = view.is_some_and(|v| v.connected && v.draining);
    let load = view.map(|v| v.load);
    let state_name = if w.revoked_at.is_some() {
        "revoked".to_string()
    } else if connected {
        "connected".to_string()
    } else {
        w.state.as_str().to_string()
    };
    FleetWorker {
        id: ID(w.id.clone()),
        hostname: w.hostname.clone(),
        pool: w.pool.clone(),
        state: state_name,
        draining: draining || w.drain_requested_at.is_some(),
        capacity: load
            .as_ref()
            .map(|l| l.capacity as i32)
            .unwrap_or(w.capacity),
        active_bots: load.as_ref().map(|l| l.active_bots as i32).unwrap_or(0),
        rss_mib: load.as_ref().map(|l| l.rss_mib as i32).unwrap_or(0),
        software_version: view
            .filter(|v| v.connected)
            .map(|v| v.software_version.clone()),
        last_seen_at: w.last_seen_at,
    }
}

async fn summary(state: &AppState, t: tenant::Model) -> Result<TenantSummary, ApiError> {
    let members = state.store.scoped(&t.id).members().await?.len() as u64;
    Ok(TenantSummary {
        id: ID(t.id),
        name: t.name,
        region: t.region,
        isolation: t.isolation.as_str().to_string(),
        pool: t.pool,
        created_at: t.created_at,
        members,
    })
}

#[derive(Default)]
pub(crate) struct PlatformMutation;

#[Object]
impl PlatformMutation {
    /// Drains a worker (operator only): it takes no new bots, hands back
    /// those not yet in a call, lets the bots in calls go on until they
    /// end or its drain timeout, then stops. Carried out by the replica the
    /// worker is linked to (at once through Redis; else within a quarter of
    /// the grace period), or when it next connects.
    async fn drain_worker(&self, ctx: &Context<'_>, id: ID) -> Result<FleetWorker> {
        let (state, _, _) = guard(ctx, Action::ManageFleet)?;
        note_target(ctx, format!("worker:{}", id.0));
        let w = state
            .store
            .worker(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        if w.revoked_at.is_some() {
            return Err(ApiError::BadInput(format!("worker {} is revoked", w.id)).into());
        }
        state
            .store
            .request_drain(&w.id)
            .await
            .map_err(ApiError::from)?;
        let here = state.links.drain(&w.id);
        if !here {
            state.bus.command(&w.id, crate::bus::Command::Drain);
        }
        tracing::info!(worker_id = %w.id, linked_here = here, "worker drain requested");
        let w = state
            .store
            .worker(&id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        Ok(fleet_worker(&w, state.links.views().get(&w.id)))
    }

    /// Creates a tenant and invites its first owner (operator only).
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        name: String,
        region: String,
        owner_email: String,
    ) -> Result<CreatedTenant> {
        let (state, p, _) = guard(ctx, Action::ManageTenants)?;
        note_target(ctx, format!("tenant:{name}"));
        validate_tenant_name(&name).map_err(|e| ApiError::BadInput(e.to_string()))?;
        validate_region(&region).map_err(|e| ApiError::BadInput(e.to_string()))?;
        if let Some(why) =
            crate::admin::single_tenant_refuses(state.config.single_tenant.as_deref(), &name)
        {
            return Err(ApiError::BadInput(why).into());
        }
        let email = check_email(&owner_email)?;
        if state
            .store
            .tenant_by_name(&name)
            .await
            .map_err(ApiError::from)?
            .is_some()
        {
            return Err(
                ApiError::BadInput(format!("a tenant named {name:?} already exists")).into(),
            );
        }
        let t = state
            .store
            .insert_tenant(tenant::Model {
                id: uuid::Uuid::new_v4().to_string(),
                name,
                region,
                created_at: now(),
                retention_days: None,
                // Dedicated tenants (their own pool) are made with
                // `attache admin create-tenant --isolation dedicated`.
                isolation: Stored(Isolation::Shared),
                pool: None,
            })
            .await
            .map_err(ApiError::from)?;
        note_target(ctx, format!("tenant:{}", t.id));
        let ttl = chrono::Duration::from_std(state.config.invitation_ttl).unwrap_or_default();
        let invite = state
            .store
            .scoped(&t.id)
            .invite(&email, Role::Owner, &p.actor.label(), now() + ttl)
            .await
            .map_err(ApiError::from)?;
        Ok(CreatedTenant {
            tenant: summary(state, t).await?,
            owner_invitation: Invitation::of(invite)?,
        })
    }
}
