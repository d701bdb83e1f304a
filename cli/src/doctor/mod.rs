//! `smartlead doctor`: reads SmartLead's webhooks (every campaign's, and any
//! user- or client-level ones they list or `--webhook` names) and checks
//! them against the stack's URL and secret. The checks are plain functions
//! of what was read ([`diagnose`]); `--fix` applies the safe fixes
//! (re-point a URL, add missing event types) through the API.

mod findings;
mod hooks;
mod stack_url;

use crate::api::{api, deadline};
use crate::flags::{list, webhook_ids};
use crate::secret::stack_secrets;
use crate::terminal::spinner;
use crate::{DoctorArgs, CAMPAIGN_EVENTS};
use anyhow::Result;
use findings::{diagnose, fixes, Finding};
use hooks::read;
use stack_url::StackUrl;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// An agency's stack (`ClientParameterPath` set): the URL and secrets of
/// every client its campaigns and webhooks name; none otherwise.
async fn client_urls(
    stack: &str,
    campaigns: &[hooks::Campaign],
    hooks: &[hooks::Hook],
) -> Result<BTreeMap<String, StackUrl>> {
    let agency = crate::aws::stack_parameter(stack, "ClientParameterPath")
        .await?
        .is_some_and(|p| !p.trim().is_empty());
    let mut out = BTreeMap::new();
    if !agency {
        return Ok(out);
    }
    let named = campaigns
        .iter()
        .filter_map(|c| c.client.clone())
        .chain(hooks.iter().filter_map(|h| match &h.level {
            hooks::Level::Client(c) => Some(c.clone()),
            _ => None,
        }));
    for c in named.collect::<BTreeSet<String>>() {
        if !smartlead::domain::client::valid_client_id(&c) {
            continue;
        }
        let (template, _, secrets) = stack_secrets(stack, Some(&c)).await?;
        let clients = BTreeMap::new();
        out.insert(
            c,
            StackUrl {
                template,
                secrets,
                clients,
            },
        );
    }
    Ok(out)
}

/// What concerns `client` alone: its campaigns, and the webhooks that can
/// reach them (theirs, its client-level ones, the user-level ones).
fn only_client(
    client: &str,
    campaigns: Vec<hooks::Campaign>,
    hooks: Vec<hooks::Hook>,
) -> (Vec<hooks::Campaign>, Vec<hooks::Hook>) {
    let campaigns: Vec<hooks::Campaign> = campaigns
        .into_iter()
        .filter(|c| c.client.as_deref() == Some(client))
        .collect();
    let hooks = hooks
        .into_iter()
        .filter(|h| match &h.level {
            hooks::Level::User => true,
            hooks::Level::Client(c) => c == client,
            hooks::Level::Campaign(id) => campaigns.iter().any(|c| &c.id == id),
        })
        .collect();
    (campaigns, hooks)
}

pub async fn doctor_cmd(a: DoctorArgs) -> Result<()> {
    let stack = &a.stack;
    let extra = webhook_ids(a.webhook.as_deref())?;
    let (template, _, secrets) = stack_secrets(stack, None).await?;
    let api = api(&a.api, stack).await?;
    let bar = spinner("reading campaigns and webhooks");
    // SmartLead allows 60 calls a minute: an account with many
    // campaigns takes minutes.
    let read = read(
        &api,
        &extra,
        Instant::now() + Duration::from_secs(3600),
        &bar,
    )
    .await;
    bar.finish_and_clear();
    let (campaigns, hooks) = read?;
    let (campaigns, hooks) = match &a.client {
        Some(c) => only_client(c, campaigns, hooks),
        None => (campaigns, hooks),
    };
    let url = StackUrl {
        template: template.clone(),
        secrets,
        clients: client_urls(stack, &campaigns, &hooks).await?,
    };
    let wanted = list(CAMPAIGN_EVENTS).into_iter().collect();
    let findings = diagnose(&campaigns, &hooks, &url, &a.name, &wanted);
    println!(
        "read {} campaign(s) and {} webhook(s) against stack {stack} ({template})",
        campaigns.len(),
        hooks.len()
    );
    if findings.is_empty() {
        println!(
            "OK: every campaign's webhooks reach the stack with every event type it processes"
        );
        return Ok(());
    }
    for f in &findings {
        println!("- {}", f.explain(stack));
    }
    let mut left = findings.iter().filter(|f| !a.fix || !f.fixable()).count();
    if a.fix {
        for (id, spec) in fixes(&findings, &hooks, &url) {
            println!(
                "fixing webhook {id}: URL {template}, events {}",
                spec.event_types.join(",")
            );
            if let Err(e) = api.update_webhook(&id, &spec, deadline()).await {
                eprintln!("webhook {id} not fixed: {e}");
                left += 1;
            }
        }
    } else if findings.iter().any(Finding::fixable) {
        println!("run again with --fix to apply the fixes marked (--fix)");
    }
    if left > 0 {
        println!("{left} finding(s) left to fix by hand");
        std::process::exit(2);
    }
    Ok(())
}
