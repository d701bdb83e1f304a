//! Events kept whole or nearly: catch-all replies, unknown types, lead
//! events that name no lead.

use super::bounds::{cut_bytes, key_part, MAX_RAW_BYTES};
use super::context::Ctx;
use super::text::{cut, PREVIEW_CHARS};
use super::{ItemUpdate, Val};
use crate::domain::event::UntrackedReply;

/// UNTRACKED_REPLIES: the reply kept for catch-all inbox review.
pub(super) fn untracked_reply(cx: &Ctx, u: &UntrackedReply) -> Vec<ItemUpdate> {
    let n = cx.n;
    let preview = u.text().map(|p| cut(&p, PREVIEW_CHARS));
    vec![ItemUpdate::new("UNTRACKED".into(), cx.sk.clone())
        .once("from_email", n.lead_email.clone())
        .once("to_email", n.sender_email.clone())
        .once("subject", u.subject.text().map(str::to_owned))
        .once("cc", u.cc.text().map(str::to_owned))
        .once("preview", preview)
        .once("received_at", Some(cx.time.clone()))
        .once("review_status", Some("new".into()))]
}

/// A type this code does not know: kept whole under `UNKNOWN#<type>`.
pub(super) fn unknown(cx: &Ctx) -> Vec<ItemUpdate> {
    let ty = key_part(cx.ev.event_type.as_str());
    vec![record(format!("UNKNOWN#{ty}"), cx)]
}

/// A lead event that names no lead: kept whole under
/// `UNATTRIBUTED#<type>` rather than guessed.
pub(super) fn unattributed(cx: &Ctx) -> Vec<ItemUpdate> {
    let ty = cx.ev.event_type.metric_name();
    vec![record(format!("UNATTRIBUTED#{ty}"), cx)]
}

/// The raw event, cut to [`MAX_RAW_BYTES`], at `<time>#<key>`.
fn record(pk: String, cx: &Ctx) -> ItemUpdate {
    let ev = cx.ev;
    let mut raw = serde_json::to_string(&ev.raw).unwrap_or_default();
    let truncated = raw.len() > MAX_RAW_BYTES;
    let mut u = ItemUpdate::new(pk, cx.sk.clone())
        .once("event_type", Some(ev.event_type.as_str().to_owned()));
    raw.truncate(cut_bytes(&raw, MAX_RAW_BYTES).len());
    u.set_once.push(("raw", Val::S(raw)));
    if truncated {
        u.set_once.push(("raw_truncated", Val::S("true".into())));
    }
    u
}

#[cfg(test)]
mod tests {
    use super::super::testing::{keys, once, plan_of};
    use super::super::Val;

    #[test]
    fn an_untracked_reply_is_kept_for_review() {
        let p = plan_of("untracked_replies");
        assert_eq!(p.items.len(), 1);
        assert!(keys(&p)[0].starts_with("UNTRACKED|"));
        assert_eq!(
            once(&p.items[0], "review_status"),
            Some(&Val::S("new".into()))
        );
    }

    #[test]
    fn an_unknown_type_is_kept_whole_under_its_type() {
        let p = plan_of("unknown_event");
        assert!(
            keys(&p)[0].starts_with("UNKNOWN#LEAD_MEETING_BOOKED|"),
            "{:?}",
            keys(&p)
        );
        assert!(
            matches!(once(&p.items[0], "raw"), Some(Val::S(r)) if r.contains("LEAD_MEETING_BOOKED"))
        );
    }

    #[test]
    fn a_lead_event_that_names_no_lead_is_kept_whole_and_counted() {
        let ev = crate::SmartleadEvent::from_value(
            serde_json::json!({"event_type": "EMAIL_OPEN", "campaign_id": 7}),
        )
        .unwrap();
        let t = crate::domain::time::EventTime::parse("2025-06-01T00:00:00Z").unwrap();
        let p = super::super::plan(&ev, t, &Default::default());
        assert!(p.unattributed);
        assert!(keys(&p)[0].starts_with("UNATTRIBUTED#"), "{:?}", keys(&p));
        assert!(once(&p.items[0], "raw").is_some());
    }
}
