//! `smartlead tail`: both functions' logs, one readable line per record and
//! per effect, filtered by event type, outcome and dedup key. A deployed
//! stack's log groups are followed with CloudWatch Logs live tail, or
//! polled (`FilterLogEvents` every 2 s) where it is unavailable; the local
//! stack's log files are followed.

use crate::aws::aws;
use crate::TailArgs;
use anyhow::{anyhow, Result};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Default)]
pub struct Filters {
    /// Only events of this type (e.g. EMAIL_REPLY).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only this outcome (applied, duplicate, rejected, failed, ...).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only events whose dedup key contains this.
    #[arg(long)]
    pub key: Option<String>,
}

/// What a log line says about one record or effect.
#[derive(Debug, Default, PartialEq)]
pub struct View {
    pub level: String,
    pub message: String,
    pub event_type: Option<String>,
    pub outcome: Option<String>,
    pub key: Option<String>,
    pub effect: Option<String>,
    pub message_id: Option<String>,
    pub extra: Option<String>,
}

fn s(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(x) => Some(x.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A function's JSON log line (flattened, with the current span; or with
/// `fields` as the local stack writes it). Metric documents and other
/// lines give nothing.
pub fn view(line: &str) -> Option<View> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    let o = v.as_object()?;
    // A metric document is a log record too when it has a message (the
    // ingest's one line a webhook).
    if o.contains_key("_aws") && !o.contains_key("message") {
        return None;
    }
    let fields = o.get("fields").and_then(Value::as_object).unwrap_or(o);
    let span = o.get("span").and_then(Value::as_object);
    let get = |k: &str| s(fields.get(k)).or_else(|| span.and_then(|sp| s(sp.get(k))));
    // The ingest's queued line is a record with no message (log bytes).
    let message = get("message").or_else(|| {
        get("outcome")
            .filter(|_| o.contains_key("Function"))
            .map(|o| format!("webhook {o}"))
    })?;
    Some(View {
        level: s(o.get("level")).unwrap_or_else(|| "INFO".into()),
        event_type: get("event_type").or_else(|| s(o.get("EventType"))),
        outcome: get("outcome"),
        key: get("dedup_key"),
        effect: get("effect"),
        message_id: get("message_id"),
        extra: get("reason").or_else(|| get("error")),
        message,
    })
}

impl Filters {
    pub fn matches(&self, v: &View) -> bool {
        let eq = |want: &Option<String>, got: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| got.as_ref().is_some_and(|g| g.eq_ignore_ascii_case(w)))
        };
        eq(&self.event_type, &v.event_type)
            && eq(&self.outcome, &v.outcome)
            && self
                .key
                .as_ref()
                .is_none_or(|k| v.key.as_ref().is_some_and(|g| g.contains(k.as_str())))
    }
}

/// One readable line: source, type, outcome or effect, key, and the rest.
pub fn render(source: &str, v: &View) -> String {
    let mut out = format!(
        "{source:<8} {:<5} {:<22}",
        v.level,
        v.event_type.as_deref().unwrap_or("-")
    );
    match (&v.outcome, &v.effect) {
        (Some(o), _) => out.push_str(&format!(" {o:<10}")),
        (None, Some(e)) => out.push_str(&format!(" effect {e}")),
        (None, None) => out.push_str(&format!(" {}", v.message)),
    }
    if let Some(k) = &v.key {
        out.push_str(&format!(" key={k}"));
    } else if let Some(m) = &v.message_id {
        out.push_str(&format!(" message_id={m}"));
    }
    if v.outcome.is_some() || v.effect.is_some() {
        out.push_str(&format!(" ({})", v.message));
    }
    if let Some(x) = &v.extra {
        out.push_str(&format!(": {x}"));
    }
    out
}

fn emit(source: &str, line: &str, f: &Filters) {
    if let Some(v) = view(line) {
        if f.matches(&v) {
            println!("{}", render(source, &v));
        }
    }
}

