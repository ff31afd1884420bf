//! `spikeforge report DIR`: one self-contained HTML page for a training run, a demo directory
//! or a generated design: what the files in DIR say, plus the golden model on test images.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use spikeforge_model::ir::Weights;
use spikeforge_model::{Golden, Model};
use spikeforge_report as report;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// A run directory (`train`, `demo`), or a design directory (`gen`): it must hold
    /// `model.json`; `log.jsonl`, `summary.json`, `cosim.json` and `build/*/report.json` (or
    /// `rtl/build/*/report.json`) are used when present.
    pub dir: PathBuf,
    /// The page (default: DIR/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Dataset whose test images the spike rates and the raster use (default: the run's).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Directory of the dataset's files (default: where its package installs them).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test images for the spike rates.
    #[arg(long, default_value_t = 200, value_parser = super::parse::at_least_one)]
    pub images: usize,
}

pub fn run(a: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let out = a.out.clone().unwrap_or_else(|| a.dir.join("report.html"));
    let page = report::render(&gather(&a)?);
    std::fs::write(&out, page).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "report: {} ({:.1} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{}: not JSON", path.display()))
}

/// Everything the page needs from DIR.
fn gather(a: &Args) -> Result<report::Report> {
    let model_path = a.dir.join("model.json");
    if !model_path.exists() {
        bail!(
            "{}: no model.json (give a run directory of `train`/`demo` or a design directory of `gen`)",
            a.dir.display()
        );
    }
    let model = super::load_model(&model_path)?;
    let summary = read_json(&a.dir.join("summary.json"))?;
    let field = |k: &str| summary.as_ref().and_then(|s| s.get(k)).cloned();
    let names: Vec<String> = model.layers.iter().map(|l| l.name.clone()).collect();
    let epochs = epochs(&a.dir.join("log.jsonl"), &names)?;
    let dataset = a
        .dataset
        .clone()
        .or_else(|| field("dataset").and_then(|d| d.as_str().map(String::from)));
    let mut r = report::Report {
        title: model.name.clone(),
        summary: summary_rows(&model, &summary),
        ladder: report::Ladder {
            test_images: field("test_images").and_then(|v| v.as_u64()).unwrap_or(0) as usize,
            float: field("float_accuracy").and_then(|v| v.as_f64()),
            integer: field("integer_accuracy").and_then(|v| v.as_f64()),
            rtl: rtl(&a.dir.join("cosim.json"))?,
        },
        layers: layers(&model, &epochs_spike_rates(&a.dir.join("log.jsonl"))?),
        synthesis: synthesis(&a.dir)?,
        epochs,
        ..Default::default()
    };
    if let Some(d) = dataset {
        let test = super::train::test_images(&model, &model_path, &d, a.data.as_deref(), None)?;
        spikes(&model, &test, a.images, &d, &mut r);
    }
    Ok(r)
}

fn summary_rows(model: &Model, summary: &Option<Value>) -> Vec<(String, String)> {
    let i = &model.input;
    let mut rows = vec![
        (
            "architecture".to_string(),
            model
                .layers
                .iter()
                .map(spikeforge_model::arch::describe)
                .fold(
                    format!("{}x{}x{}", i.height, i.width, i.channels),
                    |a, l| a + "-" + &l,
                ),
        ),
        ("time steps".into(), model.time_steps.to_string()),
        ("coding".into(), format!("{:?}", model.coding())),
        ("pixel bits".into(), i.pixel_bits.to_string()),
        ("model sha256".into(), spikeforge_model::model_hash(model)),
    ];
    if let Some(s) = summary {
        for (k, label) in [
            ("dataset", "dataset"),
            ("epochs", "epochs"),
            ("train_images", "training images"),
            ("binary_layers", "binary layers (trained index)"),
            (
                "storage_saving_percent",
                "weight storage below full precision (%)",
            ),
            ("train_seconds", "training time (s)"),
        ] {
            if let Some(v) = s.get(k) {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
                    other => other.to_string(),
                };
                rows.push((label.into(), text));
            }
        }
    }
    rows
}

fn log_lines(path: &Path) -> Result<Vec<Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not JSON", path.display(), k + 1))
        })
        .collect()
}

