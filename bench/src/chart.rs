//! The latency chart (`bench/latency.svg`): plain SVG, one line per concurrency.
#[allow(unused_imports)]
use super::*;

/// A cumulative distribution of POST-to-stored latency per concurrency, as SVG.
pub fn latency_svg(e2es: &[E2e]) -> String {
    let (w, h, left, bottom, top, right) = (800.0, 400.0, 60.0, 50.0, 30.0, 230.0);
    let all: Vec<f64> = e2es
        .iter()
        .flat_map(|e| e.samples.iter().copied())
        .filter(|x| *x > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(0.1)
        .log10()
        .floor();
    let hi = all
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(1.0)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let x = |v: f64| left + (v.max(0.1).log10() - lo) / (hi - lo) * (w - left - right);
    let y = |q: f64| top + (1.0 - q) * (h - top - bottom);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="14">POST-to-stored latency, local stack (cumulative share of webhooks)</text>
"##,
        (w - right + left) / 2.0
    );
    let mut d = lo;
    while d <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = 10f64.powf(d) * m;
            if v.log10() > hi + 1e-9 {
                break;
            }
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#ddd"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text>"##,
                x(v),
                y(1.0),
                y(0.0),
                y(0.0) + 16.0,
                if v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            );
        }
        d += 1.0;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}%</text>"##,
            y(q),
            w - right,
            left - 6.0,
            y(q) + 4.0,
            q * 100.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">milliseconds (log scale)</text>"##,
        (w - right + left) / 2.0,
        h - 10.0
    );
    for (i, e) in e2es.iter().enumerate() {
        let color = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][i % 4];
        let mut v = e.samples.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(k, ms)| format!("{:.1},{:.1}", x(*ms), y((k + 1) as f64 / n)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let ly = top + 20.0 + 22.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{1:.1}" stroke="{color}" stroke-width="3"/><text x="{3:.1}" y="{4:.1}">concurrency {5} (p50 {6} ms)</text>"##,
            w - right + 10.0,
            ly,
            w - right + 30.0,
            w - right + 34.0,
            ly + 4.0,
            e.concurrency,
            f(e.post_to_stored_ms.p50, 0)
        );
    }
    s.push_str("</svg>\n");
    s
}
