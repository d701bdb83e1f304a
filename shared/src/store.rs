//! The DynamoDB state store: applies a [`Plan`] exactly once.
//!
//! One `TransactWriteItems` holds the event's dedup marker (a `Put` with
//! `attribute_not_exists(pk)`, expiring by TTL) and every state update of the
//! plan. Either all of it commits or none does, so a crash between any two
//! writes cannot double-apply or lose an event, and a redelivered event
//! finds its marker and stops there ("already done" is an outcome, not an
//! error).
//!
//! Registers (see [`crate::plan`]) add a condition to their item: "this
//! event is the newest". When DynamoDB cancels the transaction, its
//! cancellation reasons say which item's condition failed; that item moves
//! to its next stage (newest → oldest → neither) and the transaction is
//! sent again. Transaction conflicts and throttling are retried with
//! backoff; what still fails is a retryable error for SQS to redeliver.

use crate::key::DedupKey;
use crate::plan::{ItemUpdate, Plan, Val};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem, Update,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Attribute DynamoDB's TTL deletes items by (epoch seconds).
pub const TTL_ATTR: &str = "expires_at";
/// Days a dedup marker lives by default: the template's `DedupTtlDays` (a test checks).
pub const DEFAULT_DEDUP_TTL_DAYS: u64 = 100;
pub const REJECTED_TTL_DAYS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: throttling, timeouts, conflicts, service errors.
    #[error("transient store error: {0}")]
    Transient(String),
    /// Retrying cannot help (a malformed request).
    #[error("permanent store error: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    /// State changed; `write_units` as DynamoDB reported (when it did).
    Applied { transactions: u32, write_units: f64 },
    /// The dedup marker was already there: nothing changed.
    Duplicate,
}

/// A rejected event: kept with its raw body, acknowledged, counted.
#[derive(Debug, Clone)]
pub struct Rejected<'a> {
    pub message_id: &'a str,
    pub reason: &'a str,
    pub detail: &'a str,
    pub raw: &'a str,
    pub received_at: &'a str,
}

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn apply(&self, plan: &Plan, message_id: &str) -> Result<ApplyOutcome, StoreError>;
    async fn reject(&self, r: Rejected<'_>) -> Result<(), StoreError>;
    /// Claims a side effect of an already applied event until
    /// `lease_until_ms`: true if it was pending, claimed by someone whose
    /// lease has run out, or already held by this very delivery
    /// (`message_id` with this lease: its own transaction committed although
    /// the answer said otherwise); false if it is done or held by another.
    async fn claim(
        &self,
        key: &DedupKey,
        effect: &str,
        message_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Ends a claim: done, refused for good, or back to pending (to be retried).
    async fn settle(
        &self,
        key: &DedupKey,
        effect: &str,
        lease_until_ms: i64,
        end: Settle,
    ) -> Result<(), StoreError>;
    /// One item as JSON (`None` if absent).
    async fn item(&self, pk: &str, sk: &str) -> Result<Option<Value>, StoreError>;
}

/// Side-effect states on the dedup marker: `fx_<effect>` is `running`
/// (with `fx_<effect>_until`, the lease's end in epoch ms), `pending` or `done`.
pub const FX_RUNNING: &str = "running";
pub const FX_PENDING: &str = "pending";
pub const FX_DONE: &str = "done";
/// Refused for good by the remote side (a 4xx): recorded, not retried.
pub const FX_REFUSED: &str = "refused";

/// How a claimed effect ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Done,
    Refused,
    /// Back to pending: the record is redelivered and the effect retried.
    Retry,
}

impl Settle {
    pub fn state(self) -> &'static str {
        match self {
            Settle::Done => FX_DONE,
            Settle::Refused => FX_REFUSED,
            Settle::Retry => FX_PENDING,
        }
    }
}
pub fn fx_attr(effect: &str) -> String {
    format!("fx_{effect}")
}
pub fn fx_until_attr(effect: &str) -> String {
    format!("fx_{effect}_until")
}

/// Lets tests fail chosen DynamoDB calls, before they are sent or after
/// they succeeded (the "committed, but the answer was lost" case).
pub trait FaultInjector: Send + Sync {
    fn before_call(&self) -> Result<(), StoreError>;
    fn after_call(&self) -> Result<(), StoreError>;
}

