//! Forward and backward passes of the pieces a network is built from. Feature maps are
//! matrices `[frames·H·W, C]` (raster order, channels fastest: the IR's layout), frames being
//! `T·B` (time-major) images.

use std::mem::MaybeUninit;

use ndarray::{Array2, ArrayView2};
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
    /// Calls `f(column offset, input, length)` for runs of consecutive taps that cover every
    /// tap of every output position of one frame, in order: the column offset inside the
    /// im2col matrix of the frame, `Some(input offset)` inside the frame's map for a run of
    /// in-bounds taps or `None` for one in the zero padding, and the run's length in values.
    /// A kernel row's in-bounds taps are adjacent in the input too, so each is one run
    /// (copying runs instead of single taps matters when the channels are few).
    #[inline]
    pub(crate) fn for_each_run(&self, mut f: impl FnMut(usize, Option<usize>, usize)) {
        let (k, c) = (self.k as isize, self.c);
        for oy in 0..self.ho {
            for ox in 0..self.wo {
                let row = (oy * self.wo + ox) * self.fan_in();
                let ix0 = (ox * self.stride) as isize - self.pad as isize;
                // In-bounds kx: 0 ≤ ix0 + kx < w.
                let lo = (-ix0).clamp(0, k);
                let hi = (self.w as isize - ix0).clamp(lo, k);
                for ky in 0..self.k {
                    let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                    let col = row + ky * self.k * c;
                    if !(0..self.h as isize).contains(&iy) {
                        f(col, None, self.k * c);
                        continue;
                    }
                    let (lo, hi) = (lo as usize, hi as usize);
                    if lo > 0 {
                        f(col, None, lo * c);
                    }
                    if hi > lo {
                        let inp = (iy as usize * self.w + (ix0 + lo as isize) as usize) * c;
                        f(col + lo * c, Some(inp), (hi - lo) * c);
                    }
                    if hi < self.k {
                        f(col + hi * c, None, (self.k - hi) * c);
                    }
                }
            }
        }
    }
}

/// A `[rows, cols]` matrix built in parallel blocks of `block` rows: `fill(first row, block)`
/// writes its block. Nothing is zeroed first (zeroing the buffers of a step was a quarter of
/// its time).
///
/// # Safety
/// `fill` must write every element of the block it is given.
unsafe fn build_rows(
    rows: usize,
    cols: usize,
    block: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Array2<f32> {
    let mut out = Array2::<f32>::uninit((rows, cols));
    let slice = out.as_slice_mut().expect("fresh array");
    if cols > 0 {
        slice
            .par_chunks_mut(block.max(1) * cols)
            .enumerate()
            .for_each(|(b, blk)| fill(b * block.max(1), blk));
    }
    // SAFETY: the caller's `fill` wrote every element.
    unsafe { out.assume_init() }
}

/// Writes `src` into `dst` (same length).
#[inline]
fn write_all(dst: &mut [MaybeUninit<f32>], src: impl IntoIterator<Item = f32>) {
    for (d, v) in dst.iter_mut().zip(src) {
        d.write(v);
    }
}

/// im2col: `x` is `[frames·H·W, C]`; returns `[frames·Ho·Wo, K·K·C]`. Frames run in
/// parallel.
pub fn im2col(x: ArrayView2<f32>, g: &ConvGeom, frames: usize) -> Array2<f32> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let per_in = g.h * g.w * g.c;
    // SAFETY: `im2col_frame` writes every element of the frame it is given.
    unsafe {
        build_rows(
            frames * g.ho * g.wo,
            g.fan_in(),
            g.ho * g.wo,
            |first, dst| im2col_frame(&xs[first / (g.ho * g.wo) * per_in..][..per_in], g, dst),
        )
    }
}

