//! `spikeforge inspect`: layers, weight storage, widths and cycle estimates.

use std::path::PathBuf;

use anyhow::Result;
use spikeforge_model::geometry::model_geometry;
use spikeforge_model::ir::{Neuron, Weights};
use spikeforge_model::widths;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    /// Folding override, as for `gen`.
    #[arg(long = "fold")]
    pub fold: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let w = widths::analyse(&model).map_err(|p| anyhow::anyhow!("{p}"))?;
    let folding = super::folding(&model, &a.fold)?;
    let geo = model_geometry(&model);
    println!(
        "model \"{}\"  sha256 {}\ninput {}x{}x{} ({}-bit pixels), T = {}",
        model.name,
        spikeforge_model::model_hash(&model),
        model.input.height,
        model.input.width,
        model.input.channels,
        model.input.pixel_bits,
        model.time_steps
    );
    println!(
        "{:<10} {:<22} {:>10} {:>9} {:>10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>11}",
        "layer", "op", "out", "weights", "bits", "acc", "mem", "out", "PE", "SIMD", "cycles/img"
    );
    let mut total_bits = 0u64;
    for (i, (l, g)) in model.layers.iter().zip(&geo).enumerate() {
        let n = (g.fan_in * l.out_channels() as usize) as u64;
        let wbits = match &l.weights {
            Weights::Binary { .. } => 1,
            Weights::Integer { bits, .. } => *bits as u64,
        };
        total_bits += n * wbits;
        let op = format!(
            "{} {}",
            spikeforge_model::arch::describe(l),
            match (&l.neuron, l.pool) {
                (Neuron::None { .. }, _) => "no neuron",
                _ => "LIF",
            }
        );
        let lw = &w.layers[i];
        let f = folding.layers[i];
        println!(
            "{:<10} {:<22} {:>10} {:>9} {:>10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>11}",
            l.name,
            op.chars().take(22).collect::<String>(),
            format!(
                "{}x{}x{}",
                g.output.height, g.output.width, g.output.channels
            ),
            n,
            n * wbits,
            lw.acc_bits(),
            lw.membrane_bits(),
            lw.output_bits(),
            f.pe,
            f.simd,
            spikeforge_hdl_gen::fold::layer_cycles(g, f, model.time_steps)
        );
    }
    println!(
        "weights: {} bits ({:.1} KiB); logits {} bits; estimated {} cycles per image",
        total_bits,
        total_bits as f64 / 8192.0,
        w.logit_bits(),
        spikeforge_hdl_gen::fold::pipeline_cycles(&model, &folding)
    );
    Ok(())
}
