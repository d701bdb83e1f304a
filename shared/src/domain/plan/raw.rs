//! Events kept whole or nearly: catch-all replies, unknown types, lead
//! events that name no lead. Each a record at `<time>#<key>`, in a
//! partition of its kind, day and shard ([`RecordKind::pk`]).

use super::bounds::{cut_bytes, MAX_RAW_BYTES};
use super::context::Ctx;
use super::text::{cut, PREVIEW_CHARS};
use super::{ItemUpdate, Val};
use crate::domain::event::UntrackedReply;
use crate::domain::records::RecordKind;

/// UNTRACKED_REPLIES: the reply kept for catch-all inbox review.
pub(super) fn untracked_reply(cx: &Ctx, u: &UntrackedReply) -> Vec<ItemUpdate> {
    let n = cx.n;
    let preview = u.text().map(|p| cut(&p, PREVIEW_CHARS));
    vec![
        ItemUpdate::new(RecordKind::Untracked.pk(&cx.sk), cx.sk.clone())
            .once("from_email", n.lead_email.clone())
            .once("to_email", n.sender_email.clone())
            .once("subject", u.subject.text().map(str::to_owned))
            .once("cc", u.cc.text().map(str::to_owned))
            .once("preview", preview)
            .once("received_at", Some(cx.time.clone()))
            .once("review_status", Some("new".into())),
    ]
}

/// A type this code does not know: kept whole (`event_type` names it).
pub(super) fn unknown(cx: &Ctx) -> Vec<ItemUpdate> {
    vec![record(RecordKind::Unknown, cx)]
}

/// A lead event that names no lead: kept whole rather than guessed.
pub(super) fn unattributed(cx: &Ctx) -> Vec<ItemUpdate> {
    vec![record(RecordKind::Unattributed, cx)]
}

/// The raw event, cut to [`MAX_RAW_BYTES`], with its type.
fn record(kind: RecordKind, cx: &Ctx) -> ItemUpdate {
    let ev = cx.ev;
    let mut raw = serde_json::to_string(&ev.raw).unwrap_or_default();
    let truncated = raw.len() > MAX_RAW_BYTES;
    let mut u = ItemUpdate::new(kind.pk(&cx.sk), cx.sk.clone())
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
        assert!(keys(&p)[0].starts_with("UNTRACKED#2025-"), "{:?}", keys(&p));
        assert_eq!(
            once(&p.items[0], "review_status"),
            Some(&Val::S("new".into()))
        );
    }

    #[test]
    fn an_unknown_type_is_kept_whole_under_its_type() {
        let p = plan_of("unknown_event");
        assert!(keys(&p)[0].starts_with("UNKNOWN#20"), "{:?}", keys(&p));
        assert_eq!(
            once(&p.items[0], "event_type"),
            Some(&Val::S("LEAD_MEETING_BOOKED".into()))
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
        assert!(
            keys(&p)[0].starts_with("UNATTRIBUTED#2025-06-01#"),
            "{:?}",
            keys(&p)
        );
        assert!(once(&p.items[0], "raw").is_some());
    }
}
