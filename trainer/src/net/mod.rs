//! A trainable spiking network built from an architecture string: synapse (convolution or
//! dense, im2col + gemm) → BatchNorm → LIF → pooling per hidden layer; the last layer has a
//! bias and no neuron and feeds the global-average-pooling head.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use spikeforge_model::arch::{self, Arch, WeightKind};
use spikeforge_model::ir::{Padding, Pool, Synapse};

use crate::ops::{BatchNorm, ConvGeom, LifConfig, PoolKind};

mod backward;
mod forward;

pub use forward::Forward;
use forward::*;

/// How a layer's weights are used in the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Latent full-precision weights (fake-quantised to the layer's integer width when
    /// quantisation-aware training is on).
    Full,
    /// `α ⊙ sign(W)` with a per-channel α (decision register A3).
    Binary,
}

/// Who decides a layer's precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Fixed by the architecture string (`b` or `iN`) or by the first/last-layer rule (A6).
    Fixed,
    /// The accuracy-loss estimator decides.
    Estimator,
}

/// Static description of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Convolution geometry, or `None` for a dense layer.
    pub conv: Option<(usize, usize, Padding)>,
    /// Input map height, width, channels.
    pub in_shape: (usize, usize, usize),
    /// Synaptic output map height, width (before pooling).
    pub out_hw: (usize, usize),
    /// Output channels.
    pub out: usize,
    /// Fan-in.
    pub fan_in: usize,
    /// Pooling after the neuron.
    pub pool: Option<PoolKind>,
    /// Integer width of the exported weights when full precision.
    pub int_bits: u32,
    /// Whether this is the last (output) layer.
    pub last: bool,
    /// Who decides the precision.
    pub control: Control,
}

impl LayerSpec {
    /// Convolution geometry on one frame.
    pub fn geom(&self) -> Option<ConvGeom> {
        self.conv.map(|(k, stride, padding)| {
            let pad = if padding == Padding::Same {
                (k - 1) / 2
            } else {
                0
            };
            ConvGeom {
                h: self.in_shape.0,
                w: self.in_shape.1,
                c: self.in_shape.2,
                k,
                stride,
                pad,
                ho: self.out_hw.0,
                wo: self.out_hw.1,
            }
        })
    }
    /// Output map after pooling: height, width, channels.
    pub fn out_shape(&self) -> (usize, usize, usize) {
        match self.pool {
            Some(_) => (self.out_hw.0 / 2, self.out_hw.1 / 2, self.out),
            None => (self.out_hw.0, self.out_hw.1, self.out),
        }
    }
}

/// Trainable state of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerParams {
    /// Latent weights `[out][fan_in]`, row-major (the IR's weight order).
    pub w: Vec<f32>,
    /// Output bias (last layer only; hidden layers use BatchNorm's β).
    pub bias: Vec<f32>,
    /// BatchNorm (hidden layers).
    pub bn: Option<BatchNorm>,
    /// Trainable per-channel α (binary layers once BWO-α has started).
    pub alpha: Option<Vec<f32>>,
    /// Current precision.
    pub precision: Precision,
}

/// The whole network: specs, parameters and the constants of its neurons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Net {
    /// Architecture string it was built from.
    pub arch: String,
    /// Input shape.
    pub input: (usize, usize, usize),
    /// Time steps.
    pub time_steps: usize,
    /// LIF constants.
    pub lif: LifConfig,
    /// Layers.
    pub specs: Vec<LayerSpec>,
    /// Parameters.
    pub params: Vec<LayerParams>,
    /// Fake-quantise full-precision weights (and the output bias) to their export integers.
    pub fake_quant: bool,
    /// Natural log of the positive scale applied to the GAP logits: it sharpens the softmax
    /// without changing the argmax, so the exported integer head ignores it.
    #[serde(default)]
    pub head_log_scale: f32,
    /// Framed input (the IR's `frames` encoding, event data): `Some(pixel_bits)`, each of the
    /// `time_steps` steps has its own input map, `[t][y][x][c]` per sample; `None`: a still
    /// image, whose first-layer current is computed once and repeated at every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// Still images at fewer than 8 bits per pixel: `Some(bits)`, the network sees each
    /// pixel's top `bits` bits (the exported model's `pixel_bits`); `None`: all 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bits: Option<u32>,
    /// The hidden layers' neuron. Written as `"relu": true/false`, as before the enum.
    #[serde(default, rename = "relu", with = "relu_flag")]
    pub neuron: HiddenNeuron,
    /// Gradient checks only: spikes become the surrogate's primitive and binary weights
    /// `α·clamp(W, −1, 1)`, smooth functions whose derivatives the backward pass computes.
    #[serde(skip)]
    pub relaxed: bool,
    /// Run every layer through the general per-operation path, also where the fused
    /// one-time-step path ([`crate::fused`]) or the popcount product ([`crate::popcount`])
    /// applies; the tests compare them.
    #[serde(skip)]
    pub unfused: bool,
}

