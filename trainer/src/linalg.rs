//! The one matrix-multiply wrapper every layer goes through: `gemm` (runtime-dispatched
//! AVX-512 or AVX2/FMA kernels) on ndarray views of any strides, so transposes are free.

use ndarray::{Array2, ArrayView2};

/// Work (m·n·k) below which threads cost more than they save.
const PARALLEL_WORK: usize = 1 << 18;

/// `a·b` as a new matrix (not zeroed first: gemm writes every element).
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert_eq!(k, b.nrows(), "inner dimensions");
    if m == 0 || n == 0 || k == 0 {
        return Array2::zeros((m, n));
    }
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= PARALLEL_WORK && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let mut out = Array2::<f32>::uninit((m, n));
    let (as_, bs) = (a.strides(), b.strides());
    // SAFETY: the input pointers and strides come from live ndarray views whose shapes were
    // checked above; `out` is a fresh `m×n` row-major buffer that aliases neither. With
    // `read_dst` false and k > 0, gemm writes every element of `out` without reading any, so
    // it is initialised afterwards.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr().cast::<f32>(),
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
        );
        out.assume_init()
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
        let empty = Array2::<f32>::zeros((3, 0));
        assert_eq!(
            matmul(empty.view(), empty.t()),
            Array2::<f32>::zeros((3, 3))
        );
    }
}
