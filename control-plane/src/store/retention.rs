//! Retention's own rows: each tenant's rule per data class, the platform's
//! defaults, legal holds, and the job leases that let one replica at a
//! time run the sweep. What the sweep reads and deletes is in `sweep.rs`.

use attache_tenant_policy::{DataClass, Defaults, Holds, TenantRetention};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{Scoped, Store, StoreError, now};
use crate::entity::{job_lease, legal_hold, retention_default, retention_policy, tenant};

fn class_of(name: &str) -> Result<DataClass, StoreError> {
    DataClass::parse(name).ok_or_else(|| StoreError::Corrupt(format!("data class {name:?}")))
}

fn days_of(d: i32) -> Result<u32, StoreError> {
    u32::try_from(d).map_err(|_| StoreError::Corrupt(format!("retention of {d} days")))
}

impl Store {
    /// Every tenant, for the sweep (its own read: it then works through
    /// each tenant's [`Scoped`]).
    pub(crate) async fn tenant_ids(&self) -> Result<Vec<String>, DbErr> {
        Ok(tenant::Entity::find()
            .order_by_asc(tenant::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect())
    }

    pub(crate) async fn retention_defaults(&self) -> Result<Defaults, StoreError> {
        let mut out = Defaults::default();
        for r in retention_default::Entity::find().all(&self.db).await? {
            out.0
                .insert(class_of(&r.class)?, days_of(r.retention_days)?);
        }
        Ok(out)
    }

    /// Sets the operator's default for a class (`None`: no default, kept).
    pub(crate) async fn set_retention_default(
        &self,
        class: DataClass,
        days: Option<u32>,
    ) -> Result<(), DbErr> {
        let Some(days) = days else {
            retention_default::Entity::delete_by_id(class.as_str().to_string())
                .exec(&self.db)
                .await?;
            return Ok(());
        };
        retention_default::Entity::insert(retention_default::ActiveModel {
            class: Set(class.as_str().to_string()),
            retention_days: Set(days as i32),
            updated_at: Set(now()),
        })
        .on_conflict(
            OnConflict::column(retention_default::Column::Class)
                .update_columns([
                    retention_default::Column::RetentionDays,
                    retention_default::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(&self.db)
        .await
        .map(|_| ())
    }

    /// Takes the lease `name` for `holder` until `until`, or renews it: a
    /// compare-and-swap that wins only if the lease is free, expired at
    /// `at`, or `holder`'s already. True if `holder` holds it now.
    pub(crate) async fn take_job_lease(
        &self,
        name: &str,
        holder: &str,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        // The row exists once; racing first takers insert it once.
        job_lease::Entity::insert(job_lease::ActiveModel {
            name: Set(name.to_string()),
            holder: Set(String::new()),
            expires_at: Set(at),
        })
        .on_conflict_do_nothing()
        .exec(&self.db)
        .await?;
        let taken = job_lease::Entity::update_many()
            .col_expr(job_lease::Column::Holder, Expr::value(holder))
            .col_expr(job_lease::Column::ExpiresAt, Expr::value(until))
            .filter(job_lease::Column::Name.eq(name))
            .filter(
                Condition::any()
                    .add(job_lease::Column::Holder.eq(holder))
                    .add(job_lease::Column::ExpiresAt.lte(at)),
            )
            .exec(&self.db)
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Gives the lease back early, if `holder` still has it.
    pub(crate) async fn release_job_lease(
        &self,
        name: &str,
        holder: &str,
        at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        job_lease::Entity::update_many()
            .col_expr(job_lease::Column::ExpiresAt, Expr::value(at))
            .filter(job_lease::Column::Name.eq(name))
            .filter(job_lease::Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map(|_| ())
    }
}

impl Scoped<'_> {
    /// The tenant's choices: its rule per class and its one number of the
    /// first retention setting.
    pub(crate) async fn retention(&self) -> Result<TenantRetention, StoreError> {
        let mut out = TenantRetention::default();
        let rows = retention_policy::Entity::find()
            .filter(retention_policy::Column::TenantId.eq(self.tenant_id.clone()))
            .all(self.db)
            .await?;
        for r in rows {
            let days = r.retention_days.map(days_of).transpose()?;
            out.classes.insert(class_of(&r.class)?, days);
        }
        if let Some(t) = self.tenant().await? {
            out.all_days = t.retention_days.map(days_of).transpose()?;
        }
        Ok(out)
    }

    /// The tenant's rule for a class: `Some(days)`, or `None` for forever.
    pub(crate) async fn set_retention_class(
        &self,
        class: DataClass,
        days: Option<u32>,
    ) -> Result<(), DbErr> {
        retention_policy::Entity::insert(retention_policy::ActiveModel {
            tenant_id: Set(self.tenant_id.clone()),
            class: Set(class.as_str().to_string()),
            retention_days: Set(days.map(|d| d as i32)),
            updated_at: Set(now()),
        })
        .on_conflict(
            OnConflict::columns([
                retention_policy::Column::TenantId,
                retention_policy::Column::Class,
            ])
            .update_columns([
                retention_policy::Column::RetentionDays,
                retention_policy::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec(self.db)
        .await
        .map(|_| ())
    }

    /// Drops the tenant's rule for a class: the defaults apply again.
    pub(crate) async fn clear_retention_class(&self, class: DataClass) -> Result<(), DbErr> {
        retention_policy::Entity::delete_many()
            .filter(retention_policy::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(retention_policy::Column::Class.eq(class.as_str()))
            .exec(self.db)
            .await
            .map(|_| ())
    }

    /// The tenant's holds, newest first; released ones too if asked.
    pub(crate) async fn legal_holds(
        &self,
        include_released: bool,
    ) -> Result<Vec<legal_hold::Model>, DbErr> {
        let mut q = legal_hold::Entity::find()
            .filter(legal_hold::Column::TenantId.eq(self.tenant_id.clone()));
        if !include_released {
            q = q.filter(legal_hold::Column::ReleasedAt.is_null());
        }
        q.order_by_desc(legal_hold::Column::CreatedAt)
            .order_by_desc(legal_hold::Column::Id)
            .all(self.db)
            .await
    }

    pub(crate) async fn insert_legal_hold(
        &self,
        id: String,
        bot_id: Option<String>,
        reason_sealed: Vec<u8>,
        created_by: String,
    ) -> Result<legal_hold::Model, DbErr> {
        legal_hold::ActiveModel {
            id: Set(id),
            tenant_id: Set(self.tenant_id.clone()),
            bot_id: Set(bot_id),
            reason_sealed: Set(reason_sealed),
            created_by: Set(created_by),
            created_at: Set(now()),
            released_at: Set(None),
            released_by: Set(None),
        }
        .insert(self.db)
        .await
    }

    /// Releases a hold of this tenant's; `None` if it has no such hold. A
    /// hold released before stays as it was.
    pub(crate) async fn release_legal_hold(
        &self,
        id: &str,
        by: &str,
    ) -> Result<Option<legal_hold::Model>, DbErr> {
        legal_hold::Entity::update_many()
            .col_expr(legal_hold::Column::ReleasedAt, Expr::value(now()))
            .col_expr(legal_hold::Column::ReleasedBy, Expr::value(by))
            .filter(legal_hold::Column::Id.eq(id))
            .filter(legal_hold::Column::TenantId.eq(self.tenant_id.clone()))
            .filter(legal_hold::Column::ReleasedAt.is_null())
            .exec(self.db)
            .await?;
        legal_hold::Entity::find_by_id(id.to_string())
            .filter(legal_hold::Column::TenantId.eq(self.tenant_id.clone()))
            .one(self.db)
            .await
    }

    /// What the tenant's active holds keep.
    pub(crate) async fn active_holds(&self) -> Result<Holds, DbErr> {
        let mut holds = Holds::default();
        for h in self.legal_holds(false).await? {
            match h.bot_id {
                Some(b) => {
                    holds.bots.insert(b);
                }
                None => holds.tenant = true,
            }
        }
        Ok(holds)
    }
}
