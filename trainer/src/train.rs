//! The training loop: epochs of shuffled mini-batches, the accuracy-loss estimator and BWO at
//! epoch ends, a JSON log line and a checkpoint per epoch, resume from a checkpoint.
//!
//! Determinism: shuffles and augmentation come from `seed` and the epoch number, and every
//! reduction runs in a fixed order, so the same seed and thread count give the same bytes
//! whether a run is interrupted and resumed or not.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ale::{self, AleConfig, Calibration, Decision};
use crate::data::Split;
use crate::distill::{self, DistillConfig, TeacherReport};
use crate::net::{mean_abs_rows, Net, Precision};
use crate::ops::{self, LifConfig};
use crate::optim::{Hyper, OptimKind, Optimizer};
use crate::swa::{self, SwaLog, SwaState};

/// Binary weight optimisation (A7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BwoKind {
    /// Off.
    Off,
    /// α becomes a trainable parameter after the plateau (default).
    Alpha,
    /// The gradient is applied to the binary weight itself, then re-projected.
    Direct,
}

/// Everything that defines a training run (stored in the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset name (for the log and the exported model's name).
    pub dataset: String,
    /// Architecture string.
    pub arch: String,
    /// Time steps.
    pub time_steps: usize,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Optimiser.
    pub optimizer: OptimKind,
    /// Peak learning rate (cosine schedule to 0, or to `swa_lr`).
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Seed of initialisation, shuffles and augmentation.
    pub seed: u64,
    /// LIF constants.
    pub lif: LifConfig,
    /// Accuracy-loss estimator.
    pub ale: AleConfig,
    /// BWO variant.
    pub bwo: BwoKind,
    /// Epochs without validation-loss improvement that start BWO.
    pub bwo_patience: usize,
    /// Last epochs trained with fake-quantised integer weights (export loses nothing).
    pub qat_epochs: usize,
    /// Random shift of up to this many pixels (0: off).
    pub shift: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Random erasing ([`random_erase`]): the probability that a training image has a random
    /// rectangle overwritten with noise (0: off). Checkpoints from before the option load with 0.
    #[serde(default)]
    pub erase: f32,
    /// Calibration images for the data-dependent estimator metrics.
    pub calibration: usize,
    /// Train a ReLU ANN (for CSS conversion) instead of a spiking network.
    #[serde(default)]
    pub relu: bool,
    /// Before every validation (and so before export), re-estimate the BatchNorm statistics
    /// layer by layer on this many unaugmented training images ([`Net::recalibrate_bn`]);
    /// 0 keeps the running averages. Checkpoints from before the option load with 0.
    #[serde(default)]
    pub bn_recalibrate: usize,
    /// Label smoothing ε of the training loss ([`ops::softmax_ce_smoothed`]); validation stays
    /// plain cross-entropy. Checkpoints from before the option load with 0.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Stochastic weight averaging ([`crate::swa`]): the last this-many epochs train at the
    /// flat rate `swa_lr` and the run ends with the mean of their end networks; 0: off (the
    /// cosine schedule anneals to 0). Checkpoints from before the option load with 0.
    #[serde(default)]
    pub swa_epochs: usize,
    /// The flat learning rate of the averaging phase, which the cosine schedule anneals to.
    #[serde(default)]
    pub swa_lr: f32,
    /// Knowledge distillation from trained networks ([`crate::distill`]); `None`: off.
    /// Checkpoints from before the option load with `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
    /// The train/validation split the run was started with, so that a resumed run keeps it;
    /// `None` in checkpoints from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitConfig>,
}

/// Which training images a run uses: the first `limit` (all when `None`), the last `val` of
/// them held out for validation (`None`: the default, 5000 or a tenth of `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// `--limit`.
    pub limit: Option<usize>,
    /// `--val`.
    pub val: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: "fashion-mnist".into(),
            arch: String::new(),
            time_steps: 1,
            epochs: 10,
            batch: 64,
            optimizer: OptimKind::Adam,
            lr: 2e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            seed: 1,
            lif: LifConfig::default(),
            ale: AleConfig::default(),
            bwo: BwoKind::Alpha,
            bwo_patience: 10,
            qat_epochs: 2,
            shift: 0,
            flip: false,
            erase: 0.0,
            calibration: 512,
            relu: false,
            bn_recalibrate: 5000,
            label_smoothing: 0.0,
            swa_epochs: 0,
            swa_lr: 0.0,
            distill: None,
            split: None,
        }
    }
}

