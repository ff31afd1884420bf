//! The one-time-step fast path of a spiking hidden layer followed by 2×2 pooling (max or
//! average): BatchNorm, the LIF step and the pooling in one pass over the layer's map, forward
//! and backward.
//!
//! At T = 1 a LIF neuron is a threshold on its BatchNorm output, so neither the normalised
//! map nor the spike map needs to exist: the forward pass writes only the pooled spikes (and,
//! for max pooling, which tap of each window won), and the backward pass recomputes the
//! membranes it needs (a window's winner, or all four taps for average pooling) from the
//! BatchNorm input it keeps anyway. A map-sized buffer is read or written three
//! times forward and four times backward instead of seven and nine, which matters because
//! these passes are bound by memory bandwidth (one step at batch 64 on an AVX2 machine: about
//! 10 ms less for the default network with max pooling, 17 ms less with average pooling). The
//! results are bit for bit those of the general path (`bn_forward`, `lif_forward`,
//! `pool_forward` and their backward passes), which `tests/fast_paths.rs` checks.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::ops::{self, BatchNorm, BnCache, LifConfig, PoolKind, Surrogate};

/// What the backward pass needs.
pub struct FusedCache {
    bn: BnCache,
    pool: PoolKind,
    /// Max pooling: the winning tap of every pooled element (0 top left … 3 bottom right).
    /// Empty for average pooling, whose four taps share the gradient alike.
    arg: Vec<u8>,
    h: usize,
    w: usize,
}

/// Whether the fast path applies: training mode at one time step, a hard threshold (not the
/// relaxed one of the gradient checks) and 2×2 pooling over a map of even size.
pub fn applies(t_steps: usize, relaxed: bool, pool: Option<PoolKind>, h: usize, w: usize) -> bool {
    t_steps == 1 && !relaxed && pool.is_some() && h.is_multiple_of(2) && w.is_multiple_of(2)
}

/// BatchNorm (training mode), the LIF step and 2×2 pooling of `y` (`[frames·H·W, C]`,
/// consumed). Returns the pooled spikes, the number of spikes before pooling, and the cache.
pub fn forward(
    y: Array2<f32>,
    bn: &mut BatchNorm,
    lif: &LifConfig,
    pool: PoolKind,
    frames: usize,
    h: usize,
    w: usize,
) -> (Array2<f32>, usize, FusedCache) {
    let cache = ops::bn_train_stats(y, bn);
    let vth = lif.vth;
    let map = Map { frames, h, w };
    // One instance per comparison, so that the channel loop vectorises.
    let (pooled, arg, spikes) = if lif.strict {
        pool_spikes(&cache, bn, pool, map, move |u| u8::from(u > vth))
    } else {
        pool_spikes(&cache, bn, pool, map, move |u| u8::from(u >= vth))
    };
    let cache = FusedCache {
        bn: cache,
        pool,
        arg,
        h,
        w,
    };
    (pooled, spikes, cache)
}

/// The shape of a layer's map: `frames` frames of `h × w` pixels.
#[derive(Clone, Copy)]
struct Map {
    frames: usize,
    h: usize,
    w: usize,
}

/// The pooled spikes, the winning taps (max pooling; empty for average) and the spike count
/// of [`forward`], for the step `fire(u)` (0 or 1).
fn pool_spikes(
    cache: &BnCache,
    bn: &BatchNorm,
    pool: PoolKind,
    Map { frames, h, w }: Map,
    fire: impl Fn(f32) -> u8 + Sync,
) -> (Array2<f32>, Vec<u8>, usize) {
    let (k, shift) = cache.affine(bn);
    let c = k.len();
    let xs = cache.xs();
    let (ho, wo) = (h / 2, w / 2);
    let (per_in, per_out) = (h * w * c, ho * wo * c);
    let mut out = vec![0.0f32; frames * per_out];
    let max = pool == PoolKind::Max;
    let mut arg = vec![0u8; if max { frames * per_out } else { 0 }];
    // Each frame's taps; average pooling keeps none.
    let mut won: Vec<&mut [u8]> = match max {
        true => arg.chunks_mut(per_out.max(1)).collect(),
        false => (0..frames).map(|_| Default::default()).collect(),
    };
    let counts: Vec<u64> = out
        .par_chunks_mut(per_out)
        .zip(won.par_iter_mut())
        .enumerate()
        .map(|(f, (dst, won))| {
            let src = &xs[f * per_in..(f + 1) * per_in];
            let mut count = 0u64;
            for o in 0..ho * wo {
                let (oy, ox) = (o / wo, o % wo);
                let taps = ops::window_taps(src, oy, ox, w, c);
                let params = k.iter().zip(&shift);
                let dst = &mut dst[o * c..(o + 1) * c];
                let window = match max {
                    true => max_window(dst, &mut won[o * c..(o + 1) * c], taps, params, &fire),
                    false => sum_window(dst, taps, params, &fire),
                };
                count += u64::from(window);
            }
            count
        })
        .collect();
    let pooled = Array2::from_shape_vec((frames * ho * wo, c), out).expect("shape");
    (pooled, arg, counts.iter().sum::<u64>() as usize)
}

