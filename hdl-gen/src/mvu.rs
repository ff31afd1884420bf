//! The matrix-vector unit of a layer and its neuron. A window is latched into `win`; then for
//! every neuron fold `nf`, time step `t` and synapse fold `sf` (in that nesting) one
//! operation reads a weight word and an input word (registered reads, so the weight ROM maps
//! to block RAM) and, a cycle later, `PE` lanes accumulate `SIMD` products each. At the last
//! synapse fold of a step each lane runs one neuron step; its membrane stays in a register
//! across the `T` steps of the position.

use spikeforge_model::ir::{FireRule, Leak, Neuron, Reset};

use crate::names::{self, Names};
use crate::rtl::{fit, index_bits, resize, sext, stream_ports, zext, LayerCtx};
use crate::vlog::*;

/// Sum of unsigned `(term, width)` pairs as a balanced tree (log depth: short paths in
/// hardware, shallow nesting in the printed Verilog). Each node is one bit wider than its
/// wider operand, so no carry is lost and no adder is wider than it needs to be (an adder
/// at the accumulator width on every level costs about twice the logic). Nodes stop growing
/// at `cap` bits: the arithmetic is modular and only the low `cap` bits are used. Returns
/// the sum and its width. Terms must be at most `cap` bits wide.
pub fn sum_tree(mut terms: Vec<(Expr, u32)>, cap: u32) -> (Expr, u32) {
    match terms.len() {
        0 => (lit(1, 0), 1),
        1 => terms.pop().expect("one term"),
        n => {
            let right = terms.split_off(n / 2);
            let (a, wa) = sum_tree(terms, cap);
            let (b, wb) = sum_tree(right, cap);
            let w = (wa.max(wb) + 1).min(cap);
            (zext(a, wa, w).add(zext(b, wb, w)), w)
        }
    }
}

/// Declares `name` as the sum of unsigned terms (in its natural width, at most `aw`) and
/// returns it extended to `aw` bits.
fn sum_wire(m: &mut Module, name: &str, terms: Vec<(Expr, u32)>, aw: u32) -> Expr {
    let (sum, w) = sum_tree(terms, aw);
    let wire = m.wire_eq(name, w, sum);
    zext(wire, w, aw)
}

/// The sum of signed `tw`-bit wires/selects in `aw` bits, through unsigned offset form: a
/// two's-complement term plus `2^(tw-1)` is its bits with the sign bit inverted, so the tree
/// stays unsigned and one constant `n·2^(tw-1)` comes off at the end (all modulo 2^aw;
/// `tw ≤ aw`).
fn signed_sum(m: &mut Module, name: &str, terms: Vec<Expr>, tw: u32, aw: u32) -> Expr {
    let n = terms.len() as u64;
    let offset: Vec<(Expr, u32)> = terms
        .into_iter()
        .map(|t| {
            let msb = t.clone().bit(tw - 1).inv();
            let e = if tw == 1 {
                msb
            } else {
                cat(vec![msb, t.slice(tw - 2, 0)])
            };
            (e, tw)
        })
        .collect();
    let (sum, w) = sum_tree(offset, aw);
    let u = m.wire_eq(&format!("{name}_offset"), w, sum);
    let bias = (n << (tw - 1)) & ((1u64 << aw.min(63)) - 1);
    m.wire_eq(name, aw, zext(u, w, aw).sub(lit(aw, bias)))
}

/// Input `i` of the registered input word.
fn x_at(ctx: &LayerCtx, x_q: &Expr, i: u32) -> Expr {
    let xb = ctx.geo.input_bits;
    if xb == 1 {
        x_q.clone().bit(i)
    } else {
        x_q.clone().slice(i * xb + xb - 1, i * xb)
    }
}

/// How a layer's input values are coded on its stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InputCode {
    /// Unsigned 0/1 spikes.
    Spike,
    /// Unsigned multi-bit values (pixels, sum-pooled spikes).
    Unsigned,
    /// Ternary spikes: bit 0 "non-zero" (valid), bit 1 "negative" (sign).
    Ternary,
    /// Two's-complement multi-bit values (sum-pooled ternary spikes).
    Signed,
}

fn input_code(ctx: &LayerCtx) -> InputCode {
    match (ctx.geo.input_min < 0, ctx.geo.input_bits) {
        (false, 1) => InputCode::Spike,
        (false, _) => InputCode::Unsigned,
        (true, 2) => InputCode::Ternary,
        (true, _) => InputCode::Signed,
    }
}

/// Bit `b` of every input of the word, as one `SIMD`-bit vector (input `i` at bit `i`).
fn input_plane(m: &mut Module, ctx: &LayerCtx, x_q: &Expr, b: u32, name: &str) -> Expr {
    let bits = (0..ctx.fold.simd)
        .rev()
        .map(|i| x_q.clone().bit(i * ctx.geo.input_bits + b))
        .collect();
    m.wire_eq(name, ctx.fold.simd, cat(bits))
}

