//! `spikeforge bench --estimate`: the pre-synthesis estimate against Yosys on reference
//! designs (random models of three architectures, the CSS T = 8 network, the selected
//! Fashion-MNIST network, an MLP; minimal, default and intermediate foldings). Each design
//! is synthesised twice: flattened, as `synth` does (the totals compared), and with
//! `-noflatten` for the per-module cells (the data the estimate's weights are fitted to).
//! Minutes; JSON to --out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use spikeforge_constraints::Family;
use spikeforge_hdl_gen::{estimate, fold, Folding};
use spikeforge_model::ir::Coding;
use spikeforge_model::{arch, random, Model};

const SELECTED: &str = "models/fashion-mnist-t1-ulx3s.json";
const SMALL: &str = "28x28x1-16C3i8-AP2-32C3b-10C3i8-GAP";
const DEMO: &str = "28x28x1-8C3b-MP2-16C3i4-SP2-10C1i8-GAP";
const CSS: &str = "28x28x1-16C3i8-AP2-32C3i8-AP2-64C3i8-10C1i8-GAP";
const MLP: &str = "784-128b-10";
const DEPLOY_A: &str = "models/mnist-mlp-t1-1bit-ulx3s.json";
const DEPLOY_C: &str = "models/fashion-mnist-t1-icebreaker.json";
const DEPLOY_D: &str = "models/fashion-mnist-css-t8-ulx3s.json";

/// How a reference design is folded.
#[derive(Clone, Copy)]
enum Fold {
    /// PE = SIMD = 1 everywhere.
    Minimal,
    /// The default folding.
    Default,
    /// The folding `for_cycles` picks for the minimal folding's cycles divided by this.
    Faster(u64),
    /// These `--fold` arguments.
    Given(&'static [&'static str]),
}

#[derive(Serialize)]
struct ModuleRow {
    module: String,
    counts: spikeforge_hdl_gen::cost::Counts,
    memories: estimate::MemoryUse,
    estimate: estimate::Estimate,
    yosys: spikeforge_flow::Resources,
    cells: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct DesignRow {
    name: String,
    model: String,
    target: String,
    folding: Folding,
    cycles_per_image: u64,
    estimate: estimate::Estimate,
    yosys: spikeforge_flow::Resources,
    lut_error_percent: f64,
    ram_blocks_equal: bool,
    modules: Vec<ModuleRow>,
    seconds: f64,
}

fn model(what: &str, time_steps: u32, coding: Coding) -> Result<Model> {
    if what.ends_with(".json") {
        return spikeforge_model::load(Path::new(what)).with_context(|| format!("reading {what}"));
    }
    random::random_coded_model(&arch::parse(what)?, time_steps, 1, coding)
        .map_err(|p| anyhow::anyhow!("{what}: {p:?}"))
}

fn folding(m: &Model, f: Fold) -> Result<Folding> {
    Ok(match f {
        Fold::Default => fold::resolve(m, &[])?,
        Fold::Minimal => super::bench_area::minimal(m)?,
        Fold::Faster(k) => fold::for_cycles(m, fold::slowest_cycles(m) / k),
        Fold::Given(specs) => {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            super::folding(m, &specs)?
        }
    })
}

/// Yosys `stat -json` of `top` in `dir` (with `per_module`, hierarchy kept), kept as
/// `{dir}.{flat|modules}.stat.json` beside it (iCE40 with `-dsp` when the folding has DSP
/// lanes, as the flow runs it); with `reuse`, a kept report is read instead of
/// running Yosys again (for refitting the estimate's weights when the RTL is unchanged).
fn yosys_stat(
    dir: &Path,
    sources: &[String],
    top: &str,
    family: Family,
    dsp: bool,
    per_module: bool,
    reuse: bool,
) -> Result<serde_json::Value> {
    let stat = if per_module {
        "modules.stat.json"
    } else {
        "flat.stat.json"
    };
    let kept = dir.with_extension(stat);
    if reuse && kept.exists() {
        return parse_stat(&std::fs::read_to_string(&kept)?);
    }
    let mut flags = if per_module { " -noflatten" } else { "" }.to_string();
    if family == Family::Ice40 && dsp {
        // As the flow's iCE40 script: without `-dsp` the products become LUTs.
        flags.push_str(" -dsp");
    }
    super::bench_area::yosys_stat(dir, sources, top, family, &flags, stat)?;
    let text = std::fs::read_to_string(dir.join(stat))?;
    std::fs::write(&kept, &text)?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Result<serde_json::Value> {
    // Yosys 0.23 writes the hierarchy as text into the JSON of a design it did not flatten;
    // keep the JSON lines only.
    let json: Vec<&str> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.is_empty() || t.starts_with(['"', '{', '}', ']'])
        })
        .collect();
    Ok(serde_json::from_str(&json.join("\n"))?)
}

