//! `smartlead`: the operator's command line for a deployed pipeline.
//!
//! - `register`, `list`, `delete`: SmartLead webhooks pointing at the stack;
//! - `rotate-secret`: a new webhook secret without a window of 401s;
//! - `redrive`: DLQ messages back onto the queue;
//! - `replay`: events from the bus archive back onto the bus;
//! - `reconcile`: SmartLead's statistics against the state, gaps backfilled;
//! - `lead`, `status`, `doctor`, `tail`: a lead's items, the pipeline's health,
//!   SmartLead's webhooks against the stack, the functions' logs;
//! - `records`, `suppression`: the records kept whole, the suppressed addresses;
//! - `leads`, `campaign`, `accounts`: a campaign's leads by status, its
//!   funnel (text, JSON or an HTML page), the sending accounts' health.
//!
//! The SmartLead API key comes from `SMARTLEAD_API_KEY` or an SSM parameter
//! (`--api-key-param`), never from a flag that would land in shell history.
//! AWS access uses the usual credential chain (and `AWS_ENDPOINT_URL`).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

mod accounts;
mod api;
mod aws;
mod campaign;
mod clients;
mod doctor;
mod flags;
mod lists;
mod ops;
mod reconcile;
mod records;
mod redrive;
mod register;
mod replay;
mod report;
mod scope;
mod secret;
mod status;
mod suppression;
mod tail;
mod terminal;

use api::{api, deadline};
// Also reached as `crate::aws`, `crate::outputs`, ... by the subcommands.
use aws::{aws, aws_err, output, outputs};
use doctor::doctor_cmd;
use reconcile::reconcile_cmd;
use redrive::redrive;
use register::register;
use replay::replay;
use secret::rotate_secret;
use tail::tail_cmd;
use terminal::print;

/// Event types SmartLead sends to a campaign webhook, all on by default.
const CAMPAIGN_EVENTS: &str = "EMAIL_SENT,FIRST_EMAIL_SENT,EMAIL_OPEN,EMAIL_LINK_CLICK,EMAIL_REPLY,EMAIL_BOUNCE,LEAD_UNSUBSCRIBED,LEAD_CATEGORY_UPDATED,CAMPAIGN_STATUS_CHANGED,UNTRACKED_REPLIES,MANUAL_STEP_REACHED";

#[derive(Parser)]
#[command(
    name = "smartlead",
    version,
    about = "Operate the SmartLead webhook pipeline"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct ApiArgs {
    /// SSM parameter (SecureString) holding the SmartLead API key; otherwise
    /// the key is read from SMARTLEAD_API_KEY.
    #[arg(long)]
    api_key_param: Option<String>,
    #[arg(long, env = "SMARTLEAD_API_BASE", default_value = smartlead::adapters::http::smartlead::DEFAULT_BASE)]
    api_base: String,
    /// The account's SmartLead limit, requests a minute (the stack's
    /// SmartleadRequestsPerMinute). The calls take their slots in the key's
    /// rate budget in the stack's table, shared with its functions.
    #[arg(long, env = "SMARTLEAD_REQUESTS_PER_MINUTE", default_value_t = smartlead::adapters::http::smartlead::DEFAULT_PER_MINUTE)]
    requests_per_minute: u32,
}

/// Where a webhook is attached: one of a campaign, a client or the whole
/// user (`register` requires one).
#[derive(Args)]
#[group(required = false, multiple = false)]
struct Target {
    /// The campaign the webhook(s) are attached to.
    #[arg(long)]
    campaign: Option<String>,
    /// ... or the client.
    #[arg(long)]
    client: Option<String>,
    /// ... or the whole user (a user webhook overrides client and campaign webhooks).
    #[arg(long)]
    user: bool,
}

