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
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions");
    assert_eq!(dst.dim(), (m, n), "output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= PARALLEL_WORK && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (ds, as_, bs) = (
        dst.strides().to_owned(),
        a.strides().to_owned(),
        b.strides().to_owned(),
    );
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above; `dst` is a unique mutable view that aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ds[1],
            ds[0],
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

/// `a·b` as a new matrix.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::zeros((a.nrows(), b.ncols()));
    matmul_into(out.view_mut(), a, b, false);
    out
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
