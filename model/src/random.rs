//! Random models for differential testing and benchmarks: random weights and parameters,
//! with thresholds calibrated on random images so that neurons actually spike (a model whose
//! neurons are all silent, or all firing, proves little about the RTL).

use bitvec::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::arch::{Arch, WeightKind};
use crate::geometry::try_model_geometry;
use crate::golden::Golden;
use crate::ir::{
    version_for, Coding, Encoding, FireRule, Head, InputSpec, Layer, Leak, Lif, Model,
    NegativeSpikes, Neuron, Reset, Synapse, Tsa, Weights, FORMAT,
};
use crate::validate::{time_steps_problem, validate, Problem, MAX_PARAM};
use crate::weights::pack_signs;
use crate::widths::{channel_acc_ranges, tsa_input_bound};

/// Images used to calibrate thresholds.
const CALIBRATION_IMAGES: usize = 12;

/// Random images (uniform pixels), `n` of them, concatenated (each `T` frames for a
/// `frames` model).
pub fn random_images(model: &Model, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let i = &model.input;
    let len = crate::Golden::new(model).image_len() * n;
    let max = (1u32 << i.pixel_bits) - 1;
    (0..len).map(|_| rng.gen_range(0..=max) as u8).collect()
}

fn random_weights(rng: &mut ChaCha8Rng, kind: WeightKind, n: usize) -> Weights {
    match kind {
        WeightKind::Binary => {
            let bits: BitVec<u8, Lsb0> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
            Weights::Binary {
                signs: pack_signs(&bits),
            }
        }
        WeightKind::Integer(bits) => {
            let lim = 1i32 << (bits - 1);
            Weights::Integer {
                bits,
                values: (0..n).map(|_| rng.gen_range(-lim..lim)).collect(),
            }
        }
    }
}

/// Value at quantile `q` of `v` (sorted in place).
fn quantile(v: &mut [i64], q: f64) -> i64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn clamp_param(v: i64) -> i32 {
    v.clamp(-MAX_PARAM, MAX_PARAM) as i32
}

/// Builds a valid random LIF-coded model of architecture `arch` with `time_steps` steps from
/// `seed`.
pub fn random_model(arch: &Arch, time_steps: u32, seed: u64) -> Result<Model, Vec<Problem>> {
    random_coded_model(arch, time_steps, seed, Coding::Lif)
}

/// Builds a valid random model of architecture `arch` with `time_steps` steps and the given
/// coding from `seed`. TSA models draw the register's variants too (silent steps 0–2,
/// negative spikes with or without the guard), with the tightest spike-preserving clamp.
pub fn random_coded_model(
    arch: &Arch,
    time_steps: u32,
    seed: u64,
    coding: Coding,
) -> Result<Model, Vec<Problem>> {
    let encoding = match coding {
        Coding::Lif => Encoding::Direct,
        Coding::Tsa => Encoding::FirstStep,
    };
    random_model_with(arch, time_steps, seed, coding, encoding, 8)
}

/// Builds a valid random LIF model that takes per-step input frames (the `frames` encoding,
/// as event data: `T` maps per sample) of `pixel_bits`-bit values.
pub fn random_frames_model(
    arch: &Arch,
    time_steps: u32,
    pixel_bits: u32,
    seed: u64,
) -> Result<Model, Vec<Problem>> {
    random_model_with(
        arch,
        time_steps,
        seed,
        Coding::Lif,
        Encoding::Frames,
        pixel_bits,
    )
}