/// [`im2col`] on the calling thread, into `dst` (`frames·Ho·Wo·K·K·C` values).
pub(crate) fn im2col_serial(xs: &[f32], g: &ConvGeom, frames: usize, dst: &mut Vec<f32>) {
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo * g.fan_in());
    dst.clear();
    dst.reserve(frames * per_out);
    let spare = &mut dst.spare_capacity_mut()[..frames * per_out];
    for (f, d) in spare.chunks_exact_mut(per_out.max(1)).enumerate() {
        im2col_frame(&xs[f * per_in..(f + 1) * per_in], g, d);
    }
    // SAFETY: every frame's columns were written above.
    unsafe { dst.set_len(frames * per_out) };
}

/// The im2col rows of one frame: every tap of every output position, from the input or as
/// padding.
fn im2col_frame(src: &[f32], g: &ConvGeom, dst: &mut [MaybeUninit<f32>]) {
    g.for_each_run(|col, inp, len| {
        let d = &mut dst[col..col + len];
        match inp {
            Some(i) => write_all(d, src[i..i + len].iter().copied()),
            None => write_all(d, std::iter::repeat(0.0)),
        }
    });
}

/// col2im, the adjoint of [`im2col`]: sums column gradients back onto the input map. Frames
/// run in parallel.
pub fn col2im(dcols: ArrayView2<f32>, g: &ConvGeom, frames: usize) -> Array2<f32> {
    let dcols = dcols.as_standard_layout();
    let ds = dcols.as_slice().expect("standard layout");
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo * g.fan_in());
    let mut out = vec![0.0f32; frames * per_in];
    out.par_chunks_mut(per_in.max(1))
        .enumerate()
        .for_each(|(f, dst)| col2im_frame(&ds[f * per_out..(f + 1) * per_out], g, dst));
    Array2::from_shape_vec((frames * g.h * g.w, g.c), out).expect("shape")
}

/// [`col2im`] of one frame, added into `dst` (the frame's input map).
pub(crate) fn col2im_frame(src: &[f32], g: &ConvGeom, dst: &mut [f32]) {
    g.for_each_run(|col, inp, len| {
        if let Some(i) = inp {
            for (d, s) in dst[i..i + len].iter_mut().zip(&src[col..col + len]) {
                *d += s;
            }
        }
    });
}

/// 2×2 stride-2 pooling kind (an odd last row/column is dropped, as in the IR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    /// Max pooling: on spikes, the OR of the IR's `Pool::Or`.
    Max,
    /// Average pooling: the IR's `Pool::Sum` with the ÷4 folded downstream.
    Avg,
}

/// The four taps of 2×2 window `(oy, ox)` of one frame's map (`w` wide, `c` channels), channel
/// by channel: `((top left, top right), (bottom left, bottom right))`.
#[inline]
pub(crate) fn window_taps(
    src: &[f32],
    oy: usize,
    ox: usize,
    w: usize,
    c: usize,
) -> impl Iterator<Item = ((&f32, &f32), (&f32, &f32))> {
    let [t0, t1, t2, t3] = [0, 1, w, w + 1].map(|d| &src[(2 * oy * w + 2 * ox + d) * c..][..c]);
    t0.iter().zip(t1).zip(t2.iter().zip(t3))
}

