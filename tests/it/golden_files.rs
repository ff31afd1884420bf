//! Golden files: the RTL of two small reference models, byte for byte (insta snapshots;
//! update with `cargo insta review` or `INSTA_UPDATE=always cargo test`), determinism,
//! lint and synthesis of every reference design.

use spikeforge_hdl_gen::fold;

use crate::util;

const REFERENCE: &[&str] = &["ref_mlp", "ref_conv"];

fn load(name: &str) -> spikeforge_model::Model {
    spikeforge_model::load(&util::reference(name)).unwrap()
}

#[test]
fn reference_rtl_matches_snapshots() {
    for name in REFERENCE {
        let model = load(name);
        let design = util::design(&model, &fold::resolve(&model, &[]).unwrap());
        let all: String = design
            .files
            .iter()
            .map(|(file, text)| format!("===== {file} =====\n{text}"))
            .collect();
        insta::assert_snapshot!(*name, all);
    }
}

#[test]
fn generation_is_deterministic() {
    for name in REFERENCE {
        let model = load(name);
        let f = fold::resolve(&model, &[]).unwrap();
        assert_eq!(
            util::design(&model, &f).files,
            util::design(&model, &f).files
        );
    }
}

#[test]
fn reference_designs_lint_clean_and_synthesise_without_latches() {
    for name in REFERENCE {
        let model = load(name);
        let design = util::design(&model, &fold::resolve(&model, &[]).unwrap());
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
    for name in REFERENCE {
        let model = load(name);
        let design = util::design(&model, &fold::resolve(&model, &[]).unwrap());
        let sim = util::simulator(&design);
        let imgs = spikeforge_model::random::random_images(&model, 50, 1);
        let r = spikeforge_cosim::cosimulate(&model, &sim, &imgs, 3, None, &|_| {}).unwrap();
        assert_eq!(r.bit_exact, 50, "{name}: {:?}", r.first_mismatch);
    }
}