fn random_model_with(
    arch: &Arch,
    time_steps: u32,
    seed: u64,
    coding: Coding,
    encoding: Encoding,
    pixel_bits: u32,
) -> Result<Model, Vec<Problem>> {
    // Checked first: the threshold calibration below runs the golden model for T steps.
    if let Some(p) = time_steps_problem(time_steps) {
        return Err(vec![p]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (h, w, c) = arch.input;
    let mut model = Model {
        format: FORMAT.into(),
        version: version_for(encoding),
        name: "random".into(),
        input: InputSpec {
            height: h,
            width: w,
            channels: c,
            pixel_bits,
            encoding,
        },
        time_steps,
        layers: Vec::new(),
        head: Head::GapArgmax,
    };
    let calib = random_images(&model, CALIBRATION_IMAGES, seed ^ 0x5eed);
    let golden = Golden::new(&model);
    let mut maps: Vec<Vec<i64>> = calib
        .chunks(golden.image_len())
        .map(|img| golden.input_values(img))
        .collect();
    let mut steps = encoding.input_maps(time_steps);
    let last = arch.layers.len() - 1;
    for (i, al) in arch.layers.iter().enumerate() {
        let cout = match al.synapse {
            Synapse::Conv { out_channels, .. } => out_channels,
            Synapse::Dense { out_features } => out_features,
        } as usize;
        // Build with a placeholder neuron to learn the fan-in and measure the currents.
        model.layers.push(Layer {
            name: format!("l{i}"),
            synapse: al.synapse,
            weights: Weights::Integer {
                bits: 2,
                values: Vec::new(),
            },
            neuron: Neuron::None {
                bias: vec![0; cout],
            },
            pool: None,
        });
        let geo = try_model_geometry(&model).map_err(|bad| {
            vec![Problem {
                field: format!("layers[{bad}].synapse"),
                reason: "the kernel does not fit the layer's input map".into(),
            }]
        })?[i];
        model.layers[i].weights = random_weights(&mut rng, al.weights, geo.fan_in * cout);
        let currents: Vec<Vec<i64>> = {
            let g = Golden::new(&model);
            maps.iter().map(|m| g.currents(i, m, steps)).collect()
        };
        let per_channel = |ch: usize| -> Vec<i64> {
            currents
                .iter()
                .flat_map(|cur| cur.iter().skip(ch).step_by(cout).copied())
                .collect()
        };
        let spread = |v: &mut Vec<i64>| (quantile(v, 0.9) - quantile(v, 0.1)).max(1);
        let neuron = if i == last {
            let bias = (0..cout)
                .map(|ch| {
                    let s = spread(&mut per_channel(ch)) / 4;
                    clamp_param(rng.gen_range(-s..=s))
                })
                .collect();
            match coding {
                Coding::Lif => Neuron::None { bias },
                Coding::Tsa => Neuron::TsaReadout { bias },
            }
        } else {
            match coding {
                Coding::Lif => random_lif(&mut rng, cout, time_steps, per_channel),
                Coding::Tsa => {
                    let acc = channel_acc_ranges(
                        &model.layers[i],
                        geo.fan_in,
                        geo.input_min,
                        geo.input_max,
                    );
                    random_tsa(&mut rng, i == 0, &acc, per_channel)
                }
            }
        };
        model.layers[i].neuron = neuron;
        model.layers[i].pool = al.pool;
        if i < last {
            let g = Golden::new(&model);
            for m in maps.iter_mut() {
                *m = g.layer_output(i, m, steps).0;
            }
            steps = time_steps;
        }
    }
    validate(&model)?;
    Ok(model)
}

fn random_lif(
    rng: &mut ChaCha8Rng,
    cout: usize,
    time_steps: u32,
    per_channel: impl Fn(usize) -> Vec<i64>,
) -> Neuron {
    let leak = match rng.gen_range(0..3) {
        0 => Leak::None,
        1 => Leak::Shift {
            shift: rng.gen_range(1..=3),
        },
        _ => Leak::Decay {
            shift: rng.gen_range(1..=3),
        },
    };
    let reset = if rng.gen_bool(0.5) {
        Reset::Hard
    } else {
        Reset::Subtract
    };
    let fire = if rng.gen_bool(0.5) {
        FireRule::Ge
    } else {
        FireRule::Gt
    };
    let mut bias = Vec::with_capacity(cout);
    let mut threshold = Vec::with_capacity(cout);
    let mut polarity = String::with_capacity(cout);
    for ch in 0..cout {
        let neg = rng.gen_bool(0.25);
        let mut cur = per_channel(ch);
        let spread = (quantile(&mut cur, 0.9) - quantile(&mut cur, 0.1)).max(1);
        let b = rng.gen_range(-spread / 8..=spread / 8);
        let mut v: Vec<i64> = cur.iter().map(|&a| if neg { -a } else { a } + b).collect();
        // Longer trains integrate more, so fire later in the distribution to keep rates sane.
        let q: f64 = rng.gen_range(0.35..0.8) + if time_steps > 1 { 0.1 } else { 0.0 };
        let t = quantile(&mut v, q.min(0.95));
        polarity.push(if neg { '-' } else { '+' });
        bias.push(clamp_param(b));
        threshold.push(clamp_param(t));
    }
    Neuron::Lif(Lif {
        bias,
        threshold,
        polarity,
        leak,
        reset,
        fire,
    })
}

fn random_tsa(
    rng: &mut ChaCha8Rng,
    pixel_layer: bool,
    acc: &[crate::widths::Range],
    per_channel: impl Fn(usize) -> Vec<i64>,
) -> Neuron {
    // Mostly the register's defaults: no silent step on pixels, one elsewhere, the guard on.
    let silent = match (pixel_layer, rng.gen_range(0..10)) {
        (true, 0..=7) => 0,
        (true, _) => 1,
        (false, 0..=6) => 1,
        (false, 7 | 8) => 0,
        (false, _) => 2,
    };
    let negative = if rng.gen_bool(0.8) {
        NegativeSpikes::AfterPositive
    } else {
        NegativeSpikes::Always
    };
    let cout = acc.len();
    let (mut bias, mut threshold, mut clamp) = (vec![], vec![], vec![]);
    let mut polarity = String::with_capacity(cout);
    for (ch, r) in acc.iter().enumerate() {
        let neg = rng.gen_bool(0.25);
        let mut mag: Vec<i64> = per_channel(ch).iter().map(|a| a.abs()).collect();
        let spread = quantile(&mut mag, 0.9).max(1);
        let b = clamp_param(rng.gen_range(-spread / 4..=spread / 4));
        let thr = quantile(&mut mag, rng.gen_range(0.3..0.8)).max(1) as i32;
        let thr = clamp_param(thr as i64 / if pixel_layer { 2 } else { 1 }).max(1);
        let tight = 4 * thr as i64 + tsa_input_bound(*r, b);
        let extra = if rng.gen_bool(0.2) {
            rng.gen_range(0..=16)
        } else {
            0
        };
        polarity.push(if neg { '-' } else { '+' });
        bias.push(b);
        threshold.push(thr);
        clamp.push(clamp_param(tight + extra));
    }
    Neuron::Tsa(Tsa {
        bias,
        threshold,
        polarity,
        clamp,
        silent,
        negative,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::parse;
    use crate::validate::MAX_TIME_STEPS;

    fn spike_rate(model: &Model, layer: usize) -> f64 {
        let imgs = random_images(model, 8, 99);
        let out = Golden::new(model).run_batch(&imgs, true).unwrap();
        let (mut ones, mut all) = (0usize, 0usize);
        for r in &out {
            let t = &r.trace.as_ref().unwrap()[layer];
            ones += t.values.iter().filter(|&&v| v > 0).count();
            all += t.values.len();
        }
        ones as f64 / all as f64
    }

    #[test]
    fn random_models_spike_but_not_always() {
        for (arch, t) in [
            ("784-128b-10", 1),
            ("12x12x2-8C3b-MP2-6C3i4-SP2-5C1", 2),
            ("10x10-4C5s2v-8i3-3", 4),
        ] {
            let m = random_model(&parse(arch).unwrap(), t, 7).unwrap();
            let r = spike_rate(&m, 0);
            assert!(r > 0.05 && r < 0.95, "{arch}: layer 0 spike rate {r}");
        }
    }

    #[test]
    fn random_tsa_models_emit_all_three_spikes() {
        for (arch, t) in [("12x12x2-6C3-SP2-5C3b-4", 6), ("40-16b-12-5", 4)] {
            let m = random_coded_model(&parse(arch).unwrap(), t, 5, Coding::Tsa).unwrap();
            let imgs = random_images(&m, 8, 99);
            let out = Golden::new(&m).run_batch(&imgs, true).unwrap();
            for layer in 0..m.layers.len() - 1 {
                let count = |v: i64| {
                    out.iter()
                        .flat_map(|r| &r.trace.as_ref().unwrap()[layer].values)
                        .filter(|&&x| x.signum() == v)
                        .count()
                };
                let (neg, zero, pos) = (count(-1), count(0), count(1));
                assert!(
                    neg > 0 && zero > 0 && pos > 0,
                    "{arch} layer {layer}: {neg}/{zero}/{pos}"
                );
            }
        }
    }

    #[test]
    fn max_pooling_in_a_tsa_model_is_refused() {
        let e =
            random_coded_model(&parse("8x8-4C3-MP2-3").unwrap(), 4, 1, Coding::Tsa).unwrap_err();
        assert!(
            e[0].field == "layers[0].pool" && e[0].reason.contains("sum (average)"),
            "{e:?}"
        );
    }

    #[test]
    fn time_steps_outside_the_ir_range_are_refused() {
        let a = parse("8x8-4C3b-3").unwrap();
        for t in [0, MAX_TIME_STEPS + 1] {
            let e = random_model(&a, t, 1).unwrap_err();
            assert!(
                e[0].field == "time_steps" && e[0].reason.contains("out of range 1..="),
                "{e:?}"
            );
        }
        assert!(random_model(&a, MAX_TIME_STEPS, 1).is_ok());
    }

    #[test]
    fn same_seed_same_model() {
        let a = parse("8x8-4C3b-MP2-3").unwrap();
        assert_eq!(
            random_model(&a, 2, 1).unwrap(),
            random_model(&a, 2, 1).unwrap()
        );
        assert_ne!(
            random_model(&a, 2, 1).unwrap(),
            random_model(&a, 2, 2).unwrap()
        );
    }
}
