//! Pre-synthesis estimates: logic, flip-flops and block RAM of a design on a device family,
//! in milliseconds instead of Yosys' minutes.
//!
//! The estimate builds the design's modules exactly as `gen` does, counts their operators on
//! the typed AST ([`crate::cost`]), and weighs them with per-family coefficients fitted to
//! Yosys 0.23 (`spikeforge bench --estimate`, data in docs/calibration/). Memories are placed
//! by the same cost search Yosys' `memory_libmap` runs ([`crate::memmap`]), after dropping the
//! ROM bit lanes that are constant, as Yosys' `opt_mem` does; so block RAM counts are exact.

use serde::Serialize;
use spikeforge_constraints::{Device, Family};
use spikeforge_model::ir::Model;

use std::collections::BTreeMap;

use crate::cost::{self, Counts};
use crate::fold::{self, Folding};
use crate::memmap::{self, Mapped};

/// Estimated resources of one part of a design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Estimate {
    /// Logic (LUT4; LUT6 on 7-series).
    pub luts: f64,
    /// Logic cells as the device counts them (its `logic`): the LUTs, and on iCE40 also the
    /// flip-flops that cannot share a logic cell with a LUT ([`ICE40_UNPACKED_FF`]).
    pub cells: f64,
    /// Flip-flops.
    pub ffs: f64,
    /// Block RAMs of the family.
    pub ram_blocks: f64,
    /// Bits held in block RAM.
    pub ram_bits: f64,
    /// DSP blocks (ECP5 `MULT18X18D`, iCE40 `SB_MAC16`).
    pub dsps: f64,
}

impl std::ops::AddAssign for Estimate {
    fn add_assign(&mut self, o: Self) {
        self.luts += o.luts;
        self.cells += o.cells;
        self.ffs += o.ffs;
        self.ram_blocks += o.ram_blocks;
        self.ram_bits += o.ram_bits;
        self.dsps += o.dsps;
    }
}

/// One module's estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleEstimate {
    /// Module name, as generated.
    pub module: String,
    /// The operator counts it was weighed from.
    pub counts: Counts,
    /// Where its memories go.
    pub memories: MemoryUse,
    /// Estimate.
    pub estimate: Estimate,
}

/// The estimate of a whole design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignEstimate {
    /// Every module (layers' modules, head, core, top, UART shell).
    pub modules: Vec<ModuleEstimate>,
    /// Per layer: name and the sum of its modules.
    pub layers: Vec<(String, Estimate)>,
    /// The network without the UART shell (the `top` module and below).
    pub network: Estimate,
    /// Everything, UART shell included (what `synth` places).
    pub total: Estimate,
    /// Cycles per image.
    pub cycles_per_image: u64,
}

/// The share of the estimated flip-flops that take an iCE40 logic cell of their own: a
/// register fed by a block RAM, a DSP, another register or a carry-only cell cannot pack with
/// a LUT. Fitted to nextpnr-ice40 placements (`ICESTORM_LC` − `SB_LUT4` against the estimated
/// flip-flops, docs/calibration/ice40-cells.txt).
pub const ICE40_UNPACKED_FF: f64 = 0.5;

/// Per-family weights of the operator counts (LUT4 per bit), fitted by non-negative least
/// squares to the per-module Yosys 0.23 cells of the `bench --estimate` designs (residuals
/// weighted by 1/√LUT4; docs/results.md has the fit's error per design).
struct Weights {
    add: f64,
    /// Extra per bit of an adder fed directly by another (a carry-save `$macc` on ECP5).
    merged_add: f64,
    cmp: f64,
    eq: f64,
    mux: f64,
    logic: f64,
    /// Per bit of a ROM built from logic.
    rom_bit: f64,
    /// Per bit of a RAM built from flip-flops (write decode and read multiplexer).
    ram_bit: f64,
    /// Per module of each kind: control logic the operator counts do not see (the head's
    /// argmax and output register, the MVU's enable and valid chain).
    base: fn(ModuleKind) -> f64,
    /// Flattened synthesis shares logic across module boundaries: the flat design was
    /// this fraction of its modules' sum.
    flatten: f64,
}

/// What a generated module is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModuleKind {
    Window,
    Mvu,
    Pool,
    Converter,
    Head,
    /// Core, top, UART shell.
    Glue,
}

fn module_kind(name: &str) -> ModuleKind {
    let last = name.rsplit('_').next().unwrap_or("");
    match last {
        "swg" => ModuleKind::Window,
        "mvu" => ModuleKind::Mvu,
        "pool" => ModuleKind::Pool,
        "head" => ModuleKind::Head,
        "reorder" => ModuleKind::Converter,
        l if l.starts_with("dwc") => ModuleKind::Converter,
        _ => ModuleKind::Glue,
    }
}