/// The sum of all inputs of the word, shared by the lanes of binary layers:
/// `Σ w·x = 2·Σ_{w=+1} x − Σ x` for `w ∈ {−1, +1}`; for ternary inputs the count of
/// non-zero spikes (`Σ w·x = 2·#{x ≠ 0, sign(x) = w} − #{x ≠ 0}`).
fn input_total(m: &mut Module, ctx: &LayerCtx, x_q: &Expr, aw: u32) -> Expr {
    let xb = ctx.geo.input_bits;
    let simd = ctx.fold.simd;
    match input_code(ctx) {
        InputCode::Ternary => {
            let valid = id("x_valid");
            let t = sum_wire(
                m,
                "x_sum",
                (0..simd).map(|i| (valid.clone().bit(i), 1)).collect(),
                aw,
            );
            m.wire_eq("x_total", aw, t)
        }
        InputCode::Signed => {
            let terms = (0..simd).map(|i| x_at(ctx, x_q, i)).collect();
            let t = signed_sum(m, "x_sum", terms, xb, aw);
            m.wire_eq("x_total", aw, t)
        }
        InputCode::Spike | InputCode::Unsigned => {
            let terms = (0..simd).map(|i| (x_at(ctx, x_q, i), xb)).collect();
            let t = sum_wire(m, "x_sum", terms, aw);
            m.wire_eq("x_total", aw, t)
        }
    }
}

/// A lane's dot product on signed inputs (ternary spikes, or their pooled sums).
fn signed_lane_dot(
    m: &mut Module,
    ctx: &LayerCtx,
    p: u32,
    x_q: &Expr,
    w_at: &dyn Fn(u32) -> Expr,
    total: Option<&Expr>,
) -> Expr {
    let (simd, xb, wb, aw) = (
        ctx.fold.simd,
        ctx.geo.input_bits,
        ctx.weight_bits(),
        ctx.acc_bits(),
    );
    let total = || total.expect("binary layers share x_total").clone();
    match (ctx.layer.is_binary(), input_code(ctx)) {
        (true, InputCode::Ternary) => {
            // +1 when the spike's sign matches the weight's: valid ∧ (sign ⊕ w).
            let both = m.wire_eq(
                &format!("agree_bits{p}"),
                simd,
                id("x_valid").band(id("x_sign").bxor(w_vector(w_at, simd))),
            );
            let s = sum_wire(
                m,
                &format!("agree{p}"),
                (0..simd).map(|i| (both.clone().bit(i), 1)).collect(),
                aw,
            );
            s.shl(Expr::Int(1)).sub(total())
        }
        (true, _) => {
            let terms = (0..simd)
                .map(|i| {
                    let t = Expr::Repl(xb, Box::new(w_at(i))).band(x_at(ctx, x_q, i));
                    m.wire_eq(&format!("term{p}_{i}"), xb, t)
                })
                .collect();
            let s = signed_sum(m, &format!("agree{p}"), terms, xb, aw);
            s.shl(Expr::Int(1)).sub(total())
        }
        (false, InputCode::Ternary) => {
            // valid ? (sign ? −w : w) : 0, with −w = ~w + 1 on a sign-extended w: the +1s are
            // counted once for the whole word.
            let tw = wb + 1;
            let mut terms = Vec::new();
            for i in 0..simd {
                let (valid, sign) = (x_q.clone().bit(i * 2), x_q.clone().bit(i * 2 + 1));
                let w = m.wire_eq(&format!("wx{p}_{i}"), wb, w_at(i));
                let flipped = sext(w, wb, tw).bxor(Expr::Repl(tw, Box::new(sign)));
                let t = Expr::Repl(tw, Box::new(valid)).band(flipped);
                terms.push(m.wire_eq(&format!("term{p}_{i}"), tw, t));
            }
            let s = signed_sum(m, &format!("wsum{p}"), terms, tw, aw);
            s.add(id("x_negs"))
        }
        (false, _) => {
            // x·w = Σ_{b<xb−1} x_b·(w << b) − x_{xb−1}·(w << (xb−1)) for two's-complement x;
            // every partial product is a gated, sign-extended, shifted w.
            let pw = wb + xb - 1;
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for i in 0..simd {
                let w = m.wire_eq(&format!("wx{p}_{i}"), wb, w_at(i));
                for b in 0..xb {
                    let xbit = x_q.clone().bit(i * xb + b);
                    let gated = m.wire_eq(
                        &format!("pp{p}_{i}_{b}"),
                        wb,
                        Expr::Repl(wb, Box::new(xbit)).band(w.clone()),
                    );
                    // A shift in a `pw`-bit context drops what leaves the word (Verilog-2005
                    // has no select of a concatenation).
                    let ext = sext(gated, wb, pw);
                    let shifted = if b == 0 {
                        ext
                    } else {
                        ext.shl(Expr::Int(b as i64))
                    };
                    let term = m.wire_eq(&format!("pps{p}_{i}_{b}"), pw, shifted);
                    if b + 1 == xb {
                        neg.push(term);
                    } else {
                        pos.push(term);
                    }
                }
            }
            // Bits at or above 2^aw vanish modulo 2^aw.
            let tw = pw.min(aw);
            let low = |v: Vec<Expr>| -> Vec<Expr> {
                v.into_iter()
                    .map(|t| if tw < pw { t.slice(tw - 1, 0) } else { t })
                    .collect()
            };
            let plus = signed_sum(m, &format!("pos{p}"), low(pos), tw, aw);
            let minus = signed_sum(m, &format!("neg{p}"), low(neg), tw, aw);
            plus.sub(minus)
        }
    }
}

