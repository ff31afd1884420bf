//! Operator counts of a generated module, read off the typed AST: the features the
//! pre-synthesis estimate ([`crate::estimate`]) weighs with coefficients fitted to Yosys.
//!
//! Counting what the generator actually emitted (instead of a per-layer formula) keeps the
//! estimate right when a module's structure changes: a new lane form or a wider counter shows
//! up here without anyone touching the estimate.

use std::collections::{BTreeMap, HashMap};

use crate::vlog::{Decl, Expr, Item, Kind, Module, Stmt};

/// Bits of each operator class in one module.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    /// Adders and subtractors (carry chains), result bits.
    pub add: f64,
    /// Of those, the ones fed directly by another adder (no register between): Yosys merges
    /// such sums of three or more operands into one `$macc` and builds it as a carry-save
    /// tree of LUT full adders, dearer than two-operand carry chains.
    pub merged_add: f64,
    /// Magnitude comparisons (carry chains), operand bits.
    pub cmp: f64,
    /// Equality comparisons, operand bits.
    pub eq: f64,
    /// Two-way selections: `?:` and registers assigned a non-constant value in more than one
    /// place, data bits per extra source.
    pub mux: f64,
    /// Bitwise and logical operators, result bits.
    pub logic: f64,
    /// Register bits (memories excluded).
    pub ff: f64,
    /// Multiplications of two variables (DSP lanes), by product width.
    pub products: Vec<u32>,
    /// Memories: `(name, width, depth, written)`.
    pub mems: Vec<Memory>,
}

/// One memory array of a module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// Array name.
    pub name: String,
    /// Bits per word.
    pub width: u32,
    /// Words.
    pub depth: u32,
    /// Written by the design (a RAM), else a ROM.
    pub written: bool,
    /// The image file a ROM is loaded from (`$readmemh`).
    pub init: Option<String>,
    /// Placed in block RAM by attribute.
    pub block_ram: bool,
}

struct Walker<'a> {
    decls: HashMap<&'a str, &'a Decl>,
    ports: HashMap<&'a str, u32>,
    counts: Counts,
}

/// Whether `e` is a sum (possibly zero-extended or sliced) of the same expression.
fn is_sum(e: &Expr) -> bool {
    match e {
        Expr::Bin(_, op, _) => matches!(*op, "+" | "-"),
        Expr::Concat(v) => v.iter().any(is_sum),
        Expr::Slice(b, ..) => is_sum(b),
        _ => false,
    }
}

