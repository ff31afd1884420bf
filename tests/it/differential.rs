//! Differential tests: random models × foldings × random images, RTL (Verilator) against the
//! golden model, exact on every tap beat and on the result. Also: a corrupted weight is caught
//! and named.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikeforge_hdl_gen::fold::{self, divisors, DspLanes, FoldOverride};
use spikeforge_hdl_gen::{Folding, LayerFold};
use spikeforge_model::geometry::model_geometry;
use spikeforge_model::ir::Synapse;
use spikeforge_model::random::{random_frames_model, random_images, random_model};
use spikeforge_model::{arch, Model};

use crate::util;

/// Architectures that between them cover every layer kind: convolution k ∈ {1, 3, 5},
/// stride 1 and 2, same and valid padding, dense; binary and integer weights on pixels,
/// spikes and pooled counts; OR and SUM pooling; conv and dense output layers.
const COVERAGE: &[&str] = &[
    "9x9x2-4C3b-MP2-5C3i4-SP2-3C1i6",
    "8x8-3C5s2vi8-4b-3b",
    "7x6x3-4C1s2b-SP2-5C3b-4i3",
    "36-6i5-5b-4i2",
    "12x12-3C3s2i3-MP2-2C3vb-3C1b",
];

/// A folding other than the default: random divisors, DSP lanes on or off at random, operand
/// registers on or off at random, and several pixels per beat when the first layer is dense.
fn other_folding(model: &Model, seed: u64) -> Folding {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let geo = model_geometry(model);
    let mut overrides: Vec<FoldOverride> = geo
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let pes = divisors(g.synaptic.channels);
            let simds = fold::simd_choices(g);
            // MMV > 1 wherever a layer allows it, three times in four (at most 4 positions,
            // which keeps the Verilator builds small).
            let mmvs: Vec<u32> = fold::mmv_choices(g)
                .into_iter()
                .filter(|&v| v > 1 && v <= 4)
                .collect();
            let mmv = if !mmvs.is_empty() && rng.gen_range(0..4) > 0 {
                mmvs[rng.gen_range(0..mmvs.len())]
            } else {
                1
            };
            FoldOverride::Layer(
                i.to_string(),
                LayerFold {
                    pe: pes[rng.gen_range(0..pes.len())],
                    simd: simds[rng.gen_range(0..simds.len())],
                    mmv,
                },
            )
        })
        .collect();
    if matches!(model.layers[0].synapse, Synapse::Dense { .. }) {
        let ps = divisors(geo[0].input.positions() as u32);
        overrides.push(FoldOverride::Input(ps[rng.gen_range(0..ps.len())]));
    }
    // LUT lanes, DSP lanes, or a DSP budget that leaves some lanes in LUTs.
    overrides.push(FoldOverride::Dsp(match rng.gen_range(0..3) {
        0 => DspLanes::Off,
        1 => DspLanes::On,
        _ => DspLanes::AtMost(rng.gen_range(1..=8)),
    }));
    // Operand registers (after the weight ROM and the DSP products) half of the time.
    overrides.push(FoldOverride::OperandRegs(rng.gen_bool(0.5)));
    fold::resolve(model, &overrides).expect("divisors always fold")
}

/// The widest folding: every layer fully parallel in PE and SIMD, an adder-tree register
/// after every level, DSP lanes (multiplier products) for multi-bit × multi-bit synapses, and
/// operand registers (after the weight ROM and the products).
fn widest_folding(model: &Model) -> Folding {
    let geo = model_geometry(model);
    let mut overrides: Vec<FoldOverride> = geo
        .iter()
        .enumerate()
        .map(|(i, g)| {
            FoldOverride::Layer(
                i.to_string(),
                LayerFold::new(
                    g.synaptic.channels,
                    *fold::simd_choices(g).last().expect("1 divides everything"),
                ),
            )
        })
        .collect();
    overrides.push(FoldOverride::TreeLevels(1));
    overrides.push(FoldOverride::Dsp(DspLanes::On));
    overrides.push(FoldOverride::OperandRegs(true));
    fold::resolve(model, &overrides).expect("the widest folding is valid")
}