/// The lane's `n` binary weights as one vector (weight `i` at bit `i`).
fn w_vector(w_at: &dyn Fn(u32) -> Expr, n: u32) -> Expr {
    cat((0..n).rev().map(w_at).collect())
}

/// One lane's partial sum over `SIMD` inputs, unrolled into an adder tree:
/// binary weights on spikes are `2·popcount(x ∧ w) − popcount(x)`, on multi-bit inputs
/// `2·Σ_{w=+1} x − Σ x`; integer weights on spikes add or skip, on multi-bit inputs multiply.
fn lane_dot(
    m: &mut Module,
    ctx: &LayerCtx,
    p: u32,
    x_q: &Expr,
    w_q: &Expr,
    total: Option<&Expr>,
) -> Expr {
    let (simd, xb, wb, aw) = (
        ctx.fold.simd,
        ctx.geo.input_bits,
        ctx.weight_bits(),
        ctx.acc_bits(),
    );
    let w_at = |i: u32| {
        let lo = (p * simd + i) * wb;
        if wb == 1 {
            w_q.clone().bit(lo)
        } else {
            w_q.clone().slice(lo + wb - 1, lo)
        }
    };
    if ctx.geo.input_min < 0 {
        return signed_lane_dot(m, ctx, p, x_q, &w_at, total);
    }
    let agree = |m: &mut Module, terms| sum_wire(m, &format!("agree{p}"), terms, aw);
    match (ctx.layer.is_binary(), xb == 1) {
        (true, true) => {
            let lo = p * simd;
            let both = m.wire_eq(
                &format!("agree_bits{p}"),
                simd,
                x_q.clone().band(w_q.clone().slice(lo + simd - 1, lo)),
            );
            let s = agree(m, (0..simd).map(|i| (both.clone().bit(i), 1)).collect());
            s.shl(Expr::Int(1))
                .sub(total.expect("binary layers share x_total").clone())
        }
        (true, false) => {
            let terms = (0..simd)
                .map(|i| {
                    (
                        Expr::Repl(xb, Box::new(w_at(i))).band(x_at(ctx, x_q, i)),
                        xb,
                    )
                })
                .collect();
            let s = agree(m, terms);
            s.shl(Expr::Int(1))
                .sub(total.expect("binary layers share x_total").clone())
        }
        (false, true) => {
            // Spikes select weights: each term is `x ? w : 0`.
            let mut terms = Vec::new();
            for i in 0..simd {
                let t = Expr::Repl(wb, Box::new(x_at(ctx, x_q, i))).band(w_at(i));
                terms.push(m.wire_eq(&format!("term{p}_{i}"), wb, t));
            }
            signed_sum(m, &format!("wsum{p}"), terms, wb, aw)
        }
        (false, false) => {
            // Shift-and-add: x·w = Σ_{b<wb-1} w_b·(x << b) − w_{wb-1}·(x << (wb-1)) for a
            // two's-complement w. Partial products join two unsigned trees (a generic
            // multiplier on sign-extended operands costs several times the logic).
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for i in 0..simd {
                let w = w_at(i);
                // Bits at or above 2^aw vanish modulo 2^aw: keep only what is below.
                for b in (0..wb).filter(|&b| b < aw) {
                    let keep = xb.min(aw - b);
                    let x = x_at(ctx, x_q, i);
                    let x = if keep < xb { x.slice(keep - 1, 0) } else { x };
                    let gated = Expr::Repl(keep, Box::new(w.clone().bit(b))).band(x);
                    let term = if b == 0 {
                        gated
                    } else {
                        cat(vec![gated, lit(b, 0)])
                    };
                    if b + 1 == wb {
                        neg.push((term, keep + b));
                    } else {
                        pos.push((term, keep + b));
                    }
                }
            }
            let plus = sum_wire(m, &format!("pos{p}"), pos, aw);
            let minus = sum_wire(m, &format!("neg{p}"), neg, aw);
            plus.sub(minus)
        }
    }
}

