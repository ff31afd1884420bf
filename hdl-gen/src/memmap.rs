//! Which cells Yosys 0.23's `memory_libmap` gives a memory: logic, block RAM or (ECP5)
//! distributed RAM, and how many. It is a cost search over the RAM cell's width modes; this
//! module does the same arithmetic for the memories the generator writes (one write port of
//! whole words, one registered read port, or a ROM with one read port), so that the estimate
//! counts block RAM exactly instead of by a bits-per-block rule. `tests` hold Yosys' answers
//! for a grid of shapes (docs/calibration/memories.txt).

use spikeforge_constraints::Family;

/// A RAM cell type as Yosys' memory library describes it.
struct Cell {
    /// Address bits at the narrowest width.
    abits: u32,
    /// Data bits of each width mode (each mode halves the depth).
    dbits: &'static [u32],
    /// Byte width of write enables (0: none).
    byte: u32,
    /// Cost per cell.
    cost: f64,
    /// Usable for ROMs (a distributed cell with `prune_rom` is not).
    rom: bool,
    /// Block RAM (else distributed).
    block: bool,
    /// Widest write mode index usable by one whole-word write port.
    max_write_mode: usize,
    /// Yosys' emulation score of our RAMs on this cell (fitted: read-first behaviour,
    /// transparency and the separate read port).
    ram_emulation: f64,
}

const ICE40_RAM4K: Cell = Cell {
    abits: 11,
    dbits: &[2, 4, 8, 16],
    byte: 0,
    cost: 64.0,
    rom: true,
    block: true,
    max_write_mode: 2,
    ram_emulation: 4.0,
};
// The 16-bit write mode of SB_RAM40_4K comes with bit enables (option HAS_BE).
const ICE40_RAM4K_BE: Cell = Cell {
    abits: 11,
    dbits: &[2, 4, 8, 16],
    byte: 1,
    cost: 64.0,
    rom: true,
    block: true,
    max_write_mode: 3,
    ram_emulation: 4.0,
};
const ECP5_DP16KD: Cell = Cell {
    abits: 14,
    dbits: &[1, 2, 4, 9, 18],
    byte: 9,
    cost: 128.0,
    rom: true,
    block: true,
    max_write_mode: 4,
    ram_emulation: 7.0,
};
const ECP5_PDPW16KD: Cell = Cell {
    abits: 14,
    dbits: &[1, 2, 4, 9, 18, 36],
    byte: 9,
    cost: 128.0,
    rom: true,
    block: true,
    max_write_mode: 5,
    ram_emulation: 7.0,
};
const ECP5_DPR16X4: Cell = Cell {
    abits: 4,
    dbits: &[4],
    byte: 0,
    cost: 4.0,
    rom: false,
    block: false,
    max_write_mode: 0,
    ram_emulation: 1.0,
};

/// Where a memory ends up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mapped {
    /// Flip-flops and LUTs (a ROM becomes a LUT network).
    Logic,
    /// Block RAM cells.
    Block(u64),
    /// Distributed RAM cells (ECP5 `TRELLIS_DPR16X4`).
    Distributed(u64),
}

/// The cheapest geometry of `width × depth` in `cell`: `(cost, cells)`.
fn geometry(cell: &Cell, width: u32, depth: u32, written: bool) -> Option<(f64, u64)> {
    // Emulation score: read-first behaviour and the separate read port of a block RAM
    // (4 points, as Yosys scores our RAMs), the separate read port otherwise (1); twice that
    // in cost.
    let emu = match (written, cell.block) {
        (true, true) => cell.ram_emulation,
        _ => 1.0,
    };
    let mut best: Option<(f64, u64)> = None;
    for (mode, &unit) in cell.dbits.iter().enumerate() {
        if written && mode > cell.max_write_mode {
            break;
        }
        let effective_byte = if !written {
            1
        } else if cell.byte == 0 || cell.byte > unit {
            unit
        } else {
            cell.byte
        };
        let swizzle = width.div_ceil(effective_byte) * effective_byte;
        let addrs = 1u64 << (cell.abits - mode as u32);
        let mult_a = (depth as u64).div_ceil(addrs);
        let bits = mult_a * swizzle as u64;
        let repl = bits.div_ceil(unit as u64);
        let mux = (mult_a - 1) * width as u64;
        let demux = if written && mult_a != 1 { mult_a } else { 0 };
        let cost = cell.cost * repl as f64 + 0.5 * mux as f64 + 0.5 * demux as f64 + 2.0 * emu;
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, repl));
        }
    }
    best
}

/// Where Yosys maps a `width × depth` memory with one registered read port, written through
/// one whole-word port or (`written` false) a ROM whose constant bit lanes are already gone.
pub fn map(family: Family, width: u32, depth: u32, written: bool) -> Mapped {
    map_with(family, width, depth, written, false)
}

