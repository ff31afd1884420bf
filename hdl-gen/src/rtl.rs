//! What every module generator shares: the per-layer context ([`LayerCtx`]) with the widths
//! and beat shapes derived from the model and the folding, and small AST helpers (extensions,
//! counters, constant multiplies, ROM loading, stream ports).
//!
//! Stream convention between modules: `*_valid`, `*_ready`, `*_data`; a beat moves when
//! valid && ready. A beat carries `G` elements (one position and channel, or for a dense layer's
//! input consecutive values of the flattened map) with all their steps, step-major: element
//! `e` of step `s` at bits `[(s·G + e)·B +: B]` (docs/hardware.md). The window unit's words
//! walk a window in `j = (ky·k + kx)·Cin + cin` order (dense: `j = (y·W + x)·Cin + cin`),
//! `SIMD` consecutive `j` per word, matching the IR's weight order.

use spikeforge_model::geometry::{bits_unsigned, output_range, value_bits, LayerGeometry};
use spikeforge_model::ir::{Layer, Neuron};
use spikeforge_model::widths::LayerWidths;

use crate::fold::LayerFold;
use crate::names;
use crate::vlog::*;

/// Everything the generator needs to know about one layer.
pub struct LayerCtx<'a> {
    /// Index in the model.
    pub index: usize,
    /// The layer.
    pub layer: &'a Layer,
    /// Its geometry.
    pub geo: LayerGeometry,
    /// Its widths.
    pub widths: &'a LayerWidths,
    /// Its folding.
    pub fold: LayerFold,
    /// Time steps of the model.
    pub steps: u32,
    /// Adder-tree levels between register ranks in the MVU.
    pub tree_levels: u32,
    /// PE lanes `0..dsp_lanes` compute multi-bit × multi-bit synapses as multiplier products
    /// (DSP blocks), the others as shift-and-add LUT lanes.
    pub dsp_lanes: u32,
    /// The weight ROM in block RAM whatever its shape.
    pub block_weights: bool,
    /// Register ranks after the weight-ROM read and on the DSP multipliers' operands and
    /// products; see [`LayerCtx::register_rich`] for what else goes with them.
    pub operand_regs: bool,
}

impl<'a> LayerCtx<'a> {
    /// The register-rich style of `--fold regs=on` (chosen for ECP5, whose flip-flops and
    /// small RAMs are cheap): operand registers after the weight-ROM read and on the DSP
    /// operands and products; a free-running MVU pipeline whose finished folds queue for the
    /// neuron stage, the input admitted by credits ([`crate::accumulate`]), instead of one
    /// stall enable fanned out to every pipeline register; and TSA steps whose current's sums
    /// are registered a cycle ahead ([`crate::neuron::Ahead`]). All for Fmax; the cycles per
    /// image stay the same.
    pub fn register_rich(&self) -> bool {
        self.operand_regs
    }

    /// One context per layer of `model` with `folding`, from its geometry and widths.
    pub fn all(
        model: &'a spikeforge_model::Model,
        folding: &crate::fold::Folding,
        geo: &[LayerGeometry],
        widths: &'a spikeforge_model::widths::Widths,
    ) -> Vec<LayerCtx<'a>> {
        let tree_levels = folding.tree_levels;
        let mut ctxs: Vec<LayerCtx> = model
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| LayerCtx {
                index: i,
                layer,
                geo: geo[i],
                widths: &widths.layers[i],
                fold: folding.layers[i],
                steps: model.time_steps,
                tree_levels,
                dsp_lanes: 0,
                block_weights: folding.block_weights,
                operand_regs: folding.operand_regs,
            })
            .collect();
        if folding.dsp {
            // The DSP budget goes to the layers with the most products per cycle first (their
            // lanes dominate the logic), whole lanes (SIMD × steps × MMV products, two to a
            // multiplier where they pack).
            let mut left = folding.dsp_limit.map_or(u64::MAX, u64::from);
            let mut order: Vec<usize> = (0..ctxs.len())
                .filter(|&i| crate::lanes::has_products(&ctxs[i]))
                .collect();
            let products = |c: &LayerCtx| {
                c.fold.pe as u64 * c.fold.simd as u64 * c.geo.input_steps as u64 * c.fold.mmv as u64
            };
            order.sort_by_key(|&i| std::cmp::Reverse(products(&ctxs[i])));
            for i in order {
                let ctx = &mut ctxs[i];
                let per_lane = crate::packed::multipliers_per_lane(ctx) as u64;
                let lanes = (left / per_lane).min(ctx.fold.pe as u64);
                ctx.dsp_lanes = lanes as u32;
                left -= lanes * per_lane;
            }
        }
        ctxs
    }
}

