//! `spikeforge train`: trains an ALBSNN on a dataset and exports the integer hardware model,
//! reporting float, integer (golden = RTL) accuracy and weight storage. The run itself is
//! `spikeforge_trainer::session`; this file maps the flags onto its options and shows progress.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use spikeforge_trainer::ale::{Decision, Metric};
use spikeforge_trainer::data::{self, Dataset};
use spikeforge_trainer::distill::TeacherReport;
use spikeforge_trainer::events::Bins;
use spikeforge_trainer::net::Precision;
use spikeforge_trainer::ops::{ResetKind, Surrogate};
use spikeforge_trainer::optim::OptimKind;
pub use spikeforge_trainer::session::Summary;
use spikeforge_trainer::session::{self, RunOptions, SessionObserver, Trained};
use spikeforge_trainer::swa::SwaLog;
use spikeforge_trainer::train::{BwoKind, Checkpoint, EpochLog, Observer, TrainOptions};
use spikeforge_trainer::Split;

/// Where the data comes from.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Dataset: fashion-mnist, mnist, cifar10, cifar100, or an event set (nmnist,
    /// converted-mnist, dvs-gesture, cifar10-dvs).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Directory of the dataset's files (default: where its package installs them).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Loads a dataset behind a spinner, with a message that says how to get it when it is
/// missing.
pub fn load_dataset(name: &str, dir: Option<&Path>) -> Result<Dataset, data::DataError> {
    super::with_spinner(format!("reading {name}"), || data::load(name, dir))
}

/// `evaluate` (export and summary on `n` test images) behind a spinner.
pub fn evaluating(
    n: usize,
    evaluate: impl FnOnce() -> Result<Summary, session::SessionError>,
) -> Result<Summary> {
    let msg = format!("evaluating the float and the integer model on {n} test images");
    Ok(super::with_spinner(msg, evaluate)?)
}

impl DataArgs {
    /// Loads the dataset.
    pub fn load(&self) -> Result<Dataset> {
        Ok(load_dataset(&self.dataset, self.data.as_deref())?)
    }
}

