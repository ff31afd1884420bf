//! Forward and backward passes of the pieces a network is built from. Feature maps are
//! matrices `[frames·H·W, C]` (raster order, channels fastest: the IR's layout), frames being
//! `T·B` (time-major) images.

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Geometry of a convolution on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input height, width, channels.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

impl ConvGeom {
    /// Columns of the im2col matrix (the fan-in), in the IR's `[ky][kx][in]` order.
    pub fn fan_in(&self) -> usize {
        self.k * self.k * self.c
    }
}

impl ConvGeom {
    /// Calls `f(column offset, input offset)` for every in-bounds tap of every output
    /// position of one frame: the column offset inside the im2col matrix of the frame, the
    /// input offset inside the frame's map (both to the first of `c` channels).
    #[inline]
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize)) {
        let cols = self.fan_in();
        for oy in 0..self.ho {
            for ox in 0..self.wo {
                let row = (oy * self.wo + ox) * cols;
                for ky in 0..self.k {
                    let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                    if iy < 0 || iy >= self.h as isize {
                        continue;
                    }
                    for kx in 0..self.k {
                        let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                        if ix < 0 || ix >= self.w as isize {
                            continue;
                        }
                        f(
                            row + (ky * self.k + kx) * self.c,
                            (iy as usize * self.w + ix as usize) * self.c,
                        );
                    }
                }
            }
        }
    }
}

/// im2col: `x` is `[frames·H·W, C]`; returns `[frames·Ho·Wo, K·K·C]`.
pub fn im2col(x: ArrayView2<f32>, g: &ConvGeom, frames: usize) -> Array2<f32> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo * g.fan_in());
    let mut out = vec![0.0f32; frames * per_out];
    out.par_chunks_mut(per_out)
        .enumerate()
        .for_each(|(f, dst)| {
            let src = &xs[f * per_in..(f + 1) * per_in];
            g.for_each_tap(|col, inp| dst[col..col + g.c].copy_from_slice(&src[inp..inp + g.c]));
        });
    Array2::from_shape_vec((frames * g.ho * g.wo, g.fan_in()), out).expect("shape")
}

/// col2im, the adjoint of [`im2col`]: sums column gradients back onto the input map.
pub fn col2im(dcols: ArrayView2<f32>, g: &ConvGeom, frames: usize) -> Array2<f32> {
    let dcols = dcols.as_standard_layout();
    let ds = dcols.as_slice().expect("standard layout");
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo * g.fan_in());
    let mut out = vec![0.0f32; frames * per_in];
    out.par_chunks_mut(per_in).enumerate().for_each(|(f, dst)| {
        let src = &ds[f * per_out..(f + 1) * per_out];
        g.for_each_tap(|col, inp| {
            for (d, s) in dst[inp..inp + g.c].iter_mut().zip(&src[col..col + g.c]) {
                *d += s;
            }
        });
    });
    Array2::from_shape_vec((frames * g.h * g.w, g.c), out).expect("shape")
}

/// 2×2 stride-2 pooling kind (an odd last row/column is dropped, as in the IR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    /// Max pooling: on spikes, the OR of the IR's `Pool::Or`.
    Max,
    /// Average pooling: the IR's `Pool::Sum` with the ÷4 folded downstream.
    Avg,
}

/// Pools `[frames·H·W, C]` to `[frames·(H/2)·(W/2), C]`; also returns, for max pooling, the
/// winning input row of every output element (for the backward pass).
pub fn pool_forward(
    x: ArrayView2<f32>,
    kind: PoolKind,
    frames: usize,
    h: usize,
    w: usize,
) -> (Array2<f32>, Vec<u32>) {
    let c = x.ncols();
    let (ho, wo) = (h / 2, w / 2);
    let mut out = Array2::zeros((frames * ho * wo, c));
    let mut arg = vec![
        0u32;
        if kind == PoolKind::Max {
            frames * ho * wo * c
        } else {
            0
        }
    ];
    for f in 0..frames {
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (f * ho + oy) * wo + ox;
                let rows = [0, 1, w, w + 1].map(|d| (f * h + 2 * oy) * w + 2 * ox + d);
                for ch in 0..c {
                    match kind {
                        PoolKind::Max => {
                            let mut best = rows[0];
                            for &r in &rows[1..] {
                                if x[[r, ch]] > x[[best, ch]] {
                                    best = r;
                                }
                            }
                            out[[o, ch]] = x[[best, ch]];
                            arg[o * c + ch] = best as u32;
                        }
                        PoolKind::Avg => {
                            out[[o, ch]] = rows.iter().map(|&r| x[[r, ch]]).sum::<f32>() * 0.25
                        }
                    }
                }
            }
        }
    }
    (out, arg)
}

