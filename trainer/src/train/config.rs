//! What defines a training run: [`TrainConfig`], stored in its checkpoint.

use serde::{Deserialize, Serialize};

use crate::ale::AleConfig;
use crate::distill::DistillConfig;
use crate::events::FramingConfig;
use crate::net::HiddenNeuron;
use crate::ops::LifConfig;
use crate::optim::OptimKind;

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
    /// The hidden layers' neuron: ReLU trains an ANN for CSS conversion instead of a spiking
    /// network. Written as `"relu": true/false`, as before the enum.
    #[serde(default, rename = "relu", with = "crate::net::relu_flag")]
    pub neuron: HiddenNeuron,
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
    /// How an event set's recordings become the T input frames of a sample (`None`: a set of
    /// still images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<FramingConfig>,
    /// Still images seen at fewer than 8 bits per pixel (`--input-bits`): the network, and the
    /// exported model, take each pixel's top bits; `None`: all 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bits: Option<u32>,
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
