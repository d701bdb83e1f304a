//! Test helpers shared by the integration tests of the `smartlead` crate.
#![allow(dead_code)]

pub mod http;

// Not every test binary that includes this module uses them.
#[allow(unused_imports)]
pub use test_support::fixtures;
#[allow(unused_imports)]
pub use test_support::store::{
    consumer, consumer_with, dynamodb, fresh_store, get, items, marker, moto, unique, TestConsumer,
};

pub fn payload(name: &str) -> String {
    test_support::fixture("payloads", name)
}
