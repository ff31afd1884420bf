//! The neuron of a lane, one local step per cycle: the hardware of each neuron kind, described
//! once, in [`step`]'s exhaustive match. The MVU hands over a neuron fold's currents (all input
//! steps of its `PE` lanes) with the fold's parameters; the neuron stage then runs the
//! `local_steps` steps of those lanes, `k = 0 … L−1`, with each lane's membrane in a register.
//!
//! Per kind (the golden model's semantics, `spikeforge_model::golden`):
//! * LIF: `I = (neg ? −a : a) + bias`, `v = leak(v') + I`, fire on `v ≥ θ` (or `>`), reset;
//! * TSA: `u ← 2u + I` (bias at the first step), clamp, then after the silent steps fire
//!   ±1 and subtract `±2θ`; the 1-bit guard allows −1 only after a +1;
//! * TSA readout: `u ← 2u + a` (bias at the first step), output `u` after the last step;
//! * none: output `a + bias` at every step.
//!
//! The current `I` arrives finished: [`folded`] says where each kind's polarity and bias enter
//! (the MVU's combine rank and accumulator start), which keeps the neuron's path short.

use spikeforge_model::ir::{FireRule, Leak, NegativeSpikes, Neuron, Reset};

use crate::accumulate::Handoff;
use crate::rtl::{fit, index_bits, output_process, LayerCtx};
use crate::vlog::*;

/// What the MVU applies before the neuron stage: the polarity (a negated current) in the
/// combine rank, the bias as the accumulator's starting value.
pub struct Folded {
    /// The parameter field holding the polarity bit, if the kind has one.
    pub polarity: Option<u32>,
    /// The bias enters every step's current (else the first step's only).
    pub bias_every_step: bool,
}

/// The parameter fields (indices into a lane's ROM word, `value_bits` each) the neuron stage
/// itself reads: the threshold, and the TSA clamp bound.
pub fn stage_fields(neuron: &Neuron) -> &'static [u32] {
    match neuron {
        Neuron::Lif(_) => &[1],
        Neuron::Tsa(_) => &[1, 2],
        Neuron::TsaReadout { .. } | Neuron::None { .. } => &[],
    }
}

/// How a neuron kind's polarity and bias fold into the MVU.
pub fn folded(neuron: &Neuron) -> Folded {
    match neuron {
        Neuron::Lif(_) => Folded {
            polarity: Some(2),
            bias_every_step: true,
        },
        Neuron::Tsa(_) => Folded {
            polarity: Some(3),
            bias_every_step: false,
        },
        Neuron::TsaReadout { .. } => Folded {
            polarity: None,
            bias_every_step: false,
        },
        Neuron::None { .. } => Folded {
            polarity: None,
            bias_every_step: true,
        },
    }
}

/// What the neuron of lane `p` sees at local step `k`.
pub struct StepIn<'a> {
    /// The lane (its registers and wires are numbered by it).
    pub p: u32,
    /// The PE lane whose parameters it uses (`p mod PE`: with MMV > 1 the positions of a
    /// group share them).
    pub param_lane: u32,
    /// The local step counter (`None` with a single local step).
    pub k: Option<&'a Expr>,
    /// The lane's current at this step, `value_bits` wide, signed: the synaptic current with
    /// the polarity and the bias applied ([`folded`]).
    pub current: Expr,
    /// The neuron fold's [`stage_fields`], `PE` lanes of them (none without fields).
    pub prm: Option<&'a Expr>,
}

/// One local step of a lane.
pub struct StepOut {
    /// Register updates made when the step runs.
    pub updates: Vec<Stmt>,
    /// Registers cleared at reset (those carried across local steps), with their widths.
    pub cleared: Vec<(Expr, u32)>,
    /// The value this step emits (`neuron_bits` wide).
    pub value: Expr,
    /// Whether this step emits an output value (a 1-bit expression).
    pub emits: Expr,
}

