//! The convolution front: a line buffer of k rows and a sliding-window read, producing the
//! windows of every output position in raster order, zero padded. Input row `r` lives in
//! row slot `r mod k`; the window's top row is in slot `tslot`, the row being written in
//! `wslot`.

use spikeforge_model::geometry::{bits_signed, bits_unsigned};

use crate::names::{self, Names};
use crate::rtl::{index_bits, stream_ports, LayerCtx};
use crate::vlog::*;

/// Generates the window front of a convolution layer.
pub fn window(ctx: &LayerCtx, names: &Names) -> Module {
    let f = Frame::of(ctx);
    let mut m = Module::new(
        names.layer_module(ctx.index, "window"),
        vec![format!(
            "Convolution front of layer {} ({}): {k}x{k} window, stride {s}, padding {pad}, \
             {h}x{w} -> {oh}x{ow}; a line buffer of {k} row{plural}.",
            ctx.index,
            ctx.layer.name,
            k = f.k,
            s = f.s,
            pad = f.pad,
            h = f.h,
            w = f.w,
            oh = f.oh,
            ow = f.ow,
            plural = if f.k == 1 { "" } else { "s" },
        )],
    );
    stream_ports(&mut m, f.ew, ctx.window_bits(), true);
    let r = Regs::declare(&mut m, &f);
    let hs = handshake(&mut m, &f, &r);
    let entries = entries(&mut m, &f, &r);
    // The window is assembled where it is registered, not as a wire: simulators then build
    // this wide concatenation once per output position instead of on every cycle.
    let win = assemble(ctx, &entries);
    let restart = restart(&f, &r);
    let mut on_reset = restart.clone();
    on_reset.push(Stmt::Nb(id("out_valid"), zero()));
    m.seq(vec![Stmt::If(
        id(names::RST),
        on_reset,
        vec![
            when(hs.accept, write(&f, &r)),
            when(
                id("out_valid").and(id("out_ready")),
                vec![Stmt::Nb(id("out_valid"), zero())],
            ),
            when(hs.emit, advance(&f, &r, win)),
            when(r.out_done.clone().and(hs.in_done), restart),
        ],
    )]);
    m
}

/// The sizes of the front, and the widths of its counters.
struct Frame {
    h: i64,
    w: i64,
    k: i64,
    s: i64,
    pad: i64,
    oh: i64,
    ow: i64,
    /// Bits of one entry (one input position, all its steps and channels).
    ew: u32,
    /// Signed width of the position counters (they start at −pad).
    cw: u32,
    /// Bits of a column index into a row.
    xw: u32,
    /// Bits of a row slot.
    slw: u32,
}

impl Frame {
    fn of(ctx: &LayerCtx) -> Self {
        let g = &ctx.geo;
        let (h, w) = (g.input.height as i64, g.input.width as i64);
        let (k, s, pad) = (g.window_height as i64, g.stride as i64, g.pad as i64);
        Frame {
            h,
            w,
            k,
            s,
            pad,
            oh: g.synaptic.height as i64,
            ow: g.synaptic.width as i64,
            ew: ctx.entry_bits(),
            cw: bits_signed(-pad, h.max(w) + k + s),
            xw: index_bits(w as u64),
            slw: bits_unsigned(2 * k as u64),
        }
    }

    /// A position constant in the counters' width.
    fn c(&self, v: i64) -> Expr {
        slit(self.cw, v)
    }

    /// `slot + n` modulo k, for `slot < k` and `n ≤ k` (one wrap).
    fn slot_plus(&self, slot: Expr, n: i64) -> Expr {
        let (slw, k) = (self.slw, self.k as u64);
        let sum = slot.add(lit(slw, n as u64));
        sum.clone()
            .ge(lit(slw, k))
            .cond(sum.clone().sub(lit(slw, k)), sum)
    }
}

/// The line buffer and the counters: the next input position (`iy`, `ix`), the next output
/// position (`oy`, `ox`) and its window's top-left corner (`ry`, `rx`).
struct Regs {
    rows: Vec<Expr>,
    iy: Expr,
    ix: Expr,
    ry: Expr,
    rx: Expr,
    oy: Expr,
    ox: Expr,
    out_done: Expr,
    /// The slots (none with a single row).
    wslot: Option<Expr>,
    tslot: Option<Expr>,
}

