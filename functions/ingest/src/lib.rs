//! HTTP adapter of the ingest function: API Gateway HTTP API / Function URL
//! requests (payload format 2.0) in, [`smartlead::app::ingest`] out.
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use smartlead::adapters::aws::{S3Blobs, SqsQueue};
use smartlead::app::ingest::{BlobStore, Ingest, IngestRequest, IngestResponse, Queue};
use smartlead::config::FromEnv;

pub mod wire;

pub type AwsIngest = Ingest<SqsQueue, S3Blobs>;

/// Builds the service once at cold start: configuration, secret, SDK clients.
pub async fn from_env() -> Result<AwsIngest, smartlead::config::ConfigError> {
    let config = smartlead::config::IngestConfig::from_process()?;
    let sdk = smartlead::adapters::aws::sdk_config().await;
    wire::ingest(&sdk, config).await
}

/// Answers one HTTP request.
pub async fn respond<Q: Queue, B: BlobStore>(svc: &Ingest<Q, B>, req: Request) -> Response<Body> {
    let (request_id, source_ip) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.request_id.clone().unwrap_or_default(),
            ctx.http.source_ip.clone().unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let request_id = if request_id.is_empty() {
        req.lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default()
    } else {
        request_id
    };
    let query_token = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("token"))
        .map(str::to_owned);
    let signature = req
        .headers()
        .get("x-smartlead-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // SmartLead's id of the event and its webhook level, for the consumer.
    let smartlead_request_id = header("x-request-id");
    let webhook_level = header("x-webhook-level");
    // lambda_http has already undone API Gateway's base64 encoding (isBase64Encoded).
    let body: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    // The event's rawPath as it came (API Gateway's HTTP API decodes it,
    // a Function URL does not); the URI is lambda_http's re-encoding of it.
    let path = match req.raw_http_path() {
        "" => req.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let out = svc
        .handle(IngestRequest {
            method: req.method().as_str(),
            path: &path,
            query_token: query_token.as_deref(),
            signature: signature.as_deref(),
            smartlead_request_id: smartlead_request_id.as_deref(),
            webhook_level: webhook_level.as_deref(),
            body,
            request_id: &request_id,
            source_ip: &source_ip,
        })
        .await;
    to_http(out)
}

fn to_http(out: IngestResponse) -> Response<Body> {
    let mut b = Response::builder().status(out.status);
    for (k, v) in out.headers {
        b = b.header(k, v);
    }
    b.body(Body::Text(out.body)).unwrap_or_else(|_| {
        let mut r = Response::new(Body::Text(r#"{"error":"internal error"}"#.into()));
        *r.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
