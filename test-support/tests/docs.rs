//! The docs' promises: the README is one page (at most 200 lines), and
//! every relative link in it and in `docs/`, ARCHITECTURE.md and
//! BENCHMARKS.md names a file that exists and, with `#`, a heading there
//! (GitHub's anchors: lower case, punctuation dropped, spaces to `-`).

use std::path::Path;

fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(md: &str) -> Vec<String> {
    md.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect()
}

/// The targets of `](...)` links in `md`.
fn links(md: &str) -> Vec<&str> {
    md.split("](")
        .skip(1)
        .filter_map(|rest| rest.split([')', ' ']).next())
        .collect()
}

#[test]
fn the_readme_is_one_page_and_every_relative_link_resolves() {
    let root = test_support::root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    assert!(readme.lines().count() <= 200, "README.md over 200 lines");
    let mut pages = vec![
        root.join("README.md"),
        root.join("ARCHITECTURE.md"),
        root.join("BENCHMARKS.md"),
    ];
    for e in std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "md") {
            pages.push(e.path());
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let md = std::fs::read_to_string(page).expect("page");
        let dir = page.parent().unwrap_or(Path::new("."));
        for link in links(&md) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, frag) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            let ok = target.exists()
                && (frag.is_empty()
                    || target.extension().is_none_or(|x| x != "md")
                    || std::fs::read_to_string(&target)
                        .is_ok_and(|t| anchors(&t).iter().any(|a| a == frag)));
            if !ok {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_follow_github_s_rule() {
    assert_eq!(
        anchor(" State: one conditional write per item"),
        "state-one-conditional-write-per-item"
    );
    assert_eq!(anchor("`smartlead status` (v2)"), "smartlead-status-v2");
    assert_eq!(
        links("see [a](docs/a.md#x) and [b](https://b)"),
        ["docs/a.md#x", "https://b"]
    );
}
