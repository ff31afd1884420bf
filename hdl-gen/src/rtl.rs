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

/// The convolution front: a line buffer of k rows and a sliding-window read, producing the
/// windows of every output position in raster order, zero padded.
pub fn window(ctx: &LayerCtx, names: &Names) -> Module {
    let g = &ctx.geo;
    let (h, w) = (g.input.height as i64, g.input.width as i64);
    let k = g.window_height as i64;
    let (s, pad) = (g.stride as i64, g.pad as i64);
    let (oh, ow) = (g.synaptic.height as i64, g.synaptic.width as i64);
    let ew = ctx.entry_bits();
    let mut m = Module::new(
        names.layer_module(ctx.index, "window"),
        vec![format!(
            "Convolution front of layer {} ({}): {k}x{k} window, stride {s}, padding {pad}, \
             {h}x{w} -> {oh}x{ow}; a line buffer of {k} rows.",
            ctx.index, ctx.layer.name
        )],
    );
    stream_ports(&mut m, ew, ctx.window_bits(), true);
    let cw = spikeforge_model::geometry::bits_signed(-pad, h.max(w) + k + s);
    let c = |v: i64| slit(cw, v);
    let xw = index_bits(w as u64);
    let rows: Vec<Expr> = (0..k)
        .map(|r| m.mem(&format!("row{r}"), ew, w as u32))
        .collect();
    let iy = m.sreg("iy", cw);
    let ix = m.sreg("ix", cw);
    let ry = m.sreg("ry", cw);
    let rx = m.sreg("rx", cw);
    let oy = m.sreg("oy", cw);
    let ox = m.sreg("ox", cw);
    let out_done = m.reg("out_done", 1);
    // Row slots: input row r lives in slot r mod k.
    let slw = bits_unsigned(2 * k as u64);
    let (wslot, tslot) = if k > 1 {
        (Some(m.reg("wslot", slw)), Some(m.reg("tslot", slw)))
    } else {
        (None, None)
    };
    let in_done = m.wire_eq("in_done", 1, iy.clone().eq(c(h)));
    let min = |a: Expr, b: Expr| a.clone().lt(b.clone()).cond(a, b);
    let need_y = m.swire_eq("need_y", cw, min(ry.clone().add(c(k - 1)), c(h - 1)));
    let need_x = m.swire_eq("need_x", cw, min(rx.clone().add(c(k - 1)), c(w - 1)));
    let have = m.wire_eq(
        "have",
        1,
        in_done
            .clone()
            .or(iy.clone().gt(need_y.clone()))
            .or(iy.clone().eq(need_y).and(ix.clone().gt(need_x))),
    );
    let emit = m.wire_eq(
        "emit",
        1,
        have.and(out_done.clone().not())
            .and(id("out_valid").not().or(id("out_ready"))),
    );
    m.assign(
        id("in_ready"),
        in_done
            .clone()
            .not()
            .and(out_done.clone().or(iy.clone().lt(ry.clone().add(c(k))))),
    );
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    // Window assembly.
    let mut entries = vec![];
    for ky in 0..k {
        let y = m.swire_eq(&format!("y{ky}"), cw, ry.clone().add(c(ky)));
        let slot = tslot.as_ref().map(|ts| {
            let sum = ts.clone().add(lit(slw, ky as u64));
            let wrapped = sum
                .clone()
                .ge(lit(slw, k as u64))
                .cond(sum.clone().sub(lit(slw, k as u64)), sum);
            m.wire_eq(&format!("slot{ky}"), slw, wrapped)
        });
        for kx in 0..k {
            let x = if ky == 0 {
                m.swire_eq(&format!("x{kx}"), cw, rx.clone().add(c(kx)))
            } else {
                id(format!("x{kx}"))
            };
            let inside = y
                .clone()
                .ge(c(0))
                .and(y.clone().lt(c(h)))
                .and(x.clone().ge(c(0)))
                .and(x.clone().lt(c(w)));
            let xi = x.slice(xw - 1, 0);
            let mut read = rows[k as usize - 1].clone().idx(xi.clone());
            if let Some(sl) = &slot {
                for r in (0..k - 1).rev() {
                    read = sl
                        .clone()
                        .eq(lit(slw, r as u64))
                        .cond(rows[r as usize].clone().idx(xi.clone()), read);
                }
            }
            let e = m.wire_eq(&format!("e{ky}_{kx}"), ew, inside.cond(read, lit(ew, 0)));
            entries.push(e);
        }
    }
    let cb = g.input.channels * g.input_bits;
    let mut parts = vec![];
    for t in (0..g.input_steps).rev() {
        for e in entries.iter().rev() {
            parts.push(e.clone().slice(t * cb + cb - 1, t * cb));
        }
    }
    // The window is assembled where it is registered, not as a wire: simulators then build
    // this wide concatenation once per output position instead of on every cycle.
    let win = cat(parts);
    // Input side.
    let mut write = vec![];
    let ixi = ix.clone().slice(xw - 1, 0);
    match &wslot {
        Some(ws) => {
            for (r, row) in rows.iter().enumerate() {
                write.push(when(
                    ws.clone().eq(lit(slw, r as u64)),
                    vec![Stmt::Nb(row.clone().idx(ixi.clone()), id("in_data"))],
                ));
            }
        }
        None => write.push(Stmt::Nb(rows[0].clone().idx(ixi), id("in_data"))),
    }
    let mut row_end = vec![
        Stmt::Nb(ix.clone(), c(0)),
        Stmt::Nb(iy.clone(), iy.clone().add(c(1))),
    ];
    if let Some(ws) = &wslot {
        row_end.push(Stmt::Nb(
            ws.clone(),
            ws.clone()
                .eq(lit(slw, (k - 1) as u64))
                .cond(lit(slw, 0), ws.clone().add(lit(slw, 1))),
        ));
    }
    write.push(Stmt::If(
        ix.clone().eq(c(w - 1)),
        row_end,
        vec![Stmt::Nb(ix.clone(), ix.clone().add(c(1)))],
    ));
    // Output side.
    let mut next_row = vec![
        Stmt::Nb(oy.clone(), oy.clone().add(c(1))),
        Stmt::Nb(ry.clone(), ry.clone().add(c(s))),
    ];
    if let Some(ts) = &tslot {
        let sum = ts.clone().add(lit(slw, s as u64));
        next_row.push(Stmt::Nb(
            ts.clone(),
            sum.clone()
                .ge(lit(slw, k as u64))
                .cond(sum.clone().sub(lit(slw, k as u64)), sum),
        ));
    }
    let advance = vec![
        Stmt::Nb(id("out_valid"), one()),
        Stmt::Nb(id("out_data"), win),
        Stmt::If(
            ox.clone().eq(c(ow - 1)),
            vec![
                Stmt::Nb(ox.clone(), c(0)),
                Stmt::Nb(rx.clone(), c(-pad)),
                Stmt::If(
                    oy.clone().eq(c(oh - 1)),
                    vec![Stmt::Nb(out_done.clone(), one())],
                    next_row,
                ),
            ],
            vec![
                Stmt::Nb(ox.clone(), ox.clone().add(c(1))),
                Stmt::Nb(rx.clone(), rx.clone().add(c(s))),
            ],
        ),
    ];
    let top_slot = ((-pad).rem_euclid(k)) as u64;
    let mut restart = vec![
        Stmt::Nb(iy.clone(), c(0)),
        Stmt::Nb(ix.clone(), c(0)),
        Stmt::Nb(oy.clone(), c(0)),
        Stmt::Nb(ox.clone(), c(0)),
        Stmt::Nb(ry.clone(), c(-pad)),
        Stmt::Nb(rx.clone(), c(-pad)),
        Stmt::Nb(out_done.clone(), zero()),
    ];
    if let (Some(ws), Some(ts)) = (&wslot, &tslot) {
        restart.push(Stmt::Nb(ws.clone(), lit(slw, 0)));
        restart.push(Stmt::Nb(ts.clone(), lit(slw, top_slot)));
    }
    let mut on_reset = restart.clone();
    on_reset.push(Stmt::Nb(id("out_valid"), zero()));
    m.seq(vec![Stmt::If(
        id(names::RST),
        on_reset,
        vec![
            when(accept, write),
            when(
                id("out_valid").and(id("out_ready")),
                vec![Stmt::Nb(id("out_valid"), zero())],
            ),
            when(emit, advance),
            when(out_done.and(in_done), restart),
        ],
    )]);
    m
}