/// The first `limit` test images of a dataset, checked against the model's input shape.
pub fn test_images(
    model: &spikeforge_model::Model,
    model_path: &Path,
    dataset: &str,
    dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<Split> {
    test_samples(model, model_path, dataset, dir, limit, BinsArg::Time)
}

/// [`test_images`], an event set framed in `bins` (what the model's training used).
pub fn test_samples(
    model: &spikeforge_model::Model,
    model_path: &Path,
    dataset: &str,
    dir: Option<&Path>,
    limit: Option<usize>,
    bins: BinsArg,
) -> Result<Split> {
    let what = format!("reading the {dataset} test samples");
    Ok(super::with_spinner(what, || {
        session::model_test_split(model, model_path, dataset, dir, limit, bins.into())
    })?)
}

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Architecture (`spikeforge random-model --help` has the notation); layers without a
    /// weight suffix are the estimator's to decide. Default: one per dataset.
    #[arg(long)]
    pub arch: Option<String>,
    /// Time steps T (default 1).
    #[arg(long, value_parser = super::parse::time_steps())]
    pub time_steps: Option<u32>,
    /// Epochs (default 20). With --resume: the new length of the run's schedule, longer or
    /// shorter, but not below the epochs already done (default: the checkpoint's).
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub epochs: Option<usize>,
    /// Mini-batch size (default 64).
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub batch: Option<usize>,
    /// Train on the first N training images only (quick experiments).
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// Validation images held out from the end of the training set (for the plateau and the
    /// estimator's calibration); default 5000, or a tenth of --limit; at least 1.
    #[arg(long)]
    pub val: Option<usize>,
    /// Output directory: checkpoint, log, plot, model.
    #[arg(long, default_value = "out/train")]
    pub out: PathBuf,
    /// Continue the run in --out from its checkpoint, with its settings (--epochs and --lr may
    /// change).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs of this invocation (the schedule still plans --epochs;
    /// `--resume` continues from the checkpoint).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Seed (default 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Optimiser (default adam).
    #[arg(long, value_enum)]
    pub optimizer: Option<Optim>,
    /// Peak learning rate (cosine schedule to zero, or to --swa-lr; default 2e-3 for Adam, 0.1
    /// for SGD).
    #[arg(long, value_parser = super::parse::rate)]
    pub lr: Option<f32>,
    /// SGD momentum, 0 ≤ μ < 1 (default 0.9).
    #[arg(long, value_parser = super::parse::below_one)]
    pub momentum: Option<f32>,
    /// Decoupled weight decay, ≥ 0 (default 0).
    #[arg(long, value_parser = super::parse::non_negative)]
    pub weight_decay: Option<f32>,
    /// LIF threshold θ (A1; default 0.75).
    #[arg(long)]
    pub vth: Option<f32>,
    /// LIF decay τ: 1, 2^-k or 1 − 2^-k (A1; default 0.25).
    #[arg(long)]
    pub tau: Option<f32>,
    /// Reset after a spike (A1; default hard).
    #[arg(long, value_enum)]
    pub reset: Option<ResetArg>,
    /// Fire on `u ≥ θ` instead of STBP's `u > θ`.
    #[arg(long)]
    pub fire_ge: bool,
    /// Surrogate gradient shape (A2; default rectangular).
    #[arg(long, value_enum)]
    pub surrogate: Option<SurrogateArg>,
    /// Surrogate half-width a (A2; default 0.5).
    #[arg(long)]
    pub surrogate_width: Option<f32>,
    /// Accuracy-loss estimator metric (A4; default weight).
    #[arg(long, value_enum)]
    pub ale_metric: Option<MetricArg>,
    /// Estimator threshold ε (A5; default per metric: 0.35 for E1/E2, 0.005 for accuracy).
    #[arg(long, value_parser = super::parse::margin)]
    pub ale_threshold: Option<f64>,
    /// Estimator hysteresis δ (A5; default 0.05).
    #[arg(long, value_parser = super::parse::margin)]
    pub ale_hysteresis: Option<f64>,
    /// Largest fraction of candidate layers that may be binary, smallest error first; a binary
    /// layer gives its place up only to one better by more than the hysteresis (A5; default 1).
    #[arg(long, value_parser = super::parse::fraction)]
    pub ale_cap: Option<f64>,
    /// Re-evaluate the estimator every N epochs (default 1).
    #[arg(long)]
    pub ale_every: Option<usize>,
    /// Let the estimator decide the first and last layers too (A6 keeps them full precision).
    #[arg(long)]
    pub ale_first_last: bool,
    /// Decide only at epoch ends, not also on the initial weights (full-precision-first).
    #[arg(long)]
    pub ale_no_start: bool,
    /// Stop re-deciding once BWO starts (default: true). Also applies to a `--resume`d run when
    /// given, so that a checkpoint from before the option can take it.
    #[arg(long)]
    pub ale_freeze_with_bwo: Option<bool>,
    /// Binary weight optimisation (A7; default alpha).
    #[arg(long, value_enum)]
    pub bwo: Option<BwoArg>,
    /// Epochs without validation improvement before BWO starts (default 10). Also applies to a
    /// `--resume`d run when given: 0 there starts BWO (and so freezes the binary set) at the
    /// end of the next epoch.
    #[arg(long)]
    pub bwo_patience: Option<usize>,
    /// Last epochs trained with fake-quantised integer weights (default 2).
    #[arg(long)]
    pub qat_epochs: Option<usize>,
    /// Before each validation and the export, re-estimate BatchNorm statistics layer by layer
    /// on this many (unaugmented) training images; 0 keeps the running averages of training
    /// (default 5000).
    #[arg(long)]
    pub bn_recalibrate: Option<usize>,
    /// Random shifts of up to this many pixels (default: 4 for CIFAR, else 0).
    #[arg(long)]
    pub shift: Option<usize>,
    /// Random horizontal flips (default: on for CIFAR).
    #[arg(long)]
    pub flip: Option<bool>,
    /// Random erasing: the probability that a training image has a rectangle of 2–40 % of its
    /// area overwritten with noise (default 0: off). Also applies to a `--resume`d run when given.
    #[arg(long, value_parser = super::parse::probability)]
    pub erase: Option<f32>,
    /// Bits per pixel of a still image the network sees, 1..=8 (default 8): it takes each
    /// pixel's top bits, and so do the exported model and its hardware (narrower input lanes;
    /// FINN's `tfc_w1a1` takes 1-bit pixels).
    #[arg(long)]
    pub input_bits: Option<u32>,
    /// Label smoothing ε of the training loss, 0 ≤ ε < 1 (default 0: plain cross-entropy).
    /// Also applies to a `--resume`d run when given.
    #[arg(long, value_parser = super::parse::below_one)]
    pub label_smoothing: Option<f32>,
    /// Stochastic weight averaging: the cosine schedule anneals to --swa-lr, the last N epochs
    /// train at that flat rate, and the run ends with the mean of their end networks, its
    /// BatchNorm statistics re-estimated (0: off). Also applies to a `--resume`d run when
    /// given: `--resume --epochs 180 --swa-epochs 20` adds 20 averaged epochs to a finished
    /// 160-epoch run.
    #[arg(long)]
    pub swa_epochs: Option<usize>,
    /// The flat learning rate of --swa-epochs (default: a tenth of --lr). Also applies to a
    /// `--resume`d run when given.
    #[arg(long, value_parser = super::parse::rate)]
    pub swa_lr: Option<f32>,
    /// Knowledge distillation: a checkpoint of an earlier run (or its --out directory) whose
    /// class probabilities the network learns from besides the labels; repeat for an ensemble
    /// (their mean). The run records each file's SHA-256 and refuses a changed one on --resume.
    #[arg(long, value_name = "CKPT")]
    pub teacher: Vec<PathBuf>,
    /// With --teacher: λ, the weight of the teachers' term in the loss, 0 ≤ λ ≤ 1 (default 0.5).
    #[arg(long, value_parser = super::parse::weight)]
    pub distill_weight: Option<f32>,
    /// With --teacher: τ, the softmax temperature of the teachers' term (default 1).
    #[arg(long, value_parser = super::parse::temperature)]
    pub distill_temperature: Option<f32>,
    /// Event sets: how a recording is cut into the T steps, equal time bins or equal event
    /// counts (default time).
    #[arg(long, value_enum)]
    pub bins: Option<BinsArg>,
    /// Event sets: the largest count a frame pixel keeps (default 1: binary frames); the
    /// model's input bits follow from it.
    #[arg(long)]
    pub clip: Option<u8>,
    /// Event sets: spatial down-sampling, a frame pixel gathers N × N sensor pixels (default 1
    /// on the 34 × 34 sets, 4 on DVS128 Gesture and CIFAR10-DVS).
    #[arg(long)]
    pub factor: Option<u16>,
    /// Hide the per-epoch progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How an event recording is cut into the T steps.
#[derive(clap::ValueEnum, Clone, Copy, Default)]
pub enum BinsArg {
    /// Equal spans of time.
    #[default]
    Time,
    /// Equal numbers of events.
    Count,
}

impl From<BinsArg> for Bins {
    fn from(b: BinsArg) -> Bins {
        match b {
            BinsArg::Time => Bins::Time,
            BinsArg::Count => Bins::Count,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum Optim {
    Adam,
    Sgd,
}
#[derive(clap::ValueEnum, Clone, Copy)]
pub enum ResetArg {
    Hard,
    Subtract,
}
#[derive(clap::ValueEnum, Clone, Copy)]
pub enum SurrogateArg {
    Rectangular,
    Triangle,
    Sigmoid,
}
#[derive(clap::ValueEnum, Clone, Copy)]
pub enum MetricArg {
    Weight,
    Output,
    Accuracy,
}
#[derive(clap::ValueEnum, Clone, Copy)]
pub enum BwoArg {
    Alpha,
    Direct,
    Off,
}

impl Args {
    /// The run these flags ask for.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            train: self.train_options(),
            resume: self.resume,
            data_dir: self.data.data.clone(),
            out: self.out.clone(),
            stop_after: self.stop_after,
        }
    }

    /// The flags as the trainer's options, one to one; the defaults are the trainer's.
    fn train_options(&self) -> TrainOptions {
        TrainOptions {
            dataset: self.data.dataset.clone(),
            arch: self.arch.clone(),
            time_steps: self.time_steps.map(|t| t as usize),
            epochs: self.epochs,
            batch: self.batch,
            limit: self.limit,
            val: self.val,
            relu: false,
            seed: self.seed,
            optimizer: self.optimizer.map(|o| match o {
                Optim::Adam => OptimKind::Adam,
                Optim::Sgd => OptimKind::Sgd,
            }),
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            vth: self.vth,
            tau: self.tau,
            reset: self.reset.map(|r| match r {
                ResetArg::Hard => ResetKind::Hard,
                ResetArg::Subtract => ResetKind::Subtract,
            }),
            fire_ge: self.fire_ge,
            surrogate: self.surrogate.map(|s| match s {
                SurrogateArg::Rectangular => Surrogate::Rectangular,
                SurrogateArg::Triangle => Surrogate::Triangle,
                SurrogateArg::Sigmoid => Surrogate::Sigmoid,
            }),
            surrogate_width: self.surrogate_width,
            ale_metric: self.ale_metric.map(|m| match m {
                MetricArg::Weight => Metric::Weight,
                MetricArg::Output => Metric::Output,
                MetricArg::Accuracy => Metric::Accuracy,
            }),
            ale_threshold: self.ale_threshold,
            ale_hysteresis: self.ale_hysteresis,
            ale_cap: self.ale_cap,
            ale_every: self.ale_every,
            ale_first_last: self.ale_first_last,
            ale_no_start: self.ale_no_start,
            ale_freeze_with_bwo: self.ale_freeze_with_bwo,
            bwo: self.bwo.map(|b| match b {
                BwoArg::Alpha => BwoKind::Alpha,
                BwoArg::Direct => BwoKind::Direct,
                BwoArg::Off => BwoKind::Off,
            }),
            bwo_patience: self.bwo_patience,
            qat_epochs: self.qat_epochs,
            bn_recalibrate: self.bn_recalibrate,
            shift: self.shift,
            flip: self.flip,
            erase: self.erase,
            input_bits: self.input_bits,
            label_smoothing: self.label_smoothing,
            swa_epochs: self.swa_epochs,
            swa_lr: self.swa_lr,
            teachers: self.teacher.clone(),
            distill_weight: self.distill_weight,
            distill_temperature: self.distill_temperature,
            bins: self.bins.map(Bins::from),
            clip: self.clip,
            factor: self.factor,
        }
    }
}

/// Progress bar per epoch and a line per epoch.
struct Console {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Observer for Console {
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f32, acc: f32) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(steps as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix:>3} {bar:30} {pos}/{len} batches ({per_sec}, eta {eta}) {msg}",
                )
                .expect("a valid template"),
            );
            b.set_prefix(epoch.to_string());
            b
        });
        bar.set_position(step as u64);
        if step.is_multiple_of(10) || step == steps {
            bar.set_message(format!("loss {loss:.4} acc {:.2} %", acc * 100.0));
        }
    }

    fn start(&mut self, decisions: &[Decision]) {
        for d in decisions {
            println!(
                "  estimator (initial weights): layer {} → {:?} ({})",
                d.layer + 1,
                d.after,
                d.reason
            );
        }
    }

    fn epoch(&mut self, e: &EpochLog) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let binary: Vec<String> = e
            .precision
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == Precision::Binary)
            .map(|(l, _)| (l + 1).to_string())
            .collect();
        println!(
            "epoch {:>3}: lr {:.2e}  train loss {:.4} acc {:.2} %  val loss {:.4} acc {:.2} %  binary layers [{}]{}{}  {:.1} s",
            e.epoch,
            e.lr,
            e.train_loss,
            e.train_acc * 100.0,
            e.val_loss,
            e.val_acc * 100.0,
            binary.join(","),
            if e.bwo { "  BWO" } else { "" },
            if e.fake_quant { "  QAT" } else { "" },
            e.seconds
        );
        for d in e.decisions.iter().filter(|d| d.before != d.after) {
            println!(
                "  estimator: layer {} {:?} → {:?} ({})",
                d.layer + 1,
                d.before,
                d.after,
                d.reason
            );
        }
    }

    fn teachers(&mut self, r: &TeacherReport) {
        let alone: Vec<String> = r
            .accuracy
            .iter()
            .map(|a| format!("{:.2} %", a * 100.0))
            .collect();
        println!(
            "teachers' validation accuracy: {} alone, {:.2} % as the ensemble the network learns from",
            alone.join(", "),
            r.ensemble_accuracy * 100.0
        );
    }

    fn averaged(&mut self, s: &SwaLog) {
        let (first, last) = (s.epochs.first(), s.epochs.last());
        println!(
            "weight average of epochs {}–{} ({} networks), BatchNorm re-estimated: val loss {:.4} acc {:.2} % (the last epoch alone: {:.2} %)",
            first.unwrap_or(&0),
            last.unwrap_or(&0),
            s.epochs.len(),
            s.val_loss,
            s.val_acc * 100.0,
            s.last_val_acc * 100.0
        );
    }
}