/// Gradients, shaped like [`LayerParams`].
#[derive(Debug, Clone, Default)]
pub struct LayerGrads {
    /// ∂L/∂W (latent).
    pub w: Vec<f32>,
    /// ∂L/∂bias.
    pub bias: Vec<f32>,
    /// ∂L/∂γ.
    pub gamma: Vec<f32>,
    /// ∂L/∂β.
    pub beta: Vec<f32>,
    /// ∂L/∂α (trainable α only).
    pub alpha: Vec<f32>,
    /// ∂L/∂W_eff of a binary layer (BWO-direct applies this to the binary weight itself);
    /// empty for full-precision layers, whose ∂L/∂W is the same.
    pub w_eff: Vec<f32>,
    /// ∂L/∂(head log-scale) (last layer only).
    pub head_log_scale: f32,
}

/// Initial logit scale: GAP averages over `p` positions of a spike-driven layer shrink like
/// `1/√p`, and a softmax over near-equal logits learns slowly; `√p` undoes that.
fn initial_head_log_scale(specs: &[LayerSpec]) -> f32 {
    let last = specs.last().expect("a network has layers");
    0.5 * ((last.out_hw.0 * last.out_hw.1) as f32).ln()
}

/// The trainer's neuron kinds for hidden layers; each is handled by an exhaustive match, so a
/// new kind is a compile error wherever it needs handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HiddenNeuron {
    /// LIF spiking neurons (ALBSNN): 0/1 spikes over `time_steps` steps.
    #[default]
    Lif,
    /// ReLU, the ANN of CSS conversion: `max(z, 0)`, and `time_steps` is 1.
    Relu,
}

impl HiddenNeuron {
    /// Whether the activations are 0/1 spikes (what the popcount and fused paths need).
    pub fn spikes(self) -> bool {
        match self {
            HiddenNeuron::Lif => true,
            HiddenNeuron::Relu => false,
        }
    }
}

