//! `smartlead clients`: an agency's clients, kept in the table's registry
//! (`CLIENTS` / `REGISTRY`), which the consumer re-reads every minute.
//! `sync` mirrors SmartLead's clients and which campaign is whose; `set`
//! gives one client its own Slack channel or alert events. A client's own
//! webhook secret lives in SSM (`rotate-secret --client`).

use crate::api::{api, deadline};
use crate::ops::{Stack, StackArgs};
use crate::ApiArgs;
use anyhow::{anyhow, bail, Result};
use smartlead::adapters::aws::dynamodb::clients::{
    read_registry, write_registry, RegistryWriteError,
};
use smartlead::domain::client::{valid_client_id, Client, Registry};
use smartlead::domain::field_types::Id;
use std::collections::BTreeSet;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClientsArgs {
    #[command(subcommand)]
    pub cmd: Option<ClientsCmd>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(clap::Subcommand)]
pub enum ClientsCmd {
    /// The clients and their settings (the default).
    List(ListArgs),
    /// Read the clients and which campaign is whose from SmartLead's API
    /// into the registry. A client SmartLead no longer has leaves it, with
    /// its settings.
    ///
    /// Example: `smartlead clients sync`.
    Sync(SyncArgs),
    /// Give a client its own settings (the shared ones apply otherwise).
    ///
    /// Example: `smartlead clients set 12 --slack-param /smartlead-webhooks/clients/slack/12 --alert-events EMAIL_REPLY`.
    Set(SetArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
}

#[derive(clap::Args)]
pub struct SyncArgs {
    /// Empty the registry when SmartLead lists no client or no campaign at
    /// all (refused otherwise: an answer read wrong must not drop them all).
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(clap::Args)]
pub struct SetArgs {
    /// The client's id (as SmartLead gives it).
    pub id: String,
    /// The SSM SecureString holding the client's Slack incoming-webhook
    /// URL: below `<ClientParameterPath>/slack/`, where the consumer may read.
    #[arg(long, conflicts_with = "no_slack")]
    pub slack_param: Option<String>,
    /// Back to the shared Slack channel.
    #[arg(long)]
    pub no_slack: bool,
    /// The event types that alert for this client (`AlertEvents`' form).
    #[arg(long, conflicts_with = "default_alerts")]
    pub alert_events: Option<String>,
    /// Back to the stack's `AlertEvents`.
    #[arg(long)]
    pub default_alerts: bool,
    #[command(flatten)]
    pub stack: StackArgs,
}

pub async fn clients(a: ClientsArgs) -> Result<()> {
    match a.cmd {
        None => list(&a.list).await,
        Some(ClientsCmd::List(l)) => list(&l).await,
        Some(ClientsCmd::Sync(s)) => sync(&s).await,
        Some(ClientsCmd::Set(s)) => set(&s).await,
    }
}

/// The clients' SSM path: the deployed stack's `ClientParameterPath`, or
/// the local stack's; `None` when the stack keeps no clients.
pub async fn parameter_path(stack: &Stack) -> Result<Option<String>> {
    match &stack.deployed {
        Some((name, _)) => Ok(crate::aws::stack_parameter(name, "ClientParameterPath")
            .await?
            .filter(|p| !p.trim().is_empty())),
        None => Ok(Some(
            smartlead::local_stack::CLIENT_PARAMETER_PATH.to_owned(),
        )),
    }
}

/// Refuses a campaign that the registry does not give to `client`.
pub async fn check_campaign(stack: &Stack, client: &str, campaign: &str) -> Result<()> {
    let (r, _) = read_registry(&stack.ddb, &stack.table).await?;
    if r.client(client).is_none() {
        bail!("no client {client} in the registry (run `smartlead clients sync`)");
    }
    match r.campaigns.get(campaign.trim()) {
        Some(c) if c == client => Ok(()),
        Some(c) if c.is_empty() => bail!("campaign {campaign} belongs to no client"),
        Some(c) => bail!("campaign {campaign} is client {c}'s, not client {client}'s"),
        None => bail!("campaign {campaign} is not client {client}'s (run `smartlead clients sync` if it is new)"),
    }
}

/// Reads the registry, changes it with `change`, writes it; again if
/// another writer came between (three tries).
async fn update(
    stack: &Stack,
    mut change: impl FnMut(&mut Registry) -> Result<()>,
) -> Result<Registry> {
    for _ in 0..3 {
        let (mut r, version) = read_registry(&stack.ddb, &stack.table).await?;
        change(&mut r)?;
        match write_registry(&stack.ddb, &stack.table, &r, version).await {
            Ok(()) => return Ok(r),
            Err(RegistryWriteError::Changed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("the client registry kept changing under this write; try again")
}

/// The registry as SmartLead's clients and campaigns say it, each client
/// keeping its settings: the new registry and the ids that left it.
pub fn merged(
    old: &Registry,
    clients: &[serde_json::Value],
    campaigns: &[serde_json::Value],
) -> (Registry, Vec<String>) {
    let id = |v: &serde_json::Value, k: &str| Id::from_value(&v[k]).map(|i| i.to_string());
    let mut r = Registry::default();
    for c in clients {
        let Some(cid) = id(c, "id").filter(|i| valid_client_id(i)) else {
            continue;
        };
        let mut client = old.clients.get(&cid).cloned().unwrap_or_default();
        client.name = c["name"].as_str().unwrap_or_default().trim().to_owned();
        r.clients.insert(cid, client);
    }
    for c in campaigns {
        if let Some(campaign) = id(c, "id") {
            r.campaigns
                .insert(campaign, id(c, "client_id").unwrap_or_default());
        }
    }
    let gone = old
        .clients
        .keys()
        .filter(|k| !r.clients.contains_key(*k))
        .cloned()
        .collect();
    (r, gone)
}

async fn sync(a: &SyncArgs) -> Result<()> {
    let stack = Stack::resolve(&a.stack).await?;
    let api = api(&a.api, &a.stack.stack).await?;
    let clients = api.clients(deadline()).await?;
    let campaigns = api.campaigns(deadline()).await?;
    let mut gone = Vec::new();
    let r = update(&stack, |r| {
        let (new, left) = merged(r, &clients, &campaigns);
        if !a.prune && new.clients.is_empty() && !r.clients.is_empty() {
            bail!(
                "SmartLead lists no client: the registry's {} are kept (--prune empties it)",
                r.clients.len()
            );
        }
        if !a.prune && new.campaigns.is_empty() && !r.campaigns.is_empty() {
            bail!(
                "SmartLead lists no campaign: the registry's {} are kept (--prune empties them)",
                r.campaigns.len()
            );
        }
        (*r, gone) = (new, left);
        Ok(())
    })
    .await?;
    let unowned = r
        .campaigns
        .values()
        .filter(|c| !c.is_empty() && !r.clients.contains_key(*c))
        .count();
    let with_client = r.campaigns.values().filter(|c| !c.is_empty()).count();
    println!(
        "{} client(s), {with_client} campaign(s) with a client, {} without",
        r.clients.len(),
        r.campaigns.len() - with_client
    );
    for g in gone {
        println!("client {g} is no longer in SmartLead: removed, with its settings");
    }
    if unowned > 0 {
        println!("{unowned} campaign(s) name a client SmartLead did not list");
    }
    println!("the functions read the registry within a minute");
    Ok(())
}

async fn set(a: &SetArgs) -> Result<()> {
    let stack = Stack::resolve(&a.stack).await?;
    if let Some(events) = &a.alert_events {
        smartlead::app::effects::AlertRules::parse(events, "").map_err(|e| anyhow!("{e}"))?;
    }
    if let Some(param) = &a.slack_param {
        if let Some(path) = parameter_path(&stack).await? {
            let below = format!("{}/slack/", path.trim_end_matches('/'));
            if !param.starts_with(&below) {
                bail!("the consumer may read Slack URLs below {below} only (the stack's ClientParameterPath)");
            }
        }
        // A name that reads nothing would hold every alert of the client.
        if crate::aws::ssm_value_if_any(&stack.cfg, param)
            .await?
            .is_none()
        {
            bail!("no SSM parameter {param}: put the client's Slack URL there first (aws ssm put-parameter --type SecureString)");
        }
    }
    update(&stack, |r| {
        let Some(c) = r.clients.get_mut(&a.id) else {
            bail!(
                "no client {} in the registry (run `smartlead clients sync`)",
                a.id
            );
        };
        if a.no_slack {
            c.slack_param = None;
        } else if let Some(p) = &a.slack_param {
            c.slack_param = Some(p.clone());
        }
        if a.default_alerts {
            c.alert_events = None;
        } else if let Some(e) = &a.alert_events {
            c.alert_events = Some(e.clone());
        }
        Ok(())
    })
    .await?;
    println!("client {} set; the functions read it within a minute", a.id);
    Ok(())
}

/// The clients with a secret of their own (their parameters' names).
async fn own_secrets(stack: &Stack) -> Result<Option<BTreeSet<String>>> {
    let Some(path) = parameter_path(stack).await? else {
        return Ok(None);
    };
    let below = format!("{}/secrets", path.trim_end_matches('/'));
    // Their names only: no secret is decrypted.
    let params = smartlead::adapters::aws::ssm::parameters_below(&stack.cfg, &below, false)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(Some(params.into_iter().map(|(name, _)| name).collect()))
}

async fn list(a: &ListArgs) -> Result<()> {
    let stack = Stack::resolve(&a.stack).await?;
    let (r, _) = read_registry(&stack.ddb, &stack.table).await?;
    let own = own_secrets(&stack).await?;
    let rows: Vec<serde_json::Value> = r
        .clients
        .iter()
        .map(|(id, c)| row(id, c, &r, own.as_ref()))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no clients (run `smartlead clients sync`)");
        return Ok(());
    }
    println!(
        "{:<10} {:<24} {:>9}  {:<7} {:<40} alerts",
        "client", "name", "campaigns", "secret", "slack"
    );
    for v in &rows {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        println!(
            "{:<10} {:<24} {:>9}  {:<7} {:<40} {}",
            s("client_id"),
            s("name"),
            v["campaigns"],
            s("secret"),
            s("slack"),
            s("alert_events")
        );
    }
    Ok(())
}

/// One client's standing (`status --client`): its row and its
/// campaigns; `null` when the registry does not have it.
pub async fn standing(stack: &Stack, client: &str) -> Result<serde_json::Value> {
    let (r, _) = read_registry(&stack.ddb, &stack.table).await?;
    let Some(c) = r.client(client) else {
        return Ok(serde_json::Value::Null);
    };
    let own = own_secrets(stack).await?;
    let mut v = row(client, c, &r, own.as_ref());
    let campaigns: Vec<&String> = r
        .campaigns
        .iter()
        .filter(|(_, cl)| cl.as_str() == client)
        .map(|(c, _)| c)
        .collect();
    v["campaign_ids"] = serde_json::json!(campaigns);
    Ok(v)
}

/// The standing as `status` prints it.
pub fn render_standing(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let ids: Vec<String> = v["campaign_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "\nclient {} ({}): {} campaign(s) {}\n  secret {}, Slack {}, alerts: {}\n",
        s("client_id"),
        s("name"),
        ids.len(),
        ids.join(", "),
        s("secret"),
        s("slack"),
        s("alert_events")
    )
}

fn row(id: &str, c: &Client, r: &Registry, own: Option<&BTreeSet<String>>) -> serde_json::Value {
    let secret = match own {
        Some(o) if o.contains(id) => "own",
        Some(_) => "shared",
        None => "-",
    };
    serde_json::json!({
        "client_id": id,
        "name": c.name,
        "campaigns": r.campaigns.values().filter(|v| *v == id).count(),
        "secret": secret,
        "slack": c.slack_param.clone().unwrap_or_else(|| "shared".into()),
        "alert_events": c.alert_events.clone().unwrap_or_else(|| "the stack's".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sync_keeps_each_client_s_settings_and_drops_the_departed() {
        let mut old = Registry::default();
        old.clients.insert(
            "11".into(),
            Client {
                name: "Old name".into(),
                slack_param: Some("/p/slack/11".into()),
                alert_events: None,
            },
        );
        old.clients.insert("99".into(), Client::default());
        let clients = [
            json!({"id": 11, "name": "Acme"}),
            json!({"id": "12", "name": "Globex"}),
            json!({"id": "bad id", "name": "?"}),
        ];
        let campaigns = [
            json!({"id": 7, "client_id": 11}),
            json!({"id": 8, "client_id": null}),
            json!({"id": 9, "client_id": 12}),
        ];
        let (r, gone) = merged(&old, &clients, &campaigns);
        assert_eq!(gone, ["99"]);
        assert_eq!(r.clients.len(), 2);
        assert_eq!(r.clients["11"].name, "Acme");
        assert_eq!(r.clients["11"].slack_param.as_deref(), Some("/p/slack/11"));
        assert_eq!(r.campaigns.len(), 3);
        assert_eq!(r.campaigns["8"], "", "known, of no client");
        assert_eq!(r.campaigns["7"], "11");
        assert_eq!(r.campaigns["9"], "12");
    }
}
