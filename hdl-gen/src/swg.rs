//! The sliding-window unit (FINN's SWG, in block RAM): a cyclic buffer of `R` input rows,
//! each `W` positions × `NG` words of `SIMD` channels (× input steps × value bits), written
//! one word per cycle in raster order and read one word per cycle in
//! (output row, output column, neuron fold, ky, kx, channel group) order: every output
//! position's window `NF` times, once per neuron fold of the MVU behind it, so the MVU needs
//! no window store. Padding reads a zero word; stride 1 and 2, same and valid padding.
//!
//! A dense layer is the degenerate case: its flattened input is one row of `N/SIMD` words
//! (`H = 1`, `KW = W`), with two row slots, so the next image streams in while this one is
//! replayed.
//!
//! Flow control: `avail` counts complete rows from the read side's base row (the first row the
//! current output row needs); an output row is issued once the rows it needs are in. `occ`
//! counts complete rows not yet retired; a row is retired when the last word that needed it has
//! left the read pipeline, and the write side starts a row only into a free slot
//! (`occ < R`), so a slot is never written while a read of it is in flight. `R = KH + 2·stride
//! − 1` rows (`KH + 1` at stride 1) hold an output row's rows while the next output row's are
//! written, so reading and writing overlap, and the last rows of an image (up to
//! `KH + stride − 1`) fit with no deadlock.
//!
//! With `MMV > 1` (stride-1 convolutions) each read serves `MMV` adjacent output positions
//! from column banks ([`crate::swg_banks`]); the counters then walk column groups.

use crate::names::{self, Names};
use crate::rtl::{at_last, counter, index_bits, mul_const, step_counter, stream_ports, LayerCtx};
use crate::vlog::*;

pub use crate::swg_shape::{SwgShape, MVU_SLACK};

/// A per-output-row constant as an expression of the row counter: the most common value,
/// with the exceptions selected by comparison.
fn row_table(oy: &Option<(Expr, u32)>, values: &[u32], width: u32) -> Expr {
    let mut counts = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(*v).or_insert(0) += 1;
    }
    let common = counts
        .iter()
        .max_by_key(|(v, n)| (**n, std::cmp::Reverse(**v)))
        .map(|(v, _)| *v)
        .expect("an output row");
    let mut e = lit(width, common as u64);
    if let Some((r, w)) = oy {
        for (i, &v) in values.iter().enumerate().rev() {
            if v != common {
                e = r
                    .clone()
                    .eq(lit(*w, i as u64))
                    .cond(lit(width, v as u64), e);
            }
        }
    }
    e
}

