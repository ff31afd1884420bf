//! Stream stages after the neurons: 2×2 pooling of spike maps and the GAP/argmax head.

use spikeforge_model::geometry::bits_unsigned;
use spikeforge_model::ir::{Neuron, Pool};

use crate::names::Names;
use crate::rtl::{
    at_first, at_last, counter, index_bits, output_process, sext, stream_ports, zext, LayerCtx,
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
///
/// The running sums are a ring of `NF` class groups: each beat adds to the group at the front
/// and rotates it to the back, so `PE` adders serve every class and no beat decodes which
/// group it belongs to (the ring is back in class order after each position). The beats of
/// the last position carry final logits: the argmax compares them behind the sums, one class
/// per cycle in class order (ties go to the lowest index), so a final beat of `PE` classes
/// holds the next one for `PE − 1` cycles. After the last beat the ring, in class order
/// again, and the class are the output beat; the next image's first beat waits until the
/// output is taken (two cycles when the consumer is ready).
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
             {g} classes per beat in a ring of {ng} groups; the argmax runs over the last \
             position's beats, ties to the lowest class index.",
            out.positions()
        )],
    );
    stream_ports(&mut m, steps * g * ob, cb + classes * lw, false);
    let count = counter(&mut m, "count", beats);
    let last_beat = m.wire_eq("last_beat", 1, at_last(&count, beats));
    // The last position's beats carry final logits (every beat when there is one position).
    let (final_beat, first_final) = match &count {
        Some((r, w)) if beats > ng => (
            r.clone().ge(lit(*w, (beats - ng) as u64)),
            r.clone().eq(lit(*w, (beats - ng) as u64)),
        ),
        _ => (one(), at_first(&count)),
    };
    let first_final = m.wire_eq("first_final", 1, first_final);
    // The first position's beats start the sums from zero: the ring is never cleared.
    let first_position = match &count {
        Some((r, w)) if beats > ng => r.clone().lt(lit(*w, ng as u64)),
        _ => one(),
    };
    let first_position = m.wire_eq("first_position", 1, first_position);
    // After an image's last beat the ring holds its logits in class order and, with `cls`,
    // is the output beat; the next image waits until the output takes it.
    let full = m.reg("full", 1);
    // The argmax runs behind the sums: `fv` a final beat's sums are in `fs*` (compared one lane
    // per cycle), `ff` it was the image's first final beat, `fl` its last beat.
    let (fv, ff, fl) = (m.reg("fv", 1), m.reg("ff", 1), m.reg("fl", 1));
    // A final beat's lanes are compared one per cycle; the next beat waits for the last.
    let busy = (g > 1).then(|| m.wire("busy", 1));
    let blocked = full.clone().or(fl.clone());
    let blocked = match &busy {
        Some(b) => blocked.or(b.clone()),
        None => blocked,
    };
    m.assign(id("in_ready"), blocked.not());
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    // Ring position r holds class group (r + beat) mod NF; position 0 takes the beat.
    let ring: Vec<Expr> = (0..classes)
        .map(|c| m.sreg(&format!("lg{c}"), lw))
        .collect();
    let sums: Vec<Expr> = (0..g)
        .map(|j| {
            let mut sum = first_position
                .clone()
                .cond(slit(lw, 0), ring[j as usize].clone());
            for t in 0..steps {
                let lo = (t * g + j) * ob;
                let f = id("in_data").slice(lo + ob - 1, lo);
                sum = sum.add(if signed_in {
                    sext(f, ob, lw)
                } else {
                    zext(f, ob, lw)
                });
            }
            m.swire_eq(&format!("sum{j}"), lw, sum)
        })
        .collect();
    // The ring after this beat: every group one place forward, the front's sums at the back.
    let rotated: Vec<Expr> = ring[g as usize..].iter().chain(&sums).cloned().collect();
    // The running argmax: the best value so far and its class; `base` is the class of the
    // beat's first lane (the final beats come in class order).
    let fs: Vec<Expr> = (0..g).map(|j| m.sreg(&format!("fs{j}"), lw)).collect();
    let best = m.sreg("best", lw);
    let best_k = m.reg("best_k", cb);
    let cls = m.reg("cls", cb);
    let base = (ng > 1).then(|| {
        let b = m.reg("base", cb);
        m.wire_eq("base_now", cb, ff.clone().cond(lit(cb, 0), b))
    });
    // One comparison per cycle (a chain of `PE` 22-bit compare-selects in one cycle was the
    // critical path of wide heads): `fj` walks the captured beat's lanes.
    let fj = counter(&mut m, "fj", g);
    let tally_done = at_last(&fj, g);
    if let Some(b) = &busy {
        m.assign(b.clone(), fv.clone().and(tally_done.clone().not()));
    }
    let lane = match &fj {
        None => fs[0].clone(),
        Some((r, w)) => (1..g).fold(fs[0].clone(), |e, j| {
            r.clone()
                .eq(lit(*w, j as u64))
                .cond(fs[j as usize].clone(), e)
        }),
    };
    let lane = if g > 1 {
        m.swire_eq("lane", lw, lane)
    } else {
        lane
    };
    let class = match (&base, &fj) {
        (Some(b), Some((r, w))) => b.clone().add(crate::rtl::resize(r.clone(), *w, cb)),
        (Some(b), None) => b.clone(),
        (None, Some((r, w))) => crate::rtl::resize(r.clone(), *w, cb),
        (None, None) => lit(cb, 0),
    };
    let take = m.wire_eq(
        "take",
        1,
        match &fj {
            Some(_) => ff.clone().and(at_first(&fj)),
            None => ff.clone(),
        }
        .or(lane.clone().gt(best.clone())),
    );
    let v = m.swire_eq("best_next", lw, take.clone().cond(lane, best.clone()));
    let i = m.wire_eq("best_k_next", cb, take.cond(class, best_k.clone()));
    let mut beat: Vec<Expr> = ring.iter().rev().cloned().collect();
    beat.push(cls.clone());
    m.assign(id("out_data"), cat(beat));
    m.assign(id("out_valid"), full.clone());
    let mut reset: Vec<Stmt> = [&full, &fv, &fl]
        .iter()
        .map(|r| Stmt::Nb((*r).clone(), zero()))
        .collect();
    for (r, w) in [&count, &fj].into_iter().flatten() {
        reset.push(Stmt::Nb(r.clone(), lit(*w, 0)));
    }
    let rotate: Vec<Stmt> = ring
        .iter()
        .zip(&rotated)
        .map(|(l, r)| Stmt::Nb(l.clone(), r.clone()))
        .collect();
    let mut tally = vec![Stmt::Nb(best, v), Stmt::Nb(best_k, i.clone())];
    tally.extend(crate::rtl::step_counter(&fj, g));
    // The beat's last lane: the beat is done, and with the image's last beat the result.
    let mut done = vec![
        Stmt::Nb(fv.clone(), zero()),
        Stmt::Nb(fl.clone(), zero()),
        when(
            fl.clone(),
            vec![Stmt::Nb(full.clone(), one()), Stmt::Nb(cls, i)],
        ),
    ];
    if let Some(b) = &base {
        done.push(Stmt::Nb(id("base"), b.clone().add(lit(cb, g as u64))));
    }
    match &fj {
        Some(_) => tally.push(when(tally_done, done)),
        None => tally.extend(done),
    }
    let mut on_accept = rotate;
    on_accept.extend(
        fs.iter()
            .zip(&sums)
            .map(|(f, s)| Stmt::Nb(f.clone(), s.clone())),
    );
    on_accept.extend([
        Stmt::Nb(fv.clone(), final_beat),
        Stmt::Nb(ff.clone(), first_final),
        Stmt::Nb(fl.clone(), last_beat),
    ]);
    if let Some(step) = crate::rtl::step_counter(&count, beats) {
        on_accept.push(step);
    }
    m.seq(vec![Stmt::If(
        id(crate::names::RST),
        reset,
        vec![
            when(
                full.clone().and(id("out_ready")),
                vec![Stmt::Nb(full.clone(), zero())],
            ),
            when(fv, tally),
            when(accept, on_accept),
        ],
    )]);
    m
}

/// Bits of the class index for `classes` classes.
pub fn class_bits(classes: u32) -> u32 {
    bits_unsigned(classes.saturating_sub(1) as u64)
}
