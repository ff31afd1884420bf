//! A small typed Verilog-2005 AST and its one printer. The generator builds modules from
//! these types only; nothing else in the crate writes Verilog text.
//!
//! Conventions: every literal is sized; binary and conditional sub-expressions are always
//! parenthesised, so the printer never needs to know operator precedence; output is a pure
//! function of the AST (no timestamps, no map iteration order).

use std::fmt::Write;

/// An expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A net, register or port.
    Id(String),
    /// Sized unsigned literal `W'hV` (`value` holds the low `width` bits).
    Lit(u32, u64),
    /// Sized signed literal `W'shV`, written as two's complement.
    SLit(u32, i64),
    /// Unsized integer, for loop bounds and part-select widths only.
    Int(i64),
    /// `e[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `e[msb:lsb]`.
    Slice(Box<Expr>, u32, u32),
    /// `e[base +: width]`.
    Part(Box<Expr>, Box<Expr>, u32),
    /// `{a, b, …}`, most significant first.
    Concat(Vec<Expr>),
    /// `{n{e}}`.
    Repl(u32, Box<Expr>),
    /// Unary operator.
    Un(&'static str, Box<Expr>),
    /// Binary operator.
    Bin(Box<Expr>, &'static str, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// String literal (file names for `$readmemh`).
    Str(String),
}

/// Shorthand for an identifier.
pub fn id(name: impl Into<String>) -> Expr {
    Expr::Id(name.into())
}
/// Sized unsigned literal.
pub fn lit(width: u32, value: u64) -> Expr {
    let mask = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    Expr::Lit(width, value & mask)
}
/// Sized signed literal.
pub fn slit(width: u32, value: i64) -> Expr {
    Expr::SLit(width, value)
}
/// `1'b1`.
pub fn one() -> Expr {
    lit(1, 1)
}
/// `1'b0`.
pub fn zero() -> Expr {
    lit(1, 0)
}
/// Concatenation, most significant first.
pub fn cat(parts: Vec<Expr>) -> Expr {
    if parts.len() == 1 {
        parts.into_iter().next().expect("one part")
    } else {
        Expr::Concat(parts)
    }
}

// Builders named after the Verilog operators they print. They are not `std::ops` impls on
// purpose: `not` is Verilog's logical `!`, and `a + b` in Rust code should not silently build
// Verilog.
#[allow(missing_docs, clippy::should_implement_trait)]
impl Expr {
    fn bin(self, op: &'static str, o: Expr) -> Expr {
        Expr::Bin(Box::new(self), op, Box::new(o))
    }
    pub fn add(self, o: Expr) -> Expr {
        self.bin("+", o)
    }
    pub fn sub(self, o: Expr) -> Expr {
        self.bin("-", o)
    }
    pub fn mul(self, o: Expr) -> Expr {
        self.bin("*", o)
    }
    pub fn eq(self, o: Expr) -> Expr {
        self.bin("==", o)
    }
    pub fn ne(self, o: Expr) -> Expr {
        self.bin("!=", o)
    }
    pub fn lt(self, o: Expr) -> Expr {
        self.bin("<", o)
    }
    pub fn le(self, o: Expr) -> Expr {
        self.bin("<=", o)
    }
    pub fn gt(self, o: Expr) -> Expr {
        self.bin(">", o)
    }
    pub fn ge(self, o: Expr) -> Expr {
        self.bin(">=", o)
    }
    pub fn and(self, o: Expr) -> Expr {
        self.bin("&&", o)
    }
    pub fn or(self, o: Expr) -> Expr {
        self.bin("||", o)
    }
    pub fn band(self, o: Expr) -> Expr {
        self.bin("&", o)
    }
    pub fn bor(self, o: Expr) -> Expr {
        self.bin("|", o)
    }
    pub fn bxor(self, o: Expr) -> Expr {
        self.bin("^", o)
    }
    pub fn shl(self, o: Expr) -> Expr {
        self.bin("<<", o)
    }
    pub fn ashr(self, o: Expr) -> Expr {
        self.bin(">>>", o)
    }
    pub fn not(self) -> Expr {
        Expr::Un("!", Box::new(self))
    }
    pub fn neg(self) -> Expr {
        Expr::Un("-", Box::new(self))
    }
    pub fn inv(self) -> Expr {
        Expr::Un("~", Box::new(self))
    }
    pub fn idx(self, i: Expr) -> Expr {
        Expr::Index(Box::new(self), Box::new(i))
    }
    /// Bit `i`; of a slice, the bit of its base (Verilog-2005 has no select of a select).
    pub fn bit(self, i: u32) -> Expr {
        match self {
            Expr::Slice(base, _, lsb) => base.bit(lsb + i),
            e => e.idx(Expr::Int(i as i64)),
        }
    }
    /// Bits `msb:lsb`; of a slice, the bits of its base.
    pub fn slice(self, msb: u32, lsb: u32) -> Expr {
        match self {
            Expr::Slice(base, _, l) => base.slice(l + msb, l + lsb),
            e => Expr::Slice(Box::new(e), msb, lsb),
        }
    }
    pub fn part(self, base: Expr, width: u32) -> Expr {
        Expr::Part(Box::new(self), Box::new(base), width)
    }
    pub fn cond(self, a: Expr, b: Expr) -> Expr {
        Expr::Cond(Box::new(self), Box::new(a), Box::new(b))
    }
}

/// A statement inside `always` or `initial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `lhs <= rhs;`
    Nb(Expr, Expr),
    /// `if (c) … else …`
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    /// System task call, e.g. `$readmemh("f.hex", rom);`
    Task(String, Vec<Expr>),
    /// `lhs = rhs;` (only in `initial`: power-up values).
    Set(Expr, Expr),
}

