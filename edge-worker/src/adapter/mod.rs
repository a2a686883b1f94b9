//! Platform adapters: how a bot gets from a meeting link to the call and
//! notices when it is over, for every platform the same way. The page is
//! read by one probe script against a per-platform table of selectors and
//! texts ([`tables`]); what to do next is decided by the pure
//! [`flow::next_step`]; [`drive`] runs the page loop and [`page`] acts on
//! the page; [`roster`] turns what the page lists into events.
//!
//! An adapter only follows the platform's flow and reports what it sees:
//! it never encodes audio nor talks to the control plane, and a platform
//! change is a change to its table, not to code.

mod drive;
mod flow;
mod page;
mod roster;
mod stall;
mod tables;

pub(crate) use drive::{Bot, drive};
pub(crate) use flow::Outcome;
