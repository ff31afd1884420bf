//! `spikeforge convert`: trains (or reuses) a ReLU ANN, converts it to a TSA-coded spiking
//! network with CSS (methods-spec §2.6), and exports the integer hardware model; reports the
//! ANN, the converted float SNN and the integer model (golden = RTL) side by side, for one T
//! or a sweep of T (the accuracy-vs-T benchmark, written as JSON and Markdown).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use spikeforge_model::ir::NegativeSpikes;
use spikeforge_trainer::convert::{self, CssConfig};
use spikeforge_trainer::data::Dataset;
use spikeforge_trainer::net::HiddenNeuron;
use spikeforge_trainer::session::RunOptions;
use spikeforge_trainer::train::TrainOptions;
use spikeforge_trainer::{data, export, train, Checkpoint, Net};

/// The default ANN per dataset: the demo's network with average pooling, INT8 layers.
pub fn default_arch(dataset: &str) -> &'static str {
    match dataset {
        "cifar10" => "32x32x3-32C3i8-AP2-64C3i8-AP2-128C3i8-10C1i8-GAP",
        "cifar100" => "32x32x3-32C3i8-AP2-64C3i8-AP2-128C3i8-100C1i8-GAP",
        _ => "28x28x1-16C3i8-AP2-32C3i8-AP2-64C3i8-10C1i8-GAP",
    }
}

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub data: super::train::DataArgs,
    /// ANN architecture (average pooling `AP2`; `MP2` cannot be converted). Layers without a
    /// weight suffix are the accuracy-loss estimator's to decide (binary layers stay
    /// XNOR/popcount layers in the TSA model). Default: one per dataset.
    #[arg(long)]
    pub arch: Option<String>,
    /// ANN training epochs.
    #[arg(long, default_value_t = 10, value_parser = super::parse::at_least_one)]
    pub epochs: usize,
    /// Peak learning rate of the ANN (Adam, cosine schedule).
    #[arg(long, default_value_t = 3e-3, value_parser = super::parse::rate)]
    pub lr: f32,
    /// Train the ANN on the first N training images only.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// Random shift augmentation of the ANN's training images, in pixels.
    #[arg(long, default_value_t = 0)]
    pub shift: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Reuse the ANN already trained in `--out` (its `ann/checkpoint.json`).
    #[arg(long)]
    pub reuse_ann: bool,
    /// Time steps T of the exported TSA model (register C10).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub time_steps: u32,
    /// Also evaluate these T (comma-separated), e.g. `2,4,6,8,12`: writes `sweep.json` and
    /// `sweep.md`.
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<u32>,
    /// Percentile of non-zero activations that becomes each layer's threshold (C6).
    #[arg(long, default_value_t = 99.9)]
    pub percentile: f64,
    /// One percentile per layer (methods-spec §2.6.4) instead of one per channel. Per
    /// channel is the default: at T = 6 it loses 0.3 points on Fashion-MNIST where per layer
    /// loses 0.8 (a layer feeding a binary layer keeps one λ either way).
    #[arg(long)]
    pub per_layer: bool,
    /// Silent steps of hidden layers after the first (C2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=2))]
    pub silent: u32,
    /// Let neurons fire −1 before their first +1 (no ReLU guard; C4).
    #[arg(long)]
    pub no_guard: bool,
    /// Calibration images (from the training set) for the percentiles.
    #[arg(long, default_value_t = 1000, value_parser = super::parse::at_least_one)]
    pub calibration: usize,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub test_limit: Option<usize>,
    /// No per-epoch progress bar while training the ANN (logs only).
    #[arg(long)]
    pub quiet: bool,
    /// Output directory: `ann/` (checkpoint, log, plot), `model.json`, `summary.json`.
    #[arg(long, default_value = "out/convert")]
    pub out: PathBuf,
}

/// Accuracy of one T.
#[derive(serde::Serialize, Clone)]
pub struct Row {
    pub time_steps: u32,
    pub ann: f64,
    pub float_snn: f64,
    pub integer: f64,
    /// ANN − integer, in percentage points.
    pub loss_points: f64,
}

/// The ANN's run: the trainer's defaults but for what `convert` owns.
fn ann_run(a: &Args, arch: &str) -> RunOptions {
    RunOptions {
        train: TrainOptions {
            arch: Some(arch.into()),
            epochs: Some(a.epochs),
            limit: a.limit,
            seed: Some(a.seed),
            lr: Some(a.lr),
            shift: Some(a.shift),
            relu: true,
            ..TrainOptions::new(&a.data.dataset)
        },
        resume: false,
        data_dir: a.data.data.clone(),
        out: a.out.join("ann"),
        stop_after: None,
    }
}