/// Co-simulates one model under three foldings (the default, a random one, the widest) on
/// random images, with stalls; returns the model × image pairs run.
pub(crate) fn check_model(model: &Model, seed: u64, images: usize) -> usize {
    let foldings = [
        fold::resolve(model, &[]).unwrap(),
        other_folding(model, seed),
        widest_folding(model),
    ];
    let imgs = random_images(model, images, seed);
    for (k, folding) in foldings.iter().enumerate() {
        let design = util::design(model, folding);
        let dir = tempfile::tempdir().unwrap();
        util::write(&design, dir.path());
        let lint = util::lint(dir.path(), &design);
        assert!(
            lint.trim().is_empty(),
            "seed {seed}, folding {folding:?}: verilator -Wall:\n{lint}"
        );
        let what = format!("seed {seed}, folding {folding:?}");
        util::assert_no_latch(dir.path(), &design, &what);
        let two = 2 * imgs.len() / images;
        util::assert_icarus_matches_golden(dir.path(), &design, model, &imgs[..two], &what);
        let sim = util::simulator(&design);
        let report =
            spikeforge_cosim::cosimulate(model, &sim, &imgs, seed.max(1) + k as u64, None, &|_| {})
                .unwrap_or_else(|e| panic!("seed {seed}, folding {folding:?}: {e}"));
        assert_eq!(
            report.bit_exact, images,
            "seed {seed}, folding {folding:?}: first divergence: {:?}",
            report.first_mismatch
        );
        assert_cycles_match(&sim, &imgs, &what);
    }
    foldings.len() * images
}

/// The manifest's `cycles_per_image` equals the steady-state cycles measured without stalls
/// (the difference between runs of `n` and `2n` images, so the pipeline's fill cancels)
/// within 2 %.
fn assert_cycles_match(sim: &spikeforge_cosim::Simulator, imgs: &[u8], what: &str) {
    let n = 3usize;
    let i = &sim.manifest().input;
    let len = (i.beats_per_image * i.pixels_per_beat * i.channels * i.steps) as usize;
    let batch: Vec<u8> = imgs.iter().copied().cycle().take(2 * n * len).collect();
    let once = sim
        .run(&batch[..n * len], n as u32, 0, None)
        .unwrap()
        .cycles;
    let twice = sim.run(&batch, 2 * n as u32, 0, None).unwrap().cycles;
    let measured = (twice - once) as f64 / n as f64;
    let stated = sim.manifest().cycles_per_image as f64;
    assert!(
        (measured - stated).abs() <= 0.02 * measured,
        "{what}: manifest says {stated} cycles per image, measured {measured}"
    );
}

#[test]
fn coverage_models_are_bit_exact_at_t_1_2_4_8() {
    let seed = util::seed();
    let mut pairs = 0;
    for (i, a) in COVERAGE.iter().enumerate() {
        for t in [1, 2, 4, 8] {
            let s = seed + 31 * i as u64 + t as u64;
            let model = random_model(&arch::parse(a).unwrap(), t, s).unwrap();
            pairs += check_model(&model, s, 6);
        }
    }
    println!("{pairs} model × image pairs co-simulated bit-exact (seed {seed})");
}

/// Per-step input frames (event data): every coverage architecture at T ∈ {2, 4, 8}, the
/// frames' values 1, 2 or 8 bits, under the three foldings.
#[test]
fn frames_models_are_bit_exact_at_t_2_4_8() {
    let seed = util::seed();
    let mut pairs = 0;
    for (i, a) in COVERAGE.iter().enumerate() {
        for (j, t) in [2, 4, 8].into_iter().enumerate() {
            let s = seed + 37 * i as u64 + t as u64;
            let bits = [1, 2, 8][(i + j) % 3];
            let model = random_frames_model(&arch::parse(a).unwrap(), t, bits, s).unwrap();
            pairs += check_model(&model, s, 4);
        }
    }
    println!("{pairs} frames model × sample pairs co-simulated bit-exact (seed {seed})");
}

/// Random architectures from a small grammar.
pub(crate) fn arch_strategy() -> impl Strategy<Value = (String, u32)> {
    let conv = (
        1u32..5,
        prop::sample::select(vec![1u32, 3, 5]),
        1u32..3,
        any::<bool>(),
        any::<bool>(),
        2u32..9,
    )
        .prop_map(|(c, k, s, valid, bin, bits)| {
            format!(
                "{c}C{k}{}{}{}",
                if s == 2 { "s2" } else { "" },
                if valid { "v" } else { "" },
                if bin { "b".into() } else { format!("i{bits}") }
            )
        });
    let pool = prop::sample::select(vec!["", "-MP2", "-SP2"]);
    (
        (5u32..11, 5u32..11, 1u32..3),
        prop::collection::vec((conv, pool), 1..3),
        (1u32..6, any::<bool>()),
        prop::sample::select(vec![1u32, 2, 4]),
    )
        .prop_map(|((h, w, c), convs, (out, bin), t)| {
            let mut s = format!("{h}x{w}x{c}");
            for (cv, p) in convs {
                s.push('-');
                s.push_str(&cv);
                s.push_str(p);
            }
            s.push_str(&format!("-{}{}", out + 1, if bin { "b" } else { "i8" }));
            (s, t)
        })
}