impl StepIn<'_> {
    /// Stage field `j` of the lane (see [`stage_fields`]), `value_bits` wide.
    fn param(&self, ctx: &LayerCtx, j: u32) -> Expr {
        let (f, vw) = (
            stage_fields(&ctx.layer.neuron).len() as u32,
            ctx.value_bits(),
        );
        let at = (self.param_lane * f + j) * vw;
        self.prm
            .expect("a kind with stage fields gets them")
            .clone()
            .slice(at + vw - 1, at)
    }
    /// Whether this is the last local step.
    fn last(&self, ctx: &LayerCtx) -> Expr {
        let l = ctx.geo.local_steps;
        match self.k {
            Some(k) => k.clone().eq(lit(index_bits(l as u64), (l - 1) as u64)),
            None => one(),
        }
    }
}

/// The membrane register carried across local steps (`None` with one step) and its value
/// entering this step: 0 at the first step of a position. The register is cleared at reset
/// and written 0 at a fold's last step ([`cleared_at_last`]), so the first step reads 0 from
/// it without a select in the membrane's one-cycle loop (Yosys makes the clear the
/// flip-flop's synchronous reset).
fn carried(m: &mut Module, ctx: &LayerCtx, io: &StepIn, name: &str) -> (Option<Expr>, Expr) {
    let (p, vw) = (io.p, ctx.value_bits());
    match io.k {
        None => (None, slit(vw, 0)),
        Some(_) => {
            let v = m.sreg(&format!("{name}{p}"), vw);
            (Some(v.clone()), v)
        }
    }
}

/// `reg <= next`, or 0 at the fold's last local step (the next fold starts from 0).
fn cleared_at_last(ctx: &LayerCtx, io: &StepIn, reg: Expr, width: u32, next: Expr) -> Stmt {
    Stmt::Nb(reg, io.last(ctx).cond(lit(width, 0), next))
}

/// Whether the pixel layer's current enters at the first local step only (TSA coding) rather
/// than at every step (direct encoding).
pub fn current_once(neuron: &Neuron) -> bool {
    match neuron {
        Neuron::Tsa(_) | Neuron::TsaReadout { .. } => true,
        Neuron::Lif(_) | Neuron::None { .. } => false,
    }
}

/// The lane's hardware for one local step.
pub fn step(m: &mut Module, ctx: &LayerCtx, io: &StepIn) -> StepOut {
    let (p, vw) = (io.p, ctx.value_bits());
    match &ctx.layer.neuron {
        Neuron::Lif(lif) => {
            let thr = m.swire_eq(&format!("thr{p}"), vw, io.param(ctx, 0));
            let cur = io.current.clone();
            let (v, prev) = carried(m, ctx, io, "v");
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
            StepOut {
                updates: v
                    .clone()
                    .map(|v| {
                        vec![cleared_at_last(
                            ctx,
                            io,
                            v,
                            vw,
                            fire.clone().cond(after, vn),
                        )]
                    })
                    .unwrap_or_default(),
                cleared: v.into_iter().map(|v| (v, vw)).collect(),
                value: fire,
                emits: one(),
            }
        }
        Neuron::Tsa(tsa) => tsa_step(m, ctx, io, tsa),
        Neuron::TsaReadout { .. } => {
            let (u, prev) = carried(m, ctx, io, "u");
            let un = m.swire_eq(
                &format!("un{p}"),
                vw,
                prev.shl(Expr::Int(1)).add(io.current.clone()),
            );
            StepOut {
                updates: u
                    .clone()
                    .map(|u| vec![cleared_at_last(ctx, io, u, vw, un.clone())])
                    .unwrap_or_default(),
                cleared: u.into_iter().map(|u| (u, vw)).collect(),
                value: fit(un, vw, ctx.neuron_bits()),
                emits: io.last(ctx),
            }
        }
        Neuron::None { .. } => StepOut {
            updates: vec![],
            cleared: vec![],
            value: io.current.clone(),
            emits: one(),
        },
    }
}