/// `if` without `else`.
pub fn when(c: Expr, then: Vec<Stmt>) -> Stmt {
    Stmt::If(c, then, Vec::new())
}

/// Net or variable kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `wire`
    Wire,
    /// `reg`
    Reg,
}

/// A declaration: `wire|reg [signed] [w-1:0] name [0:depth-1];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decl {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// Width in bits (≥ 1).
    pub width: u32,
    /// Signed.
    pub signed: bool,
    /// Memory depth, if an array.
    pub depth: Option<u32>,
    /// `(* rom_style = "block" *)`: Yosys maps the array to block RAM whatever its shape.
    pub block_ram: bool,
}

/// A module-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `// text`
    Comment(String),
    /// A blank line.
    Blank,
    /// A declaration.
    Decl(Decl),
    /// `assign lhs = rhs;`
    Assign(Expr, Expr),
    /// `always @(posedge clk)`.
    Seq(Vec<Stmt>),
    /// `initial`.
    Initial(Vec<Stmt>),
    /// A module instance with named connections.
    Inst {
        /// Module.
        module: String,
        /// Parameter overrides `(name, value)`.
        params: Vec<(String, Expr)>,
        /// Instance name.
        name: String,
        /// `(port, expression)` pairs.
        conns: Vec<(String, Expr)>,
    },
    /// `` `ifdef SYNTHESIS `` (defined by Yosys, not by Verilator or Icarus): a vendor
    /// primitive for synthesis, its behaviour for simulation.
    IfdefSynthesis {
        /// Items Yosys reads.
        synthesis: Vec<Item>,
        /// Items the simulators read.
        simulation: Vec<Item>,
    },
}

/// Port direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// `input`
    In,
    /// `output`
    Out,
}

/// A port; outputs driven from `always` blocks are `output reg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Direction.
    pub dir: Dir,
    /// Declared as `reg`.
    pub reg: bool,
    /// Name.
    pub name: String,
    /// Width.
    pub width: u32,
}

/// A module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Name (also the file stem: one module per file).
    pub name: String,
    /// Comment lines printed above the module.
    pub doc: Vec<String>,
    /// Parameters `(name, default)`.
    pub params: Vec<(String, Expr)>,
    /// Ports in order.
    pub ports: Vec<Port>,
    /// Body.
    pub items: Vec<Item>,
}

