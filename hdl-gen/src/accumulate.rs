//! The accumulators and the hand-off register between an MVU's dot products and its neuron
//! stage: each lane's current accumulates from its bias over a neuron fold's synapse folds,
//! then the fold's currents (all lanes and input steps) and stage parameters wait in the
//! hand-off register while the neuron stage ([`crate::neuron`]) steps them.
//!
//! With a free-running pipeline ([`LayerCtx::register_rich`]) a finished fold enters a small
//! queue instead (distributed RAM on ECP5) and the hand-off register loads from its head; a
//! credit counter (folds taken at the input and not yet out of the queue) keeps the queue
//! from overflowing, so the pipeline never has to wait.

use crate::mvu::Dots;
use crate::names;
use crate::rtl::{index_bits, zext, LayerCtx};
use crate::vlog::*;

/// How the MVU's pipeline is controlled.
pub(crate) enum Control {
    /// Every pipeline register advances under `en`, which this module drives.
    Stall { en: Expr },
    /// The pipeline advances every cycle; `room` (a register this module drives) admits the
    /// input; `taken` is a fold's last word accepted; `depth` the pipeline's ranks from the
    /// accept to the accumulators' output.
    Credits { room: Expr, taken: Expr, depth: u32 },
}

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
    /// The hand-off register takes a new fold this cycle.
    pub(crate) load: Expr,
    /// What it takes then: the currents (as `cur`) and the stage parameters (as `prm`).
    pub(crate) incoming: (Expr, Option<Expr>),
}

/// Accumulators, the hand-off register and the flow control.
pub(crate) fn handoff(m: &mut Module, ctx: &LayerCtx, d: &Dots, control: &Control) -> Handoff {
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
    let (valid, ready) = (m.reg("hs_v", 1), m.wire("hs_ready", 1));
    let ahead = crate::neuron::prepares_ahead(ctx);
    if ahead {
        // The stage reads the later steps from here, the first one as it comes in.
        m.items
            .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
    }
    let cur = m.reg("cur_q", ctx.mvu_lanes() * steps * sw);
    if ahead {
        m.items
            .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
    }
    let mut hs = Handoff {
        load: zero(),
        incoming: (zero(), None),
        valid,
        ready,
        cur,
        prm: (!crate::neuron::stage_fields(&ctx.layer.neuron).is_empty()).then(|| {
            m.reg(
                "prm_q",
                pe * crate::neuron::stage_fields(&ctx.layer.neuron).len() as u32 * ctx.value_bits(),
            )
        }),
        go: m.wire("go", 1),
    };
    let arriving = t.valid.clone().and(t.last.clone());
    // `gate`: when the accumulators may take a dot product.
    let (load, gate) = match control {
        Control::Stall { en } => {
            m.assign(
                en.clone(),
                arriving
                    .clone()
                    .and(hs.valid.clone())
                    .and(hs.ready.clone().not())
                    .not(),
            );
            let load = m.wire_eq("load", 1, en.clone().and(arriving.clone()));
            (load, en.clone().and(t.valid.clone()))
        }
        Control::Credits { .. } => (m.wire("load", 1), t.valid.clone()),
    };
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
        m.seq(vec![when(gate, acc_updates)]);
    }
    // Lane p's step s at [(p·steps + s)·sw +: sw]; stepping shifts each lane's steps down.
    let currents = cat(sums
        .into_iter()
        .rev()
        .map(|e| if sw < mw { e.slice(sw - 1, 0) } else { e })
        .collect());
    let cur_bits = ctx.mvu_lanes() * steps * sw;
    let f = fields.len() as u32;
    // The fold's stage parameters, lane p's at [p·f·vw +: f·vw].
    let stage = (f > 0).then(|| {
        cat((0..pe as usize)
            .rev()
            .map(|p| d.prm[p].clone().slice((1 + f) * vw - 1, vw))
            .collect())
    });
    let stage_bits = pe * f * vw;
    let (loaded, stage) = match control {
        Control::Stall { .. } => (currents, stage),
        Control::Credits { room, taken, depth } => {
            let word = match stage {
                Some(st) => cat(vec![st, currents]),
                None => currents,
            };
            let shape = Fifo {
                entries: queue_entries(*depth, ctx.sf()),
                width: cur_bits + stage_bits,
            };
            let free = hs.valid.clone().not().or(hs.ready.clone());
            let head = queue(m, &shape, word, &arriving, &load, free, room, taken);
            let cur = head.clone().slice(cur_bits - 1, 0);
            let st = (f > 0).then(|| head.slice(cur_bits + stage_bits - 1, cur_bits));
            (cur, st)
        }
    };
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
            let mut on_load = vec![Stmt::Nb(hs.cur.clone(), loaded.clone())];
            if let (Some(q), Some(stage)) = (&hs.prm, &stage) {
                on_load.push(Stmt::Nb(q.clone(), stage.clone()));
            }
            on_load
        },
        update,
    )]);
    hs.load = load.clone();
    hs.incoming = (loaded, stage);
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

