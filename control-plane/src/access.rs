//! Who is asking, and what their tenant's policy lets them do.
//!
//! A request is authenticated once — by API key or by console session — into
//! a [`Principal`]: the tenant (or the platform, for an operator), the
//! subject the casbin policy decides for, the actor the audit log names, and
//! that tenant's policy. The GraphQL guard and the console routes ask
//! [`Principal::allows`] and nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attache_tenant_policy::{Action, Decision, PLATFORM, Policy, PolicyError, Role, Subject};

use crate::auth::{AuthError, authenticate_key, session_id};
use crate::credentials::Credentials;
use crate::store::{Store, now};

/// How long a tenant's policy is kept before its overrides are read again
/// (another control plane may have changed them; this one invalidates at
/// once).
const POLICY_TTL: Duration = Duration::from_secs(5);

/// Who acts, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Actor {
    Key { id: String },
    User { email: String, session_id: String },
}

impl Actor {
    pub(crate) fn label(&self) -> String {
        match self {
            Actor::Key { id } => format!("key:{id}"),
            Actor::User { email, .. } => format!("user:{email}"),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Principal {
    /// The tenant acted in; [`PLATFORM`] for an operator, which no tenant
    /// data is stored under.
    pub tenant_id: String,
    pub subject: Subject,
    pub actor: Actor,
    /// The membership behind a console session or a member's key.
    pub member_id: Option<String>,
    pub policy: Arc<Policy>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("tenant_id", &self.tenant_id)
            .field("subject", &self.subject)
            .field("actor", &self.actor.label())
            .finish()
    }
}

impl Principal {
    pub(crate) fn allows(&self, action: Action) -> bool {
        self.policy.decide(self.subject, action) == Decision::Allow
    }

    pub(crate) fn role(&self) -> Option<Role> {
        match self.subject {
            Subject::Member(r) => Some(r),
            Subject::Operator => None,
        }
    }

    pub(crate) fn is_operator(&self) -> bool {
        self.subject == Subject::Operator
    }

    /// The trail this principal's actions go to: its tenant's, or the
    /// platform's (None).
    pub(crate) fn audit_tenant(&self) -> Option<String> {
        (!self.is_operator()).then(|| self.tenant_id.clone())
    }
}

/// Built policies by tenant, with when each was built.
type PolicyCache = HashMap<String, (Instant, Arc<Policy>)>;

/// Each tenant's policy (defaults plus its overrides), built on first use
/// and kept for [`POLICY_TTL`].
/// With them, the API keys that authenticated ([`Credentials`]).
#[derive(Clone)]
pub(crate) struct Policies {
    store: Store,
    platform: Arc<Policy>,
    tenants: Arc<Mutex<PolicyCache>>,
    credentials: Credentials,
}

impl Policies {
    pub(crate) async fn new(
        store: Store,
        credentials: Credentials,
    ) -> Result<Policies, PolicyError> {
        Ok(Policies {
            store,
            platform: Arc::new(Policy::for_platform().await?),
            tenants: Arc::default(),
            credentials,
        })
    }

    /// The keys kept; told of every change that could take a key's right
    /// away.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(crate) fn platform(&self) -> Arc<Policy> {
        self.platform.clone()
    }

    pub(crate) async fn tenant(&self, tenant_id: &str) -> Result<Arc<Policy>, AuthError> {
        if let Some((at, p)) = self.lock().get(tenant_id)
            && at.elapsed() < POLICY_TTL
        {
            return Ok(p.clone());
        }
        let overrides = self.store.policy_overrides(tenant_id).await?;
        let policy = Arc::new(
            Policy::for_tenant(tenant_id, &overrides)
                .await
                .map_err(|e| AuthError::Policy(e.to_string()))?,
        );
        self.lock()
            .insert(tenant_id.to_string(), (Instant::now(), policy.clone()));
        Ok(policy)
    }

    /// Forgets a tenant's policy after its overrides changed.
    pub(crate) fn invalidate(&self, tenant_id: &str) {
        self.lock().remove(tenant_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PolicyCache> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request with `Authorization: Bearer atk_…`.
pub(crate) async fn by_api_key(
    store: &Store,
    policies: &Policies,
    header: Option<&str>,
) -> Result<Principal, AuthError> {
    let key = authenticate_key(store, &policies.credentials, header).await?;
    Ok(Principal {
        policy: policies.tenant(&key.tenant_id).await?,
        tenant_id: key.tenant_id,
        subject: Subject::Member(key.role),
        actor: Actor::Key { id: key.key_id },
        member_id: key.member_id,
    })
}

/// A console request carrying the session cookie. The session must be
/// live, and so must what it stands on: the membership (whose current role
/// counts) or the operator's entry.
pub(crate) async fn by_session(
    store: &Store,
    policies: &Policies,
    token: &str,
) -> Result<Principal, AuthError> {
    let id = session_id(token).ok_or(AuthError::Session)?;
    let session = store.session(&id).await?.ok_or(AuthError::Session)?;
    if session.revoked_at.is_some() || session.expires_at <= now() {
        return Err(AuthError::Session);
    }
    let user = store
        .user(&session.user_id)
        .await?
        .ok_or(AuthError::Session)?;
    let actor = Actor::User {
        email: user.email.clone(),
        session_id: session.id.clone(),
    };
    if session.operator {
        if !store.is_operator(&user.email).await? {
            return Err(AuthError::Session);
        }
        return Ok(Principal {
            tenant_id: PLATFORM.to_string(),
            subject: Subject::Operator,
            actor,
            member_id: None,
            policy: policies.platform(),
        });
    }
    let (Some(tenant_id), Some(member_id)) = (session.tenant_id, session.member_id) else {
        return Err(AuthError::Session);
    };
    let member = store.member(&member_id).await?.ok_or(AuthError::Session)?;
    if member.tenant_id != tenant_id || member.user_id != user.id {
        return Err(AuthError::Session);
    }
    let role = Role::parse(&member.role).ok_or(AuthError::Session)?;
    Ok(Principal {
        policy: policies.tenant(&tenant_id).await?,
        tenant_id,
        subject: Subject::Member(role),
        actor,
        member_id: Some(member_id),
    })
}
