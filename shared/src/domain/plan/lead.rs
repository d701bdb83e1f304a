//! Events of one lead in one campaign: its `LEAD#<email>` / `CAMPAIGN#<id>`
//! item, and beside it the reply, suppression, profile and task items.

use super::context::{score, Ctx};
use super::text::{cut, owned, s, PREVIEW_CHARS};
use super::{ItemUpdate, Val, MAX_KEPT_LINKS, MAX_KEPT_REPLIERS, MAX_KEPT_STEPS};
use crate::domain::event::{
    EmailBounce, EmailLinkClick, EmailReply, EmailSent, LeadCategoryUpdated, ManualStepReached,
};

/// EMAIL_SENT: `sent` +1, the step (`steps_sent` keeps the latest
/// [`MAX_KEPT_STEPS`], `steps_dropped` counts the others), flag
/// `contacted`, first/last send.
pub(super) fn email_sent(cx: &Ctx, pk: &str, e: &EmailSent) -> Vec<ItemUpdate> {
    let n = cx.n;
    let mut u = cx
        .lead_campaign(pk)
        .count("sent")
        .flag("contacted")
        .latest(
            "last_sent_order",
            vec![
                ("last_sent_at", cx.t()),
                (
                    "last_subject",
                    s(e.email.subject.text().or(e.custom_subject.text())),
                ),
                ("last_message_id", owned(n.message_id.clone())),
                ("last_sender", owned(n.sender_email.clone())),
            ],
        )
        .earliest_time("first_sent_at");
    if let Some(seq) = n.sequence_number {
        let step = Val::Ns(vec![f64::from(seq)]);
        u = u.keep_newest("steps_sent", "steps_dropped", MAX_KEPT_STEPS, step);
    }
    vec![score(u, cx.weights.sent)]
}

/// FIRST_EMAIL_SENT: the first send's time and flag `contacted` (EMAIL_SENT counts the send).
pub(super) fn first_email_sent(cx: &Ctx, pk: &str) -> Vec<ItemUpdate> {
    vec![cx
        .lead_campaign(pk)
        .flag("contacted")
        .earliest_time("first_email_sent_at")]
}

/// EMAIL_OPEN: `opens` +1, flag `engaged`, first/last open, score.
pub(super) fn email_open(cx: &Ctx, pk: &str) -> Vec<ItemUpdate> {
    let u = cx
        .lead_campaign(pk)
        .count("opens")
        .flag("engaged")
        .latest_time("last_open_at")
        .earliest_time("first_open_at");
    vec![score(u, cx.weights.open)]
}

/// EMAIL_LINK_CLICK: `clicks` +1, the links (`links_clicked` keeps the
/// newest [`MAX_KEPT_LINKS`] clicks, each `<epoch seconds> <link>`;
/// `links_dropped` counts the others), flag `engaged`, first/last click,
/// score.
pub(super) fn email_link_click(cx: &Ctx, pk: &str, c: &EmailLinkClick) -> Vec<ItemUpdate> {
    let u = cx
        .lead_campaign(pk)
        .count("clicks")
        .flag("engaged")
        .latest(
            "last_click_order",
            vec![
                ("last_click_at", cx.t()),
                ("last_link", s(c.links().last().map(String::as_str))),
            ],
        )
        .earliest_time("first_click_at");
    let links = c.links().iter().map(|l| cx.stamped(&cut(l, 1000)));
    let u = u.keep_newest(
        "links_clicked",
        "links_dropped",
        MAX_KEPT_LINKS,
        Val::Ss(links.collect()),
    );
    vec![score(u, cx.weights.click)]
}