pub fn run(a: Args) -> Result<()> {
    let arch = a
        .arch
        .clone()
        .unwrap_or_else(|| default_arch(&a.data.dataset).into());
    check_args(&a, &arch)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let (ck, ds) = trained_ann(&a, &arch)?;
    let mut net = ck.net.clone();
    let test = ds.test.take(a.test_limit.unwrap_or(usize::MAX));
    let bar = super::spinner(format!("evaluating the ANN on {} test images", test.len()));
    let ann = data::accuracy(&train::predict(&mut net, &test), &test.labels);
    bar.finish_and_clear();
    let calib = ds.train.take(a.calibration.max(1));
    let bar = super::spinner(format!(
        "normalising: {} percentile of activations on {} images",
        a.percentile,
        calib.len()
    ));
    let lambdas = convert::lambdas(&mut net, &calib.images, a.percentile, !a.per_layer);
    bar.finish_and_clear();
    println!(
        "thresholds λ per hidden layer ({} percentile{}): {:?}",
        a.percentile,
        if a.per_layer {
            ""
        } else {
            ", per channel: mean"
        },
        lambdas
            .iter()
            .map(|l| format!("{:.3}", l.iter().sum::<f32>() / l.len().max(1) as f32))
            .collect::<Vec<_>>()
    );
    let mut rows = Vec::new();
    let mut exported = None;
    for t in time_steps(&a) {
        let (row, model) = evaluate_t(&net, &lambdas, css_config(&a, t), &ds.name, &test, ann)?;
        println!(
            "T = {t:>2}: ANN {:.2} %, float SNN {:.2} %, integer (golden = RTL) {:.2} %, loss {:+.2} points",
            row.ann * 100.0,
            row.float_snn * 100.0,
            row.integer * 100.0,
            row.loss_points
        );
        if t == a.time_steps {
            exported = Some((row.clone(), model));
        }
        rows.push(row);
    }
    let (row, model) = exported.expect("the exported T is in the list");
    let model_path = a.out.join("model.json");
    spikeforge_model::save(&model, &model_path)?;
    let summary = serde_json::json!({
        "dataset": ds.name,
        "arch": arch,
        "ann_epochs": ck.epoch,
        "test_images": test.len(),
        "percentile": a.percentile,
        "per_channel": !a.per_layer,
        "lambdas": lambdas,
        "exported": row,
        "model": model_path,
    });
    write(
        &a.out.join("summary.json"),
        &serde_json::to_string_pretty(&summary)?,
    )?;
    if !a.sweep.is_empty() {
        write(
            &a.out.join("sweep.json"),
            &serde_json::to_string_pretty(&rows)?,
        )?;
        write(&a.out.join("sweep.md"), &markdown(&ds.name, &arch, &rows))?;
        print!("{}", markdown(&ds.name, &arch, &rows));
    }
    println!(
        "model: {} (T = {}, TSA-coded, {} test images)",
        model_path.display(),
        a.time_steps,
        test.len()
    );
    Ok(())
}

/// Refuses, before any training, an architecture CSS cannot express and options out of range.
fn check_args(a: &Args, arch: &str) -> Result<()> {
    convert::check_arch(arch)?;
    if let Some(t) = a.sweep.iter().find(|t| !(1..=32).contains(*t)) {
        bail!("--sweep {t}: T must be in 1..=32");
    }
    if !(0.0..=100.0).contains(&a.percentile) || a.percentile <= 0.0 {
        bail!("--percentile {} is not in (0, 100]", a.percentile);
    }
    Ok(())
}

/// The ReLU ANN: trained now, or with `--reuse-ann` the one an earlier run left in `--out`.
fn trained_ann(a: &Args, arch: &str) -> Result<(Checkpoint, Dataset)> {
    let run = ann_run(a, arch);
    if !a.reuse_ann {
        let t = super::train::train_run(&run, a.quiet)?;
        return Ok((t.ck, t.ds));
    }
    let path = run.out.join("checkpoint.json");
    let ck = Checkpoint::load(&path).context("--reuse-ann needs an ANN trained in --out")?;
    let relu = match ck.net.neuron {
        HiddenNeuron::Relu => true,
        HiddenNeuron::Lif => false,
    };
    if !relu || ck.config.arch != arch {
        bail!(
            "{}: not a ReLU ANN of `{arch}` (found `{}`)",
            path.display(),
            ck.config.arch
        );
    }
    Ok((ck, a.data.load()?))
}

/// The time steps to evaluate, ascending: the sweep's and the exported model's.
fn time_steps(a: &Args) -> Vec<u32> {
    let mut ts = a.sweep.clone();
    if !ts.contains(&a.time_steps) {
        ts.push(a.time_steps);
    }
    ts.sort_unstable();
    ts
}

/// The conversion's settings at `t` time steps.
fn css_config(a: &Args, t: u32) -> CssConfig {
    CssConfig {
        time_steps: t,
        percentile: a.percentile,
        silent: a.silent,
        negative: if a.no_guard {
            NegativeSpikes::Always
        } else {
            NegativeSpikes::AfterPositive
        },
    }
}

fn write(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Converts at one T and measures the float SNN and the integer model.
fn evaluate_t(
    net: &Net,
    lambdas: &[Vec<f32>],
    config: CssConfig,
    dataset: &str,
    test: &spikeforge_trainer::Split,
    ann: f64,
) -> Result<(Row, spikeforge_model::Model)> {
    let t = config.time_steps;
    let conv = convert::convert(net, lambdas, config);
    let name = format!("{}_css_t{t}", dataset.replace('-', "_"));
    let model = convert::to_model(net, &conv, &name)?;
    let bar = super::spinner(format!(
        "T = {t}: float SNN and integer model on {} test images",
        test.len()
    ));
    let float = data::accuracy(
        &convert::float_classes(net, &conv, &test.images),
        &test.labels,
    );
    let int = data::accuracy(&export::golden_classes(&model, &test.images), &test.labels);
    bar.finish_and_clear();
    Ok((
        Row {
            time_steps: t,
            ann,
            float_snn: float,
            integer: int,
            loss_points: (ann - int) * 100.0,
        },
        model,
    ))
}

fn markdown(dataset: &str, arch: &str, rows: &[Row]) -> String {
    let mut s = format!(
        "\n{dataset}, `{arch}`: accuracy (%) vs T\n\n| T | ANN | float SNN | integer (= RTL) | loss (points) |\n|---|---|---|---|---|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:+.2} |\n",
            r.time_steps,
            r.ann * 100.0,
            r.float_snn * 100.0,
            r.integer * 100.0,
            r.loss_points
        ));
    }
    s
}
