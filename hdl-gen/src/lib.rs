//! spikeforge-hdl-gen: lowers a validated hardware model and a folding to a streaming
//! Verilog-2005 design: one file per module, ROM images as hex files, and `manifest.json`
//! describing ports, stream layouts, folding and cycle estimates.
//!
//! Output is a pure function of (model, folding, generator version): same input, same bytes.
#![warn(missing_docs)]

mod accumulate;
pub mod autofold;
pub mod cost;
pub mod dwc;
pub mod estimate;
pub mod flow;
pub mod fold;
pub mod lanes;
pub mod memmap;
pub mod mvu;
pub mod names;
pub mod neuron;
pub mod packed;
pub mod pll;
pub mod reorder;
pub mod rtl;
pub mod shell;
pub mod stream;
pub mod swg;
mod swg_banks;
mod swg_shape;
pub mod top;
pub mod tree;
pub mod vlog;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spikeforge_constraints::Board;
use spikeforge_model::geometry::model_geometry;
use spikeforge_model::ir::{Encoding, Model, Neuron};
use spikeforge_model::weights::weight_values;
use spikeforge_model::widths::{self, Widths};
use thiserror::Error;

pub use fold::{FoldError, FoldOverride, Folding, LayerFold};
use names::Names;
use rtl::LayerCtx;
use vlog::Module;

/// Name and version of this generator, written into every generated file.
pub const GENERATOR: &str = concat!("spikeforge-hdl-gen ", env!("CARGO_PKG_VERSION"));

/// Default of every module's `ROM_DIR` parameter: the directory `$readmemh` reads ROM images
/// from, ending in `/`. Not empty: Icarus rejects the file name an empty string prefix makes.
pub const ROM_DIR_DEFAULT: &str = "./";

/// The beat layout of every stream between layers, as the manifest states it.
pub const STREAM_LAYOUT: &str = "a layer's output is a stream of elements (one position and channel, with its steps) in raster order, channels fastest; a beat carries beat_channels consecutive elements: value of element e at step s at bits [(s*beat_channels + e)*value_bits +: value_bits]; beats_per_image beats per image";

/// Why a design could not be generated or written.
#[derive(Debug, Error)]
pub enum GenError {
    /// The folding is not possible.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// The model failed width analysis.
    #[error("model: {0}")]
    Model(String),
    /// The UART shell cannot carry this model.
    #[error("UART shell: {0}")]
    Shell(String),
    /// No PLL setting for the requested clock.
    #[error("--pll: {0}")]
    Pll(#[from] pll::PllError),
    /// Writing the output failed.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error: part of the message, so deliberately not a `source()` (anyhow's `{:#}`
        /// would print it twice).
        error: std::io::Error,
    },
}

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
    /// Beats per image.
    pub beats_per_image: u32,
    /// Layout, in words.
    pub layout: String,
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

/// Options of a generation beyond the folding.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenOptions {
    /// Wrap the network for this board: board top and pin file.
    pub board: Option<&'static Board>,
    /// With a board: clock the design from the device's PLL at this frequency or the
    /// nearest below it (Hz).
    pub pll_hz: Option<f64>,
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

/// A generated design: file name → contents, and its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Design {
    /// Every file, by name (sorted).
    pub files: BTreeMap<String, String>,
    /// The manifest (also in `files` as `manifest.json`).
    pub manifest: Manifest,
}

fn header(model: &Model, hash: &str) -> Vec<String> {
    vec![
        format!("Generated by {GENERATOR}. Do not edit: regenerate with `spikeforge gen`."),
        format!("Model \"{}\", sha256 {hash}.", model.name),
    ]
}

/// Hex digits of a little-endian bit vector, most significant digit first.
fn bits_hex(bits: &[bool]) -> String {
    let digits = bits.len().div_ceil(4);
    (0..digits)
        .rev()
        .map(|d| {
            let v = (0..4).fold(0u32, |v, b| {
                v | ((*bits.get(d * 4 + b).unwrap_or(&false) as u32) << b)
            });
            char::from_digit(v, 16).expect("a nibble is a hex digit")
        })
        .collect()
}

