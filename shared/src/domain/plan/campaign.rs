//! Events of a campaign: its `CAMPAIGN#<id>` items.

use super::context::Ctx;
use super::text::s;
use super::{Fields, ItemUpdate, Val};
use crate::domain::event::{CampaignBounceBreach, CampaignStatusChanged};

/// CAMPAIGN_STATUS_CHANGED: the latest status (and the previous), a count.
pub(super) fn status_changed(cx: &Ctx, c: &CampaignStatusChanged) -> Vec<ItemUpdate> {
    let fields = vec![
        ("status_at", cx.t()),
        ("status", s(c.status())),
        ("previous_status", s(c.previous())),
    ];
    campaign_item(cx, "STATUS", "status_changes", "status_order", fields)
}

/// CAMPAIGN_BOUNCE_BREACH: the last breach (rate, threshold, message), a count.
pub(super) fn bounce_breach(cx: &Ctx, b: &CampaignBounceBreach) -> Vec<ItemUpdate> {
    let fields = vec![
        ("last_breach_at", cx.t()),
        // The `health` index's range (index.rs): the latest incident.
        ("health_at", cx.t()),
        ("bounce_rate", b.bounce_rate.get().map(|r| Val::N(*r))),
        ("threshold", b.threshold.get().map(|r| Val::N(*r))),
        ("message", s(b.message.text().or(b.title.text()))),
    ];
    campaign_item(cx, "HEALTH", "bounce_breaches", "last_breach_order", fields)
}

/// The campaign's `sk` item: its name, a count, the latest `fields`.
fn campaign_item(
    cx: &Ctx,
    sk: &str,
    counter: &'static str,
    order_attr: &'static str,
    fields: Fields,
) -> Vec<ItemUpdate> {
    vec![
        ItemUpdate::new(format!("CAMPAIGN#{}", cx.campaign), sk.into())
            .once("campaign_name", cx.n.campaign_name.clone())
            .count(counter)
            .latest(order_attr, fields),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testing::{added, keys, latest, plan_of};
    use super::super::Val;

    #[test]
    fn a_status_change_keeps_the_latest_status_and_the_previous() {
        let p = plan_of("campaign_status_changed");
        assert_eq!(keys(&p), ["CAMPAIGN#123|STATUS"]);
        let u = &p.items[0];
        assert_eq!(latest(u, "status"), Some(&Val::S("PAUSED".into())));
        assert_eq!(added(u, "status_changes"), Some(&Val::N(1.0)));
    }

    #[test]
    fn a_bounce_breach_keeps_the_last_breach_on_the_campaign_health() {
        let p = plan_of("campaign_bounce_breach");
        assert_eq!(p.items.len(), 1);
        let u = &p.items[0];
        assert!(
            u.pk.starts_with("CAMPAIGN#") && u.sk == "HEALTH",
            "{:?}",
            keys(&p)
        );
        assert_eq!(added(u, "bounce_breaches"), Some(&Val::N(1.0)));
        assert!(matches!(latest(u, "bounce_rate"), Some(Val::N(_))));
    }
}
