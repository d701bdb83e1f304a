//! `smartlead`: the operator's command line for a deployed pipeline.
//!
//! - `register`, `list`, `delete`: SmartLead webhooks pointing at the stack;
//! - `rotate-secret`: a new webhook secret without a window of 401s;
//! - `redrive`: DLQ messages back onto the queue;
//! - `replay`: events from the bus archive back onto the bus;
//! - `reconcile`: SmartLead's statistics against the state, gaps backfilled;
//! - `lead`, `status`, `doctor`, `tail`: a lead's items, the pipeline's health,
//!   SmartLead's webhooks against the stack, the functions' logs.
//!
//! The SmartLead API key comes from `SMARTLEAD_API_KEY` or an SSM parameter
//! (`--api-key-param`), never from a flag that would land in shell history.
//! AWS access uses the usual credential chain (and `AWS_ENDPOINT_URL`).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use smartlead::adapters::aws::dynamodb::budget::DynamoBudget;
use smartlead::adapters::http::smartlead::{Api, Association, WebhookSpec};
use smartlead::app::budget::RateBudget;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod doctor;
mod ops;
mod reconcile;
mod records;
mod scope;
mod status;
mod tail;

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

impl WebhookArgs {
    /// The webhook at `url`, its event types checked.
    fn spec(self, url: String) -> Result<WebhookSpec> {
        Ok(WebhookSpec {
            event_types: event_types(&self.events)?,
            name: self.name,
            url,
            association: self.target.association(),
            category_ids: self.categories.as_deref().map(list).unwrap_or_default(),
        })
    }
}

impl Target {
    fn association(self) -> Association {
        match (self.campaign, self.client, self.user) {
            (Some(c), _, _) => Association::Campaign(c),
            (_, Some(c), _) => Association::Client(c),
            _ => Association::User,
        }
    }
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
    /// records. Exits 2 when something needs attention (DLQ not empty, an
    /// alarm, rejected events, failures or effect failures in the last
    /// hour), 1 when it could not tell, 0 otherwise: fit for cron or CI.
    ///
    /// Example: `smartlead status --stack smartlead-webhooks || page-me`,
    /// `smartlead status --local`.
    Status {
        /// The status as JSON (with an `attention` list), for scripts.
        #[arg(long)]
        json: bool,
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
    /// Refuses (leaves in the DLQ) messages received longer ago than the dedup
    /// marker TTL less 15 days: their markers may be gone, and the consumer
    /// would apply them a second time.
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
    /// The consumer's dedup marker TTL in days; by default the stack's
    /// DedupTtlDays (output or parameter), else the template's default.
    #[arg(long)]
    dedup_ttl_days: Option<u64>,
    /// Move messages too old to be sure their dedup marker still exists
    /// (they may be applied twice).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ReconcileArgs {
    /// The campaigns (comma-separated ids).
    #[arg(
        long,
        required_unless_present = "all_campaigns",
        conflicts_with = "all_campaigns"
    )]
    campaign: Option<String>,
    /// Every campaign of the account but drafts.
    #[arg(long)]
    all_campaigns: bool,
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

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

async fn ssm_value(name: &str) -> Result<String> {
    let cfg = aws().await;
    smartlead::adapters::aws::ssm::secure_string(&cfg, name)
        .await
        .map_err(|e| anyhow!("{e}"))
}

async fn api_key(args: &ApiArgs) -> Result<String> {
    Ok(
        match (&args.api_key_param, std::env::var("SMARTLEAD_API_KEY")) {
            (Some(p), _) => ssm_value(p).await?,
            (None, Ok(k)) if !k.trim().is_empty() => k.trim().to_owned(),
            _ => {
                bail!("no SmartLead API key: set SMARTLEAD_API_KEY or pass --api-key-param <ssm name>")
            }
        },
    )
}

/// The SmartLead API, its calls paced by the key's rate budget in the
/// table of `stack` (`StateTableName`), shared with the stack's functions;
/// by this process alone (said on stderr) when the stack cannot be read.
async fn api(args: &ApiArgs, stack: &str) -> Result<Api> {
    let key = api_key(args).await?;
    let budget: Arc<dyn RateBudget> = match stack_budget(stack).await {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("note: SmartLead calls paced by this process alone, not with stack {stack}'s functions ({e:#})");
            Arc::new(smartlead::app::budget::InProcess::default())
        }
    };
    Ok(Api::new(&args.api_base, &key).with_budget(budget, args.requests_per_minute))
}

/// The rate budgets in a deployed stack's table.
async fn stack_budget(stack: &str) -> Result<DynamoBudget> {
    let table = output(&outputs(stack).await?, "StateTableName", stack)?;
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(&aws().await);
    Ok(DynamoBudget::new(ddb, table))
}

