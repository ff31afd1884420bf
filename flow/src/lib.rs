//! spikeforge-flow: runs a generated design's flow plan (Yosys, nextpnr, icepack/ecppack) and
//! reads what the tools report: cells, utilisation against the device, Fmax, and images per
//! second from the manifest's cycles per image.
//!
//! Tools are the native ones on `PATH`, else their YoWASP builds from PyPI; a missing tool is
//! an error naming both. A design whose synthesised logic or RAM exceeds the device stops
//! before place and route with the shortfall.
#![warn(missing_docs)]

pub mod design_dir;
pub mod plan;

use spikeforge_model::IoError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub use plan::{Plan, Tool};
use serde::{Deserialize, Serialize};
use spikeforge_constraints::{Device, Family};
use spikeforge_hdl_gen::Manifest;
use thiserror::Error;

/// Why a flow did not finish.
#[derive(Debug, Error)]
pub enum FlowError {
    /// A tool is on neither `PATH` form.
    #[error(
        "`{native}` not found on PATH ({package}); or use its YoWASP build: `pip install {pypi}` provides `{yowasp}`"
    )]
    MissingTool {
        /// Native name.
        native: &'static str,
        /// Where it comes from.
        package: &'static str,
        /// YoWASP name.
        yowasp: &'static str,
        /// PyPI package.
        pypi: &'static str,
    },
    /// A tool ran and failed.
    #[error("{what} failed ({program}, exit {status}); log {log}:\n{tail}")]
    ToolFailed {
        /// Step.
        what: &'static str,
        /// Program run.
        program: String,
        /// Exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// The design needs more than the device has.
    #[error("{}", fit_message(.target, .part, .shortfalls))]
    DoesNotFit {
        /// Target name.
        target: String,
        /// Part.
        part: String,
        /// What is short.
        shortfalls: Vec<Shortfall>,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] spikeforge_model::IoError),
    /// The directory does not hold a readable design.
    #[error("{}: {message}", path.display())]
    Design {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A manifest names a board this version does not know.
    #[error("the manifest names board `{0}`, which is not in constraints/boards.json")]
    UnknownBoard(String),
    /// Synthesis inferred a latch: the RTL has an incomplete combinational assignment.
    #[error("Yosys inferred a latch (see {log}): generated RTL must be latch-free")]
    Latch {
        /// The Yosys log.
        log: PathBuf,
    },
    /// A tool's report did not read as expected.
    #[error("{path}: {reason}")]
    Report {
        /// The report.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One resource the design needs more of than the device has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shortfall {
    /// `logic (LC)`, `block RAM`, `DSP`.
    pub resource: String,
    /// Needed.
    pub needed: u64,
    /// Available.
    pub available: u64,
}

fn fit_message(target: &str, part: &str, s: &[Shortfall]) -> String {
    let parts: Vec<String> = s
        .iter()
        .map(|s| {
            format!(
                "{} needs {} of {} ({:.1}x the device, {} over)",
                s.resource,
                s.needed,
                s.available,
                s.needed as f64 / s.available.max(1) as f64,
                s.needed - s.available
            )
        })
        .collect();
    format!(
        "the design does not fit {target} ({part}): {}",
        parts.join("; ")
    )
}

/// Resources counted from Yosys' cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Logic in the device's unit (iCE40 LUT4, ECP5 LUT4 incl. 2 per carry cell, 7-series LUT6).
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Carry cells (SB_CARRY, CCU2C, CARRY4).
    pub carries: u64,
    /// Block RAMs (7-series: RAMB18 equivalents).
    pub ram_blocks: u64,
    /// DSP/multiplier blocks.
    pub dsps: u64,
}

