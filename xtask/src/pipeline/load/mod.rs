//! `xtask load`: a Monday reply wave against the local stack, with
//! stand-ins that enforce the limits AWS, Slack and SmartLead enforce
//! (`test_support::standins::limits`), and an account of what arrived where.
//!
//! The run: the stack ([`super::Stack`]) with its functions pointed at the
//! stand-ins (DynamoDB through the throttling proxy, Slack and SmartLead at
//! theirs, list hygiene on, the consumer's template `Timeout`, the queue's
//! template `VisibilityTimeout`, EventBridge and SNS on a moto of their own:
//! [`Side`]), consumer instances as many as the event
//! sources' `MaximumConcurrency` ([`fleet`]); the mix of webhooks
//! ([`mix`]) POSTed by concurrent clients on its schedule ([`drive`]); a
//! wait until the queues are empty; then the account ([`account`]) from
//! the stand-ins' records and a scan of the table, never from the
//! pipeline's own metrics ([`report`]).

pub mod account;
pub mod drive;
pub mod fleet;
pub mod mix;
pub mod report;
pub mod side;

use crate::pipeline::template::Template;
use crate::pipeline::{Options, Ports, Stack};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::standins::limits::{DynamoThrottle, SlackLimit, SmartleadLimit};

pub use report::Report;
pub use side::{Queue, Side};

/// How big a run, and against what.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Webhooks POSTed (second deliveries included).
    pub webhooks: usize,
    /// Over how long.
    pub run: Duration,
    /// Concurrent HTTP clients.
    pub clients: usize,
    /// Where `smartlead-ingest` and `smartlead-consumer` are.
    pub bin_dir: PathBuf,
    /// Ingest instances behind the front.
    pub ingest_instances: usize,
    /// Consumer instances for the webhook queue (default: the template's
    /// `ConsumerMaxConcurrency`) and for the effects queue (the template's
    /// `MaximumConcurrency` of that event source).
    pub consumers: Option<usize>,
    pub effect_consumers: Option<usize>,
    /// `HYGIENE`: `block` or `unsubscribe`.
    pub hygiene: String,
    /// The queues' visibility timeout (default: the template's).
    pub visibility_secs: Option<u32>,
    /// How long to wait for the queues to empty after the last POST.
    pub drain: Duration,
}

impl LoadOptions {
    /// The full run of BENCHMARKS.md: 20,000 webhooks in 5 minutes from 32 clients.
    pub fn full(bin_dir: PathBuf) -> LoadOptions {
        LoadOptions {
            webhooks: 20_000,
            run: Duration::from_secs(300),
            clients: 32,
            bin_dir,
            ingest_instances: 4,
            consumers: None,
            effect_consumers: None,
            hygiene: "block".into(),
            visibility_secs: None,
            drain: Duration::from_secs(30 * 60),
        }
    }
}

/// The API key the functions use at the SmartLead stand-in.
pub const API_KEY: &str = "load-test-key";

/// A running load: the stack, the stand-ins, the consumers, the mix.
pub struct Harness {
    pub stack: Arc<Stack>,
    pub slack: SlackLimit,
    pub smartlead: SmartleadLimit,
    pub dynamodb: DynamoThrottle,
    pub fleet: fleet::Fleet,
    pub mix: mix::Mix,
    pub options: LoadOptions,
    /// What the clients got back, once [`Harness::drive`] ran.
    pub posted: Vec<drive::Posted>,
    pub drained: Option<drive::Drained>,
    pub started: Instant,
    /// The effects queue, the bus and the alert topic, on motos of their own.
    pub side: Side,
    /// The webhook queue and its DLQ (the stack's moto).
    pub webhooks: Queue,
    pub webhooks_dlq: Queue,
    /// What the alert topic's and the bus's tap queues held (read once).
    taps: tokio::sync::Mutex<(Vec<Tapped>, Vec<Tapped>)>,
    /// A client that waits longer than the stack's (10 s) for the busy
    /// DynamoDB Local: the account's scan.
    pub ddb: smartlead::aws_sdk_dynamodb::Client,
}

/// How long the account's reads of the busy stand-ins may take.
const PATIENCE: Duration = Duration::from_secs(120);

pub(crate) fn patient_timeouts() -> smartlead::aws_sdk_sqs::config::timeout::TimeoutConfig {
    smartlead::aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .operation_timeout(PATIENCE)
        .operation_attempt_timeout(PATIENCE)
        .build()
}

/// A message read from a tap queue, and when.
type Tapped = (Instant, String);

