//! `smartlead accounts`: sending accounts' health (disconnected since,
//! the last error, how often) and campaigns' bounce breaches, newest
//! first, from the table's `health` index (one `Query` per kind of
//! health item; no `Scan`).

use crate::lists::s;
use crate::ops::{Stack, StackArgs};
use anyhow::Result;
use serde::Serialize;
use smartlead::adapters::aws::dynamodb::index::{HEALTH, HEALTH_SKS};
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

#[derive(clap::Args)]
pub struct AccountsArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
}

/// A sending account that disconnected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    /// SmartLead's account id (or the sender address when no id came).
    pub account: String,
    /// `EMAIL` or `LINKEDIN`.
    pub channel: String,
    pub email: String,
    pub disconnected_since: String,
    pub last_disconnected_at: String,
    pub last_error: String,
    pub disconnects: u64,
}

/// A campaign whose bounce rate crossed SmartLead's threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    pub campaign: String,
    pub campaign_name: String,
    pub last_breach_at: String,
    pub bounce_rate: Option<f64>,
    pub threshold: Option<f64>,
    pub message: String,
    pub breaches: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub accounts: Vec<Account>,
    pub bounce_breaches: Vec<Breach>,
}

fn n(item: &Item, k: &str) -> Option<f64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads every health item through the index, and the read units spent.
pub async fn health(
    store: &smartlead::adapters::aws::dynamodb::DynamoStore,
) -> Result<(Health, f64)> {
    let mut h = Health {
        accounts: Vec::new(),
        bounce_breaches: Vec::new(),
    };
    let mut units = 0.0;
    for sk in HEALTH_SKS {
        let (items, u) = crate::lists::read_index(store, HEALTH, sk, None).await?;
        units += u;
        for it in &items {
            let pk = s(it, "pk");
            if let Some(channel) = sk.strip_prefix("HEALTH#") {
                h.accounts.push(Account {
                    account: pk.trim_start_matches("ACCOUNT#").to_owned(),
                    channel: channel.to_owned(),
                    email: s(it, "account_email"),
                    disconnected_since: s(it, "disconnected_since"),
                    last_disconnected_at: s(it, "last_disconnected_at"),
                    last_error: s(it, "error"),
                    disconnects: n(it, "disconnects").unwrap_or(0.0) as u64,
                });
            } else {
                h.bounce_breaches.push(Breach {
                    campaign: pk.trim_start_matches("CAMPAIGN#").to_owned(),
                    campaign_name: s(it, "campaign_name"),
                    last_breach_at: s(it, "last_breach_at"),
                    bounce_rate: n(it, "bounce_rate"),
                    threshold: n(it, "threshold"),
                    message: s(it, "message"),
                    breaches: n(it, "bounce_breaches").unwrap_or(0.0) as u64,
                });
            }
        }
    }
    h.accounts
        .sort_by(|a, b| b.last_disconnected_at.cmp(&a.last_disconnected_at));
    Ok((h, units))
}

/// `smartlead accounts`.
pub async fn accounts(a: &AccountsArgs) -> Result<()> {
    let stack = Stack::resolve(&a.stack).await?;
    let (h, units) = health(&stack.store()).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&h)?);
    } else {
        print!("{}", render(&h));
    }
    crate::lists::read_units(units);
    Ok(())
}

pub fn render(h: &Health) -> String {
    // SmartLead sends no event when an account reconnects: the list says
    // what disconnected and when, newest first.
    let mut out = format!("{} account(s) that disconnected\n", h.accounts.len());
    for a in &h.accounts {
        let who = if a.email.is_empty() {
            &a.account
        } else {
            &a.email
        };
        out.push_str(&format!(
            "  {} {}  since {}  last {} ({}x)  {}\n",
            a.channel,
            who.escape_debug(),
            a.disconnected_since,
            a.last_disconnected_at,
            a.disconnects,
            a.last_error.escape_debug()
        ));
    }
    out.push_str(&format!(
        "{} campaign(s) over the bounce threshold\n",
        h.bounce_breaches.len()
    ));
    for b in &h.bounce_breaches {
        let rate = b.bounce_rate.map(|r| format!("{r}%")).unwrap_or_default();
        let limit = b.threshold.map(|r| format!(" > {r}%")).unwrap_or_default();
        out.push_str(&format!(
            "  campaign {} {}  {}  {rate}{limit} ({}x)  {}\n",
            b.campaign.escape_debug(),
            b.campaign_name.escape_debug(),
            b.last_breach_at,
            b.breaches,
            b.message.escape_debug()
        ));
    }
    out
}
