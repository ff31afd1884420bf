//! A trainable spiking network built from an architecture string: synapse (convolution or
//! dense, im2col + gemm) → BatchNorm → LIF → pooling per hidden layer; the last layer has a
//! bias and no neuron and feeds the global-average-pooling head.

use ndarray::{s, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use spikeforge_model::arch::{self, Arch, WeightKind};
use spikeforge_model::ir::{Padding, Pool, Synapse};

use crate::conv;
use crate::fused;
use crate::linalg::matmul;
use crate::ops::{self, BatchNorm, ConvGeom, LifConfig, PoolKind};
use crate::popcount::{self, BitRows};

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
    /// A ReLU ANN (for CSS conversion) instead of a spiking network: hidden activations are
    /// `max(z, 0)` and `time_steps` is 1.
    #[serde(default)]
    pub relu: bool,
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

/// Forward-pass records one layer's backward pass needs.
struct LayerCache {
    /// The layer's input: the map for a convolution, `[frames, fan_in]` for a dense layer.
    input: Array2<f32>,
    /// Rows of the layer's synaptic output.
    rows: usize,
    w_eff: Array2<f32>,
    activation: Activation,
    frames: usize,
}

/// What a layer's activation leaves for the backward pass.
enum Activation {
    /// The output layer (the GAP head): nothing.
    Head,
    /// BatchNorm, the neuron and pooling, each on its own.
    Separate {
        /// Training mode only.
        bn: Option<ops::BnCache>,
        lif: Option<ops::LifCache>,
        /// ReLU networks: the activation (its positive entries pass the gradient).
        relu_out: Option<Array2<f32>>,
        pool_arg: Vec<u8>,
    },
    /// The fused one-time-step path.
    Fused(fused::FusedCache),
}

/// The result of a forward pass.
pub struct Forward {
    /// `[B, classes]` logits (GAP over positions and steps).
    pub logits: Array2<f32>,
    caches: Vec<LayerCache>,
    batch: usize,
    /// Per-layer spike rates (hidden layers), for the log.
    pub rates: Vec<f32>,
    /// Hidden layers that took the fused one-time-step path ([`crate::fused`]).
    pub fused_layers: usize,
    /// Layers whose product ran by popcounts ([`crate::popcount`]).
    pub popcount_layers: usize,
    /// Each layer's input matrix (im2col columns or flattened map), when recorded.
    pub inputs: Option<Vec<Array2<f32>>>,
    /// Each hidden layer's activations (spikes or ReLU outputs, before pooling), when inputs
    /// are recorded.
    pub hidden: Option<Vec<Array2<f32>>>,
}

/// What a forward pass collects on its way through the layers.
struct Trace {
    caches: Vec<LayerCache>,
    rates: Vec<f32>,
    popcount_layers: usize,
    inputs: Option<Vec<Array2<f32>>>,
    hidden: Option<Vec<Array2<f32>>>,
}

impl Trace {
    fn into_forward(self, logits: Array2<f32>, batch: usize) -> Forward {
        let fused_layers = self
            .caches
            .iter()
            .filter(|c| matches!(c.activation, Activation::Fused(_)))
            .count();
        Forward {
            logits,
            fused_layers,
            popcount_layers: self.popcount_layers,
            caches: self.caches,
            batch,
            rates: self.rates,
            inputs: self.inputs,
            hidden: self.hidden,
        }
    }
}

/// What [`Net::run`] returns: the whole pass, or the pre-activation it stopped at.
enum Pass {
    Full(Forward),
    Stopped(Array2<f32>),
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
            relu: false,
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

    /// The value one unit of the layer's input stands for (pixels are `/255`, average pooling
    /// `/4`): the exported integer input times this is the float input.
    pub fn input_unit(&self, l: usize) -> f64 {
        if l == 0 {
            1.0 / 255.0
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
            && !self.relu
            && !self.relaxed
            && !self.unfused
            && self.specs[l - 1].pool != Some(PoolKind::Avg)
    }

    /// Forward pass over a batch of images (`B·H·W·C` bytes). `train` uses batch statistics
    /// (and updates the running ones); `record_inputs` keeps every layer's input matrix.
    pub fn forward(&mut self, images: &[u8], train: bool, record_inputs: bool) -> Forward {
        match self.run(images, train, record_inputs, None) {
            Pass::Full(f) => f,
            Pass::Stopped(_) => unreachable!("no layer to stop at"),
        }
    }

    /// Layer `l`'s synaptic input before BatchNorm, `[frames·positions, out]`, in evaluation
    /// mode: the forward pass runs only up to layer `l`.
    pub fn pre_activation(&mut self, images: &[u8], l: usize) -> Array2<f32> {
        match self.run(images, false, false, Some(l)) {
            Pass::Stopped(y) => y,
            Pass::Full(_) => unreachable!("layer {l} exists"),
        }
    }

    /// Re-estimates every BatchNorm's statistics for evaluation, layer by layer: layer `l`'s
    /// mean and variance are those of its pre-activations over all `images` with the layers
    /// before it already in evaluation mode, so each layer's statistics match the inputs it
    /// actually sees at inference.
    ///
    /// Why: at T = 1 a first-layer channel whose background response sits near the threshold
    /// fires everywhere or nowhere depending on a batch's statistics. The layers after it see
    /// two very different input distributions, and a running average over batches mixes them
    /// into statistics that fit neither (validation accuracy then swings by several points
    /// between epochs). Sequential estimation cannot mix them.
    pub fn recalibrate_bn(&mut self, images: &[u8]) {
        let (h, w, c) = self.input;
        let image_len = h * w * c;
        let count = images.len() / image_len.max(1);
        if count == 0 {
            return;
        }
        const CHUNK: usize = 256;
        for l in 0..self.specs.len() {
            if self.params[l].bn.is_none() {
                continue;
            }
            let out = self.specs[l].out;
            let (mut sum, mut sum_sq, mut rows) = (vec![0f64; out], vec![0f64; out], 0usize);
            for chunk in images.chunks(CHUNK * image_len) {
                let y = self.pre_activation(chunk, l);
                for row in y.rows() {
                    for (ch, &v) in row.iter().enumerate() {
                        sum[ch] += v as f64;
                        sum_sq[ch] += v as f64 * v as f64;
                    }
                }
                rows += y.nrows();
            }
            let n = rows as f64;
            let bn = self.params[l].bn.as_mut().expect("checked above");
            for ch in 0..out {
                let mean = sum[ch] / n;
                // Unbiased, like the running variance that training keeps.
                let var = (sum_sq[ch] / n - mean * mean).max(0.0) * n / (n - 1.0).max(1.0);
                bn.mean[ch] = mean as f32;
                bn.var[ch] = var as f32;
            }
        }
    }

    /// The forward pass; with `stop_at = Some(l)` it returns layer `l`'s pre-activation.
    fn run(
        &mut self,
        images: &[u8],
        train: bool,
        record_inputs: bool,
        stop_at: Option<usize>,
    ) -> Pass {
        let (h, w, c) = self.input;
        let b = images.len() / (h * w * c);
        let mut x = Array2::from_shape_vec(
            (b * h * w, c),
            images.iter().map(|&p| p as f32 / 255.0).collect(),
        )
        .expect("image shape");
        let mut trace = Trace {
            caches: Vec::with_capacity(self.specs.len()),
            rates: Vec::new(),
            popcount_layers: 0,
            inputs: record_inputs.then(Vec::new),
            hidden: record_inputs.then(Vec::new),
        };
        for l in 0..self.specs.len() {
            // Direct encoding: the first layer sees the same image at every step, so its
            // synaptic current is computed once on B frames and repeated.
            let frames = if l == 0 { b } else { b * self.time_steps };
            let (input, w_eff, y) = self.synaptic(l, x, frames, &mut trace);
            if stop_at == Some(l) {
                return Pass::Stopped(y);
            }
            let rows = y.nrows();
            let (out, activation) = if self.specs[l].last {
                (self.head(l, y, b), Activation::Head)
            } else {
                self.hidden_activation(l, y, b, train, &mut trace)
            };
            trace.caches.push(LayerCache {
                input,
                rows,
                w_eff,
                activation,
                frames,
            });
            if self.specs[l].last {
                return Pass::Full(trace.into_forward(out, b));
            }
            x = out;
        }
        unreachable!("the last layer returns")
    }

    /// Layer `l`'s synaptic product on its input `x` (the map, or the previous layer's
    /// output): returns the input as the backward pass reads it, the effective weights and
    /// the product, `[rows, out]`.
    fn synaptic(
        &self,
        l: usize,
        x: Array2<f32>,
        frames: usize,
        trace: &mut Trace,
    ) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let spec = self.specs[l];
        let spikes = self.popcount_forward(l).then(|| BitRows::spikes(x.view()));
        trace.popcount_layers += usize::from(spikes.is_some());
        // The layer's input as its product reads it: the map for a convolution (whose
        // im2col matrix is built block by block, see `conv`), `[frames, fan_in]` for a
        // dense layer.
        let input = match spec.geom() {
            Some(_) => x,
            None => x
                .into_shape_with_order((frames, spec.fan_in))
                .expect("dense input"),
        };
        if let Some(v) = trace.inputs.as_mut() {
            v.push(match spec.geom() {
                Some(g) => ops::im2col(input.view(), &g, frames),
                None => input.clone(),
            });
        }
        let (w_eff, scales) = self.effective_weights(l);
        let y = match (spikes, spec.geom()) {
            (Some(map), geom) => {
                debug_assert!(
                    popcount::is_binary(input.view()),
                    "layer {l} input is spikes"
                );
                let rows = match geom {
                    Some(g) => map.windows(&g, frames),
                    None => map.frames(frames),
                };
                let w_pos = BitRows::positive(self.weights(l), spec.in_shape.2);
                popcount::binary_product(&rows, &w_pos, &scales)
            }
            (None, Some(g)) => conv::forward(input.view(), &g, frames, w_eff.view()),
            (None, None) => matmul(input.view(), w_eff.t()),
        };
        (input, w_eff, y)
    }

    /// The GAP head: the output layer's product plus bias, averaged over positions and
    /// steps and scaled; returns the `[B, classes]` logits.
    fn head(&self, l: usize, mut y: Array2<f32>, b: usize) -> Array2<f32> {
        let bias = self.effective_bias(l);
        for mut row in y.rows_mut() {
            row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b);
        }
        let per = y.nrows() / b;
        let steps = if l == 0 { 1 } else { self.time_steps };
        let pos = per / steps;
        let mut logits = Array2::zeros((b, self.specs[l].out));
        for t in 0..steps {
            for bi in 0..b {
                let rows = y.slice(s![(t * b + bi) * pos..(t * b + bi + 1) * pos, ..]);
                let mut lrow = logits.row_mut(bi);
                for r in rows.rows() {
                    lrow += &r;
                }
            }
        }
        logits *= self.head_log_scale.exp() / per as f32;
        logits
    }

    /// A hidden layer's BatchNorm, neuron (LIF, or ReLU for ANNs) and pooling on its
    /// product `y`: returns the next layer's input and what the backward pass needs.
    fn hidden_activation(
        &mut self,
        l: usize,
        y: Array2<f32>,
        b: usize,
        train: bool,
        trace: &mut Trace,
    ) -> (Array2<f32>, Activation) {
        let spec = self.specs[l];
        let t_steps = self.time_steps;
        let bn = self.params[l]
            .bn
            .as_mut()
            .expect("hidden layers have BatchNorm");
        let (h, w) = spec.out_hw;
        let fast = train
            && !self.relu
            && !self.unfused
            && trace.hidden.is_none()
            && fused::applies(t_steps, self.relaxed, spec.pool, h, w);
        if let (true, Some(pool)) = (fast, spec.pool) {
            let (out, spikes, cache) = fused::forward(y, bn, &self.lif, pool, b, h, w);
            trace
                .rates
                .push(spikes as f32 / (b * h * w * spec.out).max(1) as f32);
            return (out, Activation::Fused(cache));
        }
        let (mut z, bn_cache) = ops::bn_forward(y, bn, train);
        if l == 0 && t_steps > 1 {
            let one = z.clone();
            z = ndarray::concatenate(ndarray::Axis(0), &vec![one.view(); t_steps]).expect("repeat");
        }
        let (spk, lif_cache, relu_out) = if self.relu {
            let a = z.mapv(|v| v.max(0.0));
            (a.clone(), None, Some(a))
        } else {
            let (spk, c) = ops::lif_forward(z, t_steps, &self.lif, self.relaxed);
            (spk, Some(c), None)
        };
        trace.rates.push(if self.relu {
            spk.iter().filter(|&&v| v > 0.0).count() as f32 / spk.len().max(1) as f32
        } else {
            spk.mean().unwrap_or(0.0)
        });
        if let Some(hidden) = trace.hidden.as_mut() {
            hidden.push(spk.clone());
        }
        let (out, arg) = match spec.pool {
            Some(kind) => ops::pool_forward(spk.view(), kind, b * t_steps, h, w),
            None => (spk, Vec::new()),
        };
        let activation = Activation::Separate {
            bn: bn_cache,
            lif: lif_cache,
            relu_out,
            pool_arg: arg,
        };
        (out, activation)
    }

    /// Backward pass from ∂L/∂logits; returns per-layer gradients.
    pub fn backward(&self, fwd: Forward, dlogits: &Array2<f32>) -> Vec<LayerGrads> {
        let n = self.specs.len();
        let mut grads: Vec<LayerGrads> = vec![LayerGrads::default(); n];
        let (b, mut caches) = (fwd.batch, fwd.caches);
        let last = caches.last().expect("one cache per layer");
        let mut dy = self.head_backward(last.rows, b, &fwd.logits, dlogits, &mut grads[n - 1]);
        for l in (0..n).rev() {
            let spec = self.specs[l];
            let cache = caches.pop().expect("one cache per layer");
            let bn = || {
                self.params[l]
                    .bn
                    .as_ref()
                    .expect("hidden layers have BatchNorm")
            };
            let g = &mut grads[l];
            match &cache.activation {
                Activation::Head => {}
                Activation::Fused(fc) => {
                    g.gamma = vec![0.0; spec.out];
                    g.beta = vec![0.0; spec.out];
                    dy = fused::backward(dy.view(), bn(), &self.lif, fc, &mut g.gamma, &mut g.beta);
                }
                Activation::Separate {
                    bn: bn_cache,
                    lif,
                    relu_out,
                    pool_arg,
                } => {
                    let dz = self.neuron_backward(l, b, dy, pool_arg, relu_out, lif.as_ref());
                    g.gamma = vec![0.0; spec.out];
                    g.beta = vec![0.0; spec.out];
                    let bn_cache = bn_cache.as_ref().expect("training-mode forward");
                    dy = ops::bn_backward(&dz, bn(), bn_cache, &mut g.gamma, &mut g.beta);
                }
            }
            // dy: ∂L/∂(synaptic output) [rows, out].
            let dw_eff = match spec.geom() {
                Some(g) => conv::weight_grad(cache.input.view(), &g, cache.frames, dy.view()),
                None => matmul(dy.t(), cache.input.view()),
            };
            self.latent_grads(l, &dw_eff, &mut grads[l]);
            if l > 0 {
                dy = match spec.geom() {
                    Some(g) => conv::input_grad(dy.view(), &g, cache.frames, cache.w_eff.view()),
                    None => {
                        let (h, w, c) = spec.in_shape;
                        matmul(dy.view(), cache.w_eff.view())
                            .into_shape_with_order((cache.frames * h * w, c))
                            .expect("dense input grad")
                    }
                };
            }
        }
        grads
    }

    /// ∂L/∂(the output layer's rows) from ∂L/∂logits: the GAP mean spreads each logit's
    /// gradient evenly over its image's positions and steps. Also fills the head's scale and
    /// bias gradients.
    fn head_backward(
        &self,
        rows: usize,
        b: usize,
        logits: &Array2<f32>,
        dlogits: &Array2<f32>,
        g: &mut LayerGrads,
    ) -> Array2<f32> {
        let last = self.specs.len() - 1;
        let per = rows / b;
        let pos = per / if last == 0 { 1 } else { self.time_steps };
        let scale = self.head_log_scale.exp();
        g.head_log_scale = (dlogits * logits).sum();
        let mut dy = Array2::zeros((rows, self.specs[last].out));
        for (r, mut row) in dy.rows_mut().into_iter().enumerate() {
            let bi = (r / pos) % b;
            row.assign(&(&dlogits.row(bi) * (scale / per as f32)));
        }
        g.bias = dy.sum_axis(ndarray::Axis(0)).to_vec();
        dy
    }

    /// From ∂L/∂(layer l's pooled spikes) back through pooling and the neuron (LIF, or ReLU
    /// for ANNs) to ∂L/∂(BatchNorm output); the first layer's steps, which share one
    /// synaptic current, are summed.
    fn neuron_backward(
        &self,
        l: usize,
        b: usize,
        dy: Array2<f32>,
        pool_arg: &[u8],
        relu_out: &Option<Array2<f32>>,
        lif: Option<&ops::LifCache>,
    ) -> Array2<f32> {
        let spec = self.specs[l];
        let t_steps = self.time_steps;
        let dspk = match spec.pool {
            Some(kind) => {
                let (h, w) = spec.out_hw;
                ops::pool_backward(dy.view(), kind, pool_arg, b * t_steps, h, w)
            }
            None => dy,
        };
        let dz = match relu_out {
            Some(a) => {
                let mut d = dspk;
                d.zip_mut_with(a, |g, &v| {
                    if v <= 0.0 {
                        *g = 0.0
                    }
                });
                d
            }
            None => ops::lif_backward(&dspk, t_steps, &self.lif, lif.expect("lif cache")),
        };
        if l > 0 || t_steps == 1 {
            return dz;
        }
        let rows = dz.nrows() / t_steps;
        let mut sum = dz.slice(s![..rows, ..]).to_owned();
        for t in 1..t_steps {
            sum += &dz.slice(s![t * rows..(t + 1) * rows, ..]);
        }
        sum
    }

    /// Maps ∂L/∂W_eff to the latent weights: clipped STE scaled by α for binary layers (and
    /// ∂L/∂α when α is trainable), identity (straight-through fake quantisation) otherwise.
    fn latent_grads(&self, l: usize, dw_eff: &Array2<f32>, g: &mut LayerGrads) {
        let spec = &self.specs[l];
        let p = &self.params[l];
        match p.precision {
            Precision::Full => g.w = dw_eff.iter().copied().collect(),
            Precision::Binary => {
                let dw = dw_eff.as_slice().expect("a fresh product");
                let alpha = self.alpha_of(l);
                g.w_eff = dw.to_vec();
                g.w = vec![0.0; p.w.len()];
                g.alpha = vec![0.0; spec.out];
                let rows =
                    g.w.chunks_exact_mut(spec.fan_in)
                        .zip(dw.chunks_exact(spec.fan_in));
                for (o, ((gw, d), w)) in rows.zip(p.w.chunks_exact(spec.fan_in)).enumerate() {
                    for ((gw, &d), &w) in gw.iter_mut().zip(d).zip(w) {
                        *gw = if w.abs() <= 1.0 { d * alpha[o] } else { 0.0 };
                    }
                    g.alpha[o] = d
                        .iter()
                        .zip(w)
                        .map(|(&d, &w)| if w >= 0.0 { d } else { -d })
                        .sum();
                }
            }
        }
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
