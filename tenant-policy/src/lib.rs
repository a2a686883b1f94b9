//! Pure tenant rules: who may do what inside a tenant, and what a valid
//! tenant name or region is. No I/O, no clock: callers bring the facts, this
//! crate gives the decision, and table-driven tests pin every decision.

mod names;
mod roles;

pub use names::{NameError, validate_region, validate_tenant_name};
pub use roles::{Action, Decision, Role};
