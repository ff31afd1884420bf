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
    #[arg(long, default_value_t = 20000)]
    pub images: usize,
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

pub fn run(a: Args) -> Result<()> {
    let mut rows = Vec::new();
    for (name, arch_s, t, fold) in MODELS {
        let model = random::random_model(&arch::parse(arch_s)?, *t, 1)
            .map_err(|p| anyhow::anyhow!("{p:?}"))?;
        let fold: Vec<String> = fold.iter().map(|s| s.to_string()).collect();
        let folding = super::folding(&model, &fold)?;
        let sim = super::cosim::build(&model, None, &fold, false)?;
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
