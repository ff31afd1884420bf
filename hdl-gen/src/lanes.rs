//! Synapse lanes: the dot product of one weight word row (a PE lane's `SIMD` weights) with
//! one input step's `SIMD` values, written as unsigned adder trees plus a constant, so that
//! [`crate::tree`] can pipeline every kind the same way:
//!
//! `dot = Σ coef·own_tree + Σ coef·shared_tree + constant  (mod 2^acc_bits)`.
//!
//! Shared trees depend on the input word only (`Σx` of binary layers, the count of negative
//! ternary spikes) and are built once per step for all lanes. Signed terms enter the trees in
//! offset form (a two's-complement `t` of `tw` bits plus `2^(tw-1)` is `t` with its sign bit
//! inverted), the offsets coming off in the constant. Each synapse kind is one arm of
//! [`lane_dot`]'s match, which the compiler checks for exhaustiveness.

use crate::rtl::{sext, zext, LayerCtx};
use crate::tree::Ranks;
use crate::vlog::*;

/// How a layer's input values are coded on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCode {
    /// Unsigned 0/1 spikes.
    Spike,
    /// Unsigned multi-bit values (pixels, sum-pooled spikes).
    Unsigned,
    /// Ternary spikes: bit 0 "non-zero", bit 1 "negative".
    Ternary,
    /// Two's-complement multi-bit values (sum-pooled ternary spikes).
    Signed,
}

/// The input coding of a layer.
pub fn input_code(ctx: &LayerCtx) -> InputCode {
    match (ctx.geo.input_min < 0, ctx.geo.input_bits) {
        (false, 1) => InputCode::Spike,
        (false, _) => InputCode::Unsigned,
        (true, 2) => InputCode::Ternary,
        (true, _) => InputCode::Signed,
    }
}

/// Weight kind × input coding: what one lane computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    /// ±1 weights on 0/1 spikes: `2·popcount(x ∧ w) − popcount(x)`.
    BinarySpike,
    /// ±1 weights on unsigned values: `2·Σ_{w=+1} x − Σ x`.
    BinaryUnsigned,
    /// ±1 weights on ternary spikes: `2·#{x ≠ 0, sign(x) = w} − #{x ≠ 0}`.
    BinaryTernary,
    /// ±1 weights on signed values: `2·Σ_{w=+1} x − Σ x`, signed sums.
    BinarySigned,
    /// Integer weights on spikes: add or skip.
    IntegerSpike,
    /// Integer weights on unsigned values: shift-and-add of the weight's bits.
    IntegerUnsigned,
    /// Integer weights on ternary spikes: add, subtract or skip.
    IntegerTernary,
    /// Integer weights on signed values: shift-and-add of the input's bits.
    IntegerSigned,
}

/// The lane kind of a layer.
pub fn lane_kind(ctx: &LayerCtx) -> LaneKind {
    use InputCode::*;
    match (ctx.layer.is_binary(), input_code(ctx)) {
        (true, Spike) => LaneKind::BinarySpike,
        (true, Unsigned) => LaneKind::BinaryUnsigned,
        (true, Ternary) => LaneKind::BinaryTernary,
        (true, Signed) => LaneKind::BinarySigned,
        (false, Spike) => LaneKind::IntegerSpike,
        (false, Unsigned) => LaneKind::IntegerUnsigned,
        (false, Ternary) => LaneKind::IntegerTernary,
        (false, Signed) => LaneKind::IntegerSigned,
    }
}

/// Whether the layer's synapses are multi-bit × multi-bit, which DSP lanes compute as products.
pub fn has_products(ctx: &LayerCtx) -> bool {
    match lane_kind(ctx) {
        LaneKind::IntegerUnsigned | LaneKind::IntegerSigned => true,
        LaneKind::BinarySpike
        | LaneKind::BinaryUnsigned
        | LaneKind::BinaryTernary
        | LaneKind::BinarySigned
        | LaneKind::IntegerSpike
        | LaneKind::IntegerTernary => false,
    }
}

/// A dot product as trees and a constant.
#[derive(Default)]
pub struct Dot {
    /// `(coefficient, terms)` of this lane's own trees.
    pub own: Vec<(i64, Vec<(Expr, u32)>)>,
    /// `(coefficient, index)` of the shared trees it uses.
    pub shared: Vec<(i64, usize)>,
    /// Added at the end (modulo the accumulator width).
    pub constant: i64,
    /// The own trees' terms come out of multipliers (DSP lanes): with operand registers the
    /// multipliers' operands and the terms are each registered, two ranks before the trees.
    pub products: bool,
}

