//! Pure tenant rules: who may do what inside a tenant (a casbin model of
//! roles per tenant, with the default policy as data and a tenant's
//! overrides on top), what a valid tenant name or region is, and what of a
//! tenant's data has expired under its retention policy and legal holds. No
//! I/O, no clock: callers bring the facts (and the time), this crate gives
//! the decision, and table-driven tests pin every decision.

mod names;
mod policy;
mod retention;
mod roles;

pub use names::{NameError, validate_pool, validate_region, validate_tenant_name};
pub use policy::{Override, OverrideError, PLATFORM, Policy, PolicyError, Subject};
pub use retention::{
    DataClass, Defaults, Holds, Item, Kept, MAX_RETENTION_DAYS, Plan, RetentionError, Rule,
    Source as RetentionSource, TenantRetention, Verdict, plan as retention_plan,
    rule as retention_rule, validate_days as validate_retention_days,
};
pub use roles::{Action, Decision, Role};
