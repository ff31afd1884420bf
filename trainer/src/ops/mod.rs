//! Forward and backward passes of the pieces a network is built from. Feature maps are
//! matrices `[frames·H·W, C]` (raster order, channels fastest: the IR's layout), frames being
//! `T·B` (time-major) images.

mod batchnorm;
mod im2col;
mod lif;
mod loss;
mod pool;
#[cfg(test)]
mod tests;

use std::mem::MaybeUninit;

use ndarray::Array2;
use rayon::prelude::*;

pub use batchnorm::*;
pub use im2col::*;
pub use lif::*;
pub use loss::*;
pub use pool::*;

/// A `[rows, cols]` matrix built in parallel blocks of `block` rows: `fill(first row, block)`
/// writes its block. Nothing is zeroed first (zeroing the buffers of a step was a quarter of
/// its time).
///
/// # Safety
/// `fill` must write every element of the block it is given.
pub(super) unsafe fn build_rows(
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
pub(super) fn write_all(dst: &mut [MaybeUninit<f32>], src: impl IntoIterator<Item = f32>) {
    for (d, v) in dst.iter_mut().zip(src) {
        d.write(v);
    }
}
