//! Who may post a webhook: the live secret(s), compared in constant time,
//! the ways of presenting one, and the URL that carries it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One secret, held as its SHA-256 so comparisons are constant-time and
/// independent of length.
#[derive(Clone)]
pub struct Key {
    raw: Vec<u8>,
    digest: [u8; 32],
}

impl Key {
    fn new(s: &str) -> Option<Key> {
        let s = s.trim();
        (!s.is_empty()).then(|| Key {
            raw: s.as_bytes().to_vec(),
            digest: Sha256::digest(s.as_bytes()).into(),
        })
    }

    fn matches(&self, digest: &[u8; 32]) -> bool {
        bool::from(digest.ct_eq(&self.digest))
    }
}

/// The live secrets, current first: one, or two while a rotation is under
/// way (`current,next`).
pub type Keys = Vec<Key>;

/// Parses `current` or `current,next` (white space around each trimmed).
pub fn parse_keys(s: &str) -> Result<Keys, String> {
    let keys: Option<Keys> = s.split(',').map(Key::new).collect();
    match keys {
        Some(k) if (1..=2).contains(&k.len()) => Ok(k),
        Some(_) => Err("holds more than two secrets (current,next)".into()),
        None => Err("is blank or has a blank entry".into()),
    }
}

/// The secret(s) a webhook must carry: any live one is accepted. In AWS the
/// SSM parameter is re-read at most every `SECRET_REFRESH_SECONDS`, so a
/// rotation needs no cold start (see [`crate::config::refresh`]).
#[derive(Clone)]
pub struct Secret {
    keys: std::sync::Arc<crate::config::refresh::Refreshing<Keys>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// One secret; `None` for an empty or blank one: the pipeline refuses
    /// to run without one.
    pub fn new(s: &str) -> Option<Secret> {
        Key::new(s).map(|k| Secret::from_keys(vec![k]))
    }

    /// `current` or `current,next`.
    pub fn list(s: &str) -> Result<Secret, String> {
        parse_keys(s).map(Secret::from_keys)
    }

    fn from_keys(keys: Keys) -> Secret {
        Secret {
            keys: std::sync::Arc::new(crate::config::refresh::Refreshing::fixed(keys)),
        }
    }

    /// Secrets re-read with `load` (e.g. from SSM) at most every `every`.
    pub fn refreshing(
        initial: Keys,
        every: std::time::Duration,
        load: crate::config::refresh::Loader<Keys>,
    ) -> Secret {
        Secret {
            keys: std::sync::Arc::new(crate::config::refresh::Refreshing::new(
                "webhook secret",
                initial,
                every,
                load,
            )),
        }
    }

    /// Re-reads the secrets when due (once per request at most).
    pub async fn refresh_if_due(&self) {
        self.keys.refresh_if_due().await
    }

    /// The live secrets (always there: the ingest does not start without).
    fn keys(&self) -> std::sync::Arc<Keys> {
        self.keys.current().unwrap_or_default()
    }

    /// How many secrets are live (2 during a rotation).
    pub fn live(&self) -> usize {
        self.keys().len()
    }

    /// A token as it arrived in the path: API Gateway's HTTP API hands the
    /// path over percent-decoded, a Function URL still encoded, so the
    /// token matches as given or decoded once.
    /// A trailing `/` may be the secret's own (base64) or a client's habit.
    pub fn matches_path_token(&self, token: &str) -> bool {
        let one = |t: &str| {
            self.matches(t)
                || (t.contains('%') && percent_decode(t).is_some_and(|d| self.matches(&d)))
        };
        let trimmed = token.trim_end_matches('/');
        one(token) || (trimmed.len() != token.len() && one(trimmed))
    }

    /// The `token` query value as lambda_http decodes it (`+` read as a
    /// space, as in a form); a secret with a literal `+` sent unencoded
    /// matches too.
    pub fn matches_query_token(&self, token: &str) -> bool {
        self.matches(token) || (token.contains(' ') && self.matches(&token.replace(' ', "+")))
    }

    /// Whether `candidate` is one of the live secrets (each compared, in
    /// constant time).
    pub fn matches(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.keys().iter().fold(false, |any, k| any | k.matches(&d))
    }

    /// Checks `sha256=<hex>` against HMAC-SHA256(secret, body), for each
    /// live secret.
    pub fn matches_signature(&self, header: &str, body: &[u8]) -> bool {
        let hex_sig = header.trim();
        let hex_sig = hex_sig.strip_prefix("sha256=").unwrap_or(hex_sig);
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        self.keys().iter().fold(false, |any, k| {
            let ok = Hmac::<Sha256>::new_from_slice(&k.raw).is_ok_and(|mut mac| {
                mac.update(body);
                mac.verify_slice(&sig).is_ok()
            });
            any | ok
        })
    }