/// [`HiddenNeuron`] as the checkpoints' `relu` flag, so that checkpoints read and write as
/// they did when the field was a `bool`.
pub(crate) mod relu_flag {
    use super::HiddenNeuron;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &HiddenNeuron, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(match n {
            HiddenNeuron::Lif => false,
            HiddenNeuron::Relu => true,
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HiddenNeuron, D::Error> {
        Ok(if bool::deserialize(d)? {
            HiddenNeuron::Relu
        } else {
            HiddenNeuron::Lif
        })
    }
}

/// A network that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The architecture does not parse.
    #[error(transparent)]
    Arch(#[from] arch::ArchError),
    /// The architecture parses but cannot be trained or exported as given.
    #[error("architecture `{arch}`: {reason}")]
    Shape {
        /// The string.
        arch: String,
        /// Why.
        reason: String,
    },
    /// T outside what the IR (and so the export) accepts.
    #[error("T = {0} time steps: must be in 1..={max}", max = spikeforge_model::validate::MAX_TIME_STEPS)]
    TimeSteps(usize),
}

fn specs_of(
    a: &Arch,
    arch_str: &str,
    estimate_first_last: bool,
) -> Result<Vec<LayerSpec>, NetError> {
    let (mut h, mut w, mut c) = (a.input.0 as usize, a.input.1 as usize, a.input.2 as usize);
    let n = a.layers.len();
    let mut out = Vec::new();
    for (i, l) in a.layers.iter().enumerate() {
        let shape_err = |reason: String| NetError::Shape {
            arch: arch_str.into(),
            reason,
        };
        let (conv, out_hw, oc, fan_in) = match l.synapse {
            Synapse::Conv {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                let o = |x: usize| {
                    spikeforge_model::geometry::conv_out_size(x as u32, kernel, stride, padding)
                        .map(|v| v as usize)
                };
                let (Some(ho), Some(wo)) = (o(h), o(w)) else {
                    return Err(shape_err(format!(
                        "layer {} ({kernel}×{kernel}) does not fit its {h}×{w} input",
                        i + 1
                    )));
                };
                (
                    Some((kernel as usize, stride as usize, padding)),
                    (ho, wo),
                    out_channels as usize,
                    (kernel * kernel) as usize * c,
                )
            }
            Synapse::Dense { out_features } => (None, (1, 1), out_features as usize, h * w * c),
        };
        let pool = l.pool.map(|p| match p {
            Pool::Or => PoolKind::Max,
            Pool::Sum => PoolKind::Avg,
        });
        if pool.is_some() && (out_hw.0 < 2 || out_hw.1 < 2) {
            return Err(shape_err(format!(
                "layer {} is pooled but its map is {}×{}",
                i + 1,
                out_hw.0,
                out_hw.1
            )));
        }
        let last = i + 1 == n;
        let edge = i == 0 || last;
        let control = if l.weights_given || (edge && !estimate_first_last) {
            Control::Fixed
        } else {
            Control::Estimator
        };
        out.push(LayerSpec {
            conv,
            in_shape: (h, w, c),
            out_hw,
            out: oc,
            fan_in,
            pool,
            int_bits: match l.weights {
                WeightKind::Integer(b) => b,
                WeightKind::Binary => 8,
            },
            last,
            control,
        });
        let o = out.last().unwrap().out_shape();
        (h, w, c) = o;
    }
    Ok(out)
}

impl Net {
    /// Builds a network with Kaiming-uniform weights from a seed.
    pub fn new(
        arch_str: &str,
        time_steps: usize,
        lif: LifConfig,
        estimate_first_last: bool,
        seed: u64,
    ) -> Result<Net, NetError> {
        if !(1..=spikeforge_model::validate::MAX_TIME_STEPS as usize).contains(&time_steps) {
            return Err(NetError::TimeSteps(time_steps));
        }
        let a = arch::parse(arch_str)?;
        let specs = specs_of(&a, arch_str, estimate_first_last)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = specs
            .iter()
            .zip(&a.layers)
            .map(|(s, l)| {
                let bound = (6.0 / s.fan_in as f32).sqrt();
                let w = (0..s.out * s.fan_in)
                    .map(|_| rng.gen_range(-bound..bound))
                    .collect();
                LayerParams {
                    w,
                    bias: if s.last { vec![0.0; s.out] } else { Vec::new() },
                    bn: (!s.last).then(|| BatchNorm::new(s.out)),
                    alpha: None,
                    precision: if l.weights_given && l.weights == WeightKind::Binary {
                        Precision::Binary
                    } else {
                        Precision::Full
                    },
                }
            })
            .collect();
        Ok(Net {
            head_log_scale: initial_head_log_scale(&specs),
            arch: arch_str.into(),
            input: (a.input.0 as usize, a.input.1 as usize, a.input.2 as usize),
            time_steps,
            lif,
            specs,
            params,
            fake_quant: false,
            frames: None,
            input_bits: None,
            neuron: HiddenNeuron::Lif,
            relaxed: false,
            unfused: false,
        })
    }

    /// The binary layers, 1-based (as the log and reports number them).
    pub fn binary_layers(&self) -> Vec<usize> {
        let p = self.params.iter().enumerate();
        p.filter(|(_, p)| p.precision == Precision::Binary)
            .map(|(l, _)| l + 1)
            .collect()
    }

    /// Number of classes (output channels of the last layer).
    pub fn classes(&self) -> usize {
        self.specs.last().map_or(0, |s| s.out)
    }

    /// Steps of layer `l`'s synaptic current: one for the first layer on a still image
    /// (repeated at every step), `time_steps` otherwise.
    pub fn layer_steps(&self, l: usize) -> usize {
        match (l, self.frames) {
            (0, None) => 1,
            _ => self.time_steps,
        }
    }

    /// How far an 8-bit image pixel is shifted right to become the exported model's input
    /// (0 for event frames, which are made at their width).
    pub fn pixel_shift(&self) -> u32 {
        match (self.frames, self.input_bits) {
            (None, Some(bits)) => 8 - bits.clamp(1, 8),
            _ => 0,
        }
    }

    /// Input maps per sample: `time_steps` frames, or one image.
    pub fn input_steps(&self) -> usize {
        self.frames.map_or(1, |_| self.time_steps)
    }

    /// The value one unit of the layer's input stands for (pixels are `/255`, average pooling
    /// `/4`): the exported integer input times this is the float input.
    pub fn input_unit(&self, l: usize) -> f64 {
        if l == 0 {
            f64::from(1u32 << self.pixel_shift()) / 255.0
        } else if self.specs[l - 1].pool == Some(PoolKind::Avg) {
            0.25
        } else {
            1.0
        }
    }

    /// The latent weights of layer `l` as an `[out, fan_in]` matrix.
    pub fn weights(&self, l: usize) -> ArrayView2<'_, f32> {
        let s = &self.specs[l];
        ArrayView2::from_shape((s.out, s.fan_in), &self.params[l].w).expect("weight shape")
    }

    /// The float value of one unit of each output channel's integer weights: α for a binary
    /// layer, the quantisation step otherwise.
    pub fn weight_scales(&self, l: usize) -> Vec<f32> {
        let s = &self.specs[l];
        match self.params[l].precision {
            Precision::Binary => self.alpha_of(l),
            Precision::Full => quant_steps(self.weights(l), s.int_bits, s.last),
        }
    }

    /// Hidden layer `l`'s per-step current on the exported integer grid, per channel:
    /// `(A, bias)`, `A` the float value of one unit of integer current (BatchNorm's scale
    /// times the weight and input units; its sign is the polarity) and `bias` the BatchNorm
    /// shift in those units, rounded. At T > 1 the exported neuron adds `bias` at every step.
    pub fn step_grid(&self, l: usize) -> Vec<(f64, i64)> {
        let (bn_a, bn_b) = self.params[l]
            .bn
            .as_ref()
            .expect("hidden layers have BatchNorm")
            .eval_affine();
        let unit = self.weight_scales(l);
        bn_a.iter()
            .zip(&bn_b)
            .zip(&unit)
            .map(|((&a, &b), &u)| {
                let a = a * u as f64 * self.input_unit(l);
                if a == 0.0 || !a.is_finite() {
                    (a, 0)
                } else {
                    (a, (b / a.abs()).round() as i64)
                }
            })
            .collect()
    }

    /// With fake quantisation at T > 1, what evaluation adds to hidden layer `l`'s BatchNorm
    /// output so that its per-step shift is the exported integer bias (`|A|·bias − b`); `None`
    /// where nothing is rounded (T = 1 folds the shift into the threshold exactly).
    pub(crate) fn step_bias_shift(&self, l: usize) -> Option<Vec<f32>> {
        if !self.fake_quant || self.time_steps == 1 || !self.neuron.spikes() {
            return None;
        }
        let (_, bn_b) = self.params[l].bn.as_ref()?.eval_affine();
        Some(
            self.step_grid(l)
                .iter()
                .zip(&bn_b)
                .map(|(&(a, bias), &b)| {
                    if a == 0.0 || !a.is_finite() {
                        0.0
                    } else {
                        (a.abs() * bias as f64 - b) as f32
                    }
                })
                .collect(),
        )
    }

    /// The weights the forward pass uses, and per-channel scales (α or quantisation step).
    pub fn effective_weights(&self, l: usize) -> (Array2<f32>, Vec<f32>) {
        let w = self.weights(l);
        let scales = self.weight_scales(l);
        let e = match self.params[l].precision {
            Precision::Binary if self.relaxed => {
                let mut e = w.to_owned();
                for (mut row, a) in e.rows_mut().into_iter().zip(&scales) {
                    row.mapv_inplace(|v| *a * v.clamp(-1.0, 1.0));
                }
                e
            }
            Precision::Binary => sign_times(w, &scales),
            Precision::Full if self.fake_quant => {
                let mut e = w.to_owned();
                for (mut row, q) in e.rows_mut().into_iter().zip(&scales) {
                    row.mapv_inplace(|v| if *q > 0.0 { (v / q).round() * q } else { 0.0 });
                }
                e
            }
            Precision::Full => w.to_owned(),
        };
        (e, scales)
    }

    /// The output bias as the forward pass uses it: with fake quantisation, rounded to the
    /// integer unit of the exported head (`bias_q · unit`).
    pub fn effective_bias(&self, l: usize) -> Vec<f32> {
        let b = &self.params[l].bias;
        if !self.fake_quant {
            return b.clone();
        }
        let unit = self.head_unit();
        b.iter()
            .map(|v| ((*v as f64 / unit).round() * unit) as f32)
            .collect()
    }

    /// The float value of one unit of the exported head's integer accumulator.
    pub fn head_unit(&self) -> f64 {
        let l = self.specs.len() - 1;
        self.weight_scales(l)[0] as f64 * self.input_unit(l)
    }

    /// The binary layer's α: trainable (BWO-α) or the mean |W| per output channel; one value
    /// for the whole output layer, whose logits must share one scale.
    pub fn alpha_of(&self, l: usize) -> Vec<f32> {
        if let Some(a) = &self.params[l].alpha {
            return a.clone();
        }
        let a = mean_abs_rows(self.weights(l));
        if self.specs[l].last {
            let m = a.iter().sum::<f32>() / a.len() as f32;
            return vec![m; a.len()];
        }
        a
    }

    /// Whether layer `l` runs its forward product by popcounts: a binary layer whose inputs
    /// are spikes, 0 or 1 (a spiking layer before it, pooled by max or not at all).
    fn popcount_forward(&self, l: usize) -> bool {
        l > 0
            && self.params[l].precision == Precision::Binary
            && self.neuron.spikes()
            && !self.relaxed
            && !self.unfused
            && self.specs[l - 1].pool != Some(PoolKind::Avg)
    }
}

/// `α_c · sign(w)` per output row `c`, sign(0) = +1 (B1, B2).
pub fn sign_times(w: ArrayView2<f32>, alpha: &[f32]) -> Array2<f32> {
    let mut e = w.to_owned();
    for (mut row, a) in e.rows_mut().into_iter().zip(alpha) {
        row.mapv_inplace(|v| if v >= 0.0 { *a } else { -*a });
    }
    e
}

/// Per-row mean absolute value (α of B3).
pub fn mean_abs_rows(w: ArrayView2<f32>) -> Vec<f32> {
    w.rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v.abs()).sum::<f32>() / r.len().max(1) as f32)
        .collect()
}

