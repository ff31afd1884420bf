//! 2×2 stride-2 pooling, forward and backward.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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
