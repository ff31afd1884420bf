//! The forward product of a binary layer on spikes by popcounts, as the hardware computes it.
//!
//! When a layer's inputs are 0/1 spikes and its weights `α·(±1)`, each output is
//! `α·(2·popcount(x ∧ w⁺) − popcount(x))`, `w⁺` being the bits of the `+1` weights: one AND and
//! one popcount per 32 inputs instead of 32 multiply-adds. The spike map is packed once per
//! pixel (its channels in 32-bit words) and the convolution's windows are gathered from the
//! packed map, a ninth of the float im2col's traffic. The sum is exact in integers and scaled
//! once, so it may differ from the float product in the rounding of the last bits, never
//! more (the tests compare the two).

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::ops::ConvGeom;

/// Rows of bits: `words` 32-bit words per row.
pub struct BitRows {
    words: usize,
    bits: Vec<u32>,
}

/// Rows per parallel block.
const BLOCK_ROWS: usize = 64;

/// Outputs per register block of the kernel (one 512-bit vector of 32-bit counts).
const LANES: usize = 16;

impl BitRows {
    /// Packs each row of `m` (`[rows, C]`) by channel groups: value `(r, ch)` is bit `ch % 32`
    /// of word `ch / 32` of row `r`, set where `set(value)`.
    fn pack(m: ArrayView2<f32>, set: impl Fn(f32) -> bool + Sync) -> BitRows {
        let m = m.as_standard_layout();
        let (rows, cols) = m.dim();
        let words = cols.div_ceil(32);
        let mut bits = vec![0u32; rows * words];
        if cols > 0 {
            let src = m.as_slice().expect("standard layout");
            bits.par_chunks_mut(words * BLOCK_ROWS)
                .zip(src.par_chunks(cols * BLOCK_ROWS))
                .for_each(|(dst, src)| {
                    for (d, row) in dst.chunks_exact_mut(words).zip(src.chunks_exact(cols)) {
                        for (w, chunk) in d.iter_mut().zip(row.chunks(32)) {
                            *w = chunk
                                .iter()
                                .enumerate()
                                .fold(0, |acc, (j, &v)| acc | (u32::from(set(v)) << j));
                        }
                    }
                });
        }
        BitRows { words, bits }
    }

    /// A spike map `[pixels, C]` (0/1; any value above ½ counts as a spike), one row per pixel.
    pub fn spikes(x: ArrayView2<f32>) -> BitRows {
        BitRows::pack(x, |v| v > 0.5)
    }

    /// The `+1` weights (`w ≥ 0`, sign(0) = +1 as in the binary layers) of `[out, taps·C]`, each
    /// tap's `C` channels packed like a pixel of [`Self::spikes`].
    pub fn positive(w: ArrayView2<f32>, c: usize) -> BitRows {
        let (out, fan_in) = w.dim();
        let taps = fan_in / c.max(1);
        let per_tap = w
            .to_shape((out * taps, c))
            .expect("fan-in = taps · channels");
        let packed = BitRows::pack(per_tap.view(), |v| v >= 0.0);
        BitRows {
            words: packed.words * taps,
            bits: packed.bits,
        }
    }

    /// The rows of `frames` equal groups of consecutive rows, concatenated (a dense layer's
    /// input: each frame's pixels in raster order).
    pub fn frames(self, frames: usize) -> BitRows {
        let rows = self.rows();
        BitRows {
            words: self.words * rows / frames.max(1),
            bits: self.bits,
        }
    }

    /// The convolution windows of a packed map of `frames` frames (one row per pixel, as
    /// [`Self::spikes`] packs it), one row per output position: the bit-level im2col.
    pub fn windows(&self, g: &ConvGeom, frames: usize) -> BitRows {
        // The geometry in words: a pixel is `self.words` words.
        let wg = ConvGeom {
            c: self.words,
            ..*g
        };
        let (per_in, per_out) = (g.h * g.w * self.words, g.ho * g.wo * wg.fan_in());
        let mut bits = vec![0u32; frames * per_out];
        bits.par_chunks_mut(per_out.max(1))
            .zip(self.bits.par_chunks(per_in.max(1)))
            .for_each(|(dst, src)| {
                wg.for_each_run(|col, inp, len| {
                    if let Some(i) = inp {
                        dst[col..col + len].copy_from_slice(&src[i..i + len]);
                    }
                });
            });
        BitRows {
            words: wg.fan_in(),
            bits,
        }
    }

    fn rows(&self) -> usize {
        self.bits.len() / self.words.max(1)
    }
}

/// Whether every element of `x` is 0 or 1 (the inputs the popcount product is exact on).
pub fn is_binary(x: ArrayView2<f32>) -> bool {
    x.iter().all(|&v| v == 0.0 || v == 1.0)
}

