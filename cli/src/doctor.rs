//! `smartlead doctor`: reads SmartLead's webhooks (every campaign's, and any
//! user- or client-level ones they list or `--webhook` names) and checks
//! them against the stack's URL and secret. The checks are plain functions
//! of what was read ([`diagnose`]); `--fix` applies the safe fixes
//! (re-point a URL, add missing event types) through the API.

use anyhow::Result;
use serde_json::Value;
use smartlead::adapters::http::smartlead::{Api, Association, WebhookSpec};
use std::collections::{BTreeMap, BTreeSet};

/// What a webhook is attached to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    User,
    Client(String),
    Campaign(String),
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub events: BTreeSet<String>,
    pub categories: Vec<String>,
    pub active: bool,
    pub level: Level,
}

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

fn keys_set_true(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .filter(|(_, on)| on.as_bool().unwrap_or(true))
            .map(|(k, _)| k.clone())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned).or_else(|| id_of(Some(x))))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// A webhook as SmartLead lists it (field names as in its create call; a
/// list under a campaign without an association is that campaign's).
pub fn parse_hook(v: &Value, listed_under: Option<&str>) -> Option<Hook> {
    let id = id_of(v.get("id"))?;
    let campaign = id_of(v.get("email_campaign_id")).or_else(|| id_of(v.get("campaign_id")));
    let client = id_of(v.get("client_id"));
    let level = match v.get("association_type") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("user") => Level::User,
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Level::User,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("client") => {
            Level::Client(client.clone().unwrap_or_default())
        }
        Some(Value::Number(n)) if n.as_u64() == Some(2) => {
            Level::Client(client.clone().unwrap_or_default())
        }
        _ => match (campaign, listed_under) {
            (Some(c), _) => Level::Campaign(c),
            (None, Some(c)) => Level::Campaign(c.to_owned()),
            (None, None) => match client {
                Some(c) => Level::Client(c),
                None => Level::User,
            },
        },
    };
    let mut events: BTreeSet<String> = keys_set_true(v.get("event_type_map")).into_iter().collect();
    events.extend(keys_set_true(v.get("event_types")));
    let active = match (v.get("is_active"), v.get("active"), v.get("status")) {
        (Some(Value::Bool(b)), _, _) | (_, Some(Value::Bool(b)), _) => *b,
        (_, _, Some(Value::String(s))) => !s.eq_ignore_ascii_case("inactive"),
        _ => true,
    };
    Some(Hook {
        id,
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        url: v
            .get("webhook_url")
            .or_else(|| v.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        events,
        categories: keys_set_true(v.get("category_id_map")),
        active,
        level,
    })
}

