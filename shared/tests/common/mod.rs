//! Test helpers shared by the integration tests of the `smartlead` crate.
#![allow(dead_code)]

pub mod http;

// Not every test binary that includes this module uses them.
#[allow(unused_imports)]
pub use test_support::fixtures;
#[allow(unused_imports)]
pub use test_support::store::{
    consumer, consumer_with, dynamodb, fresh_store, get, item, items, marker, moto, new_queue,
    unique, TestConsumer,
};

/// Log lines as a subscriber writes them (`with_writer(move || w.clone())`).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn payload(name: &str) -> String {
    test_support::fixture("payloads", name)
}
