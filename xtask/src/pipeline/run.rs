//! `xtask local`: the stack in the foreground until Ctrl-C or SIGTERM.

use crate::pipeline::{
    follow_logs, poll_effects, poll_once, Options, Pool, Ports, Stack, BUCKET, BUS, TABLE, TOKEN,
};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// No HTTP front (`sam local start-api` serves the port instead).
    pub no_front: bool,
    /// No SQS poller: messages stay on the queue (the `sam local` test reads them).
    pub no_poller: bool,
    /// Write a `sam local --env-vars` file for this stack here.
    pub sam_env_vars: Option<std::path::PathBuf>,
}

/// How `sam local`'s containers name this machine (Docker Desktop defines
/// it; on Linux `sam local --add-host host.docker.internal:host-gateway`).
pub const DOCKER_HOST: &str = "host.docker.internal";

/// The `sam local --env-vars` file pointing the functions at the local
/// stand-ins (events/env/local.json is this for the default ports). Every
/// key is one template.yaml declares once `LocalEndpoint` is set.
pub fn sam_env_vars(
    moto: &str,
    dynamodb: &str,
    (queue_url, effects_queue_url): (&str, &str),
    alert_topic: &str,
) -> Value {
    json!({
        "IngestFunction": {
            "AWS_ENDPOINT_URL": moto,
            "QUEUE_URL": queue_url,
            "CLAIM_CHECK_BUCKET": BUCKET,
            "WEBHOOK_SECRET": TOKEN,
        },
        "ConsumerFunction": {
            "AWS_ENDPOINT_URL": moto,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
            "TABLE_NAME": TABLE,
            // Without it, sam local resolves the template's `!Ref EffectsQueue`
            // to a queue no stand-in has, and every record fails.
            "EFFECTS_QUEUE_URL": effects_queue_url,
            "WEBHOOK_QUEUE_URL": queue_url,
            "EVENT_BUS_NAME": BUS,
            "ALERT_TOPIC_ARN": alert_topic,
        }
    })
}

