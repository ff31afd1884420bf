//! The one matrix-multiply wrapper every layer goes through: `gemm` (runtime-dispatched
//! AVX-512 or AVX2/FMA kernels) on ndarray views of any strides, so transposes are free.

use std::mem::MaybeUninit;

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;

/// Work (m·n·k) below which threads cost more than they save.
const PARALLEL_WORK: usize = 1 << 18;

/// Inner-dimension length of one slice of a long, thin product. Weight gradients are such
/// products (`k` = every output position of the batch, `m·n` = one weight matrix), which
/// gemm's own threading, over `m` and `n`, splits badly; their `k` slices run in parallel
/// instead. The slice length is fixed, and the partial products are added in slice order, so
/// the result does not depend on the thread count.
const K_SLICE: usize = 1536;

/// `a·b` as a new matrix.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert_eq!(k, b.nrows(), "inner dimensions");
    if m == 0 || n == 0 || k == 0 {
        return Array2::zeros((m, n));
    }
    let threads = rayon::current_num_threads();
    if k >= 2 * K_SLICE && k >= 4 * m.max(n) {
        // An even number of equal slices keeps two threads equally busy.
        let slices = 2 * k.div_ceil(2 * K_SLICE);
        let len = k.div_ceil(slices);
        let partials: Vec<Array2<f32>> = (0..slices)
            .into_par_iter()
            .map(|i| {
                let r = (i * len).min(k)..((i + 1) * len).min(k);
                product(
                    a.slice(s![.., r.clone()]),
                    b.slice(s![r, ..]),
                    gemm::Parallelism::None,
                )
            })
            .collect();
        let mut parts = partials.into_iter();
        let mut sum = parts.next().expect("k > 0");
        parts.for_each(|p| sum += &p);
        return sum;
    }
    let par = if m * n * k >= PARALLEL_WORK && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    product(a, b, par)
}

/// `a·b` on the calling thread (for callers that run products in parallel themselves).
pub fn matmul_serial(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert_eq!(k, b.nrows(), "inner dimensions");
    if m == 0 || n == 0 || k == 0 {
        return Array2::zeros((m, n));
    }
    product(a, b, gemm::Parallelism::None)
}

/// `a·b` written into `dst` (`m·n` values, row-major, initialised by the call), on the
/// calling thread.
pub fn matmul_serial_into(a: ArrayView2<f32>, b: ArrayView2<f32>, dst: &mut [MaybeUninit<f32>]) {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert_eq!(k, b.nrows(), "inner dimensions");
    assert_eq!(dst.len(), m * n, "output size");
    if k == 0 {
        dst.iter_mut().for_each(|d| {
            d.write(0.0);
        });
    } else if m > 0 && n > 0 {
        // SAFETY: `dst` is a live `m×n` buffer that aliases neither input; gemm writes every
        // element without reading any (k > 0).
        unsafe {
            gemm_raw(
                a,
                b,
                dst.as_mut_ptr().cast::<f32>(),
                gemm::Parallelism::None,
            )
        }
    }
}

/// `a·b` by one gemm call (not zeroed first: gemm writes every element); `k` > 0.
fn product(a: ArrayView2<f32>, b: ArrayView2<f32>, par: gemm::Parallelism) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut out = Array2::<f32>::uninit((m, n));
    // SAFETY: `out` is a fresh `m×n` row-major buffer that aliases neither input. With k > 0,
    // gemm writes every element of `out` without reading any, so it is initialised afterwards.
    unsafe {
        gemm_raw(a, b, out.as_mut_ptr().cast::<f32>(), par);
        out.assume_init()
    }
}

/// `dst = a·b` by gemm, `dst` row-major `m×n`, written without being read.
///
/// # Safety
/// `dst` must be valid for `m·n` writes and alias neither input; `k` > 0.
unsafe fn gemm_raw(a: ArrayView2<f32>, b: ArrayView2<f32>, dst: *mut f32, par: gemm::Parallelism) {
    let ((m, k), n) = (a.dim(), b.ncols());
    let (as_, bs) = (a.strides(), b.strides());
    // SAFETY: the input pointers and strides come from live ndarray views whose shapes the
    // callers checked; the caller guarantees `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            false,
            a.as_ptr(),
            as_[1],
            as_[0],
            b.as_ptr(),
            bs[1],
            bs[0],
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_with_transposes() {
        let a = Array2::from_shape_fn((37, 19), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let b = Array2::from_shape_fn((23, 19), |(i, j)| ((i * 5 + j) % 7) as f32 - 3.0);
        let c = matmul(a.view(), b.t());
        for i in 0..37 {
            for j in 0..23 {
                let want: f32 = (0..19).map(|k| a[[i, k]] * b[[j, k]]).sum();
                assert_eq!(c[[i, j]], want);
            }
        }
        // A long, thin product (k sliced, the gradient of a weight matrix): small integers,
        // so every order of summation gives the exact result.
        let (m, n, k) = (5, 3, 4 * K_SLICE + 7);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 5) as f32 - 2.0);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 3) as f32 - 1.0);
        let c = matmul(a.view(), b.view());
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[[i, t]] * b[[t, j]]).sum();
                assert_eq!(c[[i, j]], want);
            }
        }
        let empty = Array2::<f32>::zeros((3, 0));
        assert_eq!(
            matmul(empty.view(), empty.t()),
            Array2::<f32>::zeros((3, 3))
        );
    }
}
