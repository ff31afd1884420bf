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
    let mut m = Module::new(names.layer_module(ctx.index, "mvu"), vec![summary(ctx)]);
    m.params.push(("ROM_DIR".into(), Expr::Str(String::new())));
    stream_ports(&mut m, ctx.window_bits(), ctx.neuron_beat_bits(), true);
    let mems = Memories::declare(&mut m, ctx, names);
    let bits = CounterBits::of(ctx);
    let pipe = Pipe::declare(&mut m, ctx, &bits);
    let sequencing = sequencer(&mut m, ctx, &bits, &pipe, &mems);
    let prm = m.wire_eq(
        "prm_b",
        ctx.fold.pe * ctx.lane_param_bits(),
        mems.prm.idx(pipe.c.nf.clone()),
    );
    let (obase, obw) = output_base(&mut m, ctx, &bits, &pipe);
    if input_code(ctx) == InputCode::Ternary {
        ternary_planes(&mut m, ctx, &pipe.x_q);
    }
    let total = ctx
        .layer
        .is_binary()
        .then(|| input_total(&mut m, ctx, &pipe.x_q, ctx.acc_bits()));
    let shared = LaneShared {
        pipe: &pipe,
        total,
        prm,
        obase,
        obw,
    };
    let lanes: Vec<Stmt> = (0..ctx.fold.pe)
        .flat_map(|p| lane(&mut m, ctx, p, &shared))
        .collect();
    m.comment("Sequencing: accept a window, issue NF x T x SF operations, hand the result over.");
    m.seq(vec![sequencing]);
    m.seq(pipe.stage_c());
    m.comment("Lanes: accumulate, then one neuron step at the last synapse fold of a step.");
    m.seq(lanes);
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
        "Layer {} ({}): {kind} synapses, fan-in {}, {} outputs; PE = {}, SIMD = {}: \
         {} cycles per position.",
        ctx.index,
        ctx.layer.name,
        g.fan_in,
        g.synaptic.channels,
        fold.pe,
        fold.simd,
        ctx.nf() * g.local_steps * ctx.sf()
    )
}

/// TSA layers see no input after their input steps (the pixel layer's only step, or the T
/// steps before the silent period's extra ones); LIF layers reuse the pixel step.
fn gated(ctx: &LayerCtx) -> bool {
    ctx.layer.is_tsa() && ctx.geo.local_steps > ctx.geo.input_steps
}

/// The window store and the two ROMs, loaded from `ROM_DIR` at start-up.
struct Memories {
    /// The latched window: one input word (SIMD inputs) per synapse fold and input step.
    win: Expr,
    /// PE x SIMD weights per word, one word per neuron fold and synapse fold.
    wrom: Expr,
    /// The PE lanes' neuron parameters, one word per neuron fold.
    prm: Expr,
}

impl Memories {
    fn declare(m: &mut Module, ctx: &LayerCtx, names: &Names) -> Self {
        let (pe, simd) = (ctx.fold.pe, ctx.fold.simd);
        let (nf, sf) = (ctx.nf(), ctx.sf());
        m.comment(
            "Window store, weight ROM (PE x SIMD weights per word) and neuron parameter ROM.",
        );
        let mems = Memories {
            win: m.mem("win", simd * ctx.geo.input_bits, ctx.geo.input_steps * sf),
            wrom: m.mem("wrom", pe * simd * ctx.weight_bits(), nf * sf),
            prm: m.mem("prm", pe * ctx.lane_param_bits(), nf),
        };
        let load = |file: String, mem: &Expr| {
            Stmt::Task(
                "$readmemh".into(),
                vec![cat(vec![id("ROM_DIR"), Expr::Str(file)]), mem.clone()],
            )
        };
        m.items.push(Item::Initial(vec![
            load(names.weight_file(ctx.index), &mems.wrom),
            load(names.param_file(ctx.index), &mems.prm),
        ]));
        mems
    }
}

