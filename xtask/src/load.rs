//! `xtask load`: the command line of [`xtask::pipeline::load`].

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xtask::pipeline;

#[derive(clap::Args)]
pub struct Args {
    /// Webhooks POSTed (SmartLead's second deliveries included).
    #[arg(long, default_value_t = 20_000)]
    webhooks: usize,
    /// Over how many minutes (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Where the function binaries are (default: this build's profile
    /// under the target dir, built first).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Consumer instances on the webhook queue (default: the template's
    /// ConsumerMaxConcurrency) and on the effects queue (the template's).
    #[arg(long)]
    consumers: Option<usize>,
    #[arg(long)]
    effect_consumers: Option<usize>,
    /// HYGIENE for the run: block or unsubscribe.
    #[arg(long, default_value = "block")]
    hygiene: String,
    /// The queues' visibility timeout (default: the template's).
    #[arg(long)]
    visibility_secs: Option<u32>,
    /// How long to wait for the queues to empty after the last POST.
    #[arg(long, default_value_t = 30.0)]
    drain_minutes: f64,
    /// Also write the report here, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Builds the function binaries in this build's profile; their folder.
fn build(root: &Path) -> Result<PathBuf> {
    let release = !cfg!(debug_assertions);
    let mut args = vec![
        "build",
        // --workspace: the tests' feature set (see test-support's pins).
        "--workspace",
        "--bin",
        "smartlead-ingest",
        "--bin",
        "smartlead-consumer",
    ];
    if release {
        args.push("--release");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(&args)
        .status()?;
    if !status.success() {
        bail!("building the function binaries failed");
    }
    Ok(pipeline::target_dir().join(if release { "release" } else { "debug" }))
}

pub fn run(root: &Path, a: Args) -> Result<()> {
    let bin_dir = match a.bin_dir {
        Some(dir) => dir,
        None => build(root)?,
    };
    let options = pipeline::load::LoadOptions {
        webhooks: a.webhooks,
        run: Duration::from_secs_f64(a.minutes * 60.0),
        clients: a.clients,
        consumers: a.consumers,
        effect_consumers: a.effect_consumers,
        hygiene: a.hygiene,
        visibility_secs: a.visibility_secs,
        drain: Duration::from_secs_f64(a.drain_minutes * 60.0),
        ..pipeline::load::LoadOptions::full(bin_dir)
    };
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(pipeline::load::run(root, options))?;
    if let Some(path) = a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
