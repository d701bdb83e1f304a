//! What each event does to the state table, as data: a [`Plan`] of item
//! updates, each of which the store applies on its own, exactly once (see
//! [`crate::adapters::aws::dynamodb`]): no update decides anything from another item.
//!
//! Every update is order-independent. Counters and sets are DynamoDB `ADD`s
//! (they commute); a set that grows with the item's events is capped
//! ([`Capped`]): it keeps its greatest elements (the newest: texts are
//! stamped with their time) and counts the others, the same whatever the
//! order of arrival. "Latest" and "earliest" fields live in [`Register`]s: a
//! register is written only when this event is newer (or older) than the one
//! that wrote it last, compared by `"<event time>#<dedup key>"`, so the final
//! state for any arrival order equals the state for time order.
//!
//! What each event type writes, item by item: `docs/events.md` ("What each event does").
//!
//! Suppression is sticky: nothing ever removes it, and later opens or clicks
//! only add counts. Descriptive fields (lead and campaign names) are written
//! once, by the first event that carries them; the lead's campaign item
//! holds `lead_email` and `campaign_id` only when its keys had to be hashed.
//! The records kept whole are spread over partitions by day and shard
//! ([`crate::domain::records`]).

mod account;
mod bounds;
mod campaign;
mod context;
mod lead;
mod raw;
mod text;

pub use bounds::{
    cut_bytes, dynamo_number_ok, keep_greatest, key_part, MAX_FIELD_BYTES, MAX_JSON_BYTES,
    MAX_KEPT_LINKS, MAX_KEPT_REPLIERS, MAX_KEPT_STEPS, MAX_KEY_PART_BYTES, MAX_RAW_BYTES,
    MAX_SET_ELEMENTS, MAX_SET_ELEMENT_BYTES,
};
pub use text::strip_html;

use crate::domain::event::{EventData, EventType, SmartleadEvent};
use crate::domain::key::DedupKey;
use crate::domain::time::{EventTime, TimeWindow};
use context::Ctx;
use serde_json::Value;

/// A value to store. Kept free of SDK types so plans are plain data.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    S(String),
    N(f64),
    /// String set (for `ADD`).
    Ss(Vec<String>),
    /// Number set (for `ADD`).
    Ns(Vec<f64>),
    /// Any JSON, stored as a DynamoDB map or list.
    Json(Value),
}