fn put_int(bits: &mut [bool], at: usize, width: u32, v: i64) {
    for b in 0..width as usize {
        bits[at + b] = (v >> b.min(63)) & 1 == 1;
    }
}

/// Weight ROM image: word `nf·SF + sf` holds, for lane `p` and input `i`, the weight of
/// channel `nf·PE + p` and input `sf·SIMD + i` at bits `(p·SIMD + i)·WB`.
fn weight_rom(ctx: &LayerCtx) -> String {
    let (pe, simd, wb) = (
        ctx.fold.pe as usize,
        ctx.fold.simd as usize,
        ctx.weight_bits(),
    );
    let n = ctx.geo.fan_in;
    let w = weight_values(ctx.layer, n * ctx.geo.synaptic.channels as usize);
    let mut out = String::new();
    for nf in 0..ctx.nf() as usize {
        for sf in 0..ctx.sf() as usize {
            let mut bits = vec![false; pe * simd * wb as usize];
            for p in 0..pe {
                for i in 0..simd {
                    let v = w[(nf * pe + p) * n + sf * simd + i];
                    let at = (p * simd + i) * wb as usize;
                    if wb == 1 {
                        bits[at] = v > 0;
                    } else {
                        put_int(&mut bits, at, wb, v);
                    }
                }
            }
            out.push_str(&bits_hex(&bits));
            out.push('\n');
        }
    }
    out
}

/// Parameter ROM image: word `nf` holds per lane the fields of
/// [`LayerCtx::lane_param_bits`], bias in the low bits.
fn param_rom(ctx: &LayerCtx) -> String {
    let (pe, vw, lpw) = (
        ctx.fold.pe as usize,
        ctx.value_bits(),
        ctx.lane_param_bits() as usize,
    );
    let mut out = String::new();
    for nf in 0..ctx.nf() as usize {
        let mut bits = vec![false; pe * lpw];
        for p in 0..pe {
            let c = nf * pe + p;
            let at = p * lpw;
            let vw = vw as usize;
            match &ctx.layer.neuron {
                Neuron::Lif(l) => {
                    put_int(&mut bits, at, vw as u32, l.bias[c] as i64);
                    put_int(&mut bits, at + vw, vw as u32, l.threshold[c] as i64);
                    bits[at + 2 * vw] = l.polarity.as_bytes()[c] == b'-';
                }
                Neuron::Tsa(n) => {
                    put_int(&mut bits, at, vw as u32, n.bias[c] as i64);
                    put_int(&mut bits, at + vw, vw as u32, n.threshold[c] as i64);
                    put_int(&mut bits, at + 2 * vw, vw as u32, n.clamp[c] as i64);
                    bits[at + 3 * vw] = n.polarity.as_bytes()[c] == b'-';
                }
                Neuron::None { bias } | Neuron::TsaReadout { bias } => {
                    put_int(&mut bits, at, vw as u32, bias[c] as i64)
                }
            }
        }
        out.push_str(&bits_hex(&bits));
        out.push('\n');
    }
    out
}

/// Generates the design of a validated model with a resolved folding (no board).
pub fn generate(model: &Model, folding: &Folding) -> Result<Design, GenError> {
    generate_with(model, folding, GenOptions::default())
}

/// Every module of a design without a board top, and its ROM images.
pub struct Built {
    /// Layers' modules, head, core, top and UART shell.
    pub modules: Vec<vlog::Module>,
    /// ROM images by file name.
    pub files: BTreeMap<String, String>,
    /// The ROM image names in layer order.
    pub rom_files: Vec<String>,
    hw: stream::HeadWidths,
    in_bits: u32,
    out_bits: u32,
    image_bytes: u32,
}

