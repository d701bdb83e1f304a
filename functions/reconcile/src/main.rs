//! ReconcileFunction: on the `ReconcileSchedule`, SmartLead's statistics of
//! the active campaigns over the last `LOOKBACK_HOURS` against the stored
//! state; exact gaps are backfilled through the queue, every gap is counted
//! (`GapsFound`, `EventsBackfilled`), leads left unchecked (`LeadsLeft`)
//! and count mismatches (`CountMismatches`) apart. All logic lives in the `smartlead`
//! library ([`smartlead::app::reconcile`]).
#![deny(clippy::too_many_lines)] // no function over 80 lines: clippy.toml

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use smartlead::config::FromEnv;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Error> {
    smartlead::logging::init();
    let config = smartlead::config::ReconcileConfig::from_process()?;
    let sdk = smartlead::adapters::aws::sdk_config().await;
    let job = Box::leak(Box::new(smartlead_reconcile::wire(&sdk, config).await?));
    let job = &*job;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Stop calling SmartLead 20 s before the invocation's own deadline.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let left_ms = event.context.deadline.saturating_sub(now_ms);
        let deadline = Instant::now() + Duration::from_millis(left_ms.saturating_sub(20_000));
        let report = job.run(deadline).await?;
        tracing::info!(
            gaps = report.gaps_found(),
            unverified = report.unverified(),
            backfilled = report.backfilled,
            reported_only = report.reported_only(),
            leads = report.leads,
            leads_left = report.leads_left,
            count_mismatches = report.count_mismatches.len(),
            "reconcile done"
        );
        Ok::<Value, Error>(json!({
            "gaps": report.gaps_found(),
            "unverified": report.unverified(),
            "backfilled": report.backfilled,
            "reported_only": report.reported_only(),
            "count_mismatches": report.count_mismatches.len(),
            "leads_left": report.leads_left,
        }))
    }))
    .await
}