impl Walker<'_> {
    fn width(&self, e: &Expr) -> u32 {
        match e {
            Expr::Id(n) => match self.decls.get(n.as_str()) {
                Some(d) => d.width,
                None => self.ports.get(n.as_str()).copied().unwrap_or(32),
            },
            Expr::Lit(w, _) | Expr::SLit(w, _) => *w,
            Expr::Int(_) | Expr::Str(_) => 32,
            Expr::Index(base, _) => match base.as_ref() {
                Expr::Id(n) => match self.decls.get(n.as_str()) {
                    Some(d) if d.depth.is_some() => d.width,
                    _ => 1,
                },
                _ => 1,
            },
            Expr::Slice(_, msb, lsb) => msb - lsb + 1,
            Expr::Part(_, _, w) => *w,
            Expr::Concat(v) => v.iter().map(|e| self.width(e)).sum(),
            Expr::Repl(n, e) => n * self.width(e),
            Expr::Un(op, e) => match *op {
                "-" | "~" => self.width(e),
                _ => 1,
            },
            Expr::Bin(a, op, b) => match *op {
                "+" | "-" | "*" | "&" | "|" | "^" => self.width(a).max(self.width(b)),
                "<<" | ">>" | ">>>" => self.width(a),
                _ => 1,
            },
            Expr::Cond(_, a, b) => self.width(a).max(self.width(b)),
        }
    }

    /// Counts the operators of `e`, whose result is used at `ctx` bits at most.
    fn expr(&mut self, e: &Expr, ctx: u32) {
        match e {
            Expr::Id(_) | Expr::Lit(..) | Expr::SLit(..) | Expr::Int(_) | Expr::Str(_) => {}
            Expr::Index(b, i) | Expr::Part(b, i, _) => {
                self.expr(b, u32::MAX);
                self.expr(i, u32::MAX);
            }
            Expr::Slice(b, msb, _) => self.expr(b, msb + 1),
            Expr::Concat(v) => v.iter().for_each(|e| self.expr(e, u32::MAX)),
            Expr::Repl(_, e) => self.expr(e, u32::MAX),
            Expr::Un(op, a) => {
                let w = self.width(a).min(ctx);
                match *op {
                    "-" => self.counts.add += w as f64,
                    "~" => {}
                    _ => self.counts.logic += w as f64 / 3.0,
                }
                self.expr(a, ctx);
            }
            Expr::Bin(a, op, b) => {
                let wab = self.width(a).max(self.width(b));
                let w = wab.min(ctx) as f64;
                let inner = match *op {
                    "+" | "-" => {
                        self.counts.add += w;
                        if is_sum(a) || is_sum(b) {
                            self.counts.merged_add += w;
                        }
                        ctx
                    }
                    "<" | "<=" | ">" | ">=" => {
                        self.counts.cmp += wab as f64;
                        u32::MAX
                    }
                    "==" | "!=" => {
                        self.counts.eq += wab as f64;
                        u32::MAX
                    }
                    "&" | "|" | "^" => {
                        self.counts.logic += w;
                        ctx
                    }
                    "&&" | "||" => {
                        self.counts.logic += 1.0;
                        u32::MAX
                    }
                    "*" => {
                        let constant =
                            |e: &Expr| matches!(e, Expr::Lit(..) | Expr::SLit(..) | Expr::Int(_));
                        if !constant(a) && !constant(b) {
                            self.counts.products.push(wab.min(ctx));
                        }
                        ctx
                    }
                    // Shifts by constants are wiring.
                    _ => ctx,
                };
                self.expr(a, inner);
                self.expr(b, inner);
            }
            Expr::Cond(c, a, b) => {
                self.counts.mux += (self.width(a).max(self.width(b)).min(ctx)) as f64;
                self.expr(c, u32::MAX);
                self.expr(a, ctx);
                self.expr(b, ctx);
            }
        }
    }

    /// Counts a block's statements; `sources` collects per target register its non-constant
    /// right-hand sides.
    fn stmts<'s>(&mut self, body: &'s [Stmt], sources: &mut BTreeMap<String, Vec<&'s Expr>>) {
        for s in body {
            match s {
                Stmt::Nb(lhs, rhs) => {
                    let w = self.width(lhs);
                    self.expr(rhs, w);
                    if let Expr::Index(_, i) = lhs {
                        self.expr(i, u32::MAX);
                    }
                    if !matches!(rhs, Expr::Lit(..) | Expr::SLit(..)) {
                        let target = root_name(lhs);
                        let v = sources.entry(target).or_default();
                        if !v.contains(&rhs) {
                            v.push(rhs);
                        }
                    }
                }
                Stmt::If(c, a, b) => {
                    self.expr(c, u32::MAX);
                    self.stmts(a, sources);
                    self.stmts(b, sources);
                }
                Stmt::Task(..) | Stmt::Set(..) => {}
            }
        }
    }
}

fn root_name(e: &Expr) -> String {
    match e {
        Expr::Id(n) => n.clone(),
        Expr::Index(b, _) | Expr::Slice(b, _, _) | Expr::Part(b, _, _) => root_name(b),
        _ => String::new(),
    }
}