/// Pools `[frames·H·W, C]` to `[frames·(H/2)·(W/2), C]`; also returns, for max pooling, which
/// tap of its window (0 top left, 1 top right, 2 bottom left, 3 bottom right; the first of
/// equal maxima) won each output element, for the backward pass. Frames run in parallel.
pub fn pool_forward(
    x: ArrayView2<f32>,
    kind: PoolKind,
    frames: usize,
    h: usize,
    w: usize,
) -> (Array2<f32>, Vec<u8>) {
    let c = x.ncols();
    let (ho, wo) = (h / 2, w / 2);
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let (per_in, per_out) = (h * w * c, ho * wo * c);
    let mut out = vec![0.0f32; frames * per_out];
    let max = kind == PoolKind::Max;
    let mut arg = vec![0u8; if max { frames * per_out } else { 0 }];
    let pool_frame = |f: usize, dst: &mut [f32], arg: &mut [u8]| {
        let src = &xs[f * per_in..(f + 1) * per_in];
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (oy * wo + ox) * c;
                let taps = window_taps(src, oy, ox, w, c);
                let dst = &mut dst[o..o + c];
                if max {
                    // Branch-free selects, so that the channel loop vectorises.
                    for ((d, a), ((&v0, &v1), (&v2, &v3))) in
                        dst.iter_mut().zip(&mut arg[o..o + c]).zip(taps)
                    {
                        let (mut best, mut i) = (v0, 0u8);
                        (best, i) = if v1 > best { (v1, 1) } else { (best, i) };
                        (best, i) = if v2 > best { (v2, 2) } else { (best, i) };
                        (best, i) = if v3 > best { (v3, 3) } else { (best, i) };
                        *d = best;
                        *a = i;
                    }
                } else {
                    for (d, ((&v0, &v1), (&v2, &v3))) in dst.iter_mut().zip(taps) {
                        *d = (v0 + v1 + v2 + v3) * 0.25;
                    }
                }
            }
        }
    };
    if max {
        out.par_chunks_mut(per_out)
            .zip(arg.par_chunks_mut(per_out))
            .enumerate()
            .for_each(|(f, (dst, a))| pool_frame(f, dst, a));
    } else {
        out.par_chunks_mut(per_out)
            .enumerate()
            .for_each(|(f, dst)| pool_frame(f, dst, &mut []));
    }
    let out = Array2::from_shape_vec((frames * ho * wo, c), out).expect("shape");
    (out, arg)
}

/// Backward of [`pool_forward`]. The windows do not overlap, so every input element receives
/// the gradient of at most one output. Frames run in parallel.
pub fn pool_backward(
    dy: ArrayView2<f32>,
    kind: PoolKind,
    arg: &[u8],
    frames: usize,
    h: usize,
    w: usize,
) -> Array2<f32> {
    let c = dy.ncols();
    let (ho, wo) = (h / 2, w / 2);
    let dy = dy.as_standard_layout();
    let ds = dy.as_slice().expect("standard layout");
    let (per_in, per_out) = (h * w * c, ho * wo * c);
    let mut dx = vec![0.0f32; frames * per_in];
    dx.par_chunks_mut(per_in).enumerate().for_each(|(f, dst)| {
        let src = &ds[f * per_out..(f + 1) * per_out];
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (oy * wo + ox) * c;
                let g = &src[o..o + c];
                for (tap, d) in [0, 1, w, w + 1].into_iter().enumerate() {
                    let start = (2 * oy * w + 2 * ox + d) * c;
                    let dst = &mut dst[start..start + c];
                    match kind {
                        PoolKind::Max => {
                            let won = &arg[f * per_out + o..][..c];
                            for ((d, &g), &a) in dst.iter_mut().zip(g).zip(won) {
                                *d = if usize::from(a) == tap { g } else { 0.0 };
                            }
                        }
                        PoolKind::Avg => {
                            dst.iter_mut().zip(g).for_each(|(d, &g)| *d = 0.25 * g);
                        }
                    }
                }
            }
        }
    });
    Array2::from_shape_vec((frames * h * w, c), dx).expect("shape")
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