/// `y = x · (α ⊙ sign(W))ᵀ` for spike rows `x` and the `+1` bits of `W` packed alike, with
/// per-output scales `alpha`: `[rows, out]`.
pub fn binary_product(x: &BitRows, w_pos: &BitRows, alpha: &[f32]) -> Array2<f32> {
    product_with(Kernel::detect(), x, w_pos, alpha)
}

/// [`binary_product`] with the given kernel.
fn product_with(kernel: Kernel, x: &BitRows, w_pos: &BitRows, alpha: &[f32]) -> Array2<f32> {
    assert_eq!(x.words, w_pos.words, "fan-in");
    assert_eq!(w_pos.rows(), alpha.len(), "one α per output");
    let (rows, out, words) = (x.rows(), alpha.len(), x.words.max(1));
    // Weights word-major and padded to whole register blocks (`[word][out]`), so that the
    // inner loop runs over outputs and vectorises; padding outputs have no bits.
    let padded = out.div_ceil(LANES) * LANES;
    // (the kernel recovers `words` and `padded` from the slice lengths)
    let mut wt = vec![0u32; words * padded];
    for n in 0..out {
        for i in 0..x.words {
            wt[i * padded + n] = w_pos.bits[n * x.words + i];
        }
    }
    let mut y = vec![0.0f32; rows * out];
    if out > 0 && x.words > 0 {
        y.par_chunks_mut(out * BLOCK_ROWS)
            .zip(x.bits.par_chunks(words * BLOCK_ROWS))
            .for_each(|(dst, src)| kernel.run(src, &wt, alpha, dst));
    }
    Array2::from_shape_vec((rows, out), y).expect("shape")
}

/// The widest popcount this CPU has, chosen once per product.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                && std::arch::is_x86_feature_detected!("avx512f")
            {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// The outputs `dst` (`[rows, out]`) of the spike rows `x` (`[rows, words]`).
    fn run(self, x: &[u32], wt: &[u32], alpha: &[f32], dst: &mut [f32]) {
        match self {
            // SAFETY: the features each copy is compiled for were detected at run time.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { rows_avx512(x, wt, alpha, dst) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { rows_avx2(x, wt, alpha, dst) },
            Kernel::Portable => rows(x, wt, alpha, dst),
        }
    }
}