/// Follows the deployed stack's two log groups until `until` (or forever):
/// the last `since_secs` first, then CloudWatch Logs live tail, or (where
/// it is unavailable, or with `poll`) `FilterLogEvents` every 2 s.
pub async fn deployed(
    cfg: &aws_config::SdkConfig,
    stack: &str,
    since_secs: i64,
    f: &Filters,
    until: Option<Instant>,
    poll: bool,
) -> Result<()> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(cfg);
    let groups = [
        ("ingest", format!("/aws/lambda/{stack}-ingest")),
        ("consumer", format!("/aws/lambda/{stack}-consumer")),
    ];
    let mut poller = Poller {
        from: [chrono::Utc::now().timestamp_millis() - since_secs * 1000; 2],
        seen: Default::default(),
    };
    poller.once(&logs, &groups, f).await?;
    if !poll {
        match live(&logs, &groups, f, until).await {
            Ok(()) => return Ok(()),
            Err(e) => eprintln!("live tail unavailable ({e:#}); polling every 2 s instead"),
        }
    } else {
        eprintln!(
            "following {} and {} (polling every 2 s; Ctrl-C stops)",
            groups[0].1, groups[1].1
        );
    }
    loop {
        if until.is_some_and(|u| Instant::now() >= u) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        poller.once(&logs, &groups, f).await?;
    }
}

/// Live tail sessions (each at most 3 hours, then a new one).
async fn live(
    logs: &aws_sdk_cloudwatchlogs::Client,
    groups: &[(&str, String); 2],
    f: &Filters,
    until: Option<Instant>,
) -> Result<()> {
    let mut arns = Vec::new();
    for (_, name) in groups {
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .send()
            .await
            .map_err(crate::aws_err(format!("reading log group {name}")))?;
        let arn = out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()))
            .and_then(|g| g.log_group_arn().or(g.arn()))
            .ok_or_else(|| anyhow!("no log group {name}"))?;
        arns.push(arn.trim_end_matches(":*").to_owned());
    }
    eprintln!(
        "following {} and {} live (Ctrl-C stops)",
        groups[0].1, groups[1].1
    );
    loop {
        let mut out = logs
            .start_live_tail()
            .set_log_group_identifiers(Some(arns.clone()))
            .send()
            .await
            .map_err(crate::aws_err("starting the live tail"))?;
        loop {
            let next = match until {
                Some(u) => match tokio::time::timeout(
                    u.saturating_duration_since(Instant::now()),
                    out.response_stream.recv(),
                )
                .await
                {
                    Ok(n) => n,
                    Err(_) => return Ok(()),
                },
                None => out.response_stream.recv().await,
            };
            match next {
                Ok(Some(
                    aws_sdk_cloudwatchlogs::types::StartLiveTailResponseStream::SessionUpdate(u),
                )) => {
                    for e in u.session_results() {
                        let group = e.log_group_identifier().unwrap_or_default();
                        let source = if group.ends_with("-ingest") {
                            "ingest"
                        } else {
                            "consumer"
                        };
                        emit(source, e.message().unwrap_or_default(), f);
                    }
                }
                Ok(Some(_)) => {}
                // The session ended (after 3 hours): a new one.
                Ok(None) => break,
                Err(e) => return Err(crate::aws_err("reading the live tail")(e)),
            }
        }
    }
}

struct Poller {
    from: [i64; 2],
    seen: [HashSet<String>; 2],
}

impl Poller {
    /// Prints what the log groups got since the last call.
    async fn once(
        &mut self,
        logs: &aws_sdk_cloudwatchlogs::Client,
        groups: &[(&str, String); 2],
        f: &Filters,
    ) -> Result<()> {
        for (i, (source, group)) in groups.iter().enumerate() {
            let mut next = None;
            loop {
                let out = logs
                    .filter_log_events()
                    .log_group_name(group)
                    .start_time(self.from[i])
                    .set_next_token(next)
                    .send()
                    .await
                    .map_err(crate::aws_err(format!("reading log group {group}")))?;
                for e in out.events() {
                    let id = e.event_id().unwrap_or_default().to_owned();
                    if !self.seen[i].insert(id) {
                        continue;
                    }
                    emit(source, e.message().unwrap_or_default(), f);
                    // Events of the same millisecond may come in the next poll.
                    self.from[i] = self.from[i].max(e.timestamp().unwrap_or(0));
                }
                next = out.next_token;
                if next.is_none() {
                    break;
                }
            }
            if self.seen[i].len() > 100_000 {
                self.seen[i].clear();
            }
        }
        Ok(())
    }
}

