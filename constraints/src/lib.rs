//! spikeforge-constraints: the device budgets and board files of the open FPGA flow, as data.
//!
//! `devices.json`, `boards.json` and the pin files in `boards/` are the source; this crate
//! embeds them so that a built `spikeforge` needs nothing beside it. A new board is a line in
//! `boards.json` and one pin file.
#![warn(missing_docs)]

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// FPGA families the flow knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Lattice iCE40: `synth_ice40`, nextpnr-ice40, icepack.
    Ice40,
    /// Lattice ECP5: `synth_ecp5`, nextpnr-ecp5, ecppack.
    Ecp5,
    /// AMD/Xilinx 7-series: `synth_xilinx`, utilisation only.
    Xilinx,
}

/// What one device offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The `--target` name.
    pub target: String,
    /// Family.
    pub family: Family,
    /// Part number.
    pub part: String,
    /// Logic cells (the unit below).
    pub logic: u64,
    /// `LC` (iCE40 logic cell), `LUT4` (ECP5) or `LUT6` (7-series).
    pub logic_unit: String,
    /// Flip-flops.
    pub ffs: u64,
    /// Block RAMs.
    pub ram_blocks: u64,
    /// Bits per block RAM.
    pub ram_block_bits: u64,
    /// The block RAM primitive's cell name.
    pub ram_block_cell: String,
    /// Multiplier/DSP blocks.
    pub dsps: u64,
    /// nextpnr's device and package arguments (empty: no place and route).
    pub nextpnr_device: Vec<String>,
}

/// A board: a device, its clock and the pin file for the UART shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// The `--board` name.
    pub name: String,
    /// Human name.
    pub title: String,
    /// The device's `--target` name.
    pub target: String,
    /// Oscillator frequency.
    pub clock_hz: u64,
    /// UART baud rate of the shell.
    pub baud: u64,
    /// Pin file name (in `boards/`).
    pub constraints: String,
}

impl Board {
    /// The pin file's text.
    pub fn constraints_text(&self) -> &'static str {
        PIN_FILES
            .iter()
            .find(|(n, _)| *n == self.constraints)
            .map(|(_, t)| *t)
            .expect("every board's pin file is embedded (checked by a test)")
    }

    /// Clock cycles per UART bit, rounded to nearest.
    pub fn clks_per_bit(&self) -> u64 {
        (self.clock_hz + self.baud / 2) / self.baud
    }
}

#[derive(Deserialize)]
struct Devices {
    devices: Vec<Device>,
}

#[derive(Deserialize)]
struct Boards {
    boards: Vec<Board>,
}

const PIN_FILES: &[(&str, &str)] = &[
    ("icebreaker.pcf", include_str!("../boards/icebreaker.pcf")),
    ("ulx3s.lpf", include_str!("../boards/ulx3s.lpf")),
];

/// Every device, in file order.
pub fn devices() -> &'static [Device] {
    static D: OnceLock<Vec<Device>> = OnceLock::new();
    D.get_or_init(|| {
        serde_json::from_str::<Devices>(include_str!("../devices.json"))
            .expect("devices.json is valid (checked by a test)")
            .devices
    })
}

/// Every board, in file order.
pub fn boards() -> &'static [Board] {
    static B: OnceLock<Vec<Board>> = OnceLock::new();
    B.get_or_init(|| {
        serde_json::from_str::<Boards>(include_str!("../boards.json"))
            .expect("boards.json is valid (checked by a test)")
            .boards
    })
}

/// The device with this `--target` name.
pub fn device(target: &str) -> Option<&'static Device> {
    devices().iter().find(|d| d.target == target)
}

/// The board with this `--board` name.
pub fn board(name: &str) -> Option<&'static Board> {
    boards().iter().find(|b| b.name == name)
}

/// `a, b, c`: the names a user may choose from, for error messages.
pub fn target_names() -> String {
    devices()
        .iter()
        .map(|d| d.target.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a, b`: the board names, for error messages.
pub fn board_names() -> String {
    boards()
        .iter()
        .map(|b| b.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_names_a_known_device_and_an_embedded_pin_file() {
        assert!(devices().len() >= 6);
        for b in boards() {
            let d = device(&b.target).expect("board target is a device");
            assert!(
                !d.nextpnr_device.is_empty(),
                "{} needs place and route",
                b.name
            );
            let pins = b.constraints_text();
            for port in ["clk", "uart_rx", "uart_tx"] {
                assert!(pins.contains(port), "{}: no pin for {port}", b.name);
            }
        }
        assert_eq!(board("icebreaker").unwrap().clks_per_bit(), 104);
        assert_eq!(board("ulx3s").unwrap().clks_per_bit(), 217);
    }
}
