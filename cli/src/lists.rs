//! `smartlead leads`, `campaign` and `accounts`: the state's lists, read
//! from the table's sparse indexes (shared's `dynamodb/index.rs`), never
//! by a `Scan`. Each status is one index partition per campaign (or the
//! suppression list, for bounces and unsubscribes); details of the page
//! shown come from one `BatchGetItem`.

use crate::ops::{Stack, StackArgs};
use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use smartlead::adapters::aws::dynamodb::index::{
    Index, CATEGORIZED, CLICKED, OPENED, REPLIED, SUPPRESSED, SUPPRESSION_SK,
};
use smartlead::adapters::aws::dynamodb::DynamoStore;
use smartlead::app::effects::AlertRules;
use smartlead::aws_sdk_dynamodb::types::AttributeValue;
use smartlead::domain::plan::key_part;
use smartlead::domain::time::EventTime;
use std::collections::{HashMap, HashSet};

type Item = HashMap<String, AttributeValue>;

/// A lead status a campaign's list can be cut by.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Opened or clicked (the earlier of the two is when).
    Engaged,
    Opened,
    Clicked,
    Replied,
    /// In a positive category (`PositiveCategories`, or a positive sentiment).
    Interested,
    Bounced,
    Unsubscribed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Engaged,
        Status::Opened,
        Status::Clicked,
        Status::Replied,
        Status::Interested,
        Status::Bounced,
        Status::Unsubscribed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Engaged => "engaged",
            Status::Opened => "opened",
            Status::Clicked => "clicked",
            Status::Replied => "replied",
            Status::Interested => "interested",
            Status::Bounced => "bounced",
            Status::Unsubscribed => "unsubscribed",
        }
    }
}

/// One lead in a status: what the index holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The lead's partition key (`LEAD#<lead>`).
    pub pk: String,
    /// When it entered the status.
    pub at: String,
    pub email: String,
    pub category: String,
    pub sentiment: String,
}

/// One partition of index `i` (hash `h`), from `since`, newest first, and
/// its read units; the error says why a stack may not have the index.
pub async fn read_index(
    store: &DynamoStore,
    i: Index,
    h: &str,
    since: Option<EventTime>,
) -> Result<(Vec<Item>, f64)> {
    store.index_partition(i, h, since).await.map_err(|e| {
        anyhow!(
            "reading the {} index (a stack whose QueryIndexes leaves it out, or deployed \
             before it, has none; a new index answers once DynamoDB has built it): {e}",
            i.name
        )
    })
}

