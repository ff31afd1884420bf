//! Export against the float network it came from: at T = 1 the integer model's logits are
//! the float logits times one positive constant (same spikes everywhere), for random
//! networks with negative BatchNorm scales (polarity), binary and integer layers, max and
//! average pooling, dense and convolutional heads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikeforge_trainer::export;
use spikeforge_trainer::net::{random_images, Net, Precision};
use spikeforge_trainer::ops::LifConfig;

fn randomise(net: &mut Net, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in &mut net.params {
        if let Some(bn) = p.bn.as_mut() {
            for c in 0..bn.gamma.len() {
                let g: f32 = rng.gen_range(0.3..1.5);
                bn.gamma[c] = if rng.gen_bool(0.3) { -g } else { g };
                bn.beta[c] = rng.gen_range(-0.5..1.0);
                bn.mean[c] = rng.gen_range(-0.5..0.5);
                bn.var[c] = rng.gen_range(0.05..2.0);
            }
        }
        for b in &mut p.bias {
            *b = rng.gen_range(-0.3..0.3);
        }
    }
    net.fake_quant = true;
}

/// Float logits, integer logits per image; the fraction of images whose integer logits are
/// the float ones times the common constant.
fn proportional_fraction(net: &mut Net, n: usize, seed: u64) -> f64 {
    let model = export::export(net, "t").expect("exports");
    let (h, w, c) = net.input;
    let images = random_images(n, h * w * c, seed);
    let float = net.forward(&images, false, false).logits;
    let golden = spikeforge_model::Golden::new(&model);
    let ints = golden.run_batch(&images, false).unwrap();
    let last = net.specs.last().unwrap();
    let per = (last.out_hw.0 * last.out_hw.1 * net.time_steps) as f64;
    let k = net.head_log_scale.exp() as f64 * net.head_unit() / per;
    let mut good = 0;
    for (i, inf) in ints.iter().enumerate() {
        let row = float.row(i);
        let scale = row.iter().fold(1e-6f64, |m, v| m.max(v.abs() as f64));
        if inf
            .logits
            .iter()
            .zip(row.iter())
            .all(|(&q, &f)| (q as f64 * k - f as f64).abs() <= 1e-3 * scale)
        {
            good += 1;
        }
    }
    good as f64 / n as f64
}

#[test]
fn integer_logits_are_the_float_logits_scaled_at_t1() {
    let archs = [
        "12x12x1-6C3-MP2-8C3-AP2-5-GAP",
        "12x12x2-6C3s2-4C1b-MP2-3C3-GAP",
        "10x10x1-8C3-MP2-12b-7",
        "8x8x3-5C3v-AP2-4",
    ];
    for (k, arch) in archs.iter().enumerate() {
        for binary_middle in [false, true] {
            let mut net = Net::new(arch, 1, LifConfig::default(), false, 11 + k as u64).unwrap();
            randomise(&mut net, 100 + k as u64);
            if binary_middle && net.specs.len() > 2 {
                net.params[1].precision = Precision::Binary;
            }
            let f = proportional_fraction(&mut net, 300, 7);
            assert!(
                f >= 0.99,
                "{arch} (binary middle {binary_middle}): only {f} of images match"
            );
        }
    }
}

#[test]
fn t4_with_leak_exports_close_to_the_float_network() {
    let mut net = Net::new(
        "12x12x1-6C3-MP2-8C3-4C1-GAP",
        4,
        LifConfig::default(),
        false,
        3,
    )
    .unwrap();
    randomise(&mut net, 9);
    let model = export::export(&net, "t").unwrap();
    assert_eq!(model.time_steps, 4);
    let images = random_images(300, 144, 5);
    let float = net.forward(&images, false, false).logits;
    let ints = spikeforge_trainer::export::golden_classes(&model, &images);
    let agree = ints
        .iter()
        .enumerate()
        .filter(|(i, &c)| spikeforge_trainer::ops::argmax(&float.row(*i).to_vec()) == c)
        .count();
    // T > 1 rounds the leak and the bias; the classes still agree almost everywhere.
    assert!(agree >= 270, "{agree}/300 classes agree at T = 4");
}

