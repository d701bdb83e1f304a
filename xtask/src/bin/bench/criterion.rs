//! Criterion's in-process benchmarks: run them, read their estimates.
#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------- criterion

#[derive(Debug, Clone, serde::Serialize)]
pub struct Criterion {
    pub id: String,
    pub median_ns: f64,
    pub low_ns: f64,
    pub high_ns: f64,
    pub mad_ns: f64,
}

pub(crate) fn run_criterion(root: &Path, quick: bool) -> Result<()> {
    let measure = if quick { "1" } else { "4" };
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .current_dir(root)
        // --workspace: the tests' feature set, which this binary was built with.
        .args(["bench", "--workspace", "--bench", "hot_paths", "--"])
        .args([
            "--noplot",
            "--warm-up-time",
            "1",
            "--measurement-time",
            measure,
        ])
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench failed ({status})");
    }
    Ok(())
}

pub(crate) fn read_criterion() -> Result<Vec<Criterion>> {
    let dir = pipeline::target_dir().join("criterion");
    let mut out = Vec::new();
    for group in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let group = group?.path();
        let Ok(benches) = std::fs::read_dir(&group) else {
            continue;
        };
        for bench in benches {
            let bench = bench?.path();
            let Ok(text) = std::fs::read_to_string(bench.join("new/estimates.json")) else {
                continue;
            };
            let v: Value = serde_json::from_str(&text)?;
            let name = |p: &Path| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            out.push(Criterion {
                id: format!("{}/{}", name(&group), name(&bench)),
                median_ns: v["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN),
                low_ns: v["median"]["confidence_interval"]["lower_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                high_ns: v["median"]["confidence_interval"]["upper_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                mad_ns: v["median_abs_dev"]["point_estimate"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    if out.is_empty() {
        bail!("no criterion results under {}", dir.display());
    }
    Ok(out)
}
