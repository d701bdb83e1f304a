//! The store's entry points: the `Dedup` and `StateReader` impls (a plan
//! is applied by `plan.rs`, the loop shared with the in-memory store), the
//! tools' reads, and the table's creation.

use super::plan::apply_plan;
use super::{
    fanout_done_marks, item_to_json, key, store_error, DynamoStore, FANOUT_PENDING_ATTR, TTL_ATTR,
};
use crate::app::store::{ApplyOutcome, Dedup, StateReader, StoreError};
use crate::domain::key::DedupKey;
use crate::domain::plan::{key_part, Plan};
use crate::domain::time::EventTime;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_json::Value;
use std::collections::HashMap;

impl DynamoStore {
    /// One item, strongly consistent.
    pub(super) async fn read(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(r.item)
    }

    /// Every item of the table (tools and tests; a full `Scan`).
    pub async fn scan_all(&self) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        all_pages(|start| async move {
            let r = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan", e))?;
            Ok((r.items.unwrap_or_default(), r.last_evaluated_key))
        })
        .await
    }

    /// Every item of a partition (a lead's full state is one `Query`).
    pub async fn partition(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        all_pages(|start| async move {
            let r = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            Ok((r.items.unwrap_or_default(), r.last_evaluated_key))
        })
        .await
    }
}

#[async_trait]
impl Dedup for DynamoStore {
    async fn apply(&self, plan: &Plan, _message_id: &str) -> Result<ApplyOutcome, StoreError> {
        apply_plan(self, plan).await
    }

    async fn fanout_done(
        &self,
        pk: &str,
        sk: &str,
        key: &DedupKey,
        received_ms: i64,
    ) -> Result<(), StoreError> {
        let marks = fanout_done_marks(key, received_ms)
            .map(aws_sdk_dynamodb::primitives::Blob::new)
            .to_vec();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(pk, sk)))
            .update_expression("DELETE #fo :k")
            // Never creates an item.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#fo", FANOUT_PENDING_ATTR)
            .expression_attribute_values(":k", AttributeValue::Bs(marks))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }

    async fn first_seen(&self, key: &str, at: EventTime) -> Result<EventTime, StoreError> {
        let expires = chrono::Utc::now().timestamp() + self.dedup_ttl.as_secs() as i64;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(&format!("FIRST#{}", key_part(key)), "-")))
            .update_expression("SET #t = if_not_exists(#t, :t), #x = if_not_exists(#x, :x)")
            .expression_attribute_names("#t", "first_seen")
            .expression_attribute_names("#x", TTL_ATTR)
            .expression_attribute_values(":t", AttributeValue::S(at.to_string()))
            .expression_attribute_values(":x", AttributeValue::N(expires.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        let first = r.attributes().and_then(|a| a.get("first_seen"));
        Ok(first
            .and_then(|v| v.as_s().ok())
            .and_then(|s| EventTime::parse(s))
            .unwrap_or(at))
    }
}

#[async_trait]
impl StateReader for DynamoStore {
    async fn item(&self, pk: &str, sk: &str) -> Result<Option<Value>, StoreError> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self::key(pk, sk)))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(r.item.as_ref().map(item_to_json))
    }
}

type Item = HashMap<String, AttributeValue>;

/// Every page of a `Scan` or `Query`: `page(start)` reads one from `start`
/// and returns its items and where the next begins.
pub(super) async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<Item>, StoreError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>>,
{
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let (items, next) = page(start).await?;
        out.extend(items);
        match next {
            Some(n) => start = Some(n),
            None => return Ok(out),
        }
    }
}

/// Creates the state table as template.yaml declares it (pk/sk strings,
/// on-demand, the [`INDEXES`](super::index::INDEXES)) and turns on TTL.
/// For tests and the local stack.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    create_table_with(client, table, super::index::INDEXES).await
}

/// [`create_table`] with only `indexes` (none: the table alone, to
/// measure what the indexes cost beside it).
pub async fn create_table_with(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    indexes: &[super::index::Index],
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::*;
    let err = |e: String| StoreError::transient(e);
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| err(e.to_string()))
    };
    let ks = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| err(e.to_string()))
    };
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(ks("pk", KeyType::Hash)?)
        .key_schema(ks("sk", KeyType::Range)?);
    let keys: std::collections::BTreeSet<&str> = indexes
        .iter()
        .flat_map(|i| [i.hash, i.range])
        .filter(|a| *a != "pk" && *a != "sk")
        .collect();
    for a in keys {
        create = create.attribute_definitions(attr(a)?);
    }
    for i in indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(i.projected.iter().map(|a| (*a).to_owned()).collect()))
            .build();
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(i.name)
                .key_schema(ks(i.hash, KeyType::Hash)?)
                .key_schema(ks(i.range, KeyType::Range)?)
                .projection(projection)
                .build()
                .map_err(|e| err(e.to_string()))?,
        );
    }
    create
        .send()
        .await
        .map_err(|e| store_error("CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTR)
                .build()
                .map_err(|e| err(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| store_error("UpdateTimeToLive", e))?;
    Ok(())
}
