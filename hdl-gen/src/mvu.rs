//! The matrix-vector unit of a layer and its neuron stage.
//!
//! Input: the window unit's words, `SIMD` inputs × the layer's input steps each, `NF·SF` words
//! per output position in (neuron fold, synapse fold) order. Every word is paired with weight
//! word `nf·SF + sf` (a counter, so the ROM read is registered and maps to block RAM) and
//! applied to **all input steps at once**: one weight fetch serves every step.
//!
//! Pipeline: accept (operands registered) → with `operand_regs`, a second operand rank in
//! the fabric and, for DSP lanes, a rank on each multiplier's operands and one on its product
//! → adder trees (a register rank every `tree_levels` levels) → combine
//! (`Σ coef·tree + constant`) → accumulate; at a neuron fold's last synapse fold the
//! `PE × steps` currents and the fold's neuron parameters (a registered ROM read) go to the
//! hand-off register ([`crate::accumulate`]). With MMV > 1 the word holds `MMV` positions'
//! words and every lane is built once per position, all on the same weight word. The neuron
//! stage ([`crate::neuron`]) runs the fold's local steps from there, one per cycle, and emits
//! one output beat of `PE` channels × output steps.
//!
//! Flow control, one of two ([`LayerCtx::register_rich`]): **stall-all**, as FINN's MVAU, all
//! stages advancing together under `en`, which drops only when a fold's currents arrive while
//! the hand-off register is still in use; or **free-running**, the stages advancing every
//! cycle and finished folds queuing for the hand-off register, the input admitted only while
//! every fold already taken has a queue entry (credits), so nothing downstream of the accept
//! ever waits and no enable fans out to the pipeline.

use crate::accumulate::Control;
use crate::lanes::{lane_dot, shared_trees, Dot, Operands};
use crate::names::{self, Names};
use crate::rtl::{
    at_first, at_last, counter, index_bits, rom_load, step_counter, stream_ports, zext, LayerCtx,
};
use crate::tree::{ranks_for, Ranks};
use crate::vlog::*;

/// Generates the MVU + neuron module of a layer.
pub fn mvu(ctx: &LayerCtx, names: &Names) -> Module {
    let mut m = Module::new(names.layer_module(ctx.index, "mvu"), vec![summary(ctx)]);
    m.params
        .push(("ROM_DIR".into(), Expr::Str(crate::ROM_DIR_DEFAULT.into())));
    stream_ports(&mut m, ctx.in_word_bits(), ctx.mvu_out_bits(), true);
    let pe = ctx.fold.pe;
    let (nf, sf) = (ctx.nf(), ctx.sf());
    m.comment("Weight ROM (PE x SIMD weights per word) and neuron parameter ROM.");
    let (ww, wd) = (ctx.weight_word_bits(), nf * sf);
    let wrom = if ctx.block_weights {
        m.block_rom("wrom", ww, wd)
    } else {
        m.mem("wrom", ww, wd)
    };
    let prm = m.mem("prm", pe * ctx.lane_param_bits(), nf);
    m.items.push(Item::Initial(vec![
        rom_load(&names.weight_file(ctx.index), &wrom),
        rom_load(&names.param_file(ctx.index), &prm),
    ]));
    // Stall-all: one enable for every pipeline register. Free-running: a registered `room`
    // admits the input, the registers advance every cycle.
    let (en, ready) = if ctx.register_rich() {
        (None, m.reg("room", 1))
    } else {
        let en = m.wire("en", 1);
        (Some(en.clone()), en)
    };
    m.assign(id("in_ready"), ready.clone());
    let accept = m.wire_eq("accept", 1, id("in_valid").and(ready.clone()));
    let mut ranks = Ranks::default();
    let mut valid = ValidChain::default();
    let tags = accept_stage(&mut m, ctx, &mut ranks, &mut valid, &wrom, &accept);
    let d = dot_stages(&mut m, ctx, &mut ranks, &mut valid, tags, &prm);
    let control = match &en {
        Some(en) => Control::Stall { en: en.clone() },
        None => Control::Credits {
            room: ready,
            taken: accept.and(id("last_sf")),
            depth: valid.stages.len() as u32,
        },
    };
    let hs = crate::accumulate::handoff(&mut m, ctx, &d, &control);
    crate::neuron::stage(&mut m, ctx, &hs);
    match &en {
        Some(en) => {
            m.comment("The pipeline registers advance together.");
            m.seq(vec![when(en.clone(), ranks.updates)]);
        }
        None => {
            m.comment("The pipeline registers advance every cycle.");
            m.seq(ranks.updates);
        }
    }
    valid.emit(&mut m, en.as_ref());
    m
}

