//! The ingest's unit tests: routes, secrets (shared, rotating, a client's), body checks.
use super::*;
use async_trait::async_trait;

thread_local! {
    /// Bodies scanned by `probe` on this thread.
    pub(super) static PROBES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Takes every message, and keeps their attributes.
#[derive(Default)]
struct NoQueue {
    sent: std::sync::Mutex<Vec<Vec<(&'static str, String)>>>,
}
#[async_trait]
impl Queue for NoQueue {
    async fn send(&self, msg: OutgoingMessage) -> Result<String, QueueError> {
        self.sent.lock().unwrap().push(msg.attributes);
        Ok("m".into())
    }
}
#[async_trait]
impl BlobStore for NoQueue {
    fn bucket(&self) -> &str {
        "none"
    }
    async fn put(&self, _key: &str, _body: &[u8]) -> Result<(), QueueError> {
        Err(QueueError::Upload("no bucket".into()))
    }
}

fn service(auth: &str) -> Ingest<NoQueue, NoQueue> {
    Ingest {
        config: Settings {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            secret: Secret::new("s3cret").expect("secret"),
            clients: ClientSecrets::default(),
            auth: AuthMethods::parse(auth).expect("auth"),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inline_bytes: 1024,
        },
        queue: NoQueue::default(),
        blobs: None,
        metrics: Metrics::disabled(),
    }
}

fn request<'a>(path: &'a str, token: Option<&'a str>, body: &'a [u8]) -> IngestRequest<'a> {
    IngestRequest {
        method: "POST",
        path,
        query_token: token,
        signature: None,
        smartlead_request_id: None,
        webhook_level: None,
        body,
        request_id: "r",
        source_ip: "203.0.113.1",
    }
}

