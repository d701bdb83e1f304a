//! `smartlead register`: create or update a webhook for the stack's URL.

use crate::api::{api, deadline};
use crate::secret::stack_url;
use crate::terminal::print;
use crate::RegisterArgs;
use anyhow::Result;

pub async fn register(a: RegisterArgs) -> Result<()> {
    let url = match a.url {
        Some(u) => u,
        // A client's webhook goes to the client's URL in an agency's stack.
        None => stack_url(&a.stack, a.webhook.target.client.as_deref()).await?,
    };
    let spec = a.webhook.spec(url)?;
    let api = api(&a.api, &a.stack).await?;
    let answer = match a.id {
        Some(id) => api.update_webhook(&id, &spec, deadline()).await?,
        None => api.create_webhook(&spec, deadline()).await?,
    };
    print(&answer);
    Ok(())
}
