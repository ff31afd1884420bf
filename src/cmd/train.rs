//! `spikeforge train`: trains an ALBSNN on a dataset and exports the integer hardware model,
//! reporting float, integer (golden = RTL) accuracy and weight storage.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use spikeforge_trainer::ale::{AleConfig, Decision, Metric};
use spikeforge_trainer::data::{self, Dataset};
use spikeforge_trainer::distill::{self, DistillConfig, TeacherFile, TeacherReport};
use spikeforge_trainer::export;
use spikeforge_trainer::net::Precision;
use spikeforge_trainer::ops::{LifConfig, ResetKind, Surrogate};
use spikeforge_trainer::optim::OptimKind;
use spikeforge_trainer::swa::SwaLog;
use spikeforge_trainer::train::{
    self, BwoKind, Checkpoint, EpochLog, Observer, SplitConfig, TrainConfig,
};
use spikeforge_trainer::Split;

/// The default architecture per dataset (methods-spec §1.4). Fashion-MNIST gets the reference
/// layer list with sum pooling (`AP2`): at T = 1 a max-pooled spike map is the OR of four spikes,
/// a sum-pooled one keeps their count, and the validation-selected model (docs/results.md, run 18) is a
/// sum-pooling run; at half width the network underfits (90.4 % after 20 epochs against 92.8 %
/// after 60 at full width). MNIST and CIFAR keep max pooling and are halved for 2 cores.
pub fn default_arch(dataset: &str) -> &'static str {
    match dataset {
        "fashion-mnist" => "28x28x1-64C3-AP2-128C3-AP2-256C3-10C3-GAP",
        "cifar10" => "32x32x3-64C3-128C3-MP2-256C3-MP2-256C3-10C3-GAP",
        "cifar100" => "32x32x3-64C3-128C3-MP2-256C3-MP2-256C3-100C3-GAP",
        _ => "28x28x1-32C3-MP2-64C3-MP2-128C3-10C3-GAP",
    }
}