/// Generates the MVU + neuron module of a layer.
pub fn mvu(ctx: &LayerCtx, names: &Names) -> Module {
    let g = &ctx.geo;
    let (t, ti) = (g.local_steps, g.input_steps);
    let (pe, simd) = (ctx.fold.pe, ctx.fold.simd);
    let (nf, sf) = (ctx.nf(), ctx.sf());
    let (xb, wb, aw, vw) = (
        g.input_bits,
        ctx.weight_bits(),
        ctx.acc_bits(),
        ctx.value_bits(),
    );
    let cout = g.synaptic.channels;
    let ob = ctx.neuron_bits();
    let out_w = ctx.neuron_beat_bits();
    // TSA layers see no input after their input steps (the pixel layer's only step, or the
    // T steps before the silent period's extra ones); LIF layers reuse the pixel step.
    let gated = ctx.layer.is_tsa() && t > ti;
    let mut m = Module::new(
        names.layer_module(ctx.index, "mvu"),
        vec![format!(
            "Layer {} ({}): {} synapses, fan-in {}, {} outputs; PE = {pe}, SIMD = {simd}: \
             {} cycles per position.",
            ctx.index,
            ctx.layer.name,
            if ctx.layer.is_binary() {
                "binary"
            } else {
                "integer"
            },
            g.fan_in,
            cout,
            nf * t * sf
        )],
    );
    m.params.push(("ROM_DIR".into(), Expr::Str(String::new())));
    stream_ports(&mut m, ctx.window_bits(), out_w, true);
    m.comment("Window store, weight ROM (PE x SIMD weights per word) and neuron parameter ROM.");
    let win = m.mem("win", simd * xb, ti * sf);
    let wrom = m.mem("wrom", pe * simd * wb, nf * sf);
    let prm = m.mem("prm", pe * ctx.lane_param_bits(), nf);
    let dir = id("ROM_DIR");
    m.items.push(Item::Initial(vec![
        Stmt::Task(
            "$readmemh".into(),
            vec![
                cat(vec![dir.clone(), Expr::Str(names.weight_file(ctx.index))]),
                wrom.clone(),
            ],
        ),
        Stmt::Task(
            "$readmemh".into(),
            vec![
                cat(vec![dir, Expr::Str(names.param_file(ctx.index))]),
                prm.clone(),
            ],
        ),
    ]));
    let (nfw, tw, sfw) = (
        index_bits(nf as u64),
        index_bits(t as u64),
        index_bits(sf as u64),
    );
    let (waw, xaw) = (index_bits((nf * sf) as u64), index_bits((ti * sf) as u64));
    m.comment("Control: operation counters (stage A) and the registered operands (stage B).");
    let busy = m.reg("busy", 1);
    let issuing = m.reg("issuing", 1);
    let drain = m.reg("drain", 1);
    let nf_a = m.reg("nf_a", nfw);
    let t_a = m.reg("t_a", tw);
    let sf_a = m.reg("sf_a", sfw);
    let wa = m.reg("wa", waw);
    let xa = m.reg("xa", xaw);
    let w_q = m.reg("w_q", pe * simd * wb);
    let x_q = m.reg("x_q", simd * xb);
    let b_v = m.reg("b_v", 1);
    let b_first = m.reg("b_first", 1);
    let b_last = m.reg("b_last", 1);
    let b_end = m.reg("b_end", 1);
    // With one time step there is no step to carry a membrane across.
    let b_t = (t > 1).then(|| m.reg("b_t", tw));
    let b_nf = m.reg("b_nf", nfw);
    // Stage C: the lanes' dot products are registered, so the adder trees and the neuron
    // arithmetic are separate paths (about twice the clock of one long path).
    let c_v = m.reg("c_v", 1);
    let c_first = m.reg("c_first", 1);
    let c_last = m.reg("c_last", 1);
    let c_end = m.reg("c_end", 1);
    let c_t = (t > 1).then(|| m.reg("c_t", tw));
    let c_nf = m.reg("c_nf", nfw);
    let obuf = m.reg("obuf", out_w);
    m.assign(id("in_ready"), busy.clone().not());
    let accept = m.wire_eq("accept", 1, id("in_valid").and(busy.clone().not()));
    let last_sf = m.wire_eq("last_sf", 1, sf_a.clone().eq(lit(sfw, (sf - 1) as u64)));
    let last_t = m.wire_eq("last_t", 1, t_a.clone().eq(lit(tw, (t - 1) as u64)));
    let last_nf = m.wire_eq("last_nf", 1, nf_a.clone().eq(lit(nfw, (nf - 1) as u64)));
    let prm_b = m.wire_eq("prm_b", pe * ctx.lane_param_bits(), prm.idx(c_nf.clone()));
    let obw = index_bits(out_w as u64);
    let mut obase = zext(c_nf.clone(), nfw, obw).mul(lit(obw, (pe * ob) as u64));
    if let (Some(bt), true) = (&c_t, ctx.out_steps() > 1) {
        // Output step m = local step − silent (written only once the neuron may speak).
        let silent = g.local_steps - ctx.steps;
        let step = if silent == 0 {
            bt.clone()
        } else {
            m.wire_eq("ostep", tw, bt.clone().sub(lit(tw, silent as u64)))
        };
        obase = resize(step, tw, obw)
            .mul(lit(obw, (cout * ob) as u64))
            .add(obase);
    }
    let obase = if out_w > ob {
        m.wire_eq("obase", obw, obase)
    } else {
        lit(1, 0)
    };
    if input_code(ctx) == InputCode::Ternary {
        let valid = input_plane(&mut m, ctx, &x_q, 0, "x_valid");
        let sign = input_plane(&mut m, ctx, &x_q, 1, "x_sign");
        if !ctx.layer.is_binary() {
            // The negated weights' +1s, shared by the lanes (see `signed_lane_dot`).
            let negs = (0..simd)
                .map(|i| (valid.clone().bit(i).band(sign.clone().bit(i)), 1))
                .collect();
            let n = sum_wire(&mut m, "x_neg_count", negs, aw);
            m.wire_eq("x_negs", aw, n);
        }
    }
    let total = ctx
        .layer
        .is_binary()
        .then(|| input_total(&mut m, ctx, &x_q, aw));
    let mut lane_updates = Vec::new();
    for p in 0..pe {
        lane_updates.extend(lane(
            &mut m,
            ctx,
            p,
            &w_q,
            &x_q,
            total.as_ref(),
            &c_first,
            &c_last,
            &c_t,
            &prm_b,
            &obuf,
            &obase,
            obw,
            aw,
            vw,
        ));
    }
    let xa_next_t = if ti == 1 {
        lit(xaw, 0)
    } else if gated {
        // Back to the start after the last input step (the steps after it read nothing).
        t_a.clone()
            .eq(lit(tw, (ti - 1) as u64))
            .cond(lit(xaw, 0), xa.clone().add(lit(xaw, 1)))
    } else {
        xa.clone().add(lit(xaw, 1))
    };
    let x_read = win.clone().idx(xa.clone());
    let x_read = if gated {
        t_a.clone()
            .lt(lit(tw, ti as u64))
            .cond(x_read, lit(simd * xb, 0))
    } else {
        x_read
    };
    let mut issue = vec![
        Stmt::Nb(w_q, wrom.idx(wa.clone())),
        Stmt::Nb(x_q, x_read),
        Stmt::Nb(b_v.clone(), one()),
        Stmt::Nb(b_first.clone(), sf_a.clone().eq(lit(sfw, 0))),
        Stmt::Nb(b_last.clone(), last_sf.clone()),
        Stmt::Nb(b_nf.clone(), nf_a.clone()),
        Stmt::Nb(
            b_end.clone(),
            last_sf.clone().and(last_t.clone()).and(last_nf.clone()),
        ),
        Stmt::If(
            last_sf.not(),
            vec![
                Stmt::Nb(sf_a.clone(), sf_a.clone().add(lit(sfw, 1))),
                Stmt::Nb(wa.clone(), wa.clone().add(lit(waw, 1))),
                Stmt::Nb(xa.clone(), xa.clone().add(lit(xaw, 1))),
            ],
            vec![
                Stmt::Nb(sf_a.clone(), lit(sfw, 0)),
                Stmt::If(
                    last_t.not(),
                    vec![
                        Stmt::Nb(t_a.clone(), t_a.clone().add(lit(tw, 1))),
                        Stmt::Nb(wa.clone(), wa.clone().sub(lit(waw, (sf - 1) as u64))),
                        Stmt::Nb(xa.clone(), xa_next_t),
                    ],
                    vec![
                        Stmt::Nb(t_a.clone(), lit(tw, 0)),
                        Stmt::Nb(xa.clone(), lit(xaw, 0)),
                        Stmt::If(
                            last_nf.not(),
                            vec![
                                Stmt::Nb(nf_a.clone(), nf_a.clone().add(lit(nfw, 1))),
                                Stmt::Nb(wa.clone(), wa.clone().add(lit(waw, 1))),
                            ],
                            vec![Stmt::Nb(issuing.clone(), zero())],
                        ),
                    ],
                ),
            ],
        ),
    ];
    if let Some(bt) = b_t.clone() {
        issue.push(Stmt::Nb(bt, t_a.clone()));
    }
    // Unrolled: Verilator cannot schedule non-blocking array writes inside long loops.
    let mut load: Vec<Stmt> = (0..ti * sf)
        .map(|e| {
            let w = simd * xb;
            Stmt::Nb(
                win.clone().idx(lit(xaw, e as u64)),
                id("in_data").slice(e * w + w - 1, e * w),
            )
        })
        .collect();
    load.extend([
        Stmt::Nb(busy.clone(), one()),
        Stmt::Nb(issuing.clone(), one()),
        Stmt::Nb(nf_a.clone(), lit(nfw, 0)),
        Stmt::Nb(t_a.clone(), lit(tw, 0)),
        Stmt::Nb(sf_a.clone(), lit(sfw, 0)),
        Stmt::Nb(wa.clone(), lit(waw, 0)),
        Stmt::Nb(xa.clone(), lit(xaw, 0)),
    ]);
    m.comment("Sequencing: accept a window, issue NF x T x SF operations, hand the result over.");
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(busy.clone(), zero()),
            Stmt::Nb(issuing.clone(), zero()),
            Stmt::Nb(drain.clone(), zero()),
            Stmt::Nb(b_v.clone(), zero()),
            Stmt::Nb(c_v.clone(), zero()),
            Stmt::Nb(id("out_valid"), zero()),
        ],
        vec![
            when(accept, load),
            Stmt::If(issuing, issue, vec![Stmt::Nb(b_v.clone(), zero())]),
            Stmt::Nb(c_v.clone(), b_v.clone()),
            when(
                c_v.clone().and(c_end.clone()),
                vec![Stmt::Nb(drain.clone(), one())],
            ),
            when(
                id("out_valid").and(id("out_ready")),
                vec![Stmt::Nb(id("out_valid"), zero())],
            ),
            when(
                drain.clone().and(id("out_valid").not().or(id("out_ready"))),
                vec![
                    Stmt::Nb(id("out_valid"), one()),
                    Stmt::Nb(id("out_data"), obuf),
                    Stmt::Nb(drain, zero()),
                    Stmt::Nb(busy, zero()),
                ],
            ),
        ],
    )]);
    let mut stage_c = vec![
        Stmt::Nb(c_first, b_first.clone()),
        Stmt::Nb(c_last, b_last.clone()),
        Stmt::Nb(c_end, b_end.clone()),
        Stmt::Nb(c_nf, b_nf.clone()),
    ];
    if let (Some(ct), Some(bt)) = (c_t, b_t.clone()) {
        stage_c.push(Stmt::Nb(ct, bt));
    }
    m.seq(stage_c);
    m.comment("Lanes: accumulate, then one neuron step at the last synapse fold of a step.");
    m.seq(lane_updates);
    m
}

