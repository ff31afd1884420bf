//! `spikeforge demo`: the main job end to end on a reference model, with no arguments.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use spikeforge_model::{arch, random};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Working directory for the model, RTL and reports.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Architecture of the reference model.
    #[arg(long, default_value = "28x28x1-8C3b-MP2-16C3i4-SP2-10C1i8-GAP")]
    pub arch: String,
    /// Time steps.
    #[arg(long, default_value_t = 2)]
    pub time_steps: u32,
    /// Images to co-simulate.
    #[arg(long, default_value_t = 200)]
    pub images: usize,
    /// Device for synthesis, place and route (see `spikeforge synth --target`).
    #[arg(long, default_value = "ecp5-85k")]
    pub target: String,
}

/// The open flow on the demo design: a bitstream and its report, or why not.
fn synth(rtl: &Path, manifest: &spikeforge_hdl_gen::Manifest, target: &str) -> Result<String> {
    let device = spikeforge_constraints::device(target)
        .with_context(|| format!("unknown target `{target}`"))?;
    let plan = spikeforge_hdl_gen::flow::plan(device, None, &manifest.shell.top, &manifest.sources);
    match spikeforge_flow::run(rtl, &plan, manifest, &mut |_| {}) {
        Ok(r) => Ok(format!(
            "synth: {target}: {} {} ({:.1} %), {} FFs, {} block RAMs, Fmax {:.1} MHz, {:.0} images/s; bitstream {}",
            r.placed.as_ref().map_or(r.synthesised.luts, |p| p.logic.0),
            device.logic_unit,
            r.logic_percent(),
            r.synthesised.ffs,
            r.synthesised.ram_blocks,
            r.placed.as_ref().map_or(0.0, |p| p.fmax_mhz),
            r.images_per_s.unwrap_or(0.0),
            rtl.join(r.bitstream.unwrap_or_default()).display()
        )),
        Err(e @ spikeforge_flow::FlowError::MissingTool { .. }) => {
            Ok(format!("synth: skipped: {e}"))
        }
        Err(e) => Err(e).context("the FPGA flow"),
    }
}

pub fn run(a: Args) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut model = random::random_model(&arch::parse(&a.arch)?, a.time_steps, 1)
        .map_err(|p| anyhow::anyhow!("reference model: {:?}", p))?;
    model.name = "demo".into();
    let model_path = a.out.join("model.json");
    spikeforge_model::save(&model, &model_path)?;
    println!(
        "model: {} ({}, T = {})",
        model_path.display(),
        a.arch,
        a.time_steps
    );
    let folding = super::folding(&model, &[])?;
    let rtl = a.out.join("rtl");
    let design = super::generate_into(&model, &folding, Default::default(), &rtl)?;
    println!(
        "gen: {} ({} files, {} cycles per image)",
        rtl.display(),
        design.files.len(),
        design.manifest.cycles_per_image
    );
    let complaints = spikeforge_cosim::lint(&crate::settings::verilator(), &rtl, &design.manifest)?;
    if !complaints.trim().is_empty() {
        bail!("verilator --lint-only -Wall reported:\n{complaints}");
    }
    println!(
        "lint: verilator --lint-only -Wall clean ({} files)",
        design.manifest.sources.len()
    );
    let spin = |msg: &str| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(msg.to_string());
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    };
    let sim = super::cosim::build(
        &model,
        Some(&rtl),
        &[],
        None,
        super::cosim::SimKind::Core,
        false,
    )?;
    let images = random::random_images(&model, a.images, 7);
    let bar = super::cosim::progress_bar(a.images);
    let report =
        spikeforge_cosim::cosimulate(&model, &sim, &images, 7, None, &|k| bar.inc(k as u64));
    bar.finish_and_clear();
    let report = report?;
    print!("cosim: ");
    super::cosim::conclude(&report)?;
    let s = spin(&format!(
        "Yosys, nextpnr and the packer for {} (a few minutes)",
        a.target
    ));
    let synthesis = synth(&rtl, &design.manifest, &a.target);
    s.finish_and_clear();
    println!("{}", synthesis?);
    println!(
        "demo done: model → RTL → lint → {} images bit-exact → bitstream",
        report.bit_exact
    );
    Ok(())
}
