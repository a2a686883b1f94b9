//! The generations of each tenant's bot keys (`crate::keys::generations`):
//! made one at a time per tenant (the primary key settles a race), retired
//! when an erasure starts the next, destroyed once no bot is left on them;
//! and each bot's move from one generation to the next, by compare-and-swap
//! on the wrapped key it read.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TryInsertResult,
};

use super::{Store, now};
use crate::entity::names::Stored;
use crate::entity::{bot, bot_key_generation as generation};
use crate::keys::WrappedKey;

/// A bot whose data key a roll moves: its id, wrapped key and generation.
pub(crate) type BotKeyRow = (String, Vec<u8>, Option<i32>);

impl Store {
    /// The tenant's newest generation that is not retired.
    pub(crate) async fn current_generation(
        &self,
        tenant_id: &str,
    ) -> Result<Option<generation::Model>, DbErr> {
        generation::Entity::find()
            .filter(generation::Column::TenantId.eq(tenant_id))
            .filter(generation::Column::RetiredAt.is_null())
            .order_by_desc(generation::Column::Generation)
            .one(&self.db)
            .await
    }

    pub(crate) async fn generation(
        &self,
        tenant_id: &str,
        number: i32,
    ) -> Result<Option<generation::Model>, DbErr> {
        generation::Entity::find_by_id((tenant_id.to_string(), number))
            .one(&self.db)
            .await
    }

    /// Every generation of the tenant, oldest first.
    pub(crate) async fn generations(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<generation::Model>, DbErr> {
        generation::Entity::find()
            .filter(generation::Column::TenantId.eq(tenant_id))
            .order_by_asc(generation::Column::Generation)
            .all(&self.db)
            .await
    }

    /// Stores generation `number` unless the tenant has it already; true
    /// if this call stored it.
    pub(crate) async fn put_generation(
        &self,
        tenant_id: &str,
        number: i32,
        provider_key_id: &str,
        wrapped: WrappedKey,
    ) -> Result<bool, DbErr> {
        let r: TryInsertResult<_> = generation::Entity::insert(generation::ActiveModel {
            tenant_id: Set(tenant_id.to_string()),
            generation: Set(number),
            provider: Set(Stored(wrapped.provider)),
            provider_key_id: Set(provider_key_id.to_string()),
            wrapped_secret: Set(Some(wrapped.bytes)),
            created_at: Set(now()),
            retired_at: Set(None),
            destroyed_at: Set(None),
        })
        .on_conflict(
            OnConflict::columns([generation::Column::TenantId, generation::Column::Generation])
                .do_nothing()
                .to_owned(),
        )
        .try_insert()
        .exec(&self.db)
        .await?;
        Ok(matches!(r, TryInsertResult::Inserted(_)))
    }

    /// Retires every generation of the tenant older than `number`: new
    /// bots no longer get them.
    pub(crate) async fn retire_generations_before(
        &self,
        tenant_id: &str,
        number: i32,
    ) -> Result<(), DbErr> {
        generation::Entity::update_many()
            .filter(generation::Column::TenantId.eq(tenant_id))
            .filter(generation::Column::Generation.lt(number))
            .filter(generation::Column::RetiredAt.is_null())
            .col_expr(generation::Column::RetiredAt, Expr::value(now()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records a generation destroyed: its wrapped secret is dropped.
    pub(crate) async fn destroy_generation(
        &self,
        tenant_id: &str,
        number: i32,
    ) -> Result<(), DbErr> {
        generation::Entity::update_many()
            .filter(generation::Column::TenantId.eq(tenant_id))
            .filter(generation::Column::Generation.eq(number))
            .col_expr(
                generation::Column::WrappedSecret,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(generation::Column::RetiredAt, Expr::value(now()))
            .col_expr(generation::Column::DestroyedAt, Expr::value(now()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Every generation not destroyed, of every tenant (a provider change
    /// moves their secrets).
    pub(crate) async fn live_generations(&self) -> Result<Vec<generation::Model>, DbErr> {
        generation::Entity::find()
            .filter(generation::Column::DestroyedAt.is_null())
            .filter(generation::Column::WrappedSecret.is_not_null())
            .order_by_asc(generation::Column::TenantId)
            .order_by_asc(generation::Column::Generation)
            .all(&self.db)
            .await
    }

    /// Puts a generation's secret under another provider key if it is
    /// still the one read.
    pub(crate) async fn move_generation_secret(
        &self,
        tenant_id: &str,
        number: i32,
        old: &[u8],
        new: WrappedKey,
    ) -> Result<bool, DbErr> {
        let r = generation::Entity::update_many()
            .filter(generation::Column::TenantId.eq(tenant_id))
            .filter(generation::Column::Generation.eq(number))
            .filter(generation::Column::WrappedSecret.eq(old.to_vec()))
            .col_expr(generation::Column::WrappedSecret, Expr::value(new.bytes))
            .col_expr(
                generation::Column::Provider,
                Expr::value(new.provider.as_str()),
            )
            .col_expr(
                generation::Column::ProviderKeyId,
                Expr::value(new.key_id.unwrap_or_default()),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }

    /// Up to `limit` of the tenant's bots with a data key not on
    /// generation `number`.
    pub(crate) async fn bots_off_generation(
        &self,
        tenant_id: &str,
        number: i32,
        limit: u64,
    ) -> Result<Vec<BotKeyRow>, DbErr> {
        bot::Entity::find()
            .select_only()
            .column(bot::Column::Id)
            .column(bot::Column::DataKey)
            .column(bot::Column::KeyGeneration)
            .filter(bot::Column::TenantId.eq(tenant_id))
            .filter(bot::Column::DataKey.is_not_null())
            .filter(
                Condition::any()
                    .add(bot::Column::KeyGeneration.is_null())
                    .add(bot::Column::KeyGeneration.ne(number)),
            )
            .order_by_asc(bot::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
    }

    /// Moves a bot's data key onto another generation if it is still the
    /// one read; false if it changed (or the bot is gone).
    pub(crate) async fn move_bot_key(
        &self,
        bot_id: &str,
        old: &[u8],
        new: Vec<u8>,
        number: i32,
    ) -> Result<bool, DbErr> {
        let r = bot::Entity::update_many()
            .filter(bot::Column::Id.eq(bot_id))
            .filter(bot::Column::DataKey.eq(old.to_vec()))
            .col_expr(bot::Column::DataKey, Expr::value(new))
            .col_expr(bot::Column::KeyGeneration, Expr::value(number))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected == 1)
    }
}
