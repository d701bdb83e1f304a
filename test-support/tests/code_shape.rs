//! The code's shape, as ARCHITECTURE.md states it: no non-test function
//! longer than 80 lines, and a domain layer that names no SDK type and
//! uses nothing above it.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 80;

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The line without string or char literals and `//` comments, for
/// counting braces.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '{'); a lifetime has no closing quote.
                let rest: String = chars.clone().take(3).collect();
                let close = if rest.starts_with('\\') { 2 } else { 1 };
                if rest.chars().nth(close) == Some('\'') {
                    for _ in 0..=close {
                        chars.next();
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// The function name a line declares (after any `pub(..)`, `const`,
/// `async`, `unsafe`, `extern "abi"`, `default`), if it declares one.
fn fn_name(line: &str) -> Option<String> {
    let mut t = line.trim_start();
    loop {
        let before = t;
        if let Some(r) = t.strip_prefix("pub") {
            t = match r.strip_prefix('(') {
                Some(r) => r.split_once(')').map_or(r, |(_, r)| r),
                None => r,
            }
            .trim_start();
        }
        for q in ["const ", "async ", "unsafe ", "default "] {
            if let Some(r) = t.strip_prefix(q) {
                t = r.trim_start();
            }
        }
        if let Some(r) = t.strip_prefix("extern ") {
            t = r.trim_start();
            if t.starts_with('"') {
                t = t[1..].split_once('"').map_or(t, |(_, r)| r).trim_start();
            }
        }
        if t == before {
            break;
        }
    }
    let rest = t.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// From line `i`, the last line of the item starting there and whether it
/// has a body: its closing brace, or the `;` that ends a declaration (the
/// first `{` or `;` outside parentheses and brackets decides which).
fn item_end(lines: &[&str], i: usize) -> Option<(usize, bool)> {
    let (mut nest, mut depth, mut opened) = (0i64, 0i64, false);
    for (j, line) in lines.iter().enumerate().skip(i) {
        for c in code_of(line).chars() {
            match c {
                '(' | '[' => nest += 1,
                ')' | ']' => nest -= 1,
                ';' if !opened && nest == 0 => return Some((j, false)),
                '{' => {
                    opened = true;
                    depth += 1;
                }
                '}' => {
                    depth -= 1;
                    if opened && depth == 0 {
                        return Some((j, true));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// (name, first line, length) of each function with a body in `text`,
/// skipping items marked `#[cfg(test)]` (test modules and helpers); a
/// nested function is counted inside its outer one.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // The item it marks, whatever it is: skipped whole.
            i = item_end(&lines, i + 1).map_or(lines.len(), |(e, _)| e + 1);
            continue;
        }
        match (fn_name(lines[i]), item_end(&lines, i)) {
            (Some(name), Some((end, true))) => {
                out.push((name, i + 1, end - i + 1));
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The crates' non-test source: `src/` of every workspace member.
fn sources() -> Vec<PathBuf> {
    let root = test_support::root();
    let mut files = Vec::new();
    for dir in [
        "shared/src",
        "functions",
        "cli/src",
        "test-support/src",
        "xtask/src",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    // Test code: `tests/` folders and `tests.rs` modules (gated by `#[cfg(test)]` where declared).
    files.retain(|f| !f.components().any(|c| c.as_os_str() == "tests") && !f.ends_with("tests.rs"));
    files
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let root = test_support::root();
    let mut long = Vec::new();
    let files = sources();
    assert!(files.len() > 50, "{} files found", files.len());
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for (name, line, len) in functions(&text) {
            seen.insert(name.clone());
            if len > MAX_LINES {
                let rel = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
                long.push(format!("{rel}:{line} {name} ({len} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_counter_sees_a_long_function_and_skips_braces_in_text() {
    let mut text = String::from("pub async fn long() {\n    let s = \"}{\";\n    let c = '{';\n");
    for _ in 0..80 {
        text.push_str("    x(); // }\n");
    }
    text.push_str("}\nfn short<'a>(x: &'a str) -> &'a str {\n    x\n}\nfn decl();\n");
    text.push_str("pub(super) const unsafe fn k(a: &[(u8, u8); 2]) -> u8 {\n    a[0].0\n}\n");
    text.push_str("#[cfg(test)]\nfn helper() {\n}\n");
    text.push_str("impl X {\n    pub(in crate::a) async fn m(&self) {\n    }\n}\n");
    text.push_str("#[cfg(test)]\nmod tests {\n    fn t() {\n    }\n}\nfn after() {}\n");
    let f = functions(&text);
    assert_eq!(f[0], ("long".to_owned(), 1, 84));
    assert_eq!(f[1], ("short".to_owned(), 85, 3));
    assert_eq!(f[2], ("k".to_owned(), 89, 3));
    let names: Vec<&str> = f.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["long", "short", "k", "m", "after"]);
}

#[test]
fn the_domain_layer_names_no_sdk_type_and_nothing_above_it() {
    let mut files = Vec::new();
    rust_files(&test_support::root().join("shared/src/domain"), &mut files);
    assert!(files.len() >= 10, "{} domain files", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        // Code only: a doc comment may point at the layer that uses this one.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let grouped = code.split("crate::{").skip(1).any(|g| {
            ["app", "adapters", "config"]
                .iter()
                .any(|l| g.split('}').next().unwrap_or_default().contains(l))
        });
        assert!(!grouped, "{} imports an upper layer", f.display());
        for banned in [
            "aws_sdk_",
            "aws_config",
            "aws_smithy",
            "reqwest",
            "crate::app",
            "crate::adapters",
            "crate::config",
        ] {
            assert!(!code.contains(banned), "{} uses {banned}", f.display());
        }
    }
}
