//! Wrapped keys: each tenant's and the platform's (under a key provider,
//! with the provider and provider key recorded beside them) and each bot's
//! (under its tenant's). Made once, on first use; concurrent first uses
//! agree on whichever was stored first. A rotation replaces a wrapped key
//! only if it is still the one it read (compare-and-swap).

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TryInsertResult,
};

use super::{Store, now};
use crate::entity::names::Stored;
use crate::entity::{bot, platform_key, tenant_key};
use crate::keys::WrappedKey;

/// The one row of `platform_keys`.
const PLATFORM_ROW: &str = "platform";

fn tenant_row(k: tenant_key::Model) -> WrappedKey {
    WrappedKey {
        bytes: k.wrapped_key,
        provider: *k.provider,
        key_id: k.provider_key_id,
    }
}

impl Store {
    pub(crate) async fn tenant_wrapped_key(
        &self,
        tenant_id: &str,
    ) -> Result<Option<WrappedKey>, DbErr> {
        Ok(tenant_key::Entity::find_by_id(tenant_id.to_string())
            .one(&self.db)
            .await?
            .map(tenant_row))
    }

    /// The tenant's erasable secret as stored: `None` for a key made
    /// without one; `Some` with no bytes once destroyed.
    pub(crate) async fn tenant_secret(
        &self,
        tenant_id: &str,
    ) -> Result<Option<(String, WrappedKey)>, DbErr> {
        Ok(tenant_key::Entity::find_by_id(tenant_id.to_string())
            .one(&self.db)
            .await?
            .and_then(|k| match (k.secret_key_id, k.secret_provider) {
                (Some(id), Some(p)) => Some((
                    id.clone(),
                    WrappedKey {
                        bytes: k.secret_wrapped.unwrap_or_default(),
                        provider: *p,
                        key_id: Some(id),
                    },
                )),
                _ => None,
            }))
    }