/// One epoch's log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the epoch start.
    pub lr: f32,
    /// Mean training loss.
    pub train_loss: f32,
    /// Training accuracy (on the augmented batches, in training mode).
    pub train_acc: f32,
    /// Validation loss.
    pub val_loss: f32,
    /// Validation accuracy.
    pub val_acc: f32,
    /// Precision of every layer during this epoch.
    pub precision: Vec<Precision>,
    /// Estimator evaluations at the end of the epoch.
    pub decisions: Vec<Decision>,
    /// Whether BWO was active during the epoch.
    pub bwo: bool,
    /// Whether weights were fake-quantised during the epoch.
    pub fake_quant: bool,
    /// Mean spike rate of each hidden layer (last batch).
    pub spike_rates: Vec<f32>,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// A checkpoint: enough to resume bit for bit, and to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Identifies the file.
    pub format: String,
    /// The run's settings.
    pub config: TrainConfig,
    /// The network.
    pub net: Net,
    /// Optimiser state.
    pub optimizer: Optimizer,
    /// Epochs completed.
    pub epoch: usize,
    /// Best validation loss so far: infinite before the first epoch, which JSON writes as
    /// `null`, so `null` reads back as infinite.
    #[serde(deserialize_with = "infinite_if_null")]
    pub best_val_loss: f32,
    /// Epochs since it improved.
    pub since_best: usize,
    /// Whether BWO has started.
    pub bwo_active: bool,
    /// Every epoch so far.
    pub log: Vec<EpochLog>,
    /// The estimator's decisions before the first epoch (with `ale.at_start`).
    #[serde(default)]
    pub start_decisions: Vec<Decision>,
    /// The running weight average of the flat phase, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa: Option<SwaState>,
    /// What the weight average gave, once the run has ended with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa_log: Option<SwaLog>,
}

fn infinite_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::INFINITY))
}

/// `format` of checkpoint files.
pub const CHECKPOINT_FORMAT: &str = "spikeforge-checkpoint-1";

/// Training failures.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The loss stopped being a number.
    #[error("{what} became {value} at epoch {epoch}, step {step}: training diverged and stopped (lower the learning rate). {}",
        match .checkpoint { Some(p) => format!("The last good checkpoint is {} (epoch {}).", p.display(), .epoch - 1), None => "No epoch completed, so there is no checkpoint.".into() })]
    Diverged {
        /// What stopped being a number: the loss or a weight.
        what: &'static str,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within it.
        step: usize,
        /// The value.
        value: f32,
        /// Last good checkpoint.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint cannot be read or written.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The data does not fit the network.
    #[error("{0}")]
    Data(String),
}

impl Checkpoint {
    /// A fresh run.
    pub fn new(config: TrainConfig) -> Result<Checkpoint, crate::net::NetError> {
        let net = Net::new(
            &config.arch,
            config.time_steps,
            config.lif,
            config.ale.first_last,
            config.seed,
        )?;
        let net = Net {
            relu: config.relu,
            ..net
        };
        Ok(Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            config,
            net,
            optimizer: Optimizer::default(),
            epoch: 0,
            best_val_loss: f32::INFINITY,
            since_best: 0,
            bwo_active: false,
            log: Vec::new(),
            start_decisions: Vec::new(),
            swa: None,
            swa_log: None,
        })
    }

    /// Reads a checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint, TrainError> {
        let err = |reason: String| TrainError::Checkpoint {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        match serde_json::from_str::<Checkpoint>(&text) {
            Ok(c) if c.format == CHECKPOINT_FORMAT => Ok(c),
            Ok(c) => Err(err(wrong_format(&c.format))),
            Err(e) => {
                // A file of another kind (often the exported model) says what it is.
                #[derive(Deserialize)]
                struct Header {
                    format: String,
                }
                Err(err(match serde_json::from_str::<Header>(&text) {
                    Ok(h) if h.format != CHECKPOINT_FORMAT => wrong_format(&h.format),
                    _ => format!("not a spikeforge checkpoint: {e}"),
                }))
            }
        }
    }

    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let err = |reason: String| TrainError::Checkpoint {
            path: path.into(),
            reason,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }
}

