//! `spikeforge bench`: golden-model and co-simulation throughput on reference models, with
//! the cycles per image of each generated design. Writes JSON; prints a table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;
use spikeforge_model::{arch, random, Golden};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// JSON report.
    #[arg(long, default_value = "out/bench.json")]
    pub out: PathBuf,
    /// Images per measurement.
    #[arg(long, default_value_t = 20000, value_parser = super::parse::at_least_one)]
    pub images: usize,
    /// Instead: the pre-synthesis estimate against Yosys and nextpnr on a device, for a set
    /// of designs (minutes; JSON to --out, default out/bench-flow.json).
    #[arg(long)]
    pub flow: Option<String>,
    /// Instead: Yosys area of the dataflow's reference designs against their targets (the
    /// small conv net at minimal folding on iCE40, the selected Fashion-MNIST network's window
    /// units and the whole network at minimal folding on ECP5-85F; minutes; JSON to --out,
    /// default out/bench-area.json).
    #[arg(long)]
    pub area: bool,
    /// Instead: the pre-synthesis estimate against Yosys, whole designs and per module, on
    /// nine reference designs (the selected network and the CSS T = 8 network among them;
    /// minutes; JSON to --out, default out/bench-estimate.json).
    #[arg(long)]
    pub estimate: bool,
    /// Instead: the reference deployments of issue 36 (a: MNIST MLP on ECP5-85F, b: the selected
    /// Fashion-MNIST model on the ULX3S, c: the iCEBreaker model, d: the CSS T = 8 model on
    /// the ULX3S): folding chosen for the board, the test set through the RTL and the board's
    /// serial line, synthesis, place and route; a table against the targets (tens of minutes
    /// per ECP5 design; JSON to --out, default out/bench-deploy.json).
    #[arg(long)]
    pub deploy: bool,
    /// With --deploy: only these deployments (`a,c`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// With --deploy: at most this many test images per deployment (default: all 10 000).
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// With --deploy: stop after co-simulation (no synthesis, place and route).
    #[arg(long)]
    pub no_flow: bool,
    /// Instead: training speed of this architecture (step time and, with --epoch, one epoch;
    /// JSON to --out, default out/bench-train.json). `bench/torch_train_step.py` measures
    /// PyTorch and snnTorch on the same network.
    #[arg(long)]
    pub train: Option<String>,
    /// With --train: mini-batch size.
    #[arg(long, default_value_t = 64, value_parser = super::parse::at_least_one)]
    pub batch: usize,
    /// With --train or --arch: time steps.
    #[arg(long, default_value_t = 1, value_parser = super::parse::time_steps())]
    pub time_steps: u32,
    /// With --train: timed steps.
    #[arg(long, default_value_t = 50, value_parser = super::parse::at_least_one)]
    pub steps: usize,
    /// With --train: also time one whole epoch.
    #[arg(long)]
    pub epoch: bool,
    /// With --train: keep every layer full precision (by default the estimator's first
    /// decision makes some binary, as in a real run, and binary layers on spikes run their
    /// forward product by popcounts).
    #[arg(long)]
    pub full_precision: bool,
    /// Co-simulation throughput of this architecture (a random model, `--time-steps` steps)
    /// instead of the two reference designs.
    #[arg(long)]
    pub arch: Option<String>,
    /// With --arch: folding overrides (as `gen --fold`).
    #[arg(long)]
    pub fold: Vec<String>,
    #[command(flatten)]
    pub data: super::train::DataArgs,
}

/// (name, architecture, folding overrides) of the estimate-vs-actual benchmark.
const FLOW_DESIGNS: &[(&str, &str, &[&str])] = &[
    ("mlp-small", "16-8b-4", &[]),
    ("conv-small", "8x8x1-4C3b-MP2-4C1i4-GAP", &[]),
    ("conv-i2-default", "8x8x1-32C3i2-10C1i2-GAP", &[]),
    (
        "conv-i2-folded",
        "8x8x1-32C3i2-10C1i2-GAP",
        &["l0=8,1", "l1=2,32"],
    ),
    ("mlp3", "256-64b-64b-10", &[]),
    ("demo-conv", "28x28x1-8C3b-MP2-16C3i4-SP2-10C1i8-GAP", &[]),
];

