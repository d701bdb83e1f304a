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
    /// (emulator unreachable, function crashed or timed out). The invoke
    /// runs to its end even when the caller stops waiting (a client that
    /// hangs up on API Gateway does not stop the Lambda invocation): the
    /// instance is free again only once it has answered.
    pub async fn invoke(&self, event: &Value) -> Option<Value> {
        let (pool, event) = (self.clone(), event.clone());
        tokio::spawn(async move { pool.invoke_to_end(&event).await })
            .await
            .ok()
            .flatten()
    }

    async fn invoke_to_end(&self, event: &Value) -> Option<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An "instance" that answers `{}` to every request after `delay`.
    async fn slow_instance(delay: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                });
            }
        });
        url
    }

    /// A caller that gives up mid-invoke (a client hanging up on the front)
    /// must not take the instance with it: the next invoke is served.
    #[tokio::test]
    async fn an_invoke_abandoned_by_its_caller_gives_its_instance_back() {
        let pool = Pool::new(vec![slow_instance(Duration::from_millis(300)).await]);
        let event = serde_json::json!({});
        let abandoned = tokio::time::timeout(Duration::from_millis(50), pool.invoke(&event)).await;
        assert!(abandoned.is_err(), "the caller stopped waiting");
        let next = tokio::time::timeout(Duration::from_secs(5), pool.invoke(&event)).await;
        assert_eq!(next.expect("served in time"), Some(serde_json::json!({})));
    }
}
