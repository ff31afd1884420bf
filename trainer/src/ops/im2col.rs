//! Convolution geometry and the im2col / col2im pair that turns a convolution into a matrix
//! product.

use std::mem::MaybeUninit;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{build_rows, write_all};

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
