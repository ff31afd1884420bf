//! The board top's clock from the device's PLL: divider settings for a requested frequency
//! (the searches of icestorm's `icepll` and Project Trellis' `ecppll`, limited to outputs at
//! or below the request) and the clock module that holds the PLL and the power-on reset.
//!
//! Simulators run the module's other branch: the board clock passes through and the PLL is
//! locked from the start. Every cycle of the design is then the cycle the hardware runs at
//! the PLL's frequency (the UART's bit time is counted in those cycles), so the board top
//! stays co-simulated; only the vendor primitive is taken on trust.

use spikeforge_constraints::Family;
use thiserror::Error;

use crate::names::{self, Names};
use crate::vlog::{id, lit, when, Expr, Item, Module, Stmt};

/// A PLL setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dividers {
    /// iCE40 `SB_PLL40_PAD`, simple feedback: `f_in · (DIVF + 1) / ((DIVR + 1) · 2^DIVQ)`.
    Ice40 {
        /// Reference divider.
        divr: u32,
        /// Feedback divider.
        divf: u32,
        /// Output divider (power of two).
        divq: u32,
        /// Loop filter range for the phase detector's frequency.
        filter_range: u32,
    },
    /// ECP5 `EHXPLLL`, feedback from CLKOP: `f_in · CLKFB_DIV / CLKI_DIV`, VCO at
    /// `f_out · CLKOP_DIV`.
    Ecp5 {
        /// Reference divider.
        clki_div: u32,
        /// Feedback divider.
        clkfb_div: u32,
        /// Output divider.
        clkop_div: u32,
    },
}

/// A PLL that makes `out_hz` from the board's `in_hz`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pll {
    /// The board oscillator.
    pub in_hz: u64,
    /// The achieved output frequency.
    pub out_hz: f64,
    /// Its setting.
    pub dividers: Dividers,
}

/// Why no PLL setting was found.
#[derive(Debug, Error, PartialEq)]
pub enum PllError {
    /// The family has no PLL the flow can place.
    #[error("the open flow has no PLL for this device family")]
    NoPll,
    /// Nothing at or below the request.
    #[error("the PLL cannot make {want_mhz} MHz or less from {in_mhz} MHz (its outputs run from {min_mhz} to {max_mhz} MHz)")]
    OutOfRange {
        /// Requested.
        want_mhz: f64,
        /// Board clock.
        in_mhz: f64,
        /// Lowest output.
        min_mhz: f64,
        /// Highest output.
        max_mhz: f64,
    },
}

impl Pll {
    /// The setting closest to `want_hz` without exceeding it, as `icepll`/`ecppll` search.
    pub fn for_frequency(family: Family, in_hz: u64, want_hz: f64) -> Result<Pll, PllError> {
        let candidates = match family {
            Family::Ice40 => ice40_settings(in_hz as f64),
            Family::Ecp5 => ecp5_settings(in_hz as f64),
            Family::Xilinx => return Err(PllError::NoPll),
        };
        let mut best: Option<(f64, f64, Dividers)> = None;
        let (mut lo, mut hi) = (f64::MAX, 0.0f64);
        for (out, vco, d) in candidates {
            (lo, hi) = (lo.min(out), hi.max(out));
            if out > want_hz * (1.0 + 1e-9) {
                continue;
            }
            // Closer to the request wins; at equal output, ecppll prefers a VCO near
            // 600 MHz, icepll the first found.
            let better = best.is_none_or(|(b_out, b_vco, _)| {
                out > b_out + 1e-6
                    || ((out - b_out).abs() <= 1e-6
                        && family == Family::Ecp5
                        && (vco - 600e6).abs() < (b_vco - 600e6).abs())
            });
            if better {
                best = Some((out, vco, d));
            }
        }
        best.map(|(out_hz, _, dividers)| Pll {
            in_hz,
            out_hz,
            dividers,
        })
        .ok_or(PllError::OutOfRange {
            want_mhz: want_hz / 1e6,
            in_mhz: in_hz as f64 / 1e6,
            min_mhz: (lo / 1e4).round() / 100.0,
            max_mhz: (hi / 1e4).round() / 100.0,
        })
    }

    /// The setting in words, for the manifest and the report.
    pub fn describe(&self) -> String {
        match self.dividers {
            Dividers::Ice40 {
                divr,
                divf,
                divq,
                filter_range,
            } => format!(
                "SB_PLL40_PAD DIVR={divr} DIVF={divf} DIVQ={divq} FILTER_RANGE={filter_range}"
            ),
            Dividers::Ecp5 {
                clki_div,
                clkfb_div,
                clkop_div,
            } => format!("EHXPLLL CLKI_DIV={clki_div} CLKFB_DIV={clkfb_div} CLKOP_DIV={clkop_div}"),
        }
    }
}

