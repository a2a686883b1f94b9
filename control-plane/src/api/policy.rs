//! A tenant's policy overrides: grants and denials of an action to a role,
//! over the defaults of `attache_tenant_policy`.
//!
//! Every field asks the guard for `ManagePolicy` first. An override can
//! only name tenant actions (never the operator's), and every change drops
//! the tenant's cached policy so the next request is judged by it.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use attache_tenant_policy::{Action, Override, Role};

use super::error::ApiError;
use super::guard::guard;
use super::members::GqlRole;
use crate::audit::note_target;

/// The tenant actions a policy override can name.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "PolicyAction")]
pub(crate) enum GqlAction {
    ReadTenant,
    ReadBots,
    CreateBot,
    LeaveBot,
    ReadWebhooks,
    ManageWebhooks,
    ManageSettings,
    ReadMembers,
    ManageMembers,
    ReadApiKeys,
    ManageApiKeys,
    ReadAudit,
    ManageSso,
    ManagePolicy,
    EraseData,
}

// Not a `remote` enum: `Action` also holds the operator's platform actions
// (`ManageTenants`, `ReadFleet`), which no tenant override may name, so the
// variants do not line up one to one.
impl From<GqlAction> for Action {
    fn from(a: GqlAction) -> Action {
        match a {
            GqlAction::ReadTenant => Action::ReadTenant,
            GqlAction::ReadBots => Action::ReadBots,
            GqlAction::CreateBot => Action::CreateBot,
            GqlAction::LeaveBot => Action::LeaveBot,
            GqlAction::ReadWebhooks => Action::ReadWebhooks,
            GqlAction::ManageWebhooks => Action::ManageWebhooks,
            GqlAction::ManageSettings => Action::ManageSettings,
            GqlAction::ReadMembers => Action::ReadMembers,
            GqlAction::ManageMembers => Action::ManageMembers,
            GqlAction::ReadApiKeys => Action::ReadApiKeys,
            GqlAction::ManageApiKeys => Action::ManageApiKeys,
            GqlAction::ReadAudit => Action::ReadAudit,
            GqlAction::ManageSso => Action::ManageSso,
            GqlAction::ManagePolicy => Action::ManagePolicy,
            GqlAction::EraseData => Action::EraseData,
        }
    }
}

/// A platform action has no name here: it is handed back.
impl TryFrom<Action> for GqlAction {
    type Error = Action;
    fn try_from(a: Action) -> Result<GqlAction, Action> {
        Ok(match a {
            Action::ReadTenant => GqlAction::ReadTenant,
            Action::ReadBots => GqlAction::ReadBots,
            Action::CreateBot => GqlAction::CreateBot,
            Action::LeaveBot => GqlAction::LeaveBot,
            Action::ReadWebhooks => GqlAction::ReadWebhooks,
            Action::ManageWebhooks => GqlAction::ManageWebhooks,
            Action::ManageSettings => GqlAction::ManageSettings,
            Action::ReadMembers => GqlAction::ReadMembers,
            Action::ManageMembers => GqlAction::ManageMembers,
            Action::ReadApiKeys => GqlAction::ReadApiKeys,
            Action::ManageApiKeys => GqlAction::ManageApiKeys,
            Action::ReadAudit => GqlAction::ReadAudit,
            Action::ManageSso => GqlAction::ManageSso,
            Action::ManagePolicy => GqlAction::ManagePolicy,
            Action::EraseData => GqlAction::EraseData,
            Action::ManageTenants | Action::ReadFleet | Action::ManageFleet => return Err(a),
        })
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "PolicyEffect", remote = "attache_tenant_policy::Decision")]
pub(crate) enum GqlEffect {
    Allow,
    Deny,
}

#[derive(SimpleObject)]
pub(crate) struct PolicyOverride {
    role: GqlRole,
    action: GqlAction,
    effect: GqlEffect,
}

/// How the audit log names a policy override.
fn policy_target(role: GqlRole, action: GqlAction) -> String {
    format!(
        "policy:{}:{}",
        Role::from(role).as_str(),
        Action::from(action).as_str()
    )
}

#[derive(Default)]
pub(crate) struct PolicyQuery;

#[Object]
impl PolicyQuery {
    async fn policy_overrides(&self, ctx: &Context<'_>) -> Result<Vec<PolicyOverride>> {
        let (state, p, _) = guard(ctx, Action::ManagePolicy)?;
        let rows = state
            .store
            .policy_overrides(&p.tenant_id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .filter_map(|o| {
                Some(PolicyOverride {
                    role: o.role.into(),
                    action: o.action.try_into().ok()?,
                    effect: o.effect.into(),
                })
            })
            .collect())
    }
}

#[derive(Default)]
pub(crate) struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// Grants or denies a role an action in this tenant, over the defaults.
    /// A denial reaches the roles that inherit it (admin and owner inherit
    /// developer, which inherits viewer).
    async fn set_policy_override(
        &self,
        ctx: &Context<'_>,
        role: GqlRole,
        action: GqlAction,
        effect: GqlEffect,
    ) -> Result<PolicyOverride> {
        let (state, p, scoped) = guard(ctx, Action::ManagePolicy)?;
        note_target(ctx, policy_target(role, action));
        let o = Override {
            role: role.into(),
            action: action.into(),
            effect: effect.into(),
        };
        o.validate()
            .map_err(|e| ApiError::BadInput(e.to_string()))?;
        scoped.set_override(o).await.map_err(ApiError::from)?;
        state.policies.invalidate(&p.tenant_id);
        Ok(PolicyOverride {
            role,
            action,
            effect,
        })
    }

    async fn delete_policy_override(
        &self,
        ctx: &Context<'_>,
        role: GqlRole,
        action: GqlAction,
    ) -> Result<bool> {
        let (state, p, scoped) = guard(ctx, Action::ManagePolicy)?;
        note_target(ctx, policy_target(role, action));
        let removed = scoped
            .delete_override(role.into(), action.into())
            .await
            .map_err(ApiError::from)?;
        state.policies.invalidate(&p.tenant_id);
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::EnumType;

    use super::*;

    #[test]
    fn every_tenant_action_has_a_name_and_no_platform_action_does() {
        for a in Action::ALL {
            match GqlAction::try_from(a) {
                Ok(g) => {
                    assert!(!a.is_platform(), "{a:?}");
                    assert_eq!(Action::from(g), a);
                }
                Err(back) => {
                    assert!(a.is_platform(), "{a:?} has no name");
                    assert_eq!(back, a);
                }
            }
        }
        let tenant_actions = Action::ALL.iter().filter(|a| !a.is_platform()).count();
        assert_eq!(GqlAction::items().len(), tenant_actions);
    }
}
