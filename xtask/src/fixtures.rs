//! Generates `events/api/` and `events/sqs/` from `events/payloads/`.
//!
//! `cargo run -p xtask -- fixtures` writes them; `... fixtures --check` fails
//! when a committed file differs from what would be generated (the test
//! suite runs the same comparison).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use test_support::{api_request, delivery_headers, payloads, sqs_record, string_attr};

pub fn events_dir(root: &Path) -> PathBuf {
    root.join("events")
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Every generated file: relative path under events/ -> content.
pub fn generate(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    let payloads = payloads(root)?;
    let mut all = Vec::new();
    for (name, body) in &payloads {
        let probe = smartlead::domain::event::probe(body.as_bytes())
            .map_err(|e| anyhow::anyhow!("events/payloads/{name}.json: {e}"))?;
        let kind = probe.event_type.as_str().to_owned();
        let mut api = api_request(name, body, &kind);
        let mut rec = sqs_record(name, body, &kind);
        // The envelope shape comes with SmartLead's event id and webhook
        // level as headers; the ingest passes them on as attributes.
        for (header, attribute, value) in delivery_headers(body) {
            api["headers"][header] = json!(value);
            rec["messageAttributes"][attribute] = string_attr(&value);
        }
        out.insert(PathBuf::from(format!("api/{name}.json")), pretty(&api));
        out.insert(
            PathBuf::from(format!("sqs/{name}.json")),
            pretty(&json!({ "Records": [rec.clone()] })),
        );
        all.push(rec);
    }
    // A batch of every payload, one of each.
    out.insert(
        PathBuf::from("sqs/batch_all.json"),
        pretty(&json!({ "Records": all })),
    );
    // A mixed batch: a poison body, a redelivered duplicate, and good records.
    let mut mixed = Vec::new();
    for (seed, name) in [
        ("mixed-1", "email_open"),
        ("mixed-2", "email_open"),
        ("mixed-3", "email_reply"),
    ] {
        let body = payloads.get(name).context("mixed batch payload")?;
        mixed.push(sqs_record(
            seed,
            body,
            if name == "email_open" {
                "EMAIL_OPEN"
            } else {
                "EMAIL_REPLY"
            },
        ));
    }
    mixed.push(sqs_record("mixed-poison", "this is not json", "UNKNOWN"));
    out.insert(
        PathBuf::from("sqs/batch_mixed.json"),
        pretty(&json!({ "Records": mixed })),
    );
    Ok(out)
}

/// Writes (or, with `check`, compares) the generated files.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let generated = generate(root)?;
    let dir = events_dir(root);
    let mut stale = Vec::new();
    for (rel, content) in &generated {
        let path = dir.join(rel);
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current != *content {
            if check {
                stale.push(rel.display().to_string());
            } else {
                fs::create_dir_all(path.parent().context("parent")?)?;
                fs::write(&path, content)?;
            }
        }
    }
    // Generated folders hold nothing else.
    for sub in ["api", "sqs"] {
        for entry in fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let rel = PathBuf::from(sub).join(entry.file_name());
            if !generated.contains_key(&rel) {
                if check {
                    stale.push(format!("{} (no payload generates it)", rel.display()));
                } else {
                    fs::remove_file(entry.path())?;
                }
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "events/ fixtures are out of date; run `cargo run -p xtask -- fixtures`:\n  {}",
            stale.join("\n  ")
        );
    }
    if !check {
        println!("events/: {} generated files up to date", generated.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_fixtures_match_the_generator() {
        super::run(&crate::workspace_root(), true).expect("fixtures are current");
    }
}
