//! A rule's event pattern narrowed to one lead or campaign, and to one
//! replay.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// `pattern` narrowed to one lead (its address, lower case as the consumer
/// publishes it) and/or one campaign.
pub fn scoped_pattern(pattern: &str, lead: Option<&str>, campaign: Option<&str>) -> Result<String> {
    let mut p: Value = serde_json::from_str(pattern).context("a rule's event pattern")?;
    let Some(o) = p.as_object_mut() else {
        bail!("a rule's event pattern is not an object");
    };
    let detail = o.entry("detail").or_insert_with(|| json!({}));
    let Some(d) = detail.as_object_mut() else {
        bail!("a rule's pattern matches `detail` as a whole: scope it by hand");
    };
    let normalized = d.entry("normalized").or_insert_with(|| json!({}));
    let Some(n) = normalized.as_object_mut() else {
        bail!("a rule's pattern matches `detail.normalized` as a whole: scope it by hand");
    };
    if let Some(l) = lead {
        n.insert("lead_email".into(), json!([l.trim().to_ascii_lowercase()]));
    }
    if let Some(c) = campaign {
        n.insert("campaign_id".into(), json!([c.trim()]));
    }
    Ok(p.to_string())
}

/// `pattern` matched only by the events of the replay `replay`
/// (EventBridge marks replayed events with `replay-name`): a temporary rule
/// never doubles live events, and one left behind (an interrupted run)
/// matches nothing again.
pub fn only_replay(pattern: &str, replay: &str) -> Result<String> {
    let mut p: Value = serde_json::from_str(pattern).context("an event pattern")?;
    let Some(o) = p.as_object_mut() else {
        bail!("an event pattern is not an object");
    };
    o.insert("replay-name".into(), json!([replay]));
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_pattern_is_narrowed_to_the_lead_and_campaign() {
        let p = scoped_pattern(
            r#"{"source":["smartlead.webhooks"],"detail-type":["EMAIL_REPLY"],"detail":{"normalized":{"category":["Interested"]}}}"#,
            Some(" Jane@Acme.COM "),
            Some("123"),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["source"], json!(["smartlead.webhooks"]));
        assert_eq!(v["detail"]["normalized"]["category"], json!(["Interested"]));
        assert_eq!(
            v["detail"]["normalized"]["lead_email"],
            json!(["jane@acme.com"])
        );
        assert_eq!(v["detail"]["normalized"]["campaign_id"], json!(["123"]));
        assert!(scoped_pattern(r#"{"detail":["x"]}"#, Some("a@b.co"), None).is_err());
        assert!(scoped_pattern("[]", Some("a@b.co"), None).is_err());
    }

    #[test]
    fn a_temporary_rule_matches_only_its_own_replay() {
        let p = only_replay(r#"{"source":["smartlead.webhooks"]}"#, "smartlead-replay-1").unwrap();
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["replay-name"], json!(["smartlead-replay-1"]));
        assert_eq!(v["source"], json!(["smartlead.webhooks"]));
        assert!(only_replay("[]", "x").is_err());
    }
}
