//! Golden files: the RTL of small reference designs, byte for byte (insta snapshots;
//! update with `cargo insta review` or `INSTA_UPDATE=always cargo test`), determinism,
//! lint and synthesis of every reference design.

use spikeforge_hdl_gen::fold::{self, Folding};
use spikeforge_model::Model;

use crate::util;

/// Snapshot name, model, `--fold` arguments: the two reference models at their default
/// folding, and the conv model with MMV > 1 (column banks; a reorder RAM behind l0, whose
/// PE 1 leaves two neuron folds; a reorder that is a width converter behind l1) and operand
/// registers after the weight ROMs.
const REFERENCE: &[(&str, &str, &[&str])] = &[
    ("ref_mlp", "ref_mlp", &[]),
    ("ref_conv", "ref_conv", &[]),
    (
        "ref_conv_mmv",
        "ref_conv",
        &["l0=1,1,2", "l1=3,1,3", "regs=on"],
    ),
];

fn references() -> Vec<(&'static str, Model, Folding)> {
    REFERENCE
        .iter()
        .map(|(name, file, specs)| {
            let model = spikeforge_model::load(&util::reference(file)).unwrap();
            let overrides: Vec<_> = specs
                .iter()
                .map(|s| fold::parse_override(s).unwrap())
                .collect();
            let folding = fold::resolve(&model, &overrides).unwrap();
            (*name, model, folding)
        })
        .collect()
}

#[test]
fn reference_rtl_matches_snapshots() {
    for (name, model, folding) in references() {
        let design = util::design(&model, &folding);
        let all: String = design
            .files
            .iter()
            .map(|(file, text)| format!("===== {file} =====\n{text}"))
            .collect();
        insta::assert_snapshot!(name, all);
    }
}

#[test]
fn generation_is_deterministic() {
    for (_, model, f) in references() {
        assert_eq!(
            util::design(&model, &f).files,
            util::design(&model, &f).files
        );
    }
}

#[test]
fn reference_designs_lint_clean_and_synthesise_without_latches() {
    for (name, model, folding) in references() {
        let design = util::design(&model, &folding);
        let dir = tempfile::tempdir().unwrap();
        let rtl = dir.path().join("rtl");
        util::write(&design, &rtl);
        let lint = util::lint(&rtl, &design);
        assert!(lint.trim().is_empty(), "{name}: verilator -Wall:\n{lint}");
        assert!(util::synth_ice40(&rtl, &design.manifest.top, name) > 0);
    }
}

#[test]
fn reference_designs_are_bit_exact() {
    for (name, model, folding) in references() {
        let design = util::design(&model, &folding);
        let sim = util::simulator(&design);
        let imgs = spikeforge_model::random::random_images(&model, 50, 1);
        let r = spikeforge_cosim::cosimulate(&model, &sim, &imgs, 3, None, &|_| {}).unwrap();
        assert_eq!(r.bit_exact, 50, "{name}: {:?}", r.first_mismatch);
    }
}
