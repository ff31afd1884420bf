//! The one matrix-multiply wrapper every layer goes through: `gemm` (runtime-dispatched
//! AVX-512 or AVX2/FMA kernels) on ndarray views of any strides, so transposes are free.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Work (m·n·k) below which threads cost more than they save.
const PARALLEL_WORK: usize = 1 << 18;

/// `dst = beta_dst·dst + a·b` (`beta_dst` is 0 or 1: overwrite or accumulate).
pub fn matmul_into(
    mut dst: ArrayViewMut2<f32>,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    accumulate: bool,
) {
    assert_eq!(dst.dim(), (a.nrows(), b.ncols()), "output shape");
    let strides = [dst.strides()[0], dst.strides()[1]];
    // SAFETY: `dst` is a live, unique view of the checked shape that aliases neither input.
    unsafe { gemm_raw(dst.as_mut_ptr(), strides, a, b, accumulate) }
}

/// `a·b` as a new matrix (not zeroed first: gemm writes every element).
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.ncols());
    assert_eq!(a.ncols(), b.nrows(), "inner dimensions");
    if a.ncols() == 0 {
        return Array2::zeros((m, n));
    }
    let mut out = Array2::<f32>::uninit((m, n));
    let strides = [n as isize, 1];
    // SAFETY: `out` is a fresh `m×n` standard-layout buffer; with `accumulate` false and k > 0
    // gemm writes every element without reading any, so it is initialised afterwards.
    unsafe {
        gemm_raw(out.as_mut_ptr().cast(), strides, a, b, false);
        out.assume_init()
    }
}

/// `dst = beta_dst·dst + a·b` on a raw `m×n` destination with `strides` (rows, columns).
///
/// # Safety
/// `dst` with `strides` must address `a.nrows() × b.ncols()` writable elements that alias
/// neither input; with `accumulate` they must be initialised.
unsafe fn gemm_raw(
    dst: *mut f32,
    strides: [isize; 2],
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m as isize {
                for j in 0..n as isize {
                    // SAFETY: in bounds by the caller's contract.
                    unsafe { *dst.offset(i * strides[0] + j * strides[1]) = 0.0 };
                }
            }
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= PARALLEL_WORK && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (as_, bs) = (a.strides(), b.strides());
    // SAFETY: the input pointers and strides come from live ndarray views whose shapes were
    // checked above; the destination is the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            strides[1],
            strides[0],
            accumulate,
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
        );
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
        let mut acc = c.clone();
        matmul_into(acc.view_mut(), a.view(), b.t(), true);
        assert_eq!(acc, &c * 2.0);
    }
}
