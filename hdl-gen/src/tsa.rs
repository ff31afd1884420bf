//! The TSA neuron's step (see [`spikeforge_model::ir::Tsa`]): double, integrate (bias at the
//! first step), clamp, then — after the silent steps — fire +1/−1 and subtract `±2θ`.
//!
//! The membrane's loop is one cycle, so it is kept short: the clamp leaves one of three values
//! (the bound `c`, its negation, or `2u + I` itself), and each value's fire decisions and next
//! membrane are computed beside the others and then selected, instead of comparing and
//! subtracting after the clamp (four chains in a row: 24 ns on ECP5). Every candidate is the
//! same `value_bits`-wide expression the clamped value would give, so the result is the same
//! bit for bit.
//!
//! In the register-rich style ([`crate::neuron::Ahead`]) the loop is shortened further. Since
//! the analysed ranges hold every value the golden model computes (`2u` included),
//! `2u + I ≥ θ` is exactly `2u ≥ θ − I` at one bit more, and likewise for the other compares;
//! the next step's current is known a cycle early, so those sums are registered then and the
//! loop keeps one carry chain (a compare or an add on `2u`) before the selection. What depends
//! on the parameters alone (the two clamped candidates' decisions and membranes) is
//! registered once per fold.

use spikeforge_model::ir::{NegativeSpikes, Tsa};

use crate::neuron::{carried, cleared_at_last, field, Ahead, StepIn, StepOut};
use crate::rtl::{index_bits, sext, LayerCtx};
use crate::vlog::*;

/// One candidate value of the clamped membrane: +1, −1, and the membrane after them.
type Candidate = (Expr, Expr, Expr);

/// The three candidates (the bound, its negation, the unclamped `2u + I`) and which one the
/// clamp leaves.
struct Candidates {
    above: Expr,
    below: Expr,
    hi: Candidate,
    lo: Candidate,
    mid: Candidate,
}

/// What every candidate's decision needs besides its value.
struct Gate {
    /// The step emits (past the silent steps).
    speaks: Expr,
    /// A −1 is allowed (the ReLU guard).
    may_negate: Expr,
}

/// The TSA step of lane `io.p`.
pub(crate) fn step(m: &mut Module, ctx: &LayerCtx, io: &StepIn, tsa: &Tsa) -> StepOut {
    let (p, vw) = (io.p, ctx.value_bits());
    let kw = index_bits(ctx.geo.local_steps as u64);
    let (u, prev) = carried(m, ctx, io, "u");
    let speaks = match (tsa.silent, io.k) {
        (0, _) | (_, None) => one(),
        (d, Some(k)) => k.clone().ge(lit(kw, d as u64)),
    };
    let speaks = m.wire_eq(&format!("speaks{p}"), 1, speaks);
    // The 1-bit ReLU guard: set by the first +1 of the position.
    let (fired, may_negate) = match (tsa.negative, io.k) {
        (NegativeSpikes::Always, _) => (None, one()),
        (NegativeSpikes::AfterPositive, None) => (None, zero()),
        (NegativeSpikes::AfterPositive, Some(_)) => {
            let f = m.reg(&format!("fired{p}"), 1);
            (Some(f.clone()), f)
        }
    };
    let gate = Gate { speaks, may_negate };
    let c = match (&io.ahead, &u) {
        (Some(ah), Some(u)) => prepared(m, ctx, io, ah, u, &gate),
        _ => direct(m, ctx, io, prev, &gate),
    };
    let above = m.wire_eq(&format!("above{p}"), 1, c.above);
    let below = m.wire_eq(&format!("below{p}"), 1, c.below);
    let pick = |a: Expr, b: Expr, x: Expr| above.clone().cond(a, below.clone().cond(b, x));
    let pos = m.wire_eq(&format!("fire_pos{p}"), 1, pick(c.hi.0, c.lo.0, c.mid.0));
    let neg = m.wire_eq(&format!("fire_neg{p}"), 1, pick(c.hi.1, c.lo.1, c.mid.1));
    let mut updates = vec![];
    let mut cleared = vec![];
    if let Some(u) = u {
        let next = pick(c.hi.2, c.lo.2, c.mid.2);
        updates.push(cleared_at_last(ctx, io, u.clone(), vw, next));
        cleared.push((u, vw));
    }
    if let Some(f) = fired {
        let next = f.clone().or(pos.clone());
        updates.push(cleared_at_last(ctx, io, f.clone(), 1, next));
        cleared.push((f, 1));
    }
    StepOut {
        updates,
        cleared,
        // Ternary spike, 2 bits: {negative, non-zero}.
        value: cat(vec![neg.clone(), pos.or(neg)]),
        emits: gate.speaks,
    }
}