/// A string attribute of `item` ("" when absent).
pub(crate) fn s(item: &Item, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// The lead as the table keys it: its address, or `id:<SmartLead id>`.
pub fn lead_of(pk: &str) -> &str {
    pk.strip_prefix("LEAD#").unwrap_or(pk)
}

/// A campaign's hash in the lead indexes: its lead items' sort key.
pub fn campaign_sk(campaign: &str) -> String {
    format!("CAMPAIGN#{}", key_part(campaign.trim()))
}

/// What the lists of one campaign read: the store, the campaign, which
/// categories are positive (the alerts' rule); and the read units spent
/// so far.
pub struct Lists {
    pub store: DynamoStore,
    pub campaign: String,
    pub positive: AlertRules,
    pub units: std::cell::Cell<f64>,
}

impl Lists {
    /// `positive`: comma-separated categories, as `PositiveCategories`.
    pub fn new(store: DynamoStore, campaign: &str, positive: &str) -> Result<Lists> {
        Ok(Lists {
            store,
            campaign: campaign.trim().to_owned(),
            positive: AlertRules::parse("", positive).map_err(|e| anyhow!(e))?,
            units: std::cell::Cell::new(0.0),
        })
    }

    async fn index(&self, i: Index, h: &str, since: Option<EventTime>) -> Result<Vec<Item>> {
        let (items, units) = read_index(&self.store, i, h, since).await?;
        self.units.set(self.units.get() + units);
        Ok(items)
    }

    fn entry(item: &Item, range: &str) -> Entry {
        Entry {
            pk: s(item, "pk"),
            at: s(item, range),
            email: s(item, "lead_email"),
            category: s(item, "category"),
            sentiment: s(item, "category_sentiment"),
        }
    }

    pub fn is_positive(&self, e: &Entry) -> bool {
        self.positive
            .is_positive(Some(&e.category), Some(&e.sentiment))
    }

    /// The campaign's leads in `status` since `since`, newest first (ties
    /// by lead), each once.
    pub async fn entries(&self, status: Status, since: Option<EventTime>) -> Result<Vec<Entry>> {
        let lead_index = |i: Index| self.status_index(i, since);
        let mut out: Vec<Entry> = match status {
            Status::Replied => lead_index(REPLIED).await?,
            Status::Opened => lead_index(OPENED).await?,
            Status::Clicked => lead_index(CLICKED).await?,
            Status::Engaged => {
                // Engaged at the earlier of the first open and click: both
                // whole, then cut (a lead that opened before `since` and
                // clicked after it was engaged before).
                let all = engaged(
                    self.status_index(OPENED, None).await?,
                    self.status_index(CLICKED, None).await?,
                );
                cut_since(all, since)
            }
            Status::Interested => lead_index(CATEGORIZED)
                .await?
                .into_iter()
                .filter(|e| self.is_positive(e))
                .collect(),
            Status::Bounced | Status::Unsubscribed => {
                let items = self.suppression_list(since).await?;
                self.suppressed(&items, status)
            }
        };
        newest_first(&mut out);
        Ok(out)
    }

    /// The suppression list (`suppressed` index) since `since`.
    pub async fn suppression_list(&self, since: Option<EventTime>) -> Result<Vec<Item>> {
        self.index(SUPPRESSED, SUPPRESSION_SK, since).await
    }

    /// The campaign's leads in `status` of one lead index since `since`.
    pub async fn status_index(&self, i: Index, since: Option<EventTime>) -> Result<Vec<Entry>> {
        let items = self.index(i, &campaign_sk(&self.campaign), since).await?;
        Ok(items.iter().map(|it| Self::entry(it, i.range)).collect())
    }

    /// Bounced or unsubscribed leads of this campaign among the
    /// suppression list's `items`: those whose first suppression was for
    /// that reason in this campaign (the suppression list keeps the first
    /// only: a later reason, or a suppression of an address already
    /// suppressed elsewhere, is not counted again).
    pub fn suppressed(&self, items: &[Item], status: Status) -> Vec<Entry> {
        let reason = if status == Status::Bounced {
            "bounce"
        } else {
            "unsubscribe"
        };
        let mine = key_part(&self.campaign).into_owned();
        items
            .iter()
            .filter(|it| s(it, "campaign_id") == mine && s(it, "reason") == reason)
            .map(|it| Self::entry(it, SUPPRESSED.range))
            .collect()
    }

    /// The leads in a category (case-insensitive), for `--category`.
    pub async fn in_category(&self, category: &str) -> Result<HashSet<String>> {
        let want = category.trim().to_ascii_lowercase();
        Ok(self
            .status_index(CATEGORIZED, None)
            .await?
            .into_iter()
            .filter(|e| e.category.to_ascii_lowercase() == want)
            .map(|e| e.pk)
            .collect())
    }

    /// The leads' campaign items and, `with_reply`, reply items (one
    /// `BatchGetItem` per 100 keys): by pk, (campaign item, reply item).
    pub async fn details(
        &self,
        pks: &[String],
        with_reply: bool,
    ) -> Result<HashMap<String, (Item, Item)>> {
        let h = campaign_sk(&self.campaign);
        let reply = format!("REPLY#{}", key_part(&self.campaign));
        let mut keys: Vec<(String, String)> =
            pks.iter().map(|pk| (pk.clone(), h.clone())).collect();
        if with_reply {
            keys.extend(pks.iter().map(|pk| (pk.clone(), reply.clone())));
        }
        let (items, units) = self
            .store
            .items_at(&keys)
            .await
            .map_err(|e| anyhow!("reading the leads' items: {e}"))?;
        self.units.set(self.units.get() + units);
        let mut out: HashMap<String, (Item, Item)> = HashMap::new();
        for it in items {
            let slot = out.entry(s(&it, "pk")).or_default();
            if s(&it, "sk") == h {
                slot.0 = it;
            } else {
                slot.1 = it;
            }
        }
        Ok(out)
    }
}

/// Leads that opened or clicked, each once, at the earlier of the two.
pub fn engaged(opened: Vec<Entry>, clicked: Vec<Entry>) -> Vec<Entry> {
    let mut by_lead: HashMap<String, Entry> = HashMap::new();
    for e in opened.into_iter().chain(clicked) {
        match by_lead.get(&e.pk) {
            Some(have) if have.at <= e.at => {}
            _ => {
                by_lead.insert(e.pk.clone(), e);
            }
        }
    }
    by_lead.into_values().collect()
}

/// The entries at or after `since`.
pub fn cut_since(entries: Vec<Entry>, since: Option<EventTime>) -> Vec<Entry> {
    let Some(t) = since.map(|t| t.to_string()) else {
        return entries;
    };
    entries.into_iter().filter(|e| e.at >= t).collect()
}

/// Newest first; equal times by lead, so pages cut the same way each time.
pub fn newest_first(v: &mut [Entry]) {
    v.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.pk.cmp(&b.pk)));
}