/// A register's fields as a plan builds them: those without a value are
/// left out.
type Fields = Vec<(&'static str, Option<Val>)>;

/// Fields written together, only if this event orders after (latest) or
/// before (earliest) the event that wrote them last.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    /// Attribute holding the ordering value ([`compact_order`]).
    pub order_attr: &'static str,
    pub fields: Vec<(&'static str, Val)>,
    /// A register of the event's time alone: `order_attr` is that time's
    /// attribute (`last_open_at`...), compared as text (fixed-width ISO
    /// 8601 sorts as time), no separate order attribute. Two events at the
    /// same instant write the same value, so no tie-break is needed.
    pub by_time: bool,
}

impl Register {
    /// A register of the fields that have a value.
    fn new(order_attr: &'static str, fields: Fields) -> Register {
        Register {
            order_attr,
            fields: fields
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            by_time: false,
        }
    }

    /// The register of an event time alone, in `attr` (see [`Register::by_time`]).
    fn time(attr: &'static str) -> Register {
        Register {
            order_attr: attr,
            fields: Vec::new(),
            by_time: true,
        }
    }
}

/// Elements added to a set that keeps its `cap` greatest: when it would
/// hold more, the smallest leave it and `dropped` counts them. Elements
/// order as [`keep_greatest`] says: numbers by value, texts stamped with
/// their time (`<epoch seconds> <text>`) by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Capped {
    pub attr: &'static str,
    /// Counts the elements that left the set, or never entered it.
    pub dropped: &'static str,
    pub cap: usize,
    /// This event's elements (`Val::Ss` or `Val::Ns`), at most `cap`.
    pub add: Val,
    /// This event's elements past `cap` (its smallest): counted, not added.
    pub extra: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemUpdate {
    pub pk: String,
    pub sk: String,
    /// `ADD` counters and sets (of a fixed vocabulary: `flags`).
    pub add: Vec<(&'static str, Val)>,
    /// Sets that grow with the item's events, kept to their newest elements.
    pub capped: Vec<Capped>,
    /// `SET a = if_not_exists(a, v)`: written once.
    pub set_once: Vec<(&'static str, Val)>,
    pub latest: Option<Register>,
    pub earliest: Option<Register>,
}

impl ItemUpdate {
    fn new(pk: String, sk: String) -> ItemUpdate {
        ItemUpdate {
            pk,
            sk,
            add: vec![],
            capped: vec![],
            set_once: vec![],
            latest: None,
            earliest: None,
        }
    }
    fn count(mut self, attr: &'static str) -> Self {
        self.add.push((attr, Val::N(1.0)));
        self
    }
    fn flag(mut self, flag: &str) -> Self {
        self.add.push(("flags", Val::Ss(vec![flag.to_owned()])));
        self
    }
    /// `ADD` the elements to the string set `attr`.
    fn add_set(mut self, attr: &'static str, v: Vec<String>) -> Self {
        self.add.push((attr, Val::Ss(v)));
        self
    }
    /// `add` (a set) into `attr`, which keeps its `cap` greatest elements
    /// and counts the others in `dropped` (see [`Capped`]).
    fn keep_newest(
        mut self,
        attr: &'static str,
        dropped: &'static str,
        cap: usize,
        add: Val,
    ) -> Self {
        self.capped.push(Capped {
            attr,
            dropped,
            cap,
            add,
            extra: 0,
        });
        self
    }
    fn once(mut self, attr: &'static str, v: Option<String>) -> Self {
        if let Some(v) = v {
            self.set_once.push((attr, Val::S(v)));
        }
        self
    }
    fn latest(mut self, order_attr: &'static str, fields: Fields) -> Self {
        self.latest = Some(Register::new(order_attr, fields));
        self
    }
    fn earliest(mut self, order_attr: &'static str, fields: Fields) -> Self {
        self.earliest = Some(Register::new(order_attr, fields));
        self
    }
    /// The newest event time in `attr`.
    fn latest_time(mut self, attr: &'static str) -> Self {
        self.latest = Some(Register::time(attr));
        self
    }
    /// The oldest event time in `attr`.
    fn earliest_time(mut self, attr: &'static str) -> Self {
        self.earliest = Some(Register::time(attr));
        self
    }
}

/// Everything one event does: each item exactly once (see [`crate::adapters::aws::dynamodb`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub key: DedupKey,
    pub event_type: EventType,
    /// How registers order this event: [`compact_order`].
    pub order: String,
    pub event_time: EventTime,
    pub items: Vec<ItemUpdate>,
    /// Side effects to run after the state is written (see
    /// [`crate::app::effects`]), claimed on the event's marker until `lease_until_ms`.
    pub effects: Vec<&'static str>,
    pub lease_until_ms: i64,
    /// The message applying the plan, by when the ingest received it (epoch
    /// ms: `received_at`, which a redelivery and a redrive keep): the
    /// fan-out's pending mark names it (see
    /// [`crate::adapters::aws::dynamodb::FANOUT_PENDING_ATTR`]).
    pub received_ms: i64,
    /// The event named a time outside the believed window (the plan uses
    /// the receive time instead).
    pub time_clamped: bool,
    /// A lead event whose lead has no e-mail address in any field: filed
    /// under the lead id (`LEAD#id:<id>`) or kept whole as `UNATTRIBUTED`,
    /// and counted (`Unattributed`).
    pub unattributed: bool,
    /// An item's sort key holds the event's time (`<time>#<key>`), which is
    /// the receive time when the event names none it is believed for (and
    /// whether it is believed depends on the receive time): every delivery
    /// could make its own item. The consumer plans such an event with the
    /// time the store first saw its key as the receive time
    /// ([`crate::app::store::Dedup::first_seen`]), the same for every delivery.
    pub keyed_by_time: bool,
}

impl Plan {
    /// The plan without what makes an item grow (the capped sets, JSON
    /// values) and with texts cut to 256 bytes: counts, flags, registers'
    /// times and the absorbed key stay. The last resort for an item
    /// DynamoDB refuses to grow further (one grown by hand, or before the
    /// sets were capped, and not yet written by an event that caps them).
    pub fn trimmed(&self) -> Plan {
        let mut p = self.clone();
        p.items = p.items.iter().map(ItemUpdate::trimmed).collect();
        p
    }
}

impl ItemUpdate {
    /// The update without what makes an item grow (see [`Plan::trimmed`]):
    /// the store sends it when DynamoDB refuses the whole one for this item.
    pub fn trimmed(&self) -> ItemUpdate {
        let mut u = self.clone();
        u.capped.clear();
        let registers = u.latest.iter_mut().chain(u.earliest.iter_mut());
        for fields in std::iter::once(&mut u.set_once).chain(registers.map(|r| &mut r.fields)) {
            fields.retain(|(_, v)| !matches!(v, Val::Json(_)));
            for (_, v) in fields.iter_mut() {
                if let Val::S(s) = v {
                    let n = cut_bytes(s, 256).len();
                    s.truncate(n);
                }
            }
        }
        u
    }
}

/// Lead score weights (`SCORE_WEIGHTS`, e.g. `open=1,click=3,reply=10,bounce=-50,unsubscribe=-50`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    pub sent: f64,
    pub open: f64,
    pub click: f64,
    pub reply: f64,
    pub bounce: f64,
    pub unsubscribe: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            sent: 0.0,
            open: 1.0,
            click: 3.0,
            reply: 10.0,
            bounce: -50.0,
            unsubscribe: -50.0,
        }
    }
}

