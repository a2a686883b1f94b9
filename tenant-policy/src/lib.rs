//! Pure tenant rules: who may do what inside a tenant (a casbin model of
//! roles per tenant, with the default policy as data and a tenant's
//! overrides on top), and what a valid tenant name or region is. No I/O, no
//! clock: callers bring the facts, this crate gives the decision, and
//! table-driven tests pin every decision.

mod names;
mod policy;
mod roles;

pub use names::{NameError, validate_pool, validate_region, validate_tenant_name};
pub use policy::{Override, OverrideError, PLATFORM, Policy, PolicyError, Subject};
pub use roles::{Action, Decision, Role};