fn weights(f: Family) -> Weights {
    match f {
        Family::Ice40 | Family::Xilinx => Weights {
            add: 0.353,
            // The fit gives carry-save sums no extra cost on iCE40.
            merged_add: 0.0,
            cmp: 1.038,
            eq: 0.036,
            mux: 0.672,
            logic: 2.133,
            // The fitted designs' logic ROMs are shallow weight and parameter ROMs whose bits
            // merge into the lanes' LUTs, and their logic RAMs are a few pool registers.
            rom_bit: 0.0,
            ram_bit: 0.0,
            base: |k| match k {
                ModuleKind::Window => 0.0,
                ModuleKind::Mvu => 18.5,
                ModuleKind::Pool => 28.1,
                ModuleKind::Converter => 3.3,
                ModuleKind::Head => 8.0,
                ModuleKind::Glue => 2.1,
            },
            flatten: 0.992,
        },
        Family::Ecp5 => Weights {
            // Refit with the carry-save feature (2026-12-07): the MLP's binary-on-pixels
            // lanes are 4-term sums per register rank, which Yosys builds from LUT full adders.
            add: 1.003,
            merged_add: 0.436,
            cmp: 0.0,
            eq: 0.399,
            mux: 0.127,
            logic: 0.813,
            rom_bit: 0.067,
            ram_bit: 1.0,
            base: |k| match k {
                ModuleKind::Window => 0.0,
                ModuleKind::Mvu => 90.8,
                ModuleKind::Pool => 8.9,
                ModuleKind::Converter => 1.6,
                ModuleKind::Head => 0.0,
                ModuleKind::Glue => 0.3,
            },
            flatten: 0.980,
        },
    }
}

/// The bits of a ROM image's words that are not the same in every word (`opt_mem` removes
/// the others).
fn varying_bits(image: &str) -> u32 {
    let mut lines = image.lines().filter(|l| !l.trim().is_empty());
    let Some(first) = lines.next() else { return 0 };
    let first: Vec<u8> = first.bytes().map(hex_value).collect();
    let mut differ = vec![0u8; first.len()];
    for l in lines {
        for ((d, a), b) in differ.iter_mut().zip(&first).zip(l.bytes()) {
            *d |= a ^ hex_value(b);
        }
    }
    differ.iter().map(|d| d.count_ones()).sum()
}

fn hex_value(c: u8) -> u8 {
    (c as char).to_digit(16).unwrap_or(0) as u8
}

/// Where a module's memories go, in the quantities the weights apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemoryUse {
    /// Bits of ROMs built from logic (after constant lanes are dropped).
    pub rom_logic_bits: f64,
    /// Bits of RAMs built from flip-flops.
    pub ram_logic_bits: f64,
    /// ECP5 `TRELLIS_DPR16X4` cells.
    pub distributed_cells: f64,
    /// Read-multiplexer bits over distributed cells stacked in depth.
    pub distributed_mux: f64,
    /// Block RAM cells.
    pub blocks: f64,
    /// Bits held in block RAM.
    pub block_bits: f64,
}

/// Places a module's memories as Yosys would ([`memmap::map`]); ROM widths after `opt_mem`
/// drops the bit lanes that are constant in the image (`files`).
fn memories(f: Family, c: &Counts, files: &BTreeMap<String, String>) -> MemoryUse {
    let mut u = MemoryUse::default();
    for mem in &c.mems {
        let width = match (&mem.init, mem.written) {
            (Some(file), false) => files.get(file).map_or(mem.width, |img| varying_bits(img)),
            _ => mem.width,
        };
        let bits = width as f64 * mem.depth as f64;
        match memmap::map_with(f, width, mem.depth, mem.written, mem.block_ram) {
            Mapped::Logic if mem.written => u.ram_logic_bits += bits,
            Mapped::Logic => u.rom_logic_bits += bits,
            Mapped::Block(n) => {
                u.blocks += n as f64;
                u.block_bits += bits;
            }
            Mapped::Distributed(n) => {
                u.distributed_cells += n as f64;
                u.distributed_mux += (mem.depth as f64 / 16.0 - 1.0).max(0.0) * width as f64;
            }
        }
    }
    u
}

