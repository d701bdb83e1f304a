//! The HTTP front: what API Gateway's HTTP API does for the ingest function.
//! Each request (any HTTP/1.1 framing hyper reads: content-length or chunked
//! bodies, keep-alive) becomes an API Gateway 2.0 event for a free ingest
//! instance, and the function's answer becomes the response.

use crate::pipeline::Pool;
use anyhow::Result;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::net::SocketAddr;

/// API Gateway's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;
/// How long requests in flight may take once the front is asked to stop.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Turns one HTTP request into an API Gateway HTTP API (2.0) event, as
/// [`test_support::api_gateway_request`] reads it, with a fresh request id.
pub fn api_event(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    peer: &str,
) -> Value {
    let mut req = test_support::api_gateway_request(method, target, headers, body, peer);
    let now = chrono_now_ms();
    req.request_context.request_id = Some(format!("local-{now}-{}", rand_suffix()));
    req.request_context.time_epoch = now;
    test_support::event_json(&req)
}

fn chrono_now_ms() -> i64 {
    smartlead::domain::time::EventTime::now().millis()
}

pub(crate) fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Serves the front on `listener` until `shutdown` completes, then stops
/// accepting and waits (a while) for the requests in flight.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    ingest: Pool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (sock, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: the next accept may work.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ingest = ingest.clone();
        let service = hyper::service::service_fn(move |req| handle(req, ingest.clone(), peer));
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(sock), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

fn respond(status: u16, headers: &Map<String, Value>, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::builder().status(status);
    for (k, v) in headers {
        if k != "content-length" {
            resp = resp.header(k.as_str(), v.as_str().unwrap_or_default());
        }
    }
    resp.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| error(502, "function error"))
}

/// An answer of the front itself, in API Gateway's words.
fn error(status: u16, message: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(
        json!({ "message": message }).to_string(),
    )));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    resp
}

/// One request: read the whole body, invoke a free ingest instance, answer
/// what it answered (502 when the invoke failed, as API Gateway does).
async fn handle(
    req: Request<Incoming>,
    ingest: Pool,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return Ok(error(413, "Request Entity Too Large"));
    };
    let body = body.to_bytes();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let event = api_event(
        parts.method.as_str(),
        target,
        &headers,
        &body,
        &peer.ip().to_string(),
    );
    let Some(v) = ingest.invoke(&event).await else {
        return Ok(error(502, "Internal Server Error"));
    };
    let Some(status) = v.get("statusCode").and_then(Value::as_u64) else {
        return Ok(error(502, "Internal Server Error"));
    };
    let text = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"] == true {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let headers = v["headers"].as_object().cloned().unwrap_or_default();
    Ok(respond(status as u16, &headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_hands_over_the_path_decoded_as_api_gateway_does() {
        let target = "/webhooks/smartlead/Ab%2Bc%2Fd%3D?token=Ab%2Bc%2Fd%3D&x=1";
        let v = api_event("POST", target, &[], b"{}", "127.0.0.1");
        assert_eq!(v["rawPath"], "/webhooks/smartlead/Ab+c/d=");
        assert_eq!(v["requestContext"]["http"]["path"], v["rawPath"]);
        assert_eq!(v["rawQueryString"], "token=Ab%2Bc%2Fd%3D&x=1");
        assert_eq!(v["queryStringParameters"]["token"], "Ab+c/d=");
        // Still a valid API Gateway 2.0 event.
        let e: aws_lambda_events::event::apigw::ApiGatewayV2httpRequest =
            serde_json::from_value(v).expect("2.0 event");
        assert_eq!(e.raw_path.as_deref(), Some("/webhooks/smartlead/Ab+c/d="));
    }

    /// A function under the emulator that echoes the request body back
    /// after `delay`; returns its invoke URL.
    async fn echo_function(delay: std::time::Duration) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/invoke", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let echo = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let event = req.into_body().collect().await.unwrap().to_bytes();
                    let event: Value = serde_json::from_slice(&event).unwrap();
                    tokio::time::sleep(delay).await;
                    let answer = json!({"statusCode": 200, "body": event["body"]});
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer.to_string()))))
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), echo);
                tokio::spawn(conn);
            }
        });
        url
    }

    async fn raw_request(addr: SocketAddr, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_chunked_body_reaches_the_function_whole() {
        let url = echo_function(std::time::Duration::ZERO).await;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_http(l, Pool::new(vec![url]), std::future::pending()));
        let answer = raw_request(
            addr,
            "POST /webhooks/smartlead HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
             6\r\n{\"a\": \r\n2\r\n1}\r\n0\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("{\"a\": 1}"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_lets_requests_in_flight_finish() {
        let url = echo_function(std::time::Duration::from_millis(500)).await;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let front = tokio::spawn(serve_http(l, Pool::new(vec![url]), async move {
            let _ = stopped.await;
        }));
        let in_flight = tokio::spawn(raw_request(
            addr,
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
        ));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stop.send(()).unwrap();
        let answer = in_flight.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("{}"), "{answer}");
        tokio::time::timeout(std::time::Duration::from_secs(5), front)
            .await
            .expect("the front stops")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