/// The candidates computed in the loop from `2u + I` and this fold's parameters.
fn direct(m: &mut Module, ctx: &LayerCtx, io: &StepIn, prev: Expr, g: &Gate) -> Candidates {
    let (p, vw) = (io.p, ctx.value_bits());
    let thr = m.swire_eq(&format!("thr{p}"), vw, io.param(ctx, 0));
    let clamp = m.swire_eq(&format!("clamp{p}"), vw, io.param(ctx, 1));
    let low = m.swire_eq(&format!("low{p}"), vw, clamp.clone().neg());
    let nthr = m.swire_eq(&format!("nthr{p}"), vw, thr.clone().neg());
    let two = m.swire_eq(&format!("two{p}"), vw, thr.clone().shl(Expr::Int(1)));
    let un = m.swire_eq(
        &format!("un{p}"),
        vw,
        prev.shl(Expr::Int(1)).add(io.current.clone()),
    );
    // Per candidate value `x` of the clamped membrane.
    let mut candidate = |tag: &str, x: &Expr| {
        let ge = x.clone().ge(thr.clone());
        let lt = x.clone().lt(nthr.clone());
        let after = (
            x.clone().sub(two.clone()),
            x.clone().add(two.clone()),
            x.clone(),
        );
        decide(m, &format!("{tag}{p}"), vw, g, ge, lt, after)
    };
    Candidates {
        hi: candidate("hi", &clamp),
        lo: candidate("lo", &low),
        mid: candidate("mid", &un),
        above: un.clone().gt(clamp),
        below: un.lt(low),
    }
}

