//! `spikeforge demo`: the main job end to end with no arguments: train an ALBSNN on
//! Fashion-MNIST (the estimator keeps binary layers) → export the integer model → generate
//! Verilog with the iCEBreaker's board top → lint → co-simulate real test images bit-exact →
//! synthesise, place and route to the board's bitstream.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use spikeforge_trainer::session::RunOptions;
use spikeforge_trainer::train::TrainOptions;

/// The demo's network: small enough to train in a few minutes on 2 cores and to place on an
/// ECP5; the middle layers are the accuracy-loss estimator's to binarise.
pub const DEMO_ARCH: &str = "28x28x1-16C3-MP2-32C3-MP2-64C3-10C1-GAP";

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Working directory for the checkpoint, model, RTL and reports.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: super::train::DataArgs,
    /// Architecture to train.
    #[arg(long, default_value = DEMO_ARCH)]
    pub arch: String,
    /// Time steps.
    #[arg(long, default_value_t = 1, value_parser = super::parse::time_steps())]
    pub time_steps: u32,
    /// Training epochs.
    #[arg(long, default_value_t = 3, value_parser = super::parse::at_least_one)]
    pub epochs: usize,
    /// Train on the first N training images only.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// Test images to co-simulate through the RTL.
    #[arg(long, default_value_t = 1000, value_parser = super::parse::at_least_one)]
    pub images: usize,
    /// Board: its top, pins and bitstream (see `constraints/boards.json`).
    #[arg(long, default_value = "icebreaker", conflicts_with = "target")]
    pub board: String,
    /// A device instead of a board (see `spikeforge synth --target`), e.g. `ecp5-85k`.
    #[arg(long)]
    pub target: Option<String>,
    /// The accuracy-loss estimator's threshold ε (`train --ale-threshold`): at 0.45 it keeps
    /// the middle layers binary in a three-epoch run.
    #[arg(long, default_value_t = 0.45)]
    pub ale_threshold: f64,
    /// Seed of the training run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The open flow on the demo design: a bitstream and its report, or why not.
fn synth(
    rtl: &Path,
    manifest: &spikeforge_hdl_gen::Manifest,
    device: &'static spikeforge_constraints::Device,
    board: Option<&'static spikeforge_constraints::Board>,
) -> Result<String> {
    let target = board.map_or(device.target.clone(), |b| b.name.clone());
    let top = manifest
        .board
        .as_ref()
        .map_or(&manifest.shell.top, |b| &b.top);
    let plan = spikeforge_flow::plan::plan(
        device,
        board,
        None,
        top,
        &manifest.sources,
        manifest.folding.dsp,
    );
    let spinner = super::spinner(format!("{target}: synthesis"));
    let started = std::time::Instant::now();
    let result = spikeforge_flow::run_with(
        rtl,
        &plan,
        manifest,
        &mut |what| {
            spinner.set_message(format!(
                "{target}: {what} ({:.0} s)",
                started.elapsed().as_secs_f64()
            ))
        },
        false,
    );
    spinner.finish_and_clear();
    match result {
        Ok(r) => Ok(format!(
            "synth: {target}: {} {} ({:.1} %), {} FFs, {} block RAMs, Fmax {:.1} MHz, {:.0} images/s; bitstream {}",
            r.placed.as_ref().map_or(r.synthesised.luts, |p| p.logic.0),
            device.logic_unit,
            r.logic_percent(),
            r.synthesised.ffs,
            r.synthesised.ram_blocks,
            r.placed.as_ref().map_or(0.0, |p| p.fmax_mhz),
            r.images_per_s.unwrap_or(0.0),
            rtl.join(r.bitstream.unwrap_or_default()).display()
        )),
        Err(e @ spikeforge_flow::FlowError::MissingTool { .. }) => {
            Ok(format!("synth: skipped: {e}"))
        }
        Err(e) => Err(e).context("the FPGA flow"),
    }
}

/// On a board, the fastest folding that fits its device (`gen --board`); on a device, the
/// fastest estimated to fill at most half of it (a quick place and route), else the default
/// one (the flow then reports the shortfall).
fn demo_folding(
    model: &spikeforge_model::Model,
    device: &'static spikeforge_constraints::Device,
    board: bool,
) -> Result<spikeforge_hdl_gen::Folding> {
    use spikeforge_hdl_gen::estimate;
    if board {
        return super::target_folding(model, device, None, &[]);
    }
    let target = &device.target;
    match estimate::fitting_folding(model, device, 0.5, 1.0) {
        Some((f, e)) => {
            println!(
                "folding: {} (estimated {:.0} {}, {} cycles per image on {target})",
                estimate::fold_args(model, &f),
                e.total.cells,
                device.logic_unit,
                e.cycles_per_image
            );
            Ok(f)
        }
        None => super::folding(model, &[]),
    }
}

