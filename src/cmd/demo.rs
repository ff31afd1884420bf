//! `spikeforge demo`: the main job end to end on a reference model, with no arguments.

use std::path::{Path, PathBuf};
use std::process::Command;

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
}

fn synth(rtl: &Path, top: &str) -> Result<String> {
    let script = format!("read_verilog *.v; synth_ice40 -top {top}; stat");
    let out = match Command::new("yosys")
        .current_dir(rtl)
        .args(["-q", "-p", &script, "-l", "yosys.log"])
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            return Ok("synth: skipped (yosys not installed; `apt-get install yosys`)".into())
        }
    };
    let log = std::fs::read_to_string(rtl.join("yosys.log")).unwrap_or_default();
    if !out.status.success() {
        bail!(
            "yosys synth_ice40 failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if log.contains("$dlatch") || log.contains("Latch inferred") {
        bail!(
            "yosys inferred a latch; see {}",
            rtl.join("yosys.log").display()
        );
    }
    let count = |cell: &str| -> u64 {
        log.lines()
            .rev()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(cell))
                    .then(|| it.next().and_then(|n| n.parse().ok()))
                    .flatten()
            })
            .unwrap_or(0)
    };
    Ok(format!(
        "synth: yosys synth_ice40 ok, no latches: {} LUT4, {} carry, {} RAM blocks",
        count("SB_LUT4"),
        count("SB_CARRY"),
        count("SB_RAM40_4K")
    ))
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
    let s = spin("synthesising with yosys synth_ice40 (about a minute)");
    let synthesis = synth(&rtl, &design.manifest.top);
    s.finish_and_clear();
    println!("{}", synthesis?);
    println!(
        "demo done: model → RTL → lint → {} images bit-exact → synthesis",
        report.bit_exact
    );
    Ok(())
}