/// The four taps of a window, one channel.
type Taps<'a> = ((&'a f32, &'a f32), (&'a f32, &'a f32));

/// One window of max pooling over its channels: writes the pooled spikes and the winning
/// taps; returns the window's spike count before pooling.
#[inline(always)]
fn max_window<'a>(
    dst: &mut [f32],
    won: &mut [u8],
    taps: impl Iterator<Item = Taps<'a>>,
    params: impl Iterator<Item = (&'a f32, &'a f32)>,
    fire: &impl Fn(f32) -> u8,
) -> u32 {
    let mut window = 0u32;
    for (((d, a), ((&x0, &x1), (&x2, &x3))), (&k, &s)) in
        dst.iter_mut().zip(won).zip(taps).zip(params)
    {
        let [s0, s1, s2, s3] = [x0, x1, x2, x3].map(|x| fire(x * k + s));
        // The first spiking tap wins, as the first of equal maxima does; with none spiking,
        // tap 0 (all four are equal).
        let (n0, n1, n2) = (1 - s0, 1 - s1, 1 - s2);
        *a = n0 * s1 + 2 * n0 * n1 * s2 + 3 * n0 * n1 * n2 * s3;
        *d = f32::from(s0 | s1 | s2 | s3);
        window += u32::from(s0 + s1 + s2 + s3);
    }
    window
}

/// One window of average pooling over its channels: writes the pooled spikes (the spike
/// count times ¼); returns the window's spike count.
#[inline(always)]
fn sum_window<'a>(
    dst: &mut [f32],
    taps: impl Iterator<Item = Taps<'a>>,
    params: impl Iterator<Item = (&'a f32, &'a f32)>,
    fire: &impl Fn(f32) -> u8,
) -> u32 {
    let mut window = 0u32;
    for ((d, ((&x0, &x1), (&x2, &x3))), (&k, &s)) in dst.iter_mut().zip(taps).zip(params) {
        let n = [x0, x1, x2, x3].map(|x| fire(x * k + s)).iter().sum::<u8>();
        // The general path's (s0 + s1 + s2 + s3)·¼: exact, whatever the order.
        *d = f32::from(n) * 0.25;
        window += u32::from(n);
    }
    window
}

/// Backward of [`forward`] from ∂L/∂(pooled spikes): returns ∂L/∂y and accumulates dγ, dβ.
pub fn backward(
    dpooled: ArrayView2<f32>,
    bn: &BatchNorm,
    lif: &LifConfig,
    cache: &FusedCache,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Array2<f32> {
    let (vth, a) = (lif.vth, lif.width);
    let (g, d) = ((dpooled, bn, cache), (dgamma, dbeta));
    // One instance per surrogate shape, so that the element loops vectorise.
    match lif.surrogate {
        Surrogate::Rectangular => {
            backward_with(g, d, move |u| Surrogate::Rectangular.grad(u - vth, a))
        }
        Surrogate::Triangle => backward_with(g, d, move |u| Surrogate::Triangle.grad(u - vth, a)),
        Surrogate::Sigmoid => backward_with(g, d, move |u| Surrogate::Sigmoid.grad(u - vth, a)),
    }
}

/// [`backward`] with the surrogate `sg(u)` of the membrane.
fn backward_with(
    (dpooled, bn, cache): (ArrayView2<f32>, &BatchNorm, &FusedCache),
    (dgamma, dbeta): (&mut [f32], &mut [f32]),
    sg: impl Fn(f32) -> f32 + Sync,
) -> Array2<f32> {
    match cache.pool {
        PoolKind::Max => {
            let (du, xc) = winner_grads(dpooled, bn, cache, sg);
            let rows = WinnerRows {
                du: &du,
                xc: &xc,
                arg: &cache.arg,
                h: cache.h,
                w: cache.w,
            };
            ops::bn_backward_rows(bn, &cache.bn, dgamma, dbeta, &rows)
        }
        PoolKind::Avg => {
            let dpooled = dpooled.as_standard_layout();
            let (k, shift) = cache.bn.affine(bn);
            let rows = SharedRows {
                g: dpooled.as_slice().expect("standard layout"),
                xs: cache.bn.xs(),
                mean: cache.bn.mean(),
                k: &k,
                shift: &shift,
                h: cache.h,
                w: cache.w,
                sg,
            };
            ops::bn_backward_rows(bn, &cache.bn, dgamma, dbeta, &rows)
        }
    }
}

/// ∂L/∂u and the centred input `x − μ` of every window's winning neuron, pooled-map sized
/// (`[frames·(H/2)·(W/2)·C]`): the pooled gradient times the surrogate at the winner's
/// membrane, recomputed from the BatchNorm input.
fn winner_grads(
    dpooled: ArrayView2<f32>,
    bn: &BatchNorm,
    cache: &FusedCache,
    sg: impl Fn(f32) -> f32 + Sync,
) -> (Vec<f32>, Vec<f32>) {
    let dpooled = dpooled.as_standard_layout();
    let gs = dpooled.as_slice().expect("standard layout");
    let c = dpooled.ncols();
    let (h, w) = (cache.h, cache.w);
    let (ho, wo) = (h / 2, w / 2);
    let (per_in, per_out) = (h * w * c, ho * wo * c);
    let (k, shift) = cache.bn.affine(bn);
    let mean = cache.bn.mean();
    let xs = cache.bn.xs();
    let len = gs.len();
    let (mut du, mut xc) = (
        Vec::<f32>::with_capacity(len),
        Vec::<f32>::with_capacity(len),
    );
    du.spare_capacity_mut()[..len]
        .par_chunks_mut(per_out.max(1))
        .zip(xc.spare_capacity_mut()[..len].par_chunks_mut(per_out.max(1)))
        .enumerate()
        .for_each(|(f, (du, xc))| {
            let src = &xs[f * per_in..(f + 1) * per_in];
            for o in 0..ho * wo {
                let (oy, ox) = (o / wo, o % wo);
                let taps = ops::window_taps(src, oy, ox, w, c);
                let r = f * per_out + o * c..f * per_out + (o + 1) * c;
                let pooled = cache.arg[r.clone()].iter().zip(&gs[r]);
                let outs = du[o * c..(o + 1) * c]
                    .iter_mut()
                    .zip(&mut xc[o * c..(o + 1) * c]);
                let params = k.iter().zip(&shift).zip(mean);
                for (((d, xc), (&won, &g)), (((&x0, &x1), (&x2, &x3)), ((&k, &s), &m))) in
                    outs.zip(pooled).zip(taps.zip(params))
                {
                    let x = match won {
                        0 => x0,
                        1 => x1,
                        2 => x2,
                        _ => x3,
                    };
                    d.write(g * sg(x * k + s));
                    xc.write(x - m);
                }
            }
        });
    // SAFETY: every pooled element of every frame was written above.
    unsafe {
        du.set_len(len);
        xc.set_len(len);
    }
    (du, xc)
}

/// The rows of ∂L/∂u: a window's winner gradient where the row's tap won, zero elsewhere.
struct WinnerRows<'a> {
    du: &'a [f32],
    xc: &'a [f32],
    arg: &'a [u8],
    h: usize,
    w: usize,
}

