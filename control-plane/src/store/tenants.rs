//! Tenants and their API keys: the control plane's own reads and writes
//! (authentication and the operator's commands); a tenant's principal reads
//! its own tenant through [`super::Scoped`].

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, Set};

use super::Store;
use crate::entity::{api_key, tenant};

impl Store {
    pub(crate) async fn insert_tenant(&self, t: tenant::Model) -> Result<tenant::Model, DbErr> {
        tenant::ActiveModel {
            id: Set(t.id),
            name: Set(t.name),
            region: Set(t.region),
            created_at: Set(t.created_at),
            retention_days: Set(t.retention_days),
            isolation: Set(t.isolation),
            pool: Set(t.pool),
        }
        .insert(&self.db)
        .await
    }

    pub(crate) async fn tenant_by_name(&self, name: &str) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find()
            .filter(tenant::Column::Name.eq(name))
            .one(&self.db)
            .await
    }

    /// Names of every tenant but `name` (a single-tenant deployment must
    /// hold none).
    pub(crate) async fn other_tenants(&self, name: &str) -> Result<Vec<String>, DbErr> {
        Ok(tenant::Entity::find()
            .filter(tenant::Column::Name.ne(name))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect())
    }

    /// The dedicated tenant whose pool this is, if any.
    pub(crate) async fn tenant_with_pool(
        &self,
        pool: &str,
    ) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find()
            .filter(tenant::Column::Pool.eq(pool))
            .one(&self.db)
            .await
    }

    pub(crate) async fn tenant(&self, id: &str) -> Result<Option<tenant::Model>, DbErr> {
        tenant::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    pub(crate) async fn insert_api_key(&self, k: api_key::Model) -> Result<(), DbErr> {
        api_key::ActiveModel {
            id: Set(k.id),
            tenant_id: Set(k.tenant_id),
            name: Set(k.name),
            secret_hash: Set(k.secret_hash),
            role: Set(k.role),
            created_at: Set(k.created_at),
            expires_at: Set(k.expires_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
            member_id: Set(k.member_id),
            created_by: Set(k.created_by),
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    pub(crate) async fn api_key(&self, id: &str) -> Result<Option<api_key::Model>, DbErr> {
        api_key::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
    }

    /// Records use at most once a minute per key, to keep reads cheap.
    pub(crate) async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<(), DbErr> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
            .filter(api_key::Column::Id.eq(id))
            .filter(
                Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(at - chrono::Duration::seconds(60))),
            )
            .exec(&self.db)
            .await
            .map(|_| ())
    }
}