/// The demo's run: the trainer's defaults but for what the demo owns.
fn train_run_options(a: &Args) -> RunOptions {
    RunOptions {
        train: TrainOptions {
            arch: Some(a.arch.clone()),
            time_steps: Some(a.time_steps as usize),
            epochs: Some(a.epochs),
            limit: a.limit,
            seed: Some(a.seed),
            lr: Some(5e-3),
            ale_threshold: Some(a.ale_threshold),
            ..TrainOptions::new(&a.data.dataset)
        },
        resume: false,
        data_dir: a.data.data.clone(),
        out: a.out.clone(),
        stop_after: None,
    }
}

pub fn run(a: Args) -> Result<()> {
    // An unknown board or target fails now, not after training.
    let board = match &a.target {
        Some(_) => None,
        None => super::cosim::board(Some(&a.board))?,
    };
    let device = super::target(
        a.target
            .as_deref()
            .unwrap_or_else(|| &board.expect("a board when there is no target").target),
    )?;
    let model_path = a.out.join("model.json");
    let trained = super::train::train_run(&train_run_options(&a), false)?;
    let summary = super::train::finish(&trained, &model_path)?;
    super::train::print_summary(&summary);
    write_json(&a.out.join("summary.json"), &summary)?;
    let model = super::load_model(&model_path)?;
    let folding = demo_folding(&model, device, board.is_some())?;
    let rtl = a.out.join("rtl");
    let options = spikeforge_hdl_gen::GenOptions {
        board,
        pll_hz: None,
    };
    let design = super::generate_into(&model, &folding, options, &rtl)?;
    println!(
        "gen: {} ({} files, {} cycles per image)",
        rtl.display(),
        design.files.len(),
        design.manifest.cycles_per_image
    );
    let complaints = spikeforge_cosim::lint(&crate::settings::verilator(), &rtl, &design.manifest)?;
    if !complaints.trim().is_empty() {
        bail!("verilator --lint-only -Wall reported:\n{complaints}");
    }
    println!(
        "lint: verilator --lint-only -Wall clean ({} files)",
        design.manifest.sources.len()
    );
    let s = super::spinner("Verilator: building the simulation".into());
    let sim = super::cosim::build(
        &model,
        Some(&rtl),
        &[],
        None,
        super::cosim::SimKind::Core,
        false,
    );
    s.finish_and_clear();
    let sim = sim?;
    let test = trained.ds.test.take(a.images);
    let images = &test.images;
    let bar = super::cosim::progress_bar(test.len());
    let report =
        spikeforge_cosim::cosimulate(&model, &sim, images, 7, None, &|k| bar.inc(k as u64));
    bar.finish_and_clear();
    let report = report?;
    print!("cosim: ");
    super::cosim::conclude(&report)?;
    let rtl_accuracy = accuracy_table(&test, &report.classes, &summary);
    write_json(
        &a.out.join("cosim.json"),
        &serde_json::json!({
            "images": report.images,
            "bit_exact": report.bit_exact,
            "rtl_accuracy": rtl_accuracy,
        }),
    )?;
    println!("{}", synth(&rtl, &design.manifest, device, board)?);
    super::report::run(super::report::Args {
        dir: a.out.clone(),
        out: None,
        dataset: Some(a.data.dataset.clone()),
        data: a.data.data.clone(),
        images: 200,
    })?;
    println!(
        "demo done: train → export → RTL → lint → {} test images bit-exact → bitstream → report",
        report.bit_exact
    );
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Float, integer and RTL accuracy side by side: on the whole test set (float, integer) and on
/// the co-simulated images (all three; the float and integer classes are the summary's).
/// Returns the RTL's accuracy (0..1).
fn accuracy_table(
    test: &spikeforge_trainer::Split,
    rtl: &[usize],
    s: &super::train::Summary,
) -> f64 {
    let n = test.len();
    let acc = |p: &[usize]| 100.0 * spikeforge_trainer::data::accuracy(&p[..n], &test.labels);
    println!("accuracy            float    integer  RTL");
    println!(
        "{:<18}  {:>6.2} %  {:>6.2} %  (not simulated)",
        format!("test set ({})", s.test_images),
        s.float_accuracy * 100.0,
        s.integer_accuracy * 100.0
    );
    println!(
        "{:<18}  {:>6.2} %  {:>6.2} %  {:>6.2} %",
        format!("first {n}"),
        acc(&s.float_classes),
        acc(&s.integer_classes),
        acc(rtl)
    );
    acc(rtl) / 100.0
}
