//! `smartlead redrive`: DLQ messages back onto the queue, but those too old
//! for their dedup markers.

use crate::aws::{aws, output, outputs, stack_dedup_ttl};
use crate::RedriveArgs;
use anyhow::{bail, Result};

pub async fn redrive(a: RedriveArgs) -> Result<()> {
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
