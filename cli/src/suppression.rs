//! `smartlead suppression`: every suppressed address (bounced,
//! unsubscribed), newest first, from the table's `suppressed` index.
//! `--csv` is RFC 4180 with a header row, `email` first: what CRM and
//! sending tools' import screens take.

use crate::ops::{Stack, StackArgs};
use anyhow::{anyhow, Result};
use serde::Serialize;
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use smartlead::domain::time::EventTime;
use std::collections::HashMap;

#[derive(clap::Args)]
pub struct SuppressionArgs {
    /// From when (the address's first suppression): a span back from now
    /// (`90m`, `24h`, `7d`) or an RFC 3339 time. Every address without it.
    #[arg(long)]
    pub since: Option<String>,
    /// CSV: email,reason,reasons,campaign_id,suppressed_at.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// A JSON array, one object per address.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
}

/// One suppressed address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppressed {
    pub email: String,
    /// The first reason (`bounce`, `unsubscribe`).
    pub reason: String,
    /// Every reason the address was suppressed for, sorted.
    pub reasons: Vec<String>,
    /// The campaign of the first suppression.
    pub campaign_id: String,
    pub suppressed_at: String,
}

/// `smartlead suppression`.
pub async fn suppression(a: &SuppressionArgs) -> Result<()> {
    let since = match &a.since {
        Some(s) => Some(crate::reconcile::since(s, EventTime::now())?),
        None => None,
    };
    let stack = Stack::resolve(&a.stack).await?;
    let items = stack.store().suppressed(since).await.map_err(|e| {
        anyhow!(
            "reading the suppressed index of table {} (an older stack has no index: deploy this version): {e}",
            stack.table
        )
    })?;
    let rows: Vec<Suppressed> = items.iter().map(row).collect();
    if a.csv {
        print!("{}", csv(&rows));
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render(&rows));
    }
    Ok(())
}

fn row(item: &HashMap<String, AttributeValue>) -> Suppressed {
    let s = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut reasons = item
        .get("flags")
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    reasons.sort();
    Suppressed {
        email: s("lead_email"),
        reason: s("reason"),
        reasons,
        campaign_id: s("campaign_id"),
        suppressed_at: s("suppressed_at"),
    }
}

/// One line per address, newest first.
pub fn render(rows: &[Suppressed]) -> String {
    let mut out = format!("{} suppressed address(es)\n", rows.len());
    for r in rows {
        out.push_str(&format!(
            "  {}  {}  {}  campaign {}\n",
            r.suppressed_at,
            r.email,
            r.reasons.join("+"),
            r.campaign_id
        ));
    }
    out
}

/// RFC 4180, with a header row; `reasons` joined by `;`.
pub fn csv(rows: &[Suppressed]) -> String {
    let mut out = String::from("email,reason,reasons,campaign_id,suppressed_at\r\n");
    for r in rows {
        let fields = [
            r.email.as_str(),
            &r.reason,
            &r.reasons.join(";"),
            &r.campaign_id,
            &r.suppressed_at,
        ];
        let line: Vec<String> = fields.iter().map(|f| cell(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV cell: quoted when it holds a comma, quote or line break; a
/// leading `=`, `+`, `-`, `@`, tab or CR gets a `'` first, so a
/// spreadsheet opening the export runs no formula from a hostile address
/// (https://owasp.org/www-community/attacks/CSV_Injection).
fn cell(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{f}")
    } else {
        f.to_owned()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(email: &str) -> Suppressed {
        Suppressed {
            email: email.into(),
            reason: "bounce".into(),
            reasons: vec!["bounce".into(), "unsubscribe".into()],
            campaign_id: "123".into(),
            suppressed_at: "2025-01-15T12:00:00.000Z".into(),
        }
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_address() {
        assert_eq!(
            csv(&[r("jane@acme.example")]),
            "email,reason,reasons,campaign_id,suppressed_at\r\n\
             jane@acme.example,bounce,bounce;unsubscribe,123,2025-01-15T12:00:00.000Z\r\n"
        );
    }

    #[test]
    fn a_hostile_address_is_quoted_and_runs_no_formula() {
        let out = csv(&[r("\"=HYPERLINK(1,2)\"@x.example")]);
        let row = out.lines().nth(1).unwrap();
        assert!(
            row.starts_with("\"\"\"=HYPERLINK(1,2)\"\"@x.example\","),
            "{row}"
        );
        let out = csv(&[r("=1+2@x.example")]);
        assert!(out.lines().nth(1).unwrap().starts_with("'=1+2@x.example,"));
    }
}