/// The operator counts of `m`.
pub fn count(m: &Module) -> Counts {
    // In declaration order, so that memories are listed deterministically.
    let decls: Vec<&Decl> = m
        .items
        .iter()
        .filter_map(|it| match it {
            Item::Decl(d) => Some(d),
            _ => None,
        })
        .collect();
    let mut w = Walker {
        decls: decls.iter().map(|d| (d.name.as_str(), *d)).collect(),
        ports: m.ports.iter().map(|p| (p.name.as_str(), p.width)).collect(),
        counts: Counts::default(),
    };
    let mut sources = BTreeMap::new();
    for it in &m.items {
        match it {
            Item::Assign(lhs, rhs) => {
                let lw = w.width(lhs);
                w.expr(rhs, lw);
            }
            Item::Seq(body) => w.stmts(body, &mut sources),
            Item::Comment(_)
            | Item::Blank
            | Item::Decl(_)
            | Item::Initial(_)
            | Item::Inst { .. }
            // A PLL and a pass-through: no logic.
            | Item::IfdefSynthesis { .. } => {}
        }
    }
    let mut written = Vec::new();
    for (target, rhs) in &sources {
        let Some(d) = w.decls.get(target.as_str()).copied() else {
            // An `output reg` port.
            let width = w.ports.get(target.as_str()).copied().unwrap_or(1);
            w.counts.mux += (width as f64) * rhs.len().saturating_sub(1) as f64;
            continue;
        };
        if d.depth.is_some() {
            written.push(target.clone());
        } else {
            w.counts.mux += (d.width as f64) * rhs.len().saturating_sub(1) as f64;
        }
    }
    let inits = rom_images(m);
    for d in decls {
        match d.depth {
            Some(depth) => w.counts.mems.push(Memory {
                name: d.name.clone(),
                width: d.width,
                depth,
                written: written.contains(&d.name),
                init: inits.get(&d.name).cloned(),
                block_ram: d.block_ram,
            }),
            None if d.kind == Kind::Reg => w.counts.ff += d.width as f64,
            None => {}
        }
    }
    for p in &m.ports {
        if p.reg {
            w.counts.ff += p.width as f64;
        }
    }
    w.counts
}

/// Memory name → the file its `initial` block loads.
fn rom_images(m: &Module) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for it in &m.items {
        let Item::Initial(body) = it else { continue };
        for s in body {
            if let Stmt::Task(_, args) = s {
                let file = args.iter().find_map(|a| match a {
                    Expr::Concat(v) => v.iter().find_map(|e| match e {
                        Expr::Str(f) => Some(f.clone()),
                        _ => None,
                    }),
                    Expr::Str(f) => Some(f.clone()),
                    _ => None,
                });
                if let (Some(f), Some(Expr::Id(mem))) = (file, args.last()) {
                    out.insert(mem.clone(), f);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::rom_load;
    use crate::vlog::*;

    #[test]
    fn counts_what_a_small_module_builds() {
        let mut m = Module::new("t", vec![]);
        let a = m.wire("a", 8);
        let b = m.wire("b", 8);
        // An 8-bit sum kept at 6 bits: 6 adder bits.
        let s = m.wire_eq("s", 6, a.clone().add(b.clone()));
        let r = m.reg("r", 6);
        let q = m.reg("q", 4);
        let rom = m.mem("rom", 4, 16);
        m.items.push(Item::Initial(vec![rom_load("rom.hex", &rom)]));
        let ram = m.mem("ram", 3, 8);
        m.seq(vec![
            // Two non-constant sources for r: one 6-bit selection; a constant reset is free.
            Stmt::If(
                a.clone().lt(b.clone()),
                vec![Stmt::Nb(r.clone(), s.clone())],
                vec![Stmt::Nb(r.clone(), s.clone().band(lit(6, 5)))],
            ),
            Stmt::Nb(q.clone(), rom.idx(a.clone().slice(3, 0))),
            Stmt::Nb(ram.idx(b.slice(2, 0)), a.slice(2, 0)),
            Stmt::If(id("rst"), vec![Stmt::Nb(q, lit(4, 0))], vec![]),
        ]);
        let c = count(&m);
        assert_eq!(c.add, 6.0);
        assert_eq!(c.cmp, 8.0);
        assert_eq!(c.logic, 6.0);
        assert_eq!(c.mux, 6.0);
        assert_eq!(c.ff, 10.0);
        assert!(c.products.is_empty());
        let rom = c.mems.iter().find(|x| x.name == "rom").unwrap();
        assert!(!rom.written && rom.init.as_deref() == Some("rom.hex"));
        let ram = c.mems.iter().find(|x| x.name == "ram").unwrap();
        assert!(ram.written && ram.init.is_none() && (ram.width, ram.depth) == (3, 8));
    }
}
