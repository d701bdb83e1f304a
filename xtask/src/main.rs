//! Developer tasks for the SmartLead pipeline. `cargo run -p xtask -- --help`.
//! The benchmarks are the package's other binary, `bench` (`scripts/bench.sh`).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod fixtures;
mod load;
mod sam_check;

use xtask::pipeline;

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Developer tasks for the SmartLead webhook pipeline"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate events/api and events/sqs from events/payloads (or check them with --check).
    Fixtures {
        #[arg(long)]
        check: bool,
    },
    /// Run the whole pipeline locally: DynamoDB Local, moto, both functions
    /// under the Lambda RIE, an HTTP front and an SQS poller.
    Local {
        #[arg(long, default_value_t = smartlead::local_stack::HTTP_PORT)]
        http_port: u16,
        #[arg(long, default_value_t = smartlead::local_stack::DYNAMODB_PORT)]
        dynamodb_port: u16,
        #[arg(long, default_value_t = smartlead::local_stack::MOTO_PORT)]
        moto_port: u16,
        /// The first ingest instance's port; further instances take the next ones.
        #[arg(long, default_value_t = smartlead::local_stack::INGEST_PORT)]
        ingest_port: u16,
        /// Ingest function instances behind the HTTP front (each emulator
        /// answers one invoke at a time, as one Lambda instance does).
        #[arg(long, default_value_t = smartlead::local_stack::INGEST_INSTANCES)]
        ingest_instances: usize,
        /// A Slack incoming-webhook URL: alerts go there too.
        #[arg(long)]
        slack_url: Option<String>,
        #[arg(long, default_value_t = smartlead::local_stack::CONSUMER_PORT)]
        consumer_port: u16,
        /// Serve no HTTP front (`scripts/local.sh --sam` runs `sam local start-api` there).
        #[arg(long)]
        no_front: bool,
        /// Run no SQS poller: webhooks stay on the queue.
        #[arg(long)]
        no_poller: bool,
        /// For `sam local`: moto listens on every interface, not only
        /// 127.0.0.1, for Docker containers to reach it (as DynamoDB Local always does).
        #[arg(long)]
        docker: bool,
        /// Write a `sam local --env-vars` file for this stack (ports included)
        /// to this path (implies --docker).
        #[arg(long)]
        sam_env_vars: Option<PathBuf>,
    },
    /// A reply wave against the local stack with stand-ins that enforce
    /// Slack's, SmartLead's and DynamoDB's limits; prints (and with --json
    /// writes) lost, doubled and delivered against expected, the lags and
    /// the most calls a second or minute (run it with --release).
    Load(load::Args),
    /// Write a campaign book of --leads leads over --campaigns campaigns
    /// into DynamoDB Local (started for it) through the consumer's store,
    /// and again into a table without indexes (their write units are the
    /// difference), then time the list verbs of the `smartlead` binary
    /// beside this one on the largest campaign; prints BENCHMARKS.md tables
    /// and the figures as JSON. Build both first:
    /// `cargo build --release --workspace --bin smartlead --bin xtask`.
    Scale {
        #[arg(long, default_value_t = 100_000)]
        leads: usize,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
        campaigns: u16,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Leads written at once (each lead's events in order).
        #[arg(long, default_value_t = 32)]
        parallel: usize,
    },
    /// Show a lead's state, queue and DLQ depths and recent rejected events
    /// of the running local stack.
    Show {
        /// The lead's e-mail address.
        email: Option<String>,
        #[arg(long, default_value_t = smartlead::local_stack::DYNAMODB_PORT)]
        dynamodb_port: u16,
        #[arg(long, default_value_t = smartlead::local_stack::MOTO_PORT)]
        moto_port: u16,
    },
    /// The checks of `scripts/sam-local-test.sh`: what `sam local invoke`
    /// and `start-api` answered, what moto and DynamoDB Local hold after;
    /// exits 1 with the reason on a mismatch.
    SamCheck(sam_check::Args),
}

/// The checkout being worked in (see [`pipeline::workspace_root`]).
fn workspace_root() -> PathBuf {
    pipeline::workspace_root()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Fixtures { check } => fixtures::run(&workspace_root(), check),
        Cmd::Local {
            http_port,
            dynamodb_port,
            moto_port,
            ingest_port,
            ingest_instances,
            slack_url,
            consumer_port,
            no_front,
            no_poller,
            docker,
            sam_env_vars,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let ports = pipeline::Ports {
                http: http_port,
                dynamodb: dynamodb_port,
                moto: moto_port,
                ingest: ingest_port,
                consumer: consumer_port,
                movable: false,
            };
            let options = pipeline::Options {
                ingest_instances,
                slack_url,
                moto_all_interfaces: docker || sam_env_vars.is_some(),
                ..pipeline::Options::debug()
            };
            let flags = pipeline::RunFlags {
                no_front,
                no_poller,
                sam_env_vars,
            };
            rt.block_on(pipeline::run(&workspace_root(), ports, options, flags))
        }
        Cmd::Load(args) => load::run(&workspace_root(), args),
        Cmd::Scale {
            leads,
            campaigns,
            seed,
            parallel,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let book = xtask::scale::Book {
                    leads,
                    campaigns: campaigns.into(),
                    seed,
                };
                let (f, verbs) = xtask::scale::measure(book, parallel).await?;
                print!("{}", xtask::scale::markdown(&f, &verbs));
                println!("{}", serde_json::to_string(&(&f, &verbs))?);
                Ok(())
            })
        }
        Cmd::Show {
            email,
            dynamodb_port,
            moto_port,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(pipeline::show(dynamodb_port, moto_port, email.as_deref()))
        }
        Cmd::SamCheck(args) => {
            if let Err(e) = sam_check::run(&args) {
                eprintln!("sam-check: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