/// The registered operands of one step and one lane.
pub struct Operands<'a> {
    /// The input word: value `(step, i)` at bits `[(step·SIMD + i)·xb +: xb]`.
    pub x: &'a Expr,
    /// The weight word: lane `p`'s weight `i` at bits `[(p·SIMD + i)·wb +: wb]`.
    pub w: &'a Expr,
    /// The step of `x` used.
    pub step: u32,
    /// The lane.
    pub lane: u32,
    /// Name prefix for the wires of this lane and step.
    pub prefix: String,
}

pub(crate) struct Shape {
    pub(crate) simd: u32,
    pub(crate) xb: u32,
    pub(crate) wb: u32,
    pub(crate) aw: u32,
}

pub(crate) fn shape(ctx: &LayerCtx) -> Shape {
    Shape {
        simd: ctx.fold.simd,
        xb: ctx.geo.input_bits,
        wb: ctx.weight_bits(),
        aw: ctx.acc_bits(),
    }
}

impl Operands<'_> {
    pub(crate) fn xbit(&self, s: &Shape, i: u32, b: u32) -> Expr {
        self.x.clone().bit((self.step * s.simd + i) * s.xb + b)
    }
    pub(crate) fn x(&self, s: &Shape, i: u32) -> Expr {
        let lo = (self.step * s.simd + i) * s.xb;
        if s.xb == 1 {
            self.x.clone().bit(lo)
        } else {
            self.x.clone().slice(lo + s.xb - 1, lo)
        }
    }
    fn wbit(&self, s: &Shape, i: u32, b: u32) -> Expr {
        self.w.clone().bit((self.lane * s.simd + i) * s.wb + b)
    }
    pub(crate) fn w(&self, s: &Shape, i: u32) -> Expr {
        let lo = (self.lane * s.simd + i) * s.wb;
        if s.wb == 1 {
            self.w.clone().bit(lo)
        } else {
            self.w.clone().slice(lo + s.wb - 1, lo)
        }
    }
}

/// A `tw`-bit two's-complement wire in offset form (`t + 2^(tw−1)`, unsigned).
pub(crate) fn offset(t: &Expr, tw: u32) -> (Expr, u32) {
    let msb = t.clone().bit(tw - 1).inv();
    if tw == 1 {
        (msb, 1)
    } else {
        (cat(vec![msb, t.clone().slice(tw - 2, 0)]), tw)
    }
}

/// The shared trees of one step: `[Σx]` (binary layers; the non-zero count for ternary
/// inputs, offset values for signed ones), `[#negative spikes]` (integer on ternary), or none.
/// `tag` prefixes the wires (one set per output position with MMV > 1).
pub fn shared_trees(
    m: &mut Module,
    ctx: &LayerCtx,
    x: &Expr,
    step: u32,
    tag: &str,
) -> Vec<Vec<(Expr, u32)>> {
    let s = shape(ctx);
    let ops = Operands {
        x,
        w: x,
        step,
        lane: 0,
        prefix: format!("{tag}x{step}"),
    };
    let n = s.simd;
    match lane_kind(ctx) {
        LaneKind::BinarySpike | LaneKind::BinaryUnsigned => {
            vec![(0..n).map(|i| (ops.x(&s, i), s.xb)).collect()]
        }
        LaneKind::BinaryTernary => vec![(0..n).map(|i| (ops.xbit(&s, i, 0), 1)).collect()],
        LaneKind::BinarySigned => vec![(0..n)
            .map(|i| {
                let t = m.wire_eq(&format!("{}_v{i}", ops.prefix), s.xb, ops.x(&s, i));
                offset(&t, s.xb)
            })
            .collect()],
        LaneKind::IntegerTernary => vec![(0..n)
            .map(|i| (ops.xbit(&s, i, 0).band(ops.xbit(&s, i, 1)), 1))
            .collect()],
        LaneKind::IntegerSpike | LaneKind::IntegerUnsigned | LaneKind::IntegerSigned => vec![],
    }
}

