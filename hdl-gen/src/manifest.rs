//! `manifest.json`: the stream contract, the layers' folding and cycles, the UART shell and
//! the board (with its PLL) of a generated design: what a user or a harness needs to drive it.

use serde::{Deserialize, Serialize};

use crate::fold::{Folding, LayerFold};

/// The input stream of a design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStream {
    /// Width of `s_axis_tdata`.
    pub tdata_bits: u32,
    /// Pixels per beat.
    pub pixels_per_beat: u32,
    /// Bits per pixel value.
    pub pixel_bits: u32,
    /// Channels per pixel.
    pub channels: u32,
    /// Steps per pixel value in a beat: the time steps for per-step frames, else 1.
    #[serde(default = "one")]
    pub steps: u32,
    /// Beats per image.
    pub beats_per_image: u32,
    /// Layout, in words.
    pub layout: String,
}

fn one() -> u32 {
    1
}

/// The output stream of a design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputStream {
    /// Width of `m_axis_tdata`.
    pub tdata_bits: u32,
    /// Number of classes.
    pub classes: u32,
    /// Bits of the class index.
    pub class_bits: u32,
    /// Bits of one signed logit.
    pub logit_bits: u32,
    /// Layout, in words.
    pub layout: String,
}

/// One layer in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerManifest {
    /// Layer name.
    pub name: String,
    /// `window` (convolution) or `dense`: what the layer's window unit walks.
    pub front: String,
    /// Folding.
    pub fold: LayerFold,
    /// Fan-in N.
    pub fan_in: u32,
    /// Output map height (after pooling).
    pub height: u32,
    /// Output map width.
    pub width: u32,
    /// Output channels.
    pub channels: u32,
    /// Bits of one value on the output stream / tap.
    pub value_bits: u32,
    /// Whether output values are signed.
    pub value_signed: bool,
    /// Channels (elements) per output beat: the layer's `PE`.
    pub beat_channels: u32,
    /// Steps per element on the output stream (`T`, or 1 for the TSA readout).
    pub steps: u32,
    /// Output beats per image.
    pub beats_per_image: u64,
    /// Width of the tap (one beat: steps × beat channels × value bits).
    pub tap_bits: u32,
    /// Elements per beat the layer's window unit takes (its `SIMD`).
    pub input_beat_channels: u32,
    /// Accumulator width used.
    pub acc_bits: u32,
    /// Membrane width used (0 without a neuron).
    pub membrane_bits: u32,
    /// Estimated cycles this layer needs per image.
    pub cycles_per_image: u64,
}

/// The UART shell in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellManifest {
    /// The shell module (ports `clk`, `rst`, `uart_rx`, `uart_tx`).
    pub top: String,
    /// Bytes the host sends per image.
    pub image_bytes: u32,
    /// Bytes the receive FIFO holds.
    pub fifo_bytes: u32,
    /// Default of the `CLKS_PER_BIT` parameter (clock / baud).
    pub clks_per_bit: u64,
    /// The protocol, in words.
    pub protocol: String,
}

/// The board in the manifest (`gen --board`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardManifest {
    /// Board name.
    pub name: String,
    /// The board top (ports `clk`, `uart_rx`, `uart_tx`).
    pub top: String,
    /// The board's device target.
    pub target: String,
    /// Clock frequency.
    pub clock_hz: u64,
    /// UART baud rate.
    pub baud: u64,
    /// Pin file, in this directory.
    pub pins: String,
    /// The PLL that clocks the design, when not the board clock (`gen --pll`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pll: Option<PllManifest>,
}

impl BoardManifest {
    /// The design's clock: the PLL's output, else the board clock.
    pub fn core_clock_hz(&self) -> u64 {
        self.pll.as_ref().map_or(self.clock_hz, |p| p.clock_hz)
    }
}

/// The board top's PLL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PllManifest {
    /// Its output, the design's clock (Hz, rounded).
    pub clock_hz: u64,
    /// Primitive and dividers.
    pub setting: String,
}

/// `manifest.json`: what a user or a harness needs to drive the design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Generator name and version.
    pub generator: String,
    /// Model name.
    pub model_name: String,
    /// SHA-256 of the model's canonical JSON.
    pub model_hash: String,
    /// Synthesis top module.
    pub top: String,
    /// Core module (top plus taps; the co-simulation top).
    pub core: String,
    /// Verilog sources, leaves first.
    pub sources: Vec<String>,
    /// ROM images read with `$readmemh` relative to the `ROM_DIR` parameter (default: the
    /// working directory).
    pub rom_files: Vec<String>,
    /// Time steps.
    pub time_steps: u32,
    /// Clock and reset.
    pub clock: String,
    /// Input stream.
    pub input: InputStream,
    /// Output stream.
    pub output: OutputStream,
    /// Per layer.
    pub layers: Vec<LayerManifest>,
    /// Folding used.
    pub folding: Folding,
    /// The beat layout of the streams between layers (and of the taps).
    pub stream_layout: String,
    /// Estimated cycles per image in steady state (the slowest stage).
    pub cycles_per_image: u64,
    /// Estimated cycles from the first pixel to the result (an upper bound: stages in series).
    pub latency_cycles: u64,
    /// The UART shell.
    pub shell: ShellManifest,
    /// The board, when generated for one.
    pub board: Option<BoardManifest>,
}

impl Manifest {
    /// The comment lines every generated file opens with.
    pub fn header_lines(&self) -> Vec<String> {
        crate::header(&self.generator, &self.model_name, &self.model_hash)
    }

    /// The design's clock when the board top makes it with a PLL (`gen --pll`).
    pub fn pll_hz(&self) -> Option<u64> {
        self.board
            .as_ref()
            .and_then(|b| b.pll.as_ref())
            .map(|p| p.clock_hz)
    }
}