fn cells_of(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.get("num_cells_by_type")
        .and_then(|c| c.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn measure(
    name: &str,
    what: &str,
    time_steps: u32,
    coding: Coding,
    f: Fold,
    target: &str,
) -> Result<DesignRow> {
    let m = model(what, time_steps, coding)?;
    let folding = folding(&m, f)?;
    let device = super::target(target)?;
    let dir = PathBuf::from("out/bench-estimate").join(name);
    let design = super::generate_into(&m, &folding, Default::default(), &dir)?;
    let est = estimate::estimate(&m, &folding, device.family)?;
    let top = design.manifest.shell.top.clone();
    eprintln!(
        "{name}: yosys ({target}, {} cycles/image) ...",
        est.cycles_per_image
    );
    let t0 = Instant::now();
    let reuse = std::env::var_os("SPIKEFORGE_BENCH_REUSE").is_some();
    let flat = yosys_stat(
        &dir,
        &design.manifest.sources,
        &top,
        device.family,
        folding.dsp,
        false,
        reuse,
    )?;
    let yosys = spikeforge_flow::resources(device.family, &cells_of(&flat["design"]));
    let hier = yosys_stat(
        &dir,
        &design.manifest.sources,
        &top,
        device.family,
        folding.dsp,
        true,
        reuse,
    )?;
    let mut modules = Vec::new();
    // Modules by name; a parameterised one is `$paramod\NAME\PARAM=…`.
    let by_name: BTreeMap<String, &serde_json::Value> = hier
        .get("modules")
        .and_then(|ms| ms.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let k = k.strip_prefix("$paramod").unwrap_or(k);
                    let k = k.trim_start_matches('\\');
                    (k.split('\\').next().unwrap_or(k).to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    for me in &est.modules {
        let cells = by_name
            .get(&me.module)
            .map(|v| cells_of(v))
            .unwrap_or_default();
        // Sub-module instances appear as cells of their parent; count only primitives.
        let prim: BTreeMap<String, u64> = cells
            .into_iter()
            .filter(|(k, _)| !k.starts_with('$') && !by_name.contains_key(k))
            .collect();
        modules.push(ModuleRow {
            module: me.module.clone(),
            counts: me.counts.clone(),
            memories: me.memories,
            estimate: me.estimate,
            yosys: spikeforge_flow::resources(device.family, &prim),
            cells: prim,
        });
    }
    let err = super::error_percent(est.total.luts, yosys.luts);
    Ok(DesignRow {
        name: name.into(),
        model: what.into(),
        target: target.into(),
        folding,
        cycles_per_image: est.cycles_per_image,
        estimate: est.total,
        yosys,
        lut_error_percent: err,
        ram_blocks_equal: est.total.ram_blocks as u64 == yosys.ram_blocks,
        modules,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Runs the reference designs; prints a table and writes JSON to `out`.
pub fn run(out: &Path) -> Result<()> {
    use Coding::{Lif, Tsa};
    use Fold::*;
    let designs: &[(&str, &str, u32, Coding, Fold, &str)] = &[
        ("small-minimal", SMALL, 1, Lif, Minimal, "ice40-up5k"),
        ("small-default", SMALL, 1, Lif, Default, "ecp5-85k"),
        ("demo-default", DEMO, 2, Lif, Default, "ice40-up5k"),
        ("css-t8-minimal", CSS, 8, Tsa, Minimal, "ecp5-85k"),
        ("css-t8-faster", CSS, 8, Tsa, Faster(16), "ice40-up5k"),
        ("selected-minimal", SELECTED, 1, Lif, Minimal, "ecp5-85k"),
        ("selected-faster", SELECTED, 1, Lif, Faster(32), "ecp5-85k"),
        ("mlp-default", MLP, 1, Lif, Default, "ecp5-85k"),
        // What `gen --target ecp5-85k` chose for the MLP with the first fit (28 cycles).
        (
            "mlp-widest-ecp5",
            MLP,
            1,
            Lif,
            Given(&["input=28", "l0=32,112", "l1=1,64"]),
            "ecp5-85k",
        ),
        // The reference deployments of issue 36, folded as `bench --deploy` chose
        // (docs/deploy/*.json), so that the estimate is checked on what ships.
        (
            "deploy-a",
            DEPLOY_A,
            1,
            Lif,
            Given(&[
                "input=28",
                "dense0=32,112",
                "dense1=1,64",
                "weights=bram",
                "regs=on",
            ]),
            "ecp5-85k",
        ),
        (
            "deploy-b",
            SELECTED,
            1,
            Lif,
            Given(&[
                "input=1",
                "conv0=4,1,4",
                "conv1=4,64,2",
                "conv2=4,128",
                "conv3=5,8",
                "regs=on",
                "dsp=132",
            ]),
            "ecp5-85k",
        ),
        (
            "deploy-c",
            DEPLOY_C,
            1,
            Lif,
            Given(&[
                "input=1",
                "conv0=8,1",
                "conv1=4,16",
                "conv2=3,32",
                "conv3=1,4",
                "dsp=7",
            ]),
            "ice40-up5k",
        ),
        (
            "deploy-d",
            DEPLOY_D,
            8,
            Tsa,
            Given(&[
                "input=1",
                "conv0=4,1",
                "conv1=2,16",
                "conv2=1,32",
                "conv3=1,2",
                "weights=bram",
                "regs=on",
                "dsp=132",
            ]),
            "ecp5-85k",
        ),
    ];
    let only = std::env::var("SPIKEFORGE_BENCH_ONLY").ok();
    let mut rows = Vec::new();
    for (name, what, t, coding, f, target) in designs {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        rows.push(measure(name, what, *t, *coding, *f, target)?);
    }
    println!(
        "{:<18} {:<11} {:>10} {:>9} {:>9} {:>7} {:>6} {:>6}",
        "design", "target", "cycles", "LUT est", "LUT syn", "err %", "RAM e", "RAM s"
    );
    for r in &rows {
        println!(
            "{:<18} {:<11} {:>10} {:>9.0} {:>9} {:>+7.1} {:>6.0} {:>6}",
            r.name,
            r.target,
            r.cycles_per_image,
            r.estimate.luts,
            r.yosys.luts,
            r.lut_error_percent,
            r.estimate.ram_blocks,
            r.yosys.ram_blocks
        );
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
