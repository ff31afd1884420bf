//! The training loop: epochs of shuffled mini-batches, the accuracy-loss estimator and BWO at
//! epoch ends, a JSON log line and a checkpoint per epoch, resume from a checkpoint.
//!
//! Determinism: shuffles and augmentation come from `seed` and the epoch number, and every
//! reduction runs in a fixed order, so the same seed and thread count give the same bytes
//! whether a run is interrupted and resumed or not.

use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::ale::{self, Calibration, Decision};
use crate::data::Split;
use crate::distill::{self, TeacherReport};
use crate::net::{mean_abs_rows, Net, Precision};
use crate::ops;
use crate::optim::Hyper;
use crate::swa::{self, SwaLog, SwaState};

mod augment;
mod checkpoint;
mod config;
mod options;

pub use augment::*;
pub use checkpoint::*;
pub use config::*;
pub use options::*;

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