/// Index width for a memory or vector of `n` entries (Verilator expects `max(1, ⌈log2 n⌉)`).
pub fn index_bits(n: u64) -> u32 {
    bits_unsigned(n.saturating_sub(1))
}

/// Zero-extends `e` from `from` to `to` bits (`to ≥ from`).
pub(crate) fn zext(e: Expr, from: u32, to: u32) -> Expr {
    assert!(to >= from, "zext narrows {from} -> {to}");
    if to == from {
        e
    } else {
        cat(vec![lit(to - from, 0), e])
    }
}

/// `e` as an unsigned `to`-bit value: zero-extended, or its low bits.
pub(crate) fn resize(e: Expr, from: u32, to: u32) -> Expr {
    if to >= from {
        zext(e, from, to)
    } else {
        e.slice(to - 1, 0)
    }
}

/// Bit `k` of `e` without selecting from a select (which Verilog-2005 forbids).
fn bit_of(e: &Expr, k: u32) -> Expr {
    match e {
        Expr::Slice(base, _, lsb) => (**base).clone().bit(lsb + k),
        Expr::Part(base, at, _) => (**base)
            .clone()
            .idx((**at).clone().add(Expr::Int(k as i64))),
        Expr::Id(_) => e.clone().bit(k),
        other => panic!("bit_of on a compound expression: {other:?}"),
    }
}

/// `e` as a `to`-bit two's-complement value: sign-extended, or its low bits (the arithmetic
/// is modular and the analysed ranges guarantee the true value fits).
pub(crate) fn fit(e: Expr, from: u32, to: u32) -> Expr {
    if to >= from {
        sext(e, from, to)
    } else {
        e.slice(to - 1, 0)
    }
}

/// Sign-extends `e` (a name or a select) from `from` to `to` bits (`to ≥ from`).
pub(crate) fn sext(e: Expr, from: u32, to: u32) -> Expr {
    assert!(to >= from, "sext narrows {from} -> {to}");
    if to == from {
        e
    } else {
        cat(vec![
            Expr::Repl(to - from, Box::new(bit_of(&e, from - 1))),
            e,
        ])
    }
}

/// `e · k` (`e` a name or select of `width` bits, the product taken in `width` bits) as a sum
/// of shifted copies of `e`, one per set bit of `k`: address arithmetic stays in LUTs and
/// carry chains (Yosys maps a `*` by a constant to a DSP block on ECP5).
pub(crate) fn mul_const(e: Expr, width: u32, k: u64) -> Expr {
    let terms: Vec<Expr> = (0..width.min(63))
        .filter(|b| (k >> b) & 1 == 1)
        .map(|b| {
            if b == 0 {
                e.clone()
            } else {
                e.clone().shl(Expr::Int(b as i64))
            }
        })
        .collect();
    terms
        .into_iter()
        .reduce(|a, b| a.add(b))
        .unwrap_or(lit(width, 0))
}

/// `$readmemh({ROM_DIR, file}, mem)`: the directory parameter ends in `/` (default `./`, so
/// that Icarus, which rejects the NUL byte an empty string contributes, reads it too).
pub(crate) fn rom_load(file: &str, mem: &Expr) -> Stmt {
    Stmt::Task(
        "$readmemh".into(),
        vec![
            cat(vec![id("ROM_DIR"), Expr::Str(file.into())]),
            mem.clone(),
        ],
    )
}

/// A counter over `n` values, `None` when `n == 1`.
pub(crate) fn counter(m: &mut Module, name: &str, n: u32) -> Option<(Expr, u32)> {
    (n > 1).then(|| {
        let w = index_bits(n as u64);
        (m.reg(name, w), w)
    })
}

