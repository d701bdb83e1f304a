//! A stand-in HTTP server for the third-party APIs the pipeline calls
//! (Slack, SmartLead): scripted answers, every request recorded.

/// A stand-in HTTP server (for Slack and SmartLead): answers each request
/// with the next scripted `(status, retry_after, delay)` (200 when the
/// script is empty; a 3xx carries its body as `location`) and records
/// every request. A clone shares the server's script, answers and record.
#[derive(Clone)]
pub struct StandIn {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    pub script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Scripted>>>,
    /// The body of every answer (default `{"ok":true}`).
    pub body: std::sync::Arc<std::sync::Mutex<String>>,
    /// Bodies by `METHOD /path` (no query): answers these instead of `body`.
    pub routes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// Answers computed from the request target (path and query) by
    /// `METHOD /path`, before `routes`: paged listings.
    pub handlers: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Handler>>>,
}

/// Computes an answer body from a request target (`/path?query`).
pub type Handler = std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub body: String,
    /// The status this request was answered with.
    pub status: u16,
}

#[derive(Debug, Clone, Copy)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay_ms: u64,
}

impl Scripted {
    pub fn status(status: u16) -> Scripted {
        Scripted {
            status,
            retry_after: None,
            delay_ms: 0,
        }
    }
}

impl StandIn {
    pub async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let stand_in = StandIn {
            url: format!("http://{}", listener.local_addr().expect("addr")),
            requests: Default::default(),
            script: Default::default(),
            body: std::sync::Arc::new(std::sync::Mutex::new(r#"{"ok":true}"#.to_owned())),
            routes: Default::default(),
            handlers: Default::default(),
        };
        let server = stand_in.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move { server.answer(sock).await });
            }
        });
        stand_in
    }

    /// Reads one request, records it and answers it as scripted.
    async fn answer(&self, mut sock: tokio::net::TcpStream) {
        use tokio::io::AsyncWriteExt;
        let Some((head, body)) = read_request(&mut sock).await else {
            return;
        };
        let mut first = head.lines().next().unwrap_or_default().split(' ');
        let s = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Scripted::status(200));
        if s.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(s.delay_ms)).await;
        }
        let method = first.next().unwrap_or_default().to_owned();
        let target = first.next().unwrap_or_default().to_owned();
        let route = format!("{method} {}", target.split('?').next().unwrap_or_default());
        let handler = self.handlers.lock().unwrap().get(&route).cloned();
        let computed = handler.map(|h| h(&target));
        self.requests.lock().unwrap().push(Recorded {
            method,
            target,
            body: String::from_utf8_lossy(&body).to_string(),
            status: s.status,
        });
        let answer = computed.unwrap_or_else(|| {
            self.routes
                .lock()
                .unwrap()
                .get(&route)
                .cloned()
                .unwrap_or_else(|| self.body.lock().unwrap().clone())
        });
        let _ = sock.write_all(response(s, &answer).as_bytes()).await;
        let _ = sock.shutdown().await;
    }

    /// Answers `method path` (no query) with what `f` computes from the
    /// request's target (`/path?query`), e.g. one page of a listing by its
    /// `offset`. Scripted statuses (429s) still apply first.
    pub fn route_fn(
        &self,
        method_and_path: &str,
        f: impl Fn(&str) -> String + Send + Sync + 'static,
    ) {
        self.handlers
            .lock()
            .unwrap()
            .insert(method_and_path.to_owned(), std::sync::Arc::new(f));
    }

    /// A query parameter of a request target (`/p?offset=100&limit=50`).
    pub fn query_param(target: &str, name: &str) -> Option<String> {
        let q = target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// Answers `method path` (e.g. `GET /api/v1/campaigns`, no query) with
    /// `body` from now on.
    pub fn route(&self, method_and_path: &str, body: &str) {
        self.routes
            .lock()
            .unwrap()
            .insert(method_and_path.to_owned(), body.to_owned());
    }

    /// Answers every later request with `body`.
    pub fn set_body(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_owned();
    }

    pub fn push(&self, s: Scripted) {
        self.script.lock().unwrap().push_back(s);
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn delivered(&self) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

/// One HTTP request's head and body (`content-length` bytes, or up to the
/// end of the stream); None when the stream ends before the head does.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Some((head, buf.split_off(head_end)))
}

/// The HTTP answer: the scripted status (and retry-after), `answer` as
/// the body; a redirect goes where its body says.
fn response(s: Scripted, answer: &str) -> String {
    let mut resp = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        s.status,
        answer.len()
    );
    if let Some(r) = s.retry_after {
        resp.push_str(&format!("retry-after: {r}\r\n"));
    }
    if (300..400).contains(&s.status) {
        resp.push_str(&format!("location: {}\r\n", answer.trim()));
    }
    resp.push_str("\r\n");
    resp.push_str(answer);
    resp
}