/// Where the data comes from.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Dataset: fashion-mnist, mnist, cifar10, cifar100.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Directory of the dataset's files (default: where its package installs them).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// Loads the dataset, with a message that says how to get it when it is missing.
    pub fn load(&self) -> Result<Dataset> {
        let bar = super::spinner(format!("reading {}", self.dataset));
        let d = data::load(&self.dataset, self.data.as_deref());
        bar.finish_and_clear();
        Ok(d?)
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
    let data = DataArgs {
        dataset: dataset.into(),
        data: dir.map(Path::to_path_buf),
    };
    let test = data.load()?.test.take(limit.unwrap_or(usize::MAX));
    let i = &model.input;
    if (i.height, i.width, i.channels) != test.shape {
        bail!(
            "{}: the model takes {}×{}×{} images, the {dataset} test images are {}×{}×{}",
            model_path.display(),
            i.height,
            i.width,
            i.channels,
            test.shape.0,
            test.shape.1,
            test.shape.2
        );
    }
    Ok(test)
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
    /// Time steps T.
    #[arg(long, default_value_t = 1, value_parser = super::parse::time_steps())]
    pub time_steps: u32,
    /// Epochs (default 20). With --resume: the new length of the run's schedule, longer or
    /// shorter, but not below the epochs already done (default: the checkpoint's).
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64, value_parser = super::parse::at_least_one)]
    pub batch: usize,
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
    /// Train a ReLU ANN instead of a spiking network (`spikeforge convert` sets it).
    #[arg(skip)]
    pub relu: bool,
    /// Continue the run in --out from its checkpoint, with its settings (--epochs and --lr may
    /// change).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs of this invocation (the schedule still plans --epochs;
    /// `--resume` continues from the checkpoint).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: Optim,
    /// Peak learning rate (cosine schedule to zero, or to --swa-lr).
    #[arg(long, value_parser = super::parse::rate)]
    pub lr: Option<f32>,
    /// SGD momentum, 0 ≤ μ < 1.
    #[arg(long, default_value_t = 0.9, value_parser = super::parse::below_one)]
    pub momentum: f32,
    /// Decoupled weight decay, ≥ 0.
    #[arg(long, default_value_t = 0.0, value_parser = super::parse::non_negative)]
    pub weight_decay: f32,
    /// LIF threshold θ (A1).
    #[arg(long, default_value_t = 0.75)]
    pub vth: f32,
    /// LIF decay τ: 1, 2^-k or 1 − 2^-k (A1).
    #[arg(long, default_value_t = 0.25)]
    pub tau: f32,
    /// Reset after a spike (A1).
    #[arg(long, value_enum, default_value = "hard")]
    pub reset: ResetArg,
    /// Fire on `u ≥ θ` instead of STBP's `u > θ`.
    #[arg(long)]
    pub fire_ge: bool,
    /// Surrogate gradient shape (A2).
    #[arg(long, value_enum, default_value = "rectangular")]
    pub surrogate: SurrogateArg,
    /// Surrogate half-width a (A2).
    #[arg(long, default_value_t = 0.5)]
    pub surrogate_width: f32,
    /// Accuracy-loss estimator metric (A4).
    #[arg(long, value_enum, default_value = "weight")]
    pub ale_metric: MetricArg,
    /// Estimator threshold ε (A5; default per metric: 0.35 for E1/E2, 0.005 for accuracy).
    #[arg(long, value_parser = super::parse::margin)]
    pub ale_threshold: Option<f64>,
    /// Estimator hysteresis δ (A5).
    #[arg(long, default_value_t = 0.05, value_parser = super::parse::margin)]
    pub ale_hysteresis: f64,
    /// Largest fraction of candidate layers that may be binary, smallest error first; a binary
    /// layer gives its place up only to one better by more than the hysteresis (A5).
    #[arg(long, default_value_t = 1.0, value_parser = super::parse::fraction)]
    pub ale_cap: f64,
    /// Re-evaluate the estimator every N epochs.
    #[arg(long, default_value_t = 1)]
    pub ale_every: usize,
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
    /// Binary weight optimisation (A7).
    #[arg(long, value_enum, default_value = "alpha")]
    pub bwo: BwoArg,
    /// Epochs without validation improvement before BWO starts (default 10). Also applies to a
    /// `--resume`d run when given: 0 there starts BWO (and so freezes the binary set) at the
    /// end of the next epoch.
    #[arg(long)]
    pub bwo_patience: Option<usize>,
    /// Last epochs trained with fake-quantised integer weights.
    #[arg(long, default_value_t = 2)]
    pub qat_epochs: usize,
    /// Before each validation and the export, re-estimate BatchNorm statistics layer by layer
    /// on this many (unaugmented) training images; 0 keeps the running averages of training.
    #[arg(long, default_value_t = 5000)]
    pub bn_recalibrate: usize,
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
    /// Hide the per-epoch progress bar.
    #[arg(long)]
    pub quiet: bool,
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
    fn config(&self) -> Result<TrainConfig> {
        let name = data::known(&self.data.dataset)?.name;
        let arch = self
            .arch
            .clone()
            .unwrap_or_else(|| default_arch(name).to_string());
        let metric = match self.ale_metric {
            MetricArg::Weight => Metric::Weight,
            MetricArg::Output => Metric::Output,
            MetricArg::Accuracy => Metric::Accuracy,
        };
        let cifar = name.starts_with("cifar");
        let lif = LifConfig {
            vth: self.vth,
            tau: self.tau,
            reset: match self.reset {
                ResetArg::Hard => ResetKind::Hard,
                ResetArg::Subtract => ResetKind::Subtract,
            },
            strict: !self.fire_ge,
            surrogate: match self.surrogate {
                SurrogateArg::Rectangular => Surrogate::Rectangular,
                SurrogateArg::Triangle => Surrogate::Triangle,
                SurrogateArg::Sigmoid => Surrogate::Sigmoid,
            },
            width: self.surrogate_width,
        };
        spikeforge_trainer::export::leak_of(lif.tau, self.time_steps as usize)?;
        if !(lif.vth > 0.0 && lif.width > 0.0) {
            bail!("--vth and --surrogate-width must be positive");
        }
        let optimizer = match self.optimizer {
            Optim::Adam => OptimKind::Adam,
            Optim::Sgd => OptimKind::Sgd,
        };
        let lr = self.lr.unwrap_or(match optimizer {
            OptimKind::Adam => 2e-3,
            OptimKind::Sgd => 0.1,
        });
        Ok(TrainConfig {
            dataset: name.into(),
            arch,
            time_steps: self.time_steps as usize,
            epochs: self.epochs(),
            batch: self.batch,
            optimizer,
            lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            seed: self.seed,
            lif,
            ale: AleConfig {
                metric,
                threshold: self.ale_threshold.unwrap_or(metric.default_threshold()),
                hysteresis: self.ale_hysteresis,
                cap: self.ale_cap,
                every: self.ale_every.max(1),
                first_last: self.ale_first_last,
                at_start: !self.ale_no_start,
                freeze_with_bwo: self
                    .ale_freeze_with_bwo
                    .unwrap_or(AleConfig::default().freeze_with_bwo),
            },
            bwo: match self.bwo {
                BwoArg::Alpha => BwoKind::Alpha,
                BwoArg::Direct => BwoKind::Direct,
                BwoArg::Off => BwoKind::Off,
            },
            bwo_patience: self.bwo_patience.unwrap_or(10),
            // Conversion quantises on its own scale: no fake quantisation of the ANN.
            qat_epochs: if self.relu {
                0
            } else {
                self.qat_epochs.min(self.epochs())
            },
            shift: self.shift.unwrap_or(if cifar { 4 } else { 0 }),
            flip: self.flip.unwrap_or(cifar),
            erase: self.erase.unwrap_or(0.0),
            calibration: 512,
            relu: self.relu,
            // The conversion's ANN keeps the running averages its figures were measured with.
            bn_recalibrate: if self.relu { 0 } else { self.bn_recalibrate },
            label_smoothing: self.label_smoothing.unwrap_or(0.0),
            swa_epochs: self.swa_epochs.unwrap_or(0),
            swa_lr: self.swa_lr.unwrap_or(lr / 10.0),
            distill: self.distill()?,
            split: Some(SplitConfig {
                limit: self.limit,
                val: self.val,
            }),
        })
    }

    /// The distillation settings of a fresh run (`None` without --teacher).
    fn distill(&self) -> Result<Option<DistillConfig>> {
        if self.teacher.is_empty() {
            if self.distill_weight.is_some() || self.distill_temperature.is_some() {
                bail!("--distill-weight and --distill-temperature need --teacher");
            }
            return Ok(None);
        }
        if self.resume {
            bail!("--teacher cannot change on --resume: the run's checkpoint names its teachers");
        }
        let teachers = self
            .teacher
            .iter()
            .map(|p| TeacherFile::new(p))
            .collect::<Result<_, _>>()?;
        Ok(Some(DistillConfig {
            teachers,
            weight: self.distill_weight.unwrap_or(0.5),
            temperature: self.distill_temperature.unwrap_or(1.0),
        }))
    }
}

