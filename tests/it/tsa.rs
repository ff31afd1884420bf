//! TSA-coded models (ternary spikes, CSS): random models × foldings × random images through
//! the RTL against the golden model, every tap beat and result exact; synthesis without
//! latches.

use spikeforge_hdl_gen::fold;
use spikeforge_model::arch;
use spikeforge_model::ir::Coding;
use spikeforge_model::random::random_coded_model;

use crate::differential::check_model;
use crate::util;

/// Architectures that between them cover every layer kind with ternary spikes: convolution
/// k ∈ {1, 3, 5}, stride 1 and 2, same and valid padding, dense; binary and integer weights
/// on pixels, ternary spikes and sum-pooled ternary spikes; conv and dense readouts.
const TSA_COVERAGE: &[&str] = &[
    "9x9x2-4C3b-SP2-5C3i4-SP2-3C1i6",
    "8x8-3C5s2vi8-4b-3b",
    "7x6x3-4C1s2b-SP2-5C3b-4i3",
    "36-6i5-5b-4i2",
    "12x12-3C3s2i3-SP2-2C3vb-3C1b",
];

fn tsa_model(a: &str, t: u32, seed: u64) -> spikeforge_model::Model {
    random_coded_model(&arch::parse(a).unwrap(), t, seed, Coding::Tsa)
        .unwrap_or_else(|e| panic!("{a}: {e:?}"))
}

#[test]
fn tsa_coverage_models_are_bit_exact_at_t_4_6_8() {
    let seed = util::seed();
    let mut pairs = 0;
    for (i, a) in TSA_COVERAGE.iter().enumerate() {
        for t in [4, 6, 8] {
            let s = seed + 37 * i as u64 + t as u64;
            pairs += check_model(&tsa_model(a, t, s), s, 6);
        }
    }
    println!("{pairs} TSA model × image pairs co-simulated bit-exact (seed {seed})");
}

/// Random architectures (the LIF grammar, max pooling turned into sum pooling) as TSA models
/// at T ∈ {4, 6, 8}.
#[test]
fn random_tsa_architectures_are_bit_exact() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let seed = util::seed();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&(seed ^ 0x75a).to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: util::cases(3),
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let pairs = std::cell::Cell::new(0);
    runner
        .run(&crate::differential::arch_strategy(), |(a, t)| {
            let a = a.replace("-MP2", "-SP2");
            let t = 2 + 2 * t.min(3);
            // Architectures whose kernels do not fit their maps are rejected by validation;
            // the runner then draws another, so every case checks a model.
            let parsed = arch::parse(&a);
            proptest::prop_assume!(parsed.is_ok());
            let model = random_coded_model(&parsed.unwrap(), t, seed, Coding::Tsa);
            proptest::prop_assume!(model.is_ok());
            let model = model.unwrap();
            pairs.set(pairs.get() + check_model(&model, seed, 4));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    println!(
        "{} random TSA model × image pairs bit-exact (seed {seed})",
        pairs.get()
    );
}

#[test]
fn tsa_coverage_designs_synthesise_without_latches() {
    use rayon::prelude::*;
    TSA_COVERAGE.par_iter().for_each(|a| {
        let model = tsa_model(a, 6, util::seed());
        let design = util::design(&model, &fold::resolve(&model, &[]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        util::write(&design, dir.path());
        let luts = util::synth_ice40(dir.path(), &design.manifest.top, a);
        println!("{a} (TSA, T = 6): {luts} SB_LUT4, no latches");
    });
}

/// `spikeforge convert` on 5 000 real Fashion-MNIST images: the ANN learns, the converted
/// TSA model keeps its accuracy, runs bit-exact through the RTL on test images, and `eval`
/// agrees with the reported integer accuracy.
#[test]
fn a_converted_model_learns_and_is_bit_exact_in_the_rtl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("css");
    let (ok, stdout, err) = util::run(&[
        "convert",
        "--arch",
        "28x28x1-8C3i8-AP2-16C3i8-AP2-10C1i8-GAP",
        "--limit",
        "5000",
        "--epochs",
        "3",
        "--lr",
        "5e-3",
        "--time-steps",
        "6",
        "--sweep",
        "4",
        "--test-limit",
        "500",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let s = util::read_json(&out.join("summary.json"));
    let row = &s["exported"];
    let (ann, int) = (
        row["ann"].as_f64().unwrap(),
        row["integer"].as_f64().unwrap(),
    );
    assert_eq!(row["time_steps"], 6);
    assert!(ann > 0.5, "ANN accuracy {ann} after a short run\n{stdout}");
    assert!(ann - int < 0.05, "ANN {ann} vs integer TSA {int}\n{stdout}");
    let sweep = util::read_json(&out.join("sweep.json"));
    assert_eq!(
        sweep.as_array().unwrap().len(),
        2,
        "T = 4 and the exported T = 6"
    );
    let model = out.join("model.json");
    util::cosim_test_images_bit_exact(&model, 60);
    util::assert_eval_prints(&model, Some(500), int);
}

/// Max pooling cannot be converted: the error says what to write instead, before training,
/// and nothing is written.
#[test]
fn converting_max_pooling_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let (ok, _, err) = util::run(&[
        "convert",
        "--arch",
        "28x28x1-8C3-MP2-10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("max pooling"), "{err}");
    assert!(err.contains("28x28x1-8C3-AP2-10"), "{err}");
    assert!(!out.exists());
}

/// A model mixing codings is refused by validation, naming the layer.
#[test]
fn mixed_codings_are_refused() {
    let lif =
        spikeforge_model::random::random_model(&arch::parse("8x8-4C3-3").unwrap(), 4, 1).unwrap();
    let mut tsa = tsa_model("8x8-4C3-3", 4, 1);
    tsa.layers[1] = lif.layers[1].clone();
    let e = spikeforge_model::validate::validate(&tsa).unwrap_err();
    assert!(
        e.iter()
            .any(|p| p.field == "layers[1].neuron" && p.reason.contains("mixed codings")),
        "{e:?}"
    );
}