/// What the BatchNorm backward pass needs: the input and its batch statistics (x̂ is
/// recomputed from them, which costs less than writing and reading it back).
pub struct BnCache {
    x: Array2<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Rows per block of the per-channel reductions: blocks run in parallel and their partial sums
/// are added in block order, so the result does not depend on the thread count.
const REDUCE_ROWS: usize = 512;

/// Per-block partial sums over the rows of a `[rows, C]` slice, added in block order (in f64):
/// `add(row, acc)` accumulates one row into `acc` (`width` values).
fn block_sums(
    xs: &[f32],
    c: usize,
    width: usize,
    add: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) -> Vec<f64> {
    let partials: Vec<Vec<f32>> = xs
        .par_chunks(REDUCE_ROWS * c)
        .enumerate()
        .map(|(b, block)| {
            let mut acc = vec![0.0f32; width];
            for (i, row) in block.chunks_exact(c).enumerate() {
                add(b * REDUCE_ROWS + i, row, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0.0f64; width];
    for p in partials {
        total
            .iter_mut()
            .zip(&p)
            .for_each(|(t, &v)| *t += f64::from(v));
    }
    total
}

/// `x·a + b` per channel of a `[rows, C]` slice.
fn affine_rows(xs: &[f32], a: &[f32], b: &[f32]) -> Array2<f32> {
    let c = a.len();
    // SAFETY: every row of every block is written (the zip's shortest input is the row).
    unsafe {
        build_rows(xs.len() / c, c, REDUCE_ROWS, |first, dst| {
            for (i, d) in dst.chunks_exact_mut(c).enumerate() {
                let x = &xs[(first + i) * c..(first + i + 1) * c];
                write_all(d, x.iter().zip(a).zip(b).map(|((&x, &a), &b)| x * a + b));
            }
        })
    }
}

/// BatchNorm forward. Training mode uses batch statistics (and updates the running ones) and
/// keeps the input for the backward pass.
pub fn bn_forward(
    x: Array2<f32>,
    bn: &mut BatchNorm,
    train: bool,
) -> (Array2<f32>, Option<BnCache>) {
    if !train {
        let x = x.as_standard_layout();
        let (a, b) = bn.eval_affine();
        let a: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        return (
            affine_rows(x.as_slice().expect("standard layout"), &a, &b),
            None,
        );
    }
    let cache = bn_train_stats(x, bn);
    let (k, shift) = cache.affine(bn);
    let y = affine_rows(cache.xs(), &k, &shift);
    (y, Some(cache))
}

/// Training mode's batch statistics of `x` (`[rows, C]`, consumed into the cache); updates
/// the running statistics.
pub(crate) fn bn_train_stats(x: Array2<f32>, bn: &mut BatchNorm) -> BnCache {
    let x = if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    };
    let xs = x.as_slice().expect("standard layout");
    let c = x.ncols();
    let n = x.nrows() as f32;
    // One pass: sums of d = x − s and of d² about a shift s near the mean (the first row), so
    // that E[d²] − E[d]² does not cancel.
    let shift = xs.get(..c).map_or_else(|| vec![0.0; c], <[f32]>::to_vec);
    let sums = block_sums(xs, c, 2 * c, |_, row, acc| {
        let (sum, squares) = acc.split_at_mut(c);
        for (((s, q), &v), &m) in sum.iter_mut().zip(squares).zip(row).zip(&shift) {
            let d = v - m;
            *s += d;
            *q += d * d;
        }
    });
    let (sum, squares) = sums.split_at(c);
    let n64 = f64::from(n);
    let mean: Vec<f32> = (0..c)
        .map(|ch| (f64::from(shift[ch]) + sum[ch] / n64) as f32)
        .collect();
    let var: Vec<f32> = (0..c)
        .map(|ch| (squares[ch] / n64 - (sum[ch] / n64).powi(2)).max(0.0) as f32)
        .collect();
    let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect();
    let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    for ch in 0..c {
        bn.mean[ch] = (1.0 - BN_MOMENTUM) * bn.mean[ch] + BN_MOMENTUM * mean[ch];
        bn.var[ch] = (1.0 - BN_MOMENTUM) * bn.var[ch] + BN_MOMENTUM * var[ch] * unbiased;
    }
    BnCache { x, mean, inv_std }
}

impl BnCache {
    /// The normalised input as `x·k + shift` per channel: γ·(x − μ)/σ + β with k = γ/σ.
    pub(crate) fn affine(&self, bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
        let k: Vec<f32> = (0..self.mean.len())
            .map(|ch| bn.gamma[ch] * self.inv_std[ch])
            .collect();
        let shift = (0..k.len())
            .map(|ch| bn.beta[ch] - self.mean[ch] * k[ch])
            .collect();
        (k, shift)
    }

    /// The batch mean per channel.
    pub(crate) fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The input, `[rows, C]` row-major.
    pub(crate) fn xs(&self) -> &[f32] {
        self.x.as_slice().expect("standard layout")
    }
}

/// BatchNorm backward: returns dx and accumulates dγ, dβ.
pub fn bn_backward(
    dy: &Array2<f32>,
    bn: &BatchNorm,
    cache: &BnCache,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Array2<f32> {
    let dy = dy.as_standard_layout();
    let rows = MaterialRows {
        dy: dy.as_slice().expect("standard layout"),
        xs: cache.xs(),
        mean: &cache.mean,
    };
    bn_backward_rows(bn, cache, dgamma, dbeta, &rows)
}

/// ∂L/∂y as a matrix, and the input it centres.
struct MaterialRows<'a> {
    dy: &'a [f32],
    xs: &'a [f32],
    mean: &'a [f32],
}

impl BnGradRows for MaterialRows<'_> {
    fn dy<'a>(&'a self, r: usize, buf: &'a mut [f32]) -> &'a [f32] {
        &self.dy[r * buf.len()..(r + 1) * buf.len()]
    }

    fn dy_centred<'a>(
        &'a self,
        r: usize,
        buf: &'a mut [f32],
        xc: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]) {
        let c = buf.len();
        (
            &self.dy[r * c..(r + 1) * c],
            centre_row(self.xs, self.mean, r, xc),
        )
    }
}

