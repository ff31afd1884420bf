//! Every generated module, file and port name, in one place: the generator and the
//! co-simulation harness both take names from here, so they cannot disagree.

use spikeforge_model::Model;

/// Top-level stream ports (AXI-Stream style: a beat moves when valid && ready).
pub const CLK: &str = "clk";
/// Synchronous, active-high reset.
pub const RST: &str = "rst";
/// Pixel stream in.
pub const S_TVALID: &str = "s_axis_tvalid";
/// Pixel stream in.
pub const S_TREADY: &str = "s_axis_tready";
/// Pixel stream in.
pub const S_TDATA: &str = "s_axis_tdata";
/// Result stream out.
pub const M_TVALID: &str = "m_axis_tvalid";
/// Result stream out.
pub const M_TREADY: &str = "m_axis_tready";
/// Result stream out.
pub const M_TDATA: &str = "m_axis_tdata";

/// Serial line into the FPGA (UART shell and board tops).
pub const UART_RX: &str = "uart_rx";
/// Serial line out of the FPGA.
pub const UART_TX: &str = "uart_tx";
/// UART shell parameter: clock cycles per bit.
pub const CLKS_PER_BIT: &str = "CLKS_PER_BIT";

/// A Verilog identifier made from a model name: lowercase ASCII letters, digits and `_`,
/// starting with a letter.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "sf_");
    }
    s
}

/// Names of one generated design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Prefix of every module.
    pub prefix: String,
}

impl Names {
    /// Names for a model.
    pub fn new(model: &Model) -> Self {
        Names {
            prefix: sanitize(&model.name),
        }
    }
    /// The synthesis top: stream ports only.
    pub fn top(&self) -> String {
        self.prefix.clone()
    }
    /// The UART shell: the top behind a serial line (image bytes in, class byte out).
    pub fn uart_shell(&self) -> String {
        format!("{}_uart", self.prefix)
    }
    /// The shell's receiver.
    pub fn uart_rx(&self) -> String {
        format!("{}_uart_rx", self.prefix)
    }
    /// The shell's transmitter.
    pub fn uart_tx(&self) -> String {
        format!("{}_uart_tx", self.prefix)
    }
    /// The shell's byte FIFO.
    pub fn byte_fifo(&self) -> String {
        format!("{}_byte_fifo", self.prefix)
    }
    /// A board's top: clock and serial pins, power-on reset, the UART shell.
    pub fn board_top(&self, board: &str) -> String {
        format!("{}_{}", self.prefix, sanitize(board))
    }
    /// A board top's clock module: the PLL and the power-on reset.
    pub fn board_clock(&self, board: &str) -> String {
        format!("{}_{}_clock", self.prefix, sanitize(board))
    }
    /// The network core: stream ports plus one tap per layer (co-simulation top).
    pub fn core(&self) -> String {
        format!("{}_core", self.prefix)
    }
    /// A per-layer module: `part` is `window`, `collect`, `mvu` or `pool`.
    pub fn layer_module(&self, layer: usize, part: &str) -> String {
        format!("{}_l{layer}_{part}", self.prefix)
    }
    /// The GAP/argmax head.
    pub fn head(&self) -> String {
        format!("{}_head", self.prefix)
    }
    /// Weight ROM image of a layer.
    pub fn weight_file(&self, layer: usize) -> String {
        format!("{}_l{layer}_weights.hex", self.prefix)
    }
    /// Neuron parameter ROM image of a layer.
    pub fn param_file(&self, layer: usize) -> String {
        format!("{}_l{layer}_params.hex", self.prefix)
    }
}

/// Tap port: a beat of layer `l`'s output stream moved this cycle.
pub fn tap_valid(layer: usize) -> String {
    format!("tap{layer}_valid")
}
/// Tap port: the data of layer `l`'s output stream.
pub fn tap_data(layer: usize) -> String {
    format!("tap{layer}_data")
}
