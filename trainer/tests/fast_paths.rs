//! The fast paths against the general per-operation path: the fused one-time-step path
//! (BatchNorm, LIF step and max or average pooling in one pass) gives the same logits, spike
//! rates, running statistics and gradients, bit for bit; the popcount product of binary layers
//! on spikes the same logits to rounding.

use spikeforge_trainer::net::{random_images, LayerGrads, Net, Precision};
use spikeforge_trainer::ops::{self, LifConfig, ResetKind, Surrogate};

/// Forward (training mode) and backward of one batch; returns the net after the pass (its
/// running statistics updated), the logits, rates and gradients.
fn pass(
    mut net: Net,
    images: &[u8],
    labels: &[u8],
) -> (Net, Vec<f32>, Vec<f32>, Vec<LayerGrads>, usize) {
    let f = net.forward(images, true, false);
    let fused = f.fused_layers;
    let (logits, rates) = (f.logits.iter().copied().collect(), f.rates.clone());
    let (_, _, dlogits) = ops::softmax_ce(&f.logits, labels);
    let grads = net.backward(f, &dlogits);
    (net, logits, rates, grads, fused)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn the_fused_path_equals_the_general_one_bit_for_bit() {
    let archs = [
        "12x12x1-8C3-MP2-6C3-MP2-5C3-GAP",
        "8x8x2-6C3-MP2-4C3-4C1-3C1-GAP",
        "10x10x1-5C3-MP2-4C3-AP2-3C1-GAP",
        "12x12x1-6C3-AP2-5C3-AP2-4C3-GAP",
    ];
    let surrogates = [
        Surrogate::Rectangular,
        Surrogate::Triangle,
        Surrogate::Sigmoid,
    ];
    let mut fused_layers = 0;
    for (i, arch) in archs.iter().enumerate() {
        for (j, &surrogate) in surrogates.iter().enumerate() {
            let lif = LifConfig {
                vth: 0.5,
                tau: 1.0,
                reset: ResetKind::Hard,
                strict: j % 2 == 0,
                surrogate,
                width: 0.5,
            };
            let net = Net::new(arch, 1, lif, false, 11 + i as u64).unwrap();
            let (h, w, c) = net.input;
            let images = random_images(16, h * w * c, 5 + j as u64);
            let labels: Vec<u8> = (0..16u8).map(|k| k % 3).collect();
            let mut general = net.clone();
            general.unfused = true;
            let (nf, lf, rf, gf, fused) = pass(net, &images, &labels);
            let (ng, lg, rg, gg, unfused) = pass(general, &images, &labels);
            assert_eq!(unfused, 0);
            fused_layers += fused;
            let what = format!("{arch}, {surrogate:?}");
            assert_eq!(bits(&lf), bits(&lg), "logits of {what}");
            assert_eq!(rf, rg, "spike rates of {what}");
            assert!(
                rf.iter().all(|&r| r > 0.0 && r < 1.0),
                "{what}: every layer spikes, not always ({rf:?})"
            );
            for (l, (a, b)) in gf.iter().zip(&gg).enumerate() {
                assert_eq!(bits(&a.w), bits(&b.w), "∂W of layer {l}, {what}");
                assert_eq!(bits(&a.gamma), bits(&b.gamma), "∂γ of layer {l}, {what}");
                assert_eq!(bits(&a.beta), bits(&b.beta), "∂β of layer {l}, {what}");
                assert!(a.w.iter().any(|&g| g != 0.0), "layer {l} of {what} learns");
                let (bf, bg) = (nf.params[l].bn.as_ref(), ng.params[l].bn.as_ref());
                if let (Some(bf), Some(bg)) = (bf, bg) {
                    assert_eq!(bits(&bf.mean), bits(&bg.mean), "running mean {l}, {what}");
                    assert_eq!(bits(&bf.var), bits(&bg.var), "running var {l}, {what}");
                }
            }
        }
    }
    // Per surrogate: both max-pooled layers of the first architecture, one of the second and
    // third (whose average pooling is over an odd 5×5 map, which the fast path leaves to the
    // general one) and both average-pooled layers of the fourth take the fast path.
    assert_eq!(fused_layers, 18);
}

#[test]
fn the_popcount_product_of_binary_layers_equals_the_float_one_to_rounding() {
    // Binary layers after max pooling, after no pooling, dense, and (no popcount) after
    // average pooling; T = 1 and T = 3.
    let cases = [
        ("12x12x1-8C3-MP2-40C3-MP2-20-GAP", 1, vec![1, 2], 2),
        ("12x12x1-8C3-MP2-40C3-MP2-20-GAP", 3, vec![1, 2], 2),
        ("8x8x2-6C3-36C3-AP2-5C3-GAP", 1, vec![1, 2], 1),
    ];
    for (arch, t, binary, expected) in cases {
        let mut net = Net::new(arch, t, LifConfig::default(), false, 3).unwrap();
        for &l in &binary {
            net.params[l].precision = Precision::Binary;
        }
        let (h, w, c) = net.input;
        let images = random_images(8, h * w * c, 9);
        let mut general = net.clone();
        general.unfused = true;
        for train in [false, true] {
            let f = net.clone().forward(&images, train, false);
            let g = general.clone().forward(&images, train, false);
            assert_eq!(
                (f.popcount_layers, g.popcount_layers),
                (expected, 0),
                "{arch}, T = {t}"
            );
            assert!(
                f.rates.iter().all(|&r| r > 0.0),
                "{arch}: layers spike ({:?})",
                f.rates
            );
            for (a, b) in f.logits.iter().zip(&g.logits) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{arch}, T = {t}: {a} vs {b}"
                );
            }
        }
    }
}