/// The deepest step sent to the lead (its campaign item's `steps_sent`).
pub fn step_of(campaign_item: &Item) -> Option<u32> {
    campaign_item
        .get("steps_sent")
        .and_then(|v| v.as_ns().ok())
        .and_then(|ns| {
            ns.iter()
                .filter_map(|n| n.parse::<f64>().ok())
                .reduce(f64::max)
        })
        .map(|n| n as u32)
}

/// One lead of `smartlead leads`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// Empty for a lead SmartLead named by its id alone.
    pub email: String,
    /// The lead as the table keys it (`<email>`, or `id:<SmartLead id>`).
    pub lead: String,
    pub status: Status,
    /// When it entered the status.
    pub at: String,
    /// The deepest step sent to it.
    pub step: Option<u32>,
    pub category: String,
    pub replied_at: String,
    pub reply_preview: String,
}

impl Listed {
    pub fn of(e: &Entry, status: Status, items: Option<&(Item, Item)>) -> Listed {
        let empty = (Item::new(), Item::new());
        let (c, r) = items.unwrap_or(&empty);
        let lead = lead_of(&e.pk).to_owned();
        let email = [e.email.clone(), s(c, "lead_email")]
            .into_iter()
            .find(|m| !m.is_empty())
            .unwrap_or_else(|| {
                if lead.starts_with("id:") {
                    String::new()
                } else {
                    lead.clone()
                }
            });
        Listed {
            email,
            lead,
            status,
            at: e.at.clone(),
            step: step_of(c),
            category: [e.category.clone(), s(c, "category")]
                .into_iter()
                .find(|m| !m.is_empty())
                .unwrap_or_default(),
            replied_at: s(r, "last_reply_at"),
            reply_preview: s(r, "last_reply_preview"),
        }
    }
}

#[derive(clap::Args)]
pub struct LeadsArgs {
    /// The campaign's SmartLead id.
    #[arg(long)]
    pub campaign: String,
    /// Which leads: replied (the default), interested, engaged (opened or
    /// clicked), opened, clicked, bounced, unsubscribed.
    #[arg(long, value_enum, default_value_t = Status::Replied)]
    pub status: Status,
    /// Only leads whose latest category is this one (case-insensitive).
    #[arg(long)]
    pub category: Option<String>,
    /// From when (entering the status): a span back from now (`90m`,
    /// `24h`, `7d`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Leads per page; the next page's `--after` is printed on stderr.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Where the page starts: the `--after` value the previous page printed.
    #[arg(long)]
    pub after: Option<String>,
    /// CSV: email,lead,status,at,step,category,replied_at,reply_preview.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub of: OneCampaign,
}

