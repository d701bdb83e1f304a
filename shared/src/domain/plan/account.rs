//! Events of a sending account: its `ACCOUNT#<id>` health items.

use super::bounds::key_part;
use super::context::Ctx;
use super::text::{owned, s};
use super::ItemUpdate;
use crate::domain::event::AccountDisconnected;

/// EMAIL_ACCOUNT_DISCONNECTED (`kind` EMAIL), LINKEDIN_DISCONNECTED
/// (LINKEDIN): disconnected since (earliest), the last error, a count.
pub(super) fn disconnected(cx: &Ctx, kind: &str, a: &AccountDisconnected) -> Vec<ItemUpdate> {
    let n = cx.n;
    let account = n
        .account_id
        .as_ref()
        .map(|i| i.to_string())
        .or_else(|| n.sender_email.clone())
        .map(|a| key_part(&a).into_owned())
        .unwrap_or_else(|| "-".into());
    vec![
        ItemUpdate::new(format!("ACCOUNT#{account}"), format!("HEALTH#{kind}"))
            .once("account_email", n.sender_email.clone())
            .count("disconnects")
            .latest(
                "last_disconnect_order",
                vec![
                    ("last_disconnected_at", cx.t()),
                    // The `health` index's range (index.rs): the latest incident.
                    ("health_at", cx.t()),
                    ("error", s(a.error.text().or(a.message.text()))),
                    ("app_url", owned(n.app_url.clone())),
                ],
            )
            .earliest_time("disconnected_since"),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testing::{added, keys, latest, plan_of};

    #[test]
    fn a_disconnect_keeps_since_when_and_the_last_error_per_channel() {
        for (name, sk) in [
            ("email_account_disconnected", "HEALTH#EMAIL"),
            ("linkedin_disconnected", "HEALTH#LINKEDIN"),
        ] {
            let p = plan_of(name);
            assert_eq!(p.items.len(), 1, "{name}");
            let u = &p.items[0];
            assert!(
                u.pk.starts_with("ACCOUNT#") && u.pk != "ACCOUNT#-",
                "{:?}",
                keys(&p)
            );
            assert_eq!(u.sk, sk);
            assert!(added(u, "disconnects").is_some());
            assert!(latest(u, "last_disconnected_at").is_some());
            assert_eq!(
                u.earliest.as_ref().unwrap().order_attr,
                "disconnected_since"
            );
        }
    }
}