/// The module's header line: what the layer is and how it is folded.
fn summary(ctx: &LayerCtx) -> String {
    let (g, fold) = (&ctx.geo, &ctx.fold);
    let kind = if ctx.layer.is_binary() {
        "binary"
    } else {
        "integer"
    };
    format!(
        "Layer {} ({}): {kind} synapses, fan-in {}, {} outputs, {} input step(s) per word; \
         PE = {}, SIMD = {}{}: {} cycles per position{}.",
        ctx.index,
        ctx.layer.name,
        g.fan_in,
        g.synaptic.channels,
        g.input_steps,
        fold.pe,
        fold.simd,
        if fold.mmv > 1 {
            format!(", MMV = {}", fold.mmv)
        } else {
            String::new()
        },
        ctx.position_cycles(),
        if fold.mmv > 1 { " group" } else { "" }
    )
}

/// Valid bits of the pipeline: reset to 0, shifted under `en` (every cycle when free-running).
#[derive(Default)]
struct ValidChain {
    stages: Vec<(Expr, Expr)>,
}

impl ValidChain {
    fn push(&mut self, m: &mut Module, name: &str, from: Expr) -> Expr {
        let r = m.reg(name, 1);
        self.stages.push((r.clone(), from));
        r
    }
    fn emit(self, m: &mut Module, en: Option<&Expr>) {
        let reset = self
            .stages
            .iter()
            .map(|(r, _)| Stmt::Nb(r.clone(), zero()))
            .collect();
        let step = self
            .stages
            .into_iter()
            .map(|(r, f)| Stmt::Nb(r, f))
            .collect();
        let step = match en {
            Some(en) => vec![when(en.clone(), step)],
            None => step,
        };
        m.seq(vec![Stmt::If(id(names::RST), reset, step)]);
    }
}

/// What travels with an operation through the pipeline.
#[derive(Clone)]
pub(crate) struct Tags {
    pub(crate) valid: Expr,
    /// First synapse fold of a neuron fold (the accumulator restarts); `None` with one
    /// synapse fold, where there is no accumulator.
    pub(crate) first: Option<Expr>,
    /// Last synapse fold (the currents are complete).
    pub(crate) last: Expr,
    /// The neuron fold (`None` with one fold).
    nf: Option<Expr>,
}

/// Adder trees, each a list of `(term, width)`.
type Trees = Vec<Vec<(Expr, u32)>>;

/// Stage 0: the fold counters, the registered input word and weight word, and their tags.
fn accept_stage(
    m: &mut Module,
    ctx: &LayerCtx,
    ranks: &mut Ranks,
    valid: &mut ValidChain,
    wrom: &Expr,
    accept: &Expr,
) -> (Tags, Expr, Expr) {
    let (nf, sf) = (ctx.nf(), ctx.sf());
    m.comment("Accept: synapse fold, neuron fold and weight address counters.");
    let sf_c = counter(m, "sf_c", sf);
    let nf_c = counter(m, "nf_c", nf);
    let wa = counter(m, "wa", nf * sf);
    let last_sf = m.wire_eq("last_sf", 1, at_last(&sf_c, sf));
    let mut advance = Vec::new();
    advance.extend(step_counter(&sf_c, sf));
    advance.extend(step_counter(&wa, nf * sf));
    if let Some(s) = step_counter(&nf_c, nf) {
        advance.push(when(last_sf.clone(), vec![s]));
    }
    let mut reset = Vec::new();
    for (r, w) in [&sf_c, &nf_c, &wa].into_iter().flatten() {
        reset.push(Stmt::Nb(r.clone(), lit(*w, 0)));
    }
    if !advance.is_empty() {
        m.seq(vec![Stmt::If(
            id(names::RST),
            reset,
            vec![when(accept.clone(), advance)],
        )]);
    }
    let x_q = ranks.reg(m, "x_q", ctx.in_word_bits(), id("in_data"));
    let addr = wa.as_ref().map_or(lit(1, 0), |(r, _)| r.clone());
    let w_q = ranks.reg(m, "w_q", ctx.weight_word_bits(), wrom.clone().idx(addr));
    let tags = Tags {
        valid: valid.push(m, "vld0", accept.clone()),
        first: (sf > 1).then(|| ranks.reg(m, "first0", 1, at_first(&sf_c))),
        last: ranks.reg(m, "last0", 1, last_sf),
        nf: nf_c.map(|(r, w)| ranks.reg(m, "nf0", w, r)),
    };
    (tags, x_q, w_q)
}