/// Index widths of the sequencer's counters and addresses.
struct CounterBits {
    nf: u32,
    t: u32,
    sf: u32,
    /// Weight ROM address.
    wa: u32,
    /// Window store address.
    xa: u32,
}

impl CounterBits {
    fn of(ctx: &LayerCtx) -> Self {
        let (nf, sf) = (ctx.nf() as u64, ctx.sf() as u64);
        CounterBits {
            nf: index_bits(nf),
            t: index_bits(ctx.geo.local_steps as u64),
            sf: index_bits(sf),
            wa: index_bits(nf * sf),
            xa: index_bits(ctx.geo.input_steps as u64 * sf),
        }
    }
}

/// What travels with an operation through a pipeline stage.
struct Tags {
    valid: Expr,
    /// First synapse fold of a step (the accumulator restarts).
    first: Expr,
    /// Last synapse fold of a step (the neuron steps).
    last: Expr,
    /// The position's last operation.
    end: Expr,
    /// The local step; with one time step there is no step to carry a membrane across.
    step: Option<Expr>,
    /// The neuron fold.
    nf: Expr,
}

impl Tags {
    fn declare(m: &mut Module, stage: &str, bits: &CounterBits, steps: u32) -> Self {
        let mut reg = |name: &str, w| m.reg(&format!("{stage}_{name}"), w);
        Tags {
            valid: reg("v", 1),
            first: reg("first", 1),
            last: reg("last", 1),
            end: reg("end", 1),
            step: (steps > 1).then(|| reg("t", bits.t)),
            nf: reg("nf", bits.nf),
        }
    }
}

/// The sequencer's registers: operation counters and addresses (stage A), the registered
/// operands and their tags (stage B), the tags of the registered dot products (stage C),
/// and the output buffer.
struct Pipe {
    busy: Expr,
    issuing: Expr,
    drain: Expr,
    nf_a: Expr,
    t_a: Expr,
    sf_a: Expr,
    wa: Expr,
    xa: Expr,
    w_q: Expr,
    x_q: Expr,
    b: Tags,
    /// Stage C: the lanes' dot products are registered, so the adder trees and the neuron
    /// arithmetic are separate paths (about twice the clock of one long path).
    c: Tags,
    obuf: Expr,
}

impl Pipe {
    fn declare(m: &mut Module, ctx: &LayerCtx, bits: &CounterBits) -> Self {
        let (pe, simd, t) = (ctx.fold.pe, ctx.fold.simd, ctx.geo.local_steps);
        m.comment("Control: operation counters (stage A) and the registered operands (stage B).");
        Pipe {
            busy: m.reg("busy", 1),
            issuing: m.reg("issuing", 1),
            drain: m.reg("drain", 1),
            nf_a: m.reg("nf_a", bits.nf),
            t_a: m.reg("t_a", bits.t),
            sf_a: m.reg("sf_a", bits.sf),
            wa: m.reg("wa", bits.wa),
            xa: m.reg("xa", bits.xa),
            w_q: m.reg("w_q", pe * simd * ctx.weight_bits()),
            x_q: m.reg("x_q", simd * ctx.geo.input_bits),
            b: Tags::declare(m, "b", bits, t),
            c: Tags::declare(m, "c", bits, t),
            obuf: m.reg("obuf", ctx.neuron_beat_bits()),
        }
    }

    /// Stage B's tags move on to stage C with the dot products.
    fn stage_c(&self) -> Vec<Stmt> {
        let (b, c) = (&self.b, &self.c);
        let mut stmts = vec![
            Stmt::Nb(c.first.clone(), b.first.clone()),
            Stmt::Nb(c.last.clone(), b.last.clone()),
            Stmt::Nb(c.end.clone(), b.end.clone()),
            Stmt::Nb(c.nf.clone(), b.nf.clone()),
        ];
        if let (Some(ct), Some(bt)) = (&c.step, &b.step) {
            stmts.push(Stmt::Nb(ct.clone(), bt.clone()));
        }
        stmts
    }
}

