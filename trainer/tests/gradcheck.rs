//! Every backward pass the trainer writes itself, against central finite differences:
//! convolution (im2col/col2im), dense, BatchNorm, LIF through time with each surrogate (the
//! forward pass runs the surrogate's primitive, whose derivative the backward pass uses),
//! both resets, max and average pooling, the GAP head, cross-entropy, the clipped STE of
//! binary layers, the α gradient of BWO-α and the logit scale of the head.

use spikeforge_trainer::net::{Net, Precision};
use spikeforge_trainer::ops::{self, LifConfig, ResetKind, Surrogate};

fn loss(net: &mut Net, images: &[u8], labels: &[u8]) -> f64 {
    let f = net.forward(images, true, false);
    ops::softmax_ce(&f.logits, labels).0 as f64
}

/// Which parameter of a layer a check perturbs.
#[derive(Clone, Copy, Debug)]
enum P {
    W(usize),
    Gamma(usize),
    Beta(usize),
    Bias(usize),
    Alpha(usize),
    HeadScale,
}

fn get(net: &mut Net, l: usize, p: P) -> &mut f32 {
    if let P::HeadScale = p {
        return &mut net.head_log_scale;
    }
    let lp = &mut net.params[l];
    match p {
        P::HeadScale => unreachable!(),
        P::W(i) => &mut lp.w[i],
        P::Gamma(i) => &mut lp.bn.as_mut().unwrap().gamma[i],
        P::Beta(i) => &mut lp.bn.as_mut().unwrap().beta[i],
        P::Bias(i) => &mut lp.bias[i],
        P::Alpha(i) => &mut lp.alpha.as_mut().unwrap()[i],
    }
}

