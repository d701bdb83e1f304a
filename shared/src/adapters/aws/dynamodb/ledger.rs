//! The effect ledger: an effect's claim (a lease) and its end, kept on
//! the event's effect record (`EVENT#<key>`, attributes `fx_<effect>`).

use super::{key, store_error, DynamoStore};
use crate::app::store::{Claim, EffectLedger, Settle, StoreError, FX_PENDING, FX_RUNNING};
use crate::domain::key::DedupKey;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

pub fn fx_attr(effect: &str) -> String {
    format!("fx_{effect}")
}
pub fn fx_until_attr(effect: &str) -> String {
    format!("fx_{effect}_until")
}

impl DynamoStore {
    /// A conditional update of an effect's state on the effect record:
    /// `Ok(false)` when the condition did not hold.
    async fn effect_update(
        &self,
        key: &DedupKey,
        effect: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
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
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("UpdateItem", e)),
        }
    }
}

#[async_trait]
impl EffectLedger for DynamoStore {
    async fn claim(&self, c: Claim<'_>) -> Result<bool, StoreError> {
        let Claim {
            key,
            effect,
            message_id,
            lease_until_ms,
            now_ms,
            create,
        } = c;
        // A claim may create the effect's marker (it expires by TTL).
        let expires = chrono::Utc::now().timestamp() + self.dedup_ttl.as_secs() as i64;
        let taken = "#fx = :pending OR (#fx = :running AND #until < :now) \
             OR (#fx = :running AND #until = :lease AND message_id = :mid)";
        let condition = if create {
            format!("attribute_not_exists(#fx) OR {taken}")
        } else {
            taken.to_owned()
        };
        self.effect_update(
            key,
            effect,
            "SET #fx = :running, #until = :lease, message_id = :mid, \
             expires_at = if_not_exists(expires_at, :exp)",
            &condition,
            &[
                (":running", AttributeValue::S(FX_RUNNING.into())),
                (":pending", AttributeValue::S(FX_PENDING.into())),
                (":lease", AttributeValue::N(lease_until_ms.to_string())),
                (":now", AttributeValue::N(now_ms.to_string())),
                (":mid", AttributeValue::S(message_id.to_owned())),
                (":exp", AttributeValue::N(expires.to_string())),
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
        // Unclaimed (the fan-out of the delivery that applied the event):
        // this write creates the record.
        let expires = chrono::Utc::now().timestamp() + self.dedup_ttl.as_secs() as i64;
        self.effect_update(
            key,
            effect,
            "SET #fx = :state, expires_at = if_not_exists(expires_at, :exp)",
            "attribute_not_exists(#fx) OR (#fx = :running AND #until = :lease)",
            &[
                (":state", AttributeValue::S(state.into())),
                (":running", AttributeValue::S(FX_RUNNING.into())),
                (":lease", AttributeValue::N(lease_until_ms.to_string())),
                (":exp", AttributeValue::N(expires.to_string())),
            ],
        )
        .await
        .map(|_| ())
    }
}