/// The pooled elements (`c` channels) of the window holding row `r` of an `h × w` map, and
/// the row's tap in it.
fn window(r: usize, c: usize, h: usize, w: usize) -> (std::ops::Range<usize>, u8) {
    let (f, p) = (r / (h * w), r % (h * w));
    let (iy, ix) = (p / w, p % w);
    let o = ((f * (h / 2) + iy / 2) * (w / 2) + ix / 2) * c;
    (o..o + c, ((iy & 1) * 2 + (ix & 1)) as u8)
}

impl ops::BnGradRows for WinnerRows<'_> {
    fn dy<'a>(&'a self, r: usize, buf: &'a mut [f32]) -> &'a [f32] {
        let (o, tap) = window(r, buf.len(), self.h, self.w);
        for ((d, &won), &g) in buf.iter_mut().zip(&self.arg[o.clone()]).zip(&self.du[o]) {
            *d = if won == tap { g } else { 0.0 };
        }
        buf
    }

    fn dy_centred<'a>(
        &'a self,
        r: usize,
        buf: &'a mut [f32],
        _xc: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]) {
        let (o, _) = window(r, buf.len(), self.h, self.w);
        (self.dy(r, buf), &self.xc[o])
    }
}

/// The rows of ∂L/∂u under average pooling: each tap gets a quarter of its window's gradient
/// times the surrogate at its own membrane, recomputed from the BatchNorm input (the general
/// path's `(¼·g)·sg(u)`, in the same order).
struct SharedRows<'a, F> {
    g: &'a [f32],
    xs: &'a [f32],
    mean: &'a [f32],
    k: &'a [f32],
    shift: &'a [f32],
    h: usize,
    w: usize,
    sg: F,
}

impl<F: Fn(f32) -> f32 + Sync> ops::BnGradRows for SharedRows<'_, F> {
    fn dy<'a>(&'a self, r: usize, buf: &'a mut [f32]) -> &'a [f32] {
        let c = buf.len();
        let (o, _) = window(r, c, self.h, self.w);
        let x = &self.xs[r * c..(r + 1) * c];
        let params = self.k.iter().zip(self.shift);
        for ((d, (&g, &x)), (&k, &s)) in buf.iter_mut().zip(self.g[o].iter().zip(x)).zip(params) {
            *d = (0.25 * g) * (self.sg)(x * k + s);
        }
        buf
    }

    fn dy_centred<'a>(
        &'a self,
        r: usize,
        buf: &'a mut [f32],
        xc: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]) {
        (self.dy(r, buf), ops::centre_row(self.xs, self.mean, r, xc))
    }
}