impl Regs {
    fn declare(m: &mut Module, f: &Frame) -> Self {
        let cw = f.cw;
        let rows = (0..f.k)
            .map(|r| m.mem(&format!("row{r}"), f.ew, f.w as u32))
            .collect();
        let mut counter = |name: &str| m.sreg(name, cw);
        let (iy, ix, ry, rx, oy, ox) = (
            counter("iy"),
            counter("ix"),
            counter("ry"),
            counter("rx"),
            counter("oy"),
            counter("ox"),
        );
        let out_done = m.reg("out_done", 1);
        let (wslot, tslot) = if f.k > 1 {
            (Some(m.reg("wslot", f.slw)), Some(m.reg("tslot", f.slw)))
        } else {
            (None, None)
        };
        Regs {
            rows,
            iy,
            ix,
            ry,
            rx,
            oy,
            ox,
            out_done,
            wslot,
            tslot,
        }
    }
}

/// The handshake's wires.
struct Handshake {
    /// Every input position has arrived.
    in_done: Expr,
    /// An input beat is taken.
    accept: Expr,
    /// A window is sent.
    emit: Expr,
}

/// A window can go once the rows hold its bottom-right entry (or all the input is in); an
/// input beat is taken while the buffer has room: its row is at most k below the window's top.
fn handshake(m: &mut Module, f: &Frame, r: &Regs) -> Handshake {
    let (cw, c) = (f.cw, |v| f.c(v));
    let in_done = m.wire_eq("in_done", 1, r.iy.clone().eq(c(f.h)));
    let min = |a: Expr, b: Expr| a.clone().lt(b.clone()).cond(a, b);
    let need_y = m.swire_eq("need_y", cw, min(r.ry.clone().add(c(f.k - 1)), c(f.h - 1)));
    let need_x = m.swire_eq("need_x", cw, min(r.rx.clone().add(c(f.k - 1)), c(f.w - 1)));
    let have = m.wire_eq(
        "have",
        1,
        in_done.clone().or(r.iy.clone().gt(need_y.clone())).or(r
            .iy
            .clone()
            .eq(need_y)
            .and(r.ix.clone().gt(need_x))),
    );
    let emit = m.wire_eq(
        "emit",
        1,
        have.and(r.out_done.clone().not())
            .and(id("out_valid").not().or(id("out_ready"))),
    );
    m.assign(
        id("in_ready"),
        in_done.clone().not().and(
            r.out_done
                .clone()
                .or(r.iy.clone().lt(r.ry.clone().add(c(f.k)))),
        ),
    );
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    Handshake {
        in_done,
        accept,
        emit,
    }
}

/// The k x k entries of the current window, row-major, zero outside the input map.
fn entries(m: &mut Module, f: &Frame, r: &Regs) -> Vec<Expr> {
    let (cw, c) = (f.cw, |v| f.c(v));
    let mut entries = vec![];
    for ky in 0..f.k {
        let y = m.swire_eq(&format!("y{ky}"), cw, r.ry.clone().add(c(ky)));
        let slot = r.tslot.as_ref().map(|ts| {
            let wrapped = f.slot_plus(ts.clone(), ky);
            m.wire_eq(&format!("slot{ky}"), f.slw, wrapped)
        });
        for kx in 0..f.k {
            let x = if ky == 0 {
                m.swire_eq(&format!("x{kx}"), cw, r.rx.clone().add(c(kx)))
            } else {
                id(format!("x{kx}"))
            };
            let inside = y
                .clone()
                .ge(c(0))
                .and(y.clone().lt(c(f.h)))
                .and(x.clone().ge(c(0)))
                .and(x.clone().lt(c(f.w)));
            let read = row_read(f, r, slot.as_ref(), x.slice(f.xw - 1, 0));
            let e = m.wire_eq(
                &format!("e{ky}_{kx}"),
                f.ew,
                inside.cond(read, lit(f.ew, 0)),
            );
            entries.push(e);
        }
    }
    entries
}

/// Column `xi` of the row in `slot` (of the only row, without slots).
fn row_read(f: &Frame, r: &Regs, slot: Option<&Expr>, xi: Expr) -> Expr {
    let last = r.rows[f.k as usize - 1].clone().idx(xi.clone());
    match slot {
        None => last,
        Some(sl) => (0..f.k - 1).rev().fold(last, |read, row| {
            sl.clone()
                .eq(lit(f.slw, row as u64))
                .cond(r.rows[row as usize].clone().idx(xi.clone()), read)
        }),
    }
}

