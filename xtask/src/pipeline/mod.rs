//! The whole pipeline on this machine: DynamoDB Local and moto stand in for
//! AWS, both function binaries run under the Lambda Runtime Interface
//! Emulator, an HTTP front ([`front`]) turns requests into API Gateway 2.0
//! events, and a poller ([`poller`]) does what the SQS event source mapping
//! does. `xtask local` runs it ([`run`]), `xtask show` inspects it
//! ([`show`]), `xtask load` drives it at the services' limits ([`load`]),
//! the end-to-end tests in `xtask/tests/` and the `bench` binary start
//! their own ([`Stack::start`]); [`template`] reads template.yaml for it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use test_support::standins;

pub mod front;
pub mod load;
pub mod poller;
pub mod pool;
mod resources;
pub mod run;
pub mod show;
pub mod template;

pub use front::{api_event, serve_http};
pub use poller::{depth, poll_effects, poll_once, poll_queue, Poll};
pub use pool::Pool;
use resources::create_resources;
pub use resources::{create_integrations, create_queues, queue_arn};
pub use run::{run, sam_env_vars, RunFlags, DOCKER_HOST};
pub use show::{follow_logs, readable, show};
use template::Template;

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub dynamodb: u16,
    pub moto: u16,
    /// The first ingest instance; further instances take the next ports.
    pub ingest: u16,
    pub consumer: u16,
    /// Chosen by [`Ports::free`]: a service whose port was taken before it
    /// bound it moves to another (the stack's `ports` say where it ended up).
    pub movable: bool,
}

impl Ports {
    /// Free ports for a test or benchmark stack.
    pub fn free(ingest_instances: usize) -> Ports {
        let p = standins::free_port;
        let ingest = standins::free_ports(ingest_instances.max(1) as u16);
        Ports {
            http: p(),
            dynamodb: p(),
            moto: p(),
            ingest,
            consumer: p(),
            movable: true,
        }
    }
}

pub const TOKEN: &str = test_support::TOKEN;
pub const TABLE: &str = smartlead::local_stack::TABLE;
pub const QUEUE: &str = smartlead::local_stack::QUEUE;
pub const DLQ: &str = smartlead::local_stack::DLQ;
pub const EFFECTS_QUEUE: &str = smartlead::local_stack::EFFECTS_QUEUE;
pub const EFFECTS_DLQ: &str = smartlead::local_stack::EFFECTS_DLQ;
/// The effects queue's `maxReceiveCount` (template.yaml; checked at start).
const EFFECTS_MAX_RECEIVE: &str = "40";
pub const BUCKET: &str = "smartlead-claims";
pub const BUS: &str = "smartlead-events";
/// A queue subscribed to everything on the bus, so the local stack shows
/// what the fan-out published.
pub const BUS_TAP: &str = "smartlead-bus-tap";
pub const ALERT_TOPIC: &str = "smartlead-alerts";
/// A queue subscribed to the alert topic.
pub const ALERT_TAP: &str = "smartlead-alerts-tap";

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the `smartlead-ingest` and `smartlead-consumer` binaries are.
    pub bin_dir: std::path::PathBuf,
    /// Ingest functions behind the HTTP front. Each emulator answers one
    /// invoke at a time; Lambda would start more instances under load.
    pub ingest_instances: usize,
    /// The queue's visibility timeout here (the template's is minutes).
    pub visibility_secs: u32,
    /// Emit EMF metrics to the function logs (off for readable local logs).
    pub metrics: bool,
    /// Keep DynamoDB Local's data on disk here, so it survives a restart.
    pub dynamodb_dir: Option<std::path::PathBuf>,
    /// A Slack incoming-webhook URL for alerts (none locally by default).
    pub slack_url: Option<String>,
    /// Publish processed events to the bus (as the template does by default).
    pub fanout: bool,
    /// The ingest's `WEBHOOK_SECRET`: `current` or `current,next`.
    pub webhook_secret: String,
    /// moto listens on every interface, not only 127.0.0.1, so that
    /// `sam local`'s containers reach it (DynamoDB Local always does).
    pub moto_all_interfaces: bool,
    /// An agency's stack (`ClientParameterPath`): the clients' secrets and
    /// Slack URLs in moto's SSM below `local_stack::CLIENT_PARAMETER_PATH`,
    /// the registry in the table; secrets re-read every second here.
    pub clients: bool,
}