/// `counter == n − 1` (always true without a counter).
pub(crate) fn at_last(c: &Option<(Expr, u32)>, n: u32) -> Expr {
    match c {
        Some((r, w)) => r.clone().eq(lit(*w, (n - 1) as u64)),
        None => one(),
    }
}

/// `counter == 0` (always true without a counter).
pub(crate) fn at_first(c: &Option<(Expr, u32)>) -> Expr {
    match c {
        Some((r, w)) => r.clone().eq(lit(*w, 0)),
        None => one(),
    }
}

/// Steps `c`, wrapping after `n − 1`.
pub(crate) fn step_counter(c: &Option<(Expr, u32)>, n: u32) -> Option<Stmt> {
    c.as_ref().map(|(r, w)| {
        Stmt::Nb(
            r.clone(),
            r.clone()
                .eq(lit(*w, (n - 1) as u64))
                .cond(lit(*w, 0), r.clone().add(lit(*w, 1))),
        )
    })
}

/// The clocked process of a module with a registered output (`out_valid`, `out_data`): on
/// reset `reset`; otherwise a beat the consumer takes clears `out_valid`, then `body` runs
/// (and may set it again for the next beat).
pub(crate) fn output_process(reset: Vec<Stmt>, body: Vec<Stmt>) -> Stmt {
    let mut run = vec![when(
        id("out_valid").and(id("out_ready")),
        vec![Stmt::Nb(id("out_valid"), zero())],
    )];
    run.extend(body);
    Stmt::If(id(names::RST), reset, run)
}

pub(crate) fn stream_ports(m: &mut Module, in_w: u32, out_w: u32, out_reg: bool) {
    m.input(names::CLK, 1);
    m.input(names::RST, 1);
    m.input("in_valid", 1);
    m.output("in_ready", 1);
    m.input("in_data", in_w);
    if out_reg {
        m.output_reg("out_valid", 1);
    } else {
        m.output("out_valid", 1);
    }
    m.input("out_ready", 1);
    if out_reg {
        m.output_reg("out_data", out_w);
    } else {
        m.output("out_data", out_w);
    }
}

