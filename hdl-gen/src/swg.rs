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

use spikeforge_model::geometry::LayerGeometry;

use crate::fold::LayerFold;

use crate::names::{self, Names};
use crate::rtl::{at_last, counter, index_bits, mul_const, step_counter, stream_ports, LayerCtx};
use crate::vlog::*;

/// The geometry a window unit walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwgShape {
    /// Input rows.
    pub h: u32,
    /// Input columns (words for a dense layer).
    pub w: u32,
    /// Words per input position.
    pub ng: u32,
    /// Kernel rows.
    pub kh: u32,
    /// Kernel columns.
    pub kw: u32,
    /// Stride.
    pub stride: u32,
    /// Zero padding on each side.
    pub pad: u32,
    /// Output rows.
    pub oh: u32,
    /// Output columns.
    pub ow: u32,
    /// Times each window is read (the MVU's neuron folds).
    pub nf: u32,
    /// Row slots in the buffer.
    pub rows: u32,
    /// Bits of one word.
    pub word: u32,
}

impl SwgShape {
    /// The window unit of a layer.
    pub fn of(ctx: &LayerCtx) -> Self {
        Self::from_geometry(&ctx.geo, ctx.fold)
    }

    /// The window unit of a layer with geometry `g` and folding `f`.
    pub fn from_geometry(g: &LayerGeometry, f: LayerFold) -> Self {
        let nf = g.synaptic.channels / f.pe;
        let word = g.input_steps * f.simd * g.input_bits;
        if g.is_dense() {
            let w = g.fan_in as u32 / f.simd;
            SwgShape {
                h: 1,
                w,
                ng: 1,
                kh: 1,
                kw: w,
                stride: 1,
                pad: 0,
                oh: 1,
                ow: 1,
                nf,
                rows: 2,
                word,
            }
        } else {
            SwgShape {
                h: g.input.height,
                w: g.input.width,
                ng: g.input.channels / f.simd,
                kh: g.window_height,
                kw: g.window_width,
                stride: g.stride,
                pad: g.pad,
                oh: g.synaptic.height,
                ow: g.synaptic.width,
                nf,
                rows: g.window_height + 2 * g.stride - 1,
                word,
            }
        }
    }

    /// Words in the buffer.
    pub fn depth(&self) -> u32 {
        self.rows * self.w * self.ng
    }

    /// Words written per image.
    pub fn words_in(&self) -> u64 {
        (self.h * self.w * self.ng) as u64
    }

    /// Words read per image.
    pub fn words_out(&self) -> u64 {
        (self.oh * self.ow * self.nf * self.kh * self.kw * self.ng) as u64
    }

    /// The first input row output row `oy` needs.
    fn lo(&self, oy: u32) -> u32 {
        (oy * self.stride).saturating_sub(self.pad)
    }

    /// Rows output row `oy` needs complete before it starts, counted from `lo(oy)`: up to its
    /// last row, and at least the rows it releases when done (a stride-2 row skips one), so
    /// the count never goes below zero; for the last output row every remaining row.
    pub fn need(&self, oy: u32) -> u32 {
        if oy + 1 == self.oh {
            self.h - self.lo(oy)
        } else {
            let hi = (oy * self.stride + self.kh - 1)
                .saturating_sub(self.pad)
                .min(self.h - 1);
            (hi + 1 - self.lo(oy)).max(self.release(oy))
        }
    }

    /// Rows released when output row `oy` is done.
    pub fn release(&self, oy: u32) -> u32 {
        if oy + 1 == self.oh {
            self.h - self.lo(oy)
        } else {
            self.lo(oy + 1) - self.lo(oy)
        }
    }

    /// Cycles per image in steady state of the unit and the MVU behind it, when the MVU
    /// spends `position_cycles` per output position and input words arrive one per cycle: a
    /// row-level timing model of the protocol. A row is written into a slot once the row `R`
    /// before it has retired; an output row starts once `need` rows are complete; its words
    /// issue one per cycle while the MVU's pipeline has room (it holds [`MVU_SLACK`] words
    /// beyond the one it works on), and its last word retires `release` rows two cycles later.
    pub fn cycles(&self, position_cycles: u64) -> u64 {
        const IMAGES: usize = 4;
        let (h, oh) = (self.h as usize, self.oh as usize);
        let row_write = (self.w * self.ng) as u64;
        let row_words = (self.ow * self.nf * self.kh * self.kw * self.ng) as u64;
        let row_mvu = self.ow as u64 * position_cycles;
        // MVU cycles per word, at least one.
        let per_word = row_mvu as f64 / row_words as f64;
        let rows = self.rows as usize;
        let mut complete: Vec<u64> = Vec::with_capacity(IMAGES * h);
        let mut retire: Vec<u64> = Vec::with_capacity(IMAGES * h);
        let (mut write_free, mut issue_free, mut mvu_free) = (0u64, 0u64, 0u64);
        let mut image_end = Vec::with_capacity(IMAGES);
        let mut write_rows = |upto: usize, complete: &mut Vec<u64>, retire: &[u64]| {
            while complete.len() < upto {
                let j = complete.len();
                // The slot is free once the row R before it has retired.
                let start = match j.checked_sub(rows) {
                    Some(r) => write_free.max(retire[r]),
                    None => write_free,
                };
                write_free = start + row_write;
                complete.push(write_free);
            }
        };
        for img in 0..IMAGES {
            let mut base = img * h;
            for oy in 0..oh {
                let need = self.need(oy as u32) as usize;
                write_rows(base + need, &mut complete, &retire);
                // A row completed by the write in cycle t is counted from cycle t + 1.
                let start = issue_free.max(complete[base + need - 1]);
                mvu_free = mvu_free.max(start + 2) + row_mvu;
                let slack = (MVU_SLACK as f64 * per_word) as u64;
                issue_free = (start + row_words).max(mvu_free.saturating_sub(slack));
                // The row's last word (issued in cycle issue_free − 1) leaves the two-stage
                // read pipeline two cycles later; the freed slots count from the cycle after.
                for _ in 0..self.release(oy as u32) {
                    retire.push(issue_free + 2);
                }
                base += self.release(oy as u32) as usize;
            }
            image_end.push(mvu_free);
        }
        let period = image_end[IMAGES - 1] - image_end[IMAGES - 2];
        period.max(self.words_in())
    }
}

