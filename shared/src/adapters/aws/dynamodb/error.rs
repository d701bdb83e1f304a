//! DynamoDB's errors as the store's: permanent when DynamoDB refused what
//! the event holds, else transient (SQS redelivers).

use crate::adapters::aws::error::AwsError;
use crate::app::store::StoreError;

/// Whether a `ValidationException` says DynamoDB refused what an item holds
/// (its size, a number's range, nesting, an empty or duplicated set, a key's
/// length): the same event fails every time. A malformed expression or a
/// key that does not match the table's schema is a deploy's fault instead:
/// transient, so the events wait in the queue and the DLQ for the fix.
/// AWS opens a value's refusal with "ExpressionAttributeValues contains
/// invalid value:": that names the request's values, not a deploy's
/// expression, so it is judged by the content words alone (what follows
/// may quote the values themselves, "not found" in a link included).
pub fn refused_for_content(message: Option<&str>) -> bool {
    let lower = message.unwrap_or_default().to_ascii_lowercase();
    let value = lower.strip_prefix("expressionattributevalues contains invalid value:");
    let m = value.unwrap_or(&lower);
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
    content.iter().any(|c| m.contains(c))
        && (value.is_some() || !deploy.iter().any(|d| m.contains(d)))
}

/// A failed call, its cause kept: permanent when DynamoDB refused the
/// request's content (`ValidationException`: the same request fails every
/// time), else transient.
pub(crate) fn store_error<E, R>(
    operation: &'static str,
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let e = AwsError::from_sdk(operation, e);
    if e.code.as_deref() == Some("ValidationException") && refused_for_content(e.message()) {
        StoreError::Permanent {
            message: format!(
                "DynamoDB refused the event's items: {}",
                e.message().unwrap_or("ValidationException")
            ),
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::transient_from(e)
    }
}