/// Builder helpers so generators read as declarations.
#[allow(missing_docs)]
impl Module {
    pub fn new(name: impl Into<String>, doc: Vec<String>) -> Self {
        Module {
            name: name.into(),
            doc,
            params: Vec::new(),
            ports: Vec::new(),
            items: Vec::new(),
        }
    }
    pub fn input(&mut self, name: &str, width: u32) -> Expr {
        self.ports.push(Port {
            dir: Dir::In,
            reg: false,
            name: name.into(),
            width,
        });
        id(name)
    }
    pub fn output(&mut self, name: &str, width: u32) -> Expr {
        self.ports.push(Port {
            dir: Dir::Out,
            reg: false,
            name: name.into(),
            width,
        });
        id(name)
    }
    pub fn output_reg(&mut self, name: &str, width: u32) -> Expr {
        self.ports.push(Port {
            dir: Dir::Out,
            reg: true,
            name: name.into(),
            width,
        });
        id(name)
    }
    fn decl(
        &mut self,
        kind: Kind,
        name: &str,
        width: u32,
        signed: bool,
        depth: Option<u32>,
    ) -> Expr {
        self.items.push(Item::Decl(Decl {
            kind,
            name: name.into(),
            width,
            signed,
            depth,
            block_ram: false,
        }));
        id(name)
    }
    pub fn wire(&mut self, name: &str, width: u32) -> Expr {
        self.decl(Kind::Wire, name, width, false, None)
    }
    pub fn swire(&mut self, name: &str, width: u32) -> Expr {
        self.decl(Kind::Wire, name, width, true, None)
    }
    pub fn reg(&mut self, name: &str, width: u32) -> Expr {
        self.decl(Kind::Reg, name, width, false, None)
    }
    pub fn sreg(&mut self, name: &str, width: u32) -> Expr {
        self.decl(Kind::Reg, name, width, true, None)
    }
    pub fn mem(&mut self, name: &str, width: u32, depth: u32) -> Expr {
        self.decl(Kind::Reg, name, width, false, Some(depth))
    }
    /// A ROM that synthesis puts in block RAM even where logic would cost less by its rules
    /// (wide, shallow weight memories whose logic would crowd out the lanes).
    pub fn block_rom(&mut self, name: &str, width: u32, depth: u32) -> Expr {
        let e = self.mem(name, width, depth);
        if let Some(Item::Decl(d)) = self.items.last_mut() {
            d.block_ram = true;
        }
        e
    }
    /// Declares a wire and assigns it.
    pub fn wire_eq(&mut self, name: &str, width: u32, value: Expr) -> Expr {
        let w = self.wire(name, width);
        self.assign(w.clone(), value);
        w
    }
    /// Declares a signed wire and assigns it.
    pub fn swire_eq(&mut self, name: &str, width: u32, value: Expr) -> Expr {
        let w = self.swire(name, width);
        self.assign(w.clone(), value);
        w
    }
    pub fn assign(&mut self, lhs: Expr, rhs: Expr) {
        self.items.push(Item::Assign(lhs, rhs));
    }
    pub fn seq(&mut self, body: Vec<Stmt>) {
        self.items.push(Item::Seq(body));
    }
    pub fn comment(&mut self, text: impl Into<String>) {
        self.items.push(Item::Blank);
        self.items.push(Item::Comment(text.into()));
    }
}

/// Prints a module as Verilog-2005 text.
pub fn print_module(m: &Module, header: &[String]) -> String {
    let mut s = String::new();
    for line in header.iter().chain(&m.doc) {
        let _ = writeln!(s, "// {line}");
    }
    let _ = writeln!(s, "`default_nettype none\n");
    if m.params.is_empty() {
        let _ = writeln!(s, "module {} (", m.name);
    } else {
        let p: Vec<String> = m
            .params
            .iter()
            .map(|(n, v)| match v {
                // A sized default gives the parameter its range, so uses need no casts.
                Expr::Lit(w, _) => format!("parameter [{}:0] {n} = {}", w - 1, expr(v)),
                _ => format!("parameter {n} = {}", expr(v)),
            })
            .collect();
        let _ = writeln!(s, "module {} #(\n    {}\n) (", m.name, p.join(",\n    "));
    }
    let decls: Vec<String> = m
        .ports
        .iter()
        .map(|p| {
            let dir = match (p.dir, p.reg) {
                (Dir::In, _) => "input  wire",
                (Dir::Out, false) => "output wire",
                (Dir::Out, true) => "output reg ",
            };
            format!("{dir} {:<10}{}", range(p.width, false), p.name)
        })
        .collect();
    let _ = writeln!(s, "    {}", decls.join(",\n    "));
    let _ = writeln!(s, ");");
    for item in &m.items {
        print_item(&mut s, item);
    }
    let _ = writeln!(s, "\nendmodule\n\n`default_nettype wire");
    s
}

fn range(width: u32, signed: bool) -> String {
    // Always ranged, even at one bit: a generator may select bits of any signal whose
    // width came out of a computation, and `[0:0]` keeps that legal.
    let sg = if signed { "signed " } else { "" };
    format!("{sg}[{}:0] ", width - 1)
}

fn print_decl(d: &Decl) -> String {
    let kind = match d.kind {
        Kind::Wire => "wire",
        Kind::Reg => "reg ",
    };
    let depth = d.depth.map_or(String::new(), |n| format!(" [0:{}]", n - 1));
    let attr = if d.block_ram {
        "(* rom_style = \"block\" *) "
    } else {
        ""
    };
    format!(
        "{attr}{kind} {}{}{depth};",
        range(d.width, d.signed),
        d.name
    )
}