/// Compares analytic and numerical gradients of the chosen parameters; returns the worst
/// relative error.
fn check(net: &mut Net, images: &[u8], labels: &[u8], eps: f32, which: &[(usize, P)]) -> f64 {
    let f = net.forward(images, true, false);
    let (_, _, dlogits) = ops::softmax_ce(&f.logits, labels);
    let grads = net.backward(f, &dlogits);
    let mut worst = 0.0f64;
    for &(l, p) in which {
        let analytic = match p {
            P::W(i) => grads[l].w[i],
            P::Gamma(i) => grads[l].gamma[i],
            P::Beta(i) => grads[l].beta[i],
            P::Bias(i) => grads[l].bias[i],
            P::Alpha(i) => grads[l].alpha[i],
            P::HeadScale => grads[l].head_log_scale,
        } as f64;
        // Central differences at two step sizes, and one-sided ones: the piecewise-linear
        // surrogate primitives have kinks a step may straddle (there the analytic gradient is
        // one of the one-sided derivatives), and f32 rounding limits small steps.
        let v0 = *get(net, l, p);
        let mut at = |d: f32| {
            *get(net, l, p) = v0 + d;
            let v = loss(net, images, labels);
            *get(net, l, p) = v0;
            v
        };
        let (e, q) = (eps as f64, (eps / 4.0) as f64);
        let (pe, me, pq, mq, zero) = (at(eps), at(-eps), at(eps / 4.0), at(-eps / 4.0), at(0.0));
        let (numeric, err) = [
            (pe - me) / (2.0 * e),
            (pq - mq) / (2.0 * q),
            (pq - zero) / q,
            (zero - mq) / q,
        ]
        .into_iter()
        .map(|numeric| {
            (
                numeric,
                (analytic - numeric).abs() / (analytic.abs().max(numeric.abs()) + 2e-3),
            )
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("four estimates");
        assert!(
            err < 0.05,
            "layer {l} {p:?}: analytic {analytic:.6e}, numeric {numeric:.6e} (relative error {err:.3})"
        );
        worst = worst.max(err);
    }
    worst
}

fn params_to_check(net: &Net) -> Vec<(usize, P)> {
    let mut v = Vec::new();
    for (l, s) in net.specs.iter().enumerate() {
        let n = s.out * s.fan_in;
        for k in 0..6 {
            v.push((l, P::W((k * 7919 + 13 * l) % n)));
        }
        if s.last {
            v.push((l, P::Bias(0)));
            v.push((l, P::Bias(s.out - 1)));
            v.push((l, P::HeadScale));
        } else {
            v.push((l, P::Gamma(0)));
            v.push((l, P::Beta(s.out - 1)));
        }
    }
    v
}

fn net(arch: &str, t: usize, surrogate: Surrogate, reset: ResetKind) -> Net {
    let lif = LifConfig {
        vth: 0.6,
        tau: 0.5,
        reset,
        strict: true,
        surrogate,
        width: 0.5,
    };
    let mut n = Net::new(arch, t, lif, false, 7).unwrap();
    n.relaxed = true;
    n
}

const ARCHS: [&str; 2] = ["6x6x2-4C3-MP2-3C3-AP2-5-3-GAP", "7x7x1-3C3s2v-4C1-2C3-GAP"];

#[test]
fn network_gradients_match_finite_differences_for_every_surrogate_and_reset() {
    for arch in ARCHS {
        for (surrogate, eps) in [
            (Surrogate::Sigmoid, 1e-2),
            (Surrogate::Triangle, 2e-3),
            (Surrogate::Rectangular, 1e-3),
        ] {
            for reset in [ResetKind::Hard, ResetKind::Subtract] {
                for t in [1, 3] {
                    let mut n = net(arch, t, surrogate, reset);
                    let (h, w, c) = n.input;
                    let images = spikeforge_trainer::net::random_images(5, h * w * c, 3);
                    let labels: Vec<u8> = (0..5).map(|i| (i % n.classes()) as u8).collect();
                    let which = params_to_check(&n);
                    let worst = check(&mut n, &images, &labels, eps, &which);
                    eprintln!(
                        "{arch} {surrogate:?} {reset:?} T={t}: worst relative error {worst:.4}"
                    );
                }
            }
        }
    }
}

#[test]
fn clipped_ste_and_bwo_alpha_gradients_match_finite_differences() {
    let arch = ARCHS[0];
    let mut n = net(arch, 2, Surrogate::Sigmoid, ResetKind::Hard);
    let (h, w, c) = n.input;
    let images = spikeforge_trainer::net::random_images(5, h * w * c, 5);
    let labels = [0u8, 1, 2, 0, 1];
    // Layer 1 binary with a fixed (trainable) α: the relaxed forward pass is α·clamp(W, −1, 1),
    // whose derivative is the clipped STE. Two weights beyond ±1 must get no gradient.
    n.params[1].precision = Precision::Binary;
    n.params[1].alpha = Some(vec![0.4, 0.7, 0.5]);
    n.params[1].w[0] = 1.5;
    n.params[1].w[5] = -1.25;
    let f = n.forward(&images, true, false);
    let (_, _, d) = ops::softmax_ce(&f.logits, &labels);
    let g = n.backward(f, &d);
    assert_eq!(
        (g[1].w[0], g[1].w[5]),
        (0.0, 0.0),
        "the STE is clipped at |W| > 1"
    );
    let which: Vec<(usize, P)> = [1, 2, 3, 4, 8, 20, 33]
        .iter()
        .map(|&i| (1, P::W(i)))
        .collect();
    check(&mut n, &images, &labels, 1e-2, &which);
    // BWO-α: with the real sign(W) forward pass the effective weight is linear in α, so
    // ∂L/∂α = Σ ∂L/∂W_b·sign(W) is the exact gradient.
    n.relaxed = false;
    n.lif.surrogate = Surrogate::Sigmoid;
    let mut smooth = n.clone();
    smooth.relaxed = true;
    smooth.params[1]
        .w
        .iter_mut()
        .for_each(|w| *w = if *w >= 0.0 { 1.0 } else { -1.0 });
    // With every |W| = 1, α·clamp(W) equals α·sign(W): the relaxed LIF and the true binary
    // weights in one smooth function of α.
    check(
        &mut smooth,
        &images,
        &labels,
        1e-2,
        &[(1, P::Alpha(0)), (1, P::Alpha(1)), (1, P::Alpha(2))],
    );
}

#[test]
fn surrogate_primitives_differentiate_to_the_surrogates() {
    for s in [
        Surrogate::Rectangular,
        Surrogate::Triangle,
        Surrogate::Sigmoid,
    ] {
        for k in 0..200 {
            let d = -1.3 + k as f32 * 0.013 + 0.0041;
            let a = 0.5;
            if (d.abs() - a).abs() < 1e-2 || d.abs() < 1e-2 {
                continue; // kinks of the piecewise primitives
            }
            let e = 1e-3;
            let num = (s.primitive(d + e, a) - s.primitive(d - e, a)) / (2.0 * e);
            assert!(
                (num - s.grad(d, a)).abs() < 1e-2,
                "{s:?} at {d}: {num} vs {}",
                s.grad(d, a)
            );
        }
    }
}

/// Framed input (event data): the first layer has a current per step instead of one shared
/// one, and its gradients still match finite differences.
#[test]
fn framed_input_gradients_match_finite_differences() {
    for t in [2, 3] {
        let mut n = net(ARCHS[0], t, Surrogate::Sigmoid, ResetKind::Subtract);
        n.frames = Some(8);
        let (h, w, c) = n.input;
        let images = spikeforge_trainer::net::random_images(5, h * w * c * t, 4);
        let labels: Vec<u8> = (0..5).map(|i| (i % n.classes()) as u8).collect();
        let which = params_to_check(&n);
        let worst = check(&mut n, &images, &labels, 1e-2, &which);
        eprintln!("frames T={t}: worst relative error {worst:.4}");
    }
}