/// The log's epochs; its layer indices (0-based over the trained layers, which are the
/// model's layers) become the model's layer names.
fn epochs(path: &Path, names: &[String]) -> Result<Vec<report::Epoch>> {
    let num = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
    let name = |i: usize| {
        names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("layer {i}"))
    };
    Ok(log_lines(path)?
        .iter()
        .filter(|v| v.get("epoch").is_some())
        .map(|v| report::Epoch {
            epoch: num(v, "epoch") as u32,
            train_acc: num(v, "train_acc"),
            val_acc: num(v, "val_acc"),
            train_loss: num(v, "train_loss"),
            val_loss: num(v, "val_loss"),
            precision: v
                .get("precision")
                .and_then(|p| p.as_array())
                .map(|p| {
                    p.iter()
                        .enumerate()
                        .map(|(i, x)| format!("{} {}", name(i), x.as_str().unwrap_or("?")))
                        .collect()
                })
                .unwrap_or_default(),
            decisions: v
                .get("decisions")
                .and_then(|d| d.as_array())
                .map(|d| {
                    d.iter()
                        .map(|x| {
                            format!(
                                "{}: {} → {} ({})",
                                name(x.get("layer").and_then(|l| l.as_u64()).unwrap_or(0) as usize),
                                x.get("before").and_then(|b| b.as_str()).unwrap_or("?"),
                                x.get("after").and_then(|b| b.as_str()).unwrap_or("?"),
                                x.get("reason").and_then(|b| b.as_str()).unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// The trainer's spike rates of its last epoch, per spiking layer.
fn epochs_spike_rates(path: &Path) -> Result<Vec<f64>> {
    Ok(log_lines(path)?
        .iter()
        .rev()
        .find_map(|v| v.get("spike_rates").and_then(|r| r.as_array()).cloned())
        .map(|r| r.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default())
}

fn rtl(path: &Path) -> Result<Option<(usize, usize, f64)>> {
    Ok(read_json(path)?.and_then(|v| {
        let n = v.get("images")?.as_u64()? as usize;
        let exact = v.get("bit_exact")?.as_u64()? as usize;
        let acc = v.get("rtl_accuracy")?.as_f64()?;
        Some((n, exact, acc))
    }))
}

fn layers(model: &Model, training_rates: &[f64]) -> Vec<report::Layer> {
    let geo = spikeforge_model::geometry::model_geometry(model);
    let mut spiking = 0;
    model
        .layers
        .iter()
        .zip(&geo)
        .map(|(l, g)| {
            let n = (g.fan_in * g.synaptic.channels as usize) as u64;
            let bits = match &l.weights {
                Weights::Binary { .. } => 1,
                Weights::Integer { bits, .. } => *bits as u64,
            };
            let spikes = l.neuron.spikes();
            let training_spike_rate = spikes
                .then(|| training_rates.get(spiking).copied())
                .flatten();
            spiking += spikes as usize;
            let s = g.output;
            report::Layer {
                name: l.name.clone(),
                op: super::inspect::op_name(l),
                shape: format!("{}x{}x{}", s.height, s.width, s.channels),
                weight_bits: n * bits,
                full_precision_bits: n * bits.max(8),
                spike_rate: None,
                training_spike_rate,
            }
        })
        .collect()
}

/// Spike rates over `n` test images and the raster of the first, into `r`.
fn spikes(
    model: &Model,
    test: &spikeforge_trainer::Split,
    n: usize,
    dataset: &str,
    r: &mut report::Report,
) {
    let golden = Golden::new(model);
    let len = golden.image_len();
    let n = n.min(test.len());
    let mut nonzero = vec![0usize; model.layers.len()];
    let mut total = vec![0usize; model.layers.len()];
    for k in 0..n {
        let inf = golden.run_one(&test.images[k * len..(k + 1) * len], true);
        let trace = inf.trace.unwrap_or_default();
        for (i, t) in trace.iter().enumerate() {
            nonzero[i] += t.values.iter().filter(|&&v| v != 0).count();
            total[i] += t.values.len();
        }
        if k == 0 {
            r.raster_caption = format!(
                "{dataset} test image 0 (label {}, golden model's class {}) through every layer; spike maps per channel, a tile per channel and step.",
                test.labels[0], inf.class
            );
            r.rasters = model
                .layers
                .iter()
                .zip(&trace)
                .filter(|(l, _)| l.neuron.spikes())
                .map(|(l, t)| report::Raster {
                    name: l.name.clone(),
                    height: t.shape.height as usize,
                    width: t.shape.width as usize,
                    channels: t.shape.channels as usize,
                    steps: t.steps as usize,
                    values: t.values.clone(),
                })
                .collect();
        }
    }
    for ((layer, l), (nz, t)) in r
        .layers
        .iter_mut()
        .zip(&model.layers)
        .zip(nonzero.iter().zip(&total))
    {
        if l.neuron.spikes() && *t > 0 {
            layer.spike_rate = Some(*nz as f64 / *t as f64);
        }
    }
    r.summary
        .push(("images for the spike rates".into(), n.to_string()));
}

/// The first flow report under DIR/build or DIR/rtl/build.
fn synthesis(dir: &Path) -> Result<Option<report::Synthesis>> {
    for base in [dir.join("build"), dir.join("rtl").join("build")] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("report.json")))
            .filter(|p| p.exists())
            .collect();
        paths.sort();
        if let Some(p) = paths.first() {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let rep: spikeforge_flow::Report = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a flow report", p.display()))?;
            return Ok(Some(synthesis_rows(&rep)));
        }
    }
    Ok(None)
}

fn synthesis_rows(r: &spikeforge_flow::Report) -> report::Synthesis {
    let mut rows = vec![
        ("device".to_string(), format!("{} ({})", r.target, r.part)),
        ("top".into(), r.top.clone()),
        (
            "logic (Yosys)".into(),
            format!("{} of {}", r.synthesised.luts, r.budget.luts),
        ),
        ("flip-flops".into(), r.synthesised.ffs.to_string()),
        (
            "block RAMs".into(),
            format!("{} of {}", r.synthesised.ram_blocks, r.budget.ram_blocks),
        ),
        (
            "DSPs".into(),
            format!("{} of {}", r.synthesised.dsps, r.budget.dsps),
        ),
        ("cycles per image".into(), r.cycles_per_image.to_string()),
        ("clock constraint".into(), format!("{} MHz", r.clock_mhz)),
    ];
    if let Some(p) = &r.placed {
        rows.push((
            "logic (placed)".into(),
            format!(
                "{} of {} ({:.1} %)",
                p.logic.0,
                p.logic.1,
                r.logic_percent()
            ),
        ));
        rows.push(("Fmax".into(), format!("{:.2} MHz", p.fmax_mhz)));
    }
    if let Some(ips) = r.images_per_s {
        rows.push(("images/s at Fmax".into(), format!("{ips:.0}")));
    }
    if let Some(b) = &r.bitstream {
        rows.push(("bitstream".into(), b.clone()));
    }
    report::Synthesis {
        target: format!(
            "{}{}",
            r.name,
            r.board
                .as_ref()
                .map_or(String::new(), |b| format!(" (board {b})"))
        ),
        rows,
    }
}