/// What a lane's neuron reads and writes, beyond its own registers.
struct LaneIo<'e> {
    /// The lane index.
    p: u32,
    /// Stage C: last synapse fold of a step (the neuron steps).
    last: &'e Expr,
    /// Stage C: the local step, when there is more than one.
    step: &'e Option<Expr>,
    /// The parameter word of the lane's neuron fold.
    prm: &'e Expr,
    /// This step's synaptic current, in the neuron width.
    sum: Expr,
    /// The lane's bias.
    bias: Expr,
    /// Output buffer, and the bit where this lane's value of this step goes.
    obuf: &'e Expr,
    bit: Expr,
}

impl LaneIo<'_> {
    /// Field `k` (after the bias) of the lane's parameters, `w` bits wide.
    fn param(&self, ctx: &LayerCtx, k: u32, w: u32) -> Expr {
        let at = self.p * ctx.lane_param_bits() + k * ctx.value_bits();
        self.prm.clone().part(Expr::Int(at as i64), w)
    }
    /// Writes `value` (`ob` bits) into the output buffer.
    fn write(&self, ctx: &LayerCtx, value: Expr) -> Stmt {
        let ob = ctx.neuron_bits();
        if ctx.neuron_beat_bits() == ob {
            Stmt::Nb(self.obuf.clone(), value)
        } else if ob == 1 {
            Stmt::Nb(self.obuf.clone().idx(self.bit.clone()), value)
        } else {
            Stmt::Nb(self.obuf.clone().part(self.bit.clone(), ob), value)
        }
    }
    /// Whether this is the first local step of a position (always, with one step).
    fn first_step(&self, m: &mut Module, ctx: &LayerCtx) -> Expr {
        let tw = index_bits(ctx.geo.local_steps as u64);
        match self.step {
            Some(t) => m.wire_eq(
                &format!("first_step{}", self.p),
                1,
                t.clone().eq(lit(tw, 0)),
            ),
            None => one(),
        }
    }
}

