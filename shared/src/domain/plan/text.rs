//! Text helpers: values from optional fields, cut previews, HTML to text.

use super::Val;

/// Characters of a reply or bounce text kept as its preview.
pub(super) const PREVIEW_CHARS: usize = 500;

pub(super) fn s(v: Option<&str>) -> Option<Val> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| Val::S(v.to_owned()))
}

pub(super) fn owned(v: Option<String>) -> Option<Val> {
    v.filter(|v| !v.is_empty()).map(Val::S)
}

pub(super) fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Text of an HTML fragment, roughly: tags dropped, white space folded.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(4 * PREVIEW_CHARS));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
        if out.len() > 8 * PREVIEW_CHARS {
            break;
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
