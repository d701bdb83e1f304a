//! The typed view of one event: the payload its type reads as.

use super::{
    AccountDisconnected, CampaignBounceBreach, CampaignStatusChanged, EmailBounce, EmailLinkClick,
    EmailOpen, EmailReply, EmailSent, EventType, LeadCategoryUpdated, LeadUnsubscribed,
    ManualStepReached, UntrackedReply,
};
use serde_json::{Map, Value};

/// The typed view of one event.
#[derive(Debug, Clone)]
pub enum EventData {
    EmailSent(EmailSent),
    FirstEmailSent(EmailSent),
    EmailOpen(EmailOpen),
    EmailLinkClick(EmailLinkClick),
    EmailReply(Box<EmailReply>),
    EmailBounce(EmailBounce),
    LeadUnsubscribed(LeadUnsubscribed),
    LeadCategoryUpdated(Box<LeadCategoryUpdated>),
    CampaignStatusChanged(CampaignStatusChanged),
    UntrackedReplies(UntrackedReply),
    ManualStepReached(ManualStepReached),
    EmailAccountDisconnected(AccountDisconnected),
    LinkedinDisconnected(AccountDisconnected),
    CampaignBounceBreach(CampaignBounceBreach),
    /// A type this code does not know; the whole event stays in `raw`.
    Unknown,
}

pub(super) fn typed(kind: &EventType, raw: &Map<String, Value>) -> (EventData, Option<String>) {
    fn read<T: serde::de::DeserializeOwned + Default>(
        raw: &Map<String, Value>,
        warn: &mut Option<String>,
    ) -> T {
        // Deserializing from a borrowed map clones only the fields it reads.
        match T::deserialize(MapRef(raw)) {
            Ok(t) => t,
            Err(e) => {
                *warn = Some(e.to_string());
                T::default()
            }
        }
    }
    let mut w = None;
    let data = match kind {
        EventType::EmailSent => EventData::EmailSent(read(raw, &mut w)),
        EventType::FirstEmailSent => EventData::FirstEmailSent(read(raw, &mut w)),
        EventType::EmailOpen => EventData::EmailOpen(read(raw, &mut w)),
        EventType::EmailLinkClick => EventData::EmailLinkClick(read(raw, &mut w)),
        EventType::EmailReply => EventData::EmailReply(Box::new(read(raw, &mut w))),
        EventType::EmailBounce => EventData::EmailBounce(read(raw, &mut w)),
        EventType::LeadUnsubscribed => EventData::LeadUnsubscribed(read(raw, &mut w)),
        EventType::LeadCategoryUpdated => {
            EventData::LeadCategoryUpdated(Box::new(read(raw, &mut w)))
        }
        EventType::CampaignStatusChanged => EventData::CampaignStatusChanged(read(raw, &mut w)),
        EventType::UntrackedReplies => EventData::UntrackedReplies(read(raw, &mut w)),
        EventType::ManualStepReached => EventData::ManualStepReached(read(raw, &mut w)),
        EventType::EmailAccountDisconnected => {
            EventData::EmailAccountDisconnected(read(raw, &mut w))
        }
        EventType::LinkedinDisconnected => EventData::LinkedinDisconnected(read(raw, &mut w)),
        EventType::CampaignBounceBreach => EventData::CampaignBounceBreach(read(raw, &mut w)),
        EventType::Unknown(_) => EventData::Unknown,
    };
    (data, w)
}

/// Lets a typed struct deserialize from a borrowed `serde_json::Map`.
struct MapRef<'de>(&'de Map<String, Value>);

impl<'de> serde::Deserializer<'de> for MapRef<'de> {
    type Error = serde_json::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::value::MapDeserializer;
        let iter = self.0.iter().map(|(k, v)| (k.as_str(), v));
        let mut de = MapDeserializer::new(iter);
        let out = visitor.visit_map(&mut de)?;
        de.end()?;
        Ok(out)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