#[derive(Clone)]
pub struct DynamoStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub dedup_ttl: Duration,
    pub faults: Option<Arc<dyn FaultInjector>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Latest,
    Earliest,
    Plain,
}

fn first_stage(u: &ItemUpdate) -> Stage {
    if u.latest.is_some() {
        Stage::Latest
    } else if u.earliest.is_some() {
        Stage::Earliest
    } else {
        Stage::Plain
    }
}

fn next_stage(u: &ItemUpdate, s: Stage) -> Stage {
    match s {
        Stage::Latest if u.earliest.is_some() => Stage::Earliest,
        _ => Stage::Plain,
    }
}

/// Levels of nesting a JSON value may use inside an item (DynamoDB allows
/// 32, the item itself being one).
const MAX_ATTR_DEPTH: usize = 30;

/// JSON -> DynamoDB attribute (maps and lists kept as such). What DynamoDB
/// cannot hold is kept as text: numbers out of its range, values nested
/// deeper than it allows; an empty map key becomes `"(empty)"`.
pub fn json_to_attr(v: &Value) -> AttributeValue {
    json_to_attr_at(v, 0)
}

fn json_to_attr_at(v: &Value, depth: usize) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !crate::plan::dynamo_number_ok(f) => AttributeValue::S(n.to_string()),
            _ => AttributeValue::N(n.to_string()),
        },
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(_) | Value::Object(_) if depth >= MAX_ATTR_DEPTH => {
            AttributeValue::S(v.to_string())
        }
        Value::Array(a) => {
            AttributeValue::L(a.iter().map(|x| json_to_attr_at(x, depth + 1)).collect())
        }
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| {
                    let k = if k.is_empty() { "(empty)" } else { k.as_str() };
                    (k.to_owned(), json_to_attr_at(v, depth + 1))
                })
                .collect(),
        ),
    }
}

/// DynamoDB attribute -> JSON (sets become sorted arrays).
pub fn attr_to_json(a: &AttributeValue) -> Value {
    match a {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(n.clone())),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(attr_to_json).collect()),
        AttributeValue::M(m) => {
            let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), attr_to_json(v)))
                    .collect(),
            )
        }
        AttributeValue::Ss(s) => {
            let mut s = s.clone();
            s.sort();
            Value::from(s)
        }
        AttributeValue::Ns(ns) => {
            let mut v: Vec<f64> = ns.iter().filter_map(|n| n.parse().ok()).collect();
            v.sort_by(f64::total_cmp);
            Value::Array(
                v.into_iter()
                    .map(|f| {
                        if f.fract() == 0.0 {
                            Value::from(f as i64)
                        } else {
                            Value::from(f)
                        }
                    })
                    .collect(),
            )
        }
        _ => Value::Null,
    }
}

/// An item as JSON (for views and tools).
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    attr_to_json(&AttributeValue::M(item.clone()))
}

/// An item's size as DynamoDB meters it (attribute names plus values; numbers
/// by significant digits), in bytes: a write costs one unit per started KB,
/// two in a transaction.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn number(n: &str) -> usize {
        let digits = n
            .trim_start_matches('-')
            .replace('.', "")
            .split(['e', 'E'])
            .next()
            .unwrap_or_default()
            .trim_matches('0')
            .len();
        digits.div_ceil(2) + 1
    }
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => number(n),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
            AttributeValue::Ns(v) => v.iter().map(|n| number(n)).sum(),
            AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>()
            }
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else if f.abs() >= 1e15 || f.abs() < 1e-15 {
        // DynamoDB reads exponents; Rust would spell out every digit.
        format!("{f:e}")
    } else {
        f.to_string()
    }
}

fn to_attr(v: &Val) -> AttributeValue {
    match v {
        Val::S(s) => AttributeValue::S(s.clone()),
        Val::N(n) if !crate::plan::dynamo_number_ok(*n) => AttributeValue::S(n.to_string()),
        Val::N(n) => AttributeValue::N(num(*n)),
        Val::Ss(s) => AttributeValue::Ss(s.clone()),
        Val::Ns(n) => AttributeValue::Ns(n.iter().map(|f| num(*f)).collect()),
        Val::Json(j) => json_to_attr(j),
    }
}

