//! `smartlead doctor`: reads SmartLead's webhooks (every campaign's, and any
//! user- or client-level ones they list or `--webhook` names) and checks
//! them against the stack's URL and secret. The checks are plain functions
//! of what was read ([`diagnose`]); `--fix` applies the safe fixes
//! (re-point a URL, add missing event types) through the API.

mod findings;
mod hooks;
mod stack_url;

pub use findings::{diagnose, fixes, Finding};
pub use hooks::read;
pub use stack_url::StackUrl;
