//! The use cases, written against traits (ports) that `adapters` implement:
//! the ingest's [`ingest::Queue`] and [`ingest::BlobStore`], the consumer's
//! store traits ([`store`]) and [`consumer::BlobReader`], the effects'
//! [`effects::Publisher`] and [`effects::Notifier`].

pub mod budget;
pub mod clients;
pub mod consumer;
pub mod effects;
pub mod ingest;
pub mod reconcile;
pub mod store;
pub mod worker;