/// What `register` and `rotate-secret` tell SmartLead about a webhook,
/// but its URL.
#[derive(Args)]
struct WebhookArgs {
    #[command(flatten)]
    target: Target,
    /// Event types the webhook(s) receive (comma-separated).
    #[arg(long, default_value = CAMPAIGN_EVENTS)]
    events: String,
    /// Lead category ids for LEAD_CATEGORY_UPDATED (comma-separated).
    #[arg(long)]
    categories: Option<String>,
    #[arg(long, default_value = "AWS webhook pipeline")]
    name: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show every item the table holds for a lead: per-campaign state,
    /// profile, suppression, open tasks.
    ///
    /// Example: `smartlead lead jane.doe@acme-corp.com` (deployed stack
    /// `smartlead-webhooks`), `smartlead lead jane.doe@acme-corp.com --local --json`.
    Lead {
        /// The lead's e-mail address (any case).
        email: String,
        /// The items as JSON, by sort key, for scripts.
        #[arg(long)]
        json: bool,
        /// Also the lead's events of the last --days, from the stack's
        /// archive: replayed to a temporary queue through a temporary rule
        /// narrowed to the lead (nothing else receives them); takes minutes.
        #[arg(long)]
        events: bool,
        #[arg(long, default_value_t = 7, requires = "events")]
        days: i64,
        #[command(flatten)]
        stack: ops::StackArgs,
    },
    /// The pipeline's health; exit code 2 when something needs attention.
    ///
    /// Queue and DLQ depths, the oldest message's age, alarms in ALARM, processed / duplicate / rejected / unknown
    /// counts and failures over the last hour and day (the functions'
    /// metrics), unattributed events, the last REJECTED and UNATTRIBUTED
    /// records. Exits 2 when something needs attention (DLQ not empty,
    /// webhooks sent back and waiting, an alarm, rejected events, failures,
    /// effect failures or webhooks sent back in the last hour), 1 when it
    /// could not tell, 0 otherwise: fit for cron or CI.
    ///
    /// Example: `smartlead status --stack smartlead-webhooks || page-me`,
    /// `smartlead status --local`.
    Status {
        /// The status as JSON (with an `attention` list), for scripts.
        #[arg(long)]
        json: bool,
        /// Also one client's standing (an agency's): its campaigns, its
        /// own secret, Slack channel and alert events.
        #[arg(long)]
        client: Option<String>,
        #[command(flatten)]
        stack: ops::StackArgs,
    },
    /// Check SmartLead's webhooks against the stack, with a fix for each finding.
    ///
    /// Reads every campaign's
    /// webhooks (and the user- or client-level ones given with --webhook)
    /// and reports, each with its fix: a user-level webhook elsewhere
    /// shadowing this stack's for the same event types; webhooks of this
    /// pipeline pointing at another URL or carrying a secret the stack no
    /// longer accepts; event types the stack processes that no webhook
    /// subscribes to; inactive webhooks; campaigns with no webhook at all.
    /// `--fix` applies the safe fixes (re-point the URL, add missing event
    /// types) after showing them. Exits 2 while something is left to fix.
    ///
    /// Example: `smartlead doctor --stack smartlead-webhooks --webhook 4711`,
    /// then `smartlead doctor --fix`.
    Doctor(DoctorArgs),
    /// Follow both functions' logs, one line per record and per effect.
    ///
    /// A line shows the event type, outcome and dedup key. A deployed
    /// stack's log groups: the last --since seconds, then CloudWatch Logs
    /// live tail (logs:StartLiveTail), or FilterLogEvents every 2 s where
    /// live tail is unavailable or with --poll; `--local` follows the local
    /// stack's log files.
    ///
    /// Example: `smartlead tail --type EMAIL_REPLY --outcome applied`,
    /// `smartlead tail --local --key EMAIL_BOUNCE:`.
    Tail(TailArgs),
    /// Create (or, with --id, update) a SmartLead webhook for the stack's URL.
    Register(RegisterArgs),
    /// List a campaign's webhooks, or show one.
    List {
        #[arg(long, required_unless_present = "id")]
        campaign: Option<String>,
        #[arg(long)]
        id: Option<String>,
        /// The stack whose SmartLead rate budget the call shares.
        #[arg(long, default_value = "smartlead-webhooks")]
        stack: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a webhook.
    Delete {
        #[arg(long)]
        id: String,
        /// The stack whose SmartLead rate budget the call shares.
        #[arg(long, default_value = "smartlead-webhooks")]
        stack: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Rotate the webhook secret without a window of 401s: write a new
    /// secret as the next one (the parameter becomes `current,next`, both
    /// accepted), wait until every ingest instance has re-read it, then
    /// re-register the given webhooks (--id, with the same target and
    /// events flags as `register`) with the new URL. Run again with other
    /// --id/target flags to re-register more webhooks with the same next
    /// secret. Once SmartLead's retries to the old URL are over (an hour is
    /// plenty), `rotate-secret --finish` retires the old secret.
    RotateSecret(RotateArgs),
    /// Move DLQ messages back onto the queue (after fixing what failed them).
    ///
    /// Refuses (leaves in the DLQ) messages received longer ago than
    /// DedupTtlDays less 15 days: their effect markers and first-seen records
    /// may be gone, and the consumer could run their alerts or apply their
    /// time-keyed records a second time.
    Redrive(RedriveArgs),
    /// Find events SmartLead never delivered, from its own statistics, and
    /// backfill them exactly once.
    ///
    /// Pages through each campaign's statistics (and its leads' message
    /// history) within SmartLead's rate limits, checks every send, open,
    /// reply, bounce and unsubscribe against the keys the store absorbed, and
    /// prints the gaps (lead, campaign, what is missing, since when). Without
    /// --dry-run each gap that can be keyed exactly like its real webhook is
    /// queued as a synthesized webhook (`source: reconcile`) for the
    /// consumer; a late webhook, a second run or the backfill of a fact
    /// already stored is a duplicate. A gap is backfilled only in a form
    /// well established for its type in its campaign (matched by at least 3
    /// stored facts and 90% of them); unsubscribes, facts whose message
    /// history was unavailable, and what the statistics cannot key (clicks,
    /// opens past a step's first: count mismatches, not gaps) are reported
    /// only. Exits 2 when gaps are
    /// left (any, with --dry-run; reported-only ones otherwise).
    ///
    /// Example: `smartlead reconcile --campaign 4711 --since 7d --dry-run`,
    /// `smartlead reconcile --all-campaigns --since 48h`.
    Reconcile(ReconcileArgs),
    /// Re-publish archived events of a time range onto the bus (all, or one
    /// lead's or campaign's).
    Replay(ReplayArgs),
    /// List the records kept whole, oldest first: rejected events (with
    /// their raw body), untracked replies, events of unknown types, events
    /// that name no lead.
    ///
    /// Each day's records of a kind are spread over 16 partitions; this
    /// reads the days since --since (a span back from now, or a time),
    /// every partition at once, and merges them by time.
    ///
    /// Example: `smartlead records rejected --since 24h`,
    /// `smartlead records unattributed --since 7d --json --local`.
    Records(records::RecordsArgs),
    /// List every suppressed address (bounced or unsubscribed), newest
    /// first, with its first reason, campaign and time: for the CRM and
    /// the other sending tools.
    ///
    /// Reads the table's `suppressed` index (one Query, every page; no
    /// Scan). `--csv` writes a header row and one row per address, email
    /// first, as import screens take it.
    ///
    /// Example: `smartlead suppression --since 7d --csv > suppressed.csv`.
    Suppression(suppression::SuppressionArgs),
    /// List a campaign's leads in one status, newest first, with the
    /// time, the deepest step sent, the category and the reply's preview.
    ///
    /// Reads the status's index (or the suppression list, for bounced and
    /// unsubscribed) and one BatchGetItem for the page shown; no Scan.
    ///
    /// Example: `smartlead leads --campaign 42 --status replied --since 7d --csv`.
    Leads(lists::LeadsArgs),
    /// Show a campaign's funnel: leads per status, per day, replies per
    /// step, categories and the newest replies; `--html` writes it as one
    /// self-contained page (charts and a table; opens offline).
    ///
    /// Example: `smartlead campaign 42 --since 30d --html report.html`.
    Campaign(campaign::CampaignArgs),
    /// List the sending accounts that disconnected (since when, the last
    /// error, how often) and the campaigns over the bounce threshold.
    ///
    /// Example: `smartlead accounts --json`.
    Accounts(accounts::AccountsArgs),
    /// An agency's clients: `sync` reads them and which campaign is whose
    /// from SmartLead; `set` gives one its own Slack channel or alert
    /// events; alone, lists them with their settings.
    ///
    /// Example: `smartlead clients sync`, then `smartlead clients`.
    Clients(clients::ClientsArgs),
}

#[derive(Args)]
struct DoctorArgs {
    #[arg(long, default_value = "smartlead-webhooks")]
    stack: String,
    /// User- or client-level webhooks to check too (comma-separated ids,
    /// e.g. from `smartlead register --user`).
    #[arg(long)]
    webhook: Option<String>,
    /// The name this pipeline's webhooks are registered with.
    #[arg(long, default_value = "AWS webhook pipeline")]
    name: String,
    /// Apply the safe fixes (re-point URLs, add missing event types).
    #[arg(long)]
    fix: bool,
    /// Only this client's campaigns and the webhooks that reach them (an
    /// agency's).
    #[arg(long)]
    client: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
struct TailArgs {
    #[arg(long, default_value = "smartlead-webhooks")]
    stack: String,
    /// Follow the local stack's log files instead.
    #[arg(long)]
    local: bool,
    /// Start this many seconds back (deployed stack).
    #[arg(long, default_value_t = 300)]
    since: i64,
    /// Stop after this many seconds (default: follow until Ctrl-C).
    #[arg(long = "for")]
    for_secs: Option<u64>,
    /// Poll (FilterLogEvents) instead of using live tail.
    #[arg(long)]
    poll: bool,
    /// The local stack's first ingest port, ingest instances and consumer port.
    #[arg(long, default_value_t = smartlead::local_stack::INGEST_PORT)]
    ingest_port: u16,
    #[arg(long, default_value_t = smartlead::local_stack::INGEST_INSTANCES)]
    ingest_instances: usize,
    #[arg(long, default_value_t = smartlead::local_stack::CONSUMER_PORT)]
    consumer_port: u16,
    #[command(flatten)]
    filters: tail::Filters,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("register_target").required(true).args(["campaign", "client", "user"])))]
struct RegisterArgs {
    #[command(flatten)]
    webhook: WebhookArgs,
    /// The webhook URL; by default the stack's WebhookUrl with its secret.
    #[arg(long)]
    url: Option<String>,
    /// The stack whose URL to register.
    #[arg(long, default_value = "smartlead-webhooks")]
    stack: String,
    /// Update this webhook instead of creating one.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
struct RotateArgs {
    #[arg(long, default_value = "smartlead-webhooks")]
    stack: String,
    /// Webhooks to re-register with the new URL (comma-separated ids).
    #[arg(long, required_unless_present = "finish")]
    id: Option<String>,
    #[command(flatten)]
    webhook: WebhookArgs,
    /// Seconds to wait after writing the next secret before SmartLead is
    /// given the new URL: at least the functions' SECRET_REFRESH_SECONDS.
    #[arg(long, default_value_t = 330)]
    wait_secs: u64,
    /// Second step: retire the old secret (the parameter keeps only the new one).
    #[arg(long, conflicts_with = "id")]
    finish: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
struct RedriveArgs {
    #[arg(long, default_value = "smartlead-webhooks")]
    stack: String,
    /// The DLQ and queue URLs, instead of the stack's outputs.
    #[arg(long, requires = "queue_url")]
    dlq_url: Option<String>,
    #[arg(long, requires = "dlq_url")]
    queue_url: Option<String>,
    /// Move at most this many.
    #[arg(long)]
    limit: Option<usize>,
    /// How long the consumer's effect markers and first-seen records live,
    /// in days; by default the stack's
    /// DedupTtlDays (output or parameter), else the template's default.
    #[arg(long)]
    dedup_ttl_days: Option<u64>,
    /// Move messages too old to be sure their effect markers and first-seen
    /// records still exist (their alerts may run twice).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ReconcileArgs {
    /// The campaigns (comma-separated ids).
    #[arg(
        long,
        required_unless_present_any = ["all_campaigns", "client"],
        conflicts_with_all = ["all_campaigns", "client"]
    )]
    campaign: Option<String>,
    /// Every campaign of the account but drafts.
    #[arg(long, conflicts_with = "client")]
    all_campaigns: bool,
    /// Every campaign of this client but drafts (an agency's): only its
    /// gaps are checked and backfilled.
    #[arg(long)]
    client: Option<String>,
    /// Only events at or after this time: RFC 3339, or a span back from
    /// now (`48h`, `7d`). Default: as far back as the dedup markers live.
    #[arg(long)]
    since: Option<String>,
    /// Report the gaps; queue nothing.
    #[arg(long)]
    dry_run: bool,
    /// The report as JSON, for scripts.
    #[arg(long)]
    json: bool,
    /// The consumer's dedup marker TTL in days (facts older than it less
    /// 15 days are not checked); by default, and at most, the deployed
    /// stack's DedupTtlDays, else the template's default.
    #[arg(long)]
    dedup_ttl_days: Option<u64>,
    #[command(flatten)]
    stack: ops::StackArgs,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
struct ReplayArgs {
    #[arg(long, default_value = "smartlead-webhooks")]
    stack: String,
    /// Start of the range (RFC 3339).
    #[arg(long)]
    from: String,
    /// End of the range (RFC 3339); default now.
    #[arg(long)]
    to: Option<String>,
    /// Only to these rules of the bus (ARNs, comma-separated): e.g. a rule
    /// matching one lead's `detail.normalized.lead_email`.
    #[arg(long)]
    rules: Option<String>,
    /// Only the events of this lead (e-mail address): the replay goes to
    /// temporary copies of the rules (all enabled ones, or --rules)
    /// narrowed to the lead, with the same targets, deleted when it ends.
    /// A target whose policy names the original rule's ARN (an SQS queue
    /// policy's aws:SourceArn, a Lambda permission) must also allow
    /// `rule/<bus>/smartlead-replay-*`.
    ///
    /// Example: `smartlead replay --from 2026-11-01T00:00:00Z --lead jane@acme.example`.
    #[arg(long)]
    lead: Option<String>,
    /// Only the events of this campaign (id), the same way.
    #[arg(long)]
    campaign: Option<String>,
    /// The archive and bus ARNs, instead of the stack's outputs.
    #[arg(long, requires = "bus_arn")]
    archive_arn: Option<String>,
    #[arg(long, requires = "archive_arn")]
    bus_arn: Option<String>,
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Lead {
            email,
            json,
            events,
            days,
            stack,
        } => ops::lead(&stack, &email, json, events.then_some(days.max(1))).await?,
        Cmd::Records(a) => records::records(&a).await?,
        Cmd::Suppression(a) => suppression::suppression(&a).await?,
        Cmd::Leads(a) => lists::leads(&a).await?,
        Cmd::Campaign(a) => campaign::campaign(&a).await?,
        Cmd::Accounts(a) => accounts::accounts(&a).await?,
        Cmd::Clients(a) => clients::clients(a).await?,
        Cmd::Status {
            json,
            client,
            stack,
        } => {
            if status::status(&stack, json, client.as_deref()).await? {
                std::process::exit(2);
            }
        }
        Cmd::Tail(a) => tail_cmd(a).await?,
        Cmd::Doctor(a) => doctor_cmd(a).await?,
        Cmd::Register(a) => register(a).await?,
        Cmd::List {
            campaign,
            id,
            stack,
            api: args,
        } => {
            let api = api(&args, &stack).await?;
            match (id, campaign) {
                (Some(id), _) => print(&api.get_webhook(&id, deadline()).await?),
                (None, Some(c)) => {
                    print(&Value::Array(api.campaign_webhooks(&c, deadline()).await?))
                }
                (None, None) => bail!("--campaign or --id"),
            }
        }
        Cmd::Delete {
            id,
            stack,
            api: args,
        } => {
            let api = api(&args, &stack).await?;
            print(&api.delete_webhook(&id, deadline()).await?);
        }
        Cmd::RotateSecret(a) => rotate_secret(a).await?,
        Cmd::Redrive(a) => redrive(a).await?,
        Cmd::Reconcile(a) => reconcile_cmd(a).await?,
        Cmd::Replay(a) => replay(a).await?,
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `register` names what the webhook is for (a campaign, a client or
    /// the user) or is refused before anything is called.
    #[test]
    fn register_needs_exactly_one_target() {
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["smartlead", "register"], args].concat());
        assert!(parse(&[]).is_err(), "no target");
        assert!(
            parse(&["--campaign", "1", "--user"]).is_err(),
            "two targets"
        );
        assert!(parse(&["--campaign", "1"]).is_ok());
        assert!(parse(&["--user"]).is_ok());
    }
}