/// Why a file of format `found` is not a checkpoint.
fn wrong_format(found: &str) -> String {
    let hint = if found == spikeforge_model::ir::FORMAT {
        ": this is an exported hardware model; give the checkpoint.json its training run wrote"
    } else {
        ""
    };
    format!("format `{found}`, expected `{CHECKPOINT_FORMAT}`{hint}")
}

/// Loss and accuracy of the network in evaluation mode.
pub fn evaluate(net: &mut Net, split: &Split) -> (f32, f32) {
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    eval_chunks(net, split, |logits, labels| {
        let (l, c, _) = ops::softmax_ce(logits, labels);
        loss += l as f64 * labels.len() as f64;
        correct += c;
    });
    let n = split.len().max(1) as f64;
    ((loss / n) as f32, (correct as f64 / n) as f32)
}

/// Predicted classes of the network in evaluation mode.
pub fn predict(net: &mut Net, split: &Split) -> Vec<usize> {
    let mut classes = Vec::with_capacity(split.len());
    eval_chunks(net, split, |logits, _| classes.extend(ops::classes(logits)));
    classes
}

/// Runs the network in evaluation mode over a split in chunks of 500 images, handing each
/// chunk's logits and labels to `f`.
pub(crate) fn eval_chunks(net: &mut Net, split: &Split, mut f: impl FnMut(&Array2<f32>, &[u8])) {
    const CHUNK: usize = 500;
    let n = split.image_len();
    for start in (0..split.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(split.len());
        let out = net.forward(&split.images[start * n..end * n], false, false);
        f(&out.logits, &split.labels[start..end]);
    }
}

/// One augmented batch.
fn gather(
    split: &Split,
    idx: &[usize],
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<u8>) {
    let (h, w, c) = (
        split.shape.0 as usize,
        split.shape.1 as usize,
        split.shape.2 as usize,
    );
    let mut images = Vec::with_capacity(idx.len() * h * w * c);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        let start = images.len();
        shift_and_flip(split.image(i), (h, w, c), cfg, rng, &mut images);
        labels.push(split.labels[i]);
        // Off draws nothing, so runs without erasing keep their random stream.
        if cfg.erase > 0.0 && rng.gen::<f32>() < cfg.erase {
            random_erase(&mut images[start..], (h, w, c), rng);
        }
    }
    (images, labels)
}

/// Appends `img` to `out`, shifted by up to `cfg.shift` pixels (zeros come in) and flipped
/// horizontally with probability ½ when `cfg.flip`.
fn shift_and_flip(
    img: &[u8],
    (h, w, c): (usize, usize, usize),
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<u8>,
) {
    if cfg.shift == 0 && !cfg.flip {
        out.extend_from_slice(img);
        return;
    }
    let s = cfg.shift as isize;
    let (dy, dx) = if s > 0 {
        (rng.gen_range(-s..=s), rng.gen_range(-s..=s))
    } else {
        (0, 0)
    };
    let flip = cfg.flip && rng.gen_bool(0.5);
    for y in 0..h as isize {
        for x in 0..w as isize {
            let sx = if flip { w as isize - 1 - x } else { x } + dx;
            let sy = y + dy;
            for ch in 0..c {
                let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                    img[(sy as usize * w + sx as usize) * c + ch]
                } else {
                    0
                };
                out.push(v);
            }
        }
    }
}