/// The stack's URL: its `WebhookUrl` template and the accepted secrets
/// (`current` or `current,next`).
pub struct StackUrl {
    pub template: String,
    pub secrets: Vec<String>,
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
    pub fn classify(&self, url: &str) -> UrlIs {
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
fn host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let h = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let h = h.rsplit('@').next().unwrap_or(h);
    if h.is_empty() {
        "(no URL)".into()
    } else {
        h.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A user-level webhook elsewhere receives these events of every
    /// campaign, so SmartLead does not send them to this stack's webhook.
    Shadowed {
        user_hook: String,
        host: String,
        hooks: Vec<String>,
        events: Vec<String>,
    },
    /// A webhook meant for this stack (its name, or the pipeline's path)
    /// points somewhere else.
    WrongUrl {
        hook: String,
        host: String,
    },
    /// The stack's URL with a secret it no longer accepts: every call is a 401.
    StaleSecret {
        hook: String,
    },
    /// Event types the stack processes that no webhook of this stack
    /// subscribes to for this campaign; `hook` can take them.
    MissingEvents {
        campaign: String,
        events: Vec<String>,
        hook: Option<String>,
    },
    Inactive {
        hook: String,
    },
    /// No webhook at all (campaign, client or user level) for this campaign.
    NoWebhook {
        campaign: String,
    },
}

impl Finding {
    /// Whether `--fix` applies it.
    pub fn fixable(&self) -> bool {
        matches!(
            self,
            // Not `WrongUrl`: a webhook at another URL may be another stack's
            // (staging and prod in one SmartLead account); it is re-pointed
            // only by hand.
            Finding::StaleSecret { .. } | Finding::MissingEvents { hook: Some(_), .. }
        )
    }

    /// The problem and its fix, in words.
    pub fn explain(&self, stack: &str) -> String {
        match self {
            Finding::Shadowed {
                user_hook,
                host,
                hooks,
                events,
            } => format!(
                "user-level webhook {user_hook} ({host}) receives {} for every campaign, so SmartLead does not send them to this stack's webhook(s) {}. Fix: point it at the stack (`smartlead register --user --id {user_hook} --stack {stack}`) or delete it (`smartlead delete --id {user_hook}`)",
                events.join(","),
                hooks.join(", ")
            ),
            Finding::WrongUrl { hook, host } => format!(
                "webhook {hook} is this pipeline's but points at {host}, not stack {stack}. If it should be this stack's (not another stack's in the same SmartLead account), re-point it: `smartlead register --id {hook} --stack {stack}` with its campaign, client or --user"
            ),
            Finding::StaleSecret { hook } => format!(
                "webhook {hook} carries a secret the stack no longer accepts: every delivery gets 401 and is lost. Fix (--fix): re-point it with the current secret"
            ),
            Finding::MissingEvents { campaign, events, hook: Some(h) } => format!(
                "campaign {campaign}: no webhook of this stack subscribes to {}. Fix (--fix): add them to webhook {h}",
                events.join(",")
            ),
            Finding::MissingEvents { campaign, events, hook: None } => format!(
                "campaign {campaign}: no webhook of this stack subscribes to {}. Fix: `smartlead register --campaign {campaign} --stack {stack}`",
                events.join(",")
            ),
            Finding::Inactive { hook } => format!(
                "webhook {hook} is inactive: SmartLead sends it nothing. Fix: re-activate it in SmartLead (Settings, Webhooks), or delete it and `smartlead register` again"
            ),
            Finding::NoWebhook { campaign } => format!(
                "campaign {campaign} has no webhook at all (campaign, client or user level). Fix: `smartlead register --campaign {campaign} --stack {stack}`"
            ),
        }
    }
}

/// A campaign: its id and its client's.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    pub client: Option<String>,
}

/// Everything wrong with the webhooks, for the event types `wanted`.
pub fn diagnose(
    campaigns: &[Campaign],
    hooks: &[Hook],
    stack: &StackUrl,
    pipeline_name: &str,
    wanted: &BTreeSet<String>,
) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    let hooks: Vec<&Hook> = hooks.iter().filter(|h| seen.insert(h.id.clone())).collect();
    let judge = Judge {
        stack,
        pipeline_name,
    };
    let mut out = Vec::new();
    for h in &hooks {
        judge.hook_findings(h, &mut out);
    }
    judge.shadowed(&hooks, &mut out);
    for c in campaigns {
        out.extend(judge.campaign_finding(c, &hooks, wanted));
    }
    out
}

/// What [`diagnose`] judges webhooks by: the stack's URL and the name this
/// pipeline's webhooks are registered with.
struct Judge<'a> {
    stack: &'a StackUrl,
    pipeline_name: &'a str,
}