/// Whether the stage-A counters are at their last value.
struct AtLast {
    sf: Expr,
    t: Expr,
    nf: Expr,
}

/// Declares the handshake and the counters' end wires; returns the sequential block that
/// accepts a window, issues its NF x T x SF operations and hands the result over.
fn sequencer(
    m: &mut Module,
    ctx: &LayerCtx,
    bits: &CounterBits,
    pipe: &Pipe,
    mems: &Memories,
) -> Stmt {
    let at_last = |counter: &Expr, w: u32, n: u32| counter.clone().eq(lit(w, (n - 1) as u64));
    m.assign(id("in_ready"), pipe.busy.clone().not());
    let accept = m.wire_eq("accept", 1, id("in_valid").and(pipe.busy.clone().not()));
    let last = AtLast {
        sf: m.wire_eq("last_sf", 1, at_last(&pipe.sf_a, bits.sf, ctx.sf())),
        t: m.wire_eq("last_t", 1, at_last(&pipe.t_a, bits.t, ctx.geo.local_steps)),
        nf: m.wire_eq("last_nf", 1, at_last(&pipe.nf_a, bits.nf, ctx.nf())),
    };
    let (p, c) = (pipe, &pipe.c);
    Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(p.busy.clone(), zero()),
            Stmt::Nb(p.issuing.clone(), zero()),
            Stmt::Nb(p.drain.clone(), zero()),
            Stmt::Nb(p.b.valid.clone(), zero()),
            Stmt::Nb(c.valid.clone(), zero()),
            Stmt::Nb(id("out_valid"), zero()),
        ],
        vec![
            when(accept, load(ctx, bits, pipe, &mems.win)),
            Stmt::If(
                p.issuing.clone(),
                issue(ctx, bits, pipe, mems, &last),
                vec![Stmt::Nb(p.b.valid.clone(), zero())],
            ),
            Stmt::Nb(c.valid.clone(), p.b.valid.clone()),
            when(
                c.valid.clone().and(c.end.clone()),
                vec![Stmt::Nb(p.drain.clone(), one())],
            ),
            when(
                id("out_valid").and(id("out_ready")),
                vec![Stmt::Nb(id("out_valid"), zero())],
            ),
            when(
                p.drain
                    .clone()
                    .and(id("out_valid").not().or(id("out_ready"))),
                vec![
                    Stmt::Nb(id("out_valid"), one()),
                    Stmt::Nb(id("out_data"), p.obuf.clone()),
                    Stmt::Nb(p.drain.clone(), zero()),
                    Stmt::Nb(p.busy.clone(), zero()),
                ],
            ),
        ],
    )
}

/// Latches a window and starts issuing its operations from the first.
fn load(ctx: &LayerCtx, bits: &CounterBits, pipe: &Pipe, win: &Expr) -> Vec<Stmt> {
    let w = ctx.fold.simd * ctx.geo.input_bits;
    // Unrolled: Verilator cannot schedule non-blocking array writes inside long loops.
    let mut load: Vec<Stmt> = (0..ctx.geo.input_steps * ctx.sf())
        .map(|e| {
            Stmt::Nb(
                win.clone().idx(lit(bits.xa, e as u64)),
                id("in_data").slice(e * w + w - 1, e * w),
            )
        })
        .collect();
    load.extend([
        Stmt::Nb(pipe.busy.clone(), one()),
        Stmt::Nb(pipe.issuing.clone(), one()),
        Stmt::Nb(pipe.nf_a.clone(), lit(bits.nf, 0)),
        Stmt::Nb(pipe.t_a.clone(), lit(bits.t, 0)),
        Stmt::Nb(pipe.sf_a.clone(), lit(bits.sf, 0)),
        Stmt::Nb(pipe.wa.clone(), lit(bits.wa, 0)),
        Stmt::Nb(pipe.xa.clone(), lit(bits.xa, 0)),
    ]);
    load
}