/// Generates the window unit of a layer.
pub fn swg(ctx: &LayerCtx, names: &Names) -> Module {
    let s = SwgShape::of(ctx);
    let mut m = Module::new(
        names.layer_module(ctx.index, "swg"),
        vec![
            format!(
                "Window unit of layer {} ({}): {}x{} input, {} word(s) of {} bits per position, \
                 {}x{} kernel, stride {}, pad {}; {} row slots in one RAM.",
                ctx.index,
                ctx.layer.name,
                s.h,
                s.w,
                s.ng,
                s.word,
                s.kh,
                s.kw,
                s.stride,
                s.pad,
                s.rows
            ),
            format!(
                "Reads each of the {}x{} windows {} time(s), (ky, kx, group) order.",
                s.oh, s.ow, s.nf
            ),
        ],
    );
    stream_ports(&mut m, s.word, s.mmv * s.word, false);
    let banks: Vec<Expr> = if s.mmv == 1 {
        vec![m.mem("ram", s.word, s.depth())]
    } else {
        (0..s.mmv)
            .map(|b| m.mem(&format!("ram{b}"), s.word, s.depth()))
            .collect()
    };
    let cw = index_bits(s.rows as u64 + 1);
    let avail = m.reg("avail", cw);
    let occ = m.reg("occ", cw);
    let row_done = write_side(&mut m, &s, &banks, &occ, cw);
    m.comment("Read pipeline: address (stage b), then the registered RAM read (stage c).");
    let aw = index_bits(s.depth() as u64);
    // One name per bank or position with MMV > 1; the single one keeps its plain name.
    let nth = |base: &str, i: u32| {
        if s.mmv == 1 {
            base.to_string()
        } else {
            format!("{base}{i}")
        }
    };
    let addr_b: Vec<Expr> = (0..s.mmv).map(|b| m.reg(&nth("addr_b", b), aw)).collect();
    let pad_b: Vec<Expr> = (0..s.mmv).map(|j| m.reg(&nth("pad_b", j), 1)).collect();
    let rel_b = m.reg("rel_b", cw);
    let v_b = m.reg("v_b", 1);
    let rd_c: Vec<Expr> = (0..s.mmv).map(|b| m.reg(&nth("rd_c", b), s.word)).collect();
    let pad_c: Vec<Expr> = (0..s.mmv).map(|j| m.reg(&nth("pad_c", j), 1)).collect();
    let rel_c = m.reg("rel_c", cw);
    let v_c = m.reg("v_c", 1);
    let en = m.wire_eq("en", 1, v_c.clone().not().or(id("out_ready")));
    let read = read_side(&mut m, &s, &avail, &en, cw);
    m.assign(id("out_valid"), v_c.clone());
    let mut stage = Vec::new();
    let rot_c = read.rot.as_ref().map(|(r, w)| {
        let (rot_b, rot_c) = (m.reg("rot_b", *w), m.reg("rot_c", *w));
        stage.push(Stmt::Nb(rot_b.clone(), r.clone()));
        stage.push(Stmt::Nb(rot_c.clone(), rot_b));
        (rot_c, *w)
    });
    m.assign(
        id("out_data"),
        crate::swg_banks::out_word(&s, &rd_c, &pad_c, &rot_c),
    );
    // Stage b, then stage c (the order the single-bank unit has always printed).
    let mut c_stage = Vec::new();
    for (b, a) in read.addr.into_iter().enumerate() {
        stage.push(Stmt::Nb(addr_b[b].clone(), a));
        c_stage.push(Stmt::Nb(
            rd_c[b].clone(),
            banks[b].clone().idx(addr_b[b].clone()),
        ));
    }
    for (j, p) in read.pad.into_iter().enumerate() {
        stage.push(Stmt::Nb(pad_b[j].clone(), p));
        c_stage.push(Stmt::Nb(pad_c[j].clone(), pad_b[j].clone()));
    }
    stage.push(Stmt::Nb(
        rel_b.clone(),
        read.row_end.clone().cond(read.release, lit(cw, 0)),
    ));
    c_stage.push(Stmt::Nb(rel_c.clone(), rel_b));
    stage.extend(c_stage);
    m.seq(vec![when(en.clone(), stage)]);
    let retire = m.wire_eq(
        "retire",
        cw,
        v_c.clone().and(id("out_ready")).cond(rel_c, lit(cw, 0)),
    );
    let released = m.wire_eq("released", cw, read.row_end.cond(id("rel_a"), lit(cw, 0)));
    let done = cat(vec![lit(cw - 1, 0), row_done]);
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(avail.clone(), lit(cw, 0)),
            Stmt::Nb(occ.clone(), lit(cw, 0)),
            Stmt::Nb(v_b.clone(), zero()),
            Stmt::Nb(v_c.clone(), zero()),
        ],
        vec![
            Stmt::Nb(avail.clone(), avail.add(done.clone()).sub(released)),
            Stmt::Nb(occ.clone(), occ.add(done).sub(retire)),
            when(
                en,
                vec![Stmt::Nb(v_b.clone(), read.issue), Stmt::Nb(v_c, v_b)],
            ),
        ],
    )]);
    m
}

