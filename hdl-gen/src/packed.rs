//! Two products per DSP block: where two operands of a DSP lane share its weights (two output
//! positions with MMV > 1, or two input steps with T > 1), one multiplier computes both,
//! `P = w · (x_b·2^K + x_a)` with `K` the exact width of one product, as DSP designs pack
//! low-precision products ("INT4 packing"). The operand is the concatenation `{x_b, x_a}`
//! (`x_a` sign-extended to `K` bits), whose value is `(x_b + s_a)·2^K + x_a` with `s_a` the
//! sign of `x_a`; so
//!
//! * `w·x_a = P[K−1:0]` as a signed `K`-bit value, and
//! * `w·x_b = P[2K−1:K] + s_L − s_a·w`, `s_L` the sign of `P[K−1:0]` (the borrow the low
//!   product took from the high one).
//!
//! Both enter the lanes' adder trees like any product (offset form); `s_L` is a 1-bit term and
//! `s_a·w` a gated weight (signed values only). The operand must fit a 16-bit multiplier input
//! (iCE40 `SB_MAC16`; ECP5 `MULT18X18D` takes 18): `2·xw + wb ≤ 16`, `xw` the value's width
//! with its sign bit: 3-bit pooled spike counts or 4-bit pooled ternary spikes under 8-bit
//! weights.

use crate::lanes::{dsp_input, lane_kind, offset, shape, Dot, LaneKind, Operands};
use crate::rtl::{sext, zext, LayerCtx};
use crate::tree::Ranks;
use crate::vlog::*;

/// The widest multiplier operand packing may produce.
const MULTIPLIER_BITS: u32 = 16;

/// The value's width as a signed multiplier operand (a zero sign bit for unsigned values),
/// if the layer's DSP products are of a packable kind and size.
fn operand_bits(ctx: &LayerCtx) -> Option<(u32, bool)> {
    let s = shape(ctx);
    let signed = match lane_kind(ctx) {
        LaneKind::IntegerSigned => true,
        LaneKind::IntegerUnsigned => false,
        LaneKind::BinarySpike
        | LaneKind::BinaryUnsigned
        | LaneKind::BinaryTernary
        | LaneKind::BinarySigned
        | LaneKind::IntegerSpike
        | LaneKind::IntegerTernary => return None,
    };
    let xw = s.xb + u32::from(!signed);
    (2 * xw + s.wb <= MULTIPLIER_BITS).then_some((xw, signed))
}

/// Operands per DSP lane that share each weight: input steps × MMV positions.
fn sharing(ctx: &LayerCtx) -> u32 {
    ctx.geo.input_steps * ctx.fold.mmv
}

/// Whether the layer's DSP lanes put two products on each multiplier.
pub fn packs(ctx: &LayerCtx) -> bool {
    operand_bits(ctx).is_some() && sharing(ctx) >= 2
}

/// Multipliers (DSP blocks) one DSP lane takes.
pub fn multipliers_per_lane(ctx: &LayerCtx) -> u32 {
    let n = sharing(ctx);
    ctx.fold.simd * if packs(ctx) { n.div_ceil(2) } else { n }
}

/// The dot products of operands `a` and `b` (same lane, so the same weights) on shared
/// multipliers; `None` where the layer's products do not pack.
pub fn pair(
    m: &mut Module,
    ranks: &mut Ranks,
    ctx: &LayerCtx,
    a: &Operands,
    b: &Operands,
) -> Option<(Dot, Dot)> {
    let s = shape(ctx);
    let (xw, signed) = operand_bits(ctx)?;
    let k = xw + s.wb;
    // Modulo the accumulator width is all the sums need.
    let tw = k.min(s.aw);
    let pre = &a.prefix;
    let (mut lo, mut hi, mut borrow, mut corr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..s.simd {
        let xa = if signed {
            sext(a.x(&s, i), s.xb, k)
        } else {
            zext(a.x(&s, i), s.xb, k)
        };
        let xb = if signed {
            b.x(&s, i)
        } else {
            zext(b.x(&s, i), s.xb, xw)
        };
        let op = dsp_input(
            m,
            ranks,
            ctx,
            &format!("{pre}_dbr{i}"),
            k + xw,
            cat(vec![xb, xa]),
        );
        let op = m.swire_eq(&format!("{pre}_db{i}"), k + xw, op);
        let w = dsp_input(m, ranks, ctx, &format!("{pre}_dwr{i}"), s.wb, a.w(&s, i));
        let w = m.swire_eq(&format!("{pre}_dw{i}"), s.wb, w);
        // The high product's bits above the accumulator width are not needed.
        let p = m.swire_eq(&format!("{pre}_dp{i}"), k + tw, op.clone().mul(w.clone()));
        let l = m.wire_eq(&format!("{pre}_dl{i}"), tw, p.clone().slice(tw - 1, 0));
        let h = m.wire_eq(&format!("{pre}_dh{i}"), tw, p.clone().slice(k + tw - 1, k));
        lo.push(offset(&l, tw));
        hi.push(offset(&h, tw));
        borrow.push((p.bit(k - 1), 1));
        if signed {
            // The sign of x_a, as the (sign-extended) operand holds it: in step with `w`.
            let sa = op.clone().bit(k - 1);
            let g = m.wire_eq(
                &format!("{pre}_dc{i}"),
                s.wb,
                Expr::Repl(s.wb, Box::new(sa)).band(w),
            );
            corr.push(offset(&g, s.wb));
        }
    }
    let n = s.simd as i64;
    let low = Dot {
        own: vec![(1, lo)],
        shared: vec![],
        constant: -n * (1 << (tw - 1)),
        products: true,
    };
    let mut own = vec![(1, hi), (1, borrow)];
    let mut constant = -n * (1 << (tw - 1));
    if signed {
        own.push((-1, corr));
        constant += n * (1 << (s.wb - 1));
    }
    let high = Dot {
        own,
        shared: vec![],
        constant,
        products: true,
    };
    Some((low, high))
}