    /// `sha256=<hex>` for `body` with the current secret (for tests and clients).
    pub fn sign(&self, body: &[u8]) -> String {
        let keys = self.keys();
        let raw = keys.first().map(|k| k.raw.as_slice()).unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(raw).expect("HMAC takes any key length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Each client's own secret (an agency's deployment), by client id: read
/// from SSM at cold start and re-read as the shared one is.
#[derive(Clone, Default)]
pub struct ClientSecrets {
    secrets: Option<std::sync::Arc<crate::config::refresh::Refreshing<ClientKeys>>>,
}

/// Client id → that client's secret; `None` for a parameter that does
/// not hold `current` or `current,next` (its URL answers 503 until fixed:
/// the shared secret must not stand in for it).
pub type ClientKeys = std::collections::HashMap<String, Option<Secret>>;

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecrets(..)")
    }
}

impl ClientSecrets {
    pub fn fixed(keys: ClientKeys) -> ClientSecrets {
        ClientSecrets::refreshing(crate::config::refresh::Refreshing::fixed(keys))
    }

    pub fn refreshing(r: crate::config::refresh::Refreshing<ClientKeys>) -> ClientSecrets {
        ClientSecrets {
            secrets: Some(std::sync::Arc::new(r)),
        }
    }

    /// Whether client URLs exist (an agency's deployment).
    pub fn enabled(&self) -> bool {
        self.secrets.is_some()
    }

    /// What authenticates a request at `client`'s URL: the client's own
    /// secret, else the shared one. `None` while the clients' secrets could
    /// not be read, or the client's does not read (the caller answers 503,
    /// so SmartLead retries: a client with its own secret must not meet the
    /// shared one meanwhile).
    pub async fn for_client(&self, client: &str, shared: &Secret) -> Option<Secret> {
        let Some(s) = &self.secrets else {
            return Some(shared.clone());
        };
        let keys = s.get().await?;
        match keys.get(client) {
            Some(own) => own.clone(),
            None => Some(shared.clone()),
        }
    }
}

/// `%XX` sequences decoded once; `None` when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Every byte but RFC 3986's unreserved characters, so a secret is one
/// path segment and one query value whatever it holds (`+`, `/`, `=` from
/// base64 included).
const SECRET_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The webhook URL to register: `template` (the stack's `WebhookUrl`
/// output) with its `<secret>` replaced by the secret, trimmed as the
/// ingest trims it (an SSM value with a trailing newline would otherwise
/// register a URL that gets 401 forever) and percent-encoded.
pub fn webhook_url(template: &str, secret: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(secret.trim(), SECRET_ESCAPES).to_string();
    template.replace("<secret>", &encoded)
}

/// A client's webhook URL template (an agency's stack): `template` (the
/// stack's `WebhookUrl`, ending in `<secret>`) with `client/<id>/` before
/// its `<secret>`, as the ingest routes it.
pub fn client_url(template: &str, client: &str) -> String {
    template.replace("<secret>", &format!("client/{client}/<secret>"))
}

/// Which ways of presenting the secret are accepted (any one suffices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMethods {
    /// `/webhooks/smartlead/<token>`
    pub path: bool,
    /// `?token=<token>`
    pub query: bool,
    /// the `secret_key` field SmartLead puts in the body
    pub body: bool,
    /// `X-Smartlead-Signature: sha256=<hex HMAC-SHA256 of the raw body>`
    pub signature: bool,
}

impl Default for AuthMethods {
    fn default() -> Self {
        AuthMethods {
            path: true,
            query: true,
            body: true,
            signature: true,
        }
    }
}

impl AuthMethods {
    /// Parses `path,query,body,signature` (any subset, comma-separated).
    pub fn parse(s: &str) -> Result<AuthMethods, String> {
        let mut m = AuthMethods {
            path: false,
            query: false,
            body: false,
            signature: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "path" => m.path = true,
                "query" => m.query = true,
                "body" => m.body = true,
                "signature" => m.signature = true,
                other => {
                    return Err(format!(
                        "unknown auth method `{other}` (use path, query, body, signature)"
                    ))
                }
            }
        }
        if !(m.path || m.query || m.body || m.signature) {
            return Err("at least one auth method must be enabled".into());
        }
        Ok(m)
    }
}
