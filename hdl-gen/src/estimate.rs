//! Pre-synthesis estimates: logic, flip-flops and block RAM of a design on a device family,
//! from the same layer contexts the generator uses, in seconds instead of Yosys' minutes.
//!
//! The model counts what the generator builds: window-unit buffers (block RAM), synapse
//! lanes at their per-kind cost, pipeline registers, neuron arithmetic, ROMs (block RAM when
//! deep enough, else logic). Its coefficients are fitted to `synth_ice40` on reference designs; the
//! `bench flow` command reports its error against Yosys and nextpnr.

use serde::Serialize;
use spikeforge_constraints::{Device, Family};
use spikeforge_model::geometry::model_geometry;
use spikeforge_model::ir::{Model, Neuron};
use spikeforge_model::widths;

use crate::fold::{self, Folding};
use crate::lanes::{lane_kind, LaneKind};
use crate::rtl::LayerCtx;
use crate::swg::SwgShape;

/// Estimated resources of one part of a design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Estimate {
    /// Logic (LUT4; LUT6 on 7-series).
    pub luts: f64,
    /// Flip-flops.
    pub ffs: f64,
    /// Block RAMs of the family.
    pub ram_blocks: f64,
    /// Bits held in block RAM.
    pub ram_bits: f64,
}

impl std::ops::AddAssign for Estimate {
    fn add_assign(&mut self, o: Self) {
        self.luts += o.luts;
        self.ffs += o.ffs;
        self.ram_blocks += o.ram_blocks;
        self.ram_bits += o.ram_bits;
    }
}

/// The estimate of a whole design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignEstimate {
    /// Per layer: name and estimate.
    pub layers: Vec<(String, Estimate)>,
    /// Head and UART shell.
    pub rest: Estimate,
    /// Sum.
    pub total: Estimate,
    /// Cycles per image.
    pub cycles_per_image: u64,
}

/// Block RAM `(width, depth)` shapes of a family.
fn ram_shapes(f: Family) -> &'static [(u64, u64)] {
    match f {
        Family::Ice40 => &[(16, 256), (8, 512), (4, 1024), (2, 2048)],
        Family::Ecp5 | Family::Xilinx => &[
            (36, 512),
            (18, 1024),
            (9, 2048),
            (4, 4096),
            (2, 8192),
            (1, 16384),
        ],
    }
}

/// Blocks a `width × depth` memory needs in its cheapest shape.
pub fn ram_blocks(f: Family, width: u64, depth: u64) -> u64 {
    ram_shapes(f)
        .iter()
        .map(|(w, d)| width.div_ceil(*w) * depth.div_ceil(*d))
        .min()
        .unwrap_or(0)
}

/// A read-only or read-write memory: block RAM when it is deep enough to be worth one,
/// else logic (a LUT4 holds 16 bits of one output).
fn memory(f: Family, width: u64, depth: u64) -> Estimate {
    if depth <= 1 {
        return Estimate::default(); // a constant
    }
    if depth >= 32 {
        Estimate {
            ram_blocks: ram_blocks(f, width, depth) as f64,
            ram_bits: (width * depth) as f64,
            ..Default::default()
        }
    } else {
        Estimate {
            luts: (width * depth.div_ceil(16)) as f64 * 1.5,
            ..Default::default()
        }
    }
}

/// The window unit: one buffer RAM, address arithmetic, a registered read.
fn front(ctx: &LayerCtx, f: Family) -> Estimate {
    let s = SwgShape::of(ctx);
    let word = s.word as f64;
    let mut e = Estimate {
        luts: 150.0 + word,
        ffs: 80.0 + 2.0 * word,
        ..Default::default()
    };
    e += memory(f, s.word as u64, s.depth() as u64);
    e
}

/// LUT4 per synapse lane of each kind (HARDWARE.md §2: about 3 per bit-product, streamed
/// weights, trees registered every two levels).
fn lane_luts(ctx: &LayerCtx) -> f64 {
    let (xb, wb) = (ctx.geo.input_bits as f64, ctx.weight_bits() as f64);
    match lane_kind(ctx) {
        LaneKind::BinarySpike => 4.2,
        LaneKind::BinaryUnsigned => 3.6 * xb,
        LaneKind::BinaryTernary => 4.5,
        LaneKind::BinarySigned => 3.8 * xb,
        LaneKind::IntegerSpike => 2.6 * wb,
        LaneKind::IntegerUnsigned => 3.0 * xb * wb,
        LaneKind::IntegerTernary => 2.8 * wb + 2.0,
        LaneKind::IntegerSigned => 3.2 * xb * wb,
    }
}