/// What a family's cell names count as: `(cell or prefix, field, weight)`.
fn cell_table(f: Family) -> &'static [(&'static str, &'static str, u64)] {
    match f {
        Family::Ice40 => &[
            ("SB_LUT4", "lut", 1),
            ("SB_DFF*", "ff", 1),
            ("SB_CARRY", "carry", 1),
            ("SB_RAM40_4K", "ram", 1),
            ("SB_MAC16", "dsp", 1),
        ],
        Family::Ecp5 => &[
            ("LUT4", "lut", 1),
            ("CCU2C", "lut", 2),
            ("CCU2C", "carry", 1),
            ("TRELLIS_DPR16X4", "lut", 2),
            ("TRELLIS_FF", "ff", 1),
            ("DP16KD", "ram", 1),
            ("MULT18X18D", "dsp", 1),
        ],
        Family::Xilinx => &[
            ("LUT*", "lut", 1),
            ("RAM32M", "lut", 4),
            ("RAM64M", "lut", 4),
            ("RAM32X1D", "lut", 2),
            ("RAM64X1D", "lut", 2),
            ("SRL*", "lut", 1),
            ("FD*", "ff", 1),
            ("CARRY4", "carry", 1),
            ("RAMB18E1", "ram", 1),
            ("RAMB36E1", "ram", 2),
            ("DSP48E1", "dsp", 1),
        ],
    }
}

/// Counts resources from Yosys' `num_cells_by_type`.
pub fn resources(family: Family, cells: &BTreeMap<String, u64>) -> Resources {
    let mut r = Resources::default();
    for (cell, n) in cells {
        for (pat, field, w) in cell_table(family) {
            let hit = match pat.strip_suffix('*') {
                Some(prefix) => cell.starts_with(prefix),
                None => cell == pat,
            };
            if !hit {
                continue;
            }
            let slot = match *field {
                "lut" => &mut r.luts,
                "ff" => &mut r.ffs,
                "carry" => &mut r.carries,
                "ram" => &mut r.ram_blocks,
                _ => &mut r.dsps,
            };
            *slot += n * w;
        }
    }
    r
}

/// Shortfalls of `r` on `d` (empty: it may fit).
pub fn shortfalls(d: &Device, r: &Resources) -> Vec<Shortfall> {
    let unit = &d.logic_unit;
    [
        (format!("logic ({unit})"), r.luts, d.logic),
        ("flip-flops".into(), r.ffs, d.ffs),
        (
            format!("block RAM ({})", d.ram_block_cell),
            r.ram_blocks,
            d.ram_blocks,
        ),
        ("DSP".into(), r.dsps, d.dsps),
    ]
    .into_iter()
    .filter(|(_, n, a)| n > a)
    .map(|(resource, needed, available)| Shortfall {
        resource,
        needed,
        available,
    })
    .collect()
}

/// Placed utilisation from nextpnr.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placed {
    /// Logic cells used / available (ICESTORM_LC, TRELLIS_COMB).
    pub logic: (u64, u64),
    /// Block RAMs used / available.
    pub ram: (u64, u64),
    /// DSPs used / available.
    pub dsp: (u64, u64),
    /// I/O used.
    pub io: u64,
    /// Achieved Fmax of the clock, MHz.
    pub fmax_mhz: f64,
}

/// The result of a flow run (also written to `build/NAME/report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Target or board name.
    pub name: String,
    /// Device target.
    pub target: String,
    /// Part.
    pub part: String,
    /// Board, if any.
    pub board: Option<String>,
    /// Top module.
    pub top: String,
    /// Yosys cells by type.
    pub cells: BTreeMap<String, u64>,
    /// Resources from the cells.
    pub synthesised: Resources,
    /// Device budget: logic, FFs, RAM blocks, DSPs.
    pub budget: Resources,
    /// After place and route (absent for utilisation-only targets).
    pub placed: Option<Placed>,
    /// Clock constraint, MHz.
    pub clock_mhz: f64,
    /// Cycles per image (manifest estimate).
    pub cycles_per_image: u64,
    /// Fmax / cycles per image.
    pub images_per_s: Option<f64>,
    /// Bitstream, relative to the design directory.
    pub bitstream: Option<String>,
    /// Seconds per step.
    pub seconds: Vec<(String, f64)>,
}

