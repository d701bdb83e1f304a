//! The scheduled reconcile and its metrics.

use super::run::{reconcile, Options, Report};
use super::statistics::campaigns;
use super::ReconcileError;
use crate::adapters::http::smartlead::Api;
use crate::domain::time::EventTime;
use std::time::Instant;

/// The IAM actions behind its calls: item (and archive) reads, the queue,
/// the API key.
pub const RECONCILE_IAM_ACTIONS: &[&str] =
    &["dynamodb:GetItem", "sqs:SendMessage", "ssm:GetParameter"];

/// The scheduled reconcile (the `ReconcileFunction`), built once at cold start.
pub struct Scheduled {
    pub api: Api,
    pub store: crate::adapters::aws::dynamodb::DynamoStore,
    pub queue: crate::adapters::aws::SqsQueue,
    pub lookback_hours: u64,
    pub dedup_ttl_days: u64,
    pub metrics: crate::metrics::Metrics,
}

impl Scheduled {
    /// One run over the active campaigns and the last `lookback_hours`;
    /// publishes its [`metric_values`].
    pub async fn run(&self, deadline: Instant) -> Result<Report, ReconcileError> {
        let now = EventTime::now();
        let since = EventTime::from_millis(
            now.millis() - (self.lookback_hours.min(24 * 3650) as i64) * 3_600_000,
        );
        let campaigns = campaigns(&self.api, true, deadline).await?;
        let opts = Options {
            since,
            dry_run: false,
            dedup_ttl_days: self.dedup_ttl_days,
            now,
            deadline,
        };
        let report = reconcile(
            &self.api,
            &self.store,
            &self.queue,
            &campaigns,
            &opts,
            &|_, _| {},
        )
        .await?;
        emit(&self.metrics, &report);
        Ok(report)
    }
}

/// The run's metrics: `GapsFound` (backfilled or reported) and `LeadsLeft`
/// (leads the run had no time for; the alarm watches both),
/// `EventsBackfilled`, `GapsReportedOnly`, `EventsUnverified`, and
/// `CountMismatches` (lifetime counts above the stored ones: not gaps).
pub fn metric_values(r: &Report) -> [(&'static str, f64); 6] {
    [
        ("GapsFound", r.gaps_found() as f64),
        ("EventsBackfilled", r.backfilled as f64),
        ("GapsReportedOnly", r.reported_only() as f64),
        ("EventsUnverified", r.unverified() as f64),
        ("CountMismatches", r.count_mismatches.len() as f64),
        ("LeadsLeft", r.leads_left as f64),
    ]
}

/// Writes [`metric_values`] as one EMF document.
pub fn emit(metrics: &crate::metrics::Metrics, r: &Report) {
    let values: Vec<(&str, f64, crate::metrics::Unit)> = metric_values(r)
        .into_iter()
        .map(|(n, v)| (n, v, crate::metrics::Unit::Count))
        .collect();
    metrics.emit(&[], &values);
}