fn mvu(ctx: &LayerCtx, f: Family) -> Estimate {
    let g = &ctx.geo;
    let (pe, simd) = (ctx.fold.pe as f64, ctx.fold.simd as f64);
    let steps = g.input_steps as f64;
    let (aw, vw) = (ctx.acc_bits() as f64, ctx.value_bits() as f64);
    let wb = ctx.weight_bits() as f64;
    let lanes = pe * steps * simd;
    let neuron = match ctx.layer.neuron {
        Neuron::Lif(_) => 4.0 * vw + aw,
        // Double and add, clamp (two compares), two threshold compares, reset add.
        Neuron::Tsa(_) => 8.0 * vw + aw,
        Neuron::None { .. } | Neuron::TsaReadout { .. } => 2.0 * vw + aw,
    };
    let shared = if ctx.layer.is_binary() {
        steps * simd * g.input_bits as f64
    } else {
        0.0
    };
    let mut e = Estimate {
        luts: lanes * lane_luts(ctx) + shared + pe * steps * 2.0 * aw + pe * neuron + 80.0,
        ffs: ctx.in_word_bits() as f64
            + pe * simd * wb
            + lanes * 1.5
            + pe * steps * 3.0 * aw
            + pe * ctx.lane_param_bits() as f64
            + ctx.group_bits() as f64
            + 60.0,
        ..Default::default()
    };
    let (nf, sf) = (ctx.nf() as u64, ctx.sf() as u64);
    e += memory(f, (pe * simd * wb) as u64, nf * sf);
    e += memory(f, ctx.fold.pe as u64 * ctx.lane_param_bits() as u64, nf);
    e
}

fn pool(ctx: &LayerCtx, f: Family) -> Estimate {
    let fields = (ctx.out_steps() * ctx.fold.pe * ctx.neuron_bits()) as f64;
    let pairs = ctx.geo.synaptic.width.div_ceil(2) as u64 * ctx.nf() as u64;
    let mut e = Estimate {
        luts: 40.0 + 3.0 * fields,
        ffs: 30.0 + 3.0 * fields,
        ..Default::default()
    };
    e += memory(f, (fields * 1.5) as u64, pairs);
    e
}

/// Estimates a validated model's design with `folding` on a device family.
pub fn estimate(model: &Model, folding: &Folding, family: Family) -> DesignEstimate {
    let w = widths::analyse(model).expect("a validated model has widths");
    let geo = model_geometry(model);
    let mut layers = Vec::new();
    let mut total = Estimate::default();
    for ctx in LayerCtx::all(model, folding, &geo, &w) {
        let mut e = front(&ctx, family);
        e += mvu(&ctx, family);
        if ctx.layer.pool.is_some() {
            e += pool(&ctx, family);
        }
        total += e;
        layers.push((ctx.layer.name.clone(), e));
    }
    let classes = w.classes as f64;
    let logit = w.logit_bits() as f64;
    let image_bytes = (geo[0].input.positions() as u64) * model.input.channels as u64;
    let mut rest = Estimate {
        luts: classes * logit * 3.0 + 130.0,
        ffs: classes * logit + 125.0,
        ..Default::default()
    };
    rest += memory(family, 8, image_bytes.next_power_of_two());
    total += rest;
    if family == Family::Xilinx {
        // A LUT6 holds about 1.6 LUT4s of this logic.
        total.luts /= 1.6;
    }
    DesignEstimate {
        layers,
        rest,
        total,
        cycles_per_image: fold::pipeline_cycles(model, folding),
    }
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
        let e = estimate(model, &folding, device.family);
        let fits = e.total.luts * calibration <= fill * device.logic as f64
            && e.total.ffs <= fill * device.ffs as f64
            && e.total.ram_blocks <= device.ram_blocks as f64;
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
        args.push(format!("--fold {}={},{}", l.name, f.pe, f.simd));
    }
    args.join(" ")
}
