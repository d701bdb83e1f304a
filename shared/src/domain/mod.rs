//! The event model and what an event does, as data. Nothing here performs
//! I/O or names an SDK type: a webhook body goes in, a [`plan::Plan`] (item
//! updates) and an idempotency key come out.

pub mod body;
pub mod client;
pub mod event;
pub mod field_types;
pub mod key;
pub mod message;
pub mod normalize;
pub mod plan;
pub mod records;
pub mod shape;
pub mod time;
