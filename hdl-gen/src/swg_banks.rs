//! Column banks of the window unit for `MMV > 1` (stride-1 convolutions): the line buffer is
//! split into `M` RAMs by padded column, `bank = (x + pad) mod M`, so the `M` adjacent columns
//! `ixp … ixp + M − 1` that one read of `M` adjacent windows needs lie in `M` different banks.
//! With `ixp = q·M + r` (`r = kx mod M`, since output column groups start at multiples of
//! `M`), bank `b` reads column `q + (b < r)` of its share, and position `j` takes bank
//! `(r + j) mod M`: one RAM read per bank and a rotation, no copy of a window.

use crate::rtl::{at_last, counter, index_bits, mul_const, resize, step_counter, zext};
use crate::swg::SwgShape;
use crate::vlog::*;

/// The read side's extra counters: `kr = kx mod M` and `kq = kx div M` (absent where they are
/// always 0).
pub(crate) struct KxSplit {
    kr: Option<(Expr, u32)>,
    kq: Option<(Expr, u32)>,
}

impl KxSplit {
    pub(crate) fn new(m: &mut Module, s: &SwgShape) -> Self {
        let kr = (s.kw > 1).then(|| {
            let w = index_bits(s.mmv as u64);
            (m.reg("kr", w), w)
        });
        let kq_max = (s.kw - 1) / s.mmv;
        let kq = (kq_max > 0).then(|| {
            let w = index_bits(kq_max as u64 + 1);
            (m.reg("kq", w), w)
        });
        KxSplit { kr, kq }
    }

    /// What runs when `kx` advances.
    pub(crate) fn advance(&self, s: &SwgShape) -> Vec<Stmt> {
        let Some((kr, w)) = &self.kr else {
            return vec![];
        };
        let up = Stmt::Nb(kr.clone(), kr.clone().add(lit(*w, 1)));
        match &self.kq {
            None => vec![up],
            Some((kq, qw)) => vec![Stmt::If(
                kr.clone().eq(lit(*w, (s.mmv - 1) as u64)),
                vec![
                    Stmt::Nb(kr.clone(), lit(*w, 0)),
                    Stmt::Nb(kq.clone(), kq.clone().add(lit(*qw, 1))),
                ],
                vec![up],
            )],
        }
    }

    /// What runs when `kx` wraps, and on reset.
    pub(crate) fn clear(&self) -> Vec<Stmt> {
        [&self.kr, &self.kq]
            .into_iter()
            .flatten()
            .map(|(r, w)| Stmt::Nb(r.clone(), lit(*w, 0)))
            .collect()
    }
}

/// The tap of one read cycle, from the read side's counters and wires.
pub(crate) struct TapIn<'a> {
    /// The row slot's first word (`aw` bits).
    pub slot: &'a Expr,
    /// The padded column of position 0's tap (`qw` bits).
    pub ixp: &'a Expr,
    pub qw: u32,
    /// The tap row lies in the padding.
    pub pad_y: Expr,
    /// Output column group and channel group counters.
    pub ox: &'a Option<(Expr, u32)>,
    pub g: &'a Option<(Expr, u32)>,
    pub split: &'a KxSplit,
}

/// Per bank its address, per position whether it lies in the padding, and the rotation `r`.
pub(crate) fn taps(
    m: &mut Module,
    s: &SwgShape,
    t: &TapIn,
) -> (Vec<Expr>, Vec<Expr>, Option<(Expr, u32)>) {
    let aw = index_bits(s.depth() as u64);
    let cq = index_bits(s.bank_cols() as u64);
    let widen = |c: &Option<(Expr, u32)>, to: u32| match c {
        Some((r, w)) => resize(r.clone(), *w, to),
        None => lit(to, 0),
    };
    let base = m.wire_eq("colq", cq, widen(t.ox, cq).add(widen(&t.split.kq, cq)));
    let addrs = (0..s.mmv)
        .map(|b| {
            let col = match &t.split.kr {
                Some((kr, w)) if b + 1 < s.mmv => {
                    base.clone()
                        .add(zext(kr.clone().gt(lit(*w, b as u64)), 1, cq))
                }
                _ => base.clone(),
            };
            let col = m.wire_eq(&format!("col{b}"), cq, col);
            let col = resize(col, cq, aw);
            let mut a = mul_const(t.slot.clone(), aw, (s.bank_cols() * s.ng) as u64)
                .add(mul_const(col, aw, s.ng as u64));
            if t.g.is_some() {
                a = a.add(widen(t.g, aw));
            }
            m.wire_eq(&format!("addr_a{b}"), aw, a)
        })
        .collect();
    let (pad, w) = (s.pad as u64, s.w as u64);
    let pads = (0..s.mmv)
        .map(|j| {
            let x = m.wire_eq(
                &format!("ixp{j}"),
                t.qw,
                t.ixp.clone().add(lit(t.qw, j as u64)),
            );
            let mut e = t.pad_y.clone();
            if (j as u64) < pad {
                e = e.or(x.clone().lt(lit(t.qw, pad)));
            }
            let max_x = (s.ow - s.mmv + j + s.kw - 1) as u64;
            if max_x >= w + pad {
                e = e.or(x.ge(lit(t.qw, w + pad)));
            }
            m.wire_eq(&format!("pad_a{j}"), 1, e)
        })
        .collect();
    (addrs, pads, t.split.kr.clone())
}

