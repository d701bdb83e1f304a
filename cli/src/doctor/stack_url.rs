//! The stack's webhook URL, and what a webhook's URL is next to it (the
//! stack's with a live secret, with a stale one, or another).

/// The stack's URL: its `WebhookUrl` template and the accepted secrets
/// (`current` or `current,next`).
pub struct StackUrl {
    pub template: String,
    pub secrets: Vec<String>,
    /// An agency's stack: each client's own URL and secrets (see
    /// `smartlead::app::ingest::client_url`); empty otherwise.
    pub clients: std::collections::BTreeMap<String, StackUrl>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum UrlIs {
    /// The stack's URL with an accepted secret.
    Current,
    /// The stack's URL with a secret it no longer accepts.
    StaleSecret,
    /// Some other URL.
    Other,
}

impl StackUrl {
    /// The client whose URL `url` is (an agency's stack).
    pub fn client_of(&self, url: &str) -> Option<&str> {
        self.clients.iter().find_map(|(c, u)| {
            let prefix = u.template.split("<secret>").next().unwrap_or_default();
            url.starts_with(prefix).then_some(c.as_str())
        })
    }

    pub fn classify(&self, url: &str) -> UrlIs {
        if let Some(c) = self.client_of(url) {
            return self.clients[c].classify(url);
        }
        if self
            .secrets
            .iter()
            .any(|s| smartlead::app::ingest::webhook_url(&self.template, s) == url)
        {
            return UrlIs::Current;
        }
        let (prefix, suffix) = self
            .template
            .split_once("<secret>")
            .unwrap_or((&self.template, ""));
        if url.len() > prefix.len() + suffix.len()
            && url.starts_with(prefix)
            && url.ends_with(suffix)
        {
            UrlIs::StaleSecret
        } else {
            UrlIs::Other
        }
    }

    /// The URL to register: with the newest secret (the next one during a rotation).
    pub fn url(&self) -> String {
        smartlead::app::ingest::webhook_url(
            &self.template,
            self.secrets.last().map(String::as_str).unwrap_or_default(),
        )
    }
}

/// A URL that is safe to print: the host only (a URL may carry a secret).
pub(super) fn host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let h = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let h = h.rsplit('@').next().unwrap_or(h);
    if h.is_empty() {
        "(no URL)".into()
    } else {
        h.to_owned()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A stack whose URL takes either of two secrets (the doctor's tests share it).
    pub(in crate::doctor) fn stack() -> StackUrl {
        StackUrl {
            template: "https://x.example/webhooks/smartlead/<secret>".into(),
            secrets: vec!["old".into(), "new".into()],
            clients: Default::default(),
        }
    }

    #[test]
    fn urls_are_the_stacks_with_either_secret_a_stale_one_or_another() {
        let s = stack();
        assert_eq!(
            s.classify("https://x.example/webhooks/smartlead/old"),
            UrlIs::Current
        );
        assert_eq!(
            s.classify("https://x.example/webhooks/smartlead/new"),
            UrlIs::Current
        );
        assert_eq!(
            s.classify("https://x.example/webhooks/smartlead/gone"),
            UrlIs::StaleSecret
        );
        assert_eq!(
            s.classify("https://y.example/webhooks/smartlead/new"),
            UrlIs::Other
        );
        assert_eq!(
            s.classify("https://x.example/webhooks/smartlead/"),
            UrlIs::Other
        );
        // During a rotation, fixes register the next secret.
        assert_eq!(s.url(), "https://x.example/webhooks/smartlead/new");
        let q = StackUrl {
            template: "https://x.example/hook?token=<secret>".into(),
            secrets: vec!["a b".into()],
            clients: Default::default(),
        };
        assert_eq!(
            q.classify("https://x.example/hook?token=a%20b"),
            UrlIs::Current
        );
        assert_eq!(
            q.classify("https://x.example/hook?token=zz"),
            UrlIs::StaleSecret
        );
        assert_eq!(
            host("https://user:pw@h.example:8443/p?token=s"),
            "h.example:8443"
        );
    }
}