/// The hand-off queue's shape.
struct Fifo {
    entries: u32,
    width: u32,
}

/// Queue entries so that credits never hold the input back in a steady stream: a fold's
/// credit returns `depth + 2` cycles after its last word is accepted (through the pipeline,
/// into the queue, out to the hand-off register), and a fold's last word comes every `sf`
/// cycles; a power of two, so the pointers wrap by themselves.
fn queue_entries(depth: u32, sf: u32) -> u32 {
    ((depth + 2).div_ceil(sf.max(1)) + 1).next_power_of_two()
}

/// The hand-off queue: `word` enters when `push`; `load` (driven here) takes the head into
/// the hand-off register when the queue is not empty and `free`; `room` (a register, driven
/// here) is 1 while fewer than `entries` folds are taken and not yet loaded. Returns the head.
#[allow(clippy::too_many_arguments)]
fn queue(
    m: &mut Module,
    q: &Fifo,
    word: Expr,
    push: &Expr,
    load: &Expr,
    free: Expr,
    room: &Expr,
    taken: &Expr,
) -> Expr {
    let pw = index_bits(q.entries as u64).max(1);
    let nw = index_bits(q.entries as u64 + 1);
    m.comment(format!(
        "Hand-off queue: {} entries of {} bits; credits keep it from overflowing.",
        q.entries, q.width
    ));
    let mem = m.mem("hq", q.width, q.entries);
    let wp = m.reg("hq_wp", pw);
    let rp = m.reg("hq_rp", pw);
    let n = m.reg("hq_n", nw);
    let used = m.reg("credits", nw);
    m.assign(load.clone(), n.clone().ne(lit(nw, 0)).and(free));
    let up = |e: &Expr| zext(e.clone(), 1, nw);
    let used_next = m.wire_eq(
        "credits_next",
        nw,
        used.clone().add(up(taken)).sub(up(load)),
    );
    m.seq(vec![when(
        push.clone(),
        vec![Stmt::Nb(mem.clone().idx(wp.clone()), word)],
    )]);
    let bump = |r: &Expr| r.clone().add(lit(pw, 1));
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(wp.clone(), lit(pw, 0)),
            Stmt::Nb(rp.clone(), lit(pw, 0)),
            Stmt::Nb(n.clone(), lit(nw, 0)),
            Stmt::Nb(used.clone(), lit(nw, 0)),
            Stmt::Nb(room.clone(), one()),
        ],
        vec![
            when(push.clone(), vec![Stmt::Nb(wp.clone(), bump(&wp))]),
            when(load.clone(), vec![Stmt::Nb(rp.clone(), bump(&rp))]),
            Stmt::Nb(n.clone(), n.clone().add(up(push)).sub(up(load))),
            Stmt::Nb(used, used_next.clone()),
            Stmt::Nb(room.clone(), used_next.lt(lit(nw, q.entries as u64))),
        ],
    )]);
    mem.idx(rp)
}

#[cfg(test)]
mod tests {
    use super::queue_entries;

    #[test]
    fn the_queue_covers_the_folds_in_flight() {
        // One synapse fold: every word ends a fold; D + 2 cycles of round trip, plus one.
        assert_eq!(queue_entries(8, 1), 16);
        assert_eq!(queue_entries(5, 1), 8);
        // Long folds: one in flight and one waiting.
        assert_eq!(queue_entries(4, 9), 2);
        assert_eq!(queue_entries(6, 2), 8);
    }
}