impl Report {
    /// Logic utilisation in percent (placed when known, else synthesised).
    pub fn logic_percent(&self) -> f64 {
        match &self.placed {
            Some(p) => 100.0 * p.logic.0 as f64 / p.logic.1.max(1) as f64,
            None => 100.0 * self.synthesised.luts as f64 / self.budget.luts.max(1) as f64,
        }
    }

    /// Whether the board's clock is met (true without a board).
    pub fn meets_clock(&self) -> bool {
        match (&self.board, &self.placed) {
            (Some(_), Some(p)) => p.fmax_mhz >= self.clock_mhz,
            _ => true,
        }
    }
}

/// Finds a tool: the native executable on `PATH`, else the YoWASP one.
pub fn find_tool(tool: Tool) -> Result<PathBuf, FlowError> {
    let i = tool.info();
    [i.native, i.yowasp]
        .iter()
        .find_map(|name| on_path(name))
        .ok_or(FlowError::MissingTool {
            native: i.native,
            package: i.package,
            yowasp: i.yowasp,
            pypi: i.pypi,
        })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FlowError + '_ {
    move |error| IoError::at(path)(error).into()
}

fn read_json(path: &Path) -> Result<serde_json::Value, FlowError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| FlowError::Report {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Yosys' `stat -json`: cells by type of the (flattened) top.
pub fn read_stat(path: &Path) -> Result<BTreeMap<String, u64>, FlowError> {
    let v = read_json(path)?;
    let cells = v
        .pointer("/design/num_cells_by_type")
        .and_then(|c| c.as_object())
        .ok_or_else(|| FlowError::Report {
            path: path.to_path_buf(),
            reason: "no design.num_cells_by_type".into(),
        })?;
    Ok(cells
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
        .collect())
}

/// nextpnr's `--report` JSON.
pub fn read_pnr(path: &Path, family: Family) -> Result<Placed, FlowError> {
    let v = read_json(path)?;
    let util = |cell: &str| {
        let u = v.pointer(&format!("/utilization/{cell}"));
        let get = |k: &str| {
            u.and_then(|u| u.get(k))
                .and_then(|x| x.as_u64())
                .unwrap_or(0)
        };
        (get("used"), get("available"))
    };
    let (logic, ram, dsp, io_cell) = match family {
        Family::Ice40 => ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "SB_IO"),
        _ => ("TRELLIS_COMB", "DP16KD", "MULT18X18D", "TRELLIS_IO"),
    };
    let fmax = v
        .get("fmax")
        .and_then(|f| f.as_object())
        .and_then(|clocks| {
            clocks
                .values()
                .filter_map(|c| c.get("achieved").and_then(|a| a.as_f64()))
                .reduce(f64::min)
        })
        .ok_or_else(|| FlowError::Report {
            path: path.to_path_buf(),
            reason: "no clock in fmax (is the design clocked?)".into(),
        })?;
    Ok(Placed {
        logic: util(logic),
        ram: util(ram),
        dsp: util(dsp),
        io: util(io_cell).0,
        fmax_mhz: fmax,
    })
}

/// nextpnr's "Device utilisation" lines (`ICESTORM_LC: 6465/ 5280 122%`) over 100 %.
fn placement_shortfalls(log: &Path) -> Vec<Shortfall> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("Info:").trim();
            let (cell, rest) = l.split_once(':')?;
            let (used, rest) = rest.split_once('/')?;
            let avail = rest.split_whitespace().next()?;
            let (used, avail): (u64, u64) = (used.trim().parse().ok()?, avail.parse().ok()?);
            (used > avail).then(|| Shortfall {
                resource: format!("placed {}", cell.trim()),
                needed: used,
                available: avail,
            })
        })
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run_step(
    dir: &Path,
    program: &Path,
    args: &[String],
    what: &'static str,
    log: PathBuf,
) -> Result<(), FlowError> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(io(program))?;
    if out.status.success() {
        return Ok(());
    }
    let mut t = tail(&log, 15);
    if t.is_empty() {
        t = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    Err(FlowError::ToolFailed {
        what,
        program: program.display().to_string(),
        status: out.status.code().map_or("signal".into(), |c| c.to_string()),
        log,
        tail: t,
    })
}