#[derive(Serialize)]
struct FlowRow {
    name: String,
    arch: String,
    folding: spikeforge_hdl_gen::Folding,
    estimate: spikeforge_hdl_gen::estimate::Estimate,
    yosys: spikeforge_flow::Resources,
    placed: Option<spikeforge_flow::Placed>,
    lut_error_percent: f64,
    ff_error_percent: f64,
    cycles_per_image: u64,
    images_per_s: Option<f64>,
    seconds: f64,
}

fn flow_bench(target: &str, out: &std::path::Path) -> Result<()> {
    let device = super::target(target)?;
    let root = PathBuf::from("out/bench-flow");
    let mut rows = Vec::new();
    for (name, arch_s, fold) in FLOW_DESIGNS {
        let model = random::random_model(&arch::parse(arch_s)?, 1, 1)
            .map_err(|p| anyhow::anyhow!("{p:?}"))?;
        let fold: Vec<String> = fold.iter().map(|s| s.to_string()).collect();
        let folding = super::folding(&model, &fold)?;
        let dir = root.join(name);
        let design = super::generate_into(&model, &folding, Default::default(), &dir)?;
        let est = spikeforge_hdl_gen::estimate::estimate(&model, &folding, device.family)?;
        let plan = spikeforge_flow::plan::plan(
            device,
            None,
            None,
            &design.manifest.shell.top,
            &design.manifest.sources,
            folding.dsp,
        );
        eprintln!("{name}: {target} flow ...");
        let t0 = Instant::now();
        let r = spikeforge_flow::run_with(&dir, &plan, &design.manifest, &mut |_| {}, false)?;
        rows.push(FlowRow {
            name: name.to_string(),
            arch: arch_s.to_string(),
            folding,
            estimate: est.total,
            yosys: r.synthesised,
            lut_error_percent: super::error_percent(est.total.luts, r.synthesised.luts),
            ff_error_percent: super::error_percent(est.total.ffs, r.synthesised.ffs),
            placed: r.placed.clone(),
            cycles_per_image: r.cycles_per_image,
            images_per_s: r.images_per_s,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    println!(
        "{:<16} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7} {:>5} {:>5} {:>9} {:>8} {:>11}",
        "design",
        "LUT est",
        "LUT syn",
        "err %",
        "FF est",
        "FF syn",
        "err %",
        "RAM e",
        "RAM s",
        "LC placed",
        "Fmax",
        "images/s"
    );
    for r in &rows {
        println!(
            "{:<16} {:>8.0} {:>8} {:>+7.1} {:>8.0} {:>8} {:>+7.1} {:>5.0} {:>5} {:>9} {:>8} {:>11}",
            r.name,
            r.estimate.luts,
            r.yosys.luts,
            r.lut_error_percent,
            r.estimate.ffs,
            r.yosys.ffs,
            r.ff_error_percent,
            r.estimate.ram_blocks,
            r.yosys.ram_blocks,
            r.placed
                .as_ref()
                .map_or("-".into(), |p| p.logic.0.to_string()),
            r.placed
                .as_ref()
                .map_or("-".into(), |p| format!("{:.1}", p.fmax_mhz)),
            r.images_per_s.map_or("-".into(), |v| format!("{v:.0}")),
        );
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}

/// (name, architecture, time steps, folding overrides)
const MODELS: &[(&str, &str, u32, &[&str])] = &[
    ("mlp", "784-128b-10", 1, &["input=16"]),
    ("conv", "28x28x1-8C3b-MP2-16C3i4-SP2-10C1i8-GAP", 1, &[]),
];

#[derive(Serialize)]
struct Row {
    name: String,
    arch: String,
    time_steps: u32,
    folding: spikeforge_hdl_gen::Folding,
    cycles_per_image_estimate: u64,
    cycles_per_image_measured: f64,
    images: usize,
    golden_images_per_s: f64,
    cosim_images_per_s: f64,
    bit_exact: usize,
    threads: usize,
}

impl Args {
    /// `--out`, or `default` when it was left at the throughput bench's own default.
    fn out_or(&self, default: &str) -> PathBuf {
        if self.out == std::path::Path::new("out/bench.json") {
            PathBuf::from(default)
        } else {
            self.out.clone()
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    if let Some(target) = &a.flow {
        let out = a.out_or("out/bench-flow.json");
        return flow_bench(target, &out);
    }
    if a.area {
        let out = a.out_or("out/bench-area.json");
        return super::bench_area::run(&out);
    }
    if a.estimate {
        let out = a.out_or("out/bench-estimate.json");
        return super::bench_estimate::run(&out);
    }
    if a.deploy {
        let out = a.out_or("out/bench-deploy.json");
        let setup = super::bench_deploy::Setup {
            only: &a.only,
            limit: a.limit,
            skip_flow: a.no_flow,
        };
        return super::bench_deploy::run(&setup, &out);
    }
    if let Some(arch) = &a.train {
        let out = a.out_or("out/bench-train.json");
        let setup = super::bench_train::Setup {
            arch,
            time_steps: a.time_steps as usize,
            batch: a.batch,
            steps: a.steps,
            epoch: a.epoch,
            full_precision: a.full_precision,
            data: &a.data,
        };
        return super::bench_train::run(&setup, &out);
    }
    let mut rows = Vec::new();
    let designs: Vec<(&str, &str, u32, Vec<String>)> = match &a.arch {
        Some(arch_s) => vec![("arch", arch_s, a.time_steps, a.fold.clone())],
        None => MODELS
            .iter()
            .map(|(n, s, t, f)| (*n, *s, *t, f.iter().map(|x| x.to_string()).collect()))
            .collect(),
    };
    for (name, arch_s, t, fold) in &designs {
        let model = random::random_model(&arch::parse(arch_s)?, *t, 1)
            .map_err(|p| anyhow::anyhow!("{p:?}"))?;
        let folding = super::folding(&model, fold)?;
        let sim =
            super::cosim::build(&model, None, fold, None, super::cosim::SimKind::Core, false)?;
        let images = random::random_images(&model, a.images, 11);
        let golden = Golden::new(&model);
        let t0 = Instant::now();
        let _ = golden.run_batch(&images, false)?;
        let golden_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let rtl = spikeforge_cosim::run_parallel(
            &sim,
            &images,
            a.images,
            golden.image_len(),
            0,
            &|_| {},
        )?;
        let cosim_s = t0.elapsed().as_secs_f64();
        // Cycles per image on one instance, without stalls.
        let probe = a.images.min(200);
        let one = sim.run(&images[..golden.image_len() * probe], probe as u32, 0, None)?;
        let expected = golden.run_batch(&images, true)?;
        let report = spikeforge_cosim::compare(&model, sim.manifest(), &expected, &rtl);
        if let Some(m) = &report.first_mismatch {
            bail!("{name}: co-simulation mismatch: {m}");
        }
        rows.push(Row {
            name: name.to_string(),
            arch: arch_s.to_string(),
            time_steps: *t,
            folding,
            cycles_per_image_estimate: sim.manifest().cycles_per_image,
            cycles_per_image_measured: one.cycles as f64 / probe as f64,
            images: a.images,
            golden_images_per_s: a.images as f64 / golden_s,
            cosim_images_per_s: a.images as f64 / cosim_s,
            bit_exact: report.bit_exact,
            threads: rayon::current_num_threads(),
        });
    }
    println!(
        "{:<6} {:<42} {:>3} {:>10} {:>10} {:>14} {:>14} {:>11}",
        "model", "arch", "T", "cyc est", "cyc meas", "golden img/s", "cosim img/s", "bit-exact"
    );
    for r in &rows {
        println!(
            "{:<6} {:<42} {:>3} {:>10} {:>10.1} {:>14.0} {:>14.0} {:>5}/{:<5}",
            r.name,
            r.arch,
            r.time_steps,
            r.cycles_per_image_estimate,
            r.cycles_per_image_measured,
            r.golden_images_per_s,
            r.cosim_images_per_s,
            r.bit_exact,
            r.images
        );
    }
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&rows)? + "\n")?;
    println!("wrote {}", a.out.display());
    Ok(())
}
