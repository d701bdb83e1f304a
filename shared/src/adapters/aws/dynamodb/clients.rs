//! The client registry's item (`CLIENTS` / `REGISTRY`): the registry as
//! JSON text and a version that each write raises, so two writers never
//! lose each other's change. Its `sk` is no index's key value: it enters no
//! index.

use crate::adapters::aws::error::AwsError;
use crate::config::refresh::Loader;
use crate::domain::client::Registry;
use aws_sdk_dynamodb::types::AttributeValue;

pub const PK: &str = "CLIENTS";
pub const SK: &str = "REGISTRY";

/// Why the registry was not written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryWriteError {
    #[error("the client registry changed since it was read; read it again")]
    Changed,
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The registry and its version (0 when there is none yet).
pub async fn read_registry(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(Registry, u64), AwsError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(super::key(PK, SK)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetItem", e))?;
    let Some(item) = out.item() else {
        return Ok((Registry::default(), 0));
    };
    let version = match item.get("version") {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    };
    let registry = match item.get("registry") {
        Some(AttributeValue::S(s)) => serde_json::from_str(s).map_err(|e| AwsError {
            operation: "GetItem",
            code: None,
            summary: format!("the client registry item does not read: {e}"),
            source: Box::new(e),
        })?,
        _ => Registry::default(),
    };
    Ok((registry, version))
}

/// Writes `registry` as the version after `read` (the version it was read at).
pub async fn write_registry(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    registry: &Registry,
    read: u64,
) -> Result<(), RegistryWriteError> {
    let text = serde_json::to_string(registry).map_err(|e| AwsError {
        operation: "PutItem",
        code: None,
        summary: e.to_string(),
        source: Box::new(e),
    })?;
    let mut item = super::key(PK, SK);
    item.insert("registry".into(), AttributeValue::S(text));
    item.insert("version".into(), AttributeValue::N((read + 1).to_string()));
    let r = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(if read == 0 {
            "attribute_not_exists(pk)"
        } else {
            "version = :v"
        });
    let r = if read == 0 {
        r
    } else {
        r.expression_attribute_values(":v", AttributeValue::N(read.to_string()))
    };
    match r.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Err(RegistryWriteError::Changed)
        }
        Err(e) => Err(AwsError::from_sdk("PutItem", e).into()),
    }
}

/// Re-reads the registry (for [`crate::config::refresh::Refreshing`]).
pub fn registry_loader(client: aws_sdk_dynamodb::Client, table: String) -> Loader<Registry> {
    std::sync::Arc::new(move || {
        let (client, table) = (client.clone(), table.clone());
        Box::pin(async move {
            read_registry(&client, &table)
                .await
                .map(|(r, _)| r)
                .map_err(|e| e.to_string())
        })
    })
}