    /// Every tenant's erasable secret that is not destroyed.
    pub(crate) async fn tenant_secrets(&self) -> Result<Vec<(String, WrappedKey)>, DbErr> {
        Ok(tenant_key::Entity::find()
            .filter(tenant_key::Column::SecretWrapped.is_not_null())
            .order_by_asc(tenant_key::Column::TenantId)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|k| {
                let p = k.secret_provider?;
                Some((
                    k.tenant_id,
                    WrappedKey {
                        bytes: k.secret_wrapped?,
                        provider: *p,
                        key_id: k.secret_key_id,
                    },
                ))
            })
            .collect())
    }

    /// Puts a tenant's erasable secret under another provider key if it is
    /// still the one read.
    pub(crate) async fn move_tenant_secret(
        &self,
        tenant_id: &str,
        old: &[u8],
        new: WrappedKey,
    ) -> Result<bool, DbErr> {
        let r = tenant_key::Entity::update_many()
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .filter(tenant_key::Column::SecretWrapped.eq(old.to_vec()))
            .col_expr(tenant_key::Column::SecretWrapped, Expr::value(new.bytes))
            .col_expr(
                tenant_key::Column::SecretProvider,
                Expr::value(new.provider.as_str()),
            )
            .col_expr(tenant_key::Column::SecretKeyId, Expr::value(new.key_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Stores `wrapped` (and the tenant's erasable secret) unless the
    /// tenant has a key already; returns the stored one.
    pub(crate) async fn put_tenant_key(
        &self,
        tenant_id: &str,
        wrapped: WrappedKey,
        secret: Option<WrappedKey>,
    ) -> Result<WrappedKey, DbErr> {
        let inserted = tenant_key::Entity::insert(tenant_key::ActiveModel {
            tenant_id: Set(tenant_id.to_string()),
            wrapped_key: Set(wrapped.bytes),
            created_at: Set(now()),
            provider: Set(Stored(wrapped.provider)),
            provider_key_id: Set(wrapped.key_id),
            rewrapped_at: Set(None),
            secret_wrapped: Set(secret.as_ref().map(|s| s.bytes.clone())),
            secret_provider: Set(secret.as_ref().map(|s| Stored(s.provider))),
            secret_key_id: Set(secret.and_then(|s| s.key_id)),
        })
        .on_conflict(
            OnConflict::column(tenant_key::Column::TenantId)
                .do_nothing()
                .to_owned(),
        )
        .try_insert()
        .exec(&self.db)
        .await?;
        // Another caller may have stored the tenant's key first: theirs wins.
        let _: TryInsertResult<_> = inserted;
        self.tenant_wrapped_key(tenant_id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("tenant key of {tenant_id}")))
    }

    /// Replaces a tenant's wrapped key if it is still `old`; false if it
    /// changed meanwhile (or is gone).
    pub(crate) async fn rewrap_tenant_key(
        &self,
        tenant_id: &str,
        old: &[u8],
        new: WrappedKey,
    ) -> Result<bool, DbErr> {
        let r = tenant_key::Entity::update_many()
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .filter(tenant_key::Column::WrappedKey.eq(old.to_vec()))
            .col_expr(tenant_key::Column::WrappedKey, Expr::value(new.bytes))
            .col_expr(
                tenant_key::Column::Provider,
                Expr::value(new.provider.as_str()),
            )
            .col_expr(tenant_key::Column::ProviderKeyId, Expr::value(new.key_id))
            .col_expr(tenant_key::Column::RewrappedAt, Expr::value(now()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Deletes a tenant's wrapped key (its erasure); true if there was one.
    pub(crate) async fn delete_tenant_key(&self, tenant_id: &str) -> Result<bool, DbErr> {
        let r = tenant_key::Entity::delete_many()
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected > 0)
    }

    /// Tenant keys in tenant id order, after `after`.
    pub(crate) async fn tenant_keys_after(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, WrappedKey)>, DbErr> {
        let mut q = tenant_key::Entity::find().order_by_asc(tenant_key::Column::TenantId);
        if let Some(a) = after {
            q = q.filter(tenant_key::Column::TenantId.gt(a));
        }
        Ok(q.limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|k| (k.tenant_id.clone(), tenant_row(k)))
            .collect())
    }

    pub(crate) async fn platform_wrapped_key(&self) -> Result<Option<WrappedKey>, DbErr> {
        Ok(platform_key::Entity::find_by_id(PLATFORM_ROW.to_string())
            .one(&self.db)
            .await?
            .map(|k| WrappedKey {
                bytes: k.wrapped_key,
                provider: *k.provider,
                key_id: k.provider_key_id,
            }))
    }

    /// Stores the platform key unless there is one; returns the stored one.
    pub(crate) async fn put_platform_key(&self, wrapped: WrappedKey) -> Result<WrappedKey, DbErr> {
        let _: TryInsertResult<_> = platform_key::Entity::insert(platform_key::ActiveModel {
            id: Set(PLATFORM_ROW.to_string()),
            wrapped_key: Set(wrapped.bytes),
            provider: Set(Stored(wrapped.provider)),
            provider_key_id: Set(wrapped.key_id),
            created_at: Set(now()),
            rewrapped_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(platform_key::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .try_insert()
        .exec(&self.db)
        .await?;
        self.platform_wrapped_key()
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the platform key".into()))
    }

    pub(crate) async fn rewrap_platform_key(
        &self,
        old: &[u8],
        new: WrappedKey,
    ) -> Result<bool, DbErr> {
        let r = platform_key::Entity::update_many()
            .filter(platform_key::Column::Id.eq(PLATFORM_ROW))
            .filter(platform_key::Column::WrappedKey.eq(old.to_vec()))
            .col_expr(platform_key::Column::WrappedKey, Expr::value(new.bytes))
            .col_expr(
                platform_key::Column::Provider,
                Expr::value(new.provider.as_str()),
            )
            .col_expr(platform_key::Column::ProviderKeyId, Expr::value(new.key_id))
            .col_expr(platform_key::Column::RewrappedAt, Expr::value(now()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Stores a bot's wrapped data key unless it has one; returns the
    /// stored one.
    pub(crate) async fn put_bot_key(
        &self,
        bot_id: &str,
        wrapped: Vec<u8>,
    ) -> Result<Vec<u8>, DbErr> {
        bot::Entity::update_many()
            .filter(bot::Column::Id.eq(bot_id))
            .filter(bot::Column::DataKey.is_null())
            .col_expr(bot::Column::DataKey, Expr::value(wrapped))
            .exec(&self.db)
            .await?;
        self.bot(bot_id)
            .await?
            .and_then(|b| b.data_key)
            .ok_or_else(|| DbErr::RecordNotFound(format!("data key of bot {bot_id}")))
    }
}

impl Store {
    pub(crate) async fn transcription_setting(
        &self,
        tenant_id: &str,
    ) -> Result<Option<crate::entity::transcription_setting::Model>, DbErr> {
        crate::entity::transcription_setting::Entity::find_by_id(tenant_id.to_string())
            .one(&self.db)
            .await
    }

    pub(crate) async fn put_transcription_setting(
        &self,
        s: crate::entity::transcription_setting::Model,
    ) -> Result<(), DbErr> {
        use crate::entity::transcription_setting::{ActiveModel, Column, Entity};
        Entity::insert(ActiveModel {
            tenant_id: Set(s.tenant_id),
            provider: Set(s.provider),
            endpoint: Set(s.endpoint),
            model: Set(s.model),
            language: Set(s.language),
            api_key_sealed: Set(s.api_key_sealed),
            updated_at: Set(s.updated_at),
        })
        .on_conflict(
            OnConflict::column(Column::TenantId)
                .update_columns([
                    Column::Provider,
                    Column::Endpoint,
                    Column::Model,
                    Column::Language,
                    Column::ApiKeySealed,
                    Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(&self.db)
        .await?;
        Ok(())
    }
}
