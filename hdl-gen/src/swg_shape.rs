//! The window unit's geometry ([`SwgShape`]): what it stores and walks, and its row-level
//! timing model, from which the manifest's cycles per image come.

use spikeforge_model::geometry::LayerGeometry;

use crate::fold::LayerFold;
use crate::rtl::LayerCtx;

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
    /// Adjacent output positions read per cycle, one word each, from `mmv` column banks.
    pub mmv: u32,
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
                mmv: 1,
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
                mmv: f.mmv,
            }
        }
    }

    /// Words in the buffer (in each bank with MMV > 1).
    pub fn depth(&self) -> u32 {
        self.rows * self.bank_cols() * self.ng
    }

    /// Columns of a row in one bank: all of them with one bank; with `M` banks the padded
    /// columns `0 … W + 2·pad − 1` dealt out by `column mod M`, so that the `M` adjacent
    /// columns a read needs lie in different banks.
    pub fn bank_cols(&self) -> u32 {
        if self.mmv == 1 {
            self.w
        } else {
            (self.w + 2 * self.pad).div_ceil(self.mmv)
        }
    }

    /// Output column groups per row (`MMV` columns each).
    pub fn col_groups(&self) -> u32 {
        self.ow / self.mmv
    }

    /// Words written per image.
    pub fn words_in(&self) -> u64 {
        (self.h * self.w * self.ng) as u64
    }

    /// Reads per image (of `MMV` words each).
    pub fn words_out(&self) -> u64 {
        (self.oh * self.col_groups() * self.nf * self.kh * self.kw * self.ng) as u64
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
    /// spends `position_cycles` per group of `MMV` output positions and input words arrive one per cycle: a
    /// row-level timing model of the protocol. A row is written into a slot once the row `R`
    /// before it has retired; an output row starts once `need` rows are complete; its words
    /// issue one per cycle while the MVU's pipeline has room (it holds [`MVU_SLACK`] words
    /// beyond the one it works on), and its last word retires `release` rows two cycles later.
    pub fn cycles(&self, position_cycles: u64) -> u64 {
        const IMAGES: usize = 4;
        let (h, oh) = (self.h as usize, self.oh as usize);
        let row_write = (self.w * self.ng) as u64;
        let row_words = (self.col_groups() * self.nf * self.kh * self.kw * self.ng) as u64;
        let row_mvu = self.col_groups() as u64 * position_cycles;
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
