//! The webhook secret: the ones the stack's parameter holds, the URL that
//! carries one, and `rotate-secret`.

use crate::api::{api, deadline};
use crate::aws::{aws, aws_err, output, outputs, ssm_value};
use crate::flags::{event_types, webhook_ids};
use crate::RotateArgs;
use anyhow::{bail, Result};
use std::time::Duration;

/// A new secret: 64 hex digits (244 random bits), safe in any URL.
fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn put_secret(name: &str, value: &str) -> Result<()> {
    aws_sdk_ssm::Client::new(&aws().await)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map_err(aws_err(format!("writing SSM parameter {name}")))?;
    Ok(())
}

/// The secrets a parameter holds: `current` or `current,next`.
fn secrets_of(value: &str) -> Result<Vec<String>> {
    let v: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    if v.is_empty() || v.len() > 2 || v.iter().any(String::is_empty) {
        bail!("the secret parameter must hold `current` or `current,next`");
    }
    Ok(v)
}

/// The stack's webhook URL with the secret in place of `<secret>`; in an
/// agency's stack, `client`'s URL and secret.
pub async fn stack_url(stack: &str, client: Option<&str>) -> Result<String> {
    let (template, _, secrets) = stack_secrets(stack, client).await?;
    // During a rotation (`current,next`) new webhooks get the next secret.
    let secret = secrets.last().map(String::as_str).unwrap_or_default();
    Ok(smartlead::app::ingest::webhook_url(&template, secret))
}

/// The stack's webhook URL template, its secret parameter's name and the
/// secrets the parameter holds. For `client` in an agency's stack
/// (`ClientParameterPath` set): the client's URL and its own parameter
/// (`<path>/secrets/<id>`), which holds the shared secrets until the
/// client's first rotation writes it.
pub async fn stack_secrets(
    stack: &str,
    client: Option<&str>,
) -> Result<(String, String, Vec<String>)> {
    let o = outputs(stack).await?;
    let template = output(&o, "WebhookUrl", stack)?;
    let param = output(&o, "WebhookSecretParameterName", stack)?;
    let path = match client {
        Some(_) => crate::aws::stack_parameter(stack, "ClientParameterPath")
            .await?
            .filter(|p| !p.trim().is_empty()),
        None => None,
    };
    let (Some(client), Some(path)) = (client, path) else {
        let secrets = secrets_of(&ssm_value(&param).await?)?;
        return Ok((template, param, secrets));
    };
    if !smartlead::domain::client::valid_client_id(client) {
        bail!("{client:?} is not a client id");
    }
    let template = smartlead::app::ingest::client_url(&template, client);
    let own = format!("{}/secrets/{client}", path.trim_end_matches('/'));
    let secrets = match crate::aws::ssm_value_if_any(&aws().await, &own).await? {
        Some(v) => secrets_of(&v)?,
        None => secrets_of(&ssm_value(&param).await?)?,
    };
    Ok((template, own, secrets))
}

pub async fn rotate_secret(a: RotateArgs) -> Result<()> {
    let stack = &a.stack;
    let client = a.webhook.target.client.clone();
    let (template, param, secrets) = stack_secrets(stack, client.as_deref()).await?;
    // A client of an agency's stack without a secret of its own yet: its
    // first rotation starts from the shared secret, never mid-way through
    // the shared one's (its parameter would hold the shared next secret).
    if let Some(c) = &client {
        let inherited = crate::aws::ssm_value_if_any(&aws().await, &param)
            .await?
            .is_none();
        if inherited && a.finish {
            bail!("client {c} has no rotation under way: its URL takes the shared secret");
        }
        if inherited && secrets.len() == 2 {
            bail!("the shared secret is being rotated: finish that first (`smartlead rotate-secret --finish --stack {stack}`), then rotate client {c}'s");
        }
    }
    if a.finish {
        let [_, next] = secrets.as_slice() else {
            bail!("no rotation under way: the parameter holds one secret");
        };
        put_secret(&param, next).await?;
        println!(
            "the old secret is retired; the functions stop accepting it within SECRET_REFRESH_SECONDS"
        );
        return Ok(());
    }
    // Everything checked before the parameter changes.
    let ids = webhook_ids(a.id.as_deref())?;
    event_types(&a.webhook.events)?;
    let api = api(&a.api, stack).await?;
    let next = match secrets.as_slice() {
        [current] => {
            let next = new_secret();
            put_secret(&param, &format!("{current},{next}")).await?;
            println!(
                "next secret written; waiting {}s until every ingest instance accepts it",
                a.wait_secs
            );
            tokio::time::sleep(Duration::from_secs(a.wait_secs)).await;
            next
        }
        [_, next] => {
            println!("a rotation is under way: re-registering with its next secret");
            next.clone()
        }
        _ => unreachable!("secrets_of gives one or two"),
    };
    let spec = a
        .webhook
        .spec(smartlead::app::ingest::webhook_url(&template, &next))?;
    for i in &ids {
        api.update_webhook(i, &spec, deadline()).await?;
        println!("webhook {i} now uses the new secret");
    }
    let client = client.map(|c| format!(" --client {c}")).unwrap_or_default();
    println!(
        "when SmartLead's retries to the old URL are over (an hour is plenty), run `smartlead rotate-secret --finish{client} --stack {stack}`"
    );
    Ok(())
}
