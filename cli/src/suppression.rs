//! `smartlead suppression`: every suppressed address (bounced,
//! unsubscribed), newest first, from the table's `suppressed` index.
//! `--csv` is RFC 4180 with a header row, `email` first: what CRM and
//! sending tools' import screens take.

use crate::lists::read_index;
use crate::ops::{Stack, StackArgs};
use anyhow::Result;
use serde::Serialize;
use smartlead::adapters::aws::dynamodb::index::{SUPPRESSED, SUPPRESSION_SK};
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
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
    /// Only the leads suppressed for this client (an agency's): every
    /// bounce, and the unsubscribes that applied to it.
    #[arg(long)]
    pub client: Option<String>,
    #[command(flatten)]
    pub stack: StackArgs,
}

/// One suppressed lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppressed {
    /// Empty for a lead SmartLead named by its id alone (see `lead`).
    pub email: String,
    /// The lead as the table keys it (`<email>`, or `id:<SmartLead id>`).
    pub lead: String,
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
    let since = crate::lists::since(a.since.as_deref())?;
    let stack = Stack::resolve(&a.stack).await?;
    let (items, units) = read_index(&stack.store(), SUPPRESSED, SUPPRESSION_SK, since).await?;
    let mut rows: Vec<Suppressed> = items.iter().map(row).collect();
    let mut units = units;
    if let Some(client) = &a.client {
        units += keep_for_client(&stack, &mut rows, client).await?;
    }
    if a.csv {
        let no_address = rows.iter().filter(|r| r.email.is_empty()).count();
        if no_address > 0 {
            eprintln!(
                "{no_address} suppressed lead(s) known by SmartLead id only, without an address: \
                 not in the CSV (see --json)"
            );
        }
        print!("{}", csv(&rows));
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render(&rows));
    }
    crate::lists::read_units(units);
    Ok(())
}

/// Keeps the rows whose suppression applies to `client`: a bounce's or an
/// unscoped unsubscribe's flag applies to every client (the index holds
/// it); a scoped one's clients are on its item, read for those rows only.
/// Returns the read units.
async fn keep_for_client(stack: &Stack, rows: &mut Vec<Suppressed>, client: &str) -> Result<f64> {
    let everywhere = |r: &Suppressed| {
        r.reasons
            .iter()
            .any(|f| f == "bounce" || f == "unsubscribe")
    };
    let keys: Vec<(String, String)> = rows
        .iter()
        .filter(|r| !everywhere(r))
        .map(|r| (format!("LEAD#{}", r.lead), SUPPRESSION_SK.to_owned()))
        .collect();
    let (items, units) = stack.store().items_at(&keys).await?;
    let scoped: std::collections::HashSet<String> = items
        .iter()
        .filter(|i| {
            i.get("clients")
                .and_then(|v| v.as_ss().ok())
                .is_some_and(|c| c.iter().any(|c| c == client))
        })
        .map(|i| {
            crate::lists::s(i, "pk")
                .trim_start_matches("LEAD#")
                .to_owned()
        })
        .collect();
    rows.retain(|r| everywhere(r) || scoped.contains(&r.lead));
    Ok(units)
}

fn row(item: &HashMap<String, AttributeValue>) -> Suppressed {
    let s = |k: &str| crate::lists::s(item, k);
    let mut reasons = item
        .get("flags")
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    reasons.sort();
    Suppressed {
        email: s("lead_email"),
        lead: s("pk").trim_start_matches("LEAD#").to_owned(),
        reason: s("reason"),
        reasons,
        campaign_id: s("campaign_id"),
        suppressed_at: s("suppressed_at"),
    }
}

/// One line per lead, newest first (control characters shown escaped).
pub fn render(rows: &[Suppressed]) -> String {
    let mut out = format!("{} suppressed lead(s)\n", rows.len());
    for r in rows {
        let who = if r.email.is_empty() {
            &r.lead
        } else {
            &r.email
        };
        out.push_str(&format!(
            "  {}  {}  {}  campaign {}\n",
            r.suppressed_at,
            who.escape_debug(),
            r.reasons.join("+"),
            r.campaign_id.escape_debug()
        ));
    }
    out
}

/// RFC 4180, with a header row; `reasons` joined by `;`. Only leads with
/// an address: a row without one suppresses nothing where it is imported.
pub fn csv(rows: &[Suppressed]) -> String {
    let mut out = String::from("email,reason,reasons,campaign_id,suppressed_at\r\n");
    for r in rows.iter().filter(|r| !r.email.is_empty()) {
        let fields = [
            &r.reason,
            &r.reasons.join(";"),
            &r.campaign_id,
            &r.suppressed_at,
        ];
        let line: Vec<String> = std::iter::once(cell(&r.email))
            .chain(fields.iter().map(|f| text_cell(f)))
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV cell: quoted when it holds a comma, quote or line break. A
/// leading `=`, `@`, tab or CR gets a `'` first, so a spreadsheet opening
/// the export runs no formula from a hostile address
/// (https://owasp.org/www-community/attacks/CSV_Injection); no real
/// address starts so. `+` and `-` do start real addresses (`-bob@x.com`)
/// and stay: an import must suppress the address itself.
pub(crate) fn cell(f: &str) -> String {
    guarded(f, &['=', '@', '\t', '\r'])
}

/// A CSV cell of free text (a reply's preview, a category, an id): `+`
/// and `-` start formulas too (`-1+cmd`), and no address is at stake, so
/// they get the `'` as well.
pub(crate) fn text_cell(f: &str) -> String {
    guarded(f, &['=', '@', '\t', '\r', '+', '-'])
}

fn guarded(f: &str, starts: &[char]) -> String {
    let f = if f.starts_with(starts) {
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
            lead: email.into(),
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
        // A real address that starts with `-` or `+` is exported as it is.
        let out = csv(&[r("-bob@x.example"), r("+al@x.example")]);
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert!(rows[0].starts_with("-bob@x.example,"), "{out}");
        assert!(rows[1].starts_with("+al@x.example,"), "{out}");
    }

    #[test]
    fn a_lead_known_by_id_alone_is_listed_but_not_exported() {
        let mut by_id = r("");
        by_id.lead = "id:1482956".into();
        assert_eq!(csv(&[by_id.clone()]).lines().count(), 1, "the header only");
        assert!(render(&[by_id]).contains("  id:1482956  bounce+unsubscribe"));
    }
}
