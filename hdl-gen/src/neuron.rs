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

use spikeforge_model::ir::{FireRule, Leak, Neuron, Reset};

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
    /// The next step's current and parameters, for kinds that prepare a step's operands a
    /// cycle ahead ([`looks_ahead`]) in the register-rich style
    /// ([`LayerCtx::register_rich`]); `None` otherwise and with one local step.
    pub ahead: Option<Ahead>,
}

/// What the next local step will see, known a cycle before it runs: a kind whose membrane
/// loop is long registers the current's sums with its parameters here, so that the loop
/// itself is left with compares against registers.
pub struct Ahead {
    /// The prepared registers advance (a fold is loaded or a step runs).
    pub advance: Expr,
    /// The next step's current, `value_bits` wide, signed (a named wire).
    pub current: Expr,
    /// The next step's [`stage_fields`], `PE` lanes of them (a named wire).
    pub prm: Expr,
    /// A new fold is loaded this cycle (what depends on the parameters alone is prepared
    /// once per fold, then).
    pub load: Expr,
    /// The loaded fold's [`stage_fields`] (a named wire).
    pub loaded_prm: Expr,
}

/// Whether the layer's neuron stage prepares its steps' operands a cycle ahead ([`Ahead`]):
/// a kind that [`looks_ahead`], more than one local step, the register-rich style.
pub(crate) fn prepares_ahead(ctx: &LayerCtx) -> bool {
    ctx.geo.local_steps > 1 && ctx.register_rich() && looks_ahead(&ctx.layer.neuron)
}

