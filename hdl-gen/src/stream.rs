//! Stream stages after the neurons: 2×2 pooling of spike maps and the GAP/argmax head.

use spikeforge_model::geometry::bits_unsigned;
use spikeforge_model::ir::{Neuron, Pool};

use crate::names::Names;
use crate::rtl::{
    at_last, counter, index_bits, output_process, sext, stream_ports, zext, LayerCtx,
};
use crate::vlog::*;

/// 2×2 stride-2 pooling (OR or SUM) of a spike stream in raster order whose beats carry `PE`
/// channels × steps (`[step][channel]`), `NF` beats per position. Even columns are held per
/// channel group; odd columns pair up; even rows park their pairs in a row buffer (block RAM
/// when large: its read is registered and prefetched for the next beat), odd rows complete
/// them. An odd last row or column is consumed and dropped. Ternary spikes (2-bit two's
/// complement) sum to signed pairs and quads.
pub fn pool(ctx: &LayerCtx, names: &Names, kind: Pool) -> Module {
    let syn = ctx.geo.synaptic;
    let (h, w) = (syn.height, syn.width);
    let ng = ctx.nf();
    let fields = ctx.out_steps() * ctx.fold.pe;
    let ib = ctx.neuron_bits();
    // Ternary spikes pool to signed sums.
    let signed = match ctx.layer.neuron {
        Neuron::Tsa(_) => true,
        Neuron::Lif(_) | Neuron::None { .. } | Neuron::TsaReadout { .. } => false,
    };
    // Bits of one pair sum and of one quad sum.
    let (pb, ob) = match kind {
        Pool::Or => (1, 1),
        Pool::Sum => (ib + 1, ctx.out_value_bits()),
    };
    let mut m = Module::new(
        names.layer_module(ctx.index, "pool"),
        vec![format!(
            "Layer {} ({}): 2x2 {} pooling of a {h}x{w} spike map, {ng} beat(s) of {fields} {}spikes per position.",
            ctx.index,
            ctx.layer.name,
            if kind == Pool::Or { "OR" } else { "SUM" },
            if signed { "ternary " } else { "" }
        )],
    );
    stream_ports(&mut m, fields * ib, fields * ob, true);
    let g = counter(&mut m, "g", ng);
    let x = counter(&mut m, "x", w);
    let y = counter(&mut m, "y", h);
    let hold = m.mem("hold", fields * ib, ng);
    let pairs = w.div_ceil(2) * ng;
    let rowbuf = m.mem("rowbuf", fields * pb, pairs);
    let rb_q = m.reg("rb_q", fields * pb);
    let gi = |c: &Option<(Expr, u32)>| c.as_ref().map_or(lit(1, 0), |(r, _)| r.clone());
    let held = m.wire_eq("held", fields * ib, hold.clone().idx(gi(&g)));
    let widths = PoolWidths {
        fields,
        input: ib,
        pair: pb,
        quad: ob,
        signed,
    };
    let (pair, quad) = pool_sums(kind, &widths, &held, &rb_q);
    let pair = m.wire_eq("pair", fields * pb, pair);
    let quad = m.wire_eq("quad", fields * ob, quad);
    m.assign(id("in_ready"), id("out_valid").not().or(id("out_ready")));
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    // The counters after this beat, and the row-buffer address of a beat.
    let next = |m: &mut Module, c: &Option<(Expr, u32)>, n: u32, carry: &Expr, name: &str| {
        c.as_ref().map(|(r, cw)| {
            let wrapped = r
                .clone()
                .eq(lit(*cw, (n - 1) as u64))
                .cond(lit(*cw, 0), r.clone().add(lit(*cw, 1)));
            m.wire_eq(name, *cw, carry.clone().cond(wrapped, r.clone()))
        })
    };
    let g_last = m.wire_eq("g_last", 1, at_last(&g, ng));
    let x_last = m.wire_eq("x_last", 1, g_last.clone().and(at_last(&x, w)));
    let g_n = next(&mut m, &g, ng, &one(), "g_n");
    let x_n = next(&mut m, &x, w, &g_last, "x_n");
    let y_n = next(&mut m, &y, h, &x_last, "y_n");
    let aw = index_bits(pairs as u64);
    let addr = |xv: &Option<Expr>, gv: &Option<Expr>| {
        let col = match (xv, &x) {
            (Some(e), Some((_, cw))) if w > 2 => {
                crate::rtl::resize(e.clone().slice(*cw - 1, 1), *cw - 1, aw)
            }
            _ => lit(aw, 0),
        };
        let gg = match gv {
            Some(e) => crate::rtl::resize(e.clone(), index_bits(ng as u64), aw),
            None => lit(aw, 0),
        };
        crate::rtl::mul_const(col, aw, ng as u64).add(gg)
    };
    let cur = (
        x.as_ref().map(|c| c.0.clone()),
        g.as_ref().map(|c| c.0.clone()),
    );
    let a_cur = m.wire_eq("rb_addr", aw, addr(&cur.0, &cur.1));
    let a_next = m.wire_eq("rb_next", aw, addr(&x_n, &g_n));
    let odd = |c: &Option<(Expr, u32)>| c.as_ref().map_or(zero(), |(r, _)| r.clone().bit(0));
    let mut on_accept = vec![Stmt::If(
        odd(&x).not(),
        vec![Stmt::Nb(hold.idx(gi(&g)), id("in_data"))],
        vec![Stmt::If(
            odd(&y).not(),
            vec![Stmt::Nb(rowbuf.clone().idx(a_cur.clone()), pair)],
            vec![
                Stmt::Nb(id("out_valid"), one()),
                Stmt::Nb(id("out_data"), quad),
            ],
        )],
    )];
    let mut reset = vec![Stmt::Nb(id("out_valid"), zero())];
    for (c, n) in [(&g, &g_n), (&x, &x_n), (&y, &y_n)] {
        if let (Some((r, cw)), Some(nv)) = (c, n) {
            on_accept.push(Stmt::Nb(r.clone(), nv.clone()));
            reset.push(Stmt::Nb(r.clone(), lit(*cw, 0)));
        }
    }
    m.seq(vec![Stmt::Nb(
        rb_q,
        rowbuf.idx(accept.clone().cond(a_next, a_cur)),
    )]);
    m.seq(vec![output_process(reset, vec![when(accept, on_accept)])]);
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
    let g = last.fold.pe;
    let ng = last.nf();
    let beats = out.positions() as u32 * ng;
    let (lw, cb) = (hw.logit, hw.class);
    let mut m = Module::new(
        names.head(),
        vec![format!(
            "GAP/argmax head: {classes} logits summed over {} positions x {steps} steps, \
             {g} classes per beat; ties go to the lowest class index.",
            out.positions()
        )],
    );
    stream_ports(&mut m, steps * g * ob, cb + classes * lw, true);
    // A finished image waits in `fin` until the output takes it.
    let fin_valid = m.reg("fin_valid", 1);
    m.assign(id("in_ready"), fin_valid.clone().not());
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    let group = counter(&mut m, "grp", ng);
    let mut logits = vec![];
    let mut next = vec![];
    for c in 0..classes {
        let lg = m.sreg(&format!("lg{c}"), lw);
        let mut sum = lit(lw, 0);
        for t in 0..steps {
            let lo = (t * g + c % g) * ob;
            let f = id("in_data").slice(lo + ob - 1, lo);
            sum = sum.add(if signed_in {
                sext(f, ob, lw)
            } else {
                zext(f, ob, lw)
            });
        }
        let sum = match &group {
            Some((r, w)) => r.clone().eq(lit(*w, (c / g) as u64)).cond(sum, slit(lw, 0)),
            None => sum,
        };
        next.push(m.swire_eq(&format!("nl{c}"), lw, lg.clone().add(sum)));
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
    let mut on_accept = if beats == 1 {
        finish
    } else {
        let pw = index_bits(beats as u64);
        let count = m.reg("count", pw);
        reset.push(Stmt::Nb(count.clone(), lit(pw, 0)));
        let mut fin = finish;
        fin.push(Stmt::Nb(count.clone(), lit(pw, 0)));
        let mut cont = keep;
        cont.push(Stmt::Nb(count.clone(), count.clone().add(lit(pw, 1))));
        vec![Stmt::If(count.eq(lit(pw, (beats - 1) as u64)), fin, cont)]
    };
    if let Some(step) = crate::rtl::step_counter(&group, ng) {
        on_accept.push(step);
        if let Some((r, w)) = &group {
            reset.push(Stmt::Nb(r.clone(), lit(*w, 0)));
        }
    }
    m.seq(vec![output_process(
        reset,
        vec![
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