/// Words the MVU's pipeline (operand register, adder-tree ranks, combine rank, hand-off)
/// takes in beyond the one it works on before it stalls the window unit.
pub const MVU_SLACK: u64 = 4;

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
    stream_ports(&mut m, s.word, s.word, false);
    let mem = m.mem("ram", s.word, s.depth());
    let cw = index_bits(s.rows as u64 + 1);
    let avail = m.reg("avail", cw);
    let occ = m.reg("occ", cw);
    let row_done = write_side(&mut m, &s, &mem, &occ, cw);
    m.comment("Read pipeline: address (stage b), then the registered RAM read (stage c).");
    let aw = index_bits(s.depth() as u64);
    let addr_b = m.reg("addr_b", aw);
    let pad_b = m.reg("pad_b", 1);
    let rel_b = m.reg("rel_b", cw);
    let v_b = m.reg("v_b", 1);
    let rd_c = m.reg("rd_c", s.word);
    let pad_c = m.reg("pad_c", 1);
    let rel_c = m.reg("rel_c", cw);
    let v_c = m.reg("v_c", 1);
    let en = m.wire_eq("en", 1, v_c.clone().not().or(id("out_ready")));
    let read = read_side(&mut m, &s, &avail, &en, cw);
    m.assign(id("out_valid"), v_c.clone());
    m.assign(
        id("out_data"),
        pad_c.clone().cond(lit(s.word, 0), rd_c.clone()),
    );
    m.seq(vec![when(
        en.clone(),
        vec![
            Stmt::Nb(addr_b.clone(), read.addr),
            Stmt::Nb(pad_b.clone(), read.pad),
            Stmt::Nb(
                rel_b.clone(),
                read.row_end.clone().cond(read.release, lit(cw, 0)),
            ),
            Stmt::Nb(rd_c, mem.idx(addr_b)),
            Stmt::Nb(pad_c, pad_b),
            Stmt::Nb(rel_c.clone(), rel_b),
        ],
    )]);
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

/// The write side: one word per accepted beat at a cyclic address; returns the wire that is
/// set when a beat completes a row.
fn write_side(m: &mut Module, s: &SwgShape, mem: &Expr, occ: &Expr, cw: u32) -> Expr {
    m.comment("Write side: rows in raster order into free slots.");
    let row_words = s.w * s.ng;
    let waddr = counter(m, "waddr", s.depth());
    let wcol = counter(m, "wcol", row_words);
    let free = occ.clone().lt(lit(cw, s.rows as u64));
    let ready = match &wcol {
        Some((r, w)) => r.clone().ne(lit(*w, 0)).or(free),
        None => free,
    };
    m.assign(id("in_ready"), ready);
    let wr = m.wire_eq("wr", 1, id("in_valid").and(id("in_ready")));
    let row_done = m.wire_eq("row_done", 1, wr.clone().and(at_last(&wcol, row_words)));
    let addr = waddr.as_ref().map_or(lit(1, 0), |(r, _)| r.clone());
    m.seq(vec![when(
        wr.clone(),
        vec![Stmt::Nb(mem.clone().idx(addr), id("in_data"))],
    )]);
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
    /// Its buffer address.
    addr: Expr,
    /// It lies in the padding.
    pad: Expr,
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
    let ox = counter(m, "ox", s.ow);
    let oy = counter(m, "oy", s.oh);
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
        .zip([s.ng, s.kw, s.kh, s.nf, s.ow])
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
    let mut outside = Vec::new();
    if s.pad > 0 {
        outside.push(iyp.clone().lt(lit(pw, pad_y)));
        outside.push(ixp.clone().lt(lit(qw, pad_x)));
    }
    if max_iy >= s.h + s.pad {
        outside.push(iyp.clone().ge(lit(pw, s.h as u64 + pad_y)));
    }
    if max_ix >= s.w + s.pad {
        outside.push(ixp.clone().ge(lit(qw, s.w as u64 + pad_x)));
    }
    let pad = outside.into_iter().reduce(|a, b| a.or(b)).unwrap_or(zero());
    let pad = m.wire_eq("pad_a", 1, pad);
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
    let col = m.wire_eq("col", qw, ixp.sub(lit(qw, pad_x)));
    let slot = m.wire_eq("slot_a", aw, crate::rtl::resize(slot, sw, aw));
    let col = m.wire_eq("col_a", aw, crate::rtl::resize(col, qw, aw));
    let mut addr = mul_const(slot, aw, (s.w * s.ng) as u64).add(mul_const(col, aw, s.ng as u64));
    if g.is_some() {
        addr = addr.add(zx(&g, aw));
    }
    let addr = m.wire_eq("addr_a", aw, addr);
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
            advance: vec![],
            wrap: vec![],
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
            n: s.ow,
            advance: vec![Stmt::Nb(
                ox_s.clone(),
                ox_s.clone().add(lit(qw, s.stride as u64)),
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
    }
}
