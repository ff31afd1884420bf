//! The reorder unit behind an MVU with `MMV > 1`: the MVU emits, per group of `M` output
//! positions, one beat per neuron fold carrying that fold's `PE` channels of all `M`
//! positions (`NF` beats in fold order); the stream after it carries each position's `NF`
//! beats in turn (raster order). The unit stores a group's `NF` beats in one half of a RAM of
//! `2·NF` words and reads them back `M` times, position `j`'s channels out of each word,
//! while the other half fills. With one neuron fold it is a width converter (`M` beats out of
//! each one).

use crate::dwc::Beat;
use crate::names::{self, Names};
use crate::rtl::LayerCtx;
use crate::rtl::{at_last, counter, index_bits, mul_const, resize, step_counter, stream_ports};
use crate::vlog::*;

/// The reorder unit of layer `ctx` (which has `MMV > 1`).
pub fn reorder(ctx: &LayerCtx, names: &Names) -> Module {
    let name = names.layer_module(ctx.index, "reorder");
    let (mmv, nf) = (ctx.fold.mmv, ctx.nf());
    let beat = Beat {
        elems: ctx.fold.pe,
        steps: ctx.out_steps(),
        bits: ctx.neuron_bits(),
    };
    let wide = Beat {
        elems: mmv * ctx.fold.pe,
        ..beat
    };
    if nf == 1 {
        return crate::dwc::down(name, wide, beat);
    }
    let mut m = Module::new(
        name,
        vec![format!(
            "Reorder unit: {nf} beats of {mmv} positions x {} channels (one per neuron fold) \
             into {mmv} x {nf} beats of one position, through a RAM of 2 x {nf} words.",
            ctx.fold.pe
        )],
    );
    stream_ports(&mut m, wide.width(), beat.width(), false);
    let ram = m.mem("ram", wide.width(), 2 * nf);
    let aw = index_bits(2 * nf as u64);
    let half = |m: &mut Module, name: &str| m.reg(name, 1);
    let (full0, full1) = (half(&mut m, "full0"), half(&mut m, "full1"));
    let (wbank, rbank) = (half(&mut m, "wbank"), half(&mut m, "rbank"));
    let wnf = counter(&mut m, "wnf", nf);
    let rnf = counter(&mut m, "rnf", nf);
    let rj = counter(&mut m, "rj", mmv);
    let ov = m.reg("ov", 1);
    let rd = m.reg("rd", wide.width());
    let sel = rj.as_ref().map(|(_, w)| (m.reg("sel", *w), *w));
    let full_of = |bank: &Expr| bank.clone().cond(full1.clone(), full0.clone());
    let addr = |m: &mut Module, name: &str, bank: &Expr, c: &Option<(Expr, u32)>| {
        let fold = c
            .as_ref()
            .map_or(lit(aw, 0), |(r, w)| resize(r.clone(), *w, aw));
        let base = mul_const(resize(bank.clone(), 1, aw), aw, nf as u64);
        m.wire_eq(name, aw, base.add(fold))
    };
    m.assign(id("in_ready"), full_of(&wbank).not());
    let wr = m.wire_eq("wr", 1, id("in_valid").and(id("in_ready")));
    let w_last = m.wire_eq("w_last", 1, wr.clone().and(at_last(&wnf, nf)));
    let waddr = addr(&mut m, "waddr", &wbank, &wnf);
    m.assign(id("out_valid"), ov.clone());
    let fire = m.wire_eq(
        "fire",
        1,
        full_of(&rbank).and(ov.clone().not().or(id("out_ready"))),
    );
    let r_last = m.wire_eq(
        "r_last",
        1,
        fire.clone().and(at_last(&rnf, nf)).and(at_last(&rj, mmv)),
    );
    let raddr = addr(&mut m, "raddr", &rbank, &rnf);
    // With one position (never generated) the word would be the beat itself.
    let out = match &sel {
        Some(sel) => wide.part(&rd, beat, sel),
        None => rd.clone(),
    };
    m.assign(id("out_data"), out);
    m.comment("The RAM: a fold's beat in, a position's channels of it out.");
    let mut read = vec![Stmt::Nb(rd, ram.clone().idx(raddr))];
    if let (Some((sel, _)), Some((j, _))) = (&sel, &rj) {
        read.push(Stmt::Nb(sel.clone(), j.clone()));
    }
    m.seq(vec![
        when(wr.clone(), vec![Stmt::Nb(ram.idx(waddr), id("in_data"))]),
        when(fire.clone(), read),
    ]);
    let mut reset: Vec<Stmt> = [&full0, &full1, &wbank, &rbank, &ov]
        .into_iter()
        .map(|r| Stmt::Nb(r.clone(), zero()))
        .collect();
    reset.extend(
        [&wnf, &rnf, &rj]
            .into_iter()
            .flatten()
            .map(|(r, w)| Stmt::Nb(r.clone(), lit(*w, 0))),
    );
    // A half is filled only while empty and emptied only while full, so the two never
    // change the same flag in one cycle.
    let flag = |f: &Expr, bank: u64| {
        let of = |b: &Expr| b.clone().eq(lit(1, bank));
        Stmt::If(
            w_last.clone().and(of(&wbank)),
            vec![Stmt::Nb(f.clone(), one())],
            vec![when(
                r_last.clone().and(of(&rbank)),
                vec![Stmt::Nb(f.clone(), zero())],
            )],
        )
    };
    let mut on_fire: Vec<Stmt> = vec![Stmt::Nb(ov.clone(), one())];
    on_fire.extend(step_counter(&rnf, nf));
    if let Some(s) = step_counter(&rj, mmv) {
        on_fire.push(when(at_last(&rnf, nf), vec![s]));
    }
    on_fire.push(when(
        r_last.clone(),
        vec![Stmt::Nb(rbank.clone(), rbank.clone().not())],
    ));
    let mut on_wr: Vec<Stmt> = step_counter(&wnf, nf).into_iter().collect();
    on_wr.push(when(
        w_last.clone(),
        vec![Stmt::Nb(wbank.clone(), wbank.clone().not())],
    ));
    m.seq(vec![Stmt::If(
        id(names::RST),
        reset,
        vec![
            flag(&full0, 0),
            flag(&full1, 1),
            when(wr, on_wr),
            Stmt::If(
                fire,
                on_fire,
                vec![when(id("out_ready"), vec![Stmt::Nb(ov, zero())])],
            ),
        ],
    )]);
    m
}