/// Random erasing (Zhong et al., AAAI 2020, with their defaults, the aspect drawn log-uniform as
/// torchvision's `RandomErasing` does): a rectangle of 2–40 % of the
/// image's area and aspect ratio 0.3–3.3 at a random place, every pixel of it replaced by
/// uniform noise. A drawn rectangle that does not fit is drawn again (at most 100 times, then
/// the image stays as it is).
pub fn random_erase(img: &mut [u8], (h, w, c): (usize, usize, usize), rng: &mut ChaCha8Rng) {
    const AREA: (f64, f64) = (0.02, 0.4);
    const ASPECT_MIN: f64 = 0.3;
    for _ in 0..100 {
        let area = rng.gen_range(AREA.0..AREA.1) * (h * w) as f64;
        // Log-uniform, so tall and wide are equally likely.
        let aspect = rng.gen_range(ASPECT_MIN.ln()..-ASPECT_MIN.ln()).exp();
        let eh = (area * aspect).sqrt().round() as usize;
        let ew = (area / aspect).sqrt().round() as usize;
        if eh == 0 || ew == 0 || eh >= h || ew >= w {
            continue;
        }
        let (y0, x0) = (rng.gen_range(0..=h - eh), rng.gen_range(0..=w - ew));
        for y in y0..y0 + eh {
            let row = &mut img[(y * w + x0) * c..(y * w + x0 + ew) * c];
            rng.fill(row);
        }
        return;
    }
}