/// What the verbs on one campaign's lists share: the stack, and the
/// categories counted as interested.
#[derive(clap::Args)]
pub struct OneCampaign {
    /// The categories counted as interested besides a positive sentiment
    /// (comma-separated; a deployed stack's `PositiveCategories` by default).
    #[arg(long)]
    pub positive_categories: Option<String>,
    /// An agency's view of one client: a campaign of another client (or of
    /// none) is refused.
    #[arg(long)]
    pub client: Option<String>,
    #[command(flatten)]
    pub stack: StackArgs,
}

impl OneCampaign {
    /// The lists of `campaign` on the stack. Interested: the flag's
    /// categories, else the deployed stack's `PositiveCategories`, else the
    /// template's default.
    pub async fn lists(&self, campaign: &str) -> Result<Lists> {
        let stack = Stack::resolve(&self.stack).await?;
        if let Some(client) = &self.client {
            crate::clients::check_campaign(&stack, client, campaign).await?;
        }
        let mut positive = self.positive_categories.clone();
        if let (None, Some((name, _))) = (&positive, &stack.deployed) {
            positive = crate::aws::stack_parameter(name, "PositiveCategories").await?;
        }
        let positive = positive
            .unwrap_or_else(|| smartlead::app::effects::DEFAULT_POSITIVE_CATEGORIES.to_owned());
        Lists::new(stack.store(), campaign, &positive)
    }
}

/// A `--since` flag's time: a span back from now or an RFC 3339 time.
pub fn since(flag: Option<&str>) -> Result<Option<EventTime>> {
    flag.map(|s| crate::reconcile::since(s, EventTime::now()))
        .transpose()
}

/// A page of `entries` after `after` (`<at>,<lead>`, as printed), and the
/// next page's `--after` when more follow.
pub fn page<'a>(
    entries: &'a [Entry],
    after: Option<&str>,
    limit: usize,
) -> Result<(&'a [Entry], Option<String>)> {
    let start = match after {
        None => 0,
        Some(a) => {
            let (at, lead) = a
                .split_once(',')
                .ok_or_else(|| anyhow!("--after {a:?}: expected <time>,<lead> as printed"))?;
            let pk = format!("LEAD#{lead}");
            entries
                .iter()
                .position(|e| e.at.as_str() < at || (e.at == at && e.pk > pk))
                .unwrap_or(entries.len())
        }
    };
    if limit == 0 {
        bail!("--limit must be at least 1");
    }
    let end = start.saturating_add(limit).min(entries.len());
    let next = (end < entries.len()).then(|| {
        let last = &entries[end - 1];
        format!("{},{}", last.at, lead_of(&last.pk))
    });
    Ok((&entries[start..end], next))
}

/// `smartlead leads`.
pub async fn leads(a: &LeadsArgs) -> Result<()> {
    let since = since(a.since.as_deref())?;
    let lists = a.of.lists(&a.campaign).await?;
    let mut entries = lists.entries(a.status, since).await?;
    if let Some(c) = &a.category {
        let leads = lists.in_category(c).await?;
        entries.retain(|e| leads.contains(&e.pk));
    }
    let (shown, next) = page(&entries, a.after.as_deref(), a.limit)?;
    let pks: Vec<String> = shown.iter().map(|e| e.pk.clone()).collect();
    let details = lists.details(&pks, true).await?;
    let rows: Vec<Listed> = shown
        .iter()
        .map(|e| Listed::of(e, a.status, details.get(&e.pk)))
        .collect();
    if a.csv {
        print!("{}", csv(&rows));
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render(&rows, entries.len(), a.status));
    }
    if let Some(n) = next {
        eprintln!("more: --after {}", shell_quoted(&n));
    }
    read_units(lists.units.get());
    Ok(())
}