/// A module's estimate from its operator counts and memories.
fn weigh(f: Family, kind: ModuleKind, c: &Counts, mem: &MemoryUse) -> Estimate {
    let w = weights(f);
    // One DSP block per product up to its multiplier's width (18 × 18 on ECP5, 16 × 16 on
    // iCE40, 25 × 18 on 7-series), four beyond.
    let fits = match f {
        Family::Ice40 => 16,
        Family::Ecp5 => 18,
        Family::Xilinx => 25,
    };
    let dsps = c
        .products
        .iter()
        .map(|&pw| if pw <= fits { 1.0 } else { 4.0 })
        .sum();
    let luts = w.flatten
        * ((w.base)(kind)
                + w.add * c.add
                + w.merged_add * c.merged_add
                + w.cmp * c.cmp
                + w.eq * c.eq
                + w.mux * (c.mux + mem.distributed_mux)
                + w.logic * c.logic
                + w.rom_bit * mem.rom_logic_bits
                + w.ram_bit * mem.ram_logic_bits
                // Each TRELLIS_DPR16X4 counts as two LUT4 (`spikeforge synth`).
                + 2.0 * mem.distributed_cells);
    let ffs = c.ff + mem.ram_logic_bits;
    let cells = match f {
        Family::Ice40 => luts + ICE40_UNPACKED_FF * ffs,
        Family::Ecp5 | Family::Xilinx => luts,
    };
    Estimate {
        luts,
        cells,
        ffs,
        ram_blocks: mem.blocks,
        ram_bits: mem.block_bits,
        dsps,
    }
}

/// Estimates a validated model's design with `folding` on a device family; a model the
/// generator cannot build (see [`crate::build`]) is its error.
pub fn estimate(
    model: &Model,
    folding: &Folding,
    family: Family,
) -> Result<DesignEstimate, crate::GenError> {
    let built = crate::build(model, folding)?;
    let names = crate::names::Names::new(model);
    let shell = [
        names.uart_shell(),
        names.uart_rx(),
        names.uart_tx(),
        names.byte_fifo(),
    ];
    let modules: Vec<ModuleEstimate> = built
        .modules
        .iter()
        .map(|m| {
            let counts = cost::count(m);
            let memories = memories(family, &counts, &built.files);
            let mut estimate = weigh(family, module_kind(&m.name), &counts, &memories);
            if family == Family::Xilinx {
                // A LUT6 holds about 1.6 LUT4s of this logic.
                estimate.luts /= 1.6;
                estimate.cells /= 1.6;
            }
            ModuleEstimate {
                module: m.name.clone(),
                counts,
                memories,
                estimate,
            }
        })
        .collect();
    let mut network = Estimate::default();
    let mut total = Estimate::default();
    for m in &modules {
        total += m.estimate;
        if !shell.contains(&m.module) {
            network += m.estimate;
        }
    }
    let layers = model
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let prefix = names.layer_module(i, "");
            let mut e = Estimate::default();
            for m in modules.iter().filter(|m| m.module.starts_with(&prefix)) {
                e += m.estimate;
            }
            (l.name.clone(), e)
        })
        .collect();
    Ok(DesignEstimate {
        modules,
        layers,
        network,
        total,
        cycles_per_image: fold::pipeline_cycles(model, folding),
    })
}

/// The fastest folding whose estimate, scaled by `calibration` (measured / estimated logic
/// of a design already synthesised; 1.0 without one), fills at most `fill` of the device's
/// logic and fits its block RAM. Foldings are tried at 1×, 2×, 4×, … the default cycles.
pub fn fitting_folding(
    model: &Model,
    device: &Device,
    fill: f64,
    calibration: f64,
) -> Option<(Folding, DesignEstimate)> {
    let base = fold::pipeline_cycles(model, &fold::resolve(model, &[]).ok()?);
    let slowest = fold::slowest_cycles(model);
    let mut target = base;
    loop {
        let folding = fold::for_cycles(model, target);
        let e = estimate(model, &folding, device.family).ok()?;
        let fits = e.total.cells * calibration <= fill * device.logic as f64
            && e.total.ffs <= fill * device.ffs as f64
            && e.total.ram_blocks <= device.ram_blocks as f64
            && e.total.dsps <= device.dsps as f64;
        if fits {
            return Some((folding, e));
        }
        if target >= slowest {
            return None;
        }
        target = (target * 2).min(slowest);
    }
}

/// `--fold` arguments that reproduce `folding`.
pub fn fold_args(model: &Model, folding: &Folding) -> String {
    let mut args = vec![format!("--fold input={}", folding.pixels_per_beat)];
    for (l, f) in model.layers.iter().zip(&folding.layers) {
        args.push(format!("--fold {}={}", l.name, f.spec()));
    }
    if folding.tree_levels != fold::DEFAULT_TREE_LEVELS {
        args.push(format!("--fold tree={}", folding.tree_levels));
    }
    if folding.block_weights {
        args.push("--fold weights=bram".into());
    }
    if folding.operand_regs {
        args.push("--fold regs=on".into());
    }
    match (folding.dsp, folding.dsp_limit) {
        (true, Some(n)) => args.push(format!("--fold dsp={n}")),
        (true, None) => args.push("--fold dsp=on".into()),
        (false, _) => {}
    }
    args.join(" ")
}