/// Backward of [`pool_forward`].
pub fn pool_backward(
    dy: ArrayView2<f32>,
    kind: PoolKind,
    arg: &[u32],
    frames: usize,
    h: usize,
    w: usize,
) -> Array2<f32> {
    let c = dy.ncols();
    let (ho, wo) = (h / 2, w / 2);
    let mut dx = Array2::zeros((frames * h * w, c));
    for f in 0..frames {
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (f * ho + oy) * wo + ox;
                for ch in 0..c {
                    match kind {
                        PoolKind::Max => dx[[arg[o * c + ch] as usize, ch]] += dy[[o, ch]],
                        PoolKind::Avg => {
                            for d in [0, 1, w, w + 1] {
                                dx[[(f * h + 2 * oy) * w + 2 * ox + d, ch]] += 0.25 * dy[[o, ch]];
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

/// BatchNorm parameters and running statistics of one layer (per channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    /// Scale γ.
    pub gamma: Vec<f32>,
    /// Shift β.
    pub beta: Vec<f32>,
    /// Running mean (evaluation and export).
    pub mean: Vec<f32>,
    /// Running variance (evaluation and export).
    pub var: Vec<f32>,
}

/// ε of BatchNorm.
pub const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

impl BatchNorm {
    /// γ = 1, β = 0, running statistics of a unit Gaussian.
    pub fn new(c: usize) -> Self {
        BatchNorm {
            gamma: vec![1.0; c],
            beta: vec![0.0; c],
            mean: vec![0.0; c],
            var: vec![1.0; c],
        }
    }

    /// Per-channel affine `y = a·x + b` this BatchNorm applies in evaluation mode.
    pub fn eval_affine(&self) -> (Vec<f64>, Vec<f64>) {
        (0..self.gamma.len())
            .map(|c| {
                let a = self.gamma[c] as f64 / (self.var[c] as f64 + BN_EPS as f64).sqrt();
                (a, self.beta[c] as f64 - a * self.mean[c] as f64)
            })
            .unzip()
    }
}

/// What the BatchNorm backward pass needs.
pub struct BnCache {
    xhat: Array2<f32>,
    inv_std: Vec<f32>,
}

/// BatchNorm forward. Training mode uses batch statistics (and updates the running ones).
pub fn bn_forward(
    x: &Array2<f32>,
    bn: &mut BatchNorm,
    train: bool,
) -> (Array2<f32>, Option<BnCache>) {
    let c = x.ncols();
    if !train {
        let (a, b) = bn.eval_affine();
        let mut y = x.clone();
        for mut row in y.rows_mut() {
            for ch in 0..c {
                row[ch] = (a[ch] as f32) * row[ch] + b[ch] as f32;
            }
        }
        return (y, None);
    }
    let n = x.nrows() as f32;
    let mean = x.sum_axis(Axis(0)) / n;
    let mut var = vec![0.0f32; c];
    for row in x.rows() {
        for ch in 0..c {
            let d = row[ch] - mean[ch];
            var[ch] += d * d;
        }
    }
    var.iter_mut().for_each(|v| *v /= n);
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect();
    let mut xhat = x.clone();
    for mut row in xhat.rows_mut() {
        for ch in 0..c {
            row[ch] = (row[ch] - mean[ch]) * inv_std[ch];
        }
    }
    let mut y = xhat.clone();
    for mut row in y.rows_mut() {
        for ch in 0..c {
            row[ch] = bn.gamma[ch] * row[ch] + bn.beta[ch];
        }
    }
    let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    for ch in 0..c {
        bn.mean[ch] = (1.0 - BN_MOMENTUM) * bn.mean[ch] + BN_MOMENTUM * mean[ch];
        bn.var[ch] = (1.0 - BN_MOMENTUM) * bn.var[ch] + BN_MOMENTUM * var[ch] * unbiased;
    }
    (y, Some(BnCache { xhat, inv_std }))
}

/// BatchNorm backward: returns dx and accumulates dγ, dβ.
pub fn bn_backward(
    dy: &Array2<f32>,
    bn: &BatchNorm,
    cache: &BnCache,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Array2<f32> {
    let c = dy.ncols();
    let n = dy.nrows() as f32;
    let mut sum_dy = vec![0.0f32; c];
    let mut sum_dy_xhat = vec![0.0f32; c];
    for (drow, xrow) in dy.rows().into_iter().zip(cache.xhat.rows()) {
        for ch in 0..c {
            sum_dy[ch] += drow[ch];
            sum_dy_xhat[ch] += drow[ch] * xrow[ch];
        }
    }
    for ch in 0..c {
        dgamma[ch] += sum_dy_xhat[ch];
        dbeta[ch] += sum_dy[ch];
    }
    let mut dx = dy.clone();
    for (mut drow, xrow) in dx.rows_mut().into_iter().zip(cache.xhat.rows()) {
        for ch in 0..c {
            let k = bn.gamma[ch] * cache.inv_std[ch];
            drow[ch] = k * (drow[ch] - sum_dy[ch] / n - xrow[ch] * sum_dy_xhat[ch] / n);
        }
    }
    dx
}

/// Surrogate gradient of the spike (decision register A2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surrogate {
    /// `1[|u − θ| < a]` (STBP; height 1, the default).
    Rectangular,
    /// `max(0, 1 − |u − θ|/a)`.
    Triangle,
    /// `k·σ(k(u − θ))·(1 − σ)` with `k = 2/a` (height `1/(2a)`).
    Sigmoid,
}

impl Surrogate {
    /// ∂spike/∂u at `d = u − θ` for half-width `a`.
    pub fn grad(self, d: f32, a: f32) -> f32 {
        match self {
            Surrogate::Rectangular => f32::from(d.abs() < a),
            Surrogate::Triangle => (1.0 - d.abs() / a).max(0.0),
            Surrogate::Sigmoid => {
                let k = 2.0 / a;
                let s = 1.0 / (1.0 + (-k * d).exp());
                k * s * (1.0 - s)
            }
        }
    }
    /// A smooth function whose derivative is exactly [`Self::grad`]: the gradient checks run
    /// the forward pass with it in place of the Heaviside step.
    pub fn primitive(self, d: f32, a: f32) -> f32 {
        match self {
            Surrogate::Rectangular => (d + a).clamp(0.0, 2.0 * a),
            Surrogate::Triangle => {
                let x = (d / a).clamp(-1.0, 1.0);
                a * if x < 0.0 {
                    (1.0 + x).powi(2) / 2.0
                } else {
                    1.0 - (1.0 - x).powi(2) / 2.0
                }
            }
            Surrogate::Sigmoid => 1.0 / (1.0 + (-(2.0 / a) * d).exp()),
        }
    }
}

/// Membrane reset after a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetKind {
    /// `u ← 0` (STBP, the default).
    Hard,
    /// `u ← u − θ`.
    Subtract,
}

/// LIF neuron constants (decision register A1/A2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifConfig {
    /// Firing threshold θ.
    pub vth: f32,
    /// Decay τ of the carried membrane (a power of two, `1 − 2^−k`, or 1, to be exportable).
    pub tau: f32,
    /// Reset.
    pub reset: ResetKind,
    /// Fire on `u > θ` (true, STBP) or `u ≥ θ`.
    pub strict: bool,
    /// Surrogate shape.
    pub surrogate: Surrogate,
    /// Surrogate half-width `a`.
    pub width: f32,
}

impl Default for LifConfig {
    fn default() -> Self {
        LifConfig {
            vth: 0.75,
            tau: 0.25,
            reset: ResetKind::Hard,
            strict: true,
            surrogate: Surrogate::Rectangular,
            width: 0.5,
        }
    }
}

/// What the LIF backward pass needs: membranes before reset and spikes, per step.
pub struct LifCache {
    u: Array2<f32>,
    o: Array2<f32>,
}

/// LIF over `T` steps: `z` is `[T·R, C]` (time-major); returns spikes of the same shape.
/// `relaxed` replaces the step by the surrogate's primitive (gradient checks only).
pub fn lif_forward(
    z: &Array2<f32>,
    t_steps: usize,
    cfg: &LifConfig,
    relaxed: bool,
) -> (Array2<f32>, LifCache) {
    let rows = z.nrows() / t_steps;
    let mut u = z.clone();
    let mut o = Array2::zeros(z.dim());
    let fire = |v: f32| -> f32 {
        if relaxed {
            cfg.surrogate.primitive(v - cfg.vth, cfg.width)
        } else {
            f32::from(if cfg.strict {
                v > cfg.vth
            } else {
                v >= cfg.vth
            })
        }
    };
    for t in 0..t_steps {
        if t > 0 {
            let (prev, mut cur) = u.view_mut().split_at(Axis(0), t * rows);
            let prev = prev.slice(s![(t - 1) * rows.., ..]);
            let oprev = o.slice(s![(t - 1) * rows..t * rows, ..]);
            let mut cur = cur.slice_mut(s![..rows, ..]);
            ndarray::Zip::from(&mut cur)
                .and(&prev)
                .and(&oprev)
                .for_each(|c, &p, &op| {
                    let post = match cfg.reset {
                        ResetKind::Hard => p * (1.0 - op),
                        ResetKind::Subtract => p - cfg.vth * op,
                    };
                    *c += cfg.tau * post;
                });
        }
        let ut = u.slice(s![t * rows..(t + 1) * rows, ..]).to_owned();
        o.slice_mut(s![t * rows..(t + 1) * rows, ..])
            .zip_mut_with(&ut, |ov, &uv| *ov = fire(uv));
    }
    (o.clone(), LifCache { u, o })
}

/// LIF backward through time (the reset's dependence on the spike included).
pub fn lif_backward(
    dout: &Array2<f32>,
    t_steps: usize,
    cfg: &LifConfig,
    cache: &LifCache,
) -> Array2<f32> {
    let rows = dout.nrows() / t_steps;
    let c = dout.ncols();
    let mut dz = Array2::zeros(dout.dim());
    let mut g_next = Array2::<f32>::zeros((rows, c)); // ∂L/∂u_{t+1}
    for t in (0..t_steps).rev() {
        let r = t * rows..(t + 1) * rows;
        let u = cache.u.slice(s![r.clone(), ..]);
        let o = cache.o.slice(s![r.clone(), ..]);
        let d = dout.slice(s![r.clone(), ..]);
        let mut g = Array2::zeros((rows, c));
        ndarray::Zip::from(&mut g)
            .and(&u)
            .and(&o)
            .and(&d)
            .and(&g_next)
            .for_each(|g, &u, &o, &d, &gn| {
                let sg = cfg.surrogate.grad(u - cfg.vth, cfg.width);
                // u_post = reset(u, o(u)); u_{t+1} = τ·u_post + z_{t+1}
                let dpost_du = match cfg.reset {
                    ResetKind::Hard => (1.0 - o) - u * sg,
                    ResetKind::Subtract => 1.0 - cfg.vth * sg,
                };
                let gpost = cfg.tau * gn;
                *g = d * sg + gpost * dpost_du;
            });
        dz.slice_mut(s![r, ..]).assign(&g);
        g_next = g;
    }
    dz
}

/// Softmax cross-entropy over `[B, classes]` logits: mean loss, correct count, ∂loss/∂logits.
pub fn softmax_ce(logits: &Array2<f32>, labels: &[u8]) -> (f32, usize, Array2<f32>) {
    let b = logits.nrows();
    let mut grad = Array2::zeros(logits.dim());
    let mut loss = 0.0f64;
    let mut correct = 0;
    for (i, row) in logits.rows().into_iter().enumerate() {
        let m = row.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let z: f32 = e.iter().sum();
        let y = labels[i] as usize;
        loss += -((e[y] / z).max(1e-30) as f64).ln();
        if argmax(row.as_slice().unwrap_or(&row.to_vec())) == y {
            correct += 1;
        }
        for (k, ev) in e.iter().enumerate() {
            grad[[i, k]] = (ev / z - f32::from(k == y)) / b as f32;
        }
    }
    ((loss / b as f64) as f32, correct, grad)
}

/// The class (argmax, lowest index on ties) of every row of `[B, classes]` logits.
pub fn classes(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .rows()
        .into_iter()
        .map(|r| argmax(&r.to_vec()))
        .collect()
}

/// Index of the largest value, lowest index on ties (the hardware head's rule).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
