//! The options of a training run as a user states them, and the one place their defaults
//! live: [`TrainOptions::config`] fills in every option not given, per dataset where the
//! default depends on it. `spikeforge train` maps its flags onto these fields one to one;
//! `convert` and `demo` set the few they need.

use std::path::PathBuf;

use crate::ale::{AleConfig, Metric};
use crate::data::{self, DataError};
use crate::distill::DistillConfig;
use crate::events::sets::{event_set, EventSet};
use crate::events::{Bins, FramingConfig};
use crate::export::{self, ExportError};
use crate::net::HiddenNeuron;
use crate::ops::{LifConfig, ResetKind, Surrogate};
use crate::optim::OptimKind;

use super::{BwoKind, SplitConfig, TrainConfig, TrainError};

/// Epochs of a run without `epochs`.
pub const DEFAULT_EPOCHS: usize = 20;
/// Validation images held out without `val` (a tenth of `limit` when that is given).
pub const DEFAULT_VAL: usize = 5000;

/// Time steps of a run on an event set without `time_steps`.
pub const DEFAULT_EVENT_STEPS: usize = 4;

/// The default architecture per dataset (methods-spec §1.4). Fashion-MNIST gets the reference
/// layer list with sum pooling (`AP2`): at T = 1 a max-pooled spike map is the OR of four spikes,
/// a sum-pooled one keeps their count, and the validation-selected model (docs/results.md, run
/// 18) is a sum-pooling run; at half width the network underfits (90.4 % after 20 epochs
/// against 92.8 % after 60 at full width). MNIST and CIFAR keep max pooling and are halved for
/// 2 cores.
pub fn default_arch(dataset: &str) -> &'static str {
    match dataset {
        "fashion-mnist" => "28x28x1-64C3-AP2-128C3-AP2-256C3-10C3-GAP",
        "cifar10" => "32x32x3-64C3-128C3-MP2-256C3-MP2-256C3-10C3-GAP",
        "cifar100" => "32x32x3-64C3-128C3-MP2-256C3-MP2-256C3-100C3-GAP",
        // Framed events on N-MNIST's 34 × 34 sensor, OFF and ON channels: the iCEBreaker
        // network's shape with the two middle layers binary.
        "nmnist" | "converted-mnist" => "34x34x2-16C3-MP2-32C3b-MP2-64C3b-10C1-GAP",
        // The 128 × 128 sensors framed at a quarter of their size (`--factor 4`).
        "dvs-gesture" => "32x32x2-16C3-MP2-32C3b-MP2-64C3b-11C1-GAP",
        "cifar10-dvs" => "32x32x2-32C3-MP2-64C3b-MP2-128C3b-10C1-GAP",
        _ => "28x28x1-32C3-MP2-64C3-MP2-128C3-10C3-GAP",
    }
}