impl Judge<'_> {
    fn is(&self, h: &Hook) -> UrlIs {
        self.stack.classify(&h.url)
    }

    fn meant_for_us(&self, h: &Hook) -> bool {
        h.name == self.pipeline_name || h.url.contains("/webhooks/smartlead")
    }

    /// Ours: the stack's URL (or meant to be, and fixed by --fix), active.
    fn ours(&self, h: &Hook) -> bool {
        h.active && (self.is(h) != UrlIs::Other || self.meant_for_us(h))
    }

    /// A webhook's own findings: stale secret, wrong URL, inactive.
    fn hook_findings(&self, h: &Hook, out: &mut Vec<Finding>) {
        match self.is(h) {
            UrlIs::StaleSecret => out.push(Finding::StaleSecret { hook: h.id.clone() }),
            UrlIs::Other if self.meant_for_us(h) => out.push(Finding::WrongUrl {
                hook: h.id.clone(),
                host: host(&h.url),
            }),
            _ => {}
        }
        if !h.active && (self.is(h) != UrlIs::Other || self.meant_for_us(h)) {
            out.push(Finding::Inactive { hook: h.id.clone() });
        }
    }

    /// User-level webhooks elsewhere taking event types from ours.
    fn shadowed(&self, hooks: &[&Hook], out: &mut Vec<Finding>) {
        let user_elsewhere = hooks
            .iter()
            .filter(|h| h.level == Level::User && h.active && !self.ours(h));
        for u in user_elsewhere {
            let mut shadowed = Vec::new();
            let mut events = BTreeSet::new();
            for h in hooks
                .iter()
                .filter(|h| h.level != Level::User && self.ours(h))
            {
                let both: Vec<&String> = u.events.intersection(&h.events).collect();
                if !both.is_empty() {
                    shadowed.push(h.id.clone());
                    events.extend(both.into_iter().cloned());
                }
            }
            if !shadowed.is_empty() {
                out.push(Finding::Shadowed {
                    user_hook: u.id.clone(),
                    host: host(&u.url),
                    hooks: shadowed,
                    events: events.into_iter().collect(),
                });
            }
        }
    }

    /// A campaign with no webhook, or with event types no webhook of ours takes.
    fn campaign_finding(
        &self,
        c: &Campaign,
        hooks: &[&Hook],
        wanted: &BTreeSet<String>,
    ) -> Option<Finding> {
        let applies = |h: &Hook| match &h.level {
            Level::User => true,
            Level::Client(id) => c.client.as_deref() == Some(id.as_str()),
            Level::Campaign(id) => *id == c.id,
        };
        let all: Vec<&&Hook> = hooks.iter().filter(|h| applies(h)).collect();
        if all.is_empty() {
            return Some(Finding::NoWebhook {
                campaign: c.id.clone(),
            });
        }
        let covered: BTreeSet<String> = all
            .iter()
            .filter(|h| self.ours(h))
            .flat_map(|h| h.events.iter().cloned())
            .collect();
        let missing: Vec<String> = wanted.difference(&covered).cloned().collect();
        if missing.is_empty() {
            return None;
        }
        // The campaign's own webhook of this stack takes them, else its client's.
        let taker = all
            .iter()
            // Only a webhook at this stack's URL takes events by --fix.
            .filter(|h| self.ours(h) && h.level != Level::User && self.is(h) != UrlIs::Other)
            .min_by_key(|h| match h.level {
                Level::Campaign(_) => 0,
                _ => 1,
            })
            .map(|h| h.id.clone());
        Some(Finding::MissingEvents {
            campaign: c.id.clone(),
            events: missing,
            hook: taker,
        })
    }
}

