//! Roles inside a tenant and the actions they allow.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Viewer,
    Auditor,
}

/// Everything a principal can ask to do. Tenant actions are taken in the
/// principal's own tenant; platform actions only by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    ReadTenant,
    ReadBots,
    CreateBot,
    LeaveBot,
    /// See webhook endpoints, their deliveries, and the tenant's notices.
    ReadWebhooks,
    /// Register, delete and re-enable webhook endpoints.
    ManageWebhooks,
    /// Read and change the tenant's settings (transcription provider and
    /// its credentials, retention and legal holds).
    ManageSettings,
    /// See the members, their roles and open invitations.
    ReadMembers,
    /// Invite, change roles, remove.
    ManageMembers,
    ReadApiKeys,
    /// Issue and revoke API keys.
    ManageApiKeys,
    ReadAudit,
    /// The tenant's identity provider for console sign-in.
    ManageSso,
    /// The tenant's policy overrides.
    ManagePolicy,
    /// Erase a bot or a participant, and see erasure jobs and their
    /// certificates.
    EraseData,
    /// Platform: create tenants, list them.
    ManageTenants,
    /// Platform: regions, workers and their load.
    ReadFleet,
    /// Platform: drain a worker.
    ManageFleet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    Allow,
    Deny,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Developer,
        Role::Viewer,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a member with this role may give `target` to someone (an
    /// invitation, a role change, an API key). Owners give any role; admins
    /// any but owner; nobody else gives roles.
    pub fn may_assign(self, target: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => target != Role::Owner,
            Role::Developer | Role::Viewer | Role::Auditor => false,
        }
    }
}

impl Decision {
    /// The effect's name in policy data and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        [Decision::Allow, Decision::Deny]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

impl Action {
    pub const ALL: [Action; 18] = [
        Action::ReadTenant,
        Action::ReadBots,
        Action::CreateBot,
        Action::LeaveBot,
        Action::ReadWebhooks,
        Action::ManageWebhooks,
        Action::ManageSettings,
        Action::ReadMembers,
        Action::ManageMembers,
        Action::ReadApiKeys,
        Action::ManageApiKeys,
        Action::ReadAudit,
        Action::ManageSso,
        Action::ManagePolicy,
        Action::EraseData,
        Action::ManageTenants,
        Action::ReadFleet,
        Action::ManageFleet,
    ];

    /// The name the policy data uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadTenant => "read_tenant",
            Action::ReadBots => "read_bots",
            Action::CreateBot => "create_bot",
            Action::LeaveBot => "leave_bot",
            Action::ReadWebhooks => "read_webhooks",
            Action::ManageWebhooks => "manage_webhooks",
            Action::ManageSettings => "manage_settings",
            Action::ReadMembers => "read_members",
            Action::ManageMembers => "manage_members",
            Action::ReadApiKeys => "read_api_keys",
            Action::ManageApiKeys => "manage_api_keys",
            Action::ReadAudit => "read_audit",
            Action::ManageSso => "manage_sso",
            Action::ManagePolicy => "manage_policy",
            Action::EraseData => "erase_data",
            Action::ManageTenants => "manage_tenants",
            Action::ReadFleet => "read_fleet",
            Action::ManageFleet => "manage_fleet",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Taken in the platform domain, by the operator, never in a tenant.
    pub fn is_platform(self) -> bool {
        matches!(
            self,
            Action::ManageTenants | Action::ReadFleet | Action::ManageFleet
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Owner"), None);
        assert_eq!(Role::parse("operator"), None);
    }

    #[test]
    fn effect_names_round_trip() {
        for d in [Decision::Allow, Decision::Deny] {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!(Decision::parse("Allow"), None);
    }

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("*"), None);
    }

    #[test]
    fn who_may_assign_which_role() {
        use Role::*;
        // Rows: the assigner; columns: owner, admin, developer, viewer, auditor.
        let table = [
            (Owner, [true, true, true, true, true]),
            (Admin, [false, true, true, true, true]),
            (Developer, [false; 5]),
            (Viewer, [false; 5]),
            (Auditor, [false; 5]),
        ];
        for (assigner, row) in table {
            for (target, want) in Role::ALL.into_iter().zip(row) {
                assert_eq!(
                    assigner.may_assign(target),
                    want,
                    "{assigner:?} → {target:?}"
                );
            }
        }
    }
}
