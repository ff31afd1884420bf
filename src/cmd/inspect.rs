//! `spikeforge inspect`: layers, weight storage, widths and cycle estimates.

use std::path::PathBuf;

use anyhow::Result;
use spikeforge_constraints::Device;
use spikeforge_hdl_gen::estimate;
use spikeforge_hdl_gen::fold::Folding;
use spikeforge_model::geometry::model_geometry;
use spikeforge_model::ir::{Encoding, Layer, Model, Neuron, Weights};
use spikeforge_model::widths::{self, Widths};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    /// Folding override, as for `gen`.
    #[arg(long = "fold")]
    pub fold: Vec<String>,
    /// Device for the pre-synthesis estimate (see `spikeforge synth --target`).
    #[arg(long, default_value = "ice40-up5k")]
    pub target: String,
    /// Also list the estimate of every generated module (window units, MVUs, converters…).
    #[arg(long)]
    pub modules: bool,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let w = widths::analyse(&model).map_err(|p| anyhow::anyhow!("{p}"))?;
    let folding = super::folding(&model, &a.fold)?;
    // Resolved before anything is printed: a bad `--target` fails with no partial report.
    let device = super::target(&a.target)?;
    print_header(&model);
    let total_bits = print_layers(&model, &w, &folding);
    println!(
        "weights: {} bits ({:.1} KiB); logits {} bits; estimated {} cycles per image",
        total_bits,
        total_bits as f64 / 8192.0,
        w.logit_bits(),
        spikeforge_hdl_gen::fold::pipeline_cycles(&model, &folding)
    );
    print_estimate(&model, &folding, device, a.modules);
    Ok(())
}

fn print_header(model: &Model) {
    let presented = match model.input.encoding {
        Encoding::Direct => "the same image at every step",
        Encoding::FirstStep => "the image at the first step",
        Encoding::Frames => "one frame per step",
    };
    println!(
        "model \"{}\"  sha256 {}\ninput {}x{}x{} ({}-bit pixels; {presented}), T = {}",
        model.name,
        spikeforge_model::model_hash(model),
        model.input.height,
        model.input.width,
        model.input.channels,
        model.input.pixel_bits,
        model.time_steps
    );
}

/// One row per layer; returns the model's weight storage in bits.
fn print_layers(model: &Model, w: &Widths, folding: &Folding) -> u64 {
    println!(
        "{:<10} {:<22} {:>10} {:>9} {:>10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>4} {:>11}",
        "layer",
        "op",
        "out",
        "weights",
        "bits",
        "acc",
        "mem",
        "out",
        "PE",
        "SIMD",
        "MMV",
        "cycles/img"
    );
    let mut total_bits = 0u64;
    for (i, (l, g)) in model.layers.iter().zip(&model_geometry(model)).enumerate() {
        let n = (g.fan_in * l.out_channels() as usize) as u64;
        let wbits = match &l.weights {
            Weights::Binary { .. } => 1,
            Weights::Integer { bits, .. } => *bits as u64,
        };
        total_bits += n * wbits;
        let lw = &w.layers[i];
        let f = folding.layers[i];
        println!(
            "{:<10} {:<22} {:>10} {:>9} {:>10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>4} {:>11}",
            l.name,
            op_name(l).chars().take(22).collect::<String>(),
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
            f.mmv,
            spikeforge_hdl_gen::fold::layer_cycles(g, f)
        );
    }
    total_bits
}

/// The layer in architecture notation and its neuron, e.g. `64C3 LIF`.
pub fn op_name(l: &Layer) -> String {
    let neuron = match &l.neuron {
        Neuron::None { .. } => "no neuron",
        Neuron::Lif(_) => "LIF",
        Neuron::Tsa(_) => "TSA",
        Neuron::TsaReadout { .. } => "TSA readout",
    };
    format!("{} {neuron}", spikeforge_model::arch::describe(l))
}

/// The pre-synthesis estimate on `device`, per layer, and a folding that fits when it does not.
fn print_estimate(model: &Model, folding: &Folding, device: &Device, modules: bool) {
    let e = match estimate::estimate(model, folding, device.family) {
        Ok(e) => e,
        // The model itself is fine (the golden model runs it); the generator cannot build it.
        Err(reason) => {
            println!(
                "estimate on {}: no design to estimate: {reason}",
                device.target
            );
            return;
        }
    };
    let pct = |n: f64, of: u64| 100.0 * n / of.max(1) as f64;
    println!(
        "estimate on {} ({}): {:.0} {} ({:.0} %), {:.0} flip-flops ({:.0} %), {:.0} block RAMs ({:.0} %, {:.0} bits), {:.0} DSPs ({:.0} %), {} cycles per image",
        device.target,
        device.part,
        e.total.cells,
        device.logic_unit,
        pct(e.total.cells, device.logic),
        e.total.ffs,
        pct(e.total.ffs, device.ffs),
        e.total.ram_blocks,
        pct(e.total.ram_blocks, device.ram_blocks),
        e.total.ram_bits,
        e.total.dsps,
        pct(e.total.dsps, device.dsps),
        e.cycles_per_image
    );
    for (name, l) in &e.layers {
        println!(
            "  {:<10} {:>8.0} {} {:>8.0} FF {:>4.0} RAM {:>4.0} DSP",
            name,
            l.cells,
            device.logic_unit,
            l.ffs,
            l.ram_blocks,
            l.dsps + 0.0
        );
    }
    if modules {
        for m in &e.modules {
            let l = &m.estimate;
            println!(
                "    {:<32} {:>8.0} {} {:>8.0} FF {:>4.0} RAM {:>4.0} DSP",
                m.module,
                l.cells,
                device.logic_unit,
                l.ffs,
                l.ram_blocks,
                l.dsps + 0.0
            );
        }
    }
    let caps = spikeforge_hdl_gen::autofold::Caps::default();
    match spikeforge_hdl_gen::autofold::choose(model, device, caps, &[]) {
        Ok(c) => println!(
            "`gen --target {}` would choose {} cycles per image ({:.0} {}, {:.0} block RAMs, {:.0} DSPs): {}",
            device.target,
            c.estimate.cycles_per_image,
            c.estimate.total.cells,
            device.logic_unit,
            c.estimate.total.ram_blocks,
            c.estimate.total.dsps,
            estimate::fold_args(model, &c.folding)
        ),
        Err(e) => println!("{e}"),
    }
}
