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