/// EMAIL_REPLY: `replies` +1, flag `replied`, first/last reply, score; the
/// reply's text, its writer and copies in an item of its own
/// (`REPLY#<campaign>`), written by replies only, so every later write of
/// the campaign item stays small. A colleague's reply counts for the lead
/// that was e-mailed (see [`crate::domain::normalize`]); its writer joins
/// `repliers` (the newest [`MAX_KEPT_REPLIERS`], each
/// `<epoch seconds> <address>`; `repliers_dropped` counts the others).
pub(super) fn email_reply(cx: &Ctx, pk: &str, r: &EmailReply) -> Vec<ItemUpdate> {
    let preview = r.text().map(|p| cut(&p, PREVIEW_CHARS));
    let u = cx
        .lead_campaign(pk)
        .count("replies")
        .flag("replied")
        .latest_time("last_reply_at")
        .earliest_time("first_reply_at");
    let n = cx.n;
    let cc = n.cc_emails.clone().map(|cc| Val::Json(cc.into()));
    let domain = r.lead_correspondence.get();
    let mut text = ItemUpdate::new(pk.to_owned(), format!("REPLY#{}", cx.campaign)).latest(
        "last_reply_order",
        vec![
            ("last_reply_at", cx.t()),
            ("last_reply_preview", owned(preview)),
            ("last_reply_subject", s(r.email.subject.text())),
            ("last_reply_message_id", owned(n.message_id.clone())),
            // Who wrote it: a colleague answering for the lead, or the lead.
            (
                "last_reply_from",
                owned(n.replied_by.clone().or(n.lead_email.clone())),
            ),
            ("last_reply_cc", cc),
            (
                "last_reply_company_domain",
                s(domain.and_then(|d| d.replied_company_domain.text())),
            ),
        ],
    );
    if let Some(by) = &n.replied_by {
        let by = Val::Ss(vec![cx.stamped(by)]);
        text = text.keep_newest("repliers", "repliers_dropped", MAX_KEPT_REPLIERS, by);
    }
    vec![score(u, cx.weights.reply), text]
}

/// EMAIL_BOUNCE: `bounces` +1, flag `bounced`, the last bounce and its
/// reason, score; the lead suppressed (reason `bounce`).
pub(super) fn email_bounce(cx: &Ctx, pk: &str, b: &EmailBounce) -> Vec<ItemUpdate> {
    let reason = b.reason();
    let u = cx
        .lead_campaign(pk)
        .count("bounces")
        .flag("bounced")
        .latest(
            "last_bounce_order",
            vec![
                ("last_bounce_at", cx.t()),
                (
                    "bounce_reason",
                    owned(reason.map(|r| cut(&r, PREVIEW_CHARS))),
                ),
            ],
        );
    // The bounce's text stays here: a third item would make a bounce 3
    // writes, and the suppression's register (bounces and unsubscribes)
    // cannot share an item with one of bounces alone. A bounced lead is
    // suppressed: few writes follow.
    vec![
        score(u, cx.weights.bounce),
        cx.suppression(pk, "bounce", None),
    ]
}

/// LEAD_UNSUBSCRIBED: flag `unsubscribed`, its time, score; the lead
/// suppressed (reason `unsubscribe`) for every client, or for those
/// `unsubscribed_client_id_map` names.
pub(super) fn lead_unsubscribed(cx: &Ctx, pk: &str) -> Vec<ItemUpdate> {
    let u = cx
        .lead_campaign(pk)
        .count("unsubscribes")
        .flag("unsubscribed")
        .latest_time("unsubscribed_at");
    vec![
        score(u, cx.weights.unsubscribe),
        cx.suppression(
            pk,
            "unsubscribe",
            crate::domain::client::unsubscribe_scope(cx.ev),
        ),
    ]
}