/// Builds an expression with generated placeholders.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    add: Vec<String>,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        let n = format!("#n{}", self.names.len());
        self.names.insert(n.clone(), attr.to_owned());
        n
    }
    fn value(&mut self, v: AttributeValue) -> String {
        let n = format!(":v{}", self.values.len());
        self.values.insert(n.clone(), v);
        n
    }
    /// `SET a = v` for each field, or `SET a = if_not_exists(a, v)` when `once`.
    fn set_fields(&mut self, fields: &[(&'static str, Val)], once: bool) {
        for (attr, v) in fields {
            let n = self.name(attr);
            let val = self.value(to_attr(v));
            self.set.push(if once {
                format!("{n} = if_not_exists({n}, {val})")
            } else {
                format!("{n} = {val}")
            });
        }
    }
    fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        parts.join(" ")
    }
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn build_update(
    table: &str,
    u: &ItemUpdate,
    stage: Stage,
    order: &str,
) -> Result<Update, StoreError> {
    let mut e = Expr::default();
    let order_val = AttributeValue::S(order.to_owned());
    e.set_fields(&u.set_once, true);
    for (attr, v) in &u.add {
        let n = e.name(attr);
        let val = e.value(to_attr(v));
        e.add.push(format!("{n} {val}"));
    }
    let mut condition = None;
    match stage {
        Stage::Latest => {
            let reg = u
                .latest
                .as_ref()
                .ok_or_else(|| StoreError::Permanent("latest stage without register".into()))?;
            let lo = e.name(reg.order_attr);
            let ov = e.value(order_val.clone());
            e.set.push(format!("{lo} = {ov}"));
            e.set_fields(&reg.fields, false);
            condition = Some(format!("attribute_not_exists({lo}) OR {lo} <= {ov}"));
            if let Some(early) = &u.earliest {
                // Newest and no earliest yet means this is also the earliest.
                let eo = e.name(early.order_attr);
                e.set.push(format!("{eo} = if_not_exists({eo}, {ov})"));
                e.set_fields(&early.fields, true);
            }
        }
        Stage::Earliest => {
            let reg = u
                .earliest
                .as_ref()
                .ok_or_else(|| StoreError::Permanent("earliest stage without register".into()))?;
            let eo = e.name(reg.order_attr);
            let ov = e.value(order_val);
            e.set.push(format!("{eo} = {ov}"));
            e.set_fields(&reg.fields, false);
            condition = Some(format!("attribute_not_exists({eo}) OR {eo} > {ov}"));
        }
        Stage::Plain => {}
    }
    Update::builder()
        .table_name(table)
        .set_key(Some(key(&u.pk, &u.sk)))
        .update_expression(e.update_expression())
        .set_condition_expression(condition)
        .set_expression_attribute_names(Some(e.names))
        .set_expression_attribute_values(Some(e.values))
        .build()
        .map_err(|err| StoreError::Permanent(err.to_string()))
}

const MAX_TRANSIENT_RETRIES: u32 = 4;

/// Whether a `ValidationException` says DynamoDB refused what an item holds
/// (its size, a number's range, nesting, an empty or duplicated set, a key's
/// length): the same event fails every time. A malformed expression or a
/// key that does not match the table's schema is a deploy's fault instead:
/// transient, so the events wait in the queue and the DLQ for the fix.
pub fn refused_for_content(message: Option<&str>) -> bool {
    let m = message.unwrap_or_default().to_ascii_lowercase();
    let content = [
        "item size",
        "exceeded the maximum",
        "size limit",
        "number overflow",
        "magnitude",
        "nesting",
        "may not be empty",
        "contains duplicates",
        "empty string",
        "size of hashkey",
    ];
    let deploy = [
        "expression",
        "schema",
        "type mismatch",
        "missing the key",
        "not found",
    ];
    content.iter().any(|c| m.contains(c)) && !deploy.iter().any(|d| m.contains(d))
}

/// A failed call: permanent when DynamoDB refused the request's content
/// (`ValidationException`: the same request fails every time), else transient.
fn store_error<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    if e.code() == Some("ValidationException") && refused_for_content(e.message()) {
        StoreError::Permanent(format!(
            "DynamoDB refused the request: {}",
            e.message().unwrap_or("ValidationException")
        ))
    } else {
        StoreError::Transient(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
    }
}

/// A `ClientRequestToken` (at most 36 characters) unique to this attempt
/// to apply this message's event with one set of items.
fn request_token(message_id: &str, key: &str, generation: u32) -> String {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = sha2::Sha256::new();
    h.update(message_id.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update(generation.to_le_bytes());
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

fn backoff(attempt: u32) -> Duration {
    // 25, 50, 100, 200 ms with up to 50% jitter.
    let base = 25u64 << attempt.min(6);
    let jitter = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64)
        % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
            dedup_ttl: Duration::from_secs(DEFAULT_DEDUP_TTL_DAYS * 86_400),
            faults: None,
        }
    }

    fn before(&self) -> Result<(), StoreError> {
        self.faults.as_ref().map_or(Ok(()), |f| f.before_call())
    }
    fn after(&self) -> Result<(), StoreError> {
        self.faults.as_ref().map_or(Ok(()), |f| f.after_call())
    }

    fn marker(&self, plan: &Plan, message_id: &str) -> Result<Put, StoreError> {
        let now = chrono::Utc::now();
        let expires = now.timestamp() + self.dedup_ttl.as_secs() as i64;
        let mut item = key(&format!("EVENT#{}", plan.key), "EVENT");
        item.insert(
            "event_type".into(),
            AttributeValue::S(plan.event_type.as_str().to_owned()),
        );
        item.insert(
            "event_time".into(),
            AttributeValue::S(plan.event_time.to_string()),
        );
        item.insert(
            "processed_at".into(),
            AttributeValue::S(crate::time::EventTime::now().to_string()),
        );
        item.insert(
            "message_id".into(),
            AttributeValue::S(message_id.to_owned()),
        );
        item.insert(TTL_ATTR.into(), AttributeValue::N(expires.to_string()));
        for effect in &plan.effects {
            item.insert(fx_attr(effect), AttributeValue::S(FX_RUNNING.into()));
            item.insert(
                fx_until_attr(effect),
                AttributeValue::N(plan.lease_until_ms.to_string()),
            );
        }
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))
    }

    /// Every item of a partition (a lead's full state is one `Query`).
    /// A conditional update of an effect's state on the dedup marker:
    /// `Ok(false)` when the condition did not hold.
    async fn effect_update(
        &self,
        key: &DedupKey,
        effect: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        self.before()?;
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self::key(&format!("EVENT#{key}"), "EVENT")))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#fx", fx_attr(effect))
            .expression_attribute_names("#until", fx_until_attr(effect));
        for (name, v) in values {
            req = req.expression_attribute_values(*name, v.clone());
        }
        match req.send().await {
            Ok(_) => self.after().map(|_| true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::Transient(
                aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
            )),
        }
    }

    /// Every item of the table (tools and tests; a full `Scan`).
    pub async fn scan_all(&self) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let r = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            out.extend(r.items.unwrap_or_default());
            start = r.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    pub async fn partition(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let r = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| {
                    StoreError::Transient(
                        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                    )
                })?;
            out.extend(r.items.unwrap_or_default());
            start = r.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn apply(&self, plan: &Plan, message_id: &str) -> Result<ApplyOutcome, StoreError> {
        use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let marker = self.marker(plan, message_id)?;
        let mut stages: Vec<Stage> = plan.items.iter().map(first_stage).collect();
        let mut transient_attempts = 0;
        let mut transactions = 0;
        // One token for every retry of the same items: a retry after an
        // attempt that committed but whose answer was lost (a timeout, a
        // TransactionInProgress) then succeeds as a no-op instead of finding
        // its own marker and calling itself a duplicate.
        let mut token = request_token(message_id, plan.key.as_str(), 0);
        loop {
            let mut items = vec![TransactWriteItem::builder().put(marker.clone()).build()];
            for (u, stage) in plan.items.iter().zip(&stages) {
                items.push(
                    TransactWriteItem::builder()
                        .update(build_update(&self.table, u, *stage, &plan.order)?)
                        .build(),
                );
            }
            self.before()?;
            transactions += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .client_request_token(&token)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let retry = match result {
                Ok(out) => match self.after() {
                    Ok(()) => {
                        let write_units = out
                            .consumed_capacity()
                            .iter()
                            .filter_map(|c| c.capacity_units())
                            .sum();
                        return Ok(ApplyOutcome::Applied {
                            transactions,
                            write_units,
                        });
                    }
                    // Committed, but the answer was lost: like a timeout.
                    Err(e) if e.is_retryable() => e.to_string(),
                    Err(e) => return Err(e),
                },
                Err(err) => {
                    let service = err.as_service_error();
                    if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = service
                    {
                        let codes: Vec<&str> = tc
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None"))
                            .collect();
                        if codes.first() == Some(&"ConditionalCheckFailed") {
                            return Ok(ApplyOutcome::Duplicate);
                        }
                        if codes.contains(&"ValidationError") {
                            let why: Vec<&str> = tc
                                .cancellation_reasons()
                                .iter()
                                .filter(|r| r.code() == Some("ValidationError"))
                                .map(|r| r.message().unwrap_or("ValidationError"))
                                .collect();
                            let why = why.join("; ");
                            // Refused for what it holds: on every delivery alike.
                            if refused_for_content(Some(&why)) {
                                return Err(StoreError::Permanent(format!(
                                    "DynamoDB refused the event's items: {why}"
                                )));
                            }
                            return Err(StoreError::Transient(format!(
                                "DynamoDB refused the request: {why}"
                            )));
                        }
                        let mut advanced = false;
                        for (i, code) in codes.iter().enumerate().skip(1) {
                            if *code == "ConditionalCheckFailed" {
                                if let (Some(u), Some(s)) =
                                    (plan.items.get(i - 1), stages.get_mut(i - 1))
                                {
                                    let next = next_stage(u, *s);
                                    advanced |= next != *s;
                                    *s = next;
                                }
                            }
                        }
                        if advanced {
                            // Other items, so another request: a new token.
                            token = request_token(message_id, plan.key.as_str(), transactions);
                            continue;
                        }
                        let retryable = codes.iter().all(|c| {
                            matches!(
                                *c,
                                "None"
                                    | "TransactionConflict"
                                    | "ThrottlingError"
                                    | "ProvisionedThroughputExceeded"
                                    | "ConditionalCheckFailed"
                            )
                        });
                        if !retryable {
                            return Err(StoreError::Transient(format!(
                                "transaction cancelled: {}",
                                codes.join(",")
                            )));
                        }
                        format!("transaction cancelled: {}", codes.join(","))
                    } else {
                        let code = err.code().unwrap_or_default().to_owned();
                        let msg = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
                        if code == "ValidationException" && refused_for_content(err.message()) {
                            return Err(StoreError::Permanent(format!(
                                "DynamoDB refused the event's items: {}",
                                err.message().unwrap_or("ValidationException")
                            )));
                        }
                        let lost_answer = matches!(
                            err,
                            SdkError::TimeoutError(_)
                                | SdkError::DispatchFailure(_)
                                | SdkError::ResponseError(_)
                        );
                        let conflict = matches!(
                            service,
                            Some(
                                TransactWriteItemsError::TransactionInProgressException(_)
                                    | TransactWriteItemsError::ProvisionedThroughputExceededException(
                                        _
                                    )
                                    | TransactWriteItemsError::ThrottlingException(_)
                                    | TransactWriteItemsError::RequestLimitExceeded(_)
                                    | TransactWriteItemsError::InternalServerError(_)
                            )
                        );
                        if !(lost_answer || conflict) {
                            // Anything else goes back to SQS and, if it keeps
                            // failing, on to the DLQ: redelivered or parked.
                            return Err(StoreError::Transient(msg));
                        }
                        msg
                    }
                }
            };
            if transient_attempts >= MAX_TRANSIENT_RETRIES {
                return Err(StoreError::Transient(retry));
            }
            transient_attempts += 1;
            tokio::time::sleep(backoff(transient_attempts)).await;
        }
    }

    async fn claim(
        &self,
        key: &DedupKey,
        effect: &str,
        message_id: &str,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.effect_update(
            key,
            effect,
            "SET #fx = :running, #until = :lease",
            "attribute_exists(pk) AND (#fx = :pending OR (#fx = :running AND #until < :now) \
             OR (#fx = :running AND #until = :lease AND message_id = :mid))",
            &[
                (":running", AttributeValue::S(FX_RUNNING.into())),
                (":pending", AttributeValue::S(FX_PENDING.into())),
                (":lease", AttributeValue::N(lease_until_ms.to_string())),
                (":now", AttributeValue::N(now_ms.to_string())),
                (":mid", AttributeValue::S(message_id.to_owned())),
            ],
        )
        .await
    }

    async fn settle(
        &self,
        key: &DedupKey,
        effect: &str,
        lease_until_ms: i64,
        end: Settle,
    ) -> Result<(), StoreError> {
        let state = end.state();
        // Only the holder of this lease settles it; if the lease ran out and
        // someone else took over, it is theirs to settle.
        self.effect_update(
            key,
            effect,
            "SET #fx = :state",
            "#fx = :running AND #until = :lease",
            &[
                (":state", AttributeValue::S(state.into())),
                (":running", AttributeValue::S(FX_RUNNING.into())),
                (":lease", AttributeValue::N(lease_until_ms.to_string())),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn item(&self, pk: &str, sk: &str) -> Result<Option<Value>, StoreError> {
        self.before()?;
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self::key(pk, sk)))
            .send()
            .await
            .map_err(|e| {
                StoreError::Transient(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })?;
        self.after()?;
        Ok(r.item.as_ref().map(item_to_json))
    }

    async fn reject(&self, r: Rejected<'_>) -> Result<(), StoreError> {
        let expires = chrono::Utc::now().timestamp() + (REJECTED_TTL_DAYS * 86_400) as i64;
        let raw = crate::plan::cut_bytes(r.raw, crate::plan::MAX_RAW_BYTES).to_owned();
        let mut item = key("REJECTED", &format!("{}#{}", r.received_at, r.message_id));
        item.insert("reason".into(), AttributeValue::S(r.reason.to_owned()));
        item.insert(
            "detail".into(),
            AttributeValue::S(if r.detail.is_empty() {
                "-".into()
            } else {
                crate::plan::cut_bytes(r.detail, 1000).to_owned()
            }),
        );
        item.insert(
            "message_id".into(),
            AttributeValue::S(r.message_id.to_owned()),
        );
        item.insert(
            "received_at".into(),
            AttributeValue::S(r.received_at.to_owned()),
        );
        item.insert(
            "raw".into(),
            AttributeValue::S(if raw.is_empty() { "-".into() } else { raw }),
        );
        item.insert(TTL_ATTR.into(), AttributeValue::N(expires.to_string()));
        self.before()?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_error)?;
        self.after()
    }
}

/// Creates the state table as template.yaml declares it (pk/sk strings,
/// on-demand) and turns on TTL. For tests and the local stack.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::*;
    let err = |e: String| StoreError::Transient(e);
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
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .key_schema(ks("pk", KeyType::Hash)?)
        .key_schema(ks("sk", KeyType::Range)?)
        .send()
        .await
        .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
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
        .map_err(|e| err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_size_follows_dynamodb_rules() {
        let item: HashMap<String, AttributeValue> = [
            ("pk".to_owned(), AttributeValue::S("LEAD#a@b.c".into())), // 2 + 10
            ("opens".to_owned(), AttributeValue::N("12".into())),      // 5 + 2
            ("score".to_owned(), AttributeValue::N("-1.50".into())),   // 5 + 2
            (
                "flags".to_owned(),
                AttributeValue::Ss(vec!["engaged".into(), "replied".into()]),
            ), // 5 + 14
            (
                "m".to_owned(),
                AttributeValue::M([("k".to_owned(), AttributeValue::Bool(true))].into()),
            ), // 1 + 3 + 1 + 1 + 1
        ]
        .into();
        assert_eq!(item_size(&item), 12 + 7 + 7 + 19 + 7);
    }
}
