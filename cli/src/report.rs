//! `smartlead campaign <id> --html <file>`: the funnel as one
//! self-contained page (inline CSS and SVG; no script, no external font,
//! image or style), so it opens offline and can be mailed. Every number
//! carries a `data-` attribute naming what it counts, so a test can read
//! the rendered page back and compare it with `--json`.

use crate::campaign::Funnel;
use crate::lists::Status;
use smartlead::domain::time::EventTime;

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .5rem;\
border-bottom:1px solid #e3e6ec;vertical-align:top}th{font-weight:600}\
.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#687083}\
svg text{font-size:12px;fill:#1d2330}";

/// The page.
pub fn html(f: &Funnel, generated: EventTime) -> String {
    let title = format!("Campaign {}", esc(&f.campaign));
    let since = f.since.as_deref().map_or_else(
        || "its whole life".to_owned(),
        |s| format!("since {}", esc(s)),
    );
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n\
         <h1>{title}</h1><p class=\"muted\">Leads per status over {since}. \
         Generated {generated} from the pipeline's state.</p>\n"
    );
    out.push_str("<h2>Funnel</h2>\n");
    out.push_str(&funnel_chart(f));
    out.push_str("<h2>Replies per day</h2>\n");
    out.push_str(&replies_chart(f));
    out.push_str("<h2>Newest replies</h2>\n");
    out.push_str(&replies_table(f));
    if !f.replies_by_step.is_empty() || !f.categories.is_empty() {
        out.push_str("<h2>Replies by step, leads by category</h2>\n<table>");
        for (k, v) in &f.replies_by_step {
            out.push_str(&format!(
                "<tr><td>replied, deepest step sent {}</td><td class=\"num\" data-step=\"{}\">{v}</td></tr>",
                if k == "?" { "unknown" } else { k },
                esc(k)
            ));
        }
        for (k, v) in &f.categories {
            out.push_str(&format!(
                "<tr><td>category {}</td><td class=\"num\" data-category=\"{}\">{v}</td></tr>",
                esc(k),
                esc(k)
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// Horizontal bars, one per status, with their counts.
fn funnel_chart(f: &Funnel) -> String {
    let max = f.totals.values().copied().max().unwrap_or(0).max(1) as f64;
    let (row, label, width) = (28.0, 110.0, 560.0);
    let h = row * f.totals.len() as f64 + 4.0;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"Leads per status\" width=\"{}\" height=\"{h}\" \
         viewBox=\"0 0 {} {h}\" xmlns=\"http://www.w3.org/2000/svg\">",
        label + width + 60.0,
        label + width + 60.0
    );
    for (i, (st, n)) in f.totals.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let w = (*n as f64 / max * width).max(if *n > 0 { 2.0 } else { 0.0 });
        let color = match st {
            Status::Bounced | Status::Unsubscribed => "#c2410c",
            Status::Replied | Status::Interested => "#15803d",
            _ => "#2563eb",
        };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label}\" y=\"{y}\" width=\"{w:.1}\" \
             height=\"{}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\" data-total=\"{}\">{n}</text>",
            y + 17.0,
            st.name(),
            row - 8.0,
            label + w + 6.0,
            y + 17.0,
            st.name()
        ));
    }
    svg + "</svg>\n"
}