/// The TSA step (see [`spikeforge_model::ir::Tsa`]): double, integrate (bias at the first
/// step), clamp, then — after the silent steps — fire +1/−1 and subtract `±2θ`.
///
/// The membrane's loop is one cycle, so it is kept two carry chains deep: the clamp leaves one
/// of three values (the bound, its negation, or `u` itself), and each value's fire decisions
/// and next membrane are computed beside the others and then selected, instead of comparing
/// and subtracting after the clamp (four chains in a row: 24 ns on ECP5). Every candidate is
/// the same `value_bits`-wide expression the clamped value would give, so the result is the
/// same bit for bit.
fn tsa_step(
    m: &mut Module,
    ctx: &LayerCtx,
    io: &StepIn,
    tsa: &spikeforge_model::ir::Tsa,
) -> StepOut {
    let (p, vw) = (io.p, ctx.value_bits());
    let kw = index_bits(ctx.geo.local_steps as u64);
    let thr = m.swire_eq(&format!("thr{p}"), vw, io.param(ctx, 0));
    let clamp = m.swire_eq(&format!("clamp{p}"), vw, io.param(ctx, 1));
    let low = m.swire_eq(&format!("low{p}"), vw, clamp.clone().neg());
    let nthr = m.swire_eq(&format!("nthr{p}"), vw, thr.clone().neg());
    let two = m.swire_eq(&format!("two{p}"), vw, thr.clone().shl(Expr::Int(1)));
    let cur = io.current.clone();
    let (u, prev) = carried(m, ctx, io, "u");
    let un = m.swire_eq(&format!("un{p}"), vw, prev.shl(Expr::Int(1)).add(cur));
    let above = m.wire_eq(&format!("above{p}"), 1, un.clone().gt(clamp.clone()));
    let below = m.wire_eq(&format!("below{p}"), 1, un.clone().lt(low.clone()));
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
    // Per candidate value `x` of the clamped membrane: +1, −1, and the membrane after them.
    let mut candidate = |tag: &str, x: &Expr| {
        let pos = m.wire_eq(
            &format!("pos_{tag}{p}"),
            1,
            speaks.clone().and(x.clone().ge(thr.clone())),
        );
        let neg = m.wire_eq(
            &format!("neg_{tag}{p}"),
            1,
            speaks
                .clone()
                .and(x.clone().lt(nthr.clone()))
                .and(may_negate.clone()),
        );
        let after = m.swire_eq(
            &format!("after_{tag}{p}"),
            vw,
            pos.clone().cond(
                x.clone().sub(two.clone()),
                neg.clone().cond(x.clone().add(two.clone()), x.clone()),
            ),
        );
        (pos, neg, after)
    };
    let hi = candidate("hi", &clamp);
    let lo = candidate("lo", &low);
    let mid = candidate("mid", &un);
    let pick = |a: Expr, b: Expr, c: Expr| above.clone().cond(a, below.clone().cond(b, c));
    let pos = m.wire_eq(&format!("fire_pos{p}"), 1, pick(hi.0, lo.0, mid.0));
    let neg = m.wire_eq(&format!("fire_neg{p}"), 1, pick(hi.1, lo.1, mid.1));
    let mut updates = vec![];
    let mut cleared = vec![];
    if let Some(u) = u {
        updates.push(cleared_at_last(
            ctx,
            io,
            u.clone(),
            vw,
            pick(hi.2, lo.2, mid.2),
        ));
        cleared.push((u, vw));
    }
    if let Some(f) = fired {
        updates.push(cleared_at_last(
            ctx,
            io,
            f.clone(),
            1,
            f.clone().or(pos.clone()),
        ));
        cleared.push((f, 1));
    }
    StepOut {
        updates,
        cleared,
        // Ternary spike, 2 bits: {negative, non-zero}.
        value: cat(vec![neg.clone(), pos.or(neg)]),
        emits: speaks,
    }
}

