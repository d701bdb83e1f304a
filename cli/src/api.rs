//! SmartLead's API as the CLI calls it: the key (from the environment or
//! SSM), the stack's shared rate budget, the deadline of one call.

use crate::aws::{aws, output, outputs, ssm_value};
use crate::ApiArgs;
use anyhow::{bail, Result};
use smartlead::adapters::aws::dynamodb::budget::DynamoBudget;
use smartlead::adapters::http::smartlead::Api;
use smartlead::app::budget::RateBudget;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

pub async fn api_key(args: &ApiArgs) -> Result<String> {
    Ok(
        match (&args.api_key_param, std::env::var("SMARTLEAD_API_KEY")) {
            (Some(p), _) => ssm_value(p).await?,
            (None, Ok(k)) if !k.trim().is_empty() => k.trim().to_owned(),
            _ => {
                bail!("no SmartLead API key: set SMARTLEAD_API_KEY or pass --api-key-param <ssm name>")
            }
        },
    )
}

/// The SmartLead API, its calls paced by the key's rate budget in the
/// table of `stack` (`StateTableName`), shared with the stack's functions;
/// by this process alone (said on stderr) when the stack cannot be read.
pub async fn api(args: &ApiArgs, stack: &str) -> Result<Api> {
    let key = api_key(args).await?;
    let budget: Arc<dyn RateBudget> = match stack_budget(stack).await {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("note: SmartLead calls paced by this process alone, not with stack {stack}'s functions ({e:#})");
            Arc::new(smartlead::app::budget::InProcess::default())
        }
    };
    Ok(Api::new(&args.api_base, &key).with_budget(budget, args.requests_per_minute))
}

/// The rate budgets in a deployed stack's table.
async fn stack_budget(stack: &str) -> Result<DynamoBudget> {
    let table = output(&outputs(stack).await?, "StateTableName", stack)?;
    let ddb = smartlead::aws_sdk_dynamodb::Client::new(&aws().await);
    Ok(DynamoBudget::new(ddb, table))
}
