//! Lowering of one model to modules of the typed AST: per layer a window front (line-buffer
//! `window` for convolutions, `collect` for dense layers), a matrix-vector unit `mvu` with the
//! neuron, an optional `pool`; then the GAP/argmax `head`, the `core` (with one tap per layer
//! for co-simulation) and the synthesis `top`.
//!
//! Stream convention between modules: `*_valid`, `*_ready`, `*_data`; a beat moves when
//! valid && ready. A beat carries one map position: `[step][channel]` values, step-major,
//! value `v` at bits `[(step·C + c)·B +: B]`. A window is `[step][j]` with
//! `j = (ky·k + kx)·Cin + cin` (dense: `j = (y·W + x)·Cin + cin`), matching the IR's weight order.

use spikeforge_model::geometry::{bits_unsigned, output_range, value_bits, LayerGeometry};
use spikeforge_model::ir::{Layer, Neuron};
use spikeforge_model::widths::LayerWidths;

use crate::fold::LayerFold;
use crate::names::{self, Names};
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
}

impl<'a> LayerCtx<'a> {
    /// One context per layer of `model` with `folding`, from its geometry and widths.
    pub fn all(
        model: &'a spikeforge_model::Model,
        folding: &crate::fold::Folding,
        geo: &[LayerGeometry],
        widths: &'a spikeforge_model::widths::Widths,
    ) -> Vec<LayerCtx<'a>> {
        model
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
            })
            .collect()
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
    /// Bits of one input position: steps × channels × value bits.
    pub fn entry_bits(&self) -> u32 {
        self.geo.input_steps * self.geo.input.channels * self.geo.input_bits
    }
    /// Bits of one window.
    pub fn window_bits(&self) -> u32 {
        self.geo.input_steps * self.geo.fan_in as u32 * self.geo.input_bits
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
            _ => self.steps,
        }
    }
    /// Bits of one beat of the neuron's output (before pooling).
    pub fn neuron_beat_bits(&self) -> u32 {
        self.out_steps() * self.geo.synaptic.channels * self.neuron_bits()
    }
    /// Bits of one beat of the layer's output stream.
    pub fn out_beat_bits(&self) -> u32 {
        self.out_steps() * self.geo.output.channels * self.out_value_bits()
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
    /// Bits of one weight (1 for binary).
    pub fn weight_bits(&self) -> u32 {
        match &self.layer.weights {
            spikeforge_model::ir::Weights::Binary { .. } => 1,
            spikeforge_model::ir::Weights::Integer { bits, .. } => *bits,
        }
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

/// The dense front: collects every position of the input map into one window.
pub fn collect(ctx: &LayerCtx, names: &Names, per_beat: u32) -> Module {
    let g = &ctx.geo;
    let ew = ctx.entry_bits();
    let pos = g.input.positions() as u32;
    let beats = pos / per_beat;
    let total = pos * ew;
    let mut m = Module::new(
        names.layer_module(ctx.index, "collect"),
        vec![format!(
            "Dense front of layer {} ({}): shifts in {pos} positions, {per_beat} per beat, \
             and presents them as one window.",
            ctx.index, ctx.layer.name
        )],
    );
    stream_ports(&mut m, per_beat * ew, ctx.window_bits(), false);
    let sr = m.reg("sr", total);
    let full = m.reg("full", 1);
    m.assign(id("in_ready"), full.clone().not());
    m.assign(id("out_valid"), full.clone());
    // Window layout is [step][position][channel]; the shift register holds [position][step][channel].
    let steps = g.input_steps;
    let cb = g.input.channels * g.input_bits;
    let mut parts = Vec::new();
    for t in (0..steps).rev() {
        for p in (0..pos).rev() {
            parts.push(sr.clone().slice(p * ew + t * cb + cb - 1, p * ew + t * cb));
        }
    }
    m.assign(
        id("out_data"),
        if steps == 1 { sr.clone() } else { cat(parts) },
    );
    let accept = m.wire_eq("accept", 1, id("in_valid").and(full.clone().not()));
    let shift = if beats == 1 {
        id("in_data")
    } else {
        cat(vec![
            id("in_data"),
            sr.clone().slice(total - 1, per_beat * ew),
        ])
    };
    let mut on_accept = vec![Stmt::Nb(sr, shift)];
    let mut reset = vec![Stmt::Nb(full.clone(), zero())];
    if beats == 1 {
        on_accept.push(Stmt::Nb(full.clone(), one()));
    } else {
        let cw = index_bits(beats as u64);
        let count = m.reg("count", cw);
        reset.push(Stmt::Nb(count.clone(), lit(cw, 0)));
        on_accept.push(Stmt::If(
            count.clone().eq(lit(cw, (beats - 1) as u64)),
            vec![
                Stmt::Nb(count.clone(), lit(cw, 0)),
                Stmt::Nb(full.clone(), one()),
            ],
            vec![Stmt::Nb(count.clone(), count.add(lit(cw, 1)))],
        ));
    }
    m.seq(vec![Stmt::If(
        id(names::RST),
        reset,
        vec![
            when(
                full.clone().and(id("out_ready")),
                vec![Stmt::Nb(full, zero())],
            ),
            when(accept, on_accept),
        ],
    )]);
    m
}