/// One operation: read the operands into stage B with their tags, and step the counters
/// (synapse fold innermost, then time step, then neuron fold).
fn issue(
    ctx: &LayerCtx,
    bits: &CounterBits,
    pipe: &Pipe,
    mems: &Memories,
    last: &AtLast,
) -> Vec<Stmt> {
    let (p, b) = (pipe, &pipe.b);
    let inc = |r: &Expr, w: u32| Stmt::Nb(r.clone(), r.clone().add(lit(w, 1)));
    let clear = |r: &Expr, w: u32| Stmt::Nb(r.clone(), lit(w, 0));
    let next_neuron_fold = Stmt::If(
        last.nf.clone().not(),
        vec![inc(&p.nf_a, bits.nf), inc(&p.wa, bits.wa)],
        vec![Stmt::Nb(p.issuing.clone(), zero())],
    );
    let next_step = Stmt::If(
        last.t.clone().not(),
        vec![
            inc(&p.t_a, bits.t),
            // Back to the first synapse fold's weights of this neuron fold.
            Stmt::Nb(
                p.wa.clone(),
                p.wa.clone().sub(lit(bits.wa, (ctx.sf() - 1) as u64)),
            ),
            Stmt::Nb(p.xa.clone(), next_step_xa(ctx, bits, pipe)),
        ],
        vec![
            clear(&p.t_a, bits.t),
            clear(&p.xa, bits.xa),
            next_neuron_fold,
        ],
    );
    let mut issue = vec![
        Stmt::Nb(p.w_q.clone(), mems.wrom.clone().idx(p.wa.clone())),
        Stmt::Nb(p.x_q.clone(), window_read(ctx, bits, pipe, &mems.win)),
        Stmt::Nb(b.valid.clone(), one()),
        Stmt::Nb(b.first.clone(), p.sf_a.clone().eq(lit(bits.sf, 0))),
        Stmt::Nb(b.last.clone(), last.sf.clone()),
        Stmt::Nb(b.nf.clone(), p.nf_a.clone()),
        Stmt::Nb(
            b.end.clone(),
            last.sf.clone().and(last.t.clone()).and(last.nf.clone()),
        ),
        Stmt::If(
            last.sf.clone().not(),
            vec![
                inc(&p.sf_a, bits.sf),
                inc(&p.wa, bits.wa),
                inc(&p.xa, bits.xa),
            ],
            vec![clear(&p.sf_a, bits.sf), next_step],
        ),
    ];
    if let Some(bt) = &b.step {
        issue.push(Stmt::Nb(bt.clone(), p.t_a.clone()));
    }
    issue
}

/// The window address of the next time step's first synapse fold.
fn next_step_xa(ctx: &LayerCtx, bits: &CounterBits, pipe: &Pipe) -> Expr {
    let (ti, xa) = (ctx.geo.input_steps, &pipe.xa);
    if ti == 1 {
        lit(bits.xa, 0)
    } else if gated(ctx) {
        // Back to the start after the last input step (the steps after it read nothing).
        pipe.t_a
            .clone()
            .eq(lit(bits.t, (ti - 1) as u64))
            .cond(lit(bits.xa, 0), xa.clone().add(lit(bits.xa, 1)))
    } else {
        xa.clone().add(lit(bits.xa, 1))
    }
}

/// The input word an operation reads: zero in a gated layer's steps after its input steps.
fn window_read(ctx: &LayerCtx, bits: &CounterBits, pipe: &Pipe, win: &Expr) -> Expr {
    let read = win.clone().idx(pipe.xa.clone());
    if gated(ctx) {
        let (ti, w) = (ctx.geo.input_steps, ctx.fold.simd * ctx.geo.input_bits);
        pipe.t_a
            .clone()
            .lt(lit(bits.t, ti as u64))
            .cond(read, lit(w, 0))
    } else {
        read
    }
}