/// The updates `--fix` sends: per webhook, its new URL and added events.
pub fn fixes(
    findings: &[Finding],
    hooks: &[Hook],
    stack: &StackUrl,
) -> BTreeMap<String, WebhookSpec> {
    let mut specs: BTreeMap<String, WebhookSpec> = BTreeMap::new();
    let spec_of = |id: &str| -> Option<WebhookSpec> {
        let h = hooks.iter().find(|h| h.id == id)?;
        Some(WebhookSpec {
            name: h.name.clone(),
            url: h.url.clone(),
            association: match &h.level {
                Level::User => Association::User,
                Level::Client(c) => Association::Client(c.clone()),
                Level::Campaign(c) => Association::Campaign(c.clone()),
            },
            event_types: h.events.iter().cloned().collect(),
            category_ids: h.categories.clone(),
        })
    };
    for f in findings {
        let (id, url, add): (&String, bool, &[String]) = match f {
            Finding::StaleSecret { hook } => (hook, true, &[]),
            Finding::MissingEvents {
                hook: Some(hook),
                events,
                ..
            } => (hook, false, events),
            _ => continue,
        };
        let Some(spec) = specs.get(id).cloned().or_else(|| spec_of(id)) else {
            continue;
        };
        let mut spec = spec;
        if url {
            spec.url = stack.url();
        }
        for e in add {
            if !spec.event_types.contains(e) {
                spec.event_types.push(e.clone());
            }
        }
        specs.insert(id.clone(), spec);
    }
    specs
}

/// Reads every campaign and webhook: campaigns, each campaign's webhooks,
/// and the webhooks named by `extra` (user- or client-level ones).
pub async fn read(
    api: &Api,
    extra: &[String],
    deadline: std::time::Instant,
    progress: &indicatif::ProgressBar,
) -> Result<(Vec<Campaign>, Vec<Hook>)> {
    let mut campaigns = Vec::new();
    let mut hooks = Vec::new();
    let listed = api.campaigns(deadline).await?;
    for (i, c) in listed.iter().enumerate() {
        let Some(id) = id_of(c.get("id")) else {
            continue;
        };
        progress.set_message(format!("campaign {}/{}: {id}", i + 1, listed.len()));
        for h in api.campaign_webhooks(&id, deadline).await? {
            hooks.extend(parse_hook(&h, Some(&id)));
        }
        campaigns.push(Campaign {
            id,
            client: id_of(c.get("client_id")),
        });
    }
    for id in extra {
        let v = api.get_webhook(id, deadline).await?;
        hooks.extend(parse_hook(&v, None));
    }
    Ok((campaigns, hooks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stack() -> StackUrl {
        StackUrl {
            template: "https://x.example/webhooks/smartlead/<secret>".into(),
            secrets: vec!["old".into(), "new".into()],
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

    #[test]
    fn webhooks_parse_from_either_shape_smartlead_uses() {
        let h = parse_hook(
            &json!({"id": "7", "association_type": 2, "client_id": 9, "event_types": ["EMAIL_OPEN"], "status": "INACTIVE"}),
            Some("1"),
        )
        .unwrap();
        assert_eq!(h.level, Level::Client("9".into()));
        assert!(h.events.contains("EMAIL_OPEN"));
        assert!(!h.active);
        let h = parse_hook(
            &json!({"id": 8, "event_type_map": {"EMAIL_OPEN": true, "EMAIL_SENT": false}}),
            Some("3"),
        )
        .unwrap();
        assert_eq!(h.level, Level::Campaign("3".into()));
        assert_eq!(h.events.len(), 1);
        assert!(h.active);
        assert!(parse_hook(&json!({"id": "../x"}), None).is_none());
    }

    #[test]
    fn a_client_webhook_covers_its_clients_campaigns_only() {
        let s = stack();
        let wanted: BTreeSet<String> = ["EMAIL_REPLY".to_owned()].into();
        let hook = Hook {
            id: "5".into(),
            name: "AWS webhook pipeline".into(),
            url: s.url(),
            events: wanted.clone(),
            categories: vec![],
            active: true,
            level: Level::Client("9".into()),
        };
        let campaigns = [
            Campaign {
                id: "1".into(),
                client: Some("9".into()),
            },
            Campaign {
                id: "2".into(),
                client: None,
            },
        ];
        let f = diagnose(&campaigns, &[hook], &s, "AWS webhook pipeline", &wanted);
        assert_eq!(
            f,
            [Finding::NoWebhook {
                campaign: "2".into()
            }]
        );
        assert!(!f[0].fixable());
    }
}
