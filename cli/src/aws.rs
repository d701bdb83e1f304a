//! AWS as the CLI reads it: the SDK's configuration, a deployed stack's
//! outputs and parameters, SSM values, and an SDK error in words.

use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;

pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

pub async fn ssm_value(name: &str) -> Result<String> {
    let cfg = aws().await;
    smartlead::adapters::aws::ssm::secure_string(&cfg, name)
        .await
        .map_err(|e| anyhow!("{e}"))
}

/// An SSM parameter's value (through `cfg`, a stack's AWS or the local
/// stack's moto), `None` when there is no such parameter.
pub async fn ssm_value_if_any(cfg: &aws_config::SdkConfig, name: &str) -> Result<Option<String>> {
    let r = aws_sdk_ssm::Client::new(cfg)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await;
    match r {
        Ok(o) => Ok(o.parameter().and_then(|p| p.value()).map(str::to_owned)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_err(format!("reading SSM parameter {name}"))(e)),
    }
}

/// `DescribeStacks` of one stack.
async fn describe_stack(
    stack: &str,
) -> Result<aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput> {
    aws_sdk_cloudformation::Client::new(&aws().await)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_err(format!("reading stack {stack}")))
}

/// The stack's outputs, by name.
pub async fn outputs(stack: &str) -> Result<HashMap<String, String>> {
    let out = describe_stack(stack).await?;
    Ok(out
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// The stack's dedup marker TTL: its `DedupTtlDays` output, or parameter
/// (stacks from before the output).
pub async fn stack_dedup_ttl(stack: &str, o: &HashMap<String, String>) -> Result<Option<u64>> {
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .with_context(|| format!("stack {stack}: DedupTtlDays {v:?} is not a number of days"))
    };
    if let Some(v) = o.get("DedupTtlDays") {
        return parse(v).map(Some);
    }
    let param = stack_parameter(stack, "DedupTtlDays").await?;
    param.as_deref().map(parse).transpose()
}

pub fn output(o: &HashMap<String, String>, key: &str, stack: &str) -> Result<String> {
    o.get(key)
        .cloned()
        .ok_or_else(|| anyhow!("stack {stack} has no output {key}"))
}

/// The error of an AWS SDK call, with what was being done and the SDK's
/// whole error chain.
pub(crate) fn aws_err<E: std::error::Error + 'static>(
    doing: impl std::fmt::Display,
) -> impl FnOnce(E) -> anyhow::Error {
    // Causes by their Display only: never a raw response's body.
    move |e| {
        anyhow!(
            "{doing}: {}",
            smartlead::adapters::aws::error::error_chain(&e)
        )
    }
}

/// A deployed stack's parameter value, if the stack has it.
pub async fn stack_parameter(stack: &str, key: &str) -> Result<Option<String>> {
    let out = describe_stack(stack).await?;
    Ok(out.stacks().first().and_then(|s| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
    }))
}
