//! Pipelined adder trees of unsigned terms. A tree adds its terms pairwise, level by level,
//! each node one bit wider than its wider operand (capped at the accumulator width: the
//! arithmetic is modular). A register rank follows every `every` levels and the root, so no
//! path crosses more than `every` adders; every tree of a module is padded with delay
//! registers to the same number of ranks, so results of different trees meet in the same
//! cycle. Registers advance under the module's pipeline enable (the statements collected in
//! [`Ranks`]).

use crate::rtl::zext;
use crate::vlog::*;

/// Register ranks a tree of `n` terms needs when it registers every `every` levels.
pub fn ranks_for(n: usize, every: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        let levels = usize::BITS - (n - 1).leading_zeros();
        levels.div_ceil(every.max(1))
    }
}

/// The enabled register updates of a pipeline, collected while its stages are built.
#[derive(Default)]
pub struct Ranks {
    /// `reg <= value` statements executed when the pipeline advances.
    pub updates: Vec<Stmt>,
}

impl Ranks {
    /// Registers `value` (`width` bits) in a new register `name`; returns the register.
    pub fn reg(&mut self, m: &mut Module, name: &str, width: u32, value: Expr) -> Expr {
        let r = m.reg(name, width);
        self.updates.push(Stmt::Nb(r.clone(), value));
        r
    }

    /// `value` delayed by `n` ranks (registers `name_d0 … name_d{n-1}`).
    pub fn delay(&mut self, m: &mut Module, name: &str, width: u32, value: Expr, n: u32) -> Expr {
        (0..n).fold(value, |v, k| self.reg(m, &format!("{name}_d{k}"), width, v))
    }

    /// The sum of unsigned `(term, width)` pairs through exactly `ranks` register ranks
    /// (at least [`ranks_for`] of the term count), registered every `every` levels. Returns
    /// the root register (or a constant zero without terms) and its width.
    pub fn sum(
        &mut self,
        m: &mut Module,
        name: &str,
        terms: Vec<(Expr, u32)>,
        cap: u32,
        every: u32,
        ranks: u32,
    ) -> (Expr, u32) {
        if terms.is_empty() {
            return (lit(1, 0), 1);
        }
        let needed = ranks_for(terms.len(), every);
        assert!(ranks >= needed, "{name}: {ranks} ranks < {needed} needed");
        let mut level = terms;
        let (mut depth, mut rank) = (0u32, 0u32);
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len().div_ceil(2));
            let mut it = level.into_iter();
            while let Some((a, wa)) = it.next() {
                match it.next() {
                    Some((b, wb)) => {
                        let w = (wa.max(wb) + 1).min(cap);
                        next.push((zext(a, wa, w).add(zext(b, wb, w)), w));
                    }
                    None => next.push((a, wa)),
                }
            }
            level = next;
            depth += 1;
            if depth % every.max(1) == 0 || level.len() == 1 {
                level = level
                    .into_iter()
                    .enumerate()
                    .map(|(j, (e, w))| (self.reg(m, &format!("{name}_r{rank}_{j}"), w, e), w))
                    .collect();
                rank += 1;
            }
        }
        let (root, w) = level.pop().expect("one node is left");
        (
            self.delay(m, &format!("{name}_p"), w, root, ranks - rank),
            w,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_levels() {
        assert_eq!(ranks_for(1, 2), 0);
        assert_eq!(ranks_for(2, 2), 1);
        assert_eq!(ranks_for(4, 2), 1);
        assert_eq!(ranks_for(5, 2), 2);
        assert_eq!(ranks_for(72, 2), 4);
        assert_eq!(ranks_for(72, 1), 7);
    }
}
