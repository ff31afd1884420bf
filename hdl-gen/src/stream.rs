//! Stream stages after the neurons: 2×2 pooling of spike maps and the GAP/argmax head.

use spikeforge_model::geometry::bits_unsigned;
use spikeforge_model::ir::Pool;

use crate::names::{self, Names};
use crate::rtl::{index_bits, sext, stream_ports, zext, LayerCtx};
use crate::vlog::*;

/// 2×2 stride-2 pooling (OR or SUM) of a `[step][channel]` spike stream in raster order.
/// Even columns are held, odd columns pair up; even rows park their pairs in a row buffer,
/// odd rows complete them. An odd last row or column is consumed and dropped. Ternary spikes
/// (2-bit two's complement) sum to signed pairs and quads.
pub fn pool(ctx: &LayerCtx, names: &Names, kind: Pool) -> Module {
    let syn = ctx.geo.synaptic;
    let (h, w) = (syn.height, syn.width);
    let fields = ctx.steps * syn.channels;
    let ib = ctx.neuron_bits();
    let signed = ctx.layer.is_tsa();
    // Bits of one pair sum and of one quad sum.
    let (pb, ob) = match kind {
        Pool::Or => (1, 1),
        Pool::Sum => (ib + 1, ctx.out_value_bits()),
    };
    let mut m = Module::new(
        names.layer_module(ctx.index, "pool"),
        vec![format!(
            "Layer {} ({}): 2x2 {} pooling of a {h}x{w} spike map, {fields} {}spikes per position.",
            ctx.index,
            ctx.layer.name,
            if kind == Pool::Or { "OR" } else { "SUM" },
            if signed { "ternary " } else { "" }
        )],
    );
    stream_ports(&mut m, fields * ib, fields * ob, true);
    let (xw, yw) = (index_bits(w as u64), index_bits(h as u64));
    let x = m.reg("x", xw);
    let y = m.reg("y", yw);
    let hold = m.reg("hold", fields * ib);
    let rowbuf = m.mem("rowbuf", fields * pb, w / 2);
    let ri = if w / 2 == 1 {
        lit(1, 0)
    } else {
        x.clone().slice(index_bits((w / 2) as u64), 1)
    };
    let parked = m.wire_eq("parked", fields * pb, rowbuf.clone().idx(ri.clone()));
    let widths = PoolWidths {
        fields,
        input: ib,
        pair: pb,
        quad: ob,
        signed,
    };
    let (pair, quad) = pool_sums(kind, &widths, &hold, &parked);
    let pair = m.wire_eq("pair", fields * pb, pair);
    let quad = m.wire_eq("quad", fields * ob, quad);
    m.assign(id("in_ready"), id("out_valid").not().or(id("out_ready")));
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    let odd = |e: &Expr| e.clone().bit(0);
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(x.clone(), lit(xw, 0)),
            Stmt::Nb(y.clone(), lit(yw, 0)),
            Stmt::Nb(id("out_valid"), zero()),
        ],
        vec![
            when(
                id("out_valid").and(id("out_ready")),
                vec![Stmt::Nb(id("out_valid"), zero())],
            ),
            when(
                accept,
                vec![
                    Stmt::If(
                        odd(&x).not(),
                        vec![Stmt::Nb(hold, id("in_data"))],
                        vec![Stmt::If(
                            odd(&y).not(),
                            vec![Stmt::Nb(rowbuf.idx(ri), pair)],
                            vec![
                                Stmt::Nb(id("out_valid"), one()),
                                Stmt::Nb(id("out_data"), quad),
                            ],
                        )],
                    ),
                    raster_step((&x, xw, w), (&y, yw, h)),
                ],
            ),
        ],
    )]);
    m
}

/// Field counts and widths of a pooling unit.
struct PoolWidths {
    /// Values per position (steps × channels).
    fields: u32,
    /// Bits of one input value.
    input: u32,
    /// Bits of one pair sum (1 for OR).
    pair: u32,
    /// Bits of one quad sum, the output value (1 for OR).
    quad: u32,
    /// Ternary spikes: the sums are signed.
    signed: bool,
}

