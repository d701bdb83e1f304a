//! The code's shape, as ARCHITECTURE.md states it: no source file longer
//! than 600 lines, and a domain layer that names no SDK type and uses
//! nothing above it. Function length is clippy's `too_many_lines`
//! (threshold 80, `clippy.toml`), denied at every crate root.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;

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
fn no_source_file_is_longer_than_600_lines() {
    let root = test_support::root();
    let files = sources();
    assert!(files.len() > 50, "{} files found", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).expect("read").lines().count();
            let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
            (n > MAX_FILE_LINES).then(|| format!("{rel} ({n} lines)"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
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