/// Row `r` of the `[rows, C]` input `xs` centred, `x − μ`, written into `xc` (`C` long).
pub(crate) fn centre_row<'a>(xs: &[f32], mean: &[f32], r: usize, xc: &'a mut [f32]) -> &'a [f32] {
    let c = xc.len();
    for ((xc, &x), &m) in xc.iter_mut().zip(&xs[r * c..(r + 1) * c]).zip(mean) {
        *xc = x - m;
    }
    xc
}

/// The rows the BatchNorm backward pass reads, computed on the fly by its caller instead of
/// being materialised (or borrowed from it where they are).
pub(crate) trait BnGradRows: Sync {
    /// ∂L/∂y of row `r` (`buf.len()` channels): written into `buf`, or the caller's own row.
    fn dy<'a>(&'a self, r: usize, buf: &'a mut [f32]) -> &'a [f32];
    /// ∂L/∂y of row `r` as [`Self::dy`], and the centred input `x − μ` where ∂L/∂y is not
    /// zero (elsewhere anything finite), written into `xc` or the caller's own.
    fn dy_centred<'a>(
        &'a self,
        r: usize,
        buf: &'a mut [f32],
        xc: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]);
}

/// BatchNorm backward with ∂L/∂y given row by row. Returns dx and accumulates dγ, dβ.
pub(crate) fn bn_backward_rows(
    bn: &BatchNorm,
    cache: &BnCache,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    grad: &impl BnGradRows,
) -> Array2<f32> {
    let (rows, c) = cache.x.dim();
    let n = rows as f32;
    let xs = cache.xs();
    let (mean, inv_std) = (&cache.mean, &cache.inv_std);
    // One pass for both sums: [Σdy | Σdy·(x − μ)] (the second times 1/σ is Σdy·x̂), in
    // blocks added in block order.
    let partials: Vec<Vec<f32>> = (0..rows.div_ceil(REDUCE_ROWS))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0.0f32; 2 * c];
            let (mut dy_buf, mut xc_buf) = (vec![0.0f32; c], vec![0.0f32; c]);
            let (sum_dy, sum_dy_xc) = acc.split_at_mut(c);
            for r in b * REDUCE_ROWS..((b + 1) * REDUCE_ROWS).min(rows) {
                let (dy, xc) = grad.dy_centred(r, &mut dy_buf, &mut xc_buf);
                for (((s, sx), &d), &xc) in sum_dy.iter_mut().zip(&mut *sum_dy_xc).zip(dy).zip(xc) {
                    *s += d;
                    *sx += d * xc;
                }
            }
            acc
        })
        .collect();
    let mut sums = vec![0.0f32; 2 * c];
    for p in partials {
        sums.iter_mut().zip(&p).for_each(|(t, v)| *t += v);
    }
    let (sum_dy, sum_dy_xc) = sums.split_at(c);
    // dx = γ/σ·(dy − mean(dy) − x̂·mean(dy·x̂)) = dy·a + x·b + e per channel.
    let (mut a, mut b, mut e) = (vec![0.0; c], vec![0.0; c], vec![0.0; c]);
    for ch in 0..c {
        let sum_dy_xhat = sum_dy_xc[ch] * inv_std[ch];
        dgamma[ch] += sum_dy_xhat;
        dbeta[ch] += sum_dy[ch];
        let k = bn.gamma[ch] * inv_std[ch];
        let slope = k * inv_std[ch] * sum_dy_xhat / n;
        a[ch] = k;
        b[ch] = -slope;
        e[ch] = slope * mean[ch] - k * sum_dy[ch] / n;
    }
    // SAFETY: every row of every block is written (the zip's shortest input is the row).
    unsafe {
        build_rows(rows, c, REDUCE_ROWS, |first, dst| {
            let mut dy_buf = vec![0.0f32; c];
            for (i, d) in dst.chunks_exact_mut(c).enumerate() {
                let r = first + i;
                let dy = grad.dy(r, &mut dy_buf);
                let vals = dy
                    .iter()
                    .zip(&xs[r * c..(r + 1) * c])
                    .zip(a.iter().zip(&b).zip(&e))
                    .map(|((&d, &x), ((&a, &b), &e))| d * a + x * b + e);
                write_all(d, vals);
            }
        })
    }
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