fn env_value(env: &[(String, String)], key: &str) -> String {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Ctrl-C, or SIGTERM (a script stopping the stack it started in the background).
async fn wait_for_stop() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Writes the `sam local --env-vars` file for this stack: the containers
/// reach the stand-ins through the Docker host.
fn write_sam_env_vars(stack: &Stack, path: &Path) -> Result<()> {
    let moto = format!("http://{DOCKER_HOST}:{}", stack.ports.moto);
    let env = sam_env_vars(
        &moto,
        &format!("http://{DOCKER_HOST}:{}", stack.ports.dynamodb),
        (
            &stack.queue_url.replacen(&stack.moto.endpoint(), &moto, 1),
            &stack
                .effects_queue_url
                .replacen(&stack.moto.endpoint(), &moto, 1),
        ),
        &env_value(&stack.consumer_env, "ALERT_TOPIC_ARN"),
    );
    // Written whole, then renamed: a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{env:#}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn print_banner(stack: &Stack, no_front: bool) {
    let http = stack.ports.http;
    let off = if no_front {
        " (not served here: the front is off)"
    } else {
        ""
    };
    println!("SmartLead pipeline running locally (Ctrl-C stops everything):");
    println!("  webhook    POST http://127.0.0.1:{http}/webhooks/smartlead?token={TOKEN}{off}");
    println!(
        "  DynamoDB   {} (table {})",
        stack.dynamodb.endpoint(),
        stack.table
    );
    println!(
        "  moto       {} (SQS {}, DLQ {} after {} receives, S3 {BUCKET})",
        stack.moto.endpoint(),
        stack.queue_url,
        stack.dlq_url,
        stack.max_receive
    );
    println!(
        "  functions  ingest {} (x{}), consumer {}",
        stack.ingest[0].endpoint(),
        stack.ingest.len(),
        stack.consumer.endpoint()
    );
    let logs = stack.consumer.log.parent().map(|p| p.display().to_string());
    println!("  log files  {}", logs.unwrap_or_default());
    println!("  inspect    cargo run -q -p xtask -- show jane.doe@acme-corp.com");
    println!("try:  curl -s -XPOST 'http://127.0.0.1:{http}/webhooks/smartlead?token={TOKEN}' -H 'content-type: application/json' -d @events/payloads/email_reply.json");
}

/// Polls both queues for the consumer for as long as the task runs: the
/// webhooks, and the effects they queued (in turn: the emulator runs one
/// invoke at a time, as one instance would).
async fn poll_forever(stack: Arc<Stack>) {
    let consumer = Pool::new(vec![stack.consumer_url()]);
    loop {
        if let Err(e) = poll_effects(&stack, &consumer, 10, 0).await {
            eprintln!("poller    effects: {e:#}");
        }
        match poll_once(&stack, &consumer, 10, 1).await {
            Ok(p) if p.invoke_failed => println!(
                "poller    {} received; the consumer invoke failed, all will be redelivered",
                p.received
            ),
            Ok(p) if p.received > 0 => println!(
                "poller    {} received, {} done, {} to retry",
                p.received,
                p.done.len(),
                p.received - p.done.len()
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("poller    {e:#}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// `xtask local`: starts the stack, serves it until Ctrl-C or SIGTERM, then
/// lets the front finish the requests in flight and stops everything.
pub async fn run(root: &Path, ports: Ports, options: Options, flags: RunFlags) -> Result<()> {
    let started = smartlead::domain::time::EventTime::now();
    let stack = Arc::new(Stack::start(root, &ports, &options).await?);
    if let Some(path) = &flags.sam_env_vars {
        write_sam_env_vars(&stack, path)?;
    }
    let (stop_front, stopped) = tokio::sync::oneshot::channel::<()>();
    let front = if flags.no_front {
        None
    } else {
        let shutdown = async move {
            let _ = stopped.await;
        };
        Some(stack.serve_front_until(shutdown).await?)
    };
    print_banner(&stack, flags.no_front);
    let mut sources: Vec<(String, std::path::PathBuf)> = stack
        .ingest
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("ingest/{i}"), s.log.clone()))
        .collect();
    sources.push(("consumer".into(), stack.consumer.log.clone()));
    let logs = tokio::spawn(follow_logs(sources));
    let poller = (!flags.no_poller).then(|| tokio::spawn(poll_forever(stack.clone())));
    wait_for_stop().await?;
    let _ = stop_front.send(());
    if let Some(front) = front {
        let _ = front.await;
    }
    if let Some(poller) = poller {
        poller.abort();
    }
    logs.abort();
    let now = smartlead::domain::time::EventTime::now();
    let rejected = stack
        .store()
        .count_records(
            smartlead::domain::records::RecordKind::Rejected,
            started,
            now,
        )
        .await
        .unwrap_or(0);
    println!("stopping (this run kept {rejected} rejected events; all state was in memory)");
    drop(stack);
    Ok(())
}

#[cfg(test)]
mod sam_env {
    use super::*;
    use crate::pipeline::template::Template;
    use crate::pipeline::ALERT_TOPIC;

    /// events/env/local.json is what `xtask local` writes for its default
    /// ports (those of `scripts/local.sh`), and `sam local` can set each of
    /// its variables: template.yaml declares them all for that function.
    #[test]
    fn the_documented_env_vars_file_matches_the_default_stack_and_the_template() {
        let root = crate::pipeline::workspace_root();
        let file = std::fs::read_to_string(root.join("events/env/local.json")).unwrap();
        let documented: Value = serde_json::from_str(&file).unwrap();
        let want = sam_env_vars(
            "http://host.docker.internal:5000",
            "http://host.docker.internal:8000",
            (
                "http://host.docker.internal:5000/123456789012/smartlead-webhooks",
                "http://host.docker.internal:5000/123456789012/smartlead-effects",
            ),
            &format!("arn:aws:sns:us-east-1:123456789012:{ALERT_TOPIC}"),
        );
        assert_eq!(documented, want);
        let t = Template::load(&root).unwrap();
        for (f, vars) in want.as_object().unwrap() {
            let declared = &t.props(f).unwrap()["Environment"]["Variables"];
            for k in vars.as_object().unwrap().keys() {
                assert!(
                    declared.get(k.as_str()).is_some(),
                    "{f} does not declare {k}: sam local would ignore it"
                );
            }
        }
    }
}