#[tokio::test(flavor = "current_thread")]
async fn two_live_secrets_during_a_rotation_and_the_parameter_is_re_read() {
    use std::sync::{Arc, Mutex};
    let param = Arc::new(Mutex::new("old-secret".to_owned()));
    let p = param.clone();
    let load: crate::config::refresh::Loader<Keys> = Arc::new(move || {
        let v = p.lock().unwrap().clone();
        Box::pin(async move { parse_keys(&v) })
    });
    let mut svc = service("query");
    svc.config.secret = Secret::refreshing(
        parse_keys("old-secret").unwrap(),
        std::time::Duration::from_millis(100),
        load,
    );
    let body = br#"{"event_type":"EMAIL_OPEN"}"#;
    let status = |token: &'static str| {
        let svc = &svc;
        async move {
            svc.handle(request("/webhooks/smartlead", Some(token), body))
                .await
                .status
        }
    };
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(150));
    assert_eq!(status("old-secret").await, 200);
    assert_eq!(status("next-secret").await, 401);
    // Rotation starts: both are live once the parameter is re-read.
    *param.lock().unwrap() = "old-secret,next-secret".into();
    tick().await;
    assert_eq!(status("next-secret").await, 200);
    assert_eq!(status("old-secret").await, 200);
    assert_eq!(svc.config.secret.live(), 2);
    // Finished: the old one is retired.
    *param.lock().unwrap() = "next-secret".into();
    tick().await;
    assert_eq!(status("old-secret").await, 401);
    assert_eq!(status("next-secret").await, 200);
    // A bad read (blank parameter) keeps the last good secrets.
    *param.lock().unwrap() = " ".into();
    tick().await;
    assert_eq!(status("next-secret").await, 200);
    assert!(Secret::list("a,b,c").is_err());
    assert!(Secret::list("a,").is_err());
    assert_eq!(Secret::list(" a , b\n").unwrap().live(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn without_body_auth_strangers_get_401_before_the_body_is_read() {
    let svc = service("path,query,signature");
    let mut huge = br#"{"event_type":"EMAIL_OPEN","x":""#.to_vec();
    huge.resize(DEFAULT_MAX_BODY_BYTES - 2, b'a');
    huge.extend_from_slice(b"\"}");
    let before = PROBES.with(|p| p.get());
    for body in [&huge[..], b"\xff\xfe not utf-8", b"{not json"] {
        let r = svc.handle(request("/webhooks/smartlead", None, body)).await;
        assert_eq!(r.status, 401);
        let r = svc
            .handle(request("/webhooks/smartlead", Some("wrong"), body))
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(PROBES.with(|p| p.get()), before, "no body was scanned");
    // Authorized, the body is read: an invalid one is a 400, a good one queued.
    let r = svc
        .handle(request("/webhooks/smartlead", Some("s3cret"), b"\xff"))
        .await;
    assert_eq!(r.status, 400);
    let r = svc
        .handle(request("/webhooks/smartlead", Some("s3cret"), &huge))
        .await;
    assert_eq!(r.status, 503, "too large for the queue and no bucket");
    // With body auth on, the body must be scanned for its secret_key.
    let svc = service("query,body");
    let r = svc
        .handle(request(
            "/webhooks/smartlead",
            None,
            br#"{"event_type":"EMAIL_OPEN","secret_key":"s3cret"}"#,
        ))
        .await;
    assert_eq!(r.status, 200);
}

/// An agency's URLs (`<path>/client/<id>[/<token>]`): a client's own
/// secret there, else the shared one; no secret of one client opens
/// another's URL or the shared one; the URL's client rides along.
#[tokio::test(flavor = "current_thread")]
async fn a_client_s_url_takes_its_own_secret_and_no_other_client_s() {
    let mut svc = service("path,query,body");
    let own = |s: &str| Secret::new(s).expect("secret");
    svc.config.clients = ClientSecrets::fixed(
        [
            ("11".to_string(), Some(own("a-secret"))),
            ("12".to_string(), Some(own("b-secret"))),
            ("14".to_string(), None),
        ]
        .into(),
    );
    let body = br#"{"event_type":"EMAIL_OPEN"}"#;
    let status = |path: String, token: Option<&'static str>| {
        let svc = &svc;
        async move { svc.handle(request(&path, token, body)).await.status }
    };
    let at = |c: &str, t: &str| format!("/webhooks/smartlead/client/{c}/{t}");
    assert_eq!(status(at("11", "a-secret"), None).await, 200);
    assert_eq!(
        status(at("11", "b-secret"), None).await,
        401,
        "another client's"
    );
    assert_eq!(
        status(at("11", "s3cret"), None).await,
        401,
        "the shared one"
    );
    assert_eq!(status(at("12", "a-secret"), None).await, 401);
    assert_eq!(status(at("12", "b-secret"), None).await, 200);
    // A client without a secret of its own: the shared one, no client's.
    assert_eq!(status(at("13", "s3cret"), None).await, 200);
    assert_eq!(status(at("13", "a-secret"), None).await, 401);
    // The shared URL takes no client's secret.
    assert_eq!(
        status("/webhooks/smartlead/a-secret".into(), None).await,
        401
    );
    assert_eq!(status("/webhooks/smartlead/s3cret".into(), None).await, 200);
    // The query's token and the body's secret_key, at a client's URL.
    let url = "/webhooks/smartlead/client/11".to_string();
    assert_eq!(status(url.clone(), Some("a-secret")).await, 200);
    assert_eq!(status(url.clone(), Some("s3cret")).await, 401);
    let r = svc
        .handle(request(
            &url,
            None,
            br#"{"event_type":"EMAIL_OPEN","secret_key":"b-secret"}"#,
        ))
        .await;
    assert_eq!(r.status, 401);
    // A client whose parameter does not read: 503, never the shared one.
    let r = svc.handle(request(&at("14", "s3cret"), None, body)).await;
    assert_eq!(r.status, 503);
    // Without clients (no ClientParameterPath) there is no client URL.
    let plain = service("path");
    let r = plain.handle(request(&at("11", "s3cret"), None, body)).await;
    assert_eq!(r.status, 404);
    // Not a client id: not a webhook URL.
    assert_eq!(status(at("a%20b", "a-secret"), None).await, 404);
    assert_eq!(status(at("", "a-secret"), None).await, 404);
    // Each accepted message names the URL's client (none at the shared URL).
    let sent = svc.queue.sent.lock().unwrap().clone();
    let client = |a: &Vec<(&str, String)>| {
        a.iter()
            .find(|(k, _)| *k == attr::CLIENT_ID)
            .map(|(_, v)| v.clone())
    };
    let clients: Vec<Option<String>> = sent.iter().map(client).collect();
    assert_eq!(
        clients,
        [Some("11"), Some("12"), Some("13"), None, Some("11")].map(|c| c.map(str::to_owned))
    );
    assert!(sent.iter().all(|a| a.len() < attr::MAX));
}

/// Clients' secrets not read yet (SSM failed at cold start): their
/// URLs answer 503, so SmartLead retries; the shared URL still works.
#[tokio::test(flavor = "current_thread")]
async fn a_client_s_url_waits_for_the_clients_secrets() {
    let mut svc = service("path");
    let load: crate::config::refresh::Loader<ClientKeys> =
        std::sync::Arc::new(|| Box::pin(async { Err("denied".to_string()) }));
    svc.config.clients = ClientSecrets::refreshing(crate::config::refresh::Refreshing::unread(
        "clients",
        std::time::Duration::from_secs(60),
        load,
    ));
    let body = br#"{"event_type":"EMAIL_OPEN"}"#;
    let r = svc
        .handle(request("/webhooks/smartlead/client/11/s3cret", None, body))
        .await;
    assert_eq!(r.status, 503);
    let r = svc
        .handle(request("/webhooks/smartlead/s3cret", None, body))
        .await;
    assert_eq!(r.status, 200);
}