/// [`rows`] with explicit AVX-512 intrinsics, four blocks of counts (64 outputs) in registers
/// per pass over a row's words: the compiler's version reloads its counts for every word.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
unsafe fn rows_avx512(x: &[u32], wt: &[u32], alpha: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    const GROUP: usize = 4 * LANES;
    let out = alpha.len();
    let words = x.len() / (dst.len() / out);
    let padded = wt.len() / words;
    let mut counts = [0u32; GROUP];
    for (d, xr) in dst.chunks_exact_mut(out).zip(x.chunks_exact(words)) {
        let ones = xr.iter().map(|v| v.count_ones()).sum::<u32>() as i32;
        for g0 in (0..out).step_by(GROUP) {
            let blocks = (out - g0).div_ceil(LANES).min(4);
            let mut a = [_mm512_setzero_si512(); 4];
            for (i, &xv) in xr.iter().enumerate() {
                let xv = _mm512_set1_epi32(xv as i32);
                let w = &wt[i * padded + g0..][..blocks * LANES];
                for (b, acc) in a.iter_mut().enumerate().take(blocks) {
                    // SAFETY: block `b` of `w` holds LANES = 16 u32: one unaligned load.
                    let wv = unsafe { _mm512_loadu_si512(w[b * LANES..].as_ptr().cast()) };
                    *acc = _mm512_add_epi32(*acc, _mm512_popcnt_epi32(_mm512_and_si512(xv, wv)));
                }
            }
            for (b, acc) in a.iter().enumerate().take(blocks) {
                // SAFETY: `counts` holds 4 blocks of 16 u32: one unaligned store each.
                unsafe { _mm512_storeu_si512(counts[b * LANES..].as_mut_ptr().cast(), *acc) };
            }
            let d = &mut d[g0..(g0 + GROUP).min(out)];
            for ((d, &p), &s) in d.iter_mut().zip(&counts).zip(&alpha[g0..]) {
                *d = s * (2 * p as i32 - ones) as f32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn rows_avx2(x: &[u32], wt: &[u32], alpha: &[f32], dst: &mut [f32]) {
    rows(x, wt, alpha, dst)
}

/// The portable body, inlined into each feature-specific copy, which the compiler vectorises
/// for its instruction set: one block of [`LANES`] counts stays in a register over all words
/// of a row.
#[inline(always)]
fn rows(x: &[u32], wt: &[u32], alpha: &[f32], dst: &mut [f32]) {
    let out = alpha.len();
    let words = x.len() / (dst.len() / out);
    let padded = wt.len() / words;
    for (d, xr) in dst.chunks_exact_mut(out).zip(x.chunks_exact(words)) {
        let ones = xr.iter().map(|v| v.count_ones()).sum::<u32>() as i32;
        for (nb, d) in d.chunks_mut(LANES).enumerate() {
            let mut a = [0u32; LANES];
            for (i, &xv) in xr.iter().enumerate() {
                let w: &[u32; LANES] = wt[i * padded + nb * LANES..][..LANES]
                    .try_into()
                    .expect("a whole block");
                for j in 0..LANES {
                    a[j] += (xv & w[j]).count_ones();
                }
            }
            let alpha = &alpha[nb * LANES..];
            for ((d, &p), &s) in d.iter_mut().zip(&a).zip(alpha) {
                *d = s * (2 * p as i32 - ones) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::im2col;

    fn sign(w: &Array2<f32>) -> Array2<f32> {
        w.mapv(|v| if v >= 0.0 { 1.0 } else { -1.0 })
    }

    /// The popcount product on packed windows equals the float product on the float im2col
    /// exactly with α = 1 (small integers) and to rounding with other α, for channel counts on
    /// and off word boundaries, output counts on and off register blocks, with padding and
    /// stride.
    #[test]
    fn convolution_matches_the_float_product() {
        let geoms = [
            (6, 5, 32, 3, 1, 1, 19),
            (7, 7, 40, 3, 2, 1, 32),
            (5, 4, 3, 3, 1, 0, 5),
            (4, 4, 64, 1, 1, 0, 17),
        ];
        for (h, w, c, k, stride, pad, out) in geoms {
            let (ho, wo) = (
                (h + 2 * pad - k) / stride + 1,
                (w + 2 * pad - k) / stride + 1,
            );
            let g = ConvGeom {
                h,
                w,
                c,
                k,
                stride,
                pad,
                ho,
                wo,
            };
            let frames = 3;
            let x = Array2::from_shape_fn((frames * h * w, c), |(i, j)| {
                ((i * 31 + j * 17) % 3 == 0) as u8 as f32
            });
            let wts = Array2::from_shape_fn((out, k * k * c), |(i, j)| {
                ((i * 13 + j * 7) % 5) as f32 - 2.0
            });
            let cols = im2col(x.view(), &g, frames);
            let bits = BitRows::spikes(x.view()).windows(&g, frames);
            let w_pos = BitRows::positive(wts.view(), c);
            let want = cols.dot(&sign(&wts).t());
            assert_eq!(
                binary_product(&bits, &w_pos, &vec![1.0; out]),
                want,
                "{g:?}"
            );
            let alpha: Vec<f32> = (0..out).map(|n| 0.1 + 0.03 * n as f32).collect();
            let y = binary_product(&bits, &w_pos, &alpha);
            for ((r, n), &v) in y.indexed_iter() {
                let exact = want[[r, n]] as f64 * alpha[n] as f64;
                assert!(
                    (v as f64 - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                    "{v} vs {exact}"
                );
            }
        }
    }

    /// Every kernel this CPU can run gives the same counts as the portable one.
    #[test]
    fn every_kernel_agrees() {
        let (rows, c, out) = (37, 70, 83);
        let x = Array2::from_shape_fn((rows, c), |(i, j)| ((i * 5 + j * 3) % 4 == 0) as u8 as f32);
        let w = Array2::from_shape_fn((out, c), |(i, j)| ((i * 7 + j * 5) % 9) as f32 - 4.0);
        let (bits, w_pos) = (BitRows::spikes(x.view()), BitRows::positive(w.view(), c));
        let alpha: Vec<f32> = (0..out).map(|n| 1.0 + n as f32).collect();
        let want = product_with(Kernel::Portable, &bits, &w_pos, &alpha);
        assert_eq!(
            want,
            x.dot(&sign(&w).t()) * &ndarray::Array1::from(alpha.clone())
        );
        let mut kernels = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                kernels.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512vpopcntdq") {
                kernels.push(Kernel::Avx512);
            }
        }
        for k in kernels {
            assert_eq!(product_with(k, &bits, &w_pos, &alpha), want, "{k:?}");
        }
    }

    /// A dense layer's input: each frame's pixels concatenated.
    #[test]
    fn dense_matches_the_float_product() {
        let (frames, pixels, c, out) = (5, 6, 36, 7);
        let x = Array2::from_shape_fn((frames * pixels, c), |(i, j)| {
            ((i * 7 + j * 5) % 4 == 1) as u8 as f32
        });
        let wts = Array2::from_shape_fn((out, pixels * c), |(i, j)| {
            ((i * 3 + j * 11) % 7) as f32 - 3.0
        });
        let flat = x.to_shape((frames, pixels * c)).unwrap().to_owned();
        let bits = BitRows::spikes(x.view()).frames(frames);
        let y = binary_product(&bits, &BitRows::positive(wts.view(), c), &vec![1.0; out]);
        assert_eq!(y, flat.dot(&sign(&wts).t()));
        assert!(is_binary(flat.view()));
        assert!(!is_binary(Array2::from_elem((2, 2), 0.5).view()));
    }
}
