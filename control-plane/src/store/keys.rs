//! Wrapped keys: each tenant's (under the master key) and each bot's (under
//! its tenant's). Made once, on first use; concurrent first uses agree on
//! whichever was stored first.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, Set, TryInsertResult};

use super::{Store, now};
use crate::entity::{bot, tenant_key};

impl Store {
    pub(crate) async fn tenant_wrapped_key(
        &self,
        tenant_id: &str,
    ) -> Result<Option<Vec<u8>>, DbErr> {
        Ok(tenant_key::Entity::find_by_id(tenant_id.to_string())
            .one(&self.db)
            .await?
            .map(|k| k.wrapped_key))
    }

    /// Stores `wrapped` unless the tenant has a key already; returns the
    /// stored one.
    pub(crate) async fn put_tenant_key(
        &self,
        tenant_id: &str,
        wrapped: Vec<u8>,
    ) -> Result<Vec<u8>, DbErr> {
        let inserted = tenant_key::Entity::insert(tenant_key::ActiveModel {
            tenant_id: Set(tenant_id.to_string()),
            wrapped_key: Set(wrapped),
            created_at: Set(now()),
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
