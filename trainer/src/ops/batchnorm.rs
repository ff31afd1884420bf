//! BatchNorm: batch and running statistics, forward and backward.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{build_rows, write_all};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
