//! The latency chart (`bench/latency.svg`): plain SVG, one line per concurrency.
#[allow(unused_imports)]
use super::*;

/// A cumulative distribution of POST-to-stored latency per concurrency, as SVG.
pub fn latency_svg(e2es: &[E2e]) -> String {
    let p = Plot::new(e2es);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="14">POST-to-stored latency, local stack (cumulative share of webhooks)</text>
"##,
        p.w,
        p.h,
        (p.w - p.right + p.left) / 2.0
    );
    p.x_grid(&mut s);
    p.y_grid(&mut s);
    for (i, e) in e2es.iter().enumerate() {
        p.series(&mut s, i, e);
    }
    s.push_str("</svg>\n");
    s
}

/// The chart's size, margins and (log10 of the) milliseconds shown.
struct Plot {
    w: f64,
    h: f64,
    left: f64,
    bottom: f64,
    top: f64,
    right: f64,
    lo: f64,
    hi: f64,
}

impl Plot {
    fn new(e2es: &[E2e]) -> Plot {
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
        Plot {
            w: 800.0,
            h: 400.0,
            left: 60.0,
            bottom: 50.0,
            top: 30.0,
            right: 230.0,
            lo,
            hi,
        }
    }

    fn x(&self, v: f64) -> f64 {
        self.left
            + (v.max(0.1).log10() - self.lo) / (self.hi - self.lo)
                * (self.w - self.left - self.right)
    }

    fn y(&self, q: f64) -> f64 {
        self.top + (1.0 - q) * (self.h - self.top - self.bottom)
    }

    /// Vertical lines at 1, 2 and 5 of each power of ten, and the x axis' title.
    fn x_grid(&self, s: &mut String) {
        let mut d = self.lo;
        while d <= self.hi {
            for m in [1.0, 2.0, 5.0] {
                let v = 10f64.powf(d) * m;
                if v.log10() > self.hi + 1e-9 {
                    break;
                }
                let _ = writeln!(
                    s,
                    r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#ddd"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text>"##,
                    self.x(v),
                    self.y(1.0),
                    self.y(0.0),
                    self.y(0.0) + 16.0,
                    if v >= 1.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v}")
                    }
                );
            }
            d += 1.0;
        }
    }

    /// Horizontal lines at some shares, and the x axis' title.
    fn y_grid(&self, s: &mut String) {
        for q in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            let _ = writeln!(
                s,
                r##"<line x1="{1}" y1="{0:.1}" x2="{2:.1}" y2="{0:.1}" stroke="#eee"/><text x="{3}" y="{4:.1}" text-anchor="end">{5}%</text>"##,
                self.y(q),
                self.left,
                self.w - self.right,
                self.left - 6.0,
                self.y(q) + 4.0,
                q * 100.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">milliseconds (log scale)</text>"##,
            (self.w - self.right + self.left) / 2.0,
            self.h - 10.0
        );
    }

    /// One concurrency's line, and its legend entry.
    fn series(&self, s: &mut String, i: usize, e: &E2e) {
        let (w, right) = (self.w, self.right);
        let color = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][i % 4];
        let mut v = e.samples.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(k, ms)| format!("{:.1},{:.1}", self.x(*ms), self.y((k + 1) as f64 / n)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let ly = self.top + 20.0 + 22.0 * i as f64;
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
}
