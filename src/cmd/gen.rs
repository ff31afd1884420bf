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
    /// Also wrap the network for a board: a top with the board's clock and UART pins, a
    /// power-on reset, and the board's pin file (see `constraints/boards.json`).
    #[arg(long)]
    pub board: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let folding = super::folding(&model, &a.fold)?;
    let board = super::cosim::board(a.board.as_deref())?;
    let options = spikeforge_hdl_gen::GenOptions { board };
    let design = super::generate_into(&model, &folding, options, &a.out)?;
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
    if let Some(b) = &m.board {
        println!(
            "  board {}: top `{}`, pins {}, {} Hz clock, UART {} baud; `make -C {} {}` or `spikeforge synth {} --board {}`",
            b.name,
            b.top,
            b.pins,
            b.clock_hz,
            b.baud,
            a.out.display(),
            b.name,
            a.out.display(),
            b.name
        );
    }
    Ok(())
}