fn print_item(s: &mut String, item: &Item) {
    match item {
        Item::Comment(t) => {
            let _ = writeln!(s, "// {t}");
        }
        Item::Blank => s.push('\n'),
        Item::Decl(d) => {
            let _ = writeln!(s, "{}", print_decl(d));
        }
        Item::Assign(l, r) => {
            let _ = writeln!(s, "assign {} = {};", expr(l), expr(r));
        }
        Item::Seq(body) => {
            let _ = writeln!(s, "always @(posedge clk) begin");
            stmts(s, body, 1);
            let _ = writeln!(s, "end");
        }
        Item::Initial(body) => {
            let _ = writeln!(s, "initial begin");
            stmts(s, body, 1);
            let _ = writeln!(s, "end");
        }
        Item::Inst {
            module,
            params,
            name,
            conns,
        } => {
            if params.is_empty() {
                let _ = writeln!(s, "{module} {name} (");
            } else {
                let p: Vec<String> = params
                    .iter()
                    .map(|(n, v)| format!(".{n}({})", expr(v)))
                    .collect();
                let _ = writeln!(s, "{module} #({}) {name} (", p.join(", "));
            }
            let w = conns.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
            let lines: Vec<String> = conns
                .iter()
                .map(|(p, e)| format!("    .{p:<w$} ({})", connection(e)))
                .collect();
            let _ = writeln!(s, "{}\n);", lines.join(",\n"));
        }
        Item::IfdefSynthesis {
            synthesis,
            simulation,
        } => {
            let _ = writeln!(s, "`ifdef SYNTHESIS");
            synthesis.iter().for_each(|i| print_item(s, i));
            let _ = writeln!(s, "`else");
            simulation.iter().for_each(|i| print_item(s, i));
            let _ = writeln!(s, "`endif");
        }
    }
}

fn stmts(s: &mut String, body: &[Stmt], depth: usize) {
    for st in body {
        stmt(s, st, depth);
    }
}

fn stmt(s: &mut String, st: &Stmt, depth: usize) {
    let pad = "    ".repeat(depth);
    match st {
        Stmt::Nb(l, r) => {
            let _ = writeln!(s, "{pad}{} <= {};", expr(l), expr(r));
        }
        Stmt::If(c, then, els) => {
            let _ = writeln!(s, "{pad}if ({}) begin", expr(c));
            stmts(s, then, depth + 1);
            match els.as_slice() {
                [] => {
                    let _ = writeln!(s, "{pad}end");
                }
                [Stmt::If(..)] => {
                    let mut inner = String::new();
                    stmt(&mut inner, &els[0], depth);
                    let _ = write!(s, "{pad}end else {}", inner.trim_start());
                }
                _ => {
                    let _ = writeln!(s, "{pad}end else begin");
                    stmts(s, els, depth + 1);
                    let _ = writeln!(s, "{pad}end");
                }
            }
        }
        Stmt::Task(name, args) => {
            let a: Vec<String> = args.iter().map(expr).collect();
            let _ = writeln!(s, "{pad}{name}({});", a.join(", "));
        }
        Stmt::Set(l, r) => {
            let _ = writeln!(s, "{pad}{} = {};", expr(l), expr(r));
        }
    }
}

/// An instance connection; an empty concatenation leaves the port unconnected.
fn connection(e: &Expr) -> String {
    match e {
        Expr::Concat(v) if v.is_empty() => String::new(),
        _ => expr(e),
    }
}

/// Prints an expression.
pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Id(n) => n.clone(),
        Expr::Lit(w, v) => {
            if *w == 1 {
                format!("1'b{v}")
            } else {
                format!("{w}'h{v:x}")
            }
        }
        Expr::SLit(w, v) => {
            let mask = if *w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
            format!("{w}'sh{:x}", (*v as u64) & mask)
        }
        Expr::Int(v) => v.to_string(),
        Expr::Index(a, i) => format!("{}[{}]", atom(a), expr(i)),
        Expr::Slice(a, m, l) => format!("{}[{m}:{l}]", atom(a)),
        Expr::Part(a, b, w) => format!("{}[{} +: {w}]", atom(a), expr(b)),
        Expr::Concat(v) => {
            format!("{{{}}}", v.iter().map(expr).collect::<Vec<_>>().join(", "))
        }
        Expr::Repl(n, x) => format!("{{{n}{{{}}}}}", expr(x)),
        Expr::Un(op, x) => format!("{op}{}", atom(x)),
        Expr::Bin(a, op, b) => format!("{} {op} {}", atom(a), atom(b)),
        Expr::Cond(c, a, b) => format!("{} ? {} : {}", atom(c), atom(a), atom(b)),
        Expr::Str(t) => format!("\"{t}\""),
    }
}

/// An expression as an operand: compound expressions get parentheses.
fn atom(e: &Expr) -> String {
    match e {
        Expr::Bin(..) | Expr::Cond(..) | Expr::Un(..) => format!("({})", expr(e)),
        _ => expr(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_sized_literals_and_parenthesised_operators() {
        let e = id("a").add(lit(4, 3)).eq(slit(6, -1)).cond(one(), zero());
        assert_eq!(expr(&e), "((a + 4'h3) == 6'sh3f) ? 1'b1 : 1'b0");
        assert_eq!(
            expr(&id("m").idx(id("i")).part(Expr::Int(4), 2)),
            "m[i][4 +: 2]"
        );
    }
}