/// The registered dot products `dot{p}_{s}` of every lane and step, and their tags.
pub(crate) struct Dots {
    pub(crate) tags: Tags,
    /// `[lane][step]`, `mac_bits` wide: the signed dot products (polarity applied).
    pub(crate) dots: Vec<Vec<Expr>>,
    /// Per PE lane, the neuron fold's bias (low bits) and stage fields, aligned with `dots`.
    pub(crate) prm: Vec<Expr>,
}

/// Adder trees and the combine rank.
fn dot_stages(
    m: &mut Module,
    ctx: &LayerCtx,
    ranks: &mut Ranks,
    valid: &mut ValidChain,
    (tags, x_q, w_q): (Tags, Expr, Expr),
    prm: &Expr,
) -> Dots {
    let (pe, steps, aw) = (ctx.fold.pe, ctx.geo.input_steps, ctx.acc_bits());
    let mw = ctx.mac_bits();
    let every = ctx.tree_levels;
    // Operand registers: the weight word out of its ROM (a block RAM's output is not
    // registered in the fabric) and the input word beside it, one rank before the lanes.
    let lead = u32::from(ctx.operand_regs);
    let (x_q, w_q) = if ctx.operand_regs {
        m.comment("Operand registers: the weight word and the input word, one rank.");
        (
            ranks.reg(m, "x_r", ctx.in_word_bits(), x_q),
            ranks.reg(m, "w_r", ctx.weight_word_bits(), w_q),
        )
    } else {
        (x_q, w_q)
    };
    let positions = match ctx.fold.mmv {
        1 => String::new(),
        n => format!(" on each of {n} positions"),
    };
    m.comment(format!(
        "Lanes: {pe} x {} inputs x {steps} step(s){positions}, adder trees registered every {every} level(s).",
        ctx.fold.simd
    ));
    // With MMV > 1 every position's input word meets the same weight word: lane `j·PE + p`
    // is lane `p` on position `j`, its wires prefixed `m{j}_`.
    let mmv = ctx.fold.mmv;
    let tag = |j: u32| {
        if mmv == 1 {
            String::new()
        } else {
            format!("m{j}_")
        }
    };
    let x_pos: Vec<Expr> = (0..mmv)
        .map(|j| {
            if mmv == 1 {
                x_q.clone()
            } else {
                let w = ctx.position_word_bits();
                m.wire_eq(
                    &format!("x{j}"),
                    w,
                    x_q.clone().slice((j + 1) * w - 1, j * w),
                )
            }
        })
        .collect();
    let shared: Vec<Vec<Trees>> = x_pos
        .iter()
        .enumerate()
        .map(|(j, x)| {
            (0..steps)
                .map(|s| shared_trees(m, ctx, x, s, &tag(j as u32)))
                .collect()
        })
        .collect();
    let plans = lane_plans(m, ranks, ctx, &x_pos, &w_q, &tag);
    // A DSP lane's registered operands and products take two ranks before its trees.
    let product_rank = |d: &Dot| 2 * u32::from(d.products && ctx.operand_regs);
    let depth = plans
        .iter()
        .flatten()
        .flat_map(|d| {
            d.own
                .iter()
                .map(move |(_, t)| ranks_for(t.len(), every) + product_rank(d))
        })
        .chain(
            shared
                .iter()
                .flatten()
                .flatten()
                .map(|t| ranks_for(t.len(), every)),
        )
        .max()
        .unwrap_or(0)
        .max(1);
    let shared_sums: Vec<Vec<Vec<(Expr, u32)>>> = shared
        .into_iter()
        .enumerate()
        .map(|(j, per_step)| {
            per_step
                .into_iter()
                .enumerate()
                .map(|(s, trees)| {
                    trees
                        .into_iter()
                        .enumerate()
                        .map(|(k, t)| {
                            let name = format!("xs{}{s}_{k}", tag(j as u32));
                            ranks.sum(m, &name, t, aw, every, depth)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let nf_w = index_bits(ctx.nf() as u64);
    // The parameter ROM is read a rank ahead, so the fold's polarity meets the tree outputs.
    let tags = delay_tags_nf(m, ranks, valid, tags, 0, lead + depth - 1, nf_w);
    let lpb = ctx.lane_param_bits();
    let prm_t = ranks.reg(
        m,
        "prm_t",
        pe * lpb,
        prm.clone().idx(tags.nf.clone().unwrap_or(lit(1, 0))),
    );
    // Past the read, the fold travels in the parameters, not in a tag.
    let tags = Tags { nf: None, ..tags };
    let tags = delay_tags_nf(m, ranks, valid, tags, lead + depth - 1, 2, nf_w);
    // What later stages need of the parameters: per lane the bias, then the stage fields.
    let vw = ctx.value_bits();
    let fields = crate::neuron::stage_fields(&ctx.layer.neuron);
    // One register per lane (a single wide one costs Verilator a quadratic concatenation
    // every cycle; the hardware is the same).
    let prm_d: Vec<Expr> = (0..pe)
        .map(|p| {
            let kept: Vec<Expr> = std::iter::once(0)
                .chain(fields.iter().copied())
                .rev()
                .map(|f| {
                    let at = p * lpb + f * vw;
                    prm_t.clone().slice(at + vw - 1, at)
                })
                .collect();
            let w = (1 + fields.len() as u32) * vw;
            let value = if kept.len() == 1 {
                kept.into_iter().next().unwrap_or_else(zero)
            } else {
                cat(kept)
            };
            ranks.reg(m, &format!("prm_d{p}"), w, value)
        })
        .collect();
    let folded = crate::neuron::folded(&ctx.layer.neuron);
    let mut dots = Vec::new();
    for (v, lane) in plans.into_iter().enumerate() {
        // Virtual lane v is weight lane p of position j; its wires are numbered by v.
        let (j, p) = (v / pe as usize, v % pe as usize);
        let mut row = Vec::new();
        for (s, plan) in lane.into_iter().enumerate() {
            let mut e = lit(aw, plan.constant.rem_euclid(1i64 << aw.min(62)) as u64);
            let registered = product_rank(&plan);
            let own: Vec<(i64, (Expr, u32))> = plan
                .own
                .into_iter()
                .enumerate()
                .map(|(k, (c, t))| {
                    let name = format!("t{v}_{s}_{k}");
                    // The operands' rank is inside the lane; the products' rank is here.
                    let t = if registered > 0 {
                        register_terms(m, ranks, &name, t)
                    } else {
                        t
                    };
                    (c, ranks.sum(m, &name, t, aw, every, depth - registered))
                })
                .collect();
            let shared_used = plan
                .shared
                .iter()
                .map(|&(c, k)| (c, shared_sums[j][s][k].clone()));
            for (c, (t, w)) in own.into_iter().chain(shared_used) {
                let t = zext(t, w, aw);
                let t = if c.abs() == 2 { t.shl(Expr::Int(1)) } else { t };
                e = if c > 0 { e.add(t) } else { e.sub(t) };
            }
            // Without an accumulator a narrow output uses only the low bits of the sum.
            let trimmed = ctx.sf() == 1 && ctx.slot_bits() < mw;
            if trimmed {
                m.items
                    .push(Item::Comment("verilator lint_off UNUSEDSIGNAL".into()));
            }
            // The trees are exact modulo 2^acc_bits, where the dot product fits as a signed
            // value: sign-extend it, then a negative polarity negates it.
            let raw = m.wire_eq(&format!("raw{v}_{s}"), aw, e);
            let wide = crate::rtl::sext(raw, aw, mw);
            let e = match folded.polarity {
                Some(f) => {
                    let neg = prm_t.clone().bit(p as u32 * lpb + f * ctx.value_bits());
                    neg.cond(lit(mw, 0).sub(wide.clone()), wide)
                }
                None => wide,
            };
            row.push(ranks.reg(m, &format!("dot{v}_{s}"), mw, e));
            if trimmed {
                m.items
                    .push(Item::Comment("verilator lint_on UNUSEDSIGNAL".into()));
            }
        }
        dots.push(row);
    }
    Dots {
        tags,
        dots,
        prm: prm_d,
    }
}

/// The dot product of every lane (`j·PE + p`: weight lane `p` on position `j`) and step:
/// DSP lanes' operands two to a multiplier where they pack ([`crate::packed`]), the rest one
/// lane and step at a time.
fn lane_plans(
    m: &mut Module,
    ranks: &mut Ranks,
    ctx: &LayerCtx,
    x_pos: &[Expr],
    w_q: &Expr,
    tag: &dyn Fn(u32) -> String,
) -> Vec<Vec<Dot>> {
    let (pe, steps, mmv) = (ctx.fold.pe, ctx.geo.input_steps, ctx.fold.mmv);
    let ops = |v: u32, s: u32| {
        let (j, p) = (v / pe, v % pe);
        Operands {
            x: &x_pos[j as usize],
            w: w_q,
            step: s,
            lane: p,
            prefix: if steps == 1 {
                format!("{}p{p}", tag(j))
            } else {
                format!("{}p{p}s{s}", tag(j))
            },
        }
    };
    let mut plans: Vec<Vec<Option<Dot>>> = (0..mmv * pe)
        .map(|_| (0..steps).map(|_| None).collect())
        .collect();
    if crate::packed::packs(ctx) {
        // A DSP lane's operands (positions × steps) two to a multiplier.
        for p in 0..pe.min(ctx.dsp_lanes) {
            let members: Vec<(u32, u32)> = (0..mmv)
                .flat_map(|j| (0..steps).map(move |s| (j * pe + p, s)))
                .collect();
            for two in members.chunks(2) {
                if let [(va, sa), (vb, sb)] = *two {
                    if let Some((da, db)) =
                        crate::packed::pair(m, ranks, ctx, &ops(va, sa), &ops(vb, sb))
                    {
                        plans[va as usize][sa as usize] = Some(da);
                        plans[vb as usize][sb as usize] = Some(db);
                    }
                }
            }
        }
    }
    plans
        .into_iter()
        .enumerate()
        .map(|(v, row)| {
            row.into_iter()
                .enumerate()
                .map(|(s, d)| {
                    d.unwrap_or_else(|| lane_dot(m, ranks, ctx, &ops(v as u32, s as u32)))
                })
                .collect()
        })
        .collect()
}

/// Each term in a register of its own (`{name}_q{i}`), one rank.
fn register_terms(
    m: &mut Module,
    ranks: &mut Ranks,
    name: &str,
    terms: Vec<(Expr, u32)>,
) -> Vec<(Expr, u32)> {
    terms
        .into_iter()
        .enumerate()
        .map(|(i, (e, w))| (ranks.reg(m, &format!("{name}_q{i}"), w, e), w))
        .collect()
}

/// Delays tags by `n` ranks, the neuron fold `nf_w` bits wide; the new registers are numbered
/// from `from + 1`.
fn delay_tags_nf(
    m: &mut Module,
    ranks: &mut Ranks,
    valid: &mut ValidChain,
    t: Tags,
    from: u32,
    n: u32,
    nf_w: u32,
) -> Tags {
    let mut t = t;
    for k in from..from + n {
        t = Tags {
            valid: valid.push(m, &format!("vld{}", k + 1), t.valid),
            first: t
                .first
                .map(|e| ranks.reg(m, &format!("first{}", k + 1), 1, e)),
            last: ranks.reg(m, &format!("last{}", k + 1), 1, t.last),
            nf: t.nf.map(|e| ranks.reg(m, &format!("nf{}", k + 1), nf_w, e)),
        };
    }
    t
}