/// One lane: its accumulator, neuron and result write; returns its sequential statements.
#[allow(clippy::too_many_arguments)]
fn lane(
    m: &mut Module,
    ctx: &LayerCtx,
    p: u32,
    w_q: &Expr,
    x_q: &Expr,
    total: Option<&Expr>,
    b_first: &Expr,
    b_last: &Expr,
    b_t: &Option<Expr>,
    prm_b: &Expr,
    obuf: &Expr,
    obase: &Expr,
    obw: u32,
    aw: u32,
    vw: u32,
) -> Vec<Stmt> {
    let lpw = ctx.lane_param_bits();
    let ob = ctx.neuron_bits();
    let dot = lane_dot(m, ctx, p, x_q, w_q, total);
    let dot = m.wire_eq(&format!("dot{p}"), aw, dot);
    let dot_q = m.reg(&format!("dot_q{p}"), aw);
    let acc = m.reg(&format!("acc{p}"), aw);
    let sum = m.wire_eq(
        &format!("sum{p}"),
        aw,
        b_first
            .clone()
            .cond(lit(aw, 0), acc.clone())
            .add(dot_q.clone()),
    );
    let bias = m.swire_eq(
        &format!("bias{p}"),
        vw,
        prm_b.clone().part(Expr::Int((p * lpw) as i64), vw),
    );
    let bit = if ctx.neuron_beat_bits() > ob {
        m.wire_eq(
            &format!("obit{p}"),
            obw,
            obase.clone().add(lit(obw, (p * ob) as u64)),
        )
    } else {
        lit(1, 0)
    };
    let io = LaneIo {
        p,
        last: b_last,
        step: b_t,
        prm: prm_b,
        sum: fit(sum.clone(), aw, vw),
        bias,
        obuf,
        bit,
    };
    let mut stmts = vec![
        Stmt::Nb(dot_q, dot),
        when(id("c_v"), vec![Stmt::Nb(acc, sum)]),
    ];
    stmts.push(match &ctx.layer.neuron {
        Neuron::Lif(lif) => lif_neuron(m, ctx, &io, lif),
        Neuron::Tsa(tsa) => tsa_neuron(m, ctx, &io, tsa),
        Neuron::TsaReadout { .. } => readout_neuron(m, ctx, &io),
        Neuron::None { .. } => {
            let val = m.swire_eq(&format!("val{p}"), vw, io.sum.clone().add(io.bias.clone()));
            when(id("c_v").and(b_last.clone()), vec![io.write(ctx, val)])
        }
    });
    stmts
}

