//! `spikeforge cosim`: RTL vs golden model, every layer, every beat, every bit.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use spikeforge_cosim::{BuildOptions, Report, Simulator};
use spikeforge_model::{random::random_images, Golden, Model};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    /// A directory written by `spikeforge gen` (default: generate in memory).
    #[arg(long)]
    pub rtl: Option<PathBuf>,
    /// Number of random images (used when no --images file is given).
    #[arg(long, default_value_t = 100)]
    pub random: usize,
    /// Seed of the random images and of the stall pattern.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Images from a file: raw bytes or IDX (optionally gzipped).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Test images of a dataset (fashion-mnist, mnist, cifar10, cifar100; for a frames model
    /// an event set: nmnist, converted-mnist, dvs-gesture, cifar10-dvs) instead of random ones;
    /// the RTL's accuracy on them is printed too.
    #[arg(long, conflicts_with = "images")]
    pub dataset: Option<String>,
    /// Directory of the dataset's files (default: where its package installs them).
    #[arg(long, requires = "dataset")]
    pub data: Option<PathBuf>,
    /// At most this many images from --images or --dataset.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// Event sets: the bins the model was trained with (`train --bins`; the model file does
    /// not record them).
    #[arg(long, value_enum, default_value_t, requires = "dataset")]
    pub bins: super::train::BinsArg,
    /// Insert random input gaps and output back-pressure.
    #[arg(long)]
    pub stall: bool,
    /// Write a VCD waveform of the run (slower: one thread, traced build).
    #[arg(long)]
    pub vcd: Option<PathBuf>,
    /// Folding override when generating (ignored with --rtl).
    #[arg(long = "fold")]
    pub fold: Vec<String>,
    /// Co-simulate the UART shell instead of the tapped core: each image goes in as bytes
    /// over the serial line, the class byte comes back and is compared with the golden model.
    #[arg(long)]
    pub serial: bool,
    /// With --serial: simulate this board's top (power-on reset included); when generating
    /// in memory, generate for this board. The design in --rtl must have been generated for it.
    #[arg(long)]
    pub board: Option<String>,
    /// With --serial: clock cycles per UART bit in the simulation (the hardware uses clock /
    /// baud; fewer cycles per bit only make the simulation faster).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(4..=65535))]
    pub clks_per_bit: u32,
}

/// `--serial`: the images over the UART shell's (or the board top's) serial line; each class
/// byte that comes back is compared with the golden model's.
fn serial(
    a: &Args,
    model: &Model,
    board: Option<&'static spikeforge_constraints::Board>,
    images: &[u8],
    n: usize,
) -> Result<()> {
    if a.vcd.is_some() {
        bail!("--vcd traces the tapped core; leave out --serial to use it");
    }
    let kind = SimKind::Serial {
        board: board.is_some(),
        clks: a.clks_per_bit,
    };
    let sim = build(model, a.rtl.as_deref(), &a.fold, board, kind, false)?;
    let gaps = if a.stall { a.seed.max(1) } else { 0 };
    let bar = progress_bar(n);
    let report =
        spikeforge_cosim::cosimulate_serial(model, &sim, images, gaps, a.clks_per_bit, &|k| {
            bar.inc(k as u64)
        });
    bar.finish_and_clear();
    let r = report.with_context(|| format!("co-simulating {}", a.model.display()))?;
    let top = match board {
        Some(b) => format!("board top `{}`", b.name),
        None => "UART shell".into(),
    };
    println!(
        "{}/{} class bytes over the serial line equal the golden model ({top}, {} cycles per bit, {} cycles)",
        r.agree, r.images, a.clks_per_bit, r.cycles
    );
    if let Some((i, want, got)) = r.first_mismatch {
        bail!("image {i}: the shell sent class {got}, the golden model says {want}");
    }
    Ok(())
}

/// Which top a simulation is built around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimKind {
    /// The core with one tap per layer.
    Core,
    /// The UART shell (`board`: the board top) at this many cycles per bit.
    Serial { board: bool, clks: u32 },
}

/// Looks up `--board`.
pub fn board(name: Option<&str>) -> Result<Option<&'static spikeforge_constraints::Board>> {
    name.map(|n| {
        spikeforge_constraints::board(n).with_context(|| {
            format!(
                "unknown board `{n}`; known boards: {}",
                spikeforge_constraints::board_names()
            )
        })
    })
    .transpose()
}