/// Whether a kind prepares its step's operands a cycle ahead ([`Ahead`]): TSA, whose step is
/// double, integrate, clamp, fire and subtract in one cycle.
pub fn looks_ahead(neuron: &Neuron) -> bool {
    match neuron {
        Neuron::Tsa(_) => true,
        Neuron::Lif(_) | Neuron::TsaReadout { .. } | Neuron::None { .. } => false,
    }
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

/// Stage field `j` of PE lane `lane` in `prm` (see [`stage_fields`]), `value_bits` wide.
pub(crate) fn field(ctx: &LayerCtx, prm: &Expr, lane: u32, j: u32) -> Expr {
    let (f, vw) = (
        stage_fields(&ctx.layer.neuron).len() as u32,
        ctx.value_bits(),
    );
    let at = (lane * f + j) * vw;
    prm.clone().slice(at + vw - 1, at)
}

impl StepIn<'_> {
    /// Stage field `j` of the lane (see [`stage_fields`]), `value_bits` wide.
    pub(crate) fn param(&self, ctx: &LayerCtx, j: u32) -> Expr {
        let prm = self.prm.expect("a kind with stage fields gets them");
        field(ctx, prm, self.param_lane, j)
    }
    /// Whether this is the last local step.
    pub(crate) fn last(&self, ctx: &LayerCtx) -> Expr {
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
pub(crate) fn carried(
    m: &mut Module,
    ctx: &LayerCtx,
    io: &StepIn,
    name: &str,
) -> (Option<Expr>, Expr) {
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
pub(crate) fn cleared_at_last(
    ctx: &LayerCtx,
    io: &StepIn,
    reg: Expr,
    width: u32,
    next: Expr,
) -> Stmt {
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
        Neuron::Tsa(tsa) => crate::tsa::step(m, ctx, io, tsa),
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

/// The hand-off register's next contents, named for the lanes that look ahead.
struct Incoming {
    advance: Expr,
    /// The loaded fold's currents (as `cur_q`).
    cur: Expr,
    /// The loaded fold's stage parameters.
    loaded_prm: Expr,
    /// The next step's stage parameters: the loaded fold's, else the current fold's.
    prm: Expr,
}

impl Incoming {
    fn new(m: &mut Module, ctx: &LayerCtx, hs: &Handoff) -> Self {
        let cur_bits = ctx.mvu_lanes() * ctx.geo.input_steps * ctx.slot_bits();
        let (cur, prm) = &hs.incoming;
        let (prm, prm_q) = match (prm, &hs.prm) {
            (Some(p), Some(q)) => (p.clone(), q.clone()),
            _ => panic!("a kind that looks ahead has stage fields"),
        };
        let pw = ctx.fold.pe * stage_fields(&ctx.layer.neuron).len() as u32 * ctx.value_bits();
        let advance = m.wire_eq("advance", 1, hs.load.clone().or(hs.go.clone()));
        // Only each lane's first step is read from here.
        m.items
            .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
        let cur = m.wire_eq("cur_in", cur_bits, cur.clone());
        m.items
            .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
        let loaded_prm = m.wire_eq("prm_in", pw, prm);
        Incoming {
            advance,
            cur,
            prm: m.wire_eq(
                "prm_next",
                pw,
                hs.load.clone().cond(loaded_prm.clone(), prm_q),
            ),
            loaded_prm,
        }
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
    // Register-rich: a second output register (a skid buffer), so that whether the stage may
    // step depends on registers only, not on the consumer's `out_ready` (a path through the
    // next modules' ready logic).
    let skid = ctx
        .register_rich()
        .then(|| (m.reg("sk_v", 1), m.reg("sk_d", ctx.mvu_out_bits())));
    let blocked = match &skid {
        Some((v, _)) => v.clone(),
        None => id("out_valid").and(id("out_ready").not()),
    };
    let go = hs.go.clone();
    m.assign(
        go.clone(),
        hs.valid.clone().and(k_last.clone().and(blocked).not()),
    );
    m.assign(hs.ready.clone(), go.clone().and(k_last.clone()));
    let once = current_once(&ctx.layer.neuron) && steps == 1 && l > 1;
    let cw = ctx.slot_bits();
    let ahead = prepares_ahead(ctx).then(|| Incoming::new(m, ctx, hs));
    let mut updates = Vec::new();
    let mut cleared = Vec::new();
    let mut values = Vec::new();
    let mut emits = one();
    for p in 0..lanes {
        let lo = p * steps * cw;
        let slot = |s: u32| hs.cur.clone().slice(lo + (s + 1) * cw - 1, lo + s * cw);
        let (current, ahead) = match &ahead {
            Some(inc) => {
                // The next step's current: the loaded fold's first, else the next slot (the
                // same one with a single input step; 0 when the current enters once).
                let next = if once {
                    lit(cw, 0)
                } else {
                    slot(u32::from(steps > 1))
                };
                let first = inc.cur.clone().slice(lo + cw - 1, lo);
                let n = m.swire_eq(
                    &format!("inx{p}"),
                    vw,
                    hs.load.clone().cond(fit(first, cw, vw), fit(next, cw, vw)),
                );
                let ah = Ahead {
                    advance: inc.advance.clone(),
                    current: n,
                    prm: inc.prm.clone(),
                    load: hs.load.clone(),
                    loaded_prm: inc.loaded_prm.clone(),
                };
                (zero(), Some(ah))
            }
            None => {
                let a = m.wire_eq(&format!("a{p}"), cw, slot(0));
                let a = match (&k, once) {
                    (Some(k), true) => m.wire_eq(
                        &format!("ag{p}"),
                        cw,
                        k.clone().eq(lit(kw, 0)).cond(a, lit(cw, 0)),
                    ),
                    _ => a,
                };
                (m.swire_eq(&format!("i{p}"), vw, fit(a, cw, vw)), None)
            }
        };
        let out = step(
            m,
            ctx,
            &StepIn {
                p,
                param_lane: p % ctx.fold.pe,
                k: k.as_ref(),
                current,
                prm: hs.prm.as_ref(),
                ahead,
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
    let to_output = vec![
        Stmt::Nb(id("out_valid"), one()),
        Stmt::Nb(id("out_data"), beat.clone()),
    ];
    let emit = match &skid {
        None => to_output,
        // Into the skid buffer while the output register waits for its consumer.
        Some((v, d)) => vec![Stmt::If(
            id("out_valid").and(id("out_ready").not()),
            vec![Stmt::Nb(d.clone(), beat), Stmt::Nb(v.clone(), one())],
            to_output,
        )],
    };
    on_go.push(when(k_last, emit));
    let mut reset = vec![Stmt::Nb(id("out_valid"), zero())];
    for (r, w) in cleared {
        reset.push(Stmt::Nb(r, lit(w, 0)));
    }
    if let Some(k) = &k {
        reset.push(Stmt::Nb(k.clone(), lit(kw, 0)));
    }
    let mut body = vec![when(go, on_go)];
    if let Some((v, d)) = &skid {
        // The stage is held while the skid buffer is full, so this never meets a new beat.
        body.push(when(
            v.clone().and(id("out_ready")),
            vec![
                Stmt::Nb(id("out_data"), d.clone()),
                Stmt::Nb(id("out_valid"), one()),
                Stmt::Nb(v.clone(), zero()),
            ],
        ));
        reset.push(Stmt::Nb(v.clone(), zero()));
    }
    m.seq(vec![output_process(reset, body)]);
}
