//! Figures of the release binaries under the Lambda RIE: first answer, warm invokes, RSS, log bytes.
#[allow(unused_imports)]
use super::*;

// ------------------------------------------------------------ RIE figures

#[derive(Debug, Clone, serde::Serialize)]
pub struct FunctionFigures {
    pub name: String,
    pub binary_bytes: u64,
    /// The arm64 `bootstrap` of `sam build` (what deploys), when built.
    pub arm64_bytes: Option<u64>,
    /// Process start (emulator spawn) to the first answered invoke, ms.
    pub cold_start_ms: Stats,
    /// The emulator's INIT REPORT: the bootstrap's own init, ms.
    pub init_ms: Stats,
    /// Warm invokes, as the caller sees them through the emulator, ms.
    pub warm_ms: Stats,
    /// Warm invokes, the emulator's REPORT Duration (what Lambda bills), ms.
    pub warm_billed_ms: Stats,
    pub peak_rss_kib: u64,
}

/// Lines of a log file from `offset`, and the new end offset.
pub(crate) fn log_lines(path: &Path, offset: u64) -> (Vec<String>, u64) {
    let text = std::fs::read(path).unwrap_or_default();
    let from = (offset as usize).min(text.len());
    let lines = String::from_utf8_lossy(&text[from..])
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, text.len() as u64)
}

pub(crate) fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `Duration: X ms` of the emulator's REPORT lines.
pub(crate) fn report_durations(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.starts_with("REPORT RequestId"))
        .filter_map(|l| {
            l.split('\t')
                .map(str::trim)
                .find(|p| p.starts_with("Duration:"))
                .and_then(|p| {
                    p.trim_start_matches("Duration:")
                        .trim_end_matches("ms")
                        .trim()
                        .parse()
                        .ok()
                })
        })
        .collect()
}

pub(crate) fn init_duration(lines: &[String]) -> Option<f64> {
    lines.iter().find_map(|l| {
        let i = l.find("INIT REPORT(durationMs: ")?;
        l[i + 24..].trim_end_matches(')').trim().parse().ok()
    })
}

/// Bytes of the function's own JSON log lines (what CloudWatch ingests with
/// `SystemLogLevel: WARN`: no platform START/END/REPORT records).
pub(crate) fn json_log_bytes(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| l.len() as u64 + 1)
        .sum()
}

pub(crate) async fn invoke_until_answered(
    http: &reqwest::Client,
    url: &str,
    event: &Value,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http.post(url).json(event).send().await {
            Ok(r) => return Ok(r.json().await?),
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn open_body(email: &str, second: u32) -> String {
    json!({"event_type": "EMAIL_OPEN", "to_email": email, "campaign_id": 4242,
           "campaign_name": "Benchmark", "sequence_number": 1,
           "time_opened": format!("2026-01-01T00:{:02}:{:02}Z", (second / 60) % 60, second % 60)})
    .to_string()
}

/// The event a function gets for its `i`-th invoke.
pub(crate) fn invoke_event(function: &str, run: &str, i: u32) -> Value {
    let body = open_body(&format!("{run}-{i}@bench.example"), i);
    if function == "ingest" {
        api_request(&format!("{run}-{i}"), &body, "EMAIL_OPEN")
    } else {
        json!({"Records": [sqs_record(&format!("{run}-{i}"), &body, "EMAIL_OPEN")]})
    }
}

/// `warm` invokes one after the other: each one's milliseconds.
async fn warm_invokes(
    http: &reqwest::Client,
    url: &str,
    function: &str,
    run: &str,
    warm: u32,
) -> Result<Vec<f64>> {
    let mut warm_ms = Vec::new();
    for i in 1..=warm {
        let t = Instant::now();
        let out = http
            .post(url)
            .json(&invoke_event(function, run, i))
            .send()
            .await?
            .json::<Value>()
            .await?;
        warm_ms.push(ms(t.elapsed()));
        if out.get("errorType").is_some() {
            bail!("{function}: a warm invoke failed: {out}");
        }
    }
    Ok(warm_ms)
}

pub(crate) async fn function_figures(
    stack: &Stack,
    function: &str,
    rounds: usize,
    warm: u32,
) -> Result<FunctionFigures> {
    let (binary, env) = match function {
        "ingest" => ("smartlead-ingest", &stack.ingest_env),
        _ => ("smartlead-consumer", &stack.consumer_env),
    };
    let bin = stack.options.bin_dir.join(binary);
    let http = smartlead::adapters::http::client();
    let (mut cold, mut init, mut warm_ms, mut billed) = (vec![], vec![], vec![], vec![]);
    let mut peak = 0;
    for round in 0..rounds {
        let port = test_support::standins::free_port();
        let started = Instant::now();
        let mut svc = test_support::standins::start_rie(&bin, port, env, Duration::ZERO)?;
        let url = test_support::standins::rie_invoke_url(&svc);
        let run = format!("{function}-cold-{}-{round}", std::process::id());
        let first = invoke_until_answered(&http, &url, &invoke_event(function, &run, 0)).await?;
        cold.push(ms(started.elapsed()));
        if first.get("errorType").is_some() {
            bail!("{function}: the first invoke failed: {first}");
        }
        if round == 0 {
            let offset = log_len(&svc.log);
            warm_ms = warm_invokes(&http, &url, function, &run, warm).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            billed = report_durations(&log_lines(&svc.log, offset).0);
            peak = children_peak_rss(Some(svc.pid().context("emulator pid")?));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(d) = init_duration(&log_lines(&svc.log, 0).0) {
            init.push(d);
        }
        svc.stop();
    }
    let logical = if function == "ingest" {
        "IngestFunction"
    } else {
        "ConsumerFunction"
    };
    Ok(FunctionFigures {
        name: function.into(),
        binary_bytes: std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0),
        arm64_bytes: std::fs::metadata(
            pipeline::workspace_root()
                .join(".aws-sam/build-arm64")
                .join(logical)
                .join("bootstrap"),
        )
        .ok()
        .map(|m| m.len()),
        cold_start_ms: Stats::of(&cold),
        init_ms: Stats::of(&init),
        warm_ms: Stats::of(&warm_ms),
        warm_billed_ms: Stats::of(&billed),
        peak_rss_kib: peak,
    })
}
