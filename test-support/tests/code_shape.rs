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

/// (name, first line, length) of each function in `text` before its
/// `#[cfg(test)]` module, nested ones counted inside their outer function.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or(t.strip_prefix("pub "))
            .unwrap_or(t);
        let t = t.strip_prefix("async ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened, mut j) = (0i64, false, i);
        while j < lines.len() {
            let c = code_of(lines[j]);
            if !opened && c.contains(';') && !c.contains('{') {
                break; // a declaration without a body
            }
            depth += c.matches('{').count() as i64 - c.matches('}').count() as i64;
            opened |= c.contains('{');
            if opened && depth <= 0 {
                out.push((name.clone(), i + 1, j - i + 1));
                break;
            }
            j += 1;
        }
        // Nested functions are part of the outer one.
        i = if opened { j + 1 } else { i + 1 };
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
        "local/src",
        "stack/src",
        "test-support/src",
        "bench/src",
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
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for (name, line, len) in functions(&text) {
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
    let f = functions(&text);
    assert_eq!(f[0], ("long".to_owned(), 1, 84));
    assert_eq!(f[1], ("short".to_owned(), 85, 3));
    assert_eq!(f.len(), 2);
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
