//! The docs' promises: the README is one page (at most 200 lines), and
//! every relative link in the top-level pages and under `docs/` names a
//! file that exists and, with `#`, a heading there. Markdown is read by
//! pulldown-cmark (code blocks, inline code and reference links as GitHub
//! reads them); anchors follow GitHub's rule: lower case, punctuation
//! dropped, spaces to `-`, a repeated heading's anchor suffixed `-1`, `-2`.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn parser(md: &str) -> Parser<'_> {
    Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES)
}

fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A page's heading anchors, repeats suffixed as GitHub does.
fn anchors(md: &str) -> Vec<String> {
    let (mut out, mut seen) = (Vec::new(), HashMap::<String, usize>::new());
    let mut heading: Option<String> = None;
    for ev in parser(md) {
        match ev {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let a = anchor(&heading.take().unwrap_or_default());
                let n = seen.entry(a.clone()).or_insert(0);
                out.push(if *n == 0 {
                    a.clone()
                } else {
                    format!("{a}-{n}")
                });
                *n += 1;
            }
            _ => {}
        }
    }
    out
}

/// The targets of a page's links and images (inline and reference).
fn links(md: &str) -> Vec<String> {
    parser(md)
        .filter_map(|ev| match ev {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The pages: the top-level `.md` files and every one under `docs/`.
fn pages(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("root")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "md"))
        .collect();
    walk(&root.join("docs"), &mut out);
    out
}

/// Whether `link` on `page` resolves (external links are not fetched).
fn resolves(root: &Path, page: &Path, link: &str) -> bool {
    if link.contains("://") || link.starts_with("mailto:") {
        return true;
    }
    let (path, frag) = link.split_once('#').unwrap_or((link, ""));
    let path = path
        .split('?')
        .next()
        .unwrap_or_default()
        .replace("%20", " ");
    let target = match path.strip_prefix('/') {
        _ if path.is_empty() => page.to_path_buf(),
        Some(from_root) => root.join(from_root),
        None => page.parent().unwrap_or(root).join(&path),
    };
    let md = target.extension().is_some_and(|x| x == "md");
    target.exists()
        && (frag.is_empty()
            || !md
            || std::fs::read_to_string(&target)
                .is_ok_and(|t| anchors(&t).iter().any(|a| a == frag)))
}

#[test]
fn the_readme_is_one_page_and_every_relative_link_resolves() {
    let root = test_support::root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(readme.lines().count() <= 200, "README.md over 200 lines");
    let pages = pages(&root);
    assert!(pages.len() > 5, "{pages:?}");
    let mut broken = Vec::new();
    for page in &pages {
        let md = std::fs::read_to_string(page).expect("page");
        for link in links(&md) {
            if !resolves(&root, page, &link) {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_and_links_are_read_as_github_reads_them() {
    let md = "# State: one write\n\n```sh\n# not a heading\n```\n\n## `status` (v2) & more\n\n\
              ## Repeat\n\n## Repeat\n\nSee [a](docs/a.md#x), `[no](code.md)` and [r][ref].\n\n[ref]: b.md\n";
    assert_eq!(
        anchors(md),
        ["state-one-write", "status-v2--more", "repeat", "repeat-1"]
    );
    assert_eq!(links(md), ["docs/a.md#x", "b.md"]);
}