impl Args {
    /// The planned epochs (`--epochs`, default 20).
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(20)
    }

    /// The options that may change when a run resumes (besides `--epochs`): the schedule's
    /// peak, when BWO starts, regularisation and the weight averaging. `--swa-epochs` without
    /// `--swa-lr` averages at a tenth of the (possibly new) peak rate.
    fn apply_resume_overrides(&self, c: &mut TrainConfig) {
        if let Some(lr) = self.lr {
            c.lr = lr;
        }
        if let Some(p) = self.bwo_patience {
            c.bwo_patience = p;
        }
        if let Some(eps) = self.label_smoothing {
            c.label_smoothing = eps;
        }
        if let Some(p) = self.erase {
            c.erase = p;
        }
        if let Some(freeze) = self.ale_freeze_with_bwo {
            c.ale.freeze_with_bwo = freeze;
        }
        if let Some(n) = self.swa_epochs {
            c.swa_epochs = n;
            c.swa_lr = self.swa_lr.unwrap_or(c.lr / 10.0);
        } else if let Some(lr) = self.swa_lr {
            c.swa_lr = lr;
        }
    }

    /// `spikeforge train`'s own defaults, for commands that train on their behalf.
    pub fn defaults() -> Args {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            t: Args,
        }
        Wrap::parse_from(["train"]).t
    }
}