/// Where stage C's results go in the output buffer: the neuron fold's lanes, and with
/// several output steps the step's slice. Returns the base bit (a constant 0 when the buffer
/// holds one value) and the width of bit indices.
fn output_base(m: &mut Module, ctx: &LayerCtx, bits: &CounterBits, pipe: &Pipe) -> (Expr, u32) {
    let (ob, out_w) = (ctx.neuron_bits(), ctx.neuron_beat_bits());
    let obw = index_bits(out_w as u64);
    let mut obase = zext(pipe.c.nf.clone(), bits.nf, obw).mul(lit(obw, (ctx.fold.pe * ob) as u64));
    if let (Some(ct), true) = (&pipe.c.step, ctx.out_steps() > 1) {
        // Output step m = local step − silent (written only once the neuron may speak).
        let silent = ctx.geo.local_steps - ctx.steps;
        let step = if silent == 0 {
            ct.clone()
        } else {
            m.wire_eq("ostep", bits.t, ct.clone().sub(lit(bits.t, silent as u64)))
        };
        obase = resize(step, bits.t, obw)
            .mul(lit(obw, (ctx.geo.synaptic.channels * ob) as u64))
            .add(obase);
    }
    let obase = if out_w > ob {
        m.wire_eq("obase", obw, obase)
    } else {
        lit(1, 0)
    };
    (obase, obw)
}

/// A ternary input word's bit planes, and for integer weights the count of negative
/// spikes, shared by the lanes (see `signed_lane_dot`).
fn ternary_planes(m: &mut Module, ctx: &LayerCtx, x_q: &Expr) {
    let valid = input_plane(m, ctx, x_q, 0, "x_valid");
    let sign = input_plane(m, ctx, x_q, 1, "x_sign");
    if !ctx.layer.is_binary() {
        // The negated weights' +1s.
        let aw = ctx.acc_bits();
        let negs = (0..ctx.fold.simd)
            .map(|i| (valid.clone().bit(i).band(sign.clone().bit(i)), 1))
            .collect();
        let n = sum_wire(m, "x_neg_count", negs, aw);
        m.wire_eq("x_negs", aw, n);
    }
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

/// What every lane reads: the pipeline, the input word's total (binary layers), the
/// neuron fold's parameter word and the output buffer's base bit.
struct LaneShared<'p> {
    pipe: &'p Pipe,
    total: Option<Expr>,
    prm: Expr,
    obase: Expr,
    /// Width of bit indices into the output buffer.
    obw: u32,
}

/// One lane: its accumulator, neuron and result write; returns its sequential statements.
fn lane(m: &mut Module, ctx: &LayerCtx, p: u32, shared: &LaneShared) -> Vec<Stmt> {
    let (pipe, obw) = (shared.pipe, shared.obw);
    let (aw, vw) = (ctx.acc_bits(), ctx.value_bits());
    let ob = ctx.neuron_bits();
    let dot = lane_dot(m, ctx, p, &pipe.x_q, &pipe.w_q, shared.total.as_ref());
    let dot = m.wire_eq(&format!("dot{p}"), aw, dot);
    let dot_q = m.reg(&format!("dot_q{p}"), aw);
    let acc = m.reg(&format!("acc{p}"), aw);
    let sum = m.wire_eq(
        &format!("sum{p}"),
        aw,
        pipe.c
            .first
            .clone()
            .cond(lit(aw, 0), acc.clone())
            .add(dot_q.clone()),
    );
    let bias = m.swire_eq(
        &format!("bias{p}"),
        vw,
        shared
            .prm
            .clone()
            .part(Expr::Int((p * ctx.lane_param_bits()) as i64), vw),
    );
    let bit = if ctx.neuron_beat_bits() > ob {
        m.wire_eq(
            &format!("obit{p}"),
            obw,
            shared.obase.clone().add(lit(obw, (p * ob) as u64)),
        )
    } else {
        lit(1, 0)
    };
    let io = LaneIo {
        p,
        last: &pipe.c.last,
        step: &pipe.c.step,
        prm: &shared.prm,
        sum: fit(sum.clone(), aw, vw),
        bias,
        obuf: &pipe.obuf,
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
            when(id("c_v").and(io.last.clone()), vec![io.write(ctx, val)])
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
