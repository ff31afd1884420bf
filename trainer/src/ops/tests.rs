use super::*;

fn geom(h: usize, w: usize, c: usize, k: usize, stride: usize, pad: usize) -> ConvGeom {
    let (ho, wo) = (
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    );
    ConvGeom {
        h,
        w,
        c,
        k,
        stride,
        pad,
        ho,
        wo,
    }
}

/// im2col against its definition, and col2im as its adjoint (⟨im2col x, y⟩ = ⟨x, col2im y⟩),
/// with padding, stride 2 and several frames.
#[test]
fn im2col_matches_the_definition_and_col2im_is_its_adjoint() {
    for g in [
        geom(5, 4, 3, 3, 1, 1),
        geom(7, 6, 2, 3, 2, 1),
        geom(6, 6, 2, 5, 1, 0),
    ] {
        let frames = 3;
        let x = Array2::from_shape_fn((frames * g.h * g.w, g.c), |(r, ch)| {
            ((r * 7 + ch * 13) % 17) as f32 - 8.0
        });
        let cols = im2col(x.view(), &g, frames);
        assert_eq!(cols.dim(), (frames * g.ho * g.wo, g.fan_in()));
        for f in 0..frames {
            for (oy, ox) in (0..g.ho).flat_map(|y| (0..g.wo).map(move |x| (y, x))) {
                for (ky, kx, ch) in (0..g.k)
                    .flat_map(|a| (0..g.k).flat_map(move |b| (0..g.c).map(move |c| (a, b, c))))
                {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                    let want = if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                        0.0
                    } else {
                        x[[(f * g.h + iy as usize) * g.w + ix as usize, ch]]
                    };
                    let row = (f * g.ho + oy) * g.wo + ox;
                    assert_eq!(cols[[row, (ky * g.k + kx) * g.c + ch]], want);
                }
            }
        }
        let y = Array2::from_shape_fn(cols.dim(), |(r, c)| ((r * 3 + c * 5) % 11) as f32);
        let back = col2im(y.view(), &g, frames);
        assert_eq!((&cols * &y).sum(), (&x * &back).sum());
    }
}

/// Pooling against its definition; the backward pass routes (max) or spreads (average)
/// each gradient to its window.
#[test]
fn pooling_matches_the_definition() {
    let (frames, h, w, c) = (2, 4, 6, 3);
    let x = Array2::from_shape_fn((frames * h * w, c), |(r, ch)| ((r * 5 + ch * 3) % 7) as f32);
    let (mx, arg) = pool_forward(x.view(), PoolKind::Max, frames, h, w);
    let (av, _) = pool_forward(x.view(), PoolKind::Avg, frames, h, w);
    let dy = Array2::from_shape_fn(mx.dim(), |(r, ch)| (r * c + ch) as f32 + 1.0);
    let dmax = pool_backward(dy.view(), PoolKind::Max, &arg, frames, h, w);
    let davg = pool_backward(dy.view(), PoolKind::Avg, &arg, frames, h, w);
    for f in 0..frames {
        for (oy, ox) in (0..h / 2).flat_map(|y| (0..w / 2).map(move |x| (y, x))) {
            let o = (f * h / 2 + oy) * (w / 2) + ox;
            let rows = [0, 1, w, w + 1].map(|d| (f * h + 2 * oy) * w + 2 * ox + d);
            for ch in 0..c {
                let v = rows.map(|r| x[[r, ch]]);
                let first_max = (0..4).fold(0, |b, i| if v[i] > v[b] { i } else { b });
                assert_eq!(mx[[o, ch]], v[first_max]);
                assert_eq!(usize::from(arg[o * c + ch]), first_max);
                assert_eq!(av[[o, ch]], v.iter().sum::<f32>() * 0.25);
                for (i, &r) in rows.iter().enumerate() {
                    let routed = if i == first_max { dy[[o, ch]] } else { 0.0 };
                    assert_eq!(dmax[[r, ch]], routed);
                    assert_eq!(davg[[r, ch]], 0.25 * dy[[o, ch]]);
                }
            }
        }
    }
}

/// Label-smoothed cross-entropy: its gradient against central differences of its loss,
/// ε = 0 against cross-entropy written out, and its minimum where softmax equals q.
#[test]
fn smoothed_cross_entropy_gradient_and_reduction() {
    let logits = Array2::from_shape_fn((3, 5), |(i, k)| ((i * 7 + k * 3) % 5) as f32 * 0.7 - 1.1);
    let labels = [0u8, 3, 4];
    // ε = 0 against cross-entropy written out: mean of −ln softmax_y, gradient
    // (softmax − onehot)/B.
    let plain = softmax_ce(&logits, &labels);
    let mut ref_loss = 0.0f64;
    for (i, row) in logits.rows().into_iter().enumerate() {
        let z: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
        for (k, &v) in row.iter().enumerate() {
            let p = f64::from(v).exp() / z;
            let y = f64::from(u8::from(k == labels[i] as usize));
            if y > 0.0 {
                ref_loss -= p.ln() / 3.0;
            }
            assert!((f64::from(plain.2[[i, k]]) - (p - y) / 3.0).abs() < 1e-6);
        }
    }
    assert!(
        (f64::from(plain.0) - ref_loss).abs() < 1e-5,
        "{} vs {ref_loss}",
        plain.0
    );
    let eps = 0.1;
    let (_, correct, grad) = softmax_ce_smoothed(&logits, &labels, eps);
    assert_eq!(correct, plain.1);
    let h = 1e-2f32;
    for i in 0..3 {
        for k in 0..5 {
            let mut up = logits.clone();
            up[[i, k]] += h;
            let mut down = logits.clone();
            down[[i, k]] -= h;
            let numeric = (softmax_ce_smoothed(&up, &labels, eps).0
                - softmax_ce_smoothed(&down, &labels, eps).0)
                / (2.0 * h);
            assert!(
                (numeric - grad[[i, k]]).abs() < 2e-3,
                "({i},{k}): {numeric} vs {}",
                grad[[i, k]]
            );
        }
        // Each row's gradient sums to zero: softmax and q are both distributions.
        assert!(grad.row(i).sum().abs() < 1e-6);
    }
    // Logits log(q) make softmax = q: zero gradient, unlike plain cross-entropy.
    let q: Vec<f32> = (0..5)
        .map(|k| {
            if k == 2 {
                1.0 - eps + eps / 5.0
            } else {
                eps / 5.0
            }
        })
        .collect();
    let at_q = Array2::from_shape_fn((1, 5), |(_, k)| q[k].ln());
    let (_, _, g) = softmax_ce_smoothed(&at_q, &[2], eps);
    assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    assert!(softmax_ce(&at_q, &[2]).2[[0, 2]] < -1e-3);
}
