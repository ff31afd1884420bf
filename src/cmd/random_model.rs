//! `spikeforge random-model`: a valid random model whose neurons spike.

use std::path::PathBuf;

use anyhow::Result;
use spikeforge_model::ir::Coding;
use spikeforge_model::{arch, random};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Architecture, e.g. `28x28x1-16C3b-MP2-32C3i8-SP2-10C1i8-GAP` (see docs/network-notation.md).
    #[arg(long)]
    pub arch: String,
    /// Time steps T.
    #[arg(long, default_value_t = 1, value_parser = super::parse::time_steps())]
    pub time_steps: u32,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Coding: `lif` (binary spikes) or `tsa` (ternary spikes, CSS; max pooling is refused).
    #[arg(long, default_value = "lif", value_parser = ["lif", "tsa"])]
    pub coding: String,
    /// Model name (also the prefix of generated modules).
    #[arg(long, default_value = "random")]
    pub name: String,
    /// Output model file (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let parsed = arch::parse(&a.arch)?;
    let coding = match a.coding.as_str() {
        "tsa" => Coding::Tsa,
        _ => Coding::Lif,
    };
    let mut model =
        random::random_coded_model(&parsed, a.time_steps, a.seed, coding).map_err(|p| {
            anyhow::anyhow!(
                "cannot build `{}`:\n{}",
                a.arch,
                p.iter()
                    .map(|p| format!("  - {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
    model.name = a.name;
    spikeforge_model::save(&model, &a.out)?;
    println!(
        "wrote {} ({} layers, T = {}, seed {})",
        a.out.display(),
        model.layers.len(),
        model.time_steps,
        a.seed
    );
    Ok(())
}