#[test]
fn random_architectures_are_bit_exact() {
    let seed = util::seed();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: util::cases(4),
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let pairs = std::cell::Cell::new(0);
    runner
        .run(&arch_strategy(), |(a, t)| {
            // Architectures whose kernels do not fit their maps are rejected by validation;
            // the runner then draws another, so every case checks a model.
            let parsed = arch::parse(&a);
            prop_assume!(parsed.is_ok());
            let model = random_model(&parsed.unwrap(), t, seed);
            prop_assume!(model.is_ok());
            let model = model.unwrap();
            pairs.set(pairs.get() + check_model(&model, seed, 4));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    println!(
        "{} random model × image pairs bit-exact (seed {seed})",
        pairs.get()
    );
}

/// Flips one weight in the generated ROM image of `layer` and returns the mismatch report.
fn corrupted_report(model: &Model, layer: usize) -> spikeforge_cosim::Report {
    let folding = fold::resolve(model, &[]).unwrap();
    let mut design = util::design(model, &folding);
    let file = design.manifest.rom_files[2 * layer].clone();
    let text = design.files.get_mut(&file).unwrap();
    // Invert the lowest hex digit of the first word: lane 0, input 0 and its neighbours in
    // that digit (for a binary layer four ±1 weights; for an integer layer, low bits of one).
    let first_line_end = text.find('\n').unwrap();
    let last = text.as_bytes()[first_line_end - 1] as char;
    let flipped = char::from_digit(last.to_digit(16).unwrap() ^ 0xf, 16).unwrap();
    text.replace_range(first_line_end - 1..first_line_end, &flipped.to_string());
    let sim = util::simulator(&design);
    let imgs = random_images(model, 40, 5);
    spikeforge_cosim::cosimulate(model, &sim, &imgs, 0, None, &|_| {}).unwrap()
}

#[test]
fn corrupted_weight_is_caught_and_named() {
    let model = random_model(&arch::parse("9x9x2-4C3i6-MP2-5C3b-3C1i6").unwrap(), 2, 3).unwrap();
    for layer in [0, 1, 2] {
        let report = corrupted_report(&model, layer);
        let m = report
            .first_mismatch
            .clone()
            .unwrap_or_else(|| panic!("layer {layer}: corruption not caught: {report:?}"));
        assert_eq!(
            m.layer,
            Some(layer),
            "divergence named at the wrong place: {m}"
        );
        assert_eq!(m.layer_name, model.layers[layer].name);
        assert!(report.bit_exact < report.images);
    }
}

#[test]
fn coverage_designs_synthesise_without_latches() {
    use rayon::prelude::*;
    COVERAGE.par_iter().for_each(|a| {
        let model = random_model(&arch::parse(a).unwrap(), 2, util::seed()).unwrap();
        let design = util::design(&model, &fold::resolve(&model, &[]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        util::write(&design, dir.path());
        let luts = util::synth_ice40(dir.path(), &design.manifest.top, a);
        println!("{a}: {luts} SB_LUT4, no latches");
    });
}

/// Regression: the last image's result can leave the head before layer 0's final beats (2×2
/// pooling drops the odd last row and column of a 5×5 map); the harness used to stop at the
/// result and leave those tap beats unread. Found by the proptest run with seed 99.
#[test]
fn last_image_taps_are_complete_when_pooling_drops_a_row() {
    let model = random_model(&arch::parse("5x5x1-1C1i2-1C1i2-MP2-2i8").unwrap(), 2, 99).unwrap();
    let design = util::design(&model, &fold::resolve(&model, &[]).unwrap());
    let sim = util::simulator(&design);
    let imgs = random_images(&model, 4, 99);
    // Two images per instance: each instance's last image is checked.
    let rtl = spikeforge_cosim::run_parallel(&sim, &imgs, 4, 25, 0, &|_| {}).unwrap();
    let golden = spikeforge_model::Golden::new(&model)
        .run_batch(&imgs, true)
        .unwrap();
    let report = spikeforge_cosim::compare(&model, sim.manifest(), &golden, &rtl);
    assert_eq!(report.bit_exact, 4, "{:?}", report.first_mismatch);
    let single = sim.run(&imgs[..25], 1, 0, None).unwrap();
    let one = spikeforge_cosim::compare(&model, sim.manifest(), &golden[..1], &single);
    assert_eq!(one.bit_exact, 1, "{:?}", one.first_mismatch);
}
