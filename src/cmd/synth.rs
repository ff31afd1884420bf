//! `spikeforge synth`: the open FPGA flow on a generated design, with a resource and timing
//! report; a design that does not fit says by how much and which folding would.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use spikeforge_constraints::Device;
use spikeforge_flow::plan as flow;
use spikeforge_flow::FlowError;
use spikeforge_hdl_gen::{estimate, Manifest};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// A directory written by `spikeforge gen`.
    pub rtl: PathBuf,
    /// Device: ice40-up5k, ice40-hx8k, ecp5-25k, ecp5-45k, ecp5-85k, xilinx-7 (default: the
    /// board's).
    #[arg(long)]
    pub target: Option<String>,
    /// Board (its pins, clock and top; the design must be generated with `gen --board`).
    #[arg(long)]
    pub board: Option<String>,
    /// Also write the report (JSON) here; it is always in RTL/build/NAME/report.json.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn device(
    a: &Args,
) -> Result<(
    &'static Device,
    Option<&'static spikeforge_constraints::Board>,
)> {
    let board = super::cosim::board(a.board.as_deref())?;
    let target = match (&a.target, board) {
        (Some(t), Some(b)) if *t != b.target => {
            bail!("board `{}` carries {}, not {t}", b.name, b.target)
        }
        (Some(t), _) => t.clone(),
        (None, Some(b)) => b.target.clone(),
        (None, None) => bail!(
            "say where to: --target ({}) or --board ({})",
            spikeforge_constraints::target_names(),
            spikeforge_constraints::board_names()
        ),
    };
    Ok((super::target(&target)?, board))
}

/// What to suggest when the design does not fit: a folding whose estimate, calibrated by
/// this design's synthesised logic, fits 90 % of the device.
fn suggestion(dir: &Path, device: &Device, m: &Manifest, luts: u64) -> String {
    let Ok(model) = spikeforge_model::load(&dir.join("model.json")) else {
        return String::new();
    };
    let Ok(now) = estimate::estimate(&model, &m.folding, device.family) else {
        return String::new();
    };
    // Never trust the estimate to be pessimistic: scale up only.
    let calibration = (luts as f64 / now.total.cells.max(1.0)).max(1.0);
    match estimate::fitting_folding(&model, device, 0.9, calibration) {
        Some((f, e)) => format!(
            "\na folding that would fit (estimated {:.0} {} after calibration, {} block RAMs, {} cycles per image instead of {}):\n  spikeforge gen MODEL {}",
            e.total.cells * calibration,
            device.logic_unit,
            e.total.ram_blocks,
            e.cycles_per_image,
            m.cycles_per_image,
            estimate::fold_args(&model, &f)
        ),
        None => "\nno folding of this network fits: even PE = SIMD = 1 everywhere is estimated too large; choose a larger device or a smaller network".into(),
    }
}

pub fn run(a: Args) -> Result<()> {
    let m = spikeforge_flow::design_dir::read_manifest(&a.rtl)?;
    let (device, board) = device(&a)?;
    let top = match (board, &m.board) {
        (Some(b), Some(have)) if have.name == b.name => have.top.clone(),
        (Some(b), _) => bail!(
            "{}: generated without a `{}` top; regenerate with `spikeforge gen MODEL --out {} --board {}`",
            a.rtl.display(),
            b.name,
            a.rtl.display(),
            b.name
        ),
        (None, _) => m.shell.top.clone(),
    };
    let pll_hz = m.pll_hz();
    let plan = flow::plan(device, board, pll_hz, &top, &m.sources, m.folding.dsp);
    let script = a.rtl.join(&plan.script_file);
    if !script.exists() {
        std::fs::write(&script, &plan.script)
            .with_context(|| format!("writing {}", script.display()))?;
    }
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let started = std::time::Instant::now();
    let result = spikeforge_flow::run(&a.rtl, &plan, &m, &mut |what| {
        spinner.set_message(format!("{}: {what}", plan.name));
    });
    spinner.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(FlowError::DoesNotFit {
            target,
            part,
            shortfalls,
        }) => {
            let luts = shortfalls
                .iter()
                .find(|s| {
                    s.resource.starts_with("logic")
                        || s.resource.ends_with("_LC")
                        || s.resource.ends_with("_COMB")
                })
                .map_or(0, |s| s.needed);
            let hint = suggestion(&a.rtl, device, &m, luts.max(1));
            let e = FlowError::DoesNotFit {
                target,
                part,
                shortfalls,
            };
            bail!("{}: {e}{hint}", a.rtl.display());
        }
        Err(e) => return Err(e).with_context(|| format!("synthesising {}", a.rtl.display())),
    };
    println!("{}", spikeforge_flow::table(&report));
    println!(
        "report     {}/{}/report.json ({:.0} s)",
        a.rtl.display(),
        plan.build_dir,
        started.elapsed().as_secs_f64()
    );
    if let Some(p) = &a.json {
        let json = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(p, json).with_context(|| format!("writing {}", p.display()))?;
    }
    if !report.meets_clock() {
        let fmax = report.placed.as_ref().map_or(0.0, |p| p.fmax_mhz);
        match pll_hz {
            Some(_) => bail!(
                "timing: Fmax {fmax:.2} MHz is below the PLL's {} MHz; regenerate with a lower `gen --pll` (at most {:.1})",
                report.clock_mhz,
                fmax
            ),
            None => bail!(
                "timing: Fmax {fmax:.2} MHz is below the board clock of {} MHz; fold further (`gen --fold`) or lower the clock",
                report.clock_mhz
            ),
        }
    }
    Ok(())
}