/// Builds the modules of a validated model's design with a resolved folding (what
/// [`generate_with`] prints; the estimate counts their operators).
pub fn build(model: &Model, folding: &Folding) -> Result<Built, GenError> {
    // The pixel layer's window unit and MVU run once per position and hand the result to
    // every step; per-step frames need the input stream to carry T maps.
    match model.input.encoding {
        Encoding::Direct | Encoding::FirstStep => {}
        Encoding::Frames => {
            return Err(GenError::Model(
                "per-step input frames (encoding \"frames\") are not in the generated RTL yet; the golden model (`eval`, `infer`) runs them".into(),
            ))
        }
    }
    let widths: Widths = widths::analyse(model).map_err(|p| GenError::Model(p.to_string()))?;
    if widths.classes > 256 {
        return Err(GenError::Shell(format!(
            "it sends the class as one byte, and this model has {} classes",
            widths.classes
        )));
    }
    let geo = model_geometry(model);
    let names = Names::new(model);
    let ctxs = LayerCtx::all(model, folding, &geo, &widths);
    let ppb = folding.pixels_per_beat;
    let input_beat = dwc::Beat {
        elems: ppb * model.input.channels,
        steps: 1,
        bits: model.input.pixel_bits,
    };
    let in_bits = input_beat.width();
    let last = ctxs.last().expect("a validated model has layers");
    let hw = stream::HeadWidths {
        logit: widths.logit_bits().max(last.out_value_bits() + 1),
        class: stream::class_bits(widths.classes),
    };
    let out_bits = hw.class + widths.classes * hw.logit;
    let mut files = BTreeMap::new();
    let (mut modules, converters, rom_files) = layer_modules(&ctxs, &names, input_beat, &mut files);
    modules.push(stream::head(last, &names, hw, last.out_signed()));
    modules.push(top::core(&ctxs, &names, &converters, in_bits, out_bits));
    modules.push(top::top(&ctxs, &names, in_bits, out_bits));
    let image_bytes = geo[0].input.positions() as u32 * model.input.channels;
    let shape = shell::ShellShape {
        image_bytes,
        values_per_beat: ppb * model.input.channels,
        pixel_bits: model.input.pixel_bits,
        out_bits,
        class_bits: hw.class,
    };
    modules.extend(shell_modules(&names, shape, in_bits));
    Ok(Built {
        modules,
        files,
        rom_files,
        hw,
        in_bits,
        out_bits,
        image_bytes,
    })
}

/// Generates the design of a validated model with a resolved folding and options.
pub fn generate_with(
    model: &Model,
    folding: &Folding,
    options: GenOptions,
) -> Result<Design, GenError> {
    let Built {
        mut modules,
        mut files,
        rom_files,
        hw,
        in_bits,
        out_bits,
        image_bytes,
    } = build(model, folding)?;
    let widths: Widths = widths::analyse(model).map_err(|p| GenError::Model(p.to_string()))?;
    let geo = model_geometry(model);
    let names = Names::new(model);
    let hash = spikeforge_model::model_hash(model);
    let head_lines = header(model, &hash);
    let ctxs = LayerCtx::all(model, folding, &geo, &widths);
    let ppb = folding.pixels_per_beat;
    let board = match options.board {
        None => None,
        Some(b) => Some(board_modules(
            &names,
            b,
            options.pll_hz,
            &mut modules,
            &mut files,
        )?),
    };
    let mut sources = Vec::new();
    for m in &modules {
        let file = format!("{}.v", m.name);
        files.insert(file.clone(), vlog::print_module(m, &head_lines));
        sources.push(file);
    }
    let layer_cycles: Vec<u64> = ctxs
        .iter()
        .map(|c| fold::layer_cycles(&c.geo, c.fold))
        .collect();
    let manifest = Manifest {
        generator: GENERATOR.into(),
        model_name: model.name.clone(),
        model_hash: hash,
        top: names.top(),
        core: names.core(),
        sources,
        rom_files,
        time_steps: model.time_steps,
        clock: "clk: rising edge; rst: synchronous, active high".into(),
        input: InputStream {
            tdata_bits: in_bits,
            pixels_per_beat: ppb,
            pixel_bits: model.input.pixel_bits,
            channels: model.input.channels,
            beats_per_image: geo[0].input.positions() as u32 / ppb,
            layout: "pixels in raster order; pixel p of a beat at bits [(p*channels + c)*pixel_bits +: pixel_bits]".into(),
        },
        output: OutputStream {
            tdata_bits: out_bits,
            classes: widths.classes,
            class_bits: hw.class,
            logit_bits: hw.logit,
            layout: "class at bits [class_bits-1:0]; signed logit c at [class_bits + c*logit_bits +: logit_bits]".into(),
        },
        layers: ctxs
            .iter()
            .zip(&layer_cycles)
            .map(|(c, &cycles)| layer_manifest(c, cycles))
            .collect(),
        folding: folding.clone(),
        stream_layout: STREAM_LAYOUT.into(),
        cycles_per_image: fold::pipeline_cycles(model, folding),
        latency_cycles: layer_cycles.iter().sum::<u64>()
            + (geo[0].input.positions() as u64).div_ceil(ppb as u64),
        shell: ShellManifest {
            top: names.uart_shell(),
            image_bytes,
            fifo_bytes: image_bytes.next_power_of_two(),
            clks_per_bit: DEFAULT_CLKS_PER_BIT,
            protocol: format!(
                "8N1 UART; send {image_bytes} bytes (raster order, channels innermost, value in the low {} bits), then read 1 byte: the class",
                model.input.pixel_bits
            ),
        },
        board,
    };
    flow_files(&manifest, options.board, &head_lines, &mut files);
    files.insert("model.json".into(), spikeforge_model::load::to_json(model));
    let mut json = serde_json::to_string_pretty(&manifest).expect("a manifest always serialises");
    json.push('\n');
    files.insert("manifest.json".into(), json);
    Ok(Design { files, manifest })
}

