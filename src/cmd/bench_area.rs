//! `spikeforge bench --area`: Yosys area of reference designs against the dataflow targets
//! (docs/hardware.md): the small conv net at minimal folding on iCE40, every window unit of the
//! selected Fashion-MNIST network at SIMD = 1, and that network at its smallest folding on
//! ECP5-85F, each beside the pre-synthesis estimate. Minutes (Yosys); JSON to --out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use spikeforge_constraints::Family;
use spikeforge_hdl_gen::{estimate, Folding};
use spikeforge_model::{arch, random, Model};

/// The selected Fashion-MNIST model (93.63 %), shipped in the repository.
const SELECTED: &str = "models/fashion-mnist-t1-ulx3s.json";

#[derive(Serialize)]
struct AreaRow {
    name: String,
    arch: String,
    module: String,
    device: String,
    folding: Folding,
    yosys: spikeforge_flow::Resources,
    estimate_luts: Option<f64>,
    estimate_ram_blocks: Option<f64>,
    limit_luts: u64,
    passes: bool,
    seconds: f64,
}

/// Yosys on one module of a written design (ROM images are found in `dir`).
fn synth(
    dir: &Path,
    sources: &[String],
    top: &str,
    family: Family,
) -> Result<spikeforge_flow::Resources> {
    let stat = format!("{top}.stat.json");
    yosys_stat(dir, sources, top, family, "", &stat)?;
    let cells = spikeforge_flow::read_stat(&dir.join(stat))?;
    Ok(spikeforge_flow::resources(family, &cells))
}

/// Runs Yosys in `dir`: reads `sources`, synthesises `top` for `family` (with `flags`, e.g.
/// ` -noflatten`) and writes `stat -json` to `stat` there.
pub(super) fn yosys_stat(
    dir: &Path,
    sources: &[String],
    top: &str,
    family: Family,
    flags: &str,
    stat: &str,
) -> Result<()> {
    let synth = match family {
        Family::Ice40 => format!("synth_ice40{flags} -top {top}"),
        Family::Ecp5 => format!("synth_ecp5 -nowidelut{flags} -top {top}"),
        Family::Xilinx => format!("synth_xilinx{flags} -top {top}"),
    };
    let script = format!(
        "read_verilog {}; {synth}; tee -q -o {stat} stat -json",
        sources.join(" ")
    );
    let yosys = spikeforge_flow::find_tool(spikeforge_flow::plan::Tool::Yosys)?;
    let out = Command::new(yosys)
        .current_dir(dir)
        .args(["-q", "-p", &script])
        .output()
        .context("running yosys")?;
    if !out.status.success() {
        bail!(
            "yosys on {top} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// PE = SIMD = 1 in every layer.
pub(super) fn minimal(model: &Model) -> Result<Folding> {
    let specs: Vec<String> = model
        .layers
        .iter()
        .map(|l| format!("{}=1,1", l.name))
        .collect();
    super::folding(model, &specs)
}

/// Area rows: whole designs (the synthesis top) and single modules.
pub fn run(out: &Path) -> Result<()> {
    let root = PathBuf::from("out/bench-area");
    let mut rows = Vec::new();
    let small_arch = "28x28x1-16C3i8-AP2-32C3b-10C3i8-GAP";
    let small = random::random_model(&arch::parse(small_arch)?, 1, 1)
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let selected = spikeforge_model::load(Path::new(SELECTED))
        .with_context(|| format!("reading {SELECTED}"))?;
    let sel_arch = "28x28x1-64C3i8-AP2-128C3i8-AP2-256C3b-10C3i8-GAP";
    let mut measure = |name: &str,
                       arch_s: &str,
                       model: &Model,
                       device: &str,
                       modules: bool,
                       limit: u64|
     -> Result<()> {
        let dev = super::target(device)?;
        let folding = minimal(model)?;
        let dir = root.join(name);
        let design = super::generate_into(model, &folding, Default::default(), &dir)?;
        let est = estimate::estimate(model, &folding, dev.family)?;
        let sources: Vec<String> = design
            .manifest
            .sources
            .iter()
            .filter(|s| !s.contains("uart") && !s.contains("fifo"))
            .cloned()
            .collect();
        let tops: Vec<String> = if modules {
            sources
                .iter()
                .filter(|s| s.ends_with("_swg.v"))
                .map(|s| s.trim_end_matches(".v").to_string())
                .collect()
        } else {
            vec![design.manifest.top.clone()]
        };
        for top in tops {
            eprintln!("{name}: yosys {top} ({device}) ...");
            let t0 = Instant::now();
            let file = vec![format!("{top}.v")];
            let y = synth(
                &dir,
                if modules { &file } else { &sources },
                &top,
                dev.family,
            )?;
            rows.push(AreaRow {
                name: name.into(),
                arch: arch_s.into(),
                module: top,
                device: device.into(),
                folding: folding.clone(),
                passes: y.luts <= limit,
                estimate_luts: (!modules).then_some(est.total.luts),
                estimate_ram_blocks: (!modules).then_some(est.total.ram_blocks),
                limit_luts: limit,
                yosys: y,
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
        Ok(())
    };
    measure(
        "small-conv-minimal",
        small_arch,
        &small,
        "ice40-up5k",
        false,
        4000,
    )?;
    measure(
        "selected-windows",
        sel_arch,
        &selected,
        "ice40-up5k",
        true,
        600,
    )?;
    // 40 % of an ECP5-85F's 83 640 LUT4 sites.
    measure(
        "selected-minimal",
        sel_arch,
        &selected,
        "ecp5-85k",
        false,
        33_456,
    )?;
    println!(
        "{:<20} {:<34} {:<11} {:>8} {:>8} {:>6} {:>5} {:>4} {:>7} {:>5}",
        "design", "module", "device", "LUT4", "est", "FF", "RAM", "DSP", "limit", "ok"
    );
    for r in &rows {
        println!(
            "{:<20} {:<34} {:<11} {:>8} {:>8} {:>6} {:>5} {:>4} {:>7} {:>5}",
            r.name,
            r.module,
            r.device,
            r.yosys.luts,
            r.estimate_luts.map_or("-".into(), |e| format!("{e:.0}")),
            r.yosys.ffs,
            r.yosys.ram_blocks,
            r.yosys.dsps,
            r.limit_luts,
            if r.passes { "yes" } else { "NO" }
        );
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}