/// Runs `plan` in the design directory `dir`: synthesis, the fit check, place and route, the
/// bitstream. `progress` hears each step's name before it starts.
pub fn run(
    dir: &Path,
    plan: &Plan,
    manifest: &Manifest,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, FlowError> {
    run_with(dir, plan, manifest, progress, true)
}

/// As [`run`]; with `fail_if_too_big == false` a design that does not fit returns its
/// synthesis report (no placement, no bitstream) instead of an error.
pub fn run_with(
    dir: &Path,
    plan: &Plan,
    manifest: &Manifest,
    progress: &mut dyn FnMut(&str),
    fail_if_too_big: bool,
) -> Result<Report, FlowError> {
    let tools: Vec<PathBuf> = plan
        .steps
        .iter()
        .map(|s| find_tool(s.tool))
        .collect::<Result<_, _>>()?;
    let build = dir.join(&plan.build_dir);
    std::fs::create_dir_all(&build).map_err(io(&build))?;
    let d = plan.device;
    let budget = Resources {
        luts: d.logic,
        ffs: d.ffs,
        carries: 0,
        ram_blocks: d.ram_blocks,
        dsps: d.dsps,
    };
    let mut report = Report {
        name: plan.name.clone(),
        target: d.target.clone(),
        part: d.part.clone(),
        board: plan.board.map(|b| b.name.clone()),
        top: plan.top.clone(),
        cells: BTreeMap::new(),
        synthesised: Resources::default(),
        budget,
        placed: None,
        clock_mhz: plan.freq_mhz,
        cycles_per_image: manifest.cycles_per_image,
        images_per_s: None,
        bitstream: None,
        seconds: Vec::new(),
    };
    for (step, program) in plan.steps.iter().zip(&tools) {
        progress(step.what);
        let log = step
            .args
            .iter()
            .position(|a| a == "-l")
            .and_then(|i| step.args.get(i + 1))
            .map_or(build.join("tool.log"), |l| dir.join(l));
        let t0 = Instant::now();
        if let Err(e) = run_step(dir, program, &step.args, step.what, log.clone()) {
            // Placement reports what it ran out of: the same error as the pre-check.
            let short = placement_shortfalls(&log);
            if short.is_empty() || !fail_if_too_big {
                return Err(e);
            }
            return Err(FlowError::DoesNotFit {
                target: d.target.clone(),
                part: d.part.clone(),
                shortfalls: short,
            });
        }
        report
            .seconds
            .push((step.what.to_string(), t0.elapsed().as_secs_f64()));
        if step.tool == Tool::Yosys {
            let log = dir.join(&plan.build_dir).join("yosys.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("$dlatch") || text.contains("Latch inferred") {
                return Err(FlowError::Latch { log });
            }
            report.cells = read_stat(&dir.join(&plan.stat_file))?;
            report.synthesised = resources(d.family, &report.cells);
            let short = shortfalls(d, &report.synthesised);
            if !short.is_empty() && !fail_if_too_big {
                break;
            }
            if !short.is_empty() {
                return Err(FlowError::DoesNotFit {
                    target: d.target.clone(),
                    part: d.part.clone(),
                    shortfalls: short,
                });
            }
        }
        if matches!(step.tool, Tool::NextpnrIce40 | Tool::NextpnrEcp5) {
            let pnr = plan.pnr_report.as_ref().expect("a pnr step has a report");
            let placed = read_pnr(&dir.join(pnr), d.family)?;
            report.images_per_s =
                Some(placed.fmax_mhz * 1e6 / manifest.cycles_per_image.max(1) as f64);
            report.placed = Some(placed);
        }
    }
    if report.placed.is_some() || plan.pnr_report.is_none() {
        report.bitstream = plan.bitstream.clone();
    }
    let path = build.join("report.json");
    let mut json = serde_json::to_string_pretty(&report).expect("a report serialises");
    json.push('\n');
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(report)
}

/// A readable table of a report.
pub fn table(r: &Report) -> String {
    let pct = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
    let b = &r.budget;
    let s = &r.synthesised;
    let mut rows = vec![
        format!(
            "target      {} ({}){}",
            r.target,
            r.part,
            r.board
                .as_ref()
                .map_or(String::new(), |b| format!(", board {b}"))
        ),
        format!("top         {}", r.top),
        format!(
            "logic       {:>7} / {:<7} {:>5.1} %   (Yosys: {} LUT, {} carry)",
            r.placed.as_ref().map_or(s.luts, |p| p.logic.0),
            b.luts,
            r.logic_percent(),
            s.luts,
            s.carries
        ),
        format!(
            "flip-flops  {:>7} / {:<7} {:>5.1} %",
            s.ffs,
            b.ffs,
            pct(s.ffs, b.ffs)
        ),
        format!(
            "block RAM   {:>7} / {:<7} {:>5.1} %",
            s.ram_blocks,
            b.ram_blocks,
            pct(s.ram_blocks, b.ram_blocks)
        ),
        format!(
            "DSP         {:>7} / {:<7} {:>5.1} %",
            s.dsps,
            b.dsps,
            pct(s.dsps, b.dsps)
        ),
    ];
    match &r.placed {
        Some(p) => {
            rows.push(format!(
                "Fmax        {:.2} MHz (constraint {} MHz{})",
                p.fmax_mhz,
                r.clock_mhz,
                if r.board.is_some() && p.fmax_mhz < r.clock_mhz {
                    ": NOT MET"
                } else {
                    ""
                }
            ));
            rows.push(format!(
                "throughput  {:.0} images/s ({} cycles per image at Fmax)",
                r.images_per_s.unwrap_or(0.0),
                r.cycles_per_image
            ));
        }
        None => rows.push("Fmax        (no place and route for this target)".into()),
    }
    if let Some(bit) = &r.bitstream {
        rows.push(format!("bitstream   {bit}"));
    }
    rows.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_count_per_family() {
        let cells: BTreeMap<String, u64> = [
            ("SB_LUT4", 100),
            ("SB_DFFE", 7),
            ("SB_DFFSR", 3),
            ("SB_CARRY", 20),
            ("SB_RAM40_4K", 2),
        ]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
        let r = resources(Family::Ice40, &cells);
        assert_eq!((r.luts, r.ffs, r.carries, r.ram_blocks), (100, 10, 20, 2));
        let cells: BTreeMap<String, u64> = [("LUT4", 10), ("CCU2C", 5), ("TRELLIS_FF", 4)]
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        let r = resources(Family::Ecp5, &cells);
        assert_eq!((r.luts, r.ffs, r.carries), (20, 4, 5));
    }

    #[test]
    fn placement_failures_read_as_shortfalls() {
        let dir = std::env::temp_dir().join(format!("sf-flow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("nextpnr.log");
        std::fs::write(
            &log,
            "Info: Device utilisation:\nInfo: \t         ICESTORM_LC:  6465/ 5280   122%\nInfo: \t        ICESTORM_RAM:     2/   30     6%\nERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'\n",
        )
        .unwrap();
        let s = placement_shortfalls(&log);
        assert_eq!(
            s,
            vec![Shortfall {
                resource: "placed ICESTORM_LC".into(),
                needed: 6465,
                available: 5280
            }]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shortfall_message_says_by_how_much() {
        let d = spikeforge_constraints::device("ice40-up5k").unwrap();
        let r = Resources {
            luts: 17259,
            ram_blocks: 11,
            ..Default::default()
        };
        let s = shortfalls(d, &r);
        assert_eq!(s.len(), 1);
        let msg = fit_message(&d.target, &d.part, &s);
        assert!(msg.contains("17259 of 5280"), "{msg}");
        assert!(msg.contains("3.3x"), "{msg}");
        assert!(msg.contains("11979 over"), "{msg}");
    }
}