/// Softmax cross-entropy over `[B, classes]` logits: mean loss, correct count, ∂loss/∂logits.
pub fn softmax_ce(logits: &Array2<f32>, labels: &[u8]) -> (f32, usize, Array2<f32>) {
    softmax_ce_smoothed(logits, labels, 0.0)
}

/// Cross-entropy against label-smoothed targets `q = (1 − ε)·onehot + ε/K` (Szegedy et al.
/// 2016): the gradient is `softmax − q`, so a confident correct logit stops being pushed further
/// once its probability passes `1 − ε + ε/K`. `ε = 0` is plain cross-entropy. Returns the mean
/// loss, the number of correct rows and the gradient of the mean loss.
pub fn softmax_ce_smoothed(
    logits: &Array2<f32>,
    labels: &[u8],
    smoothing: f32,
) -> (f32, usize, Array2<f32>) {
    let b = logits.nrows();
    let k_classes = logits.ncols();
    let off = smoothing / k_classes as f32;
    let on = 1.0 - smoothing + off;
    let mut grad = Array2::zeros(logits.dim());
    let mut loss = 0.0f64;
    let mut correct = 0;
    for (i, row) in logits.rows().into_iter().enumerate() {
        let m = row.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let z: f32 = e.iter().sum();
        let y = labels[i] as usize;
        if argmax(row.as_slice().unwrap_or(&row.to_vec())) == y {
            correct += 1;
        }
        for (k, ev) in e.iter().enumerate() {
            let q = if k == y { on } else { off };
            if q > 0.0 {
                loss += -(q as f64) * ((ev / z).max(1e-30) as f64).ln();
            }
            grad[[i, k]] = (ev / z - q) / b as f32;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(h: usize, w: usize, c: usize, k: usize, stride: usize, pad: usize) -> ConvGeom {
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (w + 2 * pad - k) / stride + 1,
        );
        ConvGeom {
            h,
            w,
            c,
            k,
            stride,
            pad,
            ho,
            wo,
        }
    }

    /// im2col against its definition, and col2im as its adjoint (⟨im2col x, y⟩ = ⟨x, col2im y⟩),
    /// with padding, stride 2 and several frames.
    #[test]
    fn im2col_matches_the_definition_and_col2im_is_its_adjoint() {
        for g in [
            geom(5, 4, 3, 3, 1, 1),
            geom(7, 6, 2, 3, 2, 1),
            geom(6, 6, 2, 5, 1, 0),
        ] {
            let frames = 3;
            let x = Array2::from_shape_fn((frames * g.h * g.w, g.c), |(r, ch)| {
                ((r * 7 + ch * 13) % 17) as f32 - 8.0
            });
            let cols = im2col(x.view(), &g, frames);
            assert_eq!(cols.dim(), (frames * g.ho * g.wo, g.fan_in()));
            for f in 0..frames {
                for (oy, ox) in (0..g.ho).flat_map(|y| (0..g.wo).map(move |x| (y, x))) {
                    for (ky, kx, ch) in (0..g.k)
                        .flat_map(|a| (0..g.k).flat_map(move |b| (0..g.c).map(move |c| (a, b, c))))
                    {
                        let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                        let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                        let want = if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            0.0
                        } else {
                            x[[(f * g.h + iy as usize) * g.w + ix as usize, ch]]
                        };
                        let row = (f * g.ho + oy) * g.wo + ox;
                        assert_eq!(cols[[row, (ky * g.k + kx) * g.c + ch]], want);
                    }
                }
            }
            let y = Array2::from_shape_fn(cols.dim(), |(r, c)| ((r * 3 + c * 5) % 11) as f32);
            let back = col2im(y.view(), &g, frames);
            assert_eq!((&cols * &y).sum(), (&x * &back).sum());
        }
    }

    /// The one-pass batch statistics against a two-pass f64 reference, on data far from zero
    /// (where E[x²] − E[x]² would cancel without the shift) and spread over many blocks.
    #[test]
    fn batch_statistics_match_a_two_pass_reference() {
        let (rows, c) = (3 * REDUCE_ROWS + 17, 3);
        let x = Array2::from_shape_fn((rows, c), |(r, ch)| {
            1000.0 * ch as f32 + ((r * 37 + ch * 11) % 101) as f32 * 0.01 - 0.3
        });
        let mut bn = BatchNorm::new(c);
        let cache = bn_train_stats(x.clone(), &mut bn);
        for ch in 0..c {
            let col: Vec<f64> = x.column(ch).iter().map(|&v| f64::from(v)).collect();
            let mean = col.iter().sum::<f64>() / rows as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            assert!((f64::from(cache.mean[ch]) - mean).abs() < 1e-4, "mean {ch}");
            let inv = 1.0 / (var + f64::from(BN_EPS)).sqrt();
            let rel = (f64::from(cache.inv_std[ch]) - inv).abs() / inv;
            assert!(
                rel < 1e-4,
                "1/σ of channel {ch}: {} vs {inv}",
                cache.inv_std[ch]
            );
        }
    }

    /// Pooling against its definition; the backward pass routes (max) or spreads (average)
    /// each gradient to its window.
    #[test]
    fn pooling_matches_the_definition() {
        let (frames, h, w, c) = (2, 4, 6, 3);
        let x = Array2::from_shape_fn((frames * h * w, c), |(r, ch)| ((r * 5 + ch * 3) % 7) as f32);
        let (mx, arg) = pool_forward(x.view(), PoolKind::Max, frames, h, w);
        let (av, _) = pool_forward(x.view(), PoolKind::Avg, frames, h, w);
        let dy = Array2::from_shape_fn(mx.dim(), |(r, ch)| (r * c + ch) as f32 + 1.0);
        let dmax = pool_backward(dy.view(), PoolKind::Max, &arg, frames, h, w);
        let davg = pool_backward(dy.view(), PoolKind::Avg, &arg, frames, h, w);
        for f in 0..frames {
            for (oy, ox) in (0..h / 2).flat_map(|y| (0..w / 2).map(move |x| (y, x))) {
                let o = (f * h / 2 + oy) * (w / 2) + ox;
                let rows = [0, 1, w, w + 1].map(|d| (f * h + 2 * oy) * w + 2 * ox + d);
                for ch in 0..c {
                    let v = rows.map(|r| x[[r, ch]]);
                    let first_max = (0..4).fold(0, |b, i| if v[i] > v[b] { i } else { b });
                    assert_eq!(mx[[o, ch]], v[first_max]);
                    assert_eq!(usize::from(arg[o * c + ch]), first_max);
                    assert_eq!(av[[o, ch]], v.iter().sum::<f32>() * 0.25);
                    for (i, &r) in rows.iter().enumerate() {
                        let routed = if i == first_max { dy[[o, ch]] } else { 0.0 };
                        assert_eq!(dmax[[r, ch]], routed);
                        assert_eq!(davg[[r, ch]], 0.25 * dy[[o, ch]]);
                    }
                }
            }
        }
    }

    /// Label-smoothed cross-entropy: its gradient against central differences of its loss,
    /// ε = 0 against cross-entropy written out, and its minimum where softmax equals q.
    #[test]
    fn smoothed_cross_entropy_gradient_and_reduction() {
        let logits =
            Array2::from_shape_fn((3, 5), |(i, k)| ((i * 7 + k * 3) % 5) as f32 * 0.7 - 1.1);
        let labels = [0u8, 3, 4];
        // ε = 0 against cross-entropy written out: mean of −ln softmax_y, gradient
        // (softmax − onehot)/B.
        let plain = softmax_ce(&logits, &labels);
        let mut ref_loss = 0.0f64;
        for (i, row) in logits.rows().into_iter().enumerate() {
            let z: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
            for (k, &v) in row.iter().enumerate() {
                let p = f64::from(v).exp() / z;
                let y = f64::from(u8::from(k == labels[i] as usize));
                if y > 0.0 {
                    ref_loss -= p.ln() / 3.0;
                }
                assert!((f64::from(plain.2[[i, k]]) - (p - y) / 3.0).abs() < 1e-6);
            }
        }
        assert!(
            (f64::from(plain.0) - ref_loss).abs() < 1e-5,
            "{} vs {ref_loss}",
            plain.0
        );
        let eps = 0.1;
        let (_, correct, grad) = softmax_ce_smoothed(&logits, &labels, eps);
        assert_eq!(correct, plain.1);
        let h = 1e-2f32;
        for i in 0..3 {
            for k in 0..5 {
                let mut up = logits.clone();
                up[[i, k]] += h;
                let mut down = logits.clone();
                down[[i, k]] -= h;
                let numeric = (softmax_ce_smoothed(&up, &labels, eps).0
                    - softmax_ce_smoothed(&down, &labels, eps).0)
                    / (2.0 * h);
                assert!(
                    (numeric - grad[[i, k]]).abs() < 2e-3,
                    "({i},{k}): {numeric} vs {}",
                    grad[[i, k]]
                );
            }
            // Each row's gradient sums to zero: softmax and q are both distributions.
            assert!(grad.row(i).sum().abs() < 1e-6);
        }
        // Logits log(q) make softmax = q: zero gradient, unlike plain cross-entropy.
        let q: Vec<f32> = (0..5)
            .map(|k| {
                if k == 2 {
                    1.0 - eps + eps / 5.0
                } else {
                    eps / 5.0
                }
            })
            .collect();
        let at_q = Array2::from_shape_fn((1, 5), |(_, k)| q[k].ln());
        let (_, _, g) = softmax_ce_smoothed(&at_q, &[2], eps);
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
        assert!(softmax_ce(&at_q, &[2]).2[[0, 2]] < -1e-3);
    }
}
