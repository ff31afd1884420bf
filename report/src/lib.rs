//! spikeforge-report: one self-contained HTML page for a training run or a generated design
//! (no scripts, no network: inline CSS and SVG), from data the caller has gathered.
//!
//! Sections, each with an `id` a browser test can look for: `summary`, `training`,
//! `estimator`, `ladder`, `layers`, `raster`, `synthesis`. A section without data says so
//! instead of disappearing.
#![warn(missing_docs)]

mod svg;

use std::fmt::Write;

/// One epoch of the training log.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    /// 1-based.
    pub epoch: u32,
    /// Training accuracy, 0..1.
    pub train_acc: f64,
    /// Validation accuracy, 0..1.
    pub val_acc: f64,
    /// Training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Per trained layer: `binary`, `full`, … as the log names them.
    pub precision: Vec<String>,
    /// The estimator's decisions this epoch, in words.
    pub decisions: Vec<String>,
}

/// Float, integer and RTL accuracy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ladder {
    /// Test images the float and integer figures are on.
    pub test_images: usize,
    /// Float network, 0..1.
    pub float: Option<f64>,
    /// Integer model (golden model), 0..1.
    pub integer: Option<f64>,
    /// RTL: images co-simulated, of them bit-exact, accuracy 0..1.
    pub rtl: Option<(usize, usize, f64)>,
}

/// One layer of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Name.
    pub name: String,
    /// Operation in the architecture notation (`64C3b LIF`).
    pub op: String,
    /// Output map, `HxWxC`.
    pub shape: String,
    /// Weight bits as stored.
    pub weight_bits: u64,
    /// Weight bits at full (8-bit) precision.
    pub full_precision_bits: u64,
    /// Fraction of non-zero outputs in the golden model over the report's images (spiking
    /// layers; after pooling where the layer pools).
    pub spike_rate: Option<f64>,
    /// The trainer's spike rate of the layer in its last epoch.
    pub training_spike_rate: Option<f64>,
}

/// One layer's output for one image: values `[position][step][channel]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    /// Layer name.
    pub name: String,
    /// Map height.
    pub height: usize,
    /// Map width.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// Steps per position.
    pub steps: usize,
    /// The values.
    pub values: Vec<i64>,
}

/// The synthesis report of the design, as lines of `(what, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesis {
    /// Target or board.
    pub target: String,
    /// `(resource, figure)` rows.
    pub rows: Vec<(String, String)>,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Page title (the model's name).
    pub title: String,
    /// `(field, value)` rows of the summary: architecture, T, coding, dataset, …
    pub summary: Vec<(String, String)>,
    /// The training log.
    pub epochs: Vec<Epoch>,
    /// Accuracies.
    pub ladder: Ladder,
    /// Layers.
    pub layers: Vec<Layer>,
    /// What the raster shows (`test image 0, class 9 "ankle boot", predicted 9`).
    pub raster_caption: String,
    /// One image through every layer.
    pub rasters: Vec<Raster>,
    /// Synthesis, place and route.
    pub synthesis: Option<Synthesis>,
}

/// The `id` of every section of the page, in order.
pub const SECTIONS: [&str; 7] = [
    "summary",
    "training",
    "estimator",
    "ladder",
    "layers",
    "raster",
    "synthesis",
];

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.8em}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.none{color:#888;font-style:italic}\
figure{margin:.5em 0}figcaption{color:#555;font-size:.9em}.tiles{display:flex;flex-wrap:wrap;gap:4px}";

/// The page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&r.title),
        esc(&r.title)
    );
    section(&mut h, "summary", "Summary", &table(&[], &r.summary));
    section(&mut h, "training", "Training", &training(&r.epochs));
    section(
        &mut h,
        "estimator",
        "Estimator decisions",
        &estimator(&r.epochs),
    );
    section(&mut h, "ladder", "Accuracy ladder", &ladder(&r.ladder));
    section(
        &mut h,
        "layers",
        "Layers: weight storage and spike rates",
        &layers(&r.layers),
    );
    section(&mut h, "raster", "Spikes of one test image", &rasters(r));
    let synth = r.synthesis.as_ref().map_or_else(
        || none("no synthesis report (run `spikeforge synth` on the design)"),
        |s| format!("<p>{}</p>{}", esc(&s.target), table(&[], &s.rows)),
    );
    section(&mut h, "synthesis", "Synthesis, place and route", &synth);
    h.push_str("</body></html>\n");
    h
}

fn section(h: &mut String, id: &str, title: &str, body: &str) {
    let _ = write!(
        h,
        "<section id=\"{id}\"><h2>{title}</h2>\n{body}\n</section>\n"
    );
}

fn none(what: &str) -> String {
    format!("<p class=\"none\">{}</p>", esc(what))
}

/// A two-column table of `(field, value)` rows, escaped, left-aligned.
fn table(head: &[&str], rows: &[(String, String)]) -> String {
    let mut t = String::from("<table>");
    for c in head {
        let _ = write!(t, "<th>{}</th>", esc(c));
    }
    for (a, b) in rows {
        let _ = write!(t, "<tr><td>{}</td><td>{}</td></tr>", esc(a), esc(b));
    }
    t.push_str("</table>");
    t
}

