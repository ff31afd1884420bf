//! Inline SVG: line charts, bars and spike tiles.

use std::fmt::Write;

use crate::{esc, Raster};

/// Channels drawn per layer.
pub const MAX_TILES: usize = 64;
/// Steps drawn per layer.
const MAX_STEPS: usize = 8;

const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A line chart of `series` over `x`, with axes, ticks and a legend.
pub fn lines(title: &str, x: &[f64], series: &[(&str, Vec<f64>)]) -> String {
    let (w, h, left, bottom, top, right) = (520.0, 260.0, 50.0, 30.0, 24.0, 10.0);
    let finite = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (mut lo, mut hi) = finite.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo, hi) = (lo - pad, hi + pad);
    let (x0, x1) = (
        x.first().copied().unwrap_or(0.0),
        x.last().copied().unwrap_or(1.0),
    );
    let span = (x1 - x0).max(1.0);
    let px = |v: f64| left + (v - x0) / span * (w - left - right);
    let py = |v: f64| top + (hi - v) / (hi - lo) * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{}</title>",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"14\" font-size=\"12\">{}</text>",
        esc(title)
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 4.0,
            y + 3.0,
            tick(v)
        );
    }
    let n = x.len();
    for k in 0..n.min(10) {
        let i = if n <= 10 { k } else { k * (n - 1) / 9 };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            px(x[i]),
            h - bottom + 14.0,
            x[i]
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">epoch</text>",
        w - right,
        h - 2.0
    );
    for (k, (name, v)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let pts: Vec<String> = x
            .iter()
            .zip(v)
            .map(|(&a, &b)| format!("{:.1},{:.1}", px(a), py(b)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" ")
        );
        if let ([a], [b]) = (x, v.as_slice()) {
            // One epoch: a dot, since a one-point line draws nothing.
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                px(*a),
                py(*b)
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"14\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            w - right - 150.0 + 80.0 * k as f64,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

fn tick(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Horizontal bars: `(label, value, reference)`, the value dark over the reference light.
pub fn bars(items: &[(String, u64, u64)]) -> String {
    let max = items.iter().map(|i| i.1.max(i.2)).max().unwrap_or(1).max(1) as f64;
    let (w, row) = (520.0, 18.0);
    let h = row * items.len() as f64 + 4.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\"><title>weight bits per layer</title>"
    );
    for (k, (label, v, reference)) in items.iter().enumerate() {
        let y = 2.0 + row * k as f64;
        let scale = |b: u64| (w - 180.0) * b as f64 / max;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"11\">{}</text><rect x=\"80\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"#c6dbef\"/><rect x=\"80\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"#2171b5\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{v}</text>",
            y + 12.0,
            esc(label),
            scale(*reference),
            row - 4.0,
            scale(*v),
            row - 4.0,
            84.0 + scale((*v).max(*reference)),
            y + 12.0
        );
    }
    s.push_str("</svg>");
    s
}

/// One small SVG per channel (and step): a cell per position, dark for a positive value
/// (a spike, or a pooled count), red for a negative one (a ternary spike).
pub fn tiles(r: &Raster) -> String {
    let cell = (64 / r.height.max(r.width).max(1)).clamp(2, 8);
    let (tw, th) = (cell * r.width, cell * r.height);
    let mut s = String::new();
    for step in 0..r.steps.min(MAX_STEPS) {
        for ch in 0..r.channels.min(MAX_TILES) {
            let mut pos = String::new();
            let mut neg = String::new();
            for p in 0..r.height * r.width {
                let v = r.values[(p * r.steps + step) * r.channels + ch];
                if v == 0 {
                    continue;
                }
                let (y, x) = (p / r.width * cell, p % r.width * cell);
                let target = if v > 0 { &mut pos } else { &mut neg };
                let _ = write!(target, "M{x} {y}h{cell}v{cell}h-{cell}z");
            }
            let _ = write!(
                s,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{tw}\" height=\"{th}\"><title>channel {ch}, step {step}</title><rect width=\"{tw}\" height=\"{th}\" fill=\"#f4f4f4\"/><path d=\"{pos}\" fill=\"#111\"/><path d=\"{neg}\" fill=\"#d62728\"/></svg>"
            );
        }
    }
    s
}