/// The dot product of one lane and step.
pub fn lane_dot(m: &mut Module, ranks: &mut Ranks, ctx: &LayerCtx, ops: &Operands) -> Dot {
    let s = shape(ctx);
    let n = s.simd as i64;
    let pre = &ops.prefix;
    match lane_kind(ctx) {
        LaneKind::BinarySpike => Dot {
            own: vec![(
                2,
                (0..s.simd)
                    .map(|i| (ops.x(&s, i).band(ops.w(&s, i)), 1))
                    .collect(),
            )],
            shared: vec![(-1, 0)],
            constant: 0,
            products: false,
        },
        LaneKind::BinaryUnsigned => Dot {
            own: vec![(
                2,
                (0..s.simd)
                    .map(|i| {
                        let w = Expr::Repl(s.xb, Box::new(ops.w(&s, i)));
                        (w.band(ops.x(&s, i)), s.xb)
                    })
                    .collect(),
            )],
            shared: vec![(-1, 0)],
            constant: 0,
            products: false,
        },
        LaneKind::BinaryTernary => Dot {
            // +1 where the spike's sign agrees with the weight: valid ∧ (negative ⊕ w).
            own: vec![(
                2,
                (0..s.simd)
                    .map(|i| {
                        let agree = ops.xbit(&s, i, 1).bxor(ops.w(&s, i));
                        (ops.xbit(&s, i, 0).band(agree), 1)
                    })
                    .collect(),
            )],
            shared: vec![(-1, 0)],
            constant: 0,
            products: false,
        },
        LaneKind::BinarySigned => {
            let terms = (0..s.simd)
                .map(|i| {
                    let w = Expr::Repl(s.xb, Box::new(ops.w(&s, i)));
                    let t = m.wire_eq(&format!("{pre}_t{i}"), s.xb, w.band(ops.x(&s, i)));
                    offset(&t, s.xb)
                })
                .collect();
            // 2·(T − n·h) − (X − n·h) = 2T − X − n·h.
            Dot {
                own: vec![(2, terms)],
                shared: vec![(-1, 0)],
                constant: -n * (1 << (s.xb - 1)),
                products: false,
            }
        }
        LaneKind::IntegerSpike => {
            let terms = (0..s.simd)
                .map(|i| {
                    let x = Expr::Repl(s.wb, Box::new(ops.x(&s, i)));
                    let t = m.wire_eq(&format!("{pre}_t{i}"), s.wb, x.band(ops.w(&s, i)));
                    offset(&t, s.wb)
                })
                .collect();
            Dot {
                own: vec![(1, terms)],
                shared: vec![],
                constant: -n * (1 << (s.wb - 1)),
                products: false,
            }
        }
        LaneKind::IntegerUnsigned if ops.lane < ctx.dsp_lanes => {
            products(m, ranks, ctx, ops, &s, false)
        }
        // Gate by the narrower operand's bits: fewer, wider partial products when the
        // values are narrower than the weights (pooled spike counts under 8-bit weights).
        LaneKind::IntegerUnsigned if s.xb < s.wb => integer_by_x_bits(m, ops, &s, false),
        LaneKind::IntegerUnsigned => integer_unsigned(ops, &s),
        LaneKind::IntegerTernary => {
            // valid ? (negative ? ~w : w) : 0 in wb + 1 bits; the +1 of each −w = ~w + 1 is
            // the shared count of negative spikes.
            let tw = s.wb + 1;
            let terms = (0..s.simd)
                .map(|i| {
                    let w = m.wire_eq(&format!("{pre}_w{i}"), s.wb, ops.w(&s, i));
                    let flip = Expr::Repl(tw, Box::new(ops.xbit(&s, i, 1)));
                    let valid = Expr::Repl(tw, Box::new(ops.xbit(&s, i, 0)));
                    let t = valid.band(sext(w, s.wb, tw).bxor(flip));
                    let t = m.wire_eq(&format!("{pre}_t{i}"), tw, t);
                    offset(&t, tw)
                })
                .collect();
            Dot {
                own: vec![(1, terms)],
                shared: vec![(1, 0)],
                constant: -n * (1 << (tw - 1)),
                products: false,
            }
        }
        LaneKind::IntegerSigned if ops.lane < ctx.dsp_lanes => {
            products(m, ranks, ctx, ops, &s, true)
        }
        LaneKind::IntegerSigned => integer_by_x_bits(m, ops, &s, true),
    }
}