/// Framed input (event data, the IR's `frames` encoding): each step has its own input map.
/// The export says so (encoding, the frames' bits), the golden model takes the same samples,
/// and without a leak its classes are the float network's on every sample; the order of the
/// frames matters to both.
#[test]
fn framed_input_exports_to_the_frames_encoding_and_agrees_with_the_float_network() {
    // No leak, hard reset: at T > 1 the fake-quantised network then evaluates exactly what
    // the integer neurons compute.
    let lif = LifConfig {
        tau: 1.0,
        ..LifConfig::default()
    };
    let mut net = Net::new("10x10x2-6C3-MP2-8C3-4C1-GAP", 4, lif, false, 5).unwrap();
    net.frames = Some(2);
    randomise(&mut net, 13);
    // 300 samples of 4 frames of 10×10×2 counts in 0..=3, sparse as events are.
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let frame = 10 * 10 * 2;
    let samples: Vec<u8> = (0..300 * 4 * frame)
        .map(|_| {
            if rng.gen_bool(0.3) {
                rng.gen_range(1..=3)
            } else {
                0
            }
        })
        .collect();
    // BatchNorm statistics of these samples, so that the neurons see varied currents.
    net.recalibrate_bn(&samples);
    let model = export::export(&net, "t").unwrap();
    assert_eq!(model.input.encoding, spikeforge_model::ir::Encoding::Frames);
    assert_eq!((model.input.pixel_bits, model.time_steps), (2, 4));
    let float = net.forward(&samples, false, false).logits;
    let ints = export::golden_classes(&model, &samples);
    let agree = ints
        .iter()
        .enumerate()
        .filter(|(i, &c)| spikeforge_trainer::ops::argmax(&float.row(*i).to_vec()) == c)
        .count();
    assert_eq!(agree, 300, "classes that agree");
    let classes: std::collections::BTreeSet<usize> = ints.iter().copied().collect();
    assert!(classes.len() >= 2, "the samples fall into {classes:?}");
    // The same frames in reverse order: other logits in both models.
    let reversed: Vec<u8> = samples
        .chunks(4 * frame)
        .flat_map(|s| s.chunks(frame).rev().flatten().copied().collect::<Vec<_>>())
        .collect();
    let float_rev = net.forward(&reversed, false, false).logits;
    assert_ne!(float, float_rev);
    let golden = spikeforge_model::Golden::new(&model);
    let a = golden.run_batch(&samples[..4 * frame], false).unwrap();
    let b = golden.run_batch(&reversed[..4 * frame], false).unwrap();
    assert_ne!(a[0].logits, b[0].logits);
}

/// Still images at T = 4 without a leak and with a hard reset: the fake-quantised network's
/// per-step BatchNorm shift is the exported integer bias, so the classes agree everywhere.
#[test]
fn t4_without_leak_exports_exactly() {
    let lif = LifConfig {
        tau: 1.0,
        ..LifConfig::default()
    };
    for (k, arch) in ["12x12x1-6C3-MP2-8C3-4C1-GAP", "10x10x1-8C3-MP2-12b-7"]
        .iter()
        .enumerate()
    {
        let mut net = Net::new(arch, 4, lif, false, 3 + k as u64).unwrap();
        randomise(&mut net, 9 + k as u64);
        let (h, w, c) = net.input;
        let images = random_images(300, h * w * c, 5);
        net.recalibrate_bn(&images);
        let model = export::export(&net, "t").unwrap();
        let float = net.forward(&images, false, false).logits;
        let ints = export::golden_classes(&model, &images);
        let agree = ints
            .iter()
            .enumerate()
            .filter(|(i, &c)| spikeforge_trainer::ops::argmax(&float.row(*i).to_vec()) == c)
            .count();
        assert_eq!(agree, 300, "{arch}: classes that agree");
    }
}