/// Symmetric quantisation steps: per output channel, or one for the whole output layer (its
/// logits are compared with each other, so they must share one scale).
pub fn quant_steps(w: ArrayView2<f32>, bits: u32, per_tensor: bool) -> Vec<f32> {
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let maxes: Vec<f32> = w
        .rows()
        .into_iter()
        .map(|r| r.iter().fold(0.0f32, |m, v| m.max(v.abs())))
        .collect();
    if per_tensor {
        let m = maxes.iter().fold(0.0f32, |a, &b| a.max(b));
        vec![m / qmax; maxes.len()]
    } else {
        maxes.iter().map(|m| m / qmax).collect()
    }
}

/// `n` random images of `len` bytes each, from a seed (tests and benchmarks).
pub fn random_images(n: usize, len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * len).map(|_| rng.gen()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_steps_outside_the_ir_range_are_refused() {
        for t in [0, 65] {
            let e = Net::new("8x8x1-4C3-10", t, LifConfig::default(), false, 1).unwrap_err();
            assert!(
                matches!(e, NetError::TimeSteps(x) if x == t) && e.to_string().contains("1..=64"),
                "{e}"
            );
        }
        assert!(Net::new("8x8x1-4C3-10", 64, LifConfig::default(), false, 1).is_ok());
    }
}