/// The local stack's log files: `SMARTLEAD_LOG_DIR` (default
/// `<tmp>/smartlead-local`), `lambda-rie-<port>.log` for each function.
pub fn local_files(ingest_ports: &[u16], consumer_port: u16) -> Vec<(String, PathBuf)> {
    let dir = std::env::var_os("SMARTLEAD_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("smartlead-local"));
    let mut v: Vec<(String, PathBuf)> = ingest_ports
        .iter()
        .map(|p| ("ingest".to_owned(), dir.join(format!("lambda-rie-{p}.log"))))
        .collect();
    v.push((
        "consumer".into(),
        dir.join(format!("lambda-rie-{consumer_port}.log")),
    ));
    v
}

/// Follows local log files (from their start) until `until` (or forever).
pub async fn local(files: Vec<(String, PathBuf)>, f: &Filters, until: Option<Instant>) {
    let mut follow =
        smartlead::local_stack::Follow::new(files.iter().map(|(_, p)| p.clone()).collect());
    loop {
        for (i, line) in follow.lines() {
            emit(&files[i].0, &line, f);
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn tail_cmd(a: TailArgs) -> Result<()> {
    let until = a.for_secs.map(|s| Instant::now() + Duration::from_secs(s));
    if a.local {
        let ports: Vec<u16> = (0..a.ingest_instances.max(1))
            .map(|i| a.ingest_port.saturating_add(i as u16))
            .collect();
        local(local_files(&ports, a.consumer_port), &a.filters, until).await;
    } else {
        deployed(&aws().await, &a.stack, a.since, &a.filters, until, a.poll).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = r#"{"level":"INFO","message":"record done","outcome":"applied","ms":3,"span":{"message_id":"m-1","event_type":"EMAIL_REPLY","dedup_key":"EMAIL_REPLY:msg:abc","name":"record"}}"#;
    const FX: &str = r#"{"level":"INFO","message":"effect done","message_id":"m-1","dedup_key":"EMAIL_REPLY:msg:abc","effect":"slack"}"#;
    const REJ: &str = r#"{"level":"WARN","fields":{"message":"record rejected and kept","outcome":"rejected","reason":"not_json"},"span":{"message_id":"m-2"}}"#;

    #[test]
    fn log_lines_read_as_one_line_per_record_and_effect() {
        let v = view(DONE).unwrap();
        assert_eq!(v.event_type.as_deref(), Some("EMAIL_REPLY"));
        let line = render("consumer", &v);
        assert!(
            line.contains("EMAIL_REPLY")
                && line.contains("applied")
                && line.contains("key=EMAIL_REPLY:msg:abc"),
            "{line}"
        );
        let line = render("consumer", &view(FX).unwrap());
        assert!(
            line.contains("effect slack") && line.contains("key=EMAIL_REPLY:msg:abc"),
            "{line}"
        );
        let line = render("consumer", &view(REJ).unwrap());
        assert!(
            line.contains("rejected")
                && line.contains("message_id=m-2")
                && line.ends_with(": not_json"),
            "{line}"
        );
        assert!(view(r#"{"_aws":{},"Processed":1}"#).is_none());
        let queued = view(r#"{"_aws":{},"EventType":"EMAIL_OPEN","Queued":1.0,"message":"webhook queued","outcome":"queued","message_id":"m-9"}"#)
            .expect("the ingest's line");
        assert_eq!(queued.event_type.as_deref(), Some("EMAIL_OPEN"));
        assert_eq!(queued.message_id.as_deref(), Some("m-9"));
        assert_eq!(queued.outcome.as_deref(), Some("queued"));
        // Today's: a record line without EMF or a message.
        let queued = view(
            r#"{"EventType":"EMAIL_OPEN","Function":"ingest","message_id":"m-9","outcome":"queued"}"#,
        )
        .expect("the ingest's queued line");
        assert_eq!(queued.event_type.as_deref(), Some("EMAIL_OPEN"));
        let line = render("ingest", &queued);
        assert!(
            line.contains("EMAIL_OPEN")
                && line.contains("queued")
                && line.contains("message_id=m-9")
                && line.contains("(webhook queued)"),
            "{line}"
        );
        assert!(view(r#"{"Function":"ingest"}"#).is_none());
        assert!(view("START RequestId: 1").is_none());
    }

    #[test]
    fn filters_pick_by_type_outcome_and_key() {
        let (done, fx, rej) = (view(DONE).unwrap(), view(FX).unwrap(), view(REJ).unwrap());
        let f = Filters {
            event_type: Some("email_reply".into()),
            ..Filters::default()
        };
        assert!(f.matches(&done) && !f.matches(&fx) && !f.matches(&rej));
        let f = Filters {
            outcome: Some("rejected".into()),
            ..Filters::default()
        };
        assert!(!f.matches(&done) && f.matches(&rej));
        let f = Filters {
            key: Some("msg:abc".into()),
            ..Filters::default()
        };
        assert!(f.matches(&done) && f.matches(&fx) && !f.matches(&rej));
        assert!(Filters::default().matches(&rej));
    }
}
