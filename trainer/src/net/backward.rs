//! The backward pass: through the head, each layer's neuron and synapse, to the latent weights.

use ndarray::{s, Array2};

use crate::conv;
use crate::fused;
use crate::linalg::matmul;
use crate::ops;

use super::*;

impl Net {
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
        let pos = per / self.layer_steps(last);
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
        if self.layer_steps(l) == t_steps {
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