/// The neuron stage: `local_steps` cycles per neuron fold, one output beat per fold.
pub(crate) fn stage(m: &mut Module, ctx: &LayerCtx, hs: &Handoff) {
    let (lanes, steps, vw) = (ctx.mvu_lanes(), ctx.geo.input_steps, ctx.value_bits());
    let l = ctx.geo.local_steps;
    let t_out = ctx.out_steps();
    let g = lanes * ctx.neuron_bits();
    m.comment(format!(
        "Neuron stage: {l} local step(s) per neuron fold, {t_out} output step(s) per beat."
    ));
    let kw = index_bits(l as u64);
    let k = (l > 1).then(|| m.reg("k", kw));
    let k_last = match &k {
        Some(k) => k.clone().eq(lit(kw, (l - 1) as u64)),
        None => one(),
    };
    let k_last = m.wire_eq("k_last", 1, k_last);
    let blocked = id("out_valid").and(id("out_ready").not());
    let go = hs.go.clone();
    m.assign(
        go.clone(),
        hs.valid.clone().and(k_last.clone().and(blocked).not()),
    );
    m.assign(hs.ready.clone(), go.clone().and(k_last.clone()));
    let once = current_once(&ctx.layer.neuron) && steps == 1 && l > 1;
    let mut updates = Vec::new();
    let mut cleared = Vec::new();
    let mut values = Vec::new();
    let mut emits = one();
    for p in 0..lanes {
        let cw = ctx.slot_bits();
        let lo = p * steps * cw;
        let a = m.wire_eq(&format!("a{p}"), cw, hs.cur.clone().slice(lo + cw - 1, lo));
        let a = match (&k, once) {
            (Some(k), true) => m.wire_eq(
                &format!("ag{p}"),
                cw,
                k.clone().eq(lit(kw, 0)).cond(a, lit(cw, 0)),
            ),
            _ => a,
        };
        let current = m.swire_eq(&format!("i{p}"), vw, fit(a, cw, vw));
        let out = step(
            m,
            ctx,
            &StepIn {
                p,
                param_lane: p % ctx.fold.pe,
                k: k.as_ref(),
                current,
                prm: hs.prm.as_ref(),
            },
        );
        updates.extend(out.updates);
        cleared.extend(out.cleared);
        values.push(out.value);
        emits = out.emits;
    }
    let vals = m.wire_eq("vals", g, cat(values.into_iter().rev().collect()));
    let mut on_go = updates;
    if let Some(k) = &k {
        on_go.push(Stmt::Nb(
            k.clone(),
            k_last.clone().cond(lit(kw, 0), k.clone().add(lit(kw, 1))),
        ));
    }
    let beat = if t_out > 1 {
        let obuf = m.reg("obuf", (t_out - 1) * g);
        let pushed = if t_out == 2 {
            vals.clone()
        } else {
            cat(vec![
                vals.clone(),
                obuf.clone().slice((t_out - 1) * g - 1, g),
            ])
        };
        on_go.push(when(
            k_last.clone().not().and(emits),
            vec![Stmt::Nb(obuf.clone(), pushed)],
        ));
        cat(vec![vals, obuf])
    } else {
        vals
    };
    on_go.push(when(
        k_last,
        vec![
            Stmt::Nb(id("out_valid"), one()),
            Stmt::Nb(id("out_data"), beat),
        ],
    ));
    let mut reset = vec![Stmt::Nb(id("out_valid"), zero())];
    for (r, w) in cleared {
        reset.push(Stmt::Nb(r, lit(w, 0)));
    }
    if let Some(k) = &k {
        reset.push(Stmt::Nb(k.clone(), lit(kw, 0)));
    }
    m.seq(vec![output_process(reset, vec![when(go, on_go)])]);
}
