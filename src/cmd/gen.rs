//! `spikeforge gen`: Verilog, ROM images and manifest for a model.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    /// Output directory (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Folding override: `LAYER=PE,SIMD` (LAYER is an index or a name) or `input=PIXELS`
    /// (pixels per input beat). Repeatable.
    #[arg(long = "fold")]
    pub fold: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let folding = super::folding(&model, &a.fold)?;
    let design = super::generate_into(&model, &folding, &a.out)?;
    let m = &design.manifest;
    println!(
        "wrote {} ({} files; top `{}`; {} cycles per image, {} pixel(s) per beat)",
        a.out.display(),
        design.files.len(),
        m.top,
        m.cycles_per_image,
        m.input.pixels_per_beat
    );
    for (l, f) in m.layers.iter().zip(&m.folding.layers) {
        println!(
            "  {:<12} PE {:>4} SIMD {:>5}  {:>9} cycles/image",
            l.name, f.pe, f.simd, l.cycles_per_image
        );
    }
    Ok(())
}