/// `(f_out, f_vco, setting)` of every valid iCE40 setting, in `icepll`'s search order.
fn ice40_settings(f_in: f64) -> Vec<(f64, f64, Dividers)> {
    let mut v = Vec::new();
    for divr in 0..16u32 {
        let f_pfd = f_in / (divr + 1) as f64;
        if !(10e6..=133e6).contains(&f_pfd) {
            continue;
        }
        for divf in 0..128u32 {
            let f_vco = f_pfd * (divf + 1) as f64;
            if !(533e6..=1066e6).contains(&f_vco) {
                continue;
            }
            for divq in 1..7u32 {
                let filter_range = match f_pfd {
                    f if f < 17e6 => 1,
                    f if f < 26e6 => 2,
                    f if f < 44e6 => 3,
                    f if f < 66e6 => 4,
                    f if f < 101e6 => 5,
                    _ => 6,
                };
                let d = Dividers::Ice40 {
                    divr,
                    divf,
                    divq,
                    filter_range,
                };
                let f_out = f_vco / (1u32 << divq) as f64;
                if (16e6..=275e6).contains(&f_out) {
                    v.push((f_out, f_vco, d));
                }
            }
        }
    }
    v
}

/// `(f_out, f_vco, setting)` of every valid ECP5 setting (CLKOP feedback).
fn ecp5_settings(f_in: f64) -> Vec<(f64, f64, Dividers)> {
    let mut v = Vec::new();
    for clki_div in 1..=128u32 {
        let f_pfd = f_in / clki_div as f64;
        if !(3.125e6..=400e6).contains(&f_pfd) {
            continue;
        }
        for clkfb_div in 1..=80u32 {
            let f_out = f_pfd * clkfb_div as f64;
            for clkop_div in 1..=128u32 {
                let f_vco = f_out * clkop_div as f64;
                if (400e6..=800e6).contains(&f_vco) && (3.125e6..=400e6).contains(&f_out) {
                    let d = Dividers::Ecp5 {
                        clki_div,
                        clkfb_div,
                        clkop_div,
                    };
                    v.push((f_out, f_vco, d));
                }
            }
        }
    }
    v
}

fn int(v: u32) -> Expr {
    Expr::Int(v as i64)
}

fn text(s: &str) -> Expr {
    Expr::Str(s.into())
}

/// The primitive's instance: board clock in, `clk` and `locked` out.
fn primitive(pll: &Pll) -> Item {
    let zero = || lit(1, 0);
    match pll.dividers {
        Dividers::Ice40 {
            divr,
            divf,
            divq,
            filter_range,
        } => Item::Inst {
            module: "SB_PLL40_PAD".into(),
            params: vec![
                ("FEEDBACK_PATH".into(), text("SIMPLE")),
                ("DIVR".into(), lit(4, divr as u64)),
                ("DIVF".into(), lit(7, divf as u64)),
                ("DIVQ".into(), lit(3, divq as u64)),
                ("FILTER_RANGE".into(), lit(3, filter_range as u64)),
            ],
            name: "u_pll".into(),
            conns: vec![
                ("PACKAGEPIN".into(), id(BOARD_CLK)),
                ("PLLOUTGLOBAL".into(), id(names::CLK)),
                ("LOCK".into(), id(LOCKED)),
                ("RESETB".into(), lit(1, 1)),
                ("BYPASS".into(), zero()),
            ],
        },
        Dividers::Ecp5 {
            clki_div,
            clkfb_div,
            clkop_div,
        } => Item::Inst {
            module: "EHXPLLL".into(),
            params: vec![
                ("PLLRST_ENA".into(), text("DISABLED")),
                ("INTFB_WAKE".into(), text("DISABLED")),
                ("STDBY_ENABLE".into(), text("DISABLED")),
                ("DPHASE_SOURCE".into(), text("DISABLED")),
                ("OUTDIVIDER_MUXA".into(), text("DIVA")),
                ("CLKI_DIV".into(), int(clki_div)),
                ("CLKOP_ENABLE".into(), text("ENABLED")),
                ("CLKOP_DIV".into(), int(clkop_div)),
                (
                    "CLKOP_CPHASE".into(),
                    int((clkop_div / 2).saturating_sub(1)),
                ),
                ("CLKOP_FPHASE".into(), int(0)),
                ("FEEDBK_PATH".into(), text("CLKOP")),
                ("CLKFB_DIV".into(), int(clkfb_div)),
            ],
            name: "u_pll".into(),
            conns: vec![
                ("RST".into(), zero()),
                ("STDBY".into(), zero()),
                ("CLKI".into(), id(BOARD_CLK)),
                ("CLKOP".into(), id(names::CLK)),
                ("CLKFB".into(), id(names::CLK)),
                ("PHASESEL0".into(), zero()),
                ("PHASESEL1".into(), zero()),
                ("PHASEDIR".into(), zero()),
                ("PHASESTEP".into(), zero()),
                ("PHASELOADREG".into(), zero()),
                ("PLLWAKESYNC".into(), zero()),
                ("ENCLKOP".into(), zero()),
                ("LOCK".into(), id(LOCKED)),
            ],
        },
    }
}