/// Progress bar per epoch and a JSON log line per epoch.
struct Console {
    bar: Option<ProgressBar>,
    quiet: bool,
    log: std::fs::File,
    /// Kept for the summary, which names how good the teachers were.
    teachers: Option<TeacherReport>,
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
        // A failed log write must not stop a long run; the checkpoint holds the same log.
        let _ = write_log_line(&mut self.log, e);
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
        self.teachers = Some(r.clone());
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

/// What a finished run reports (also written as `summary.json`).
#[derive(serde::Serialize)]
pub struct Summary {
    pub dataset: String,
    pub arch: String,
    pub time_steps: usize,
    pub epochs: usize,
    pub train_images: usize,
    pub test_images: usize,
    pub float_accuracy: f64,
    pub integer_accuracy: f64,
    pub gap_points: f64,
    pub binary_layers: Vec<usize>,
    pub weight_bits: u64,
    pub weight_bits_all_full_precision: u64,
    pub storage_saving_percent: f64,
    pub train_seconds: f64,
    pub model: PathBuf,
    /// What the weight average gave on the validation images (runs with --swa-epochs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swa: Option<SwaLog>,
    /// The teachers and the distillation weight and temperature (runs with --teacher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
    /// The teachers' validation accuracy, alone and as the ensemble (runs with --teacher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teachers: Option<TeacherReport>,
    /// The float network's class for each evaluated test image.
    #[serde(skip)]
    pub float_classes: Vec<usize>,
    /// The integer model's (golden = RTL) class for each evaluated test image.
    #[serde(skip)]
    pub integer_classes: Vec<usize>,
}

/// Exports a checkpoint, evaluates float and integer accuracy on the test set, writes the
/// model and returns the summary.
pub fn finish(
    ck: &Checkpoint,
    ds: &Dataset,
    model_path: &Path,
    test_limit: Option<usize>,
) -> Result<Summary> {
    let mut net = ck.net.clone();
    let model = spikeforge_trainer::export::export(&net, &export::model_name(&ds.name))?;
    spikeforge_model::save(&model, model_path)?;
    let test = ds.test.take(test_limit.unwrap_or(usize::MAX));
    let bar = super::spinner(format!(
        "evaluating the float and the integer model on {} test images",
        test.len()
    ));
    let float_pred = train::predict(&mut net, &test);
    let int_pred = spikeforge_trainer::export::golden_classes(&model, &test.images);
    bar.finish_and_clear();
    let fa = data::accuracy(&float_pred, &test.labels);
    let ia = data::accuracy(&int_pred, &test.labels);
    let (bits, full) = train::storage_bits(&net);
    Ok(Summary {
        dataset: ds.name.clone(),
        arch: ck.config.arch.clone(),
        time_steps: ck.config.time_steps,
        epochs: ck.epoch,
        train_images: 0,
        test_images: test.len(),
        float_accuracy: fa,
        integer_accuracy: ia,
        gap_points: (fa - ia) * 100.0,
        binary_layers: net.binary_layers(),
        weight_bits: bits,
        weight_bits_all_full_precision: full,
        storage_saving_percent: 100.0 * (1.0 - bits as f64 / full.max(1) as f64),
        train_seconds: ck.log.iter().map(|e| e.seconds).sum(),
        model: model_path.to_path_buf(),
        swa: ck.swa_log.clone(),
        distill: ck.config.distill.clone(),
        teachers: None,
        float_classes: float_pred,
        integer_classes: int_pred,
    })
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

/// Refuses weight-averaging settings that cannot work.
fn check_swa(c: &TrainConfig) -> Result<()> {
    if c.swa_epochs == 0 {
        return Ok(());
    }
    if c.swa_epochs >= c.epochs {
        bail!(
            "--swa-epochs {} leaves no epochs of the {} for the schedule before the averaging",
            c.swa_epochs,
            c.epochs
        );
    }
    if c.bn_recalibrate == 0 {
        bail!("--swa-epochs needs --bn-recalibrate N > 0: the averaged BatchNorm statistics belong to no network");
    }
    if !(c.swa_lr > 0.0 && c.swa_lr.is_finite()) {
        bail!("--swa-lr {} is not a positive learning rate", c.swa_lr);
    }
    Ok(())
}

/// A finished training run: its checkpoint, the data, and what only the run itself knows.
pub struct Trained {
    pub ck: Checkpoint,
    pub ds: Dataset,
    pub train_images: usize,
    pub teachers: Option<TeacherReport>,
}

impl Trained {
    /// Exports the run's network to `model_path` and summarises it on the whole test set.
    pub fn finish(&self, model_path: &Path) -> Result<Summary> {
        let mut s = finish(&self.ck, &self.ds, model_path, None)?;
        s.train_images = self.train_images;
        s.teachers = self.teachers.clone();
        Ok(s)
    }
}

/// Trains per the arguments: checks everything it can before any output, then trains with a
/// progress bar, the log and a checkpoint per epoch, and draws the training plot.
pub fn train_run(a: &Args) -> Result<Trained> {
    let ckpt_path = a.out.join("checkpoint.json");
    let config = a.config()?;
    let mut ck = if a.resume {
        resumed(a, config, &ckpt_path)?
    } else {
        check_swa(&config)?;
        Checkpoint::new(config)?
    };
    if let Some(d) = &ck.config.distill {
        distill::check_teachers(d, &ck.net)?;
    }
    let ds = a.data.load()?;
    check_fit(&ck, &ds)?;
    let (train_set, val_set) = split(a, ck.config.split, &ds)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    println!(
        "train: {} on {} ({} train / {} validation images), T = {}, {} epochs, batch {}, {} thread(s)",
        ck.config.arch,
        ds.name,
        train_set.len(),
        val_set.len(),
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
    let log = open_log(&a.out.join("log.jsonl"), &ck.log)?;
    let mut console = Console {
        bar: None,
        quiet: a.quiet,
        log,
        teachers: None,
    };
    let result = train::train(
        &mut ck,
        &train_set,
        &val_set,
        Some(&ckpt_path),
        a.stop_after,
        &mut console,
    );
    if let Some(b) = console.bar.take() {
        b.abandon();
    }
    result?;
    let png = a.out.join("training.png");
    if let Err(e) = spikeforge_trainer::plot::training_png(
        &ck.log,
        ck.swa_log.as_ref(),
        ck.config.ale.threshold,
        &png,
    ) {
        eprintln!(
            "warning: {}: could not draw the training plot: {e}",
            png.display()
        );
    }
    Ok(Trained {
        ck,
        ds,
        train_images: train_set.len(),
        teachers: console.teachers,
    })
}

/// Creates the JSON log, holding the lines of the epochs a resumed checkpoint has done. Written
/// from the checkpoint rather than appended to: a run stopped after an epoch's log line but
/// before its checkpoint would otherwise log that epoch twice.
fn open_log(path: &Path, done: &[EpochLog]) -> Result<std::fs::File> {
    let context = || format!("writing {}", path.display());
    let mut log = std::fs::File::create(path).with_context(context)?;
    for e in done {
        write_log_line(&mut log, e).with_context(context)?;
    }
    Ok(log)
}

/// One epoch's line of `log.jsonl`, the same whether written live or from a checkpoint.
fn write_log_line(log: &mut impl Write, e: &EpochLog) -> std::io::Result<()> {
    writeln!(log, "{}", serde_json::to_string(e)?)
}

/// The checkpoint of an earlier run, which must be of the same network and data, with the
/// options that may change on resuming applied.
fn resumed(a: &Args, config: TrainConfig, ckpt_path: &Path) -> Result<Checkpoint> {
    let mut c = Checkpoint::load(ckpt_path)
        .context("--resume needs the checkpoint of an earlier run in --out")?;
    let old = &c.config;
    // Without --arch the run's own architecture, not the dataset's default.
    let arch_differs = a.arch.is_some() && old.arch != config.arch;
    if arch_differs
        || old.dataset != config.dataset
        || old.time_steps != config.time_steps
        || old.relu != config.relu
    {
        bail!(
            "{}: the checkpoint is for {} `{}` at T = {}, not {} `{}` at T = {}",
            ckpt_path.display(),
            old.dataset,
            old.arch,
            old.time_steps,
            config.dataset,
            config.arch,
            config.time_steps
        );
    }
    if let Some(n) = a.epochs {
        if n < c.epoch {
            bail!(
                "{}: --epochs {n} is fewer than the {} epochs the checkpoint has done",
                ckpt_path.display(),
                c.epoch
            );
        }
        c.config.epochs = n;
    }
    // The split stays the run's: a different --val or --limit would move images between the
    // training and validation sets halfway through.
    if let Some(recorded) = c.config.split {
        let asked = |given: Option<usize>, have: Option<usize>| given.is_some() && given != have;
        if asked(a.val, recorded.val) || asked(a.limit, recorded.limit) {
            bail!(
                "{}: the run was started with {}; --val and --limit cannot change on --resume",
                ckpt_path.display(),
                describe_split(recorded)
            );
        }
    }
    a.apply_resume_overrides(&mut c.config);
    check_swa(&c.config).with_context(|| format!("resuming {}", ckpt_path.display()))?;
    Ok(c)
}

fn describe_split(s: SplitConfig) -> String {
    let part = |name: &str, v: Option<usize>| match v {
        Some(n) => format!("--{name} {n}"),
        None => format!("no --{name}"),
    };
    format!("{}, {}", part("limit", s.limit), part("val", s.val))
}

/// The network must take the dataset's images and have one output per class.
fn check_fit(ck: &Checkpoint, ds: &Dataset) -> Result<()> {
    let (h, w, c) = ck.net.input;
    if ds.train.shape != (h as u32, w as u32, c as u32) || ck.net.classes() != ds.classes {
        bail!(
            "architecture `{}` takes {h}×{w}×{c} images into {} classes; {} has {}×{}×{} images in {} classes",
            ck.config.arch,
            ck.net.classes(),
            ds.name,
            ds.train.shape.0,
            ds.train.shape.1,
            ds.train.shape.2,
            ds.classes
        );
    }
    Ok(())
}

/// The training images (the first `--limit`) split into training and validation sets: the
/// last `--val` images (default 5000, or a tenth of `--limit`) are held out.
fn split(a: &Args, recorded: Option<SplitConfig>, ds: &Dataset) -> Result<(Split, Split)> {
    let (limit, val) = match recorded {
        Some(s) => (s.limit, s.val),
        None => (a.limit, a.val),
    };
    let full = match limit {
        Some(n) => ds.train.take(n),
        None => ds.train.clone(),
    };
    // At least one validation image: the plateau and the estimator's calibration need one.
    let val_n = val
        .unwrap_or(if limit.is_some() {
            full.len() / 10
        } else {
            5000
        })
        .max(1);
    if val_n >= full.len() {
        bail!(
            "{} validation image(s) leave no training images: the training set has {}{}",
            val_n,
            full.len(),
            limit.map_or(String::new(), |n| format!(" (--limit {n})"))
        );
    }
    Ok(full.split_last(val_n))
}

pub fn run(a: Args) -> Result<()> {
    let s = train_run(&a)?.finish(&a.out.join("model.json"))?;
    print_summary(&s);
    let path = a.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&s)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "log: {}, plot: {}, checkpoint: {}",
        a.out.join("log.jsonl").display(),
        a.out.join("training.png").display(),
        a.out.join("checkpoint.json").display()
    );
    Ok(())
}