/// The unit's output word: position `j`'s word at `[j·word +: word]`, zero in the padding.
pub(crate) fn out_word(s: &SwgShape, rd: &[Expr], pad: &[Expr], rot: &Option<(Expr, u32)>) -> Expr {
    let m = s.mmv;
    let word = |j: u32| {
        let mut e = rd[j as usize].clone();
        if let Some((r, w)) = rot {
            for k in 1..m {
                e = r
                    .clone()
                    .eq(lit(*w, k as u64))
                    .cond(rd[((k + j) % m) as usize].clone(), e);
            }
        }
        pad[j as usize].clone().cond(lit(s.word, 0), e)
    };
    if m == 1 {
        word(0)
    } else {
        cat((0..m).rev().map(word).collect())
    }
}

/// The write side's addressing with `M` banks: channel group, bank, column in the bank, row
/// slot; a row starts at the bank and column of padded column `pad`.
pub(crate) fn write(m: &mut Module, s: &SwgShape, banks: &[Expr], wr: &Expr, row_done: &Expr) {
    let aw = index_bits(s.depth() as u64);
    let wg = counter(m, "wg", s.ng);
    let bw = index_bits(s.mmv as u64);
    let wbk = m.reg("wbk", bw);
    let wq = counter(m, "wq", s.bank_cols());
    let wslot = counter(m, "wslot", s.rows);
    let first_bank = lit(bw, (s.pad % s.mmv) as u64);
    let widen = |c: &Option<(Expr, u32)>| match c {
        Some((r, w)) => resize(r.clone(), *w, aw),
        None => lit(aw, 0),
    };
    let mut a = mul_const(widen(&wslot), aw, (s.bank_cols() * s.ng) as u64).add(mul_const(
        widen(&wq),
        aw,
        s.ng as u64,
    ));
    if wg.is_some() {
        a = a.add(widen(&wg));
    }
    let addr = m.wire_eq("waddr", aw, a);
    let writes = banks
        .iter()
        .enumerate()
        .map(|(b, ram)| {
            when(
                wbk.clone().eq(lit(bw, b as u64)),
                vec![Stmt::Nb(ram.clone().idx(addr.clone()), id("in_data"))],
            )
        })
        .collect();
    m.seq(vec![when(wr.clone(), writes)]);
    let q_to = |v: u64| wq.as_ref().map(|(r, w)| Stmt::Nb(r.clone(), lit(*w, v)));
    let mut row_start = vec![Stmt::Nb(wbk.clone(), first_bank.clone())];
    row_start.extend(q_to((s.pad / s.mmv) as u64));
    let mut next_col = vec![Stmt::Nb(wbk.clone(), lit(bw, 0))];
    next_col.extend(
        wq.as_ref()
            .map(|(r, w)| Stmt::Nb(r.clone(), r.clone().add(lit(*w, 1)))),
    );
    let column = Stmt::If(
        row_done.clone(),
        row_start
            .iter()
            .cloned()
            .chain(step_counter(&wslot, s.rows))
            .collect(),
        vec![Stmt::If(
            wbk.clone().eq(lit(bw, (s.mmv - 1) as u64)),
            next_col,
            vec![Stmt::Nb(wbk.clone(), wbk.clone().add(lit(bw, 1)))],
        )],
    );
    let mut advance: Vec<Stmt> = step_counter(&wg, s.ng).into_iter().collect();
    advance.push(match &wg {
        Some(_) => when(at_last(&wg, s.ng), vec![column]),
        None => column,
    });
    let mut reset = row_start;
    reset.extend(
        [&wg, &wslot]
            .into_iter()
            .flatten()
            .map(|(r, w)| Stmt::Nb(r.clone(), lit(*w, 0))),
    );
    m.seq(vec![Stmt::If(
        id(crate::names::RST),
        reset,
        vec![when(wr.clone(), advance)],
    )]);
}