impl SessionObserver for Console {
    fn opening(&mut self, ck: &Checkpoint, ds: &Dataset, train: usize, val: usize) {
        println!(
            "train: {} on {} ({train} train / {val} validation images), T = {}, {} epochs, batch {}, {} thread(s)",
            ck.config.arch,
            ds.name,
            ck.config.time_steps,
            ck.config.epochs,
            ck.config.batch,
            rayon::current_num_threads()
        );
        if let Some(d) = &ck.config.distill {
            println!(
                "distilling from {} teacher(s), λ = {}, τ = {}: {}",
                d.teachers.len(),
                d.weight,
                d.temperature,
                d.teachers
                    .iter()
                    .map(|t| t.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

/// Trains per the options with a progress bar and a line per epoch.
pub fn train_run(o: &RunOptions, quiet: bool) -> Result<Trained> {
    let mut console = Console { bar: None, quiet };
    let load = |c: &spikeforge_trainer::TrainConfig, dir: Option<&Path>| {
        super::with_spinner(format!("reading {}", c.dataset), || {
            session::load_data(c, dir)
        })
    };
    let result = session::train_run(o, load, &mut console);
    if let Some(b) = console.bar.take() {
        b.abandon();
    }
    let (trained, warning) = result?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Ok(trained)
}

/// Exports and evaluates a finished run behind a spinner.
pub fn finish(trained: &Trained, model_path: &Path) -> Result<Summary> {
    evaluating(trained.ds.test.len(), || trained.finish(model_path))
}

/// Prints a summary.
pub fn print_summary(s: &Summary) {
    println!(
        "test accuracy on {} images: float {:.2} %, integer (golden model = RTL) {:.2} %, gap {:+.2} points",
        s.test_images,
        s.float_accuracy * 100.0,
        s.integer_accuracy * 100.0,
        s.gap_points
    );
    println!(
        "weights: {} bits, {:.1} % below all-full-precision ({} bits); binary layers {:?}; {} epochs in {:.0} s",
        s.weight_bits, s.storage_saving_percent, s.weight_bits_all_full_precision, s.binary_layers, s.epochs, s.train_seconds
    );
    println!("model: {}", s.model.display());
}

pub fn run(a: Args) -> Result<()> {
    let o = a.run_options();
    let trained = train_run(&o, a.quiet)?;
    let s = finish(&trained, &a.out.join("model.json"))?;
    print_summary(&s);
    let path = a.out.join("summary.json");
    session::write_summary(&s, &path).context("writing the summary")?;
    println!(
        "log: {}, plot: {}, checkpoint: {}",
        a.out.join("log.jsonl").display(),
        a.out.join("training.png").display(),
        a.out.join("checkpoint.json").display()
    );
    Ok(())
}