/// The membrane register of a lane carried across local steps (`None` with one step), and
/// its value entering this step: 0 at the first step of a position.
fn carried(
    m: &mut Module,
    ctx: &LayerCtx,
    io: &LaneIo,
    name: &str,
    w: u32,
) -> (Option<Expr>, Expr) {
    let p = io.p;
    let tw = index_bits(ctx.geo.local_steps as u64);
    let v = io.step.as_ref().map(|_| m.sreg(&format!("{name}{p}"), w));
    let prev = match (io.step, &v) {
        (Some(t), Some(v)) => m.swire_eq(
            &format!("prev{p}"),
            w,
            t.clone().eq(lit(tw, 0)).cond(slit(w, 0), v.clone()),
        ),
        _ => slit(w, 0),
    };
    (v, prev)
}

fn lif_neuron(
    m: &mut Module,
    ctx: &LayerCtx,
    io: &LaneIo,
    lif: &spikeforge_model::ir::Lif,
) -> Stmt {
    let (p, vw) = (io.p, ctx.value_bits());
    let thr = m.swire_eq(&format!("thr{p}"), vw, io.param(ctx, 1, vw));
    let pol = m.wire_eq(&format!("pol{p}"), 1, io.param(ctx, 2, 1));
    let cur = m.swire_eq(
        &format!("cur{p}"),
        vw,
        pol.cond(io.sum.clone().neg(), io.sum.clone())
            .add(io.bias.clone()),
    );
    let (v, prev) = carried(m, ctx, io, "v", vw);
    let leaked = match lif.leak {
        Leak::None => prev,
        Leak::Shift { shift } => prev.ashr(Expr::Int(shift as i64)),
        Leak::Decay { shift } => prev.clone().sub(prev.ashr(Expr::Int(shift as i64))),
    };
    let vn = m.swire_eq(&format!("vn{p}"), vw, leaked.add(cur));
    let fire = match lif.fire {
        FireRule::Ge => vn.clone().ge(thr.clone()),
        FireRule::Gt => vn.clone().gt(thr.clone()),
    };
    let fire = m.wire_eq(&format!("fire{p}"), 1, fire);
    let after = match lif.reset {
        Reset::Hard => slit(vw, 0),
        Reset::Subtract => vn.clone().sub(thr),
    };
    let mut update = vec![];
    if let Some(v) = v {
        update.push(Stmt::Nb(v, fire.clone().cond(after, vn)));
    }
    update.push(io.write(ctx, fire));
    when(id("c_v").and(io.last.clone()), update)
}