/// The write side: one word per accepted beat at a cyclic address (with MMV > 1 into the
/// bank of its column, [`crate::swg_banks`]); returns the wire that is set when a beat
/// completes a row.
fn write_side(m: &mut Module, s: &SwgShape, banks: &[Expr], occ: &Expr, cw: u32) -> Expr {
    m.comment("Write side: rows in raster order into free slots.");
    let row_words = s.w * s.ng;
    let waddr = if s.mmv == 1 {
        counter(m, "waddr", s.depth())
    } else {
        None
    };
    let wcol = counter(m, "wcol", row_words);
    let free = occ.clone().lt(lit(cw, s.rows as u64));
    let ready = match &wcol {
        Some((r, w)) => r.clone().ne(lit(*w, 0)).or(free),
        None => free,
    };
    m.assign(id("in_ready"), ready);
    let wr = m.wire_eq("wr", 1, id("in_valid").and(id("in_ready")));
    let row_done = m.wire_eq("row_done", 1, wr.clone().and(at_last(&wcol, row_words)));
    if s.mmv > 1 {
        crate::swg_banks::write(m, s, banks, &wr, &row_done);
    } else {
        let addr = waddr.as_ref().map_or(lit(1, 0), |(r, _)| r.clone());
        m.seq(vec![when(
            wr.clone(),
            vec![Stmt::Nb(banks[0].clone().idx(addr), id("in_data"))],
        )]);
    }
    let mut advance = Vec::new();
    advance.extend(step_counter(&waddr, s.depth()));
    advance.extend(step_counter(&wcol, row_words));
    let reset: Vec<Stmt> = [&waddr, &wcol]
        .into_iter()
        .flatten()
        .map(|(r, w)| Stmt::Nb(r.clone(), lit(*w, 0)))
        .collect();
    if !advance.is_empty() {
        m.seq(vec![Stmt::If(
            id(names::RST),
            reset,
            vec![when(wr, advance)],
        )]);
    }
    row_done
}

/// What the read side's first stage produces.
struct Read {
    /// A word is issued this cycle.
    issue: Expr,
    /// It is the last word of an output row.
    row_end: Expr,
    /// Rows that row releases.
    release: Expr,
    /// Its buffer address, per bank.
    addr: Vec<Expr>,
    /// It lies in the padding, per output position.
    pad: Vec<Expr>,
    /// With MMV > 1, the bank holding position 0's word.
    rot: Option<(Expr, u32)>,
}

/// One read-side counter level: the counter, its size, what happens when it advances and
/// when it wraps.
struct Level {
    c: Option<(Expr, u32)>,
    n: u32,
    advance: Vec<Stmt>,
    wrap: Vec<Stmt>,
}

