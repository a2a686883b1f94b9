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

/// Everything a principal can ask to do inside its tenant.
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
    /// its credentials).
    ManageSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    pub fn decide(self, action: Action) -> Decision {
        use Action::*;
        let allowed = match self {
            Role::Owner | Role::Admin => true,
            Role::Developer => !matches!(action, ManageSettings),
            Role::Viewer => matches!(action, ReadTenant | ReadBots | ReadWebhooks),
            Role::Auditor => matches!(action, ReadTenant),
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Action::*;
    use super::Decision::*;
    use super::*;

    #[test]
    fn decision_table() {
        let table = [
            (
                Role::Owner,
                [Allow, Allow, Allow, Allow, Allow, Allow, Allow],
            ),
            (
                Role::Admin,
                [Allow, Allow, Allow, Allow, Allow, Allow, Allow],
            ),
            (
                Role::Developer,
                [Allow, Allow, Allow, Allow, Allow, Allow, Deny],
            ),
            (Role::Viewer, [Allow, Allow, Deny, Deny, Allow, Deny, Deny]),
            (Role::Auditor, [Allow, Deny, Deny, Deny, Deny, Deny, Deny]),
        ];
        let actions = [
            ReadTenant,
            ReadBots,
            CreateBot,
            LeaveBot,
            ReadWebhooks,
            ManageWebhooks,
            ManageSettings,
        ];
        for (role, row) in table {
            for (action, want) in actions.iter().zip(row) {
                assert_eq!(role.decide(*action), want, "{role:?} {action:?}");
            }
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Owner"), None);
    }
}
