//! Emulated function instances behind one invoke call.

use serde_json::Value;
use std::sync::Arc;

/// Emulated function instances: each answers one invoke at a time (as one
/// Lambda instance does), so a call waits for a free one.
#[derive(Clone)]
pub struct Pool {
    free: Arc<std::sync::Mutex<Vec<String>>>,
    permits: Arc<tokio::sync::Semaphore>,
    http: reqwest::Client,
}

impl Pool {
    pub fn new(urls: Vec<String>) -> Pool {
        Pool {
            permits: Arc::new(tokio::sync::Semaphore::new(urls.len())),
            free: Arc::new(std::sync::Mutex::new(urls)),
            http: smartlead::adapters::http::client(),
        }
    }

    /// Invokes a free instance; `None` when the invoke failed as a whole
    /// (emulator unreachable, function crashed or timed out).
    pub async fn invoke(&self, event: &Value) -> Option<Value> {
        let _permit = self.permits.acquire().await.ok()?;
        let url = self.free.lock().ok()?.pop()?;
        let answer = self
            .http
            .post(&url)
            .json(event)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let out = match answer {
            Ok(r) => r.json::<Value>().await.ok(),
            Err(_) => None,
        };
        if let Ok(mut free) = self.free.lock() {
            free.push(url);
        }
        // The emulator answers a crashed or timed-out invoke with an error object.
        out.filter(|v| v.get("errorType").is_none())
    }
}