/// The read side's counters, innermost first: group, kx, ky, neuron fold, column, row.
fn read_side(m: &mut Module, s: &SwgShape, avail: &Expr, en: &Expr, cw: u32) -> Read {
    m.comment("Read side: output rows start once their input rows are complete.");
    let g = counter(m, "g", s.ng);
    let kx = counter(m, "kx", s.kw);
    let ky = counter(m, "ky", s.kh);
    let nf = counter(m, "nf", s.nf);
    let ox = counter(m, "ox", s.col_groups());
    let oy = counter(m, "oy", s.oh);
    let split = (s.mmv > 1).then(|| crate::swg_banks::KxSplit::new(m, s));
    // Tap rows and columns offset by the padding: the largest value, and the bound it is
    // compared with, must fit.
    let max_iy = (s.oh - 1) * s.stride + s.kh - 1;
    let max_ix = (s.ow - 1) * s.stride + s.kw - 1;
    let pw = index_bits(max_iy.max(s.h + s.pad) as u64 + 1);
    let qw = index_bits(max_ix.max(s.w + s.pad) as u64 + 1);
    let oy_s = m.reg("oy_s", pw);
    let ox_s = m.reg("ox_s", qw);
    let sw = index_bits(s.rows as u64);
    let bslot = m.reg("bslot", sw);
    let needs: Vec<u32> = (0..s.oh).map(|r| s.need(r)).collect();
    let rels: Vec<u32> = (0..s.oh).map(|r| s.release(r)).collect();
    let need = m.wire_eq("need", cw, row_table(&oy, &needs, cw));
    let rel = m.wire_eq("rel_a", cw, row_table(&oy, &rels, cw));
    let issue = m.wire_eq("issue", 1, en.clone().and(avail.clone().ge(need)));
    let last_row_word = [&g, &kx, &ky, &nf, &ox]
        .iter()
        .zip([s.ng, s.kw, s.kh, s.nf, s.col_groups()])
        .filter(|(c, _)| c.is_some())
        .fold(issue.clone(), |e, (c, n)| e.and(at_last(c, n)));
    let row_end = m.wire_eq("row_end", 1, last_row_word);
    // Row and column of the tap, offset by the padding.
    let zx = |c: &Option<(Expr, u32)>, w: u32| match c {
        Some((r, cwid)) => crate::rtl::zext(r.clone(), *cwid, w),
        None => lit(w, 0),
    };
    let iyp = m.wire_eq("iyp", pw, oy_s.clone().add(zx(&ky, pw)));
    let ixp = m.wire_eq("ixp", qw, ox_s.clone().add(zx(&kx, qw)));
    let (pad_y, pad_x) = (s.pad as u64, s.pad as u64);
    // Only the bounds a tap can cross are compared (no constant comparisons).
    let (mut outside, mut outside_y) = (Vec::new(), Vec::new());
    if s.pad > 0 {
        outside_y.push(iyp.clone().lt(lit(pw, pad_y)));
        outside.push(iyp.clone().lt(lit(pw, pad_y)));
        outside.push(ixp.clone().lt(lit(qw, pad_x)));
    }
    if max_iy >= s.h + s.pad {
        outside_y.push(iyp.clone().ge(lit(pw, s.h as u64 + pad_y)));
        outside.push(iyp.clone().ge(lit(pw, s.h as u64 + pad_y)));
    }
    if max_ix >= s.w + s.pad {
        outside.push(ixp.clone().ge(lit(qw, s.w as u64 + pad_x)));
    }
    // With banks each position has its own column padding (see `swg_banks::taps`).
    let pad = if s.mmv == 1 {
        let pad = outside.into_iter().reduce(|a, b| a.or(b)).unwrap_or(zero());
        m.wire_eq("pad_a", 1, pad)
    } else {
        zero()
    };
    // The tap's row slot: the base slot plus its distance from the base row.
    let base = oy_s
        .clone()
        .gt(lit(pw, pad_y))
        .cond(oy_s.clone(), lit(pw, pad_y));
    let dist = m.wire_eq("row_off", pw, iyp.clone().sub(base));
    let sum_w = sw.max(pw).max(index_bits(2 * s.rows as u64)) + 1;
    let ext = |e: Expr, from: u32| crate::rtl::resize(e, from, sum_w);
    let raw = m.wire_eq("slot_raw", sum_w, ext(bslot.clone(), sw).add(ext(dist, pw)));
    // The wrapped sums are below R: their high bits are unused by design.
    m.comment("verilator lint_off UNUSEDSIGNAL");
    let wrap = |m: &mut Module, name: &str, v: Expr| {
        let r = lit(sum_w, s.rows as u64);
        m.wire_eq(
            name,
            sum_w,
            v.clone().ge(r.clone()).cond(v.clone().sub(r), v),
        )
    };
    let wrapped = wrap(m, "slot_wrapped", raw);
    let slot = m.wire_eq("slot", sw, crate::rtl::resize(wrapped, sum_w, sw));
    let aw = index_bits(s.depth() as u64);
    let slot_a = m.wire_eq("slot_a", aw, crate::rtl::resize(slot, sw, aw));
    let (addr, pad, rot) = match &split {
        None => {
            let col = m.wire_eq("col", qw, ixp.clone().sub(lit(qw, pad_x)));
            let col = m.wire_eq("col_a", aw, crate::rtl::resize(col, qw, aw));
            let mut addr =
                mul_const(slot_a, aw, (s.w * s.ng) as u64).add(mul_const(col, aw, s.ng as u64));
            if g.is_some() {
                addr = addr.add(zx(&g, aw));
            }
            (vec![m.wire_eq("addr_a", aw, addr)], vec![pad], None)
        }
        Some(split) => {
            let pad_y = outside_y
                .into_iter()
                .reduce(|a, b| a.or(b))
                .unwrap_or(zero());
            let tap = crate::swg_banks::TapIn {
                slot: &slot_a,
                ixp: &ixp,
                qw,
                pad_y: m.wire_eq("pad_y", 1, pad_y),
                ox: &ox,
                g: &g,
                split,
            };
            crate::swg_banks::taps(m, s, &tap)
        }
    };
    let moved = m.wire_eq(
        "bslot_raw",
        sum_w,
        ext(bslot.clone(), sw).add(ext(rel.clone(), cw)),
    );
    let moved = wrap(m, "bslot_wrapped", moved);
    m.comment("verilator lint_on UNUSEDSIGNAL");
    let new_bslot = m.wire_eq("bslot_next", sw, crate::rtl::resize(moved, sum_w, sw));
    let levels = vec![
        Level {
            c: g,
            n: s.ng,
            advance: vec![],
            wrap: vec![],
        },
        Level {
            c: kx,
            n: s.kw,
            advance: split.as_ref().map_or(vec![], |k| k.advance(s)),
            wrap: split.as_ref().map_or(vec![], |k| k.clear()),
        },
        Level {
            c: ky,
            n: s.kh,
            advance: vec![],
            wrap: vec![],
        },
        Level {
            c: nf,
            n: s.nf,
            advance: vec![],
            wrap: vec![],
        },
        Level {
            c: ox,
            n: s.col_groups(),
            advance: vec![Stmt::Nb(
                ox_s.clone(),
                ox_s.clone().add(lit(qw, (s.stride * s.mmv) as u64)),
            )],
            wrap: vec![
                Stmt::Nb(ox_s.clone(), lit(qw, 0)),
                Stmt::Nb(bslot.clone(), new_bslot),
            ],
        },
        Level {
            c: oy.clone(),
            n: s.oh,
            advance: vec![Stmt::Nb(
                oy_s.clone(),
                oy_s.clone().add(lit(pw, s.stride as u64)),
            )],
            wrap: vec![Stmt::Nb(oy_s.clone(), lit(pw, 0))],
        },
    ];
    let mut reset = vec![
        Stmt::Nb(oy_s, lit(pw, 0)),
        Stmt::Nb(ox_s, lit(qw, 0)),
        Stmt::Nb(bslot, lit(sw, 0)),
    ];
    reset.extend(split.as_ref().map_or(vec![], |k| k.clear()));
    for l in &levels {
        if let Some((r, w)) = &l.c {
            reset.push(Stmt::Nb(r.clone(), lit(*w, 0)));
        }
    }
    let mut body: Vec<Stmt> = Vec::new();
    for l in levels.into_iter().rev() {
        let mut wrap = l.wrap;
        match (&l.c, step_counter(&l.c, l.n)) {
            (Some((r, w)), Some(_)) => {
                wrap.insert(0, Stmt::Nb(r.clone(), lit(*w, 0)));
                wrap.extend(body);
                let mut adv = vec![Stmt::Nb(r.clone(), r.clone().add(lit(*w, 1)))];
                adv.extend(l.advance);
                body = vec![Stmt::If(at_last(&l.c, l.n).not(), adv, wrap)];
            }
            _ => {
                wrap.extend(body);
                body = wrap;
            }
        }
    }
    m.seq(vec![Stmt::If(
        id(names::RST),
        reset,
        vec![when(issue.clone(), body)],
    )]);
    Read {
        issue,
        row_end,
        release: rel,
        addr,
        pad,
        rot,
    }
}