/// The candidates from registers prepared a cycle ahead (see the module's docs): per step
/// `c − I`, `c + I`, `θ − I`, `θ + I` (one bit wider), `I − 2θ`, `I + 2θ` and `I`; per fold,
/// for `x = ±c`, `x ≥ θ`, `x < −θ`, `x − 2θ`, `x + 2θ` and `x`.
fn prepared(
    m: &mut Module,
    ctx: &LayerCtx,
    io: &StepIn,
    ah: &Ahead,
    u: &Expr,
    g: &Gate,
) -> Candidates {
    let (p, vw) = (io.p, ctx.value_bits());
    let xw = vw + 1;
    let x = |e: Expr| sext(e, vw, xw);
    let mut per_step = Vec::new();
    let mut per_fold = Vec::new();
    let reg = |m: &mut Module, sets: &mut Vec<Stmt>, name: &str, w: u32, value: Expr| {
        let r = if w == 1 {
            m.reg(&format!("{name}{p}"), 1)
        } else {
            m.sreg(&format!("{name}{p}"), w)
        };
        sets.push(Stmt::Nb(r.clone(), value));
        r
    };
    // Per step, from the next step's current and the next step's parameters.
    let (thr, bound, cur) = (
        field(ctx, &ah.prm, io.param_lane, 0),
        field(ctx, &ah.prm, io.param_lane, 1),
        ah.current.clone(),
    );
    let s = &mut per_step;
    let clamp_hi = reg(m, s, "dhi", xw, x(bound.clone()).sub(x(cur.clone())));
    let clamp_lo = reg(m, s, "dlo", xw, x(bound).add(x(cur.clone())));
    let fire_pos = reg(m, s, "dpos", xw, x(thr.clone()).sub(x(cur.clone())));
    let fire_neg = reg(m, s, "dneg", xw, x(thr.clone()).add(x(cur.clone())));
    let two = thr.shl(Expr::Int(1));
    let after_pos = reg(m, s, "epos", vw, cur.clone().sub(two.clone()));
    let after_neg = reg(m, s, "eneg", vw, cur.clone().add(two));
    let current = reg(m, s, "ic", vw, cur);
    // Per fold, from the loaded fold's parameters.
    let thr = m.swire_eq(
        &format!("thr_in{p}"),
        vw,
        field(ctx, &ah.loaded_prm, io.param_lane, 0),
    );
    let bound = m.swire_eq(
        &format!("clamp_in{p}"),
        vw,
        field(ctx, &ah.loaded_prm, io.param_lane, 1),
    );
    let low = m.swire_eq(&format!("low_in{p}"), vw, bound.clone().neg());
    let nthr = m.swire_eq(&format!("nthr_in{p}"), vw, thr.clone().neg());
    let two = m.swire_eq(&format!("two_in{p}"), vw, thr.clone().shl(Expr::Int(1)));
    let mut edge = |m: &mut Module, tag: &str, v: &Expr| {
        let f = &mut per_fold;
        let ge = reg(m, f, &format!("ge_{tag}"), 1, v.clone().ge(thr.clone()));
        let lt = reg(m, f, &format!("lt_{tag}"), 1, v.clone().lt(nthr.clone()));
        let minus = reg(m, f, &format!("em_{tag}"), vw, v.clone().sub(two.clone()));
        let plus = reg(m, f, &format!("ep_{tag}"), vw, v.clone().add(two.clone()));
        let value = reg(m, f, &format!("ev_{tag}"), vw, v.clone());
        decide(m, &format!("{tag}{p}"), vw, g, ge, lt, (minus, plus, value))
    };
    let hi = edge(m, "hi", &bound);
    let lo = edge(m, "lo", &low);
    m.seq(vec![when(ah.advance.clone(), per_step)]);
    m.seq(vec![when(ah.load.clone(), per_fold)]);
    // In the loop: compares and sums on `2u`.
    let twice = m.swire_eq(&format!("twice{p}"), xw, cat(vec![u.clone(), lit(1, 0)]));
    let ge = twice.clone().ge(fire_pos);
    let lt = negative_sum(m, &format!("sneg{p}"), &twice, &fire_neg, xw);
    let doubled = u.clone().shl(Expr::Int(1));
    let sums = (
        doubled.clone().add(after_pos),
        doubled.clone().add(after_neg),
        doubled.add(current),
    );
    let mid = decide(m, &format!("mid{p}"), vw, g, ge, lt, sums);
    Candidates {
        above: twice.clone().gt(clamp_hi),
        below: negative_sum(m, &format!("slo{p}"), &twice, &clamp_lo, xw),
        hi,
        lo,
        mid,
    }
}

/// A candidate's decisions from its compares `ge` (`x ≥ θ`) and `lt` (`x < −θ`), and its
/// membrane after +1, after −1 and without a spike.
fn decide(
    m: &mut Module,
    tag: &str,
    vw: u32,
    g: &Gate,
    ge: Expr,
    lt: Expr,
    (minus, plus, value): (Expr, Expr, Expr),
) -> Candidate {
    let pos = m.wire_eq(&format!("pos_{tag}"), 1, g.speaks.clone().and(ge));
    let neg = m.wire_eq(
        &format!("neg_{tag}"),
        1,
        g.speaks.clone().and(lt).and(g.may_negate.clone()),
    );
    let after = m.swire_eq(
        &format!("after_{tag}"),
        vw,
        pos.clone().cond(minus, neg.clone().cond(plus, value)),
    );
    (pos, neg, after)
}

/// Whether `a + b` (`w` bits each, signed) is negative: the sign of their sum one bit wider,
/// a named wire.
fn negative_sum(m: &mut Module, name: &str, a: &Expr, b: &Expr, w: u32) -> Expr {
    let x = |e: &Expr| sext(e.clone(), w, w + 1);
    // Only the sign is read; the sum's other bits are the carry chain that makes it.
    m.items
        .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
    let sum = m.swire_eq(name, w + 1, x(a).add(x(b)));
    m.items
        .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
    sum.bit(w)
}