/// What the caller sees of a running training: progress per step and a line per epoch.
pub trait Observer {
    /// Called after every step.
    fn step(&mut self, _epoch: usize, _step: usize, _steps: usize, _loss: f32, _acc: f32) {}
    /// Called before the first epoch with the estimator's initial decisions.
    fn start(&mut self, _decisions: &[Decision]) {}
    /// Called at every epoch end with its log.
    fn epoch(&mut self, _log: &EpochLog) {}
    /// Called once a run with weight averaging has replaced its network by the mean.
    fn averaged(&mut self, _log: &SwaLog) {}
    /// Called before the first epoch of this call when distilling, with the teachers' figures.
    fn teachers(&mut self, _report: &TeacherReport) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl Observer for Silent {}

/// Trains from the checkpoint's state until `config.epochs`, saving a checkpoint after every
/// epoch to `ckpt_path` (when given). `stop_after` ends early after that many epochs of this
/// call (for tests of resuming).
pub fn train(
    ck: &mut Checkpoint,
    train_set: &Split,
    val_set: &Split,
    ckpt_path: Option<&Path>,
    stop_after: Option<usize>,
    obs: &mut dyn Observer,
) -> Result<(), TrainError> {
    let cfg = ck.config.clone();
    check_data(ck, train_set)?;
    let cal = val_set.take(cfg.calibration.min(val_set.len()).max(1));
    let calibration = Calibration {
        images: &cal.images,
        labels: &cal.labels,
    };
    let recalibration = train_set.take(cfg.bn_recalibrate);
    let soft = teacher_targets(ck, train_set, val_set, obs)?;
    if ck.epoch == 0 && ck.log.is_empty() && cfg.ale.at_start {
        let decisions = ale::update(&mut ck.net, &cfg.ale, &calibration);
        obs.start(&decisions);
        ck.start_decisions = decisions;
    }
    let mut done = 0;
    while ck.epoch < cfg.epochs && stop_after.is_none_or(|s| done < s) {
        let epoch = ck.epoch + 1;
        let t0 = Instant::now();
        let soft = soft.as_ref().map(|(p, w)| (p, *w));
        let fit = train_epoch(ck, &cfg, (train_set, soft), epoch, ckpt_path, obs)?;
        let (val_loss, val_acc) = validate(&mut ck.net, &recalibration, val_set);
        let precision = ck.net.params.iter().map(|p| p.precision).collect();
        let bwo = plateau(ck, &cfg, val_loss);
        let averaging = swa::first_epoch(&cfg).is_some_and(|first| epoch >= first);
        let decisions = epoch_end_decisions(ck, epoch, averaging, &calibration);
        sync_alpha(ck, cfg.bwo);
        if averaging {
            swa::accumulate(&mut ck.swa, &ck.net, epoch);
        }
        let log = EpochLog {
            epoch,
            lr: swa::learning_rate(&cfg, (epoch - 1) as f64),
            train_loss: fit.loss,
            train_acc: fit.acc,
            val_loss,
            val_acc,
            precision,
            decisions,
            bwo,
            fake_quant: ck.net.fake_quant,
            spike_rates: fit.rates,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if !val_loss.is_finite() {
            let what = "the validation loss";
            return Err(diverged(ck, ckpt_path, what, epoch, fit.steps, val_loss));
        }
        obs.epoch(&log);
        ck.log.push(log);
        ck.epoch = epoch;
        if let Some(p) = ckpt_path {
            ck.save(p)?;
        }
        done += 1;
    }
    ck.net.fake_quant = ck.config.qat_epochs > 0;
    if ck.epoch == cfg.epochs {
        if let Some(state) = ck.swa.take() {
            end_with_mean(ck, state, &recalibration, val_set, obs);
            if let Some(p) = ckpt_path {
                ck.save(p)?;
            }
        }
    }
    Ok(())
}

/// The teachers' probabilities for the training images and the soft term's (λ, τ), when the
/// run distils and has epochs left to train.
fn teacher_targets(
    ck: &Checkpoint,
    train_set: &Split,
    val_set: &Split,
    obs: &mut dyn Observer,
) -> Result<Option<Targets>, TrainError> {
    let cfg = &ck.config;
    let Some(d) = cfg.distill.as_ref().filter(|_| ck.epoch < cfg.epochs) else {
        return Ok(None);
    };
    let targets = distill::soft_targets(d, &ck.net, train_set, val_set)?;
    obs.teachers(&targets.report);
    Ok(Some((targets.probs, (d.weight, d.temperature))))
}

/// The estimator's decisions at the end of `epoch`: every `ale.every` epochs but the last, and
/// none once the binary set is frozen by BWO or by the averaging, whose networks must share it.
fn epoch_end_decisions(
    ck: &mut Checkpoint,
    epoch: usize,
    averaging: bool,
    calibration: &Calibration,
) -> Vec<Decision> {
    let cfg = &ck.config;
    let frozen = (cfg.ale.freeze_with_bwo && ck.bwo_active) || averaging;
    if epoch.is_multiple_of(cfg.ale.every.max(1)) && epoch < cfg.epochs && !frozen {
        ale::update(&mut ck.net, &cfg.ale, calibration)
    } else {
        Vec::new()
    }
}

/// The training images must have the architecture's shape, and the labels fit its classes.
fn check_data(ck: &Checkpoint, train_set: &Split) -> Result<(), TrainError> {
    let (h, w, c) = ck.net.input;
    if train_set.shape != (h as u32, w as u32, c as u32) {
        return Err(TrainError::Data(format!(
            "the dataset's images are {}×{}×{} but the architecture `{}` expects {h}×{w}×{c}",
            train_set.shape.0, train_set.shape.1, train_set.shape.2, ck.config.arch
        )));
    }
    let classes = ck.net.classes();
    match train_set.labels.iter().find(|&&l| l as usize >= classes) {
        Some(bad) => Err(TrainError::Data(format!(
            "label {bad} in the data, but the architecture's last layer has {classes} outputs"
        ))),
        None => Ok(()),
    }
}

/// What one epoch's training steps measured.
struct EpochFit {
    /// Mean training loss and accuracy over the epoch.
    loss: f32,
    acc: f32,
    /// The last step's spike rates per hidden layer.
    rates: Vec<f32>,
    steps: usize,
}

/// The teachers' probabilities for every training image and the soft term's (λ, τ).
type Targets = (Array2<f32>, (f32, f32));
/// [`Targets`] borrowed for an epoch, when the run distils.
type Soft<'a> = Option<(&'a Array2<f32>, (f32, f32))>;

/// One epoch of training steps over the shuffled (and augmented) training set, distilling
/// when given the teachers' probabilities. A loss or a weight that is not finite stops
/// training with an error; the last checkpoint stays.
fn train_epoch(
    ck: &mut Checkpoint,
    cfg: &TrainConfig,
    (train_set, soft): (&Split, Soft),
    epoch: usize,
    ckpt_path: Option<&Path>,
    obs: &mut dyn Observer,
) -> Result<EpochFit, TrainError> {
    ck.net.fake_quant = epoch + cfg.qat_epochs > cfg.epochs;
    let mut rng =
        ChaCha8Rng::seed_from_u64(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    order.shuffle(&mut rng);
    let steps = order.len().div_ceil(cfg.batch);
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    let mut rates = Vec::new();
    for (step, idx) in order.chunks(cfg.batch).enumerate() {
        let (images, labels) = gather(train_set, idx, cfg, &mut rng);
        let lr = swa::learning_rate(cfg, (epoch - 1) as f64 + step as f64 / steps as f64);
        let targets = soft.map(|(p, w)| (p.select(Axis(0), idx), w));
        let targets = targets.as_ref().map(|(t, w)| (t.view(), *w));
        let done_step = distilled_step(ck, &images, &labels, targets, lr);
        rates = done_step.rates;
        let loss = done_step.loss;
        if !loss.is_finite() {
            return Err(diverged(ck, ckpt_path, "the loss", epoch, step + 1, loss));
        }
        if let Some(bad) = first_non_finite(&ck.net) {
            return Err(diverged(ck, ckpt_path, "a weight", epoch, step + 1, bad));
        }
        loss_sum += loss as f64 * labels.len() as f64;
        correct += done_step.correct;
        seen += labels.len();
        let (mean_loss, acc) = (loss_sum / seen as f64, correct as f32 / seen as f32);
        obs.step(epoch, step + 1, steps, mean_loss as f32, acc);
    }
    Ok(EpochFit {
        loss: (loss_sum / seen.max(1) as f64) as f32,
        acc: correct as f32 / seen.max(1) as f32,
        rates,
        steps,
    })
}

/// Tracks the validation loss's plateau and starts BWO once it has lasted `bwo_patience`
/// epochs. Returns whether BWO ran during this epoch (it starts with the next one).
fn plateau(ck: &mut Checkpoint, cfg: &TrainConfig, val_loss: f32) -> bool {
    if val_loss < ck.best_val_loss - 1e-4 {
        ck.best_val_loss = val_loss;
        ck.since_best = 0;
    } else {
        ck.since_best += 1;
    }
    let during = ck.bwo_active;
    if !ck.bwo_active && cfg.bwo != BwoKind::Off && ck.since_best >= cfg.bwo_patience {
        ck.bwo_active = true;
    }
    during
}

/// Replaces the network by the weight average, re-estimates its BatchNorm statistics and
/// records its validation figures next to the last epoch's.
fn end_with_mean(
    ck: &mut Checkpoint,
    state: SwaState,
    recalibration: &Split,
    val_set: &Split,
    obs: &mut dyn Observer,
) {
    let fake_quant = ck.net.fake_quant;
    ck.net = Net {
        fake_quant,
        ..state.mean
    };
    let (val_loss, val_acc) = validate(&mut ck.net, recalibration, val_set);
    let log = SwaLog {
        epochs: state.epochs,
        val_loss,
        val_acc,
        last_val_acc: ck.log.last().map_or(f32::NAN, |e| e.val_acc),
    };
    obs.averaged(&log);
    ck.swa_log = Some(log);
}

/// Validation loss and accuracy, after re-estimating the BatchNorm statistics on
/// `recalibration` (empty: keep the running averages).
fn validate(net: &mut Net, recalibration: &Split, val_set: &Split) -> (f32, f32) {
    if !recalibration.is_empty() {
        net.recalibrate_bn(&recalibration.images);
    }
    evaluate(net, val_set)
}

/// The divergence error; the checkpoint on disk is the last completed epoch's, if any.
fn diverged(
    ck: &Checkpoint,
    ckpt_path: Option<&Path>,
    what: &'static str,
    epoch: usize,
    step: usize,
    value: f32,
) -> TrainError {
    TrainError::Diverged {
        what,
        epoch,
        step,
        value,
        checkpoint: ckpt_path.filter(|_| ck.epoch > 0).map(Path::to_path_buf),
    }
}

/// The first parameter that is not a finite number (the loss follows it one step later).
fn first_non_finite(net: &Net) -> Option<f32> {
    net.params.iter().find_map(|p| {
        let bn = p.bn.iter().flat_map(|b| b.gamma.iter().chain(&b.beta));
        p.w.iter()
            .chain(&p.bias)
            .chain(bn)
            .chain(p.alpha.iter().flatten())
            .copied()
            .find(|v| !v.is_finite())
    })
}

/// BWO-α: binary hidden layers carry a trainable α while BWO is active; others none.
fn sync_alpha(ck: &mut Checkpoint, bwo: BwoKind) {
    for l in 0..ck.net.specs.len() {
        let want = ck.bwo_active
            && bwo == BwoKind::Alpha
            && ck.net.params[l].precision == Precision::Binary
            && !ck.net.specs[l].last;
        match (want, ck.net.params[l].alpha.is_some()) {
            (true, false) => ck.net.params[l].alpha = Some(mean_abs_rows(ck.net.weights(l))),
            (false, true) => ck.net.params[l].alpha = None,
            _ => {}
        }
    }
}

/// What one training step saw.
pub struct StepResult {
    /// Mean loss of the batch (before the update).
    pub loss: f32,
    /// Correctly classified images of the batch.
    pub correct: usize,
    /// Spike rate of each hidden layer.
    pub rates: Vec<f32>,
}

/// One training step on a batch: forward, loss, backward and the optimiser update at `lr`.
/// A loss that is not a number leaves the weights untouched.
pub fn train_step(ck: &mut Checkpoint, images: &[u8], labels: &[u8], lr: f32) -> StepResult {
    distilled_step(ck, images, labels, None, lr)
}

/// [`train_step`], with the distillation loss when given the teachers' probabilities for the
/// batch and (λ, τ).
fn distilled_step(
    ck: &mut Checkpoint,
    images: &[u8],
    labels: &[u8],
    soft: Option<(ArrayView2<f32>, (f32, f32))>,
    lr: f32,
) -> StepResult {
    let f = ck.net.forward(images, true, false);
    let rates = f.rates.clone();
    let smoothing = ck.config.label_smoothing;
    let (loss, correct, dlogits) = match soft {
        Some((targets, w)) => distill::loss(&f.logits, labels, targets, smoothing, w),
        None => ops::softmax_ce_smoothed(&f.logits, labels, smoothing),
    };
    if loss.is_finite() {
        let grads = ck.net.backward(f, &dlogits);
        apply(ck, &grads, lr);
    }
    StepResult {
        loss,
        correct,
        rates,
    }
}

/// One optimiser step over every parameter.
fn apply(ck: &mut Checkpoint, grads: &[crate::net::LayerGrads], lr: f32) {
    let cfg = &ck.config;
    let h = Hyper {
        kind: cfg.optimizer,
        lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
    };
    let direct = ck.bwo_active && cfg.bwo == BwoKind::Direct;
    let opt = &mut ck.optimizer;
    opt.begin_step();
    for (l, g) in grads.iter().enumerate() {
        let binary = ck.net.params[l].precision == Precision::Binary;
        let wgrad = if direct && binary {
            // BWO-direct: the latent weight becomes the binary weight, which takes the step.
            let (w_eff, _) = ck.net.effective_weights(l);
            ck.net.params[l].w = w_eff.iter().copied().collect();
            &g.w_eff
        } else {
            &g.w
        };
        let p = &mut ck.net.params[l];
        opt.update(&format!("{l}.w"), &mut p.w, wgrad, &h, true);
        if !g.bias.is_empty() {
            opt.update(&format!("{l}.bias"), &mut p.bias, &g.bias, &h, false);
        }
        if let Some(bn) = p.bn.as_mut() {
            opt.update(&format!("{l}.gamma"), &mut bn.gamma, &g.gamma, &h, false);
            opt.update(&format!("{l}.beta"), &mut bn.beta, &g.beta, &h, false);
        }
        if ck.net.specs[l].last {
            let mut v = [ck.net.head_log_scale];
            opt.update("head_log_scale", &mut v, &[g.head_log_scale], &h, false);
            ck.net.head_log_scale = v[0];
        }
        let p = &mut ck.net.params[l];
        if let Some(a) = p.alpha.as_mut() {
            opt.update(&format!("{l}.alpha"), a, &g.alpha, &h, false);
        }
    }
}

/// Weight storage in bits: as trained (binary layers 1 bit per weight, others their integer
/// width) and with every layer at its full-precision width.
pub fn storage_bits(net: &Net) -> (u64, u64) {
    net.specs
        .iter()
        .zip(&net.params)
        .fold((0, 0), |(mixed, full), (s, p)| {
            let n = (s.out * s.fan_in) as u64;
            let bits = if p.precision == Precision::Binary {
                1
            } else {
                s.int_bits as u64
            };
            (mixed + n * bits, full + n * s.int_bits as u64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The bounding box of the pixels that differ between `a` and `b` (h × w × 1 images).
    fn changed_box(a: &[u8], b: &[u8], w: usize) -> Option<(usize, usize, usize, usize)> {
        let diff: Vec<(usize, usize)> = (0..a.len())
            .filter(|&i| a[i] != b[i])
            .map(|i| (i / w, i % w))
            .collect();
        let ys = diff.iter().map(|d| d.0);
        let xs = diff.iter().map(|d| d.1);
        Some((ys.clone().min()?, ys.max()?, xs.clone().min()?, xs.max()?))
    }

    #[test]
    fn random_erase_overwrites_one_rectangle_of_the_stated_size_and_nothing_else() {
        let (h, w) = (28, 28);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut areas = Vec::new();
        for _ in 0..200 {
            // A constant image: noise differs from it almost everywhere in the rectangle.
            let before = vec![128u8; h * w];
            let mut img = before.clone();
            random_erase(&mut img, (h, w, 1), &mut rng);
            let (y0, y1, x0, x1) = changed_box(&before, &img, w).expect("something erased");
            let (eh, ew) = (y1 - y0 + 1, x1 - x0 + 1);
            let changed = img.iter().filter(|&&v| v != 128).count();
            // Outside the box nothing moved; inside, noise equals 128 only by chance.
            assert!(changed * 100 >= eh * ew * 95, "{changed} of {eh}×{ew}");
            let area = (eh * ew) as f64 / (h * w) as f64;
            assert!((0.01..=0.45).contains(&area), "area {area}");
            let aspect = eh as f64 / ew as f64;
            assert!((0.2..=5.0).contains(&aspect), "aspect {aspect}");
            areas.push(area);
        }
        let mean = areas.iter().sum::<f64>() / areas.len() as f64;
        assert!(
            (0.16..0.26).contains(&mean),
            "mean area {mean}, uniform 0.02–0.4 gives 0.21"
        );
    }

    #[test]
    fn a_fresh_checkpoint_reads_back_equal() {
        // Its best validation loss is infinite, which JSON can only write as null.
        let cfg = TrainConfig {
            arch: "8x8x1-4C3-MP2-4".into(),
            ..TrainConfig::default()
        };
        let ck = Checkpoint::new(cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        ck.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), ck);
    }

    #[test]
    fn erasing_changes_each_image_in_one_rectangle_and_off_changes_nothing() {
        let (n, h, w) = (6, 28, 28);
        let split = Split {
            images: vec![128; n * h * w],
            labels: (0..n as u8).collect(),
            shape: (h as u32, w as u32, 1),
        };
        let idx: Vec<usize> = (0..n).collect();
        let batch = |erase: f32| {
            let cfg = TrainConfig {
                erase,
                ..TrainConfig::default()
            };
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let b = gather(&split, &idx, &cfg, &mut rng);
            (b, rng.gen::<u64>())
        };
        // Without shift, flip or erasing the batch is the images, and no random number is drawn.
        let ((images, labels), next) = batch(0.0);
        assert_eq!((&images, &labels), (&split.images, &split.labels));
        assert_eq!(next, ChaCha8Rng::seed_from_u64(3).gen::<u64>());
        let ((erased, erased_labels), _) = batch(1.0);
        assert_eq!(erased_labels, split.labels);
        for (k, (a, b)) in split
            .images
            .chunks(h * w)
            .zip(erased.chunks(h * w))
            .enumerate()
        {
            let (y0, y1, x0, x1) = changed_box(a, b, w).expect("every image erased");
            let changed = a.iter().zip(b).filter(|(p, q)| p != q).count();
            let boxed = (y1 - y0 + 1) * (x1 - x0 + 1);
            assert!(
                changed * 100 >= boxed * 95,
                "image {k}: {changed} of {boxed}"
            );
        }
    }
}