impl ScoreWeights {
    pub fn parse(s: &str) -> Result<ScoreWeights, String> {
        let mut w = ScoreWeights::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=number"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: not a number"))?;
            match k.trim() {
                "sent" => w.sent = v,
                "open" => w.open = v,
                "click" => w.click = v,
                "reply" => w.reply = v,
                "bounce" => w.bounce = v,
                "unsubscribe" => w.unsubscribe = v,
                other => return Err(format!("unknown score weight `{other}`")),
            }
        }
        Ok(w)
    }
}

/// `"<epoch ms, 13 digits>#<8 hex digits of the key>"`: sorts by time, then
/// by key, in 22 bytes (every byte of an item is billed on every write).
/// The 8 digits are the first half of the last 16 that orders written
/// before kept, so old and new orders still sort alike.
pub fn compact_order(t: EventTime, key: &DedupKey) -> String {
    let k = key.as_str();
    let start = k.len().saturating_sub(16);
    let tail = k
        .get(start..start + 8)
        .or_else(|| k.get(start..))
        .unwrap_or(k);
    format!("{:013}#{tail}", t.millis().max(0))
}

/// Builds the plan for one event. `fallback_time` (when SQS received it) is
/// used when the event carries no time of its own.
pub fn plan(ev: &SmartleadEvent, fallback_time: EventTime, weights: &ScoreWeights) -> Plan {
    plan_within(ev, fallback_time, weights, &TimeWindow::default())
}

/// [`plan`], with the event's own time believed only within `window` of
/// `received` (see [`EventTime::within`]); the raw event keeps what it said.
pub fn plan_within(
    ev: &SmartleadEvent,
    received: EventTime,
    weights: &ScoreWeights,
    window: &TimeWindow,
) -> Plan {
    let n = ev.normalized();
    let key = ev.dedup_key();
    let (event_time, time_clamped) = match n.event_time {
        Some(t) => t.within(received, window),
        None => (received, false),
    };
    let cx = Ctx::new(ev, &n, &key, event_time, weights);
    let mut items = dispatch(&cx);
    let keyed_by_time = items.iter().any(|u| u.sk == cx.sk);
    bounds::bound(&mut items);
    Plan {
        order: compact_order(event_time, &key),
        key,
        event_type: ev.event_type.clone(),
        event_time,
        items,
        effects: Vec::new(),
        lease_until_ms: 0,
        received_ms: received.millis(),
        time_clamped,
        unattributed: is_lead_event(&ev.data) && n.lead_email.is_none(),
        keyed_by_time,
    }
}