impl LayerCtx<'_> {
    /// Bits of one word of one output position's window: `SIMD` inputs × input steps ×
    /// value bits, `[step][input]`.
    pub fn position_word_bits(&self) -> u32 {
        self.geo.input_steps * self.fold.simd * self.geo.input_bits
    }
    /// Bits of the window unit's output beat (the MVU's input beat): `MMV` positions' words,
    /// position `j` at `[j·word +: word]`.
    pub fn in_word_bits(&self) -> u32 {
        self.fold.mmv * self.position_word_bits()
    }
    /// Neurons the MVU computes at once: `PE` channels of `MMV` positions, lane `j·PE + p`.
    pub fn mvu_lanes(&self) -> u32 {
        self.fold.mmv * self.fold.pe
    }
    /// Bits of one output beat of a position: `PE` channels × output steps × neuron bits.
    pub fn group_bits(&self) -> u32 {
        self.out_steps() * self.fold.pe * self.neuron_bits()
    }
    /// Bits of one MVU output beat: its [`Self::mvu_lanes`] × output steps × neuron bits,
    /// `[step][lane]` (the reorder unit makes `MMV > 1` beats one position's again).
    pub fn mvu_out_bits(&self) -> u32 {
        self.fold.mmv * self.group_bits()
    }
    /// Input groups of `SIMD` channels per input position (conv); 1 for dense layers, whose
    /// window unit sees the flattened input as one row of `N/SIMD` words.
    pub fn in_groups(&self) -> u32 {
        match self.layer.synapse {
            spikeforge_model::ir::Synapse::Conv { .. } => self.geo.input.channels / self.fold.simd,
            spikeforge_model::ir::Synapse::Dense { .. } => 1,
        }
    }
    /// Cycles the MVU spends per output position: `NF` folds of `max(SF, local steps)`
    /// (the neuron stage runs a fold's local steps while the next fold accumulates).
    pub fn position_cycles(&self) -> u64 {
        self.nf() as u64 * (self.sf() as u64).max(self.geo.local_steps as u64)
    }
    /// Bits of one value leaving the neuron (before pooling): a spike (1 bit binary, 2 bits
    /// ternary) or a signed value.
    pub fn neuron_bits(&self) -> u32 {
        match self.layer.neuron {
            Neuron::Lif(_) => 1,
            Neuron::Tsa(_) => 2,
            Neuron::None { .. } | Neuron::TsaReadout { .. } => self.widths.output_bits(),
        }
    }
    /// Bits of one value on the layer's output stream (after pooling).
    pub fn out_value_bits(&self) -> u32 {
        match self.layer.pool {
            Some(_) => {
                let (lo, hi) = output_range(self.layer);
                value_bits(lo, hi)
            }
            None => self.neuron_bits(),
        }
    }
    /// Whether values on the output stream are two's complement.
    pub fn out_signed(&self) -> bool {
        self.widths.output_signed
    }
    /// Steps per output position: `T`, or one for the TSA readout (its final membrane).
    pub fn out_steps(&self) -> u32 {
        match self.layer.neuron {
            Neuron::TsaReadout { .. } => 1,
            Neuron::Lif(_) | Neuron::Tsa(_) | Neuron::None { .. } => self.steps,
        }
    }
    /// Bits of one beat of the layer's output stream (after pooling): `PE` channels × output
    /// steps × value bits.
    pub fn out_beat_bits(&self) -> u32 {
        self.out_steps() * self.fold.pe * self.out_value_bits()
    }
    /// Beats of the layer's output stream per image.
    pub fn out_beats(&self) -> u64 {
        self.geo.output.positions() as u64 * self.nf() as u64
    }
    /// Accumulator width used in the RTL: the analysed width, widened so that one input or
    /// one weight always fits (the arithmetic is modular, the analysed width is exact).
    pub fn acc_bits(&self) -> u32 {
        let wb = self.weight_bits();
        self.widths
            .acc_bits()
            .max(wb + 1)
            .max(self.geo.input_bits + 1)
    }
    /// Width of the neuron arithmetic: the membrane (LIF, TSA, readout; the TSA membrane
    /// range holds `2θ` and the clamp bound), or the output value (no neuron; its bias always
    /// fits, since the accumulator range contains 0).
    pub fn value_bits(&self) -> u32 {
        match self.layer.neuron {
            Neuron::Lif(_) | Neuron::Tsa(_) | Neuron::TsaReadout { .. } => {
                self.acc_bits().max(self.widths.membrane_bits())
            }
            Neuron::None { .. } => self.widths.output_bits(),
        }
    }
    /// Width of the MVU's dot products and accumulators: the accumulator's or the neuron's,
    /// whichever is wider (the bias and the polarity are applied there).
    pub fn mac_bits(&self) -> u32 {
        self.acc_bits().max(self.value_bits())
    }
    /// Bits of a current in the hand-off register: the neuron's width (the low bits of the
    /// modular sum are all a narrow output needs).
    pub fn slot_bits(&self) -> u32 {
        self.value_bits()
    }
    /// Bits of one weight (1 for binary).
    pub fn weight_bits(&self) -> u32 {
        match &self.layer.weights {
            spikeforge_model::ir::Weights::Binary { .. } => 1,
            spikeforge_model::ir::Weights::Integer { bits, .. } => *bits,
        }
    }
    /// Bits of one weight word: `PE` lanes × `SIMD` weights.
    pub fn weight_word_bits(&self) -> u32 {
        self.fold.pe * self.fold.simd * self.weight_bits()
    }
    /// Synapse folds per window.
    pub fn sf(&self) -> u32 {
        self.geo.fan_in as u32 / self.fold.simd
    }
    /// Neuron folds per window.
    pub fn nf(&self) -> u32 {
        self.geo.synaptic.channels / self.fold.pe
    }
    /// Bits of one lane's parameters in the parameter ROM: `{polarity, threshold, bias}`
    /// (LIF), `{polarity, clamp, threshold, bias}` (TSA) or `{bias}`, bias in the low bits.
    pub fn lane_param_bits(&self) -> u32 {
        match self.layer.neuron {
            Neuron::Lif(_) => 2 * self.value_bits() + 1,
            Neuron::Tsa(_) => 3 * self.value_bits() + 1,
            Neuron::None { .. } | Neuron::TsaReadout { .. } => self.value_bits(),
        }
    }
}
