//! Width converters between a producer's beat (`G_in` elements) and a consumer's (`G_out`),
//! as FINN's `dwc`. An element is one (position, channel) value with all its steps; a beat of
//! `G` elements is `[step][element]`, element `e` of step `s` at bits `[(s·G + e)·B +: B]`, and
//! consecutive beats carry consecutive elements of the raster-order stream. When one width
//! does not divide the other the conversion goes through `lcm(G_in, G_out)` (which divides
//! the channel count when both do), an up-converter followed by a down-converter.

use crate::names::{self, Names};
use crate::rtl::{index_bits, output_process, stream_ports};
use crate::vlog::*;

/// One stream's beat shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Elements per beat.
    pub elems: u32,
    /// Steps per element.
    pub steps: u32,
    /// Bits per value.
    pub bits: u32,
}

impl Beat {
    /// Width of a beat.
    pub fn width(&self) -> u32 {
        self.elems * self.steps * self.bits
    }
    fn with(self, elems: u32) -> Beat {
        Beat { elems, ..self }
    }
    /// Elements `from .. from + n` of step `s` of `beat`.
    pub(crate) fn run(&self, beat: &Expr, s: u32, from: u32, n: u32) -> Expr {
        let lo = (s * self.elems + from) * self.bits;
        beat.clone().slice(lo + n * self.bits - 1, lo)
    }
    /// Part `sel` of `beat` as a beat of `part` elements (every step's elements
    /// `sel·part …`), `sel` a `(counter, width)` over the `elems / part` parts.
    pub(crate) fn part(&self, beat: &Expr, part: Beat, sel: &(Expr, u32)) -> Expr {
        let piece = |j: u32| {
            cat((0..part.steps)
                .rev()
                .map(|s| self.run(beat, s, j * part.elems, part.elems))
                .collect())
        };
        let k = self.elems / part.elems;
        let (c, w) = sel;
        (0..k - 1).rev().fold(piece(k - 1), |e, j| {
            c.clone().eq(lit(*w, j as u64)).cond(piece(j), e)
        })
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The converters from `from` to `to` elements per beat (none when equal), named
/// `{stem}_dwc0`, `{stem}_dwc1`.
pub fn converters(names: &Names, layer: usize, from: Beat, to_elems: u32) -> Vec<Module> {
    let name = |k: usize| names.layer_module(layer, &format!("dwc{k}"));
    stages(from, to_elems)
        .into_iter()
        .enumerate()
        .map(|(k, (a, b))| {
            if b.elems > a.elems {
                up(name(k), a, b)
            } else {
                down(name(k), a, b)
            }
        })
        .collect()
}

/// The `(from, to)` beats of each converter stage from `from` to `to_elems` elements per
/// beat: none, one up- or down-converter, or up to the lcm and down from it.
pub fn stages(from: Beat, to_elems: u32) -> Vec<(Beat, Beat)> {
    let to = from.with(to_elems);
    if from.elems == to.elems {
        vec![]
    } else if to.elems.is_multiple_of(from.elems) || from.elems.is_multiple_of(to.elems) {
        vec![(from, to)]
    } else {
        let lcm = from.elems / gcd(from.elems, to.elems) * to.elems;
        let mid = from.with(lcm);
        vec![(from, mid), (mid, to)]
    }
}

/// Collects `k = to/from` beats into one.
fn up(name: String, from: Beat, to: Beat) -> Module {
    let k = to.elems / from.elems;
    let mut m = Module::new(
        name,
        vec![format!(
            "Width converter: {k} beats of {} elements into one of {}.",
            from.elems, to.elems
        )],
    );
    stream_ports(&mut m, from.width(), to.width(), true);
    let cw = index_bits(k as u64);
    let cnt = m.reg("cnt", cw);
    let parts: Vec<Expr> = (0..k - 1)
        .map(|j| m.reg(&format!("part{j}"), from.width()))
        .collect();
    let last = m.wire_eq("last", 1, cnt.clone().eq(lit(cw, (k - 1) as u64)));
    m.assign(
        id("in_ready"),
        last.clone()
            .not()
            .or(id("out_valid").not())
            .or(id("out_ready")),
    );
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    let input = id("in_data");
    let mut steps = Vec::new();
    for s in (0..to.steps).rev() {
        steps.push(from.run(&input, s, 0, from.elems));
        for p in parts.iter().rev() {
            steps.push(from.run(p, s, 0, from.elems));
        }
    }
    let store: Vec<Stmt> = parts
        .iter()
        .enumerate()
        .map(|(j, p)| {
            when(
                cnt.clone().eq(lit(cw, j as u64)),
                vec![Stmt::Nb(p.clone(), input.clone())],
            )
        })
        .collect();
    let mut on_accept = store;
    on_accept.push(Stmt::If(
        last,
        vec![
            Stmt::Nb(cnt.clone(), lit(cw, 0)),
            Stmt::Nb(id("out_valid"), one()),
            Stmt::Nb(id("out_data"), cat(steps)),
        ],
        vec![Stmt::Nb(cnt.clone(), cnt.clone().add(lit(cw, 1)))],
    ));
    m.seq(vec![output_process(
        vec![Stmt::Nb(cnt, lit(cw, 0)), Stmt::Nb(id("out_valid"), zero())],
        vec![when(accept, on_accept)],
    )]);
    m
}

/// Splits each beat into `k = from/to` beats.
pub(crate) fn down(name: String, from: Beat, to: Beat) -> Module {
    let k = from.elems / to.elems;
    let mut m = Module::new(
        name,
        vec![format!(
            "Width converter: each beat of {} elements into {k} of {}.",
            from.elems, to.elems
        )],
    );
    stream_ports(&mut m, from.width(), to.width(), false);
    let cw = index_bits(k as u64);
    let cnt = m.reg("cnt", cw);
    let full = m.reg("full", 1);
    let hold = m.reg("hold", from.width());
    let last = m.wire_eq("last", 1, cnt.clone().eq(lit(cw, (k - 1) as u64)));
    let fire = m.wire_eq("fire", 1, full.clone().and(id("out_ready")));
    m.assign(id("out_valid"), full.clone());
    m.assign(
        id("in_ready"),
        full.clone().not().or(fire.clone().and(last.clone())),
    );
    m.assign(id("out_data"), from.part(&hold, to, &(cnt.clone(), cw)));
    let accept = m.wire_eq("accept", 1, id("in_valid").and(id("in_ready")));
    m.seq(vec![Stmt::If(
        id(names::RST),
        vec![
            Stmt::Nb(cnt.clone(), lit(cw, 0)),
            Stmt::Nb(full.clone(), zero()),
        ],
        vec![
            when(
                fire,
                vec![Stmt::If(
                    last,
                    vec![
                        Stmt::Nb(cnt.clone(), lit(cw, 0)),
                        Stmt::Nb(full.clone(), zero()),
                    ],
                    vec![Stmt::Nb(cnt.clone(), cnt.add(lit(cw, 1)))],
                )],
            ),
            when(
                accept,
                vec![Stmt::Nb(full, one()), Stmt::Nb(hold, id("in_data"))],
            ),
        ],
    )]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcm_path_for_coprime_widths() {
        assert_eq!(gcd(4, 6), 2);
        assert_eq!(gcd(3, 8), 1);
    }

    #[test]
    fn value_slices_follow_the_layout() {
        let b = Beat {
            elems: 4,
            steps: 2,
            bits: 3,
        };
        assert_eq!(b.width(), 24);
        let e = b.run(&id("d"), 1, 2, 1);
        assert_eq!(crate::vlog::expr(&e), "d[20:18]");
    }
}
