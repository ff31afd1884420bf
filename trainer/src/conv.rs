//! Convolutions computed a few frames at a time, so that the im2col matrix of a block and the
//! column gradients never leave the cache.
//!
//! The im2col matrix of a batch is nine times the size of its input map (for a 3×3 kernel):
//! written by the forward pass, read back by the weight gradient, and mirrored by the column
//! gradients that col2im folds back. Computed per block of frames, each block's matrix is
//! built, used and dropped while it is in the cache, and the weight gradient recomputes it
//! from the input map, which costs less than reading it back from memory. Blocks have a fixed
//! size (from the geometry, not the thread count) and their partial weight gradients are
//! added in block order, so the results do not depend on the thread count.

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;

use crate::linalg::{matmul_serial, matmul_serial_into};
use crate::ops::{col2im_frame, im2col_serial, ConvGeom};

/// Bytes of im2col matrix per block: about half a typical L2 cache. (Measured on the default
/// network: 128 KiB and 512 KiB within noise, 2 MiB 18 % slower, whole batches slower still:
/// too few blocks to keep two threads busy.)
const BLOCK_BYTES: usize = 512 * 1024;

/// Frames per block for geometry `g`.
fn block_frames(g: &ConvGeom) -> usize {
    let per_frame = g.ho * g.wo * g.fan_in() * std::mem::size_of::<f32>();
    (BLOCK_BYTES / per_frame.max(1)).max(1)
}

/// `y = im2col(x) · Wᵀ`: `x` is `[frames·H·W, C]`, `w` is `[out, K·K·C]`; returns
/// `[frames·Ho·Wo, out]`.
pub fn forward(x: ArrayView2<f32>, g: &ConvGeom, frames: usize, w: ArrayView2<f32>) -> Array2<f32> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let (out, n) = (w.nrows(), block_frames(g));
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo);
    let len = frames * per_out * out;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    if out > 0 {
        y.spare_capacity_mut()[..len]
            .par_chunks_mut(n * per_out * out)
            .zip(xs.par_chunks(n * per_in))
            .for_each(|(dst, src)| {
                let (cols, frames) = block_cols(src, g);
                let cols = ArrayView2::from_shape((frames * per_out, g.fan_in()), &cols)
                    .expect("im2col shape");
                matmul_serial_into(cols, w.t(), dst);
            });
    }
    // SAFETY: every block of rows was written by its product (nothing when `out` is 0).
    unsafe { y.set_len(len) };
    Array2::from_shape_vec((frames * per_out, out), y).expect("shape")
}

/// The im2col matrix of the frames in `src` (one block), and their number.
fn block_cols(src: &[f32], g: &ConvGeom) -> (Vec<f32>, usize) {
    let frames = src.len() / (g.h * g.w * g.c).max(1);
    let mut cols = Vec::new();
    im2col_serial(src, g, frames, &mut cols);
    (cols, frames)
}

/// `∂L/∂W = dyᵀ · im2col(x)` (`[out, K·K·C]`), im2col recomputed per block.
pub fn weight_grad(
    x: ArrayView2<f32>,
    g: &ConvGeom,
    frames: usize,
    dy: ArrayView2<f32>,
) -> Array2<f32> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let n = block_frames(g);
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo);
    let partials: Vec<Array2<f32>> = (0..frames.div_ceil(n))
        .into_par_iter()
        .map(|b| {
            let f = (b * n..((b + 1) * n).min(frames)).len();
            let (cols, _) = block_cols(&xs[b * n * per_in..(b * n + f) * per_in], g);
            let cols =
                ArrayView2::from_shape((f * per_out, g.fan_in()), &cols).expect("im2col shape");
            let dy_b = dy.slice(s![b * n * per_out..(b * n + f) * per_out, ..]);
            matmul_serial(dy_b.t(), cols)
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut sum = parts
        .next()
        .unwrap_or_else(|| Array2::zeros((dy.ncols(), g.fan_in())));
    parts.for_each(|p| sum += &p);
    sum
}

/// `∂L/∂x = col2im(dy · W)` (`[frames·H·W, C]`), the column gradients folded per block.
pub fn input_grad(
    dy: ArrayView2<f32>,
    g: &ConvGeom,
    frames: usize,
    w: ArrayView2<f32>,
) -> Array2<f32> {
    let n = block_frames(g);
    let (per_in, per_out) = (g.h * g.w * g.c, g.ho * g.wo);
    let cols = per_out * g.fan_in();
    let mut dx = vec![0.0f32; frames * per_in];
    dx.par_chunks_mut(n * per_in)
        .enumerate()
        .for_each(|(b, dst)| {
            let f = dst.len() / per_in;
            let dy_b = dy.slice(s![b * n * per_out..(b * n + f) * per_out, ..]);
            let dcols = matmul_serial(dy_b, w);
            let dcols = dcols.as_slice().expect("a fresh product");
            for (frame, d) in dst.chunks_exact_mut(per_in).enumerate() {
                col2im_frame(&dcols[frame * cols..(frame + 1) * cols], g, d);
            }
        });
    Array2::from_shape_vec((frames * g.h * g.w, g.c), dx).expect("shape")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::matmul;
    use crate::ops::{col2im, im2col};

    /// The blocked products against the whole-batch ones, with more frames than one block
    /// holds (small integers: exact).
    #[test]
    fn blocked_products_equal_the_whole_batch_ones() {
        let g = ConvGeom {
            h: 14,
            w: 14,
            c: 32,
            k: 3,
            stride: 1,
            pad: 1,
            ho: 14,
            wo: 14,
        };
        let frames = 3 * block_frames(&g) + 1;
        let x = Array2::from_shape_fn((frames * 196, 32), |(i, j)| {
            ((i * 7 + j * 3) % 5) as f32 - 2.0
        });
        let w = Array2::from_shape_fn((16, 288), |(i, j)| ((i * 5 + j) % 7) as f32 - 3.0);
        let cols = im2col(x.view(), &g, frames);
        let y = forward(x.view(), &g, frames, w.view());
        assert_eq!(y, matmul(cols.view(), w.t()));
        let dy = Array2::from_shape_fn(y.dim(), |(i, j)| ((i * 3 + j * 11) % 5) as f32 - 2.0);
        assert_eq!(
            weight_grad(x.view(), &g, frames, dy.view()),
            matmul(dy.t(), cols.view())
        );
        let dcols = matmul(dy.view(), w.view());
        assert_eq!(
            input_grad(dy.view(), &g, frames, w.view()),
            col2im(dcols.view(), &g, frames)
        );
    }
}
