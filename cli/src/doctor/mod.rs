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
use std::time::{Duration, Instant};

pub async fn doctor_cmd(a: DoctorArgs) -> Result<()> {
    let stack = &a.stack;
    let extra = webhook_ids(a.webhook.as_deref())?;
    let (template, _, secrets) = stack_secrets(stack).await?;
    let url = StackUrl {
        template: template.clone(),
        secrets,
    };
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