/// Every option of a training run; `None` (or `false`) takes the default. The field names are
/// `spikeforge train`'s flags.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Dataset name (any spelling [`data::known`] accepts).
    pub dataset: String,
    /// Architecture (default: [`default_arch`] of the dataset).
    pub arch: Option<String>,
    /// Time steps (default 1).
    pub time_steps: Option<usize>,
    /// Planned epochs (default [`DEFAULT_EPOCHS`]).
    pub epochs: Option<usize>,
    /// Mini-batch size (default 64).
    pub batch: Option<usize>,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Validation images held out from the end (default [`DEFAULT_VAL`], or a tenth of limit).
    pub val: Option<usize>,
    /// A ReLU ANN for CSS conversion instead of a spiking network.
    pub relu: bool,
    /// Seed (default 1).
    pub seed: Option<u64>,
    /// Optimiser (default Adam).
    pub optimizer: Option<OptimKind>,
    /// Peak learning rate (default per optimiser: 2e-3 for Adam, 0.1 for SGD).
    pub lr: Option<f32>,
    /// SGD momentum (default 0.9).
    pub momentum: Option<f32>,
    /// Decoupled weight decay (default 0).
    pub weight_decay: Option<f32>,
    /// LIF threshold (default [`LifConfig::default`]'s).
    pub vth: Option<f32>,
    /// LIF decay τ.
    pub tau: Option<f32>,
    /// Reset after a spike.
    pub reset: Option<ResetKind>,
    /// Fire on `u ≥ θ` instead of `u > θ`.
    pub fire_ge: bool,
    /// Surrogate gradient shape.
    pub surrogate: Option<Surrogate>,
    /// Surrogate half-width.
    pub surrogate_width: Option<f32>,
    /// Estimator metric (default [`AleConfig::default`]'s).
    pub ale_metric: Option<Metric>,
    /// Estimator threshold (default per metric).
    pub ale_threshold: Option<f64>,
    /// Estimator hysteresis.
    pub ale_hysteresis: Option<f64>,
    /// Largest binary fraction of the candidate layers.
    pub ale_cap: Option<f64>,
    /// Re-evaluate the estimator every N epochs.
    pub ale_every: Option<usize>,
    /// Let the estimator decide the first and last layers too.
    pub ale_first_last: bool,
    /// Decide only at epoch ends, not on the initial weights.
    pub ale_no_start: bool,
    /// Stop re-deciding once BWO starts (default true).
    pub ale_freeze_with_bwo: Option<bool>,
    /// BWO variant (default α).
    pub bwo: Option<BwoKind>,
    /// Epochs of validation plateau before BWO starts (default 10).
    pub bwo_patience: Option<usize>,
    /// Last epochs with fake-quantised weights (default 2; none for a ReLU ANN).
    pub qat_epochs: Option<usize>,
    /// BatchNorm re-estimation images (default 5000; 0 for a ReLU ANN).
    pub bn_recalibrate: Option<usize>,
    /// Random shifts (default 4 pixels for CIFAR, else 0).
    pub shift: Option<usize>,
    /// Random horizontal flips (default on for CIFAR).
    pub flip: Option<bool>,
    /// Random erasing probability (default 0).
    pub erase: Option<f32>,
    /// Bits per pixel the network sees of a still image, 1..=8 (default 8).
    pub input_bits: Option<u32>,
    /// Label smoothing ε (default 0).
    pub label_smoothing: Option<f32>,
    /// Weight-averaged last epochs (default 0: off).
    pub swa_epochs: Option<usize>,
    /// The averaging phase's flat rate (default a tenth of the peak rate).
    pub swa_lr: Option<f32>,
    /// Teacher checkpoints (none: no distillation).
    pub teachers: Vec<PathBuf>,
    /// Weight of the teachers' term (default 0.5).
    pub distill_weight: Option<f32>,
    /// Softmax temperature of the teachers' term (default 1).
    pub distill_temperature: Option<f32>,
    /// Event sets: how a recording is cut into the T steps (default equal time bins).
    pub bins: Option<Bins>,
    /// Event sets: the largest count a frame pixel keeps (default 1: binary frames).
    pub clip: Option<u8>,
    /// Event sets: spatial down-sampling factor (default 1 on 34 × 34 sensors, 4 on 128 × 128).
    pub factor: Option<u16>,
}