impl Harness {
    /// Starts the stack, the stand-ins and the consumers, and builds the mix.
    pub async fn start(root: &Path, options: LoadOptions) -> Result<Harness> {
        let t = Template::load(root)?;
        let visibility = match options.visibility_secs {
            Some(v) => v,
            None => template_number(&t, "WebhookQueue", &["VisibilityTimeout"])?,
        };
        let stack_options = Options {
            bin_dir: options.bin_dir.clone(),
            ingest_instances: options.ingest_instances,
            visibility_secs: visibility,
            ..Options::debug()
        };
        let ports = Ports::free(stack_options.ingest_instances);
        let stack = Arc::new(Stack::start(root, &ports, &stack_options).await?);
        stack.serve_front().await?;
        let side = Side::start(&t, options.visibility_secs).await?;
        let slack = SlackLimit::start().await?;
        let smartlead = SmartleadLimit::start().await?;
        let dynamodb = DynamoThrottle::start(
            &stack.dynamodb.endpoint(),
            "pk",
            "sk",
            test_support::standins::limits::dynamodb::UNITS_PER_SECOND,
        )
        .await?;
        let mut env =
            fleet::consumer_env(&t, &stack, &slack, &smartlead, &dynamodb, &options.hygiene)?;
        side.point(&mut env);
        let fleet = fleet::Fleet::start(&t, &options, env)?;
        let rules = fleet.rules()?;
        let webhooks_sqs = smartlead::aws_sdk_sqs::Client::from_conf(
            stack
                .sqs
                .config()
                .to_builder()
                .timeout_config(patient_timeouts())
                .build(),
        );
        let mix = mix::build(
            root,
            options.webhooks,
            options.run,
            &mix::Rules {
                alerts: &rules.0,
                hygiene: &rules.1,
            },
        )?;
        Ok(Harness {
            slack,
            smartlead,
            dynamodb,
            fleet,
            mix,
            options,
            posted: Vec::new(),
            drained: None,
            started: Instant::now(),
            taps: Default::default(),
            side,
            webhooks: Queue {
                sqs: webhooks_sqs.clone(),
                url: stack.queue_url.clone(),
            },
            webhooks_dlq: Queue {
                sqs: webhooks_sqs,
                url: stack.dlq_url.clone(),
            },
            ddb: smartlead::aws_sdk_dynamodb::Client::from_conf(
                stack
                    .ddb
                    .config()
                    .to_builder()
                    .timeout_config(patient_timeouts())
                    .build(),
            ),
            stack,
        })
    }

    /// POSTs the mix on its schedule while the pollers run.
    pub async fn drive(&mut self) -> Result<()> {
        self.fleet
            .poll(self.webhooks.clone(), self.side.effects.clone());
        self.started = Instant::now();
        let url = format!(
            "http://127.0.0.1:{}/webhooks/smartlead?token={}",
            self.stack.ports.http,
            crate::pipeline::TOKEN
        );
        self.posted = drive::post_all(&url, &self.mix, self.options.clients, self.started).await;
        Ok(())
    }

    /// Waits until the webhook and effects queues are empty (or the drain
    /// time is over), printing progress.
    pub async fn drain(&mut self) -> Result<()> {
        self.drained = Some(drive::drain(self, self.options.drain).await?);
        Ok(())
    }

    /// Every message the alert topic (SNS) and the bus (EventBridge) have
    /// delivered to their tap queues so far.
    pub async fn taps(&self) -> Result<(Vec<Tapped>, Vec<Tapped>)> {
        let mut taps = self.taps.lock().await;
        taps.0
            .extend(self.read_tap(crate::pipeline::ALERT_TAP).await?);
        taps.1
            .extend(self.read_tap(crate::pipeline::BUS_TAP).await?);
        Ok(taps.clone())
    }

    /// Reads a tap queue to its end. What it reads stays hidden for 12
    /// hours (no deletes: half the calls to a busy moto).
    async fn read_tap(&self, name: &str) -> Result<Vec<Tapped>> {
        let sqs = &self.side.taps;
        let url = sqs.get_queue_url().queue_name(name).send().await?;
        let url = url.queue_url.context("tap queue url")?;
        let mut out = Vec::new();
        loop {
            let r = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(12 * 3600)
                .send()
                .await?;
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                return Ok(out);
            }
            let at = Instant::now();
            out.extend(
                msgs.iter()
                    .map(|m| (at, m.body().unwrap_or_default().to_owned())),
            );
        }
    }

    /// The account of the run, from the stand-ins and the table.
    pub async fn account(&self) -> Result<Report> {
        account::account(self).await
    }
}

/// A number property of a template resource (`!Ref` resolved).
pub(crate) fn template_number<T: std::str::FromStr>(
    t: &Template,
    resource: &str,
    path: &[&str],
) -> Result<T> {
    let mut v = t.props(resource)?;
    for p in path {
        v = &v[*p];
    }
    t.resolve(v)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("template.yaml: {resource} {}", path.join(".")))
}

/// The whole run: start, drive, drain, account; prints the report.
pub async fn run(root: &Path, options: LoadOptions) -> Result<Report> {
    println!(
        "== load: {} webhooks in {} s from {} clients ({})",
        options.webhooks,
        options.run.as_secs(),
        options.clients,
        options.bin_dir.display()
    );
    let mut h = Harness::start(root, options).await?;
    println!("{}", h.fleet.describe());
    h.drive().await?;
    h.drain().await?;
    let report = h.account().await?;
    println!("{}", report.markdown());
    Ok(report)
}
