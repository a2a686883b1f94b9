//! The casbin policy: the model and default policy shipped as data
//! (`policy/model.conf`, `policy/default.csv`), a tenant's overrides on top.
//!
//! Everything here is in memory: callers load a tenant's overrides from
//! wherever they keep them and build a [`Policy`] for that tenant.

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use serde::{Deserialize, Serialize};

use crate::roles::{Action, Decision, Role};

const MODEL: &str = include_str!("../policy/model.conf");
const DEFAULTS: &str = include_str!("../policy/default.csv");

/// The domain of the operator's own actions.
pub const PLATFORM: &str = "platform";

/// Who asks: a member of a tenant (by role), or the platform operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Member(Role),
    Operator,
}

impl Subject {
    fn as_str(self) -> &'static str {
        match self {
            Subject::Member(r) => r.as_str(),
            Subject::Operator => "operator",
        }
    }
}

/// One tenant's change to the defaults: `role` may (or may not) take
/// `action` in that tenant. It changes that role only: an allow reaches the
/// roles that inherit from it (as the defaults do), a deny does not, so
/// denying viewers an action leaves developers, admins and owners as they
/// were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub role: Role,
    pub action: Action,
    pub effect: Decision,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    #[error("{0} is a platform action; tenants cannot grant or deny it")]
    Platform(&'static str),
    #[error("the owner's permissions cannot be overridden")]
    Owner,
}