/// LEAD_CATEGORY_UPDATED: the latest category (and the one it replaced,
/// when the current generation's `lead_category` says) on the campaign
/// item; the profile fields of `lead_data` in `PROFILE` (latest wins).
pub(super) fn category_updated(cx: &Ctx, pk: &str, c: &LeadCategoryUpdated) -> Vec<ItemUpdate> {
    let cat = c.new_category();
    let old = c.old_category().unwrap_or_default();
    let id = |c: Option<crate::domain::field_types::Id>| c.map(|i| i.to_string());
    let mut items = vec![cx.lead_campaign(pk).count("category_updates").latest(
        "category_order",
        vec![
            ("category_at", cx.t()),
            ("category", owned(cat.name)),
            ("category_sentiment", owned(cat.sentiment)),
            ("category_id", owned(id(cat.id))),
            ("previous_category", owned(old.name)),
            ("previous_category_id", owned(id(old.id))),
        ],
    )];
    if let Some(d) = c.lead_data.get() {
        let custom = d
            .custom_fields
            .get()
            .filter(|v| v.is_object())
            .cloned()
            .map(Val::Json);
        let n = cx.n;
        items.push(
            ItemUpdate::new(pk.to_owned(), "PROFILE".into())
                .once("lead_email", n.lead_email.clone())
                .latest(
                    "profile_order",
                    vec![
                        ("profile_at", cx.t()),
                        ("lead_id", owned(n.lead_id.as_ref().map(|i| i.to_string()))),
                        ("first_name", s(d.first_name.text())),
                        ("last_name", s(d.last_name.text())),
                        ("phone_number", s(d.phone_number.text())),
                        ("company_name", s(d.company_name.text())),
                        ("website", s(d.website.text())),
                        ("company_url", s(d.company_url.text())),
                        ("location", s(d.location.text())),
                        ("linkedin_profile", s(d.linkedin_profile.text())),
                        ("custom_fields", custom),
                    ],
                ),
        );
    }
    items
}

/// MANUAL_STEP_REACHED: an open task for a human, `TASK#<campaign>#<step>`.
pub(super) fn manual_step_reached(cx: &Ctx, pk: &str, m: &ManualStepReached) -> Vec<ItemUpdate> {
    let n = cx.n;
    let step = n
        .sequence_number
        .map(|s| s.to_string())
        .unwrap_or_else(|| "-".into());
    let mut task = ItemUpdate::new(pk.to_owned(), format!("TASK#{}#{step}", cx.campaign));
    if let Some(ids) = m.sent_message_ids.get().filter(|ids| !ids.is_empty()) {
        task.set_once
            .push(("sent_message_ids", Val::Json(ids.clone().into())));
    }
    vec![task
        .once("task_status", Some("open".into()))
        .once("campaign_id", n.campaign_id.as_ref().map(|c| c.to_string()))
        .once("lead_email", n.lead_email.clone())
        .once("step_type", m.step_type.text().map(str::to_owned))
        .once(
            "step_description",
            m.step_description.text().map(str::to_owned),
        )
        .count("times_reached")
        .earliest_time("reached_at")]
}

#[cfg(test)]
mod tests {
    use super::super::testing::{added, capped, flags, keys, latest, plan_of};
    use super::super::Val;

    const JANE: &str = "LEAD#jane.doe@acme-corp.com|CAMPAIGN#123";

    #[test]
    fn a_send_counts_marks_contacted_and_keeps_its_step_and_subject() {
        let p = plan_of("email_sent");
        assert_eq!(keys(&p), [JANE]);
        let u = &p.items[0];
        assert_eq!(added(u, "sent"), Some(&Val::N(1.0)));
        assert_eq!(capped(u, "steps_sent"), Some(&Val::Ns(vec![1.0])));
        assert_eq!(flags(u), ["contacted"]);
        assert!(matches!(latest(u, "last_subject"), Some(Val::S(s)) if !s.is_empty()));
        assert_eq!(u.earliest.as_ref().unwrap().order_attr, "first_sent_at");
        assert_eq!(added(u, "score"), None, "a send scores 0 by default");
    }

    #[test]
    fn a_first_send_marks_contacted_without_counting() {
        let p = plan_of("first_email_sent");
        assert_eq!(keys(&p), [JANE]);
        let u = &p.items[0];
        assert_eq!(added(u, "sent"), None);
        assert_eq!(flags(u), ["contacted"]);
        assert_eq!(
            u.earliest.as_ref().unwrap().order_attr,
            "first_email_sent_at"
        );
    }

    #[test]
    fn an_open_counts_engages_and_scores() {
        let p = plan_of("email_open");
        assert_eq!(keys(&p), [JANE]);
        let u = &p.items[0];
        assert_eq!(added(u, "opens"), Some(&Val::N(1.0)));
        assert_eq!(added(u, "score"), Some(&Val::N(1.0)));
        assert_eq!(flags(u), ["engaged"]);
        assert_eq!(u.latest.as_ref().unwrap().order_attr, "last_open_at");
    }