/// The window as one word: `[step][entry]`, each entry's channels of that step.
fn assemble(ctx: &LayerCtx, entries: &[Expr]) -> Expr {
    let g = &ctx.geo;
    let cb = g.input.channels * g.input_bits;
    let mut parts = vec![];
    for t in (0..g.input_steps).rev() {
        for e in entries.iter().rev() {
            parts.push(e.clone().slice(t * cb + cb - 1, t * cb));
        }
    }
    cat(parts)
}

/// Input side: store the beat in the row being written, then step to the next position.
fn write(f: &Frame, r: &Regs) -> Vec<Stmt> {
    let c = |v| f.c(v);
    let ixi = r.ix.clone().slice(f.xw - 1, 0);
    let mut write = vec![];
    match &r.wslot {
        Some(ws) => {
            for (slot, row) in r.rows.iter().enumerate() {
                write.push(when(
                    ws.clone().eq(lit(f.slw, slot as u64)),
                    vec![Stmt::Nb(row.clone().idx(ixi.clone()), id("in_data"))],
                ));
            }
        }
        None => write.push(Stmt::Nb(r.rows[0].clone().idx(ixi), id("in_data"))),
    }
    let mut row_end = vec![
        Stmt::Nb(r.ix.clone(), c(0)),
        Stmt::Nb(r.iy.clone(), r.iy.clone().add(c(1))),
    ];
    if let Some(ws) = &r.wslot {
        let last = ws.clone().eq(lit(f.slw, (f.k - 1) as u64));
        row_end.push(Stmt::Nb(
            ws.clone(),
            last.cond(lit(f.slw, 0), ws.clone().add(lit(f.slw, 1))),
        ));
    }
    write.push(Stmt::If(
        r.ix.clone().eq(c(f.w - 1)),
        row_end,
        vec![Stmt::Nb(r.ix.clone(), r.ix.clone().add(c(1)))],
    ));
    write
}

/// Output side: send the window, then step to the next output position.
fn advance(f: &Frame, r: &Regs, win: Expr) -> Vec<Stmt> {
    let c = |v| f.c(v);
    let mut next_row = vec![
        Stmt::Nb(r.oy.clone(), r.oy.clone().add(c(1))),
        Stmt::Nb(r.ry.clone(), r.ry.clone().add(c(f.s))),
    ];
    if let Some(ts) = &r.tslot {
        next_row.push(Stmt::Nb(ts.clone(), f.slot_plus(ts.clone(), f.s)));
    }
    vec![
        Stmt::Nb(id("out_valid"), one()),
        Stmt::Nb(id("out_data"), win),
        Stmt::If(
            r.ox.clone().eq(c(f.ow - 1)),
            vec![
                Stmt::Nb(r.ox.clone(), c(0)),
                Stmt::Nb(r.rx.clone(), c(-f.pad)),
                Stmt::If(
                    r.oy.clone().eq(c(f.oh - 1)),
                    vec![Stmt::Nb(r.out_done.clone(), one())],
                    next_row,
                ),
            ],
            vec![
                Stmt::Nb(r.ox.clone(), r.ox.clone().add(c(1))),
                Stmt::Nb(r.rx.clone(), r.rx.clone().add(c(f.s))),
            ],
        ),
    ]
}

/// Back to the first position of the next image (also the reset state). The top padding
/// rows are virtual: the window's top row −pad falls in slot −pad mod k.
fn restart(f: &Frame, r: &Regs) -> Vec<Stmt> {
    let c = |v| f.c(v);
    let mut restart = vec![
        Stmt::Nb(r.iy.clone(), c(0)),
        Stmt::Nb(r.ix.clone(), c(0)),
        Stmt::Nb(r.oy.clone(), c(0)),
        Stmt::Nb(r.ox.clone(), c(0)),
        Stmt::Nb(r.ry.clone(), c(-f.pad)),
        Stmt::Nb(r.rx.clone(), c(-f.pad)),
        Stmt::Nb(r.out_done.clone(), zero()),
    ];
    if let (Some(ws), Some(ts)) = (&r.wslot, &r.tslot) {
        let top_slot = (-f.pad).rem_euclid(f.k) as u64;
        restart.push(Stmt::Nb(ws.clone(), lit(f.slw, 0)));
        restart.push(Stmt::Nb(ts.clone(), lit(f.slw, top_slot)));
    }
    restart
}