/// `DescribeStacks` of one stack.
async fn describe_stack(
    stack: &str,
) -> Result<aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput> {
    aws_sdk_cloudformation::Client::new(&aws().await)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_err(format!("reading stack {stack}")))
}

/// The stack's outputs, by name.
async fn outputs(stack: &str) -> Result<HashMap<String, String>> {
    let out = describe_stack(stack).await?;
    Ok(out
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// The stack's dedup marker TTL: its `DedupTtlDays` output, or parameter
/// (stacks from before the output).
async fn stack_dedup_ttl(stack: &str, o: &HashMap<String, String>) -> Result<Option<u64>> {
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .with_context(|| format!("stack {stack}: DedupTtlDays {v:?} is not a number of days"))
    };
    if let Some(v) = o.get("DedupTtlDays") {
        return parse(v).map(Some);
    }
    let out = describe_stack(stack).await?;
    let param = out.stacks().first().and_then(|s| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some("DedupTtlDays"))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
    });
    param.as_deref().map(parse).transpose()
}

fn output(o: &HashMap<String, String>, key: &str, stack: &str) -> Result<String> {
    o.get(key)
        .cloned()
        .ok_or_else(|| anyhow!("stack {stack} has no output {key}"))
}

/// A new secret: 64 hex digits (244 random bits), safe in any URL.
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn put_secret(name: &str, value: &str) -> Result<()> {
    aws_sdk_ssm::Client::new(&aws().await)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map_err(aws_err(format!("writing SSM parameter {name}")))?;
    Ok(())
}

/// The secrets a parameter holds: `current` or `current,next`.
fn secrets_of(value: &str) -> Result<Vec<String>> {
    let v: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    if v.is_empty() || v.len() > 2 || v.iter().any(String::is_empty) {
        bail!("the secret parameter must hold `current` or `current,next`");
    }
    Ok(v)
}

/// The stack's webhook URL with the secret in place of `<secret>`.
async fn stack_url(stack: &str) -> Result<String> {
    let o = outputs(stack).await?;
    let url = output(&o, "WebhookUrl", stack)?;
    let param = output(&o, "WebhookSecretParameterName", stack)?;
    // During a rotation (`current,next`) new webhooks get the next secret.
    let secrets = secrets_of(&ssm_value(&param).await?)?;
    let secret = secrets.last().map(String::as_str).unwrap_or_default();
    Ok(smartlead::app::ingest::webhook_url(&url, secret))
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The error of an AWS SDK call, with what was being done and the SDK's
/// whole error chain.
pub(crate) fn aws_err<E: std::error::Error + 'static>(
    doing: impl std::fmt::Display,
) -> impl FnOnce(E) -> anyhow::Error {
    // Causes by their Display only: never a raw response's body.
    move |e| {
        anyhow!(
            "{doing}: {}",
            smartlead::adapters::aws::error::error_chain(&e)
        )
    }
}

/// A spinner on stderr (drawn only on a terminal), ticking by itself.
pub(crate) fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Each of a comma-separated list of webhook ids, checked.
fn webhook_ids(ids: Option<&str>) -> Result<Vec<String>> {
    let ids = ids.map(list).unwrap_or_default();
    for i in &ids {
        smartlead::adapters::http::smartlead::path_id("a webhook id", i)?;
    }
    Ok(ids)
}

/// A comma-separated list of event types, each one SmartLead knows.
fn event_types(events: &str) -> Result<Vec<String>> {
    let event_types = list(events);
    for e in &event_types {
        if let smartlead::EventType::Unknown(_) = smartlead::EventType::from_wire(e) {
            bail!("unknown event type {e:?}");
        }
    }
    Ok(event_types)
}