/// The pair (the held value with the input) and the quad (the parked pair with the `pair`
/// wire), per field: OR for spikes, sums for SUM pooling.
fn pool_sums(kind: Pool, pw: &PoolWidths, hold: &Expr, parked: &Expr) -> (Expr, Expr) {
    if kind == Pool::Or {
        return (
            hold.clone().bor(id("in_data")),
            parked.clone().bor(id("pair")),
        );
    }
    let field = |e: Expr, i: u32, b: u32| e.slice(i * b + b - 1, i * b);
    let ext = |e: Expr, from: u32, to: u32| {
        if pw.signed {
            sext(e, from, to)
        } else {
            zext(e, from, to)
        }
    };
    // Sum of field `i` of `a` and of `b`, each `from` bits wide, in `to` bits.
    let add = |a: &Expr, b: Expr, from: u32, to: u32| {
        let terms = (0..pw.fields).rev().map(|i| {
            ext(field(a.clone(), i, from), from, to).add(ext(field(b.clone(), i, from), from, to))
        });
        cat(terms.collect())
    };
    (
        add(hold, id("in_data"), pw.input, pw.pair),
        add(parked, id("pair"), pw.pair, pw.quad),
    )
}

/// Steps a raster position `(x, y)` (each `(register, width, size)`) to the next one, back to
/// the first after the last.
fn raster_step((x, xw, w): (&Expr, u32, u32), (y, yw, h): (&Expr, u32, u32)) -> Stmt {
    Stmt::If(
        x.clone().eq(lit(xw, (w - 1) as u64)),
        vec![
            Stmt::Nb(x.clone(), lit(xw, 0)),
            Stmt::Nb(
                y.clone(),
                y.clone()
                    .eq(lit(yw, (h - 1) as u64))
                    .cond(lit(yw, 0), y.clone().add(lit(yw, 1))),
            ),
        ],
        vec![Stmt::Nb(x.clone(), x.clone().add(lit(xw, 1)))],
    )
}

/// Widths of the head's output beat.
#[derive(Debug, Clone, Copy)]
pub struct HeadWidths {
    /// Bits of one logit.
    pub logit: u32,
    /// Bits of the class index.
    pub class: u32,
}

