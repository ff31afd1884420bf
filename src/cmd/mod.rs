//! One module per subcommand, plus the helpers they share.

pub mod bench;
pub mod bench_area;
pub mod bench_deploy;
pub mod bench_estimate;
pub mod bench_train;
pub mod convert;
pub mod cosim;
pub mod data;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod events;
pub mod export;
pub mod gen;
pub mod infer;
pub mod inspect;
pub mod mnist_events;
pub mod parse;
pub mod random_model;
pub mod report;
pub mod synth;
pub mod train;

use std::path::Path;

use anyhow::{Context, Result};
use spikeforge_hdl_gen::fold::{self, FoldOverride};
use spikeforge_hdl_gen::Folding;
use spikeforge_model::Model;

/// Loads and validates a model file.
pub fn load_model(path: &Path) -> Result<Model> {
    Ok(spikeforge_model::load(path)?)
}

/// Looks up `--target`; an unknown one is an error that lists the known ones.
pub fn target(name: &str) -> Result<&'static spikeforge_constraints::Device> {
    spikeforge_constraints::device(name).with_context(|| {
        format!(
            "unknown target `{name}`; known targets: {}",
            spikeforge_constraints::target_names()
        )
    })
}

/// Parses `--fold` arguments.
fn overrides(specs: &[String]) -> Result<Vec<FoldOverride>> {
    Ok(specs
        .iter()
        .map(|s| fold::parse_override(s))
        .collect::<Result<_, _>>()?)
}

/// Resolves `--fold` arguments against a model.
pub fn folding(model: &Model, specs: &[String]) -> Result<Folding> {
    Ok(fold::resolve(model, &overrides(specs)?)?)
}

/// The folding `--target` chooses for `device` (logic capped at `max_util` percent when
/// given), printed with its estimate.
pub fn target_folding(
    model: &Model,
    device: &'static spikeforge_constraints::Device,
    max_util: Option<f64>,
    specs: &[String],
) -> Result<Folding> {
    let overrides = overrides(specs)?;
    let caps = match max_util {
        None => spikeforge_hdl_gen::autofold::Caps::default(),
        Some(p) => spikeforge_hdl_gen::autofold::Caps::max_util(p),
    };
    let c = spikeforge_hdl_gen::autofold::choose(model, device, caps, &overrides)?;
    let e = &c.estimate.total;
    println!(
        "folding for {} ({}): {} cycles per image, estimated {:.0} {} ({:.0} %), {:.0} block RAMs, {:.0} DSPs{}",
        device.target,
        device.part,
        c.estimate.cycles_per_image,
        e.cells,
        device.logic_unit,
        100.0 * e.cells / device.logic.max(1) as f64,
        e.ram_blocks,
        e.dsps,
        if c.folding.dsp { " (DSP lanes)" } else { "" }
    );
    println!(
        "  {}",
        spikeforge_hdl_gen::estimate::fold_args(model, &c.folding)
    );
    Ok(c.folding)
}

/// Generates a model's design into `dir` (atomically).
pub fn generate_into(
    model: &Model,
    folding: &Folding,
    options: spikeforge_hdl_gen::GenOptions,
    dir: &Path,
) -> Result<spikeforge_hdl_gen::Design> {
    let design = spikeforge_hdl_gen::generate_with(model, folding, options)?;
    spikeforge_flow::design_dir::write(&design, dir)
        .with_context(|| format!("writing the design to {}", dir.display()))?;
    Ok(design)
}

/// A spinner with a message, ticking until it is finished (hidden when stderr is not a
/// terminal).
pub fn spinner(msg: String) -> indicatif::ProgressBar {
    let s = indicatif::ProgressBar::new_spinner();
    // The elapsed time tells a long step from a hung one.
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        s.set_style(style);
    }
    s.set_message(msg);
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    s
}

/// `work` behind a [`spinner`] showing `msg`, cleared when it returns.
pub fn with_spinner<T>(msg: String, work: impl FnOnce() -> T) -> T {
    let bar = spinner(msg);
    let out = work();
    bar.finish_and_clear();
    out
}