/// Builds the simulation of a model's design, from `rtl` or generated now (for `board`).
pub fn build(
    model: &Model,
    rtl: Option<&Path>,
    fold: &[String],
    board: Option<&'static spikeforge_constraints::Board>,
    kind: SimKind,
    trace: bool,
) -> Result<Simulator> {
    let (manifest, files) = match rtl {
        Some(dir) => {
            let (m, f) = spikeforge_flow::design_dir::read(dir)?;
            let hash = spikeforge_model::model_hash(model);
            if m.model_hash != hash {
                bail!(
                    "{}: this design was generated from model {}, not from the given model ({}); regenerate it with `spikeforge gen`",
                    dir.display(),
                    &m.model_hash[..16],
                    &hash[..16]
                );
            }
            if matches!(kind, SimKind::Serial { board: true, .. }) {
                match (&m.board, board) {
                    (Some(have), Some(want)) if have.name != want.name => bail!(
                        "{}: this design was generated for board `{}`, not `{}`",
                        dir.display(),
                        have.name,
                        want.name
                    ),
                    (None, _) => bail!(
                        "{}: this design has no board top; generate it with `spikeforge gen --board B`",
                        dir.display()
                    ),
                    _ => {}
                }
            }
            (m, f)
        }
        None => {
            let folding = super::folding(model, fold)?;
            let options = spikeforge_hdl_gen::GenOptions {
                board,
                pll_hz: None,
            };
            let d = spikeforge_hdl_gen::generate_with(model, &folding, options)?;
            let files = d.source_files();
            (d.manifest, files)
        }
    };
    let spinner = super::spinner(format!(
        "building `{}` with Verilator (cached by content hash)",
        manifest.core
    ));
    let opts = BuildOptions {
        verilator: crate::settings::verilator(),
        cache_dir: crate::settings::cache_dir(),
        opt: 2,
        trace,
    };
    let sim = match kind {
        SimKind::Core => Simulator::build(&manifest, &files, &opts),
        SimKind::Serial { board, clks } => {
            Simulator::build_serial(&manifest, &files, &opts, board, clks)
        }
    };
    spinner.finish_and_clear();
    Ok(sim?)
}

/// A progress bar over `n` co-simulated images (hidden when stderr is not a terminal).
pub fn progress_bar(n: usize) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "cosim {bar:40} {pos}/{len} images ({per_sec}, eta {eta})",
        )
        .expect("a valid template"),
    );
    bar
}

/// Prints the summary line; fails on any mismatch.
pub fn conclude(report: &Report) -> Result<()> {
    println!(
        "{}/{} bit-exact ({} cycles, {:.1} cycles per image)",
        report.bit_exact,
        report.images,
        report.cycles,
        report.cycles as f64 / report.images.max(1) as f64
    );
    if let Some(m) = &report.first_mismatch {
        bail!("RTL diverges from the golden model; first divergence: {m}");
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    if a.limit.is_some() && a.images.is_none() && a.dataset.is_none() {
        bail!(
            "--limit applies to --images or --dataset; the number of random images is --random N"
        );
    }
    let model = super::load_model(&a.model)?;
    let golden = Golden::new(&model);
    let mut labels = None;
    let (images, n) = match (&a.images, &a.dataset) {
        (Some(p), _) => crate::images::read_images(p, &model.input, golden.image_len(), a.limit)?,
        (None, Some(d)) => {
            let test = super::train::test_samples(
                &model,
                &a.model,
                d,
                a.data.as_deref(),
                a.limit,
                a.bins,
            )?;
            labels = Some(test.labels.clone());
            let n = test.len();
            (test.images, n)
        }
        (None, None) => (random_images(&model, a.random, a.seed), a.random),
    };
    if n == 0 {
        bail!("no images to simulate");
    }
    let board = board(a.board.as_deref())?;
    if a.serial {
        return serial(&a, &model, board, &images, n);
    }
    let sim = build(
        &model,
        a.rtl.as_deref(),
        &a.fold,
        board,
        SimKind::Core,
        a.vcd.is_some(),
    )?;
    let stall = if a.stall { a.seed.max(1) } else { 0 };
    let bar = progress_bar(n);
    let report =
        spikeforge_cosim::cosimulate(&model, &sim, &images, stall, a.vcd.as_deref(), &|k| {
            bar.inc(k as u64)
        });
    bar.finish_and_clear();
    let report = report.with_context(|| format!("co-simulating {}", a.model.display()))?;
    conclude(&report)?;
    if let Some(labels) = labels {
        let correct = spikeforge_trainer::data::correct(&report.classes, &labels);
        println!(
            "RTL accuracy: {correct}/{} = {:.2} % on {} test images",
            labels.len(),
            100.0 * correct as f64 / labels.len().max(1) as f64,
            a.dataset.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}
