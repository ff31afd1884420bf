//! The accumulators and the hand-off register between an MVU's dot products and its neuron
//! stage: each lane's current accumulates from its bias over a neuron fold's synapse folds,
//! then the fold's currents (all lanes and input steps) and stage parameters wait in the
//! hand-off register while the neuron stage ([`crate::neuron`]) steps them.

use crate::mvu::Dots;
use crate::names;
use crate::rtl::LayerCtx;
use crate::vlog::*;

/// The hand-off register between the accumulators and the neuron stage.
pub(crate) struct Handoff {
    /// A fold's currents are waiting or being stepped.
    pub(crate) valid: Expr,
    /// Set by the neuron stage when it finishes the fold this cycle.
    pub(crate) ready: Expr,
    /// `[lane][step]` currents, `slot_bits` each; stepped currents shift down.
    pub(crate) cur: Expr,
    /// The fold's neuron-stage parameters ([`crate::neuron::stage_fields`]), if any.
    pub(crate) prm: Option<Expr>,
    /// The neuron stage runs a step this cycle.
    pub(crate) go: Expr,
}

/// Accumulators, the hand-off register and the pipeline enable.
pub(crate) fn handoff(m: &mut Module, ctx: &LayerCtx, d: &Dots, en: &Expr) -> Handoff {
    let (pe, steps, mw, vw) = (
        ctx.fold.pe,
        ctx.geo.input_steps,
        ctx.mac_bits(),
        ctx.value_bits(),
    );
    let sw = ctx.slot_bits();
    let t = &d.tags;
    m.comment(
        "Accumulate from the bias (the current is finished here); a neuron fold's currents wait in the hand-off register.",
    );
    let hs = Handoff {
        valid: m.reg("hs_v", 1),
        ready: m.wire("hs_ready", 1),
        cur: m.reg("cur_q", ctx.mvu_lanes() * steps * sw),
        prm: (!crate::neuron::stage_fields(&ctx.layer.neuron).is_empty()).then(|| {
            m.reg(
                "prm_q",
                pe * crate::neuron::stage_fields(&ctx.layer.neuron).len() as u32 * ctx.value_bits(),
            )
        }),
        go: m.wire("go", 1),
    };
    let arriving = t.valid.clone().and(t.last.clone());
    m.assign(
        en.clone(),
        arriving
            .clone()
            .and(hs.valid.clone())
            .and(hs.ready.clone().not())
            .not(),
    );
    let load = m.wire_eq("load", 1, en.clone().and(arriving));
    let folded = crate::neuron::folded(&ctx.layer.neuron);
    let fields = crate::neuron::stage_fields(&ctx.layer.neuron);
    let mut sums = Vec::new();
    let mut acc_updates = Vec::new();
    let biases: Vec<Expr> = (0..pe)
        .map(|p| {
            m.wire_eq(
                &format!("b{p}"),
                mw,
                crate::rtl::sext(d.prm[p as usize].clone().slice(vw - 1, 0), vw, mw),
            )
        })
        .collect();
    for (p, row) in d.dots.iter().enumerate() {
        // Lane p is weight lane p mod PE (of position p div PE).
        let bias = biases[p % pe as usize].clone();
        for (s, dot) in row.iter().enumerate() {
            let init = if folded.bias_every_step || s == 0 {
                bias.clone()
            } else {
                lit(mw, 0)
            };
            // Without an accumulator a narrow output uses only the low bits of the sum.
            let trimmed = ctx.sf() == 1 && sw < mw;
            if trimmed {
                m.items
                    .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
            }
            let sum = match &t.first {
                None => m.wire_eq(&format!("sum{p}_{s}"), mw, init.add(dot.clone())),
                Some(first) => {
                    let acc = m.reg(&format!("acc{p}_{s}"), mw);
                    let sum = m.wire_eq(
                        &format!("sum{p}_{s}"),
                        mw,
                        first.clone().cond(init, acc.clone()).add(dot.clone()),
                    );
                    acc_updates.push(Stmt::Nb(acc, sum.clone()));
                    sum
                }
            };
            if trimmed {
                m.items
                    .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
            }
            sums.push(sum);
        }
    }
    if !acc_updates.is_empty() {
        m.seq(vec![when(en.clone().and(t.valid.clone()), acc_updates)]);
    }
    // Lane p's step s at [(p·steps + s)·sw +: sw]; stepping shifts each lane's steps down.
    let loaded = cat(sums
        .into_iter()
        .rev()
        .map(|e| if sw < mw { e.slice(sw - 1, 0) } else { e })
        .collect());
    let go = hs.go.clone();
    let mut update = vec![];
    if steps > 1 {
        let shifted = (0..ctx.mvu_lanes())
            .rev()
            .map(|p| {
                let lo = p * steps * sw;
                cat(vec![
                    lit(sw, 0),
                    hs.cur.clone().slice(lo + steps * sw - 1, lo + sw),
                ])
            })
            .collect();
        update.push(when(go, vec![Stmt::Nb(hs.cur.clone(), cat(shifted))]));
    }
    m.seq(vec![Stmt::If(
        load.clone(),
        {
            let mut on_load = vec![Stmt::Nb(hs.cur.clone(), loaded)];
            if let Some(q) = &hs.prm {
                let f = fields.len() as u32;
                let stage: Vec<Expr> = (0..pe as usize)
                    .rev()
                    .map(|p| d.prm[p].clone().slice((1 + f) * vw - 1, vw))
                    .collect();
                on_load.push(Stmt::Nb(q.clone(), cat(stage)));
            }
            on_load
        },
        update,
    )]);
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![Stmt::Nb(hs.valid.clone(), zero())],
        vec![Stmt::If(
            load,
            vec![Stmt::Nb(hs.valid.clone(), one())],
            vec![when(
                hs.ready.clone(),
                vec![Stmt::Nb(hs.valid.clone(), zero())],
            )],
        )],
    )]);
    hs
}
