//! Developer tasks for the SmartLead pipeline. `cargo run -p xtask -- --help`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod fixtures;
mod template;

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
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Fixtures { check } => fixtures::run(&workspace_root(), check),
    }
}