/// Integer weights on multi-bit values as multiplier products (DSP lanes): each `x·w` is one
/// signed `*` (an unsigned `x` gets a zero sign bit), which Yosys maps to a DSP block. Written
/// as a product of zero- and sign-extended unsigned operands instead, Yosys 0.23's
/// `synth_ice40 -dsp` builds `SB_MAC16`s whose netlist disagrees with the RTL on about half
/// the cycles (HARDWARE.md §5 saw it for registered products; that form fails whether the
/// product is registered or not); signed operands map correctly, which the netlist rung
/// checks for both families.
fn products(
    m: &mut Module,
    ranks: &mut Ranks,
    ctx: &LayerCtx,
    ops: &Operands,
    s: &Shape,
    signed_x: bool,
) -> Dot {
    let xw = if signed_x { s.xb } else { s.xb + 1 };
    // The exact product fits xw + wb bits; modulo the accumulator width is all the sum needs.
    let pw = (xw + s.wb).min(s.aw);
    let pre = &ops.prefix;
    let terms = (0..s.simd)
        .map(|i| {
            let x = if signed_x {
                ops.x(s, i)
            } else {
                zext(ops.x(s, i), s.xb, xw)
            };
            let x = dsp_input(m, ranks, ctx, &format!("{pre}_xr{i}"), xw, x);
            let w = dsp_input(m, ranks, ctx, &format!("{pre}_wr{i}"), s.wb, ops.w(s, i));
            let xs = m.swire_eq(&format!("{pre}_xs{i}"), xw, x);
            let ws = m.swire_eq(&format!("{pre}_ws{i}"), s.wb, w);
            let p = m.swire_eq(&format!("{pre}_p{i}"), pw, xs.mul(ws));
            offset(&p, pw)
        })
        .collect();
    Dot {
        own: vec![(1, terms)],
        shared: vec![],
        constant: -(s.simd as i64) * (1 << (pw - 1)),
        products: true,
    }
}

/// A multiplier's operand: with operand registers, in a register of its own, which the placer
/// can put beside the DSP block (routing to a DSP column and back took 9.7 ns of a 14.2 ns
/// path on ECP5); otherwise the value itself.
pub(crate) fn dsp_input(
    m: &mut Module,
    ranks: &mut Ranks,
    ctx: &LayerCtx,
    name: &str,
    width: u32,
    value: Expr,
) -> Expr {
    if ctx.operand_regs {
        ranks.reg(m, name, width, value)
    } else {
        value
    }
}

/// Integer weights on unsigned values: `x·w = Σ_{b<wb−1} w_b·(x << b) − w_{wb−1}·(x << (wb−1))`
/// for a two's-complement `w`; every partial product is a gated, shifted `x`.
fn integer_unsigned(ops: &Operands, s: &Shape) -> Dot {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for i in 0..s.simd {
        // Bits at or above 2^aw vanish modulo 2^aw: keep only what is below.
        for b in (0..s.wb).filter(|&b| b < s.aw) {
            let keep = s.xb.min(s.aw - b);
            let x = ops.x(s, i);
            let x = if keep < s.xb { x.slice(keep - 1, 0) } else { x };
            let gated = Expr::Repl(keep, Box::new(ops.wbit(s, i, b))).band(x);
            let term = if b == 0 {
                gated
            } else {
                cat(vec![gated, lit(b, 0)])
            };
            if b + 1 == s.wb {
                neg.push((term, keep + b));
            } else {
                pos.push((term, keep + b));
            }
        }
    }
    Dot {
        own: vec![(1, pos), (-1, neg)],
        shared: vec![],
        constant: 0,
        products: false,
    }
}

/// Integer weights on values, gated by the values' bits: `x·w = Σ_b x_b·(w << b)`, the top
/// bit's term subtracted for a signed `x` (`− x_{xb−1}·(w << (xb−1))`); each partial product
/// is a gated, sign-extended, shifted `w`.
fn integer_by_x_bits(m: &mut Module, ops: &Operands, s: &Shape, signed_x: bool) -> Dot {
    // x·w needs wb + xb − 1 bits signed for a signed x, wb + xb for an unsigned one.
    let pw = s.wb + s.xb - u32::from(signed_x);
    let tw = pw.min(s.aw);
    let pre = &ops.prefix;
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for i in 0..s.simd {
        let w = m.wire_eq(&format!("{pre}_w{i}"), s.wb, ops.w(s, i));
        for b in 0..s.xb {
            let gated = m.wire_eq(
                &format!("{pre}_g{i}_{b}"),
                s.wb,
                Expr::Repl(s.wb, Box::new(ops.xbit(s, i, b))).band(w.clone()),
            );
            let ext = sext(gated, s.wb, pw);
            let shifted = if b == 0 {
                ext
            } else {
                ext.shl(Expr::Int(b as i64))
            };
            let term = m.wire_eq(&format!("{pre}_pp{i}_{b}"), pw, shifted);
            let term = if tw < pw {
                m.wire_eq(&format!("{pre}_ppl{i}_{b}"), tw, term.slice(tw - 1, 0))
            } else {
                term
            };
            if signed_x && b + 1 == s.xb {
                neg.push(offset(&term, tw));
            } else {
                pos.push(offset(&term, tw));
            }
        }
    }
    let h = 1i64 << (tw - 1);
    let constant = -(pos.len() as i64) * h + neg.len() as i64 * h;
    Dot {
        own: vec![(1, pos), (-1, neg)],
        shared: vec![],
        constant,
        products: false,
    }
}