/// The GAP/argmax head: sums the last layer's values over positions and steps per class,
/// then emits `{logit[C-1], …, logit[0], class}` (class in the low bits).
pub fn head(last: &LayerCtx, names: &Names, hw: HeadWidths, signed_in: bool) -> Module {
    let out = last.geo.output;
    let classes = out.channels;
    let ob = last.out_value_bits();
    let steps = last.out_steps();
    let positions = out.positions() as u32;
    let (lw, cb) = (hw.logit, hw.class);
    let mut m = Module::new(
        names.head(),
        vec![format!(
            "GAP/argmax head: {classes} logits summed over {positions} positions x {steps} steps; \
             ties go to the lowest class index."
        )],
    );
    stream_ports(&mut m, steps * classes * ob, cb + classes * lw, true);
    // A finished image waits in `fin` until the output takes it.
    let fin_valid = m.reg("fin_valid", 1);
    m.assign(id("in_ready"), fin_valid.clone().not());
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    let mut logits = vec![];
    let mut next = vec![];
    for c in 0..classes {
        let lg = m.sreg(&format!("lg{c}"), lw);
        let mut sum = lg.clone();
        for t in 0..steps {
            let lo = (t * classes + c) * ob;
            let f = id("in_data").slice(lo + ob - 1, lo);
            sum = sum.add(if signed_in {
                sext(f, ob, lw)
            } else {
                zext(f, ob, lw)
            });
        }
        next.push(m.swire_eq(&format!("nl{c}"), lw, sum));
        logits.push(lg);
    }
    // The final logits are registered; the argmax runs on the registers next cycle, as a
    // balanced tree (log depth instead of a chain through every class).
    let fin: Vec<Expr> = (0..classes)
        .map(|c| m.sreg(&format!("fin{c}"), lw))
        .collect();
    let class = argmax_tree(&mut m, &fin, lw, cb);
    let mut beat: Vec<Expr> = fin.iter().rev().cloned().collect();
    beat.push(class);
    let finish = {
        let mut v: Vec<Stmt> = fin
            .iter()
            .zip(&next)
            .map(|(f, n)| Stmt::Nb(f.clone(), n.clone()))
            .collect();
        v.push(Stmt::Nb(fin_valid.clone(), one()));
        v.extend(logits.iter().map(|l| Stmt::Nb(l.clone(), slit(lw, 0))));
        v
    };
    let keep: Vec<Stmt> = logits
        .iter()
        .zip(&next)
        .map(|(l, n)| Stmt::Nb(l.clone(), n.clone()))
        .collect();
    let mut reset: Vec<Stmt> = logits
        .iter()
        .map(|l| Stmt::Nb(l.clone(), slit(lw, 0)))
        .collect();
    reset.push(Stmt::Nb(id("out_valid"), zero()));
    reset.push(Stmt::Nb(fin_valid.clone(), zero()));
    let on_accept = if positions == 1 {
        finish
    } else {
        let pw = index_bits(positions as u64);
        let count = m.reg("count", pw);
        reset.push(Stmt::Nb(count.clone(), lit(pw, 0)));
        let mut fin = finish;
        fin.push(Stmt::Nb(count.clone(), lit(pw, 0)));
        let mut cont = keep;
        cont.push(Stmt::Nb(count.clone(), count.clone().add(lit(pw, 1))));
        vec![Stmt::If(
            count.eq(lit(pw, (positions - 1) as u64)),
            fin,
            cont,
        )]
    };
    m.seq(vec![Stmt::If(
        id(names::RST),
        reset,
        vec![
            when(
                id("out_valid").and(id("out_ready")),
                vec![Stmt::Nb(id("out_valid"), zero())],
            ),
            when(
                fin_valid
                    .clone()
                    .and(id("out_valid").not().or(id("out_ready"))),
                vec![
                    Stmt::Nb(id("out_valid"), one()),
                    Stmt::Nb(id("out_data"), cat(beat)),
                    Stmt::Nb(fin_valid, zero()),
                ],
            ),
            when(accept, on_accept),
        ],
    )]);
    m
}

/// Argmax of signed `values` as a balanced tree of pairwise compares. Every left operand
/// holds lower class indices than its right one, and the right wins only when strictly
/// greater, so ties go to the lowest index.
fn argmax_tree(m: &mut Module, values: &[Expr], lw: u32, cb: u32) -> Expr {
    let mut level: Vec<(Expr, Expr)> = values
        .iter()
        .enumerate()
        .map(|(c, v)| (v.clone(), lit(cb, c as u64)))
        .collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let mut next = Vec::new();
        for (j, pair) in level.chunks(2).enumerate() {
            match pair {
                [(va, ia), (vb, ib)] => {
                    let take = m.wire_eq(&format!("take{depth}_{j}"), 1, vb.clone().gt(va.clone()));
                    // The root's value is not needed, only its index.
                    let v = if level.len() == 2 {
                        lit(1, 0)
                    } else {
                        m.swire_eq(
                            &format!("best{depth}_{j}"),
                            lw,
                            take.clone().cond(vb.clone(), va.clone()),
                        )
                    };
                    let i = m.wire_eq(
                        &format!("besti{depth}_{j}"),
                        cb,
                        take.cond(ib.clone(), ia.clone()),
                    );
                    next.push((v, i));
                }
                [single] => next.push(single.clone()),
                _ => unreachable!("chunks of two"),
            }
        }
        level = next;
    }
    level.pop().expect("at least one class").1
}
/// Bits of the class index for `classes` classes.
pub fn class_bits(classes: u32) -> u32 {
    bits_unsigned(classes.saturating_sub(1) as u64)
}