/// The TSA neuron step (see [`spikeforge_model::ir::Tsa`]): double, integrate (bias at the
/// first step), clamp, then — after the silent steps — fire +1/−1 and subtract `±2θ`.
fn tsa_neuron(
    m: &mut Module,
    ctx: &LayerCtx,
    io: &LaneIo,
    tsa: &spikeforge_model::ir::Tsa,
) -> Stmt {
    let (p, vw) = (io.p, ctx.value_bits());
    let tw = index_bits(ctx.geo.local_steps as u64);
    let thr = m.swire_eq(&format!("thr{p}"), vw, io.param(ctx, 1, vw));
    let clamp = m.swire_eq(&format!("clamp{p}"), vw, io.param(ctx, 2, vw));
    let pol = m.wire_eq(&format!("pol{p}"), 1, io.param(ctx, 3, 1));
    let first = io.first_step(m, ctx);
    let cur = m.swire_eq(
        &format!("cur{p}"),
        vw,
        pol.cond(io.sum.clone().neg(), io.sum.clone())
            .add(first.clone().cond(io.bias.clone(), slit(vw, 0))),
    );
    let (u, prev) = carried(m, ctx, io, "u", vw);
    let un = m.swire_eq(&format!("un{p}"), vw, prev.shl(Expr::Int(1)).add(cur));
    let low = clamp.clone().neg();
    let uc = m.swire_eq(
        &format!("uc{p}"),
        vw,
        un.clone()
            .gt(clamp.clone())
            .cond(clamp, un.clone().lt(low.clone()).cond(low, un)),
    );
    let speaks = match (tsa.silent, io.step) {
        (0, _) | (_, None) => one(),
        (d, Some(t)) => t.clone().ge(lit(tw, d as u64)),
    };
    let speaks = m.wire_eq(&format!("speaks{p}"), 1, speaks);
    // The 1-bit ReLU guard: set by the first +1 of the position.
    let guard = tsa.negative == spikeforge_model::ir::NegativeSpikes::AfterPositive;
    let (fired, may_negate) = match (guard, io.step) {
        (false, _) => (None, one()),
        (true, None) => (None, zero()),
        (true, Some(t)) => {
            let f = m.reg(&format!("fired{p}"), 1);
            let fin = m.wire_eq(
                &format!("fired_in{p}"),
                1,
                t.clone().eq(lit(tw, 0)).cond(zero(), f.clone()),
            );
            (Some((f, fin.clone())), fin)
        }
    };
    let pos = m.wire_eq(
        &format!("fire_pos{p}"),
        1,
        speaks.clone().and(uc.clone().ge(thr.clone())),
    );
    let neg = m.wire_eq(
        &format!("fire_neg{p}"),
        1,
        speaks
            .clone()
            .and(uc.clone().lt(thr.clone().neg()))
            .and(may_negate),
    );
    let two = thr.shl(Expr::Int(1));
    let after = pos.clone().cond(
        uc.clone().sub(two.clone()),
        neg.clone().cond(uc.clone().add(two), uc),
    );
    let mut update = vec![];
    if let Some(u) = u {
        update.push(Stmt::Nb(u, after));
    }
    if let Some((f, fin)) = fired {
        update.push(Stmt::Nb(f, fin.or(pos.clone())));
    }
    // Ternary spike, 2 bits: {negative, non-zero}.
    let spike = cat(vec![neg.clone(), pos.or(neg)]);
    update.push(when(speaks, vec![io.write(ctx, spike)]));
    when(id("c_v").and(io.last.clone()), update)
}

/// The TSA readout: `u ← 2u + I` (bias at the first step); the last step's `u` is the output.
fn readout_neuron(m: &mut Module, ctx: &LayerCtx, io: &LaneIo) -> Stmt {
    let (p, vw) = (io.p, ctx.value_bits());
    let lt = ctx.geo.local_steps;
    let tw = index_bits(lt as u64);
    let first = io.first_step(m, ctx);
    let (u, prev) = carried(m, ctx, io, "u", vw);
    let un = m.swire_eq(
        &format!("un{p}"),
        vw,
        prev.shl(Expr::Int(1))
            .add(io.sum.clone())
            .add(first.cond(io.bias.clone(), slit(vw, 0))),
    );
    let last_step = match io.step {
        Some(t) => t.clone().eq(lit(tw, (lt - 1) as u64)),
        None => one(),
    };
    let mut update = vec![];
    if let Some(u) = u {
        update.push(Stmt::Nb(u, un.clone()));
    }
    update.push(when(
        last_step,
        vec![io.write(ctx, fit(un, vw, ctx.neuron_bits()))],
    ));
    when(id("c_v").and(io.last.clone()), update)
}