    #[test]
    fn a_click_counts_keeps_its_links_and_scores() {
        let p = plan_of("email_link_click");
        assert_eq!(keys(&p), [JANE]);
        let u = &p.items[0];
        assert_eq!(added(u, "clicks"), Some(&Val::N(1.0)));
        assert_eq!(added(u, "score"), Some(&Val::N(3.0)));
        // Stamped with the click's time (epoch seconds), to keep the newest.
        let t = p.event_time.seconds();
        assert!(
            matches!(capped(u, "links_clicked"), Some(Val::Ss(l))
                if !l.is_empty() && l.iter().all(|l| l.starts_with(&format!("{t} https://")))),
            "{u:?}"
        );
        assert!(latest(u, "last_link").is_some());
    }

    #[test]
    fn a_reply_counts_on_the_campaign_item_and_keeps_its_text_beside_it() {
        let p = plan_of("email_reply");
        assert_eq!(keys(&p), [JANE, "LEAD#jane.doe@acme-corp.com|REPLY#123"]);
        assert_eq!(added(&p.items[0], "replies"), Some(&Val::N(1.0)));
        assert_eq!(added(&p.items[0], "score"), Some(&Val::N(10.0)));
        assert_eq!(flags(&p.items[0]), ["replied"]);
        assert!(latest(&p.items[0], "last_reply_preview").is_none());
        assert!(
            matches!(latest(&p.items[1], "last_reply_preview"), Some(Val::S(s)) if !s.is_empty())
        );
    }

    #[test]
    fn a_bounce_counts_keeps_its_reason_and_suppresses_the_lead() {
        let p = plan_of("email_bounce");
        let lead = "LEAD#gone@defunct-startup.example";
        assert_eq!(
            keys(&p),
            [
                format!("{lead}|CAMPAIGN#123"),
                format!("{lead}|SUPPRESSION")
            ]
        );
        assert_eq!(added(&p.items[0], "bounces"), Some(&Val::N(1.0)));
        assert_eq!(added(&p.items[0], "score"), Some(&Val::N(-50.0)));
        assert!(latest(&p.items[0], "bounce_reason").is_some());
        assert_eq!(flags(&p.items[1]), ["bounce"]);
        assert_eq!(
            p.items[1].earliest.as_ref().unwrap().order_attr,
            "suppressed_order"
        );
    }

    #[test]
    fn an_unsubscribe_flags_the_lead_and_suppresses_it() {
        let p = plan_of("lead_unsubscribed");
        assert_eq!(keys(&p).len(), 2, "{:?}", keys(&p));
        assert!(keys(&p)[1].ends_with("|SUPPRESSION"));
        assert_eq!(flags(&p.items[0]), ["unsubscribed"]);
        assert_eq!(flags(&p.items[1]), ["unsubscribe"]);
        assert_eq!(added(&p.items[0], "score"), Some(&Val::N(-50.0)));
    }

    #[test]
    fn a_category_update_keeps_the_latest_category_and_the_profile() {
        let p = plan_of("lead_category_updated");
        assert_eq!(keys(&p), [JANE, "LEAD#jane.doe@acme-corp.com|PROFILE"]);
        assert!(latest(&p.items[0], "category").is_some());
        assert_eq!(
            p.items[1].latest.as_ref().unwrap().order_attr,
            "profile_order"
        );
    }

    #[test]
    fn a_manual_step_opens_a_task_for_its_step() {
        let p = plan_of("manual_step_reached");
        assert_eq!(keys(&p), ["LEAD#jane.doe@acme-corp.com|TASK#123#3"]);
        let u = &p.items[0];
        assert_eq!(added(u, "times_reached"), Some(&Val::N(1.0)));
        assert!(u
            .set_once
            .iter()
            .any(|(a, v)| *a == "task_status" && *v == Val::S("open".into())));
    }
}
