//! `spikeforge gen`: Verilog, ROM images and manifest for a model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    /// Output directory (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Folding override: `LAYER=PE,SIMD[,MMV]` (LAYER is an index or a name), `input=PIXELS`
    /// (pixels per input beat), `tree=LEVELS`, `dsp=on|off|N`, `weights=bram|auto`,
    /// `regs=on|off` (register ranks after weight-ROM reads and DSP products, for Fmax) or
    /// `mmv=N`. Repeatable, or several in one argument separated by spaces (as `gen` prints a
    /// folding); with --target, the layers not named are chosen for the device.
    #[arg(long = "fold")]
    pub fold: Vec<String>,
    /// Choose the folding for this device (see `spikeforge synth --target`): the fastest
    /// whose estimate fits under --max-util, every layer folded to about the same cycles.
    /// `--board` implies its device.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: the share of the device's logic the design may use, in percent
    /// (default 85; block RAM and DSPs 90, or this when lower).
    #[arg(long, value_parser = super::parse::percent)]
    pub max_util: Option<f64>,
    /// Also wrap the network for a board: a top with the board's clock and UART pins, a
    /// power-on reset, and the board's pin file (see `constraints/boards.json`); the folding
    /// is then chosen for the board's device, as with --target.
    #[arg(long)]
    pub board: Option<String>,
    /// With --board: clock the design from the device's PLL at this many MHz (or the nearest
    /// setting below it) instead of the board's oscillator; the UART's bit time follows.
    /// Choose it at or below the Fmax that `synth` reports for the design.
    #[arg(long, value_name = "MHZ", value_parser = super::parse::positive_mhz)]
    pub pll: Option<f64>,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let board = super::cosim::board(a.board.as_deref())?;
    // A board implies its device; naming another one as well is a contradiction.
    let target = match (&a.target, board) {
        (Some(t), Some(b)) if *t != b.target => bail!(
            "--board {} carries an {}; --target {t} names another device (leave one out)",
            b.name,
            b.target
        ),
        (Some(t), _) => Some(t.clone()),
        (None, b) => b.map(|b| b.target.clone()),
    };
    let folding = match &target {
        Some(t) => super::target_folding(&model, super::target(t)?, a.max_util, &a.fold)?,
        None => super::folding(&model, &a.fold)?,
    };
    if a.pll.is_some() && board.is_none() {
        bail!("--pll clocks a board top: name the board with --board");
    }
    let options = spikeforge_hdl_gen::GenOptions {
        board,
        pll_hz: a.pll.map(|mhz| mhz * 1e6),
    };
    let design = super::generate_into(&model, &folding, options, &a.out)
        .with_context(|| format!("generating {}", a.model.display()))?;
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
            "  {:<12} PE {:>4} SIMD {:>5} MMV {:>3}  {:>9} cycles/image",
            l.name, f.pe, f.simd, f.mmv, l.cycles_per_image
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
        if let Some(p) = &b.pll {
            println!(
                "  PLL: {:.4} MHz from the {} MHz board clock ({})",
                p.clock_hz as f64 / 1e6,
                b.clock_hz as f64 / 1e6,
                p.setting
            );
        }
    }
    Ok(())
}