impl Override {
    /// Refuses overrides a tenant must not make: platform actions, and the
    /// owner's row. Since denials are not inherited, that is also what keeps
    /// every owner able to manage members and the policy, whatever else is
    /// overridden.
    pub fn validate(&self) -> Result<(), OverrideError> {
        if self.action.is_platform() {
            return Err(OverrideError::Platform(self.action.as_str()));
        }
        if self.role == Role::Owner {
            return Err(OverrideError::Owner);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy data: {0}")]
    Data(String),
    #[error("casbin: {0}")]
    Casbin(#[from] casbin::Error),
    #[error(transparent)]
    Override(#[from] OverrideError),
}

/// The decisions of one domain: a tenant (defaults plus its overrides) or
/// the platform.
pub struct Policy {
    enforcer: Enforcer,
    domain: String,
    /// Each decision the enforcer made, by subject and action: a policy is
    /// not changed once built (a new one is built when overrides change),
    /// so each is asked of casbin once, not on every request.
    decided: std::sync::RwLock<std::collections::HashMap<(Subject, Action), bool>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("domain", &self.domain)
            .finish()
    }
}

impl Policy {
    /// The policy of tenant `tenant_id`: the defaults with its overrides.
    pub async fn for_tenant(
        tenant_id: &str,
        overrides: &[Override],
    ) -> Result<Policy, PolicyError> {
        if tenant_id == PLATFORM || tenant_id == "*" || tenant_id.is_empty() {
            return Err(PolicyError::Data(format!(
                "{tenant_id:?} is not a tenant id"
            )));
        }
        let mut policy = Policy::defaults(tenant_id).await?;
        let rules = overrides
            .iter()
            .map(|o| {
                o.validate()?;
                Ok(vec![
                    o.role.as_str().to_string(),
                    tenant_id.to_string(),
                    o.action.as_str().to_string(),
                    o.effect.as_str().to_string(),
                ])
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        if !rules.is_empty() {
            policy.enforcer.add_policies(rules).await?;
            policy.decided = Default::default();
        }
        Ok(policy)
    }

    /// The operator's policy.
    pub async fn for_platform() -> Result<Policy, PolicyError> {
        Policy::defaults(PLATFORM).await
    }

    async fn defaults(domain: &str) -> Result<Policy, PolicyError> {
        let model = DefaultModel::from_str(MODEL).await?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await?;
        let (policies, groupings) = parse_defaults(DEFAULTS, domain)?;
        enforcer.add_policies(policies).await?;
        enforcer.add_grouping_policies(groupings).await?;
        Ok(Policy {
            enforcer,
            domain: domain.to_string(),
            decided: Default::default(),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// May `subject` take `action` in this policy's domain? Whatever the
    /// data says, platform actions are never allowed in a tenant, and members
    /// of tenants have no say on the platform (`*` in the data means every
    /// tenant, not the platform).
    pub fn decide(&self, subject: Subject, action: Action) -> Decision {
        let on_platform = self.domain == PLATFORM;
        let member = matches!(subject, Subject::Member(_));
        if (action.is_platform() && !on_platform) || (member && on_platform) {
            return Decision::Deny;
        }
        let known = self
            .decided
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(subject, action))
            .copied();
        let allowed = known.unwrap_or_else(|| {
            let allowed = self
                .enforcer
                .enforce((subject.as_str(), self.domain.as_str(), action.as_str()))
                .unwrap_or(false);
            self.decided
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert((subject, action), allowed);
            allowed
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

type Rules = Vec<Vec<String>>;

/// Splits the default data into policies and role links, with the links'
/// `*` domain bound to `domain` (inheritance holds in every domain).
fn parse_defaults(data: &str, domain: &str) -> Result<(Rules, Rules), PolicyError> {
    let mut policies = Vec::new();
    let mut groupings = Vec::new();
    for (n, line) in data.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || PolicyError::Data(format!("line {}: {line:?}", n + 1));
        match cells.as_slice() {
            ["p", sub, dom, act, eft] => {
                let known_sub = *sub == "operator" || Role::parse(sub).is_some();
                if !known_sub || Action::parse(act).is_none() || Decision::parse(eft).is_none() {
                    return Err(bad());
                }
                policies.push([sub, dom, act, eft].iter().map(|c| c.to_string()).collect());
            }
            ["g", role, parent, "*"] => {
                if Role::parse(role).is_none() || Role::parse(parent).is_none() {
                    return Err(bad());
                }
                groupings.push(vec![
                    role.to_string(),
                    parent.to_string(),
                    domain.to_string(),
                ]);
            }
            _ => return Err(bad()),
        }
    }
    Ok((policies, groupings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Decision::{Allow as A, Deny as D};

    /// Every tenant action, in the order of the table's columns.
    const TENANT_ACTIONS: [Action; 15] = [
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
    ];

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn default_decisions_in_a_tenant() {
        let table = [
            (Role::Owner, [A, A, A, A, A, A, A, A, A, A, A, A, A, A, A]),
            (Role::Admin, [A, A, A, A, A, A, A, A, A, A, A, A, A, D, A]),
            (
                Role::Developer,
                [A, A, A, A, A, A, D, A, D, D, D, D, D, D, D],
            ),
            (Role::Viewer, [A, A, D, D, A, D, D, A, D, D, D, D, D, D, D]),
            (Role::Auditor, [A, D, D, D, D, D, D, A, D, D, D, A, D, D, D]),
        ];
        // The table covers every tenant action.
        let tenant_actions: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| !a.is_platform())
            .collect();
        assert_eq!(tenant_actions, TENANT_ACTIONS);

        let policy = run(Policy::for_tenant("t1", &[])).unwrap();
        for (role, row) in table {
            for (action, want) in TENANT_ACTIONS.iter().zip(row) {
                assert_eq!(
                    policy.decide(Subject::Member(role), *action),
                    want,
                    "{role:?} {action:?}"
                );
            }
            for action in [ManageTenants, ReadFleet, ManageFleet] {
                assert_eq!(policy.decide(Subject::Member(role), action), D);
            }
        }
        // The operator has no say inside a tenant.
        for action in Action::ALL {
            assert_eq!(policy.decide(Subject::Operator, action), D, "{action:?}");
        }
    }

    #[test]
    fn the_platform_is_the_operators_alone() {
        let policy = run(Policy::for_platform()).unwrap();
        for action in Action::ALL {
            let want = if matches!(action, ManageTenants | ReadFleet | ManageFleet | ReadAudit) {
                A
            } else {
                D
            };
            assert_eq!(policy.decide(Subject::Operator, action), want, "{action:?}");
            for role in Role::ALL {
                assert_eq!(
                    policy.decide(Subject::Member(role), action),
                    D,
                    "{role:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn overrides_change_one_tenant_only() {
        let overrides = [
            Override {
                role: Role::Developer,
                action: CreateBot,
                effect: D,
            },
            Override {
                role: Role::Auditor,
                action: ReadBots,
                effect: A,
            },
        ];
        let t1 = run(Policy::for_tenant("t1", &overrides)).unwrap();
        let t2 = run(Policy::for_tenant("t2", &[])).unwrap();
        // A deny changes the role it names, not the roles above it.
        assert_eq!(t1.decide(Subject::Member(Role::Developer), CreateBot), D);
        for role in [Role::Admin, Role::Owner] {
            assert_eq!(t1.decide(Subject::Member(role), CreateBot), A, "{role:?}");
        }
        for role in [Role::Developer, Role::Admin, Role::Owner] {
            assert_eq!(t2.decide(Subject::Member(role), CreateBot), A, "{role:?}");
        }
        assert_eq!(t1.decide(Subject::Member(Role::Developer), LeaveBot), A);
        assert_eq!(t1.decide(Subject::Member(Role::Auditor), ReadBots), A);
        assert_eq!(t2.decide(Subject::Member(Role::Auditor), ReadBots), D);
        // An allow override does not leak to the roles above the auditor.
        assert_eq!(t1.decide(Subject::Member(Role::Viewer), ReadAudit), D);
    }

    #[test]
    fn overrides_that_must_not_be_made_are_refused() {
        let cases = [
            (
                Role::Admin,
                ManageTenants,
                A,
                Err(OverrideError::Platform("manage_tenants")),
            ),
            (
                Role::Viewer,
                ReadFleet,
                A,
                Err(OverrideError::Platform("read_fleet")),
            ),
            (Role::Owner, CreateBot, D, Err(OverrideError::Owner)),
            (Role::Owner, ManageMembers, D, Err(OverrideError::Owner)),
            (Role::Admin, ManageMembers, D, Ok(())),
            (Role::Viewer, ManagePolicy, D, Ok(())),
            (Role::Auditor, ManageMembers, D, Ok(())),
            (Role::Admin, ManagePolicy, A, Ok(())),
            (Role::Developer, ManageSettings, A, Ok(())),
        ];
        for (role, action, effect, want) in cases {
            let o = Override {
                role,
                action,
                effect,
            };
            assert_eq!(o.validate(), want, "{o:?}");
            let built = run(Policy::for_tenant("t1", &[o]));
            assert_eq!(built.is_ok(), want.is_ok(), "{o:?}");
        }
    }

    /// Every override a tenant may make, one at a time: it changes exactly
    /// the cell it names (allows also reach the roles that inherit), and
    /// the owner keeps every default permission, members and the policy
    /// above all.
    #[test]
    fn an_override_changes_its_role_and_nothing_above_it() {
        let base = run(Policy::for_tenant("t1", &[])).unwrap();
        let tenant_actions: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| !a.is_platform())
            .collect();
        // Who inherits from whom, by the defaults.
        let inherits = |role: Role, from: Role| {
            let rank = |r: Role| match r {
                Role::Owner => 3,
                Role::Admin => 2,
                Role::Developer => 1,
                Role::Viewer => 0,
                Role::Auditor => -10,
            };
            role == from
                || (from != Role::Auditor && role != Role::Auditor && rank(role) > rank(from))
        };
        for target in Role::ALL.into_iter().filter(|r| *r != Role::Owner) {
            for &action in &tenant_actions {
                for effect in [A, D] {
                    let o = Override {
                        role: target,
                        action,
                        effect,
                    };
                    let p = run(Policy::for_tenant("t1", &[o])).unwrap();
                    for role in Role::ALL {
                        for &asked in &tenant_actions {
                            let before = base.decide(Subject::Member(role), asked);
                            let got = p.decide(Subject::Member(role), asked);
                            let want = if asked != action {
                                before
                            } else if effect == D {
                                if role == target { D } else { before }
                            } else if inherits(role, target) {
                                A
                            } else {
                                before
                            };
                            assert_eq!(got, want, "{o:?}: {role:?} asks {asked:?}");
                        }
                    }
                    for must in [ManageMembers, ManagePolicy, ReadBots, CreateBot] {
                        assert_eq!(p.decide(Subject::Member(Role::Owner), must), A, "{o:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn reserved_domains_are_not_tenants() {
        for bad in ["platform", "*", ""] {
            assert!(run(Policy::for_tenant(bad, &[])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_policy_data_is_refused() {
        for bad in [
            "p, owner, *, read_bots",
            "p, king, *, read_bots, allow",
            "p, owner, *, fly, allow",
            "p, owner, *, read_bots, maybe",
            "g, owner, admin, t1",
            "g, owner, emperor, *",
            "x, owner",
        ] {
            assert!(parse_defaults(bad, "t1").is_err(), "{bad}");
        }
        let (p, g) = parse_defaults(DEFAULTS, "t9").unwrap();
        assert!(p.len() > 10);
        assert!(g.iter().all(|rule| rule[2] == "t9"));
    }
}
