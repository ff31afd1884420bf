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

/// An estimate's error against what a tool counted, in percent of the count.
pub fn error_percent(estimated: f64, counted: u64) -> f64 {
    100.0 * (estimated - counted as f64) / (counted as f64).max(1.0)
}

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

/// Parses `--fold` arguments. One argument may hold several overrides separated by spaces
/// (`--fold "conv0=8,1 conv1=4,16"`), the form reports and results print a folding in.
fn overrides(specs: &[String]) -> Result<Vec<FoldOverride>> {
    Ok(specs
        .iter()
        .flat_map(|s| split_overrides(s))
        .map(|s| fold::parse_override(&s))
        .collect::<Result<_, _>>()?)
}

/// Splits `conv0=8,1 conv1=4, 16` into `conv0=8,1` and `conv1=4,16`: a new override starts
/// at each word with an `=`, and the words between join it.
fn split_overrides(arg: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for word in arg.split_whitespace() {
        match items.last_mut() {
            Some(last) if !word.contains('=') => last.push_str(word),
            _ => items.push(word.to_string()),
        }
    }
    if items.is_empty() {
        items.push(arg.to_string());
    }
    items
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

#[cfg(test)]
mod tests {
    use super::split_overrides;

    #[test]
    fn one_fold_argument_holds_several_overrides() {
        assert_eq!(
            split_overrides("conv0=8,1  conv1=4, 16 dsp=7"),
            ["conv0=8,1", "conv1=4,16", "dsp=7"]
        );
        assert_eq!(split_overrides("conv1=4,9"), ["conv1=4,9"]);
        // Nothing to split: the parser names what is wrong with the whole argument.
        assert_eq!(split_overrides(""), [""]);
        assert_eq!(split_overrides("8,1"), ["8,1"]);
    }
}
