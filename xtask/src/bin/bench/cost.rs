//! Write units by DynamoDB's metering rules, and the bill per million webhooks.
#[allow(unused_imports)]
use super::*;

// -------------------------------------------------------------------- cost

#[derive(Debug, Clone, serde::Serialize)]
pub struct Units {
    pub payload: String,
    pub event_type: String,
    pub items: usize,
    /// Requests sent (one conditional UpdateItem per item, plus a retry
    /// per register stage that did not hold).
    pub transactions: u32,
    /// What DynamoDB Local reported (ReturnConsumedCapacity).
    pub reported_units: f64,
    /// By DynamoDB's rule: 1 unit per started KB of each item written
    /// (an UpdateItem bills the larger of the item before and after; items
    /// only grow here, so the size after the write), plus `index_units`.
    pub write_units: f64,
    /// What the writes added to the indexes (see `index_write_units`).
    pub index_units: f64,
    pub item_bytes: Vec<usize>,
}

pub(crate) async fn write_units(root: &Path, stack: &Stack) -> Result<Vec<Units>> {
    let store = stack.store();
    let weights = smartlead::domain::plan::ScoreWeights::default();
    let mut out = Vec::new();
    for (name, body) in payloads(root)? {
        let ev = smartlead::SmartleadEvent::from_slice(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let plan =
            smartlead::domain::plan::plan(&ev, smartlead::domain::time::EventTime::now(), &weights);
        let mut before = Vec::new();
        for u in &plan.items {
            before.push(get(stack, &u.pk, &u.sk).await?);
        }
        match smartlead::app::store::Dedup::apply(&store, &plan, &format!("bench-{name}"))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
        {
            smartlead::app::store::ApplyOutcome::Applied {
                transactions,
                write_units,
                ..
            } => {
                // No dedup marker: each item records the event's key itself.
                let keys: Vec<(String, String)> = plan
                    .items
                    .iter()
                    .map(|u| (u.pk.clone(), u.sk.clone()))
                    .collect();
                let (mut item_bytes, mut index_units) = (Vec::new(), 0.0);
                for ((pk, sk), before) in keys.iter().zip(&before) {
                    let item = get(stack, pk, sk).await?;
                    item_bytes.push(smartlead::adapters::aws::dynamodb::item_size(&item));
                    index_units += smartlead::adapters::aws::dynamodb::index::index_write_units(
                        Some(before),
                        &item,
                    );
                }
                out.push(Units {
                    payload: name,
                    event_type: ev.event_type.as_str().to_owned(),
                    items: plan.items.len(),
                    transactions,
                    reported_units: write_units,
                    // One conditional UpdateItem per item: 1 unit per started
                    // KB; and the indexes' entries the writes changed.
                    write_units: item_bytes
                        .iter()
                        .map(|b| b.div_ceil(1024).max(1) as f64)
                        .sum::<f64>()
                        + index_units,
                    index_units,
                    item_bytes,
                })
            }
            // An alias of an event already applied (same key): not a new cost.
            smartlead::app::store::ApplyOutcome::Duplicate
            | smartlead::app::store::ApplyOutcome::Unchanged { .. } => {}
        }
    }
    Ok(out)
}

/// One item as it is now (empty when there is none).
async fn get(
    stack: &Stack,
    pk: &str,
    sk: &str,
) -> Result<std::collections::HashMap<String, smartlead::aws_sdk_dynamodb::types::AttributeValue>> {
    use smartlead::aws_sdk_dynamodb::types::AttributeValue;
    Ok(stack
        .ddb
        .get_item()
        .table_name(&stack.table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .send()
        .await?
        .item
        .unwrap_or_default())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cost {
    pub front: String,
    pub lines: Vec<(String, f64)>,
    /// The pipeline: front, functions, queue, state, logs.
    pub total: f64,
    /// What the fan-out (on by default) adds: PutEvents, marking it done, reading the state.
    pub fanout: Vec<(String, f64)>,
    pub total_with_fanout: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CostInputs {
    /// A typical event's own writes: a repeat send, open or click (its
    /// item, no index entry).
    pub typical_wru: f64,
    /// The indexes' writes per event on `xtask scale`'s book (2,000
    /// leads): first opens, clicks, replies, categories, suppressions.
    pub index_wru: f64,
    pub ingest_billed_ms: f64,
    pub consumer_batch10_billed_ms: f64,
    pub ingest_memory_mb: f64,
    pub consumer_memory_mb: f64,
    pub log_bytes_per_event: f64,
    pub batch: f64,
}

pub(crate) fn cost(inputs: &CostInputs, http_api: bool) -> Cost {
    let i = inputs;
    let gb_s = |billed_ms: f64, mb: f64| billed_ms.ceil() / 1000.0 * mb / 1024.0;
    let mut lines = Vec::new();
    if http_api {
        lines.push((
            "API Gateway HTTP API (1 request)".to_owned(),
            Prices::HTTP_API_PER_M,
        ));
    }
    lines.push((
        format!("Lambda requests (1 ingest + 1/{} consumer)", i.batch),
        (1.0 + 1.0 / i.batch) * Prices::LAMBDA_REQUESTS_PER_M,
    ));
    lines.push((
        "Lambda compute, arm64 (ingest + consumer share)".to_owned(),
        1e6 * Prices::LAMBDA_ARM_GB_S
            * (gb_s(i.ingest_billed_ms, i.ingest_memory_mb)
                + gb_s(i.consumer_batch10_billed_ms, i.consumer_memory_mb) / i.batch),
    ));
    lines.push((
        format!("SQS requests (1 send + 2/{} receive and delete)", i.batch),
        (1.0 + 2.0 / i.batch) * Prices::SQS_PER_M,
    ));
    lines.push((
        format!("DynamoDB writes ({} WRU)", f(i.typical_wru, 1)),
        i.typical_wru * Prices::DDB_WRU_PER_M,
    ));
    lines.push((
        format!("DynamoDB index writes ({} WRU)", f(i.index_wru, 3)),
        i.index_wru * Prices::DDB_WRU_PER_M,
    ));
    lines.push((
        format!("CloudWatch Logs ({} bytes)", f(i.log_bytes_per_event, 0)),
        i.log_bytes_per_event * 1e6 / 1e9 * Prices::LOGS_PER_GB,
    ));
    let total: f64 = lines.iter().map(|(_, v)| v).sum();
    let fanout = vec![
        (
            "EventBridge PutEvents (1 entry)".to_owned(),
            Prices::EVENTBRIDGE_PER_M,
        ),
        (
            // The state comes from the write's own answer: no read; the
            // pending mark rides on the state write, its removal is the WRU.
            "fan-out bookkeeping (1 WRU: DELETE of the fo mark)".to_owned(),
            Prices::DDB_WRU_PER_M,
        ),
    ];
    let total_with_fanout = total + fanout.iter().map(|(_, v)| v).sum::<f64>();
    Cost {
        front: if http_api { "HTTP API" } else { "Function URL" }.into(),
        lines,
        total,
        fanout,
        total_with_fanout,
    }
}