/// A table with an optional header; cells are escaped, numeric-looking ones right-aligned.
fn grid(head: &[&str], rows: &[Vec<String>]) -> String {
    let numeric = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '−' || c == '-')
    };
    let mut t = String::from("<table>");
    if !head.is_empty() {
        t.push_str("<tr>");
        for c in head {
            let _ = write!(t, "<th>{}</th>", esc(c));
        }
        t.push_str("</tr>");
    }
    for row in rows {
        t.push_str("<tr>");
        for c in row {
            let class = if numeric(c) { " class=\"n\"" } else { "" };
            let _ = write!(t, "<td{class}>{}</td>", esc(c));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

fn training(epochs: &[Epoch]) -> String {
    if epochs.is_empty() {
        return none("no training log (log.jsonl) in this directory");
    }
    let x: Vec<f64> = epochs.iter().map(|e| e.epoch as f64).collect();
    let pct = |f: fn(&Epoch) -> f64| epochs.iter().map(|e| 100.0 * f(e)).collect::<Vec<_>>();
    let acc = svg::lines(
        "accuracy (%)",
        &x,
        &[
            ("training", pct(|e| e.train_acc)),
            ("validation", pct(|e| e.val_acc)),
        ],
    );
    let loss = svg::lines(
        "loss",
        &x,
        &[
            ("training", epochs.iter().map(|e| e.train_loss).collect()),
            ("validation", epochs.iter().map(|e| e.val_loss).collect()),
        ],
    );
    format!(
        "<figure>{acc}{loss}<figcaption>Accuracy and loss per epoch ({} epochs).</figcaption></figure>",
        epochs.len()
    )
}

fn estimator(epochs: &[Epoch]) -> String {
    if epochs.is_empty() {
        return none("no training log");
    }
    let rows: Vec<Vec<String>> = epochs
        .iter()
        .map(|e| {
            vec![
                e.epoch.to_string(),
                e.precision.join(" · "),
                if e.decisions.is_empty() {
                    "—".into()
                } else {
                    e.decisions.join("; ")
                },
            ]
        })
        .collect();
    grid(&["epoch", "precision per layer", "decisions"], &rows)
}

fn ladder(l: &Ladder) -> String {
    let pct = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.2} %", 100.0 * v));
    let on = |v: Option<f64>| match v {
        Some(_) => format!("{} test images", l.test_images),
        None => "not evaluated (no summary.json)".into(),
    };
    let mut rows = vec![
        vec!["float network".into(), pct(l.float), on(l.float)],
        vec![
            "integer model (golden model)".into(),
            pct(l.integer),
            on(l.integer),
        ],
    ];
    rows.push(match l.rtl {
        Some((n, exact, acc)) => vec![
            "RTL (Verilator)".into(),
            pct(Some(acc)),
            format!("{n} images co-simulated, {exact}/{n} bit-exact"),
        ],
        None => vec![
            "RTL (Verilator)".into(),
            "—".into(),
            "not co-simulated".into(),
        ],
    });
    grid(&["stage", "accuracy", "on"], &rows)
}

fn layers(layers: &[Layer]) -> String {
    if layers.is_empty() {
        return none("no model");
    }
    let rate = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.1} %", 100.0 * v));
    let rows: Vec<Vec<String>> = layers
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.op.clone(),
                l.shape.clone(),
                l.weight_bits.to_string(),
                l.full_precision_bits.to_string(),
                rate(l.spike_rate),
                rate(l.training_spike_rate),
            ]
        })
        .collect();
    let total: u64 = layers.iter().map(|l| l.weight_bits).sum();
    let full: u64 = layers.iter().map(|l| l.full_precision_bits).sum();
    let bars = svg::bars(
        &layers
            .iter()
            .map(|l| (l.name.clone(), l.weight_bits, l.full_precision_bits))
            .collect::<Vec<_>>(),
    );
    format!(
        "{}<p>Weights: {total} bits, {:.1} % below all-full-precision ({full} bits).</p><figure>{bars}<figcaption>Weight bits per layer as stored (dark) and at 8-bit full precision (light).</figcaption></figure>",
        grid(
            &[
                "layer",
                "operation",
                "output",
                "weight bits",
                "at full precision",
                "non-zero outputs",
                "spike rate in training"
            ],
            &rows
        ),
        100.0 * (1.0 - total as f64 / full.max(1) as f64)
    )
}

fn rasters(r: &Report) -> String {
    if r.rasters.is_empty() {
        return none("no test image was run (give `report` a dataset)");
    }
    let mut s = format!("<p>{}</p>", esc(&r.raster_caption));
    for layer in &r.rasters {
        let _ = write!(
            s,
            "<figure><figcaption>{}: {}×{}×{}, {} step(s); one tile per channel{}</figcaption><div class=\"tiles\">{}</div></figure>",
            esc(&layer.name),
            layer.height,
            layer.width,
            layer.channels,
            layer.steps,
            if layer.channels > svg::MAX_TILES {
                format!(" (the first {} shown)", svg::MAX_TILES)
            } else {
                String::new()
            },
            svg::tiles(layer)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_is_there_even_without_data() {
        let page = render(&Report {
            title: "m <1>".into(),
            ..Default::default()
        });
        for id in SECTIONS {
            assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(page.contains("m &lt;1&gt;"));
        assert!(!page.contains("<script"));
    }
}
