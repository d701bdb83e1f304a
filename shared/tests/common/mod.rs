//! Test helpers shared by the integration tests of the `smartlead` crate.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `events/<sub>/*.json` file: stem -> text.
pub fn fixtures(sub: &str) -> BTreeMap<String, String> {
    let dir = repo_root().join("events").join(sub);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            out.insert(stem, std::fs::read_to_string(&path).expect("read fixture"));
        }
    }
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    out
}

pub fn payload(name: &str) -> String {
    fixtures("payloads")
        .remove(name)
        .unwrap_or_else(|| panic!("no events/payloads/{name}.json"))
}
