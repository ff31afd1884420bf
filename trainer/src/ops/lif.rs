//! The LIF neuron over T steps: forward, and backward through time with a surrogate gradient.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{build_rows, write_all};

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
    #[inline]
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

/// What the LIF backward pass needs: the membranes before reset, per step (the spikes are
/// recomputed from them).
pub struct LifCache {
    u: Array2<f32>,
    relaxed: bool,
}

impl LifConfig {
    /// The spike for membrane `u`: the step, or with `relaxed` the surrogate's primitive.
    #[inline]
    fn fire(&self, u: f32, relaxed: bool) -> f32 {
        if relaxed {
            self.surrogate.primitive(u - self.vth, self.width)
        } else {
            f32::from(if self.strict {
                u > self.vth
            } else {
                u >= self.vth
            })
        }
    }
}

/// Elements per parallel block of the element-wise neuron passes.
const ELEMENT_BLOCK: usize = 1 << 14;

/// LIF over `T` steps: `z` is `[T·R, C]` (time-major, consumed: it becomes the membranes);
/// returns spikes of the same shape. `relaxed` replaces the step by the surrogate's primitive
/// (gradient checks only).
pub fn lif_forward(
    z: Array2<f32>,
    t_steps: usize,
    cfg: &LifConfig,
    relaxed: bool,
) -> (Array2<f32>, LifCache) {
    let mut u = if z.is_standard_layout() {
        z
    } else {
        z.as_standard_layout().into_owned()
    };
    let (rows, c) = u.dim();
    let step = u.len() / t_steps;
    let us = u.as_slice_mut().expect("standard layout");
    let fire = |u: f32| cfg.fire(u, relaxed);
    // Membranes step by step (a step's spikes are recomputed from its membrane where the
    // reset needs them), then all spikes at once.
    for t in 1..t_steps {
        let (done, rest) = us.split_at_mut(t * step);
        let prev = &done[(t - 1) * step..];
        rest[..step]
            .par_chunks_mut(ELEMENT_BLOCK)
            .zip(prev.par_chunks(ELEMENT_BLOCK))
            .for_each(|(cu, up)| match cfg.reset {
                ResetKind::Hard => cu
                    .iter_mut()
                    .zip(up)
                    .for_each(|(c, &p)| *c += cfg.tau * (p * (1.0 - fire(p)))),
                ResetKind::Subtract => cu
                    .iter_mut()
                    .zip(up)
                    .for_each(|(c, &p)| *c += cfg.tau * (p - cfg.vth * fire(p))),
            });
    }
    let us = &*us;
    let vth = cfg.vth;
    // SAFETY: every element is written. The step is matched outside the element loops so
    // that they vectorise.
    let o = unsafe {
        build_rows(rows, c, ELEMENT_BLOCK / c.max(1), |first, dst| {
            let src = us[first * c..].iter();
            match (relaxed, cfg.strict) {
                (true, _) => write_all(dst, src.map(|&v| fire(v))),
                (false, true) => write_all(dst, src.map(|&v| f32::from(u8::from(v > vth)))),
                (false, false) => write_all(dst, src.map(|&v| f32::from(u8::from(v >= vth)))),
            }
        })
    };
    (o, LifCache { u, relaxed })
}

/// LIF backward through time (the reset's dependence on the spike included).
pub fn lif_backward(
    dout: &Array2<f32>,
    t_steps: usize,
    cfg: &LifConfig,
    cache: &LifCache,
) -> Array2<f32> {
    let (vth, a) = (cfg.vth, cfg.width);
    match cfg.surrogate {
        Surrogate::Rectangular => lif_backward_with(dout, t_steps, cfg, cache, move |u| {
            Surrogate::Rectangular.grad(u - vth, a)
        }),
        Surrogate::Triangle => lif_backward_with(dout, t_steps, cfg, cache, move |u| {
            Surrogate::Triangle.grad(u - vth, a)
        }),
        Surrogate::Sigmoid => lif_backward_with(dout, t_steps, cfg, cache, move |u| {
            Surrogate::Sigmoid.grad(u - vth, a)
        }),
    }
}

/// [`lif_backward`] with the surrogate as a closure of the membrane, one instance per
/// surrogate shape so that the element loop vectorises.
fn lif_backward_with(
    dout: &Array2<f32>,
    t_steps: usize,
    cfg: &LifConfig,
    cache: &LifCache,
    sg: impl Fn(f32) -> f32 + Sync,
) -> Array2<f32> {
    let dout = dout.as_standard_layout();
    let ds = dout.as_slice().expect("standard layout");
    let us = cache.u.as_slice().expect("standard layout");
    let c = dout.ncols();
    let (rows, step) = (dout.nrows() / t_steps, ds.len() / t_steps);
    // ∂L/∂u per step, from the last step back.
    let mut steps: Vec<Array2<f32>> = Vec::with_capacity(t_steps);
    for t in (0..t_steps).rev() {
        let g_next = steps.last().map(|g| g.as_slice().expect("fresh"));
        let (u, d) = (&us[t * step..(t + 1) * step], &ds[t * step..(t + 1) * step]);
        // SAFETY: every element of every block is written.
        let g = unsafe {
            build_rows(rows, c, ELEMENT_BLOCK / c.max(1), |first, dst| {
                let r = first * c..first * c + dst.len();
                let (u, d) = (&u[r.clone()], &d[r.clone()]);
                match g_next {
                    None => write_all(dst, u.iter().zip(d).map(|(&u, &d)| d * sg(u))),
                    Some(gn) => {
                        // u_post = reset(u, o(u)); u_{t+1} = τ·u_post + z_{t+1}
                        let dpost_du = |u: f32, s: f32| match cfg.reset {
                            ResetKind::Hard => (1.0 - cfg.fire(u, cache.relaxed)) - u * s,
                            ResetKind::Subtract => 1.0 - cfg.vth * s,
                        };
                        let vals = u.iter().zip(d).zip(&gn[r]).map(|((&u, &d), &gn)| {
                            let s = sg(u);
                            d * s + cfg.tau * gn * dpost_du(u, s)
                        });
                        write_all(dst, vals)
                    }
                }
            })
        };
        steps.push(g);
    }
    if t_steps == 1 {
        return steps.pop().expect("one step");
    }
    steps.reverse();
    let views: Vec<_> = steps.iter().map(|g| g.view()).collect();
    ndarray::concatenate(ndarray::Axis(0), &views).expect("same widths")
}