impl Options {
    /// Debug binaries of this workspace (what `cargo build` makes).
    pub fn debug() -> Options {
        Options {
            bin_dir: target_dir().join("debug"),
            ingest_instances: 2,
            visibility_secs: 5,
            metrics: false,
            dynamodb_dir: None,
            slack_url: None,
            fanout: true,
            webhook_secret: TOKEN.into(),
            moto_all_interfaces: false,
            clients: false,
        }
    }
}

/// Where cargo puts its builds (`CARGO_TARGET_DIR`, else `target/` here).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The checkout being worked in: the first directory up from here with
/// template.yaml and xtask/ (a target dir shared between checkouts can hold
/// a binary built in another one), else where this crate was built.
pub fn workspace_root() -> PathBuf {
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join("template.yaml").is_file() && dir.join("xtask").is_dir() {
                return dir;
            }
            if !dir.pop() {
                break;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub struct Stack {
    pub ports: Ports,
    pub options: Options,
    pub dynamodb: standins::Service,
    pub moto: standins::Service,
    pub ingest: Vec<standins::Service>,
    pub consumer: standins::Service,
    pub queue_url: String,
    pub dlq_url: String,
    /// The effects queue (the consumer's second event source) and its DLQ.
    pub effects_queue_url: String,
    pub effects_dlq_url: String,
    pub table: String,
    pub sqs: smartlead::aws_sdk_sqs::Client,
    pub ddb: smartlead::aws_sdk_dynamodb::Client,
    pub s3: smartlead::aws_sdk_s3::Client,
    pub ingest_env: Vec<(String, String)>,
    pub consumer_env: Vec<(String, String)>,
    /// `maxReceiveCount` of the redrive policy, from template.yaml.
    pub max_receive: String,
    /// With movable ports: the front's socket, bound at start.
    front: std::sync::Mutex<Option<std::net::TcpListener>>,
}

impl Stack {
    pub fn store(&self) -> smartlead::adapters::aws::dynamodb::DynamoStore {
        smartlead::adapters::aws::dynamodb::DynamoStore::new(self.ddb.clone(), self.table.clone())
    }
    pub fn ingest_pool(&self) -> Pool {
        Pool::new(self.ingest.iter().map(standins::rie_invoke_url).collect())
    }
    pub fn consumer_url(&self) -> String {
        standins::rie_invoke_url(&self.consumer)
    }
    /// Binds the HTTP front on its port and serves it in the background
    /// (until the task is aborted).
    pub async fn serve_front(&self) -> Result<tokio::task::JoinHandle<Result<()>>> {
        self.serve_front_until(std::future::pending()).await
    }
    /// As [`Stack::serve_front`], until `shutdown` completes: then it stops
    /// accepting and lets the requests in flight finish.
    pub async fn serve_front_until(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<tokio::task::JoinHandle<Result<()>>> {
        let bound = self.front.lock().ok().and_then(|mut f| f.take());
        let listener = match bound {
            Some(l) => tokio::net::TcpListener::from_std(l)?,
            None => tokio::net::TcpListener::bind(("127.0.0.1", self.ports.http))
                .await
                .with_context(|| format!("binding 127.0.0.1:{}", self.ports.http))?,
        };
        Ok(tokio::spawn(serve_http(
            listener,
            self.ingest_pool(),
            shutdown,
        )))
    }
}

fn check_port(what: &str, port: u16) -> Result<()> {
    if standins::port_in_use(port) {
        bail!("port {port} ({what}) is already in use; pick another with --{what}-port");
    }
    Ok(())
}

/// Starts a service on `*port`; with `movable`, on another free port (kept
/// in `*port`) whenever that one was taken before the service bound it.
fn start_service(
    port: &mut u16,
    movable: bool,
    start: impl Fn(u16) -> Result<standins::Service, standins::StartError>,
) -> Result<standins::Service, standins::StartError> {
    if !movable {
        return start(*port);
    }
    let svc = match start(*port) {
        Err(e) if e.is_port_clash() => standins::start_on_free_port(&start)?,
        other => other?,
    };
    *port = svc.port;
    Ok(svc)
}

/// Starts the stack: see [`Stack::start`].
pub async fn start(root: &Path, ports: &Ports, options: &Options) -> Result<Stack> {
    Stack::start(root, ports, options).await
}

/// Fixed ports must be free; movable ones get the front's socket bound now
/// (any free port), so nothing can take its port before it serves.
fn claim_ports(ports: &mut Ports, instances: usize) -> Result<Option<std::net::TcpListener>> {
    if ports.movable {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the front")?;
        l.set_nonblocking(true)?;
        ports.http = l.local_addr()?.port();
        return Ok(Some(l));
    }
    let mut named = vec![
        ("http", ports.http),
        ("dynamodb", ports.dynamodb),
        ("moto", ports.moto),
        ("consumer", ports.consumer),
    ];
    for i in 0..instances {
        named.push(("ingest", ports.ingest + i as u16));
    }
    for (what, p) in named {
        check_port(what, p)?;
    }
    Ok(None)
}

/// A function's environment variables.
type Env = Vec<(String, String)>;

/// Where the functions find the stand-ins and resources.
struct Endpoints<'a> {
    moto: String,
    dynamodb: String,
    queue_url: &'a str,
    effects_url: &'a str,
    alert_topic: String,
}

/// The functions' environments (ingest, consumer), with the template's defaults.
fn function_env(t: &Template, options: &Options, at: Endpoints<'_>) -> Result<(Env, Env)> {
    let metrics = if options.metrics { "0" } else { "1" };
    let common = [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("METRICS_DISABLED", metrics.to_owned()),
    ];
    let ingest = [
        ("AWS_ENDPOINT_URL", at.moto.clone()),
        ("QUEUE_URL", at.queue_url.to_owned()),
        ("CLAIM_CHECK_BUCKET", BUCKET.into()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("WEBHOOK_SECRET", options.webhook_secret.clone()),
        ("WEBHOOK_PATH", t.default("WebhookPath")?),
        ("AUTH_METHODS", t.default("AuthMethods")?),
    ];
    let moto = at.moto.clone();
    let consumer = [
        ("AWS_ENDPOINT_URL_DYNAMODB", at.dynamodb),
        ("AWS_ENDPOINT_URL_S3", at.moto.clone()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("TABLE_NAME", TABLE.into()),
        ("DEDUP_TTL_DAYS", t.default("DedupTtlDays")?),
        ("SCORE_WEIGHTS", t.default("ScoreWeights")?),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", at.moto.clone()),
        ("AWS_ENDPOINT_URL_SNS", at.moto.clone()),
        (
            "EVENT_BUS_NAME",
            if options.fanout { BUS } else { "" }.into(),
        ),
        ("ALERT_TOPIC_ARN", at.alert_topic),
        ("EFFECTS_QUEUE_URL", at.effects_url.to_owned()),
        ("WEBHOOK_QUEUE_URL", at.queue_url.to_owned()),
        // A failed effect's first retry: as short as the queue's visibility here.
        ("EFFECT_RETRY_SECONDS", options.visibility_secs.to_string()),
        ("AWS_ENDPOINT_URL_SQS", at.moto.clone()),
        ("ALERT_EVENTS", t.default("AlertEvents")?),
        ("POSITIVE_CATEGORIES", t.default("PositiveCategories")?),
    ];
    let mut slack: Vec<(&str, String)> = options
        .slack_url
        .iter()
        .map(|url| ("SLACK_WEBHOOK_URL", url.clone()))
        .collect();
    let mut ingest = ingest.to_vec();
    if options.clients {
        let path = smartlead::local_stack::CLIENT_PARAMETER_PATH.to_owned();
        ingest.push(("CLIENT_PARAMETER_PATH", path.clone()));
        ingest.push(("SECRET_REFRESH_SECONDS", "1".into()));
        slack.push(("CLIENT_PARAMETER_PATH", path));
        slack.push(("AWS_ENDPOINT_URL_SSM", moto.clone()));
    }
    let owned = |pairs: Vec<(&str, String)>| {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Vec<_>>()
    };
    let ingest_env = owned(common.iter().cloned().chain(ingest).collect());
    let consumer_env = owned(common.into_iter().chain(consumer).chain(slack).collect());
    Ok((ingest_env, consumer_env))
}

impl Stack {
    /// Starts the stand-ins, creates what template.yaml declares in them,
    /// and starts both functions under the emulator.
    pub async fn start(root: &Path, ports: &Ports, options: &Options) -> Result<Stack> {
        let instances = options.ingest_instances.max(1);
        let mut ports = *ports;
        let front = claim_ports(&mut ports, instances)?;
        let t = Template::load(root)?;
        let dynamodb = start_service(&mut ports.dynamodb, ports.movable, |p| {
            standins::start_dynamodb_in(p, options.dynamodb_dir.as_deref())
        })
        .context("starting DynamoDB Local")?;
        let moto_host = if options.moto_all_interfaces {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let moto = start_service(&mut ports.moto, ports.movable, |p| {
            standins::start_moto_on(moto_host, p)
        })
        .context("starting moto")?;
        let ddb_cfg = smartlead::adapters::aws::local_sdk_config(&dynamodb.endpoint()).await;
        let moto_cfg = smartlead::adapters::aws::local_sdk_config(&moto.endpoint()).await;
        let ddb = smartlead::aws_sdk_dynamodb::Client::new(&ddb_cfg);
        let sqs = smartlead::aws_sdk_sqs::Client::new(&moto_cfg);
        let s3 = smartlead::aws_sdk_s3::Client::from_conf(
            smartlead::aws_sdk_s3::config::Builder::from(&moto_cfg)
                .force_path_style(true)
                .build(),
        );
        let c = create_resources(&t, &ddb, &moto_cfg, &s3, options).await?;
        let at = Endpoints {
            moto: moto.endpoint(),
            dynamodb: dynamodb.endpoint(),
            queue_url: &c.queue_url,
            effects_url: &c.effects_url,
            alert_topic: c.alert_topic,
        };
        let (ingest_env, consumer_env) = function_env(&t, options, at)?;
        let (ingest, consumer) =
            start_functions(&mut ports, options, instances, &ingest_env, &consumer_env)?;
        Ok(Stack {
            ports,
            front: std::sync::Mutex::new(front),
            options: options.clone(),
            dynamodb,
            moto,
            ingest,
            consumer,
            queue_url: c.queue_url,
            dlq_url: c.dlq_url,
            effects_queue_url: c.effects_url,
            effects_dlq_url: c.effects_dlq_url,
            table: TABLE.to_owned(),
            sqs,
            ddb,
            s3,
            ingest_env,
            consumer_env,
            max_receive: c.max_receive,
        })
    }
}

/// Both functions under the emulator: `instances` ingest, one consumer.
fn start_functions(
    ports: &mut Ports,
    options: &Options,
    instances: usize,
    ingest_env: &[(String, String)],
    consumer_env: &[(String, String)],
) -> Result<(Vec<standins::Service>, standins::Service)> {
    let bin = &options.bin_dir;
    let movable = ports.movable;
    let ingest = (0..instances)
        .map(|i| {
            let mut port = ports.ingest + i as u16;
            start_service(&mut port, movable, |p| {
                standins::start_rie(
                    &bin.join("smartlead-ingest"),
                    p,
                    ingest_env,
                    standins::RIE_READY,
                )
            })
            .context("starting the ingest function")
        })
        .collect::<Result<Vec<_>>>()?;
    let consumer = start_service(&mut ports.consumer, movable, |p| {
        standins::start_rie(
            &bin.join("smartlead-consumer"),
            p,
            consumer_env,
            standins::RIE_READY,
        )
    })
    .context("starting the consumer function")?;
    Ok((ingest, consumer))
}

/// Outages, for the fault tests.
impl Stack {
    /// Stops moto (SQS, S3): an SQS outage.
    pub fn stop_moto(&mut self) {
        self.moto.stop();
    }
    /// Starts moto again on its port and recreates the queues and bucket
    /// (moto keeps its state in memory).
    pub async fn restart_moto(&mut self) -> Result<()> {
        self.moto = standins::start_moto(self.ports.moto).context("restarting moto")?;
        let v = self.options.visibility_secs;
        create_queues(&self.sqs, (QUEUE, DLQ), &self.max_receive, v).await?;
        // moto lost them all: the effects queue's receive count as the template's.
        let effects = (EFFECTS_QUEUE, EFFECTS_DLQ);
        create_queues(&self.sqs, effects, EFFECTS_MAX_RECEIVE, v).await?;
        self.s3.create_bucket().bucket(BUCKET).send().await?;
        // The bus and topic too: effects queued before the outage publish.
        let cfg = smartlead::adapters::aws::local_sdk_config(&self.moto.endpoint()).await;
        create_integrations(&cfg, &self.sqs).await?;
        Ok(())
    }
    /// Stops DynamoDB Local (a DynamoDB outage). With `dynamodb_dir` set,
    /// its data comes back with [`Stack::restart_dynamodb`].
    pub fn stop_dynamodb(&mut self) {
        self.dynamodb.stop();
    }
    pub fn restart_dynamodb(&mut self) -> Result<()> {
        self.dynamodb =
            standins::start_dynamodb_in(self.ports.dynamodb, self.options.dynamodb_dir.as_deref())
                .context("restarting DynamoDB Local")?;
        Ok(())
    }
}