/// The stack's webhook URL template, its secret parameter's name and the
/// secrets the parameter holds.
async fn stack_secrets(stack: &str) -> Result<(String, String, Vec<String>)> {
    let o = outputs(stack).await?;
    let template = output(&o, "WebhookUrl", stack)?;
    let param = output(&o, "WebhookSecretParameterName", stack)?;
    let secrets = secrets_of(&ssm_value(&param).await?)?;
    Ok((template, param, secrets))
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
        Cmd::Status { json, stack } => {
            if status::status(&stack, json).await? {
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

async fn tail_cmd(a: TailArgs) -> Result<()> {
    let until = a.for_secs.map(|s| Instant::now() + Duration::from_secs(s));
    if a.local {
        let ports: Vec<u16> = (0..a.ingest_instances.max(1))
            .map(|i| a.ingest_port.saturating_add(i as u16))
            .collect();
        tail::local(
            tail::local_files(&ports, a.consumer_port),
            &a.filters,
            until,
        )
        .await;
    } else {
        tail::deployed(&aws().await, &a.stack, a.since, &a.filters, until, a.poll).await?;
    }
    Ok(())
}

async fn doctor_cmd(a: DoctorArgs) -> Result<()> {
    let stack = &a.stack;
    let extra = webhook_ids(a.webhook.as_deref())?;
    let (template, _, secrets) = stack_secrets(stack).await?;
    let url = doctor::StackUrl {
        template: template.clone(),
        secrets,
    };
    let api = api(&a.api, stack).await?;
    let bar = spinner("reading campaigns and webhooks");
    // SmartLead allows 60 calls a minute: an account with many
    // campaigns takes minutes.
    let read = doctor::read(
        &api,
        &extra,
        Instant::now() + Duration::from_secs(3600),
        &bar,
    )
    .await;
    bar.finish_and_clear();
    let (campaigns, hooks) = read?;
    let wanted = list(CAMPAIGN_EVENTS).into_iter().collect();
    let findings = doctor::diagnose(&campaigns, &hooks, &url, &a.name, &wanted);
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
        for (id, spec) in doctor::fixes(&findings, &hooks, &url) {
            println!(
                "fixing webhook {id}: URL {template}, events {}",
                spec.event_types.join(",")
            );
            if let Err(e) = api.update_webhook(&id, &spec, deadline()).await {
                eprintln!("webhook {id} not fixed: {e}");
                left += 1;
            }
        }
    } else if findings.iter().any(doctor::Finding::fixable) {
        println!("run again with --fix to apply the fixes marked (--fix)");
    }
    if left > 0 {
        println!("{left} finding(s) left to fix by hand");
        std::process::exit(2);
    }
    Ok(())
}

async fn register(a: RegisterArgs) -> Result<()> {
    let url = match a.url {
        Some(u) => u,
        None => stack_url(&a.stack).await?,
    };
    let spec = a.webhook.spec(url)?;
    let api = api(&a.api, &a.stack).await?;
    let answer = match a.id {
        Some(id) => api.update_webhook(&id, &spec, deadline()).await?,
        None => api.create_webhook(&spec, deadline()).await?,
    };
    print(&answer);
    Ok(())
}

async fn rotate_secret(a: RotateArgs) -> Result<()> {
    let stack = &a.stack;
    let (template, param, secrets) = stack_secrets(stack).await?;
    if a.finish {
        let [_, next] = secrets.as_slice() else {
            bail!("no rotation under way: the parameter holds one secret");
        };
        put_secret(&param, next).await?;
        println!(
            "the old secret is retired; the functions stop accepting it within SECRET_REFRESH_SECONDS"
        );
        return Ok(());
    }
    // Everything checked before the parameter changes.
    let ids = webhook_ids(a.id.as_deref())?;
    event_types(&a.webhook.events)?;
    let api = api(&a.api, stack).await?;
    let next = match secrets.as_slice() {
        [current] => {
            let next = new_secret();
            put_secret(&param, &format!("{current},{next}")).await?;
            println!(
                "next secret written; waiting {}s until every ingest instance accepts it",
                a.wait_secs
            );
            tokio::time::sleep(Duration::from_secs(a.wait_secs)).await;
            next
        }
        [_, next] => {
            println!("a rotation is under way: re-registering with its next secret");
            next.clone()
        }
        _ => unreachable!("secrets_of gives one or two"),
    };
    let spec = a
        .webhook
        .spec(smartlead::app::ingest::webhook_url(&template, &next))?;
    for i in &ids {
        api.update_webhook(i, &spec, deadline()).await?;
        println!("webhook {i} now uses the new secret");
    }
    println!(
        "when SmartLead's retries to the old URL are over (an hour is plenty), run `smartlead rotate-secret --finish --stack {stack}`"
    );
    Ok(())
}

async fn redrive(a: RedriveArgs) -> Result<()> {
    let stack = &a.stack;
    let (dlq, queue, stack_ttl) = match (a.dlq_url, a.queue_url) {
        (Some(d), Some(q)) => (d, q, None),
        _ => {
            let o = outputs(stack).await?;
            (
                output(&o, "DeadLetterQueueUrl", stack)?,
                output(&o, "QueueUrl", stack)?,
                stack_dedup_ttl(stack, &o).await?,
            )
        }
    };
    let ttl = match (a.dedup_ttl_days, stack_ttl) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => {
            let d = smartlead::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS;
            eprintln!("dedup marker TTL: {d} days (the default; --dedup-ttl-days if the stack's DedupTtlDays differs)");
            d
        }
    };
    let options = smartlead::adapters::aws::redrive::Options {
        limit: a.limit,
        max_age: (!a.force).then(|| smartlead::adapters::aws::redrive::max_age(ttl)),
    };
    let sqs = smartlead::aws_sdk_sqs::Client::new(&aws().await);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("moving DLQ messages back to the queue");
    let done = smartlead::adapters::aws::redrive::redrive(&sqs, &dlq, &queue, &options, |d| {
        bar.set_message(d.to_string());
        bar.tick();
    })
    .await;
    bar.finish_and_clear();
    let done = done?;
    println!("moved {} message(s) from the DLQ to the queue", done.moved);
    for r in &done.refused_messages {
        println!(
            "refused {} (received {})",
            r.message_id,
            r.received_at.as_deref().unwrap_or("at an unknown time")
        );
    }
    let problems = redrive_problems(&done, ttl);
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// What a redrive left in (or could not take out of) the DLQ.
fn redrive_problems(done: &smartlead::adapters::aws::redrive::Redriven, ttl: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if done.failed > 0 {
        problems.push(format!(
            "{} message(s) could not be sent and stay in the DLQ",
            done.failed
        ));
    }
    if done.refused > 0 {
        problems.push(format!(
            "{} message(s) refused and left in the DLQ: received more than {} days ago (the dedup marker TTL, {ttl} days, less {} days), so their markers may be gone and the consumer could apply them twice; check them and pass --force to move them anyway",
            done.refused,
            ttl.saturating_sub(smartlead::adapters::aws::redrive::MARGIN_DAYS),
            smartlead::adapters::aws::redrive::MARGIN_DAYS
        ));
    }
    if done.not_deleted > 0 {
        problems.push(format!(
            "{} message(s) were sent but could not be deleted from the DLQ (run redrive again; the consumer ignores the duplicate)",
            done.not_deleted
        ));
    }
    problems
}

async fn reconcile_cmd(a: ReconcileArgs) -> Result<()> {
    let now = smartlead::domain::time::EventTime::now();
    let since = a
        .since
        .as_deref()
        .map(|s| reconcile::since(s, now))
        .transpose()?;
    let st = ops::Stack::resolve(&a.stack).await?;
    // The key's budget in the stack's table (the local one's with --local).
    let budget = Arc::new(DynamoBudget::new(st.ddb.clone(), st.table.clone()));
    let api = Api::new(&a.api.api_base, &api_key(&a.api).await?)
        .with_budget(budget, a.api.requests_per_minute);
    let hour = Instant::now() + Duration::from_secs(3600);
    let campaigns = match a.campaign {
        Some(c) => reconcile::campaign_ids(&list(&c))?,
        None => smartlead::app::reconcile::campaigns(&api, false, hour).await?,
    };
    let deployed = match &st.deployed {
        Some((name, o)) => stack_dedup_ttl(name, o).await?,
        None => None,
    };
    let (ttl, capped) = reconcile::dedup_ttl(a.dedup_ttl_days, deployed);
    if let Some(note) = capped {
        eprintln!("{note}");
    }
    let queue = smartlead::adapters::aws::SqsQueue {
        client: st.sqs.clone(),
        queue_url: st.queues().await?.0,
    };
    let store =
        smartlead::adapters::aws::dynamodb::DynamoStore::new(st.ddb.clone(), st.table.clone());
    let opts = smartlead::app::reconcile::Options {
        since,
        dry_run: a.dry_run,
        dedup_ttl_days: ttl,
        now,
        deadline: hour,
    };
    // Drawn on stderr, and only on a terminal.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} leads {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("reading SmartLead's statistics");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report =
        smartlead::app::reconcile::reconcile(&api, &store, &queue, &campaigns, &opts, &progress)
            .await;
    bar.finish_and_clear();
    let report = report?;
    let (line, left) = reconcile::summary(&report, a.dry_run);
    if a.json {
        print(&serde_json::to_value(&report)?);
    } else {
        if !report.gaps.is_empty() {
            print!("{}", reconcile::table(&report, a.dry_run));
        }
        println!("{line}");
    }
    if left {
        std::process::exit(2);
    }
    Ok(())
}

/// An RFC 3339 time as EventBridge takes it.
fn replay_time(s: &str) -> Result<aws_sdk_eventbridge::primitives::DateTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{s:?} is not an RFC 3339 time"))?;
    Ok(aws_sdk_eventbridge::primitives::DateTime::from_millis(
        t.timestamp_millis(),
    ))
}

/// The lead and campaign a replay is scoped to, each checked.
fn check_replay_scope(a: &ReplayArgs) -> Result<()> {
    if let Some(l) = &a.lead {
        if !smartlead::adapters::http::smartlead::is_valid_email(l.trim()) {
            bail!("--lead {l:?} is not an e-mail address");
        }
    }
    if let Some(c) = &a.campaign {
        smartlead::adapters::http::smartlead::path_id("--campaign", c.trim())?;
    }
    Ok(())
}

async fn replay(a: ReplayArgs) -> Result<()> {
    check_replay_scope(&a)?;
    let (archive, bus) = match (a.archive_arn.clone(), a.bus_arn.clone()) {
        (Some(ar), Some(b)) => (ar, b),
        _ => {
            let o = outputs(&a.stack).await?;
            (
                output(&o, "EventArchiveArn", &a.stack)?,
                output(&o, "EventBusArn", &a.stack)?,
            )
        }
    };
    let start = replay_time(&a.from)?;
    let end = match &a.to {
        Some(t) => replay_time(t)?,
        None => aws_sdk_eventbridge::primitives::DateTime::from_millis(
            chrono::Utc::now().timestamp_millis(),
        ),
    };
    let mut dest = aws_sdk_eventbridge::types::ReplayDestination::builder().arn(&bus);
    let name = scope::replay_name();
    let eb = aws_sdk_eventbridge::Client::new(&aws().await);
    let scoped = a.lead.is_some() || a.campaign.is_some();
    let bus_name = scope::bus_name(&bus);
    let (filters, temps) = replay_rules(&a, &eb, &bus_name, &name).await?;
    for f in &filters {
        dest = dest.filter_arns(f);
    }
    let out = match dest.build() {
        Ok(d) => {
            eb.start_replay()
                .replay_name(&name)
                .event_source_arn(&archive)
                .event_start_time(start)
                .event_end_time(end)
                .destination(d)
                .send()
                .await
        }
        Err(e) => {
            scope::remove(&eb, &bus_name, &temps).await;
            bail!("{e}");
        }
    };
    if scoped {
        if let Err(e) = out {
            scope::remove(&eb, &bus_name, &temps).await;
            return Err(aws_err("starting the replay")(e));
        }
        return scoped_replay_end(&a, &eb, &bus_name, &name, &temps).await;
    }
    let out = out.map_err(aws_err("starting the replay"))?;
    println!(
        "replay {name} started ({}): follow it with `aws events describe-replay --replay-name {name}`",
        out.state().map(|s| s.as_str()).unwrap_or("unknown state")
    );
    Ok(())
}

/// The rules a replay goes to (ARNs): with --lead or --campaign,
/// temporary copies of --rules (or of all enabled rules) narrowed to them,
/// made here and returned too; else --rules as given.
async fn replay_rules(
    a: &ReplayArgs,
    eb: &aws_sdk_eventbridge::Client,
    bus_name: &str,
    name: &str,
) -> Result<(Vec<String>, Vec<scope::Temp>)> {
    let rules = a.rules.as_deref().map(list).unwrap_or_default();
    if a.lead.is_none() && a.campaign.is_none() {
        return Ok((rules, Vec::new()));
    }
    // Rule ARNs end in `rule/<bus>/<name>`.
    let names: Vec<String> = rules
        .iter()
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned())
        .collect();
    let temps = scope::create(
        eb,
        bus_name,
        &names,
        a.lead.as_deref(),
        a.campaign.as_deref().map(str::trim),
        name,
    )
    .await?;
    Ok((temps.iter().map(|t| t.arn.clone()).collect(), temps))
}

/// Waits for a lead's or campaign's replay to end, then deletes its
/// temporary rules.
async fn scoped_replay_end(
    a: &ReplayArgs,
    eb: &aws_sdk_eventbridge::Client,
    bus_name: &str,
    name: &str,
    temps: &[scope::Temp],
) -> Result<()> {
    let bar = spinner("");
    let state = scope::wait(eb, name, &bar).await;
    bar.finish_and_clear();
    scope::remove(eb, bus_name, temps).await;
    let state = state?;
    let of: Vec<String> = [
        a.lead.as_deref().map(|l| format!("lead {}", l.trim())),
        a.campaign
            .as_deref()
            .map(|c| format!("campaign {}", c.trim())),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!(
        "replay {name} {state}: the events of {} went to the targets of {} rule(s); the temporary rules are deleted",
        of.join(" in "),
        temps.len()
    );
    if !state.starts_with("COMPLETED") {
        bail!("replay {name} ended {state}");
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
