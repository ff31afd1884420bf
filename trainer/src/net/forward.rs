//! The forward pass: synapse, BatchNorm, neuron and pooling per layer, and the head; what it
//! records for the backward pass.

use ndarray::{s, Array2};

use crate::conv;
use crate::fused;
use crate::linalg::matmul;
use crate::ops;
use crate::popcount::{self, BitRows};

use super::*;

/// Forward-pass records one layer's backward pass needs.
pub(super) struct LayerCache {
    /// The layer's input: the map for a convolution, `[frames, fan_in]` for a dense layer.
    pub(super) input: Array2<f32>,
    /// Rows of the layer's synaptic output.
    pub(super) rows: usize,
    pub(super) w_eff: Array2<f32>,
    pub(super) activation: Activation,
    pub(super) frames: usize,
}

/// What a layer's activation leaves for the backward pass.
pub(super) enum Activation {
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
    pub(super) caches: Vec<LayerCache>,
    pub(super) batch: usize,
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

impl Net {
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
        let image_len = h * w * c * self.input_steps();
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
        let steps = self.input_steps();
        let frame = h * w * c;
        let b = images.len() / (frame * steps);
        // Narrow pixels keep their top bits: the float input is the exported integer pixel
        // times `input_unit(0)`, and 8-bit pixels are exactly `p / 255` as before.
        let shift = self.pixel_shift();
        // Frames arrive `[b][t]` and the layers run time-major, `[t][b]`.
        let time_major = (0..steps).flat_map(|t| {
            (0..b).flat_map(move |bi| images[(bi * steps + t) * frame..][..frame].iter())
        });
        let mut x = Array2::from_shape_vec(
            (steps * b * h * w, c),
            time_major
                .map(|&p| ((p >> shift) << shift) as f32 / 255.0)
                .collect(),
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
            let frames = b * self.layer_steps(l);
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
        let steps = self.layer_steps(l);
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
        // Evaluation at T > 1 adds the integer per-step bias, as the exported neuron does.
        let shift = if train { None } else { self.step_bias_shift(l) };
        let bn = self.params[l]
            .bn
            .as_mut()
            .expect("hidden layers have BatchNorm");
        let (h, w) = spec.out_hw;
        let fast = train
            && self.neuron.spikes()
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
        if let Some(shift) = shift {
            for mut row in z.rows_mut() {
                row.iter_mut().zip(&shift).for_each(|(v, s)| *v += s);
            }
        }
        if self.layer_steps(l) < t_steps {
            let one = z.clone();
            z = ndarray::concatenate(ndarray::Axis(0), &vec![one.view(); t_steps]).expect("repeat");
        }
        let (spk, lif_cache, relu_out) = match self.neuron {
            HiddenNeuron::Relu => {
                let a = z.mapv(|v| v.max(0.0));
                (a.clone(), None, Some(a))
            }
            HiddenNeuron::Lif => {
                let (spk, c) = ops::lif_forward(z, t_steps, &self.lif, self.relaxed);
                (spk, Some(c), None)
            }
        };
        // The rate of non-zero activations: for spikes, their mean.
        trace.rates.push(match self.neuron {
            HiddenNeuron::Relu => {
                spk.iter().filter(|&&v| v > 0.0).count() as f32 / spk.len().max(1) as f32
            }
            HiddenNeuron::Lif => spk.mean().unwrap_or(0.0),
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
}