/// The board top (and with a PLL its clock module) into `modules`, the pin file into `files`.
fn board_modules(
    names: &Names,
    b: &'static Board,
    pll_hz: Option<f64>,
    modules: &mut Vec<vlog::Module>,
    files: &mut BTreeMap<String, String>,
) -> Result<BoardManifest, GenError> {
    let family = spikeforge_constraints::device(&b.target)
        .map(|d| d.family)
        .ok_or_else(|| GenError::Shell(format!("board `{}`: no device `{}`", b.name, b.target)))?;
    let pll = pll_hz
        .map(|hz| pll::Pll::for_frequency(family, b.clock_hz, hz))
        .transpose()?;
    let clock_hz = pll.map_or(b.clock_hz, |p| p.out_hz.round() as u64);
    let clks = (clock_hz + b.baud / 2) / b.baud;
    if let Some(p) = &pll {
        modules.push(pll::clock_module(names, &b.name, p));
    }
    modules.push(shell::board_top(names, &b.name, clks, pll.as_ref()));
    files.insert(b.constraints.clone(), b.constraints_text().to_string());
    Ok(BoardManifest {
        name: b.name.clone(),
        top: names.board_top(&b.name),
        target: b.target.clone(),
        clock_hz: b.clock_hz,
        baud: b.baud,
        pins: b.constraints.clone(),
        pll: pll.map(|p| PllManifest {
            clock_hz,
            setting: p.describe(),
        }),
    })
}

/// The UART shell's bit time without a board: 12 MHz at 115 200 baud.
const DEFAULT_CLKS_PER_BIT: u64 = 104;

/// Each layer's modules (width converters, window unit, MVU, optional pool) and its two ROM
/// images, which go into `files`; returns the modules, per layer its converters' names and
/// output beat widths (for the core), and the ROM file names.
fn layer_modules(
    ctxs: &[LayerCtx],
    names: &Names,
    input: dwc::Beat,
    files: &mut BTreeMap<String, String>,
) -> (Vec<Module>, Vec<Vec<top::Converter>>, Vec<String>) {
    let (mut modules, mut converters, mut rom_files) = (Vec::new(), Vec::new(), Vec::new());
    let mut beat = input;
    for ctx in ctxs {
        let convs = dwc::converters(names, ctx.index, beat, top::swg_beat(ctx).elems);
        converters.push(
            convs
                .iter()
                .map(|c| {
                    let out = c.ports.iter().find(|p| p.name == "out_data");
                    (c.name.clone(), out.expect("a converter has out_data").width)
                })
                .collect(),
        );
        modules.extend(convs);
        modules.push(swg::swg(ctx, names));
        modules.push(mvu::mvu(ctx, names));
        if ctx.fold.mmv > 1 {
            modules.push(reorder::reorder(ctx, names));
        }
        if let Some(p) = ctx.layer.pool {
            modules.push(stream::pool(ctx, names, p));
        }
        files.insert(names.weight_file(ctx.index), weight_rom(ctx));
        files.insert(names.param_file(ctx.index), param_rom(ctx));
        rom_files.push(names.weight_file(ctx.index));
        rom_files.push(names.param_file(ctx.index));
        beat = top::out_beat(ctx);
    }
    (modules, converters, rom_files)
}