/// As [`map`]; with `block_ram` (the `rom_style = "block"` attribute) only block RAM cells
/// are considered, in their cheapest geometry.
pub fn map_with(family: Family, width: u32, depth: u32, written: bool, block_ram: bool) -> Mapped {
    // A one-word ROM is a constant to Yosys, attribute or not.
    if width == 0 || depth <= 1 {
        return Mapped::Logic;
    }
    let cells: &[&Cell] = match family {
        Family::Ice40 => &[&ICE40_RAM4K, &ICE40_RAM4K_BE],
        Family::Ecp5 => &[&ECP5_DP16KD, &ECP5_PDPW16KD, &ECP5_DPR16X4],
        // Not modelled cell by cell: RAMB18 blocks in their cheapest single shape for
        // memories of 4 kbit and more, logic below.
        Family::Xilinx => {
            return if (width as u64) * (depth as u64) >= 4096 || block_ram {
                const SHAPES: [(u64, u64); 6] = [
                    (36, 512),
                    (18, 1024),
                    (9, 2048),
                    (4, 4096),
                    (2, 8192),
                    (1, 16384),
                ];
                let blocks = SHAPES
                    .iter()
                    .map(|(w, d)| (width as u64).div_ceil(*w) * (depth as u64).div_ceil(*d))
                    .min()
                    .unwrap_or(0);
                Mapped::Block(blocks)
            } else {
                Mapped::Logic
            };
        }
    };
    let logic_cost = width as f64 * depth as f64 * if written { 1.0 } else { 1.0 / 16.0 };
    // Yosys compares against the logic cost truncated to an integer.
    let mut best = if block_ram {
        (f64::INFINITY, Mapped::Logic)
    } else {
        (logic_cost.trunc(), Mapped::Logic)
    };
    for cell in cells {
        if (!written && !cell.rom) || (block_ram && !cell.block) {
            continue;
        }
        if let Some((cost, n)) = geometry(cell, width, depth, written) {
            if cost < best.0 {
                let m = if cell.block {
                    Mapped::Block(n)
                } else {
                    Mapped::Distributed(n)
                };
                best = (cost, m);
            }
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(width, depth, ECP5 DP16KD, iCE40 SB_RAM40_4K)` of random-content ROMs, from Yosys.
    const ROMS: &str = include_str!("../../docs/calibration/roms.txt");
    /// `width depth ecp5 B dpr D lut L ice40 B lut L` of simple dual-port RAMs, from Yosys.
    const RAMS: &str = include_str!("../../docs/calibration/rams.txt");

    fn blocks(m: Mapped) -> u64 {
        match m {
            Mapped::Block(n) => n,
            _ => 0,
        }
    }

    #[test]
    fn rom_block_counts_equal_yosys() {
        let mut n = 0;
        for line in ROMS.lines().filter(|l| !l.starts_with('#')) {
            let v: Vec<u32> = line
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            let (w, d) = (v[0], v[1]);
            assert_eq!(
                blocks(map(Family::Ecp5, w, d, false)),
                v[2] as u64,
                "ECP5 ROM {w}x{d}"
            );
            assert_eq!(
                blocks(map(Family::Ice40, w, d, false)),
                v[3] as u64,
                "iCE40 ROM {w}x{d}"
            );
            n += 1;
        }
        assert!(n > 50, "{n} ROM shapes");
    }

    #[test]
    fn a_block_rom_attribute_forces_block_ram() {
        // The MLP's 3 584 × 28 weight ROM: logic by Yosys' costs, 100 DP16KD with
        // `rom_style = "block"` (Yosys 0.23, synth_ecp5).
        assert_eq!(map(Family::Ecp5, 3584, 28, false), Mapped::Logic);
        assert_eq!(
            map_with(Family::Ecp5, 3584, 28, false, true),
            Mapped::Block(100)
        );
        // A 16 × 4 ROM takes a block with the attribute; one word is a constant either way.
        assert_eq!(
            map_with(Family::Ice40, 16, 4, false, true),
            Mapped::Block(1)
        );
        assert_eq!(map_with(Family::Ice40, 16, 1, false, true), Mapped::Logic);
    }

    #[test]
    fn ram_cells_equal_yosys() {
        let mut n = 0;
        for line in RAMS.lines().filter(|l| !l.starts_with('#')) {
            let v: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| v[i].parse::<u64>().unwrap();
            let (w, d) = (num(0) as u32, num(1) as u32);
            let ecp5 = map(Family::Ecp5, w, d, true);
            let want = match (num(3), num(5)) {
                (0, 0) => Mapped::Logic,
                (0, n) => Mapped::Distributed(n),
                (b, _) => Mapped::Block(b),
            };
            assert_eq!(ecp5, want, "ECP5 RAM {w}x{d}");
            assert_eq!(
                blocks(map(Family::Ice40, w, d, true)),
                num(9),
                "iCE40 RAM {w}x{d}"
            );
            n += 1;
        }
        assert!(n > 50, "{n} RAM shapes");
    }
}