/// One line per lead (control characters shown escaped), the preview below.
pub fn render(rows: &[Listed], total: usize, status: Status) -> String {
    let head = format!("{total} lead(s) {}; {} shown\n", status.name(), rows.len());
    head + &render_rows(rows)
}

/// The lines of [`render`] without its heading.
pub fn render_rows(rows: &[Listed]) -> String {
    let mut out = String::new();
    for r in rows {
        let who = if r.email.is_empty() {
            &r.lead
        } else {
            &r.email
        };
        let step = r.step.map(|s| format!("step {s}")).unwrap_or_default();
        out.push_str(&format!(
            "  {}  {}  {}  {}\n",
            r.at,
            who.escape_debug(),
            step,
            r.category.escape_debug()
        ));
        if !r.reply_preview.is_empty() {
            out.push_str(&format!("      > {}\n", r.reply_preview.escape_debug()));
        }
    }
    out
}

/// RFC 4180 with a header row, every lead of the page (its `lead` says
/// who it is when SmartLead gave no address).
pub fn csv(rows: &[Listed]) -> String {
    let mut out = String::from("email,lead,status,at,step,category,replied_at,reply_preview\r\n");
    for r in rows {
        let step = r.step.map(|s| s.to_string()).unwrap_or_default();
        let fields = [
            r.status.name(),
            &r.at,
            &step,
            &r.category,
            &r.replied_at,
            &r.reply_preview,
        ];
        let addresses = [&r.email, &r.lead].map(|a| crate::suppression::cell(a));
        let line: Vec<String> = addresses
            .into_iter()
            .chain(fields.iter().map(|f| crate::suppression::text_cell(f)))
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// What a list verb's reads cost, on stderr (DynamoDB's consumed capacity).
pub fn read_units(units: f64) {
    eprintln!("read {units:.1} read units");
}

/// `s` in single quotes for a POSIX shell (a `'` as `'\''`); a control
/// character, which no terminal should get raw, as its escape.
pub fn shell_quoted(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(at: &str, lead: &str) -> Entry {
        Entry {
            pk: format!("LEAD#{lead}"),
            at: at.into(),
            email: lead.into(),
            category: String::new(),
            sentiment: String::new(),
        }
    }

    #[test]
    fn pages_cut_at_the_cursor_and_equal_times_go_by_lead() {
        let mut all = vec![
            e("2025-01-02", "b"),
            e("2025-01-03", "z"),
            e("2025-01-02", "a"),
            e("2025-01-02", "c"),
            e("2025-01-01", "a"),
        ];
        newest_first(&mut all);
        let leads = |p: &[Entry]| p.iter().map(|e| e.email.clone()).collect::<Vec<_>>();
        let (p1, next) = page(&all, None, 2).unwrap();
        assert_eq!(leads(p1), ["z", "a"]);
        assert_eq!(next.as_deref(), Some("2025-01-02,a"));
        let (p2, next) = page(&all, next.as_deref(), 2).unwrap();
        assert_eq!(leads(p2), ["b", "c"]);
        let (p3, next) = page(&all, next.as_deref(), 2).unwrap();
        assert_eq!((leads(p3), next), (vec!["a".to_owned()], None));
        assert!(page(&all, Some("no comma"), 2).is_err());
        assert!(page(&all, None, 0).is_err());
        assert_eq!(page(&all, None, usize::MAX).unwrap().0.len(), 5);
    }

    #[test]
    fn the_next_page_hint_is_one_shell_word() {
        assert_eq!(shell_quoted("t,o'neil@x"), r"'t,o'\''neil@x'");
        assert_eq!(shell_quoted("a\u{1b}b"), r"'a\u{1b}b'");
    }
}
