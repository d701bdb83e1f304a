//! What is wrong with the webhooks ([`diagnose`]), each finding with its
//! fix in words, and the updates `--fix` sends ([`fixes`]).

use super::hooks::{Campaign, Hook, Level};
use super::stack_url::{host, StackUrl, UrlIs};
use smartlead::adapters::http::smartlead::{Association, WebhookSpec};
use std::collections::{BTreeMap, BTreeSet};

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
        /// Its client (an agency's).
        client: Option<String>,
    },
    /// An agency's: a user-level webhook of this stack takes these events
    /// of every campaign, so SmartLead sends none of them to the client
    /// webhooks named: they arrive at the shared URL, past the clients'
    /// own secrets and URLs.
    ShadowsClients {
        user_hook: String,
        hooks: Vec<String>,
        events: Vec<String>,
    },
    /// An agency's: client `client`'s webhook carries another client's URL
    /// or secret (`carries` says which).
    OtherClients {
        hook: String,
        client: String,
        carries: String,
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
            Finding::StaleSecret { .. }
                | Finding::MissingEvents { hook: Some(_), .. }
                | Finding::OtherClients { .. }
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
            Finding::NoWebhook { campaign, client: None } => format!(
                "campaign {campaign} has no webhook at all (campaign, client or user level). Fix: `smartlead register --campaign {campaign} --stack {stack}`"
            ),
            Finding::NoWebhook { campaign, client: Some(c) } => format!(
                "client {c}'s campaign {campaign} has no webhook at all (campaign, client or user level): its events are lost. Fix: `smartlead register --client {c} --stack {stack}`"
            ),
            Finding::ShadowsClients { user_hook, hooks, events } => format!(
                "user-level webhook {user_hook} takes {} for every campaign, so SmartLead sends none of them to the client webhook(s) {} (a user-level webhook blocks client-level ones for the same event types): they reach the shared URL, not each client's. Fix: delete it (`smartlead delete --id {user_hook}`) once every client has its webhook (`smartlead register --client <id>`), or drop those events from it",
                events.join(","),
                hooks.join(", ")
            ),
            Finding::OtherClients { hook, client, carries } => format!(
                "client {client}'s webhook {hook} carries {carries}: one client's secret or URL must never carry another's events. Fix (--fix): re-point it at client {client}'s own URL"
            ),
        }
    }
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
        campaign_clients: campaigns
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.client.clone()?)))
            .collect(),
    };
    let mut out = Vec::new();
    for h in &hooks {
        judge.hook_findings(h, &mut out);
    }
    judge.shadowed(&hooks, &mut out);
    judge.shadows_clients(&hooks, &mut out);
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
    /// Each campaign's client (an agency's).
    campaign_clients: BTreeMap<String, String>,
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

    /// An agency's client webhook carrying another client's URL or
    /// secret: what it carries.
    /// Client-level webhooks, and campaign-level ones of a client's
    /// campaign: the webhook's client and what it carries.
    fn other_client(&self, h: &Hook) -> Option<(String, String)> {
        let own = match &h.level {
            Level::Client(c) => c,
            Level::Campaign(c) => self.campaign_clients.get(c)?,
            Level::User => return None,
        };
        let mine = self.stack.clients.get(own)?;
        match self.stack.client_of(&h.url) {
            Some(c) if c != own => return Some((own.clone(), format!("client {c}'s URL"))),
            Some(_) => {}
            None => return None,
        }
        let url = |s: &String| smartlead::app::ingest::webhook_url(&mine.template, s);
        if mine.secrets.iter().any(|s| url(s) == h.url) {
            return None;
        }
        self.stack
            .clients
            .iter()
            .find(|(c, u)| *c != own && u.secrets.iter().any(|s| url(s) == h.url))
            .map(|(c, _)| (own.clone(), format!("client {c}'s secret")))
    }

    /// A webhook's own findings: stale secret, wrong URL, inactive,
    /// another client's URL or secret.
    fn hook_findings(&self, h: &Hook, out: &mut Vec<Finding>) {
        if let Some((client, carries)) = self.other_client(h) {
            out.push(Finding::OtherClients {
                hook: h.id.clone(),
                client,
                carries,
            });
            return;
        }
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
            let (shadowed, events) = overlap(u, hooks, |h| h.level != Level::User && self.ours(h));
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

    /// An agency's: user-level webhooks of this stack taking event types
    /// from its client webhooks.
    fn shadows_clients(&self, hooks: &[&Hook], out: &mut Vec<Finding>) {
        if self.stack.clients.is_empty() {
            return;
        }
        for u in hooks
            .iter()
            .filter(|h| h.level == Level::User && self.ours(h))
        {
            let (shadowed, events) = overlap(u, hooks, |h| {
                matches!(h.level, Level::Client(_)) && self.ours(h)
            });
            if !shadowed.is_empty() {
                out.push(Finding::ShadowsClients {
                    user_hook: u.id.clone(),
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
                client: c.client.clone().filter(|_| !self.stack.clients.is_empty()),
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

/// The webhooks among `hooks` that `keep` keeps and that share event
/// types with the user-level `u`: their ids and those event types.
fn overlap(
    u: &Hook,
    hooks: &[&Hook],
    keep: impl Fn(&Hook) -> bool,
) -> (Vec<String>, BTreeSet<String>) {
    let mut shadowed = Vec::new();
    let mut events = BTreeSet::new();
    for h in hooks.iter().filter(|h| keep(h)) {
        let both: Vec<&String> = u.events.intersection(&h.events).collect();
        if !both.is_empty() {
            shadowed.push(h.id.clone());
            events.extend(both.into_iter().cloned());
        }
    }
    (shadowed, events)
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
        // An agency's client webhook goes to its client's own URL.
        let client_url = |c: &String| stack.clients.get(c).map(StackUrl::url);
        let (id, url, add): (&String, Option<String>, &[String]) = match f {
            Finding::OtherClients { hook, client, .. } => (hook, client_url(client), &[]),
            Finding::StaleSecret { hook } => {
                let of = |h: &Hook| match &h.level {
                    Level::Client(c) => client_url(c),
                    _ => stack
                        .client_of(&h.url)
                        .and_then(|c| client_url(&c.to_owned())),
                };
                let url = hooks.iter().find(|h| &h.id == hook).and_then(of);
                (hook, Some(url.unwrap_or_else(|| stack.url())), &[])
            }
            Finding::MissingEvents {
                hook: Some(hook),
                events,
                ..
            } => (hook, None, events),
            _ => continue,
        };
        let Some(spec) = specs.get(id).cloned().or_else(|| spec_of(id)) else {
            continue;
        };
        let mut spec = spec;
        if let Some(url) = url {
            spec.url = url;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::stack_url::tests::stack;

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
                campaign: "2".into(),
                client: None,
            }]
        );
        assert!(!f[0].fixable());
    }

    /// An agency's: a webhook of client 12 (client-level, or on one of its
    /// campaigns) at client 11's URL is found, and `--fix` re-points it at
    /// client 12's URL; client 11's own is left alone.
    #[test]
    fn a_client_s_webhook_on_another_client_s_url_is_found_and_re_pointed() {
        let mut s = stack();
        for c in ["11", "12"] {
            let mut u = stack();
            u.template = smartlead::app::ingest::client_url(&s.template, c);
            u.secrets = vec![format!("s{c}")];
            s.clients.insert(c.into(), u);
        }
        let at = |c: &str| s.clients[c].url();
        let wanted: BTreeSet<String> = ["EMAIL_REPLY".to_owned()].into();
        let hook = |id: &str, level: Level, url: String| Hook {
            id: id.into(),
            name: "AWS webhook pipeline".into(),
            url,
            events: wanted.clone(),
            categories: vec![],
            active: true,
            level,
        };
        let hooks = [
            hook("1", Level::Client("11".into()), at("11")),
            hook("2", Level::Campaign("102".into()), at("11")),
            hook(
                "3",
                Level::Client("12".into()),
                at("11").replace("/client/11/", "/client/12/"),
            ),
        ];
        let campaigns = [
            Campaign {
                id: "101".into(),
                client: Some("11".into()),
            },
            Campaign {
                id: "102".into(),
                client: Some("12".into()),
            },
        ];
        let f = diagnose(&campaigns, &hooks, &s, "AWS webhook pipeline", &wanted);
        let other = |hook: &str, carries: &str| Finding::OtherClients {
            hook: hook.into(),
            client: "12".into(),
            carries: carries.into(),
        };
        assert!(f.contains(&other("2", "client 11's URL")), "{f:?}");
        assert!(f.contains(&other("3", "client 11's secret")), "{f:?}");
        assert!(!f
            .iter()
            .any(|x| matches!(x, Finding::OtherClients { hook, .. } if hook == "1")));
        let fixed = fixes(&f, &hooks, &s);
        assert_eq!(fixed["2"].url, at("12"));
        assert_eq!(fixed["3"].url, at("12"));
        assert!(!fixed.contains_key("1"));
    }
}