/// Whether the event is about one lead (it is filed under the lead).
fn is_lead_event(data: &EventData) -> bool {
    matches!(
        data,
        EventData::EmailSent(_)
            | EventData::FirstEmailSent(_)
            | EventData::EmailOpen(_)
            | EventData::EmailLinkClick(_)
            | EventData::EmailReply(_)
            | EventData::EmailBounce(_)
            | EventData::LeadUnsubscribed(_)
            | EventData::LeadCategoryUpdated(_)
            | EventData::ManualStepReached(_)
    )
}

/// One function per event type (`docs/events.md`, "What each event does"), by what
/// it touches: a lead ([`lead`]), a campaign ([`campaign`]), an account
/// ([`account`]), or the event kept whole ([`raw`]).
fn dispatch(cx: &Ctx) -> Vec<ItemUpdate> {
    use EventData as E;
    match (&cx.ev.data, cx.lead_pk.as_deref()) {
        (E::EmailSent(e), Some(pk)) => lead::email_sent(cx, pk, e),
        (E::FirstEmailSent(_), Some(pk)) => lead::first_email_sent(cx, pk),
        (E::EmailOpen(_), Some(pk)) => lead::email_open(cx, pk),
        (E::EmailLinkClick(c), Some(pk)) => lead::email_link_click(cx, pk, c),
        (E::EmailReply(r), Some(pk)) => lead::email_reply(cx, pk, r),
        (E::EmailBounce(b), Some(pk)) => lead::email_bounce(cx, pk, b),
        (E::LeadUnsubscribed(_), Some(pk)) => lead::lead_unsubscribed(cx, pk),
        (E::LeadCategoryUpdated(c), Some(pk)) => lead::category_updated(cx, pk, c),
        (E::ManualStepReached(m), Some(pk)) => lead::manual_step_reached(cx, pk, m),
        (E::CampaignStatusChanged(c), _) => campaign::status_changed(cx, c),
        (E::CampaignBounceBreach(b), _) => campaign::bounce_breach(cx, b),
        (E::EmailAccountDisconnected(a), _) => account::disconnected(cx, "EMAIL", a),
        (E::LinkedinDisconnected(a), _) => account::disconnected(cx, "LINKEDIN", a),
        (E::UntrackedReplies(u), _) => raw::untracked_reply(cx, u),
        (E::Unknown, _) => raw::unknown(cx),
        // A lead event that names no lead: kept whole rather than guessed.
        _ => raw::unattributed(cx),
    }
}

/// What the event functions' unit tests share: a fixture's plan and what
/// its items do.
#[cfg(test)]
mod testing {
    use super::*;

    /// The plan of `events/payloads/<name>.json`, received at a fixed time.
    pub fn plan_of(name: &str) -> Plan {
        let path = format!(
            "{}/../events/payloads/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let ev = SmartleadEvent::from_slice(&body).expect("fixture parses");
        let received = EventTime::parse("2025-06-01T00:00:00Z").expect("time");
        plan(&ev, received, &ScoreWeights::default())
    }

    /// Each item's `pk|sk`.
    pub fn keys(p: &Plan) -> Vec<String> {
        p.items
            .iter()
            .map(|u| format!("{}|{}", u.pk, u.sk))
            .collect()
    }

    /// The value `u` adds to `attr`.
    pub fn added<'a>(u: &'a ItemUpdate, attr: &str) -> Option<&'a Val> {
        u.add.iter().find(|(a, _)| *a == attr).map(|(_, v)| v)
    }

    /// The elements `u` adds to the capped set `attr`.
    pub fn capped<'a>(u: &'a ItemUpdate, attr: &str) -> Option<&'a Val> {
        u.capped.iter().find(|c| c.attr == attr).map(|c| &c.add)
    }

    /// The value `u` writes once to `attr`.
    pub fn once<'a>(u: &'a ItemUpdate, attr: &str) -> Option<&'a Val> {
        u.set_once.iter().find(|(a, _)| *a == attr).map(|(_, v)| v)
    }

    /// A field of `u`'s latest register.
    pub fn latest<'a>(u: &'a ItemUpdate, attr: &str) -> Option<&'a Val> {
        let r = u.latest.as_ref()?;
        r.fields.iter().find(|(a, _)| *a == attr).map(|(_, v)| v)
    }

    pub fn flags(u: &ItemUpdate) -> Vec<String> {
        match added(u, "flags") {
            Some(Val::Ss(f)) => f.clone(),
            _ => vec![],
        }
    }
}