/// The days from the first reply's to the last's, each with its replied
/// leads (0 on a day without); only the days with replies past
/// [`MAX_DAYS`].
fn reply_days(f: &Funnel) -> Vec<(String, u64)> {
    let replied: Vec<(String, u64)> = f
        .per_day
        .iter()
        .filter_map(|(d, c)| c.get(&Status::Replied).map(|n| (d.clone(), *n as u64)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let day_ms = |d: &str| EventTime::parse(&format!("{d}T00:00:00Z")).map(|t| t.millis());
    let (Some(first), Some(last)) = (
        replied.first().and_then(|(d, _)| day_ms(d)),
        replied.last().and_then(|(d, _)| day_ms(d)),
    ) else {
        return replied;
    };
    const DAY: i64 = 86_400_000;
    if (last - first) / DAY >= MAX_DAYS as i64 {
        return replied;
    }
    let counts: std::collections::BTreeMap<String, u64> = replied.into_iter().collect();
    (0..=(last - first) / DAY)
        .filter_map(|i| EventTime::from_millis(first + i * DAY))
        .map(|t| {
            let d = t.to_string()[..10].to_owned();
            let n = counts.get(&d).copied().unwrap_or(0);
            (d, n)
        })
        .collect()
}

/// At most this many days are drawn one bar each, empty days included.
const MAX_DAYS: usize = 180;

/// Vertical bars: replied leads per day.
fn replies_chart(f: &Funnel) -> String {
    let days = reply_days(f);
    if days.is_empty() {
        return "<p class=\"muted\">No replies.</p>\n".into();
    }
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let (w, height) = (640.0_f64, 160.0);
    let step = w / days.len() as f64;
    let bar = (step * 0.75).clamp(1.0, 40.0);
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"Replies per day\" width=\"{w}\" height=\"{}\" \
         viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        height + 40.0,
        height + 40.0
    );
    for (i, (day, n)) in days.iter().enumerate() {
        let x = i as f64 * step;
        let h = *n as f64 / max * height;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"#15803d\" \
             data-day=\"{}\" data-replies=\"{n}\"><title>{} {n}</title></rect>",
            height + 16.0 - h,
            esc(day),
            esc(day)
        ));
        if *n > 0 && step >= 20.0 {
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{:.1}\">{n}</text>",
                height + 12.0 - h
            ));
        }
    }
    let first = days.first().map(|(d, _)| esc(d)).unwrap_or_default();
    let last = days.last().map(|(d, _)| esc(d)).unwrap_or_default();
    svg.push_str(&format!(
        "<text x=\"0\" y=\"{}\">{first}</text><text x=\"{w}\" y=\"{}\" \
         text-anchor=\"end\">{last}</text></svg>\n",
        height + 34.0,
        height + 34.0
    ));
    svg
}

fn replies_table(f: &Funnel) -> String {
    if f.newest_replies.is_empty() {
        return "<p class=\"muted\">No replies.</p>\n".into();
    }
    let mut t = String::from(
        "<table><tr><th style=\"white-space:nowrap\">replied</th><th>lead</th><th>step</th><th>category</th><th>reply</th></tr>",
    );
    for r in &f.newest_replies {
        let who = if r.email.is_empty() {
            &r.lead
        } else {
            &r.email
        };
        // `2025-03-17T23:19:00.000Z` as `2025-03-17 23:19 UTC`.
        let at = match r.at.get(..16) {
            Some(t) if r.at.ends_with('Z') => format!("{} UTC", t.replacen('T', " ", 1)),
            _ => r.at.clone(),
        };
        t.push_str(&format!(
            "<tr data-reply=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.lead),
            esc(&at),
            esc(who),
            r.step.map(|s| s.to_string()).unwrap_or_default(),
            esc(&r.category),
            esc(&r.reply_preview)
        ));
    }
    t + "</table>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_nothing_is_fetched() {
        assert_eq!(
            esc("<script>a&'\"</script>"),
            "&lt;script&gt;a&amp;&#39;&quot;&lt;/script&gt;"
        );
        let f = Funnel {
            campaign: "<b>42</b>".into(),
            since: None,
            totals: Status::ALL.iter().map(|s| (*s, 1)).collect(),
            per_day: Default::default(),
            replies_by_step: Default::default(),
            categories: [("<i>x</i>".to_owned(), 1)].into(),
            newest_replies: vec![crate::lists::Listed {
                email: "<u>x</u>@y.example".into(),
                lead: "<u>x</u>@y.example".into(),
                status: Status::Replied,
                at: "<s>2025</s>".into(),
                step: Some(1),
                category: "<em>c</em>".into(),
                replied_at: String::new(),
                reply_preview: "</td><script>alert(1)</script>".into(),
            }],
            read_units: 0.0,
        };
        let page = html(&f, EventTime::now());
        for tag in ["<b>", "<i>", "<u>", "<s>", "<em>", "</td><script"] {
            assert!(!page.contains(tag), "{tag} in {page}");
        }
        // Self-contained: no script, and nothing loaded from elsewhere.
        for bad in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(bad), "{bad}");
        }
    }
}