/// The UART shell around the network: receiver, transmitter, image FIFO and the shell.
fn shell_modules(names: &Names, shape: shell::ShellShape, in_bits: u32) -> [Module; 4] {
    let clks = DEFAULT_CLKS_PER_BIT;
    [
        shell::uart_rx(names, clks),
        shell::uart_tx(names, clks),
        shell::byte_fifo(names, shape.image_bytes.next_power_of_two()),
        shell::uart_shell(names, shape, in_bits, clks),
    ]
}

/// What the manifest says about one layer.
fn layer_manifest(c: &LayerCtx, cycles: u64) -> LayerManifest {
    LayerManifest {
        name: c.layer.name.clone(),
        front: top::front_kind(c).into(),
        fold: c.fold,
        fan_in: c.geo.fan_in as u32,
        height: c.geo.output.height,
        width: c.geo.output.width,
        channels: c.geo.output.channels,
        value_bits: c.out_value_bits(),
        value_signed: c.out_signed(),
        beat_channels: c.fold.pe,
        steps: c.out_steps(),
        beats_per_image: c.out_beats(),
        tap_bits: c.out_beat_bits(),
        input_beat_channels: c.fold.simd,
        acc_bits: c.acc_bits(),
        membrane_bits: match c.layer.neuron {
            Neuron::None { .. } => 0,
            Neuron::Lif(_) | Neuron::Tsa(_) | Neuron::TsaReadout { .. } => c.value_bits(),
        },
        cycles_per_image: cycles,
    }
}

/// Yosys scripts, `Makefile` and FuseSoC core file: every device target with the shell as
/// top (pins left to the placer), plus the board's own target.
fn flow_files(
    m: &Manifest,
    board: Option<&'static Board>,
    header: &[String],
    files: &mut BTreeMap<String, String>,
) {
    let mut plans: Vec<flow::Plan> = spikeforge_constraints::devices()
        .iter()
        .map(|d| flow::plan(d, None, None, &m.shell.top, &m.sources, m.folding.dsp))
        .collect();
    let mut board_targets = Vec::new();
    if let (Some(b), Some(bm)) = (board, &m.board) {
        let device = spikeforge_constraints::device(&b.target)
            .expect("boards name known devices (checked by a test)");
        plans.push(flow::plan(
            device,
            Some(b),
            bm.pll.as_ref().map(|p| p.clock_hz),
            &bm.top,
            &m.sources,
            m.folding.dsp,
        ));
        board_targets.push((b, device, bm.top.clone()));
    }
    for p in &plans {
        let text: String = header.iter().map(|l| format!("# {l}\n")).collect();
        files.insert(p.script_file.clone(), text + &p.script);
    }
    files.insert("Makefile".into(), flow::makefile(&plans, header));
    let core_name = m.top.clone();
    files.insert(
        format!("{core_name}.core"),
        flow::fusesoc_core(
            &core_name,
            &format!("spikeforge network {} ({})", m.model_name, m.generator),
            &m.sources,
            &m.rom_files,
            &m.top,
            &board_targets,
        ),
    );
}

/// Writes a design into `dir` atomically: everything goes to a temporary directory beside
/// it, which replaces `dir` only when complete. A failure leaves no partial `dir`.
pub fn write_design(design: &Design, dir: &Path) -> Result<(), GenError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| GenError::Io { path, error }
    };
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".spikeforge-gen-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    for (name, text) in &design.files {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        GenError::Io {
            path: dir.to_path_buf(),
            error: e,
        }
    })
}