/// Options that cannot make a run.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The dataset is not known.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The decay has no integer form.
    #[error(transparent)]
    Leak(#[from] ExportError),
    /// A teacher file cannot be read.
    #[error(transparent)]
    Teacher(#[from] TrainError),
    /// Options that contradict each other or are out of range.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> OptionsError {
    OptionsError::Invalid(message.into())
}

impl TrainOptions {
    /// The defaults on `dataset`.
    pub fn new(dataset: &str) -> TrainOptions {
        TrainOptions {
            dataset: dataset.into(),
            ..TrainOptions::default()
        }
    }

    /// The configuration of a fresh run: every option not given at its default. A fresh run
    /// then passes [`TrainConfig::check`]; a resumed one compares it with its checkpoint's.
    pub fn config(&self) -> Result<TrainConfig, OptionsError> {
        let events = event_set(&self.dataset);
        let name = match events {
            Some(set) => set.name,
            None => data::known(&self.dataset)?.name,
        };
        let framing = self.framing(events)?;
        let input_bits = match self.input_bits {
            Some(b) if !(1..=8).contains(&b) => {
                return Err(invalid(format!("--input-bits {b}: a pixel has 1 to 8 bits")))
            }
            Some(_) if events.is_some() => {
                return Err(invalid(
                    "--input-bits narrows still images; an event set's frame values take their width from --clip",
                ))
            }
            b => b.filter(|&b| b < 8),
        };
        let cifar = name.starts_with("cifar");
        let epochs = self.epochs.unwrap_or(DEFAULT_EPOCHS);
        let optimizer = self.optimizer.unwrap_or(OptimKind::Adam);
        let lr = self.lr.unwrap_or(match optimizer {
            OptimKind::Adam => 2e-3,
            OptimKind::Sgd => 0.1,
        });
        Ok(TrainConfig {
            dataset: name.into(),
            arch: self
                .arch
                .clone()
                .unwrap_or_else(|| default_arch(name).into()),
            // Event sets are cut into steps: one frame would lose their time.
            time_steps: self.time_steps.unwrap_or(if events.is_some() {
                DEFAULT_EVENT_STEPS
            } else {
                1
            }),
            epochs,
            batch: self.batch.unwrap_or(64),
            optimizer,
            lr,
            momentum: self.momentum.unwrap_or(0.9),
            weight_decay: self.weight_decay.unwrap_or(0.0),
            seed: self.seed.unwrap_or(1),
            lif: self.lif(events.is_some()),
            ale: self.ale(),
            bwo: self.bwo.unwrap_or(BwoKind::Alpha),
            bwo_patience: self.bwo_patience.unwrap_or(10),
            // Conversion quantises on its own scale: no fake quantisation of the ANN.
            qat_epochs: if self.relu {
                0
            } else {
                self.qat_epochs.unwrap_or(2).min(epochs)
            },
            shift: self.shift.unwrap_or(if cifar { 4 } else { 0 }),
            flip: self.flip.unwrap_or(cifar),
            erase: self.erase.unwrap_or(0.0),
            calibration: 512,
            neuron: if self.relu {
                HiddenNeuron::Relu
            } else {
                HiddenNeuron::Lif
            },
            // The conversion's ANN keeps the running averages its figures were measured with.
            bn_recalibrate: if self.relu {
                0
            } else {
                self.bn_recalibrate.unwrap_or(5000)
            },
            label_smoothing: self.label_smoothing.unwrap_or(0.0),
            swa_epochs: self.swa_epochs.unwrap_or(0),
            swa_lr: self.swa_lr.unwrap_or(lr / 10.0),
            distill: self.distill()?,
            split: Some(SplitConfig {
                limit: self.limit,
                val: self.val,
            }),
            framing,
            input_bits,
        })
    }

    /// The framing of an event set; framing options on a set of still images are refused.
    fn framing(&self, events: Option<&EventSet>) -> Result<Option<FramingConfig>, OptionsError> {
        let Some(set) = events else {
            if self.bins.is_some() || self.clip.is_some() || self.factor.is_some() {
                return Err(invalid(format!(
                    "--bins, --clip and --factor frame event sets; {} is a set of still images",
                    self.dataset
                )));
            }
            return Ok(None);
        };
        if self.erase.is_some_and(|p| p > 0.0) {
            return Err(invalid("--erase is for still images, not framed events"));
        }
        let clip = self.clip.unwrap_or(1);
        let factor = self.factor.unwrap_or(set.default_factor);
        if clip == 0 || factor == 0 {
            return Err(invalid("--clip and --factor must be at least 1"));
        }
        Ok(Some(FramingConfig {
            bins: self.bins.unwrap_or(Bins::Time),
            clip,
            factor,
        }))
    }

    /// The neuron; on event sets without a leak by default: at T > 1 a leak's shift rounds in
    /// the integer neuron where the float one scales, and only τ = 1 with a hard reset exports
    /// exactly.
    fn lif(&self, events: bool) -> LifConfig {
        let d = LifConfig::default();
        LifConfig {
            vth: self.vth.unwrap_or(d.vth),
            tau: self.tau.unwrap_or(if events { 1.0 } else { d.tau }),
            reset: self.reset.unwrap_or(d.reset),
            strict: !self.fire_ge,
            surrogate: self.surrogate.unwrap_or(d.surrogate),
            width: self.surrogate_width.unwrap_or(d.width),
        }
    }

    fn ale(&self) -> AleConfig {
        let d = AleConfig::default();
        let metric = self.ale_metric.unwrap_or(d.metric);
        AleConfig {
            metric,
            threshold: self.ale_threshold.unwrap_or(metric.default_threshold()),
            hysteresis: self.ale_hysteresis.unwrap_or(d.hysteresis),
            cap: self.ale_cap.unwrap_or(d.cap),
            every: self.ale_every.unwrap_or(d.every).max(1),
            first_last: self.ale_first_last,
            at_start: !self.ale_no_start,
            freeze_with_bwo: self.ale_freeze_with_bwo.unwrap_or(d.freeze_with_bwo),
        }
    }

    /// The distillation settings (`None` without teachers).
    fn distill(&self) -> Result<Option<DistillConfig>, OptionsError> {
        if self.teachers.is_empty() {
            if self.distill_weight.is_some() || self.distill_temperature.is_some() {
                return Err(invalid(
                    "--distill-weight and --distill-temperature need --teacher",
                ));
            }
            return Ok(None);
        }
        let teachers = self
            .teachers
            .iter()
            .map(|p| crate::distill::TeacherFile::new(p))
            .collect::<Result<_, _>>()?;
        Ok(Some(DistillConfig {
            teachers,
            weight: self.distill_weight.unwrap_or(0.5),
            temperature: self.distill_temperature.unwrap_or(1.0),
        }))
    }

    /// Applies the options that may change when a run resumes (besides `epochs`): the
    /// schedule's peak, when BWO starts, regularisation and the weight averaging.
    /// `swa_epochs` without `swa_lr` averages at a tenth of the (possibly new) peak rate.
    pub fn apply_on_resume(&self, c: &mut TrainConfig) {
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
}

impl TrainConfig {
    /// Refuses settings that cannot work, before a run writes anything.
    pub fn check(&self) -> Result<(), OptionsError> {
        export::leak_of(self.lif.tau, self.time_steps)?;
        if !(self.lif.vth > 0.0 && self.lif.width > 0.0) {
            return Err(invalid("--vth and --surrogate-width must be positive"));
        }
        if self.swa_epochs == 0 {
            return Ok(());
        }
        if self.swa_epochs >= self.epochs {
            return Err(invalid(format!(
                "--swa-epochs {} leaves no epochs of the {} for the schedule before the averaging",
                self.swa_epochs, self.epochs
            )));
        }
        if self.bn_recalibrate == 0 {
            return Err(invalid("--swa-epochs needs --bn-recalibrate N > 0: the averaged BatchNorm statistics belong to no network"));
        }
        if !(self.swa_lr > 0.0 && self.swa_lr.is_finite()) {
            return Err(invalid(format!(
                "--swa-lr {} is not a positive learning rate",
                self.swa_lr
            )));
        }
        Ok(())
    }
}

impl Default for TrainConfig {
    /// A fresh Fashion-MNIST run with every option at its default.
    fn default() -> Self {
        TrainOptions::new("fashion-mnist")
            .config()
            .expect("the defaults make a valid run")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dataset: &str, input_bits: Option<u32>) -> Result<TrainConfig, OptionsError> {
        TrainOptions {
            input_bits,
            ..TrainOptions::new(dataset)
        }
        .config()
    }

    #[test]
    fn input_bits_narrow_still_images_only() {
        assert_eq!(config("mnist", Some(2)).unwrap().input_bits, Some(2));
        // Eight bits is every bit: the run is the same as without the option.
        assert_eq!(config("mnist", Some(8)).unwrap().input_bits, None);
        for bits in [0, 9] {
            let e = config("mnist", Some(bits)).unwrap_err().to_string();
            assert!(e.contains("1 to 8 bits"), "{e}");
        }
        let e = config("nmnist", Some(2)).unwrap_err().to_string();
        assert!(e.contains("--clip"), "{e}");
    }
}