/// The board clock's input port of the clock module.
pub const BOARD_CLK: &str = "board_clk";
const LOCKED: &str = "locked";

/// The clock module: `board_clk` in; `clk` (the PLL's output) and `rst` out, reset held
/// until the PLL locks and for 15 cycles of `clk` after.
pub fn clock_module(names: &Names, board: &str, pll: &Pll) -> Module {
    let mut m = Module::new(
        names.board_clock(board),
        vec![
            format!(
                "Clock of the `{board}` board top: {:.4} MHz from the {:.4} MHz board clock by the PLL ({}), and the power-on reset.",
                pll.out_hz / 1e6,
                pll.in_hz as f64 / 1e6,
                pll.describe()
            ),
            "Simulators (no SYNTHESIS macro) pass the board clock through, locked from the start.".into(),
        ],
    );
    m.input(BOARD_CLK, 1);
    m.output(names::CLK, 1);
    m.output(names::RST, 1);
    m.wire(LOCKED, 1);
    m.items.push(Item::IfdefSynthesis {
        synthesis: vec![primitive(pll)],
        simulation: vec![
            Item::Assign(id(names::CLK), id(BOARD_CLK)),
            Item::Assign(id(LOCKED), lit(1, 1)),
        ],
    });
    m.comment("Power-on reset: 15 cycles of the PLL's clock after it locks.");
    let por = m.reg("por_count", 4);
    m.items
        .push(Item::Initial(vec![Stmt::Set(por.clone(), lit(4, 0))]));
    let counting = por.clone().eq(lit(4, 15)).not();
    m.items.push(Item::Assign(
        id(names::RST),
        counting.clone().or(id(LOCKED).not()),
    ));
    m.seq(vec![Stmt::If(
        id(LOCKED).not(),
        vec![Stmt::Nb(por.clone(), lit(4, 0))],
        vec![when(
            counting,
            vec![Stmt::Nb(por.clone(), por.add(lit(4, 1)))],
        )],
    )]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice40_settings_match_icepll() {
        // `icepll -i 12 -o 30`: DIVR 0, DIVF 79, DIVQ 5, FILTER_RANGE 1.
        let p = Pll::for_frequency(Family::Ice40, 12_000_000, 30e6).unwrap();
        assert_eq!(p.out_hz, 30e6);
        assert_eq!(
            p.dividers,
            Dividers::Ice40 {
                divr: 0,
                divf: 79,
                divq: 5,
                filter_range: 1
            }
        );
    }

    #[test]
    fn ecp5_settings_match_ecppll() {
        // `ecppll -i 25 -o 50`: CLKI_DIV 1, CLKFB_DIV 2, CLKOP_DIV 12 (VCO 600 MHz).
        let p = Pll::for_frequency(Family::Ecp5, 25_000_000, 50e6).unwrap();
        assert_eq!(p.out_hz, 50e6);
        assert_eq!(
            p.dividers,
            Dividers::Ecp5 {
                clki_div: 1,
                clkfb_div: 2,
                clkop_div: 12
            }
        );
    }

    #[test]
    fn an_inexact_request_rounds_down() {
        let p = Pll::for_frequency(Family::Ecp5, 25_000_000, 61.5e6).unwrap();
        assert!(p.out_hz <= 61.5e6 && p.out_hz > 60e6, "{}", p.out_hz);
        let p = Pll::for_frequency(Family::Ice40, 12_000_000, 31.6e6).unwrap();
        assert!(p.out_hz <= 31.6e6 && p.out_hz > 31e6, "{}", p.out_hz);
    }

    #[test]
    fn out_of_range_requests_say_the_range() {
        let e = Pll::for_frequency(Family::Ice40, 12_000_000, 1e6).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot make 1 MHz or less from 12 MHz"),
            "{e}"
        );
        assert_eq!(
            Pll::for_frequency(Family::Xilinx, 100_000_000, 50e6),
            Err(PllError::NoPll)
        );
    }
}
