//! Folding: how much of each layer is computed per clock cycle. A layer with `PE` output
//! channels and `SIMD` inputs per cycle needs `NF·max(SF, L)` cycles per output position,
//! `NF = Cout/PE` neuron folds of `SF = N/SIMD` synapse folds (all input steps of a word at
//! once), `L` the neuron's local steps. As in FINN's MVAU, `PE` divides `Cout`; `SIMD` divides
//! the input channels of a convolution (its window unit reads one channel group of one tap per
//! cycle) and the fan-in `N` of a dense layer. The input stream carries `pixels_per_beat` pixels
//! per beat; `tree_levels` adder levels lie between register ranks in the MVUs.

use serde::{Deserialize, Serialize};
use spikeforge_model::geometry::{model_geometry, LayerGeometry};
use spikeforge_model::ir::Synapse;
use spikeforge_model::Model;
use thiserror::Error;

/// Default adder-tree levels between register ranks: short enough for 100 MHz on ECP5.
pub const DEFAULT_TREE_LEVELS: u32 = 2;
/// The default folding never spends more than this many synapses per cycle on one layer.
pub const DEFAULT_MAX_SYNAPSES: u64 = 4096;

/// Folding of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFold {
    /// Output channels computed in parallel.
    pub pe: u32,
    /// Inputs consumed per cycle per output channel.
    pub simd: u32,
    /// Adjacent output positions computed per weight fetch (FINN's MMV): the window unit
    /// reads that many windows' words per cycle from column banks and the MVU applies each
    /// weight word to all of them. A stride-1 convolution's MMV divides its output width.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub mmv: u32,
}

impl LayerFold {
    /// `PE` lanes of `SIMD` inputs, one output position at a time.
    pub const fn new(pe: u32, simd: u32) -> Self {
        LayerFold { pe, simd, mmv: 1 }
    }

    /// The factors as `--fold` writes them: `PE,SIMD`, or `PE,SIMD,MMV` with MMV > 1.
    pub fn spec(&self) -> String {
        if self.mmv == 1 {
            format!("{},{}", self.pe, self.simd)
        } else {
            format!("{},{},{}", self.pe, self.simd, self.mmv)
        }
    }
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

/// Folding of a whole design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folding {
    /// Pixels per input beat.
    pub pixels_per_beat: u32,
    /// Per layer.
    pub layers: Vec<LayerFold>,
    /// Adder-tree levels between register ranks in the MVUs (1 or more).
    #[serde(default = "default_tree_levels")]
    pub tree_levels: u32,
    /// Multi-bit × multi-bit synapses (integer weights on pixels or sum-pooled values) as
    /// multiplier products, which Yosys maps to DSP blocks (ECP5 `MULT18X18D`, iCE40
    /// `SB_MAC16` with `-dsp`), instead of shift-and-add LUT lanes.
    #[serde(default)]
    pub dsp: bool,
    /// With `dsp`: at most this many products on DSP blocks, given to the layers in order,
    /// whole PE lanes at a time; the lanes beyond it stay shift-and-add LUT lanes (a device
    /// with 8 DSPs can then run a PE-8 pixel layer on 7 of them and one LUT lane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsp_limit: Option<u32>,
    /// Weight ROMs in block RAM whatever their shape (`rom_style = "block"`); otherwise
    /// Yosys builds the wide, shallow ones of fast foldings from logic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_weights: bool,
    /// A register rank after each MVU's weight-ROM read (with the input word beside it), and
    /// on each DSP multiplier's operands and product: a block RAM's unregistered output and
    /// a multiplier each take about 4 to 6 ns on ECP5, and without the ranks one path
    /// crosses RAM, routing, multiplier and the first adders. Costs PE·SIMD·weight bits +
    /// the input word's bits of flip-flops per layer, the operands' and product's bits per
    /// DSP product, and one cycle of latency (three with DSP lanes); the cycles per image
    /// stay the same. The register-rich style goes with it: a free-running MVU pipeline with
    /// a hand-off queue (one more cycle of latency, a few distributed-RAM cells per layer)
    /// and TSA steps prepared a cycle ahead (`crate::rtl::LayerCtx::register_rich`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operand_regs: bool,
}

fn default_tree_levels() -> u32 {
    DEFAULT_TREE_LEVELS
}

/// A folding request that cannot be honoured.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FoldError {
    /// A `--fold` argument that does not parse.
    #[error(
        "--fold `{spec}`: {reason} (expected `LAYER=PE,SIMD[,MMV]`, `input=PIXELS`, `tree=LEVELS`, `dsp=on|off|N`, `weights=bram|auto`, `regs=on|off` or `mmv=N`)"
    )]
    Syntax {
        /// The argument.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A folding factor that does not divide what it folds.
    #[error(
        "layer {layer} ({name}): {what} = {value} does not divide {of}; valid values: {valid:?}"
    )]
    NotDivisor {
        /// Layer index.
        layer: usize,
        /// Layer name.
        name: String,
        /// `PE`, `SIMD` or `MMV`.
        what: &'static str,
        /// Requested value.
        value: u32,
        /// What it must divide (`Cout = 10`).
        of: String,
        /// The divisors.
        valid: Vec<u32>,
    },
    /// Pixels per beat that the design cannot take.
    #[error("input: {value} pixels per beat {reason}; valid values: {valid:?}")]
    PixelsPerBeat {
        /// Requested value.
        value: u32,
        /// Why not.
        reason: String,
        /// What would work.
        valid: Vec<u32>,
    },
}

/// One parsed `--fold` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoldOverride {
    /// `LAYER=PE,SIMD[,MMV]`, the layer by index or name.
    Layer(String, LayerFold),
    /// `input=PIXELS`.
    Input(u32),
    /// `tree=LEVELS`: adder levels between register ranks.
    TreeLevels(u32),
    /// `dsp=on|off|N`: multi-bit × multi-bit synapses on DSP multipliers (`N`: at most N).
    Dsp(DspLanes),
    /// `weights=bram|auto`: weight ROMs always in block RAM, or where Yosys' costs put them.
    BlockWeights(bool),
    /// `regs=on|off`: the register-rich style: register ranks after the weight-ROM reads and
    /// on the DSP multipliers' operands and products, a free-running pipeline, TSA steps
    /// prepared a cycle ahead.
    OperandRegs(bool),
    /// `mmv=N`: the layers folded automatically compute up to `N` output positions per
    /// weight fetch, in place of PE lanes (narrower weight words for the same rate).
    MaxMmv(u32),
}

/// Which multi-bit × multi-bit synapses are DSP products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DspLanes {
    /// None: shift-and-add LUT lanes.
    Off,
    /// All of them.
    On,
    /// At most this many products, whole PE lanes, layers in order.
    AtMost(u32),
}

impl DspLanes {
    /// The folding's `(dsp, dsp_limit)`.
    pub fn fields(self) -> (bool, Option<u32>) {
        match self {
            DspLanes::Off => (false, None),
            DspLanes::On => (true, None),
            DspLanes::AtMost(n) => (true, Some(n)),
        }
    }
}

/// Parses `LAYER=PE,SIMD[,MMV]`, `input=PIXELS`, `tree=LEVELS`, `dsp=on|off|N`,
/// `weights=bram|auto`, `regs=on|off` or `mmv=N`.
pub fn parse_override(spec: &str) -> Result<FoldOverride, FoldError> {
    let err = |reason: &str| FoldError::Syntax {
        spec: spec.into(),
        reason: reason.into(),
    };
    let (lhs, rhs) = spec.split_once('=').ok_or_else(|| err("missing `=`"))?;
    let num = |s: &str| -> Result<u32, FoldError> {
        match s.trim().parse::<u32>() {
            Ok(v) if v > 0 => Ok(v),
            // All digits but too large for u32: no layer has that many channels either.
            Err(_) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
                Err(err(&format!("`{}` is larger than any layer", s.trim())))
            }
            _ => Err(err("factors are positive integers")),
        }
    };
    if lhs == "input" {
        return Ok(FoldOverride::Input(num(rhs)?));
    }
    if lhs == "tree" {
        return Ok(FoldOverride::TreeLevels(num(rhs)?));
    }
    if lhs == "dsp" {
        return match rhs.trim() {
            "on" => Ok(FoldOverride::Dsp(DspLanes::On)),
            "off" => Ok(FoldOverride::Dsp(DspLanes::Off)),
            n if n.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(FoldOverride::Dsp(DspLanes::AtMost(num(n)?)))
            }
            _ => Err(err("`dsp` is `on`, `off` or a number of DSP products")),
        };
    }
    if lhs == "mmv" {
        return Ok(FoldOverride::MaxMmv(num(rhs)?));
    }
    if lhs == "weights" {
        return match rhs.trim() {
            "bram" => Ok(FoldOverride::BlockWeights(true)),
            "auto" => Ok(FoldOverride::BlockWeights(false)),
            _ => Err(err("`weights` is `bram` or `auto`")),
        };
    }
    if lhs == "regs" {
        return match rhs.trim() {
            "on" => Ok(FoldOverride::OperandRegs(true)),
            "off" => Ok(FoldOverride::OperandRegs(false)),
            _ => Err(err("`regs` is `on` or `off`")),
        };
    }
    let factors: Vec<&str> = rhs.split(',').collect();
    let (pe, simd, mmv) = match factors[..] {
        [pe, simd] => (pe, simd, "1"),
        [pe, simd, mmv] => (pe, simd, mmv),
        _ => return Err(err("expected PE,SIMD or PE,SIMD,MMV after `=`")),
    };
    Ok(FoldOverride::Layer(
        lhs.to_string(),
        LayerFold {
            pe: num(pe)?,
            simd: num(simd)?,
            mmv: num(mmv)?,
        },
    ))
}

/// Divisors of `n`, ascending.
pub fn divisors(n: u32) -> Vec<u32> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

/// The values `SIMD` may take in a layer: divisors of the input channels (convolution) or of
/// the fan-in (dense).
pub fn simd_choices(geo: &LayerGeometry) -> Vec<u32> {
    if geo.is_dense() {
        divisors(geo.fan_in as u32)
    } else {
        divisors(geo.input.channels)
    }
}

/// The values `MMV` may take in a layer: divisors of the output width of a stride-1
/// convolution (its window unit banks the line buffer by column), else 1.
pub fn mmv_choices(geo: &LayerGeometry) -> Vec<u32> {
    if geo.is_dense() || geo.stride != 1 {
        vec![1]
    } else {
        divisors(geo.synaptic.width)
    }
}

/// Cycles layer `geo` needs per image with folding `f`: the slowest of its window unit, its
/// MVU and neuron stage, and its pooling unit.
pub fn layer_cycles(geo: &LayerGeometry, f: LayerFold) -> u64 {
    let nf = (geo.synaptic.channels / f.pe) as u64;
    let sf = (geo.fan_in as u32 / f.simd) as u64;
    let l = geo.local_steps as u64;
    // Per group of MMV positions: NF folds of max(SF, L) cycles.
    let swg = crate::swg::SwgShape::from_geometry(geo, f).cycles(nf * sf.max(l));
    swg.max(geo.synaptic.positions() as u64 * nf)
}

/// Cycles per image of the whole pipeline: its slowest stage (the input stream, a layer,
/// the head).
pub fn pipeline_cycles(model: &Model, folding: &Folding) -> u64 {
    let geo = model_geometry(model);
    let input = (geo[0].input.positions() as u64).div_ceil(folding.pixels_per_beat as u64);
    let layers = geo
        .iter()
        .zip(&folding.layers)
        .map(|(g, f)| layer_cycles(g, *f))
        .max()
        .unwrap_or(0);
    // The head takes a beat per cycle, and the last position's beats one cycle per class.
    let head = match (geo.last(), folding.layers.last()) {
        (Some(g), Some(f)) => {
            let nf = (g.output.channels / f.pe) as u64;
            (g.output.positions() as u64 - 1) * nf + g.output.channels as u64
        }
        _ => 0,
    };
    layers.max(input).max(head)
}

/// The smallest folding (fewest synapses per cycle) of one layer meeting `target` cycles,
/// or the fastest one within [`DEFAULT_MAX_SYNAPSES`]; among equals the one with the
/// narrowest weight word (most output positions per fetch, up to `max_mmv`).
fn default_layer_fold(geo: &LayerGeometry, target: u64, max_mmv: u32) -> LayerFold {
    let mut best: Option<((u64, u64, u64), LayerFold)> = None;
    let mmvs: Vec<u32> = mmv_choices(geo)
        .into_iter()
        .filter(|&v| v <= max_mmv)
        .collect();
    for pe in divisors(geo.synaptic.channels) {
        for simd in simd_choices(geo) {
            for &mmv in &mmvs {
                let f = LayerFold { pe, simd, mmv };
                let word = pe as u64 * simd as u64;
                let area = word * mmv as u64;
                if area > DEFAULT_MAX_SYNAPSES && (pe, simd, mmv) != (1, 1, 1) {
                    continue;
                }
                let cycles = layer_cycles(geo, f);
                // Meeting the target beats not meeting it; then less area; then a narrower
                // weight word (more positions per fetch).
                let key = (cycles.max(target), area, word);
                if best.is_none_or(|(b, _)| key < b) {
                    best = Some((key, f));
                }
            }
        }
    }
    best.map(|b| b.1).unwrap_or(LayerFold::new(1, 1))
}

/// The folding with the least area per layer that meets `target` cycles per image (one pixel
/// per beat): what `--cycles` asks for, and what a device that is too small is offered.
pub fn for_cycles(model: &Model, target: u64) -> Folding {
    let geo = model_geometry(model);
    Folding {
        pixels_per_beat: 1,
        layers: geo
            .iter()
            .map(|g| default_layer_fold(g, target, 1))
            .collect(),
        tree_levels: DEFAULT_TREE_LEVELS,
        dsp: false,
        dsp_limit: None,
        block_weights: false,
        operand_regs: false,
    }
}

/// Cycles per image of the most folded design (PE = SIMD = 1 everywhere).
pub fn slowest_cycles(model: &Model) -> u64 {
    let f = Folding {
        pixels_per_beat: 1,
        layers: vec![LayerFold::new(1, 1); model.layers.len()],
        tree_levels: DEFAULT_TREE_LEVELS,
        dsp: false,
        dsp_limit: None,
        block_weights: false,
        operand_regs: false,
    };
    pipeline_cycles(model, &f)
}

/// Resolves the folding of a validated model: defaults balanced to the input rate, then the
/// overrides, then checks.
pub fn resolve(model: &Model, overrides: &[FoldOverride]) -> Result<Folding, FoldError> {
    resolve_at(model, None, overrides)
}

/// As [`resolve`], the layers not overridden folded to meet `cycles` per image (with the
/// least area, as [`for_cycles`]) instead of the input rate; DSP lanes `dsp` unless an
/// override says otherwise.
pub fn resolve_for_cycles(
    model: &Model,
    cycles: u64,
    dsp: DspLanes,
    overrides: &[FoldOverride],
) -> Result<Folding, FoldError> {
    let mut all = vec![FoldOverride::Dsp(dsp)];
    all.extend_from_slice(overrides);
    resolve_at(model, Some(cycles), &all)
}

fn resolve_at(
    model: &Model,
    cycles: Option<u64>,
    overrides: &[FoldOverride],
) -> Result<Folding, FoldError> {
    let geo = model_geometry(model);
    let mut ppb = 1;
    let mut tree_levels = DEFAULT_TREE_LEVELS;
    let mut dsp = DspLanes::Off;
    let mut block_weights = false;
    let mut operand_regs = false;
    let mut max_mmv = 1;
    for o in overrides {
        match o {
            FoldOverride::MaxMmv(n) => max_mmv = *n,
            FoldOverride::BlockWeights(b) => block_weights = *b,
            FoldOverride::OperandRegs(r) => operand_regs = *r,
            FoldOverride::Input(p) => ppb = *p,
            FoldOverride::TreeLevels(t) => tree_levels = *t,
            FoldOverride::Dsp(d) => dsp = *d,
            FoldOverride::Layer(..) => {}
        }
    }
    let positions = geo[0].input.positions() as u32;
    let dense_first = matches!(model.layers[0].synapse, Synapse::Dense { .. });
    // A cycle budget below the pixels of an image needs several pixels per beat (a dense
    // first layer takes them; a convolution's line buffer takes one per cycle).
    let user_ppb = overrides
        .iter()
        .any(|o| matches!(o, FoldOverride::Input(_)));
    if let (Some(budget), true, false) = (cycles, dense_first, user_ppb) {
        ppb = divisors(positions)
            .into_iter()
            .find(|&d| (positions / d) as u64 <= budget)
            .unwrap_or(positions);
    }
    if ppb > 1 && (!dense_first || !positions.is_multiple_of(ppb)) {
        return Err(FoldError::PixelsPerBeat {
            value: ppb,
            reason: if dense_first {
                format!("does not divide the {positions} pixels of an image")
            } else {
                "needs a dense first layer (a convolution's line buffer takes one pixel per cycle)"
                    .into()
            },
            valid: if dense_first {
                divisors(positions)
            } else {
                vec![1]
            },
        });
    }
    let target = cycles.unwrap_or((positions / ppb) as u64);
    let mut layers: Vec<LayerFold> = geo
        .iter()
        .map(|g| default_layer_fold(g, target, max_mmv))
        .collect();
    for o in overrides {
        let FoldOverride::Layer(which, f) = o else {
            continue;
        };
        let i = which
            .parse::<usize>()
            .ok()
            .filter(|&i| i < model.layers.len())
            .or_else(|| model.layers.iter().position(|l| &l.name == which))
            .ok_or_else(|| FoldError::Syntax {
                spec: format!("{which}={}", f.spec()),
                reason: format!(
                    "no layer `{which}`: use an index 0..{} or a layer name",
                    model.layers.len()
                ),
            })?;
        layers[i] = *f;
    }
    for (i, (g, f)) in geo.iter().zip(&layers).enumerate() {
        let name = model.layers[i].name.clone();
        let cout = g.synaptic.channels;
        if cout % f.pe != 0 {
            return Err(FoldError::NotDivisor {
                layer: i,
                name,
                what: "PE",
                value: f.pe,
                of: format!("Cout = {cout}"),
                valid: divisors(cout),
            });
        }
        let simds = simd_choices(g);
        if !simds.contains(&f.simd) {
            return Err(FoldError::NotDivisor {
                layer: i,
                name,
                what: "SIMD",
                value: f.simd,
                of: if g.is_dense() {
                    format!("fan-in N = {}", g.fan_in)
                } else {
                    format!("input channels Cin = {}", g.input.channels)
                },
                valid: simds,
            });
        }
        let mmvs = mmv_choices(g);
        if !mmvs.contains(&f.mmv) {
            return Err(FoldError::NotDivisor {
                layer: i,
                name,
                what: "MMV",
                value: f.mmv,
                of: if mmvs.len() > 1 {
                    format!("output width OW = {}", g.synaptic.width)
                } else {
                    "1 (MMV > 1 needs a stride-1 convolution)".into()
                },
                valid: mmvs,
            });
        }
    }
    let (dsp, dsp_limit) = dsp.fields();
    Ok(Folding {
        pixels_per_beat: ppb,
        layers,
        tree_levels,
        dsp,
        dsp_limit,
        block_weights,
        operand_regs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason `parse_override` gives for `spec`.
    fn reason(spec: &str) -> String {
        match parse_override(spec) {
            Err(FoldError::Syntax { reason, .. }) => reason,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn overrides_parse_by_layer_and_for_the_input() {
        assert_eq!(
            parse_override("conv1=4, 9").unwrap(),
            FoldOverride::Layer("conv1".into(), LayerFold::new(4, 9))
        );
        assert_eq!(parse_override("input=2").unwrap(), FoldOverride::Input(2));
        assert_eq!(
            parse_override("dsp=7").unwrap(),
            FoldOverride::Dsp(DspLanes::AtMost(7))
        );
        assert_eq!(
            parse_override("dsp=on").unwrap(),
            FoldOverride::Dsp(DspLanes::On)
        );
        assert_eq!(
            parse_override("conv1=4,9,2").unwrap(),
            FoldOverride::Layer(
                "conv1".into(),
                LayerFold {
                    pe: 4,
                    simd: 9,
                    mmv: 2
                }
            )
        );
        assert_eq!(parse_override("mmv=4").unwrap(), FoldOverride::MaxMmv(4));
        assert_eq!(
            parse_override("regs=on").unwrap(),
            FoldOverride::OperandRegs(true)
        );
        let m = model("12x12x2-4C3-MP2-5b");
        let regs = |spec: &str| resolve(&m, &[parse_override(spec).unwrap()]).unwrap();
        assert!(regs("regs=on").operand_regs);
        assert!(!regs("regs=off").operand_regs);
        assert!(!resolve(&m, &[]).unwrap().operand_regs, "off by default");
    }

    fn model(a: &str) -> Model {
        spikeforge_model::random::random_model(&spikeforge_model::arch::parse(a).unwrap(), 1, 3)
            .unwrap()
    }

    #[test]
    fn mmv_divides_the_output_width_of_a_stride_1_convolution() {
        let m = model("12x12x2-4C3-MP2-4C3s2-5b");
        let fold = |spec: &str| resolve(&m, &[parse_override(spec).unwrap()]);
        assert_eq!(fold("0=1,1,4").unwrap().layers[0].mmv, 4);
        let err = |spec: &str| match fold(spec) {
            Err(FoldError::NotDivisor { what, valid, .. }) => (what, valid),
            other => panic!("{spec}: {other:?}"),
        };
        assert_eq!(err("0=1,1,5"), ("MMV", vec![1, 2, 3, 4, 6, 12]));
        assert_eq!(err("1=1,1,2"), ("MMV", vec![1]));
        assert_eq!(err("2=1,1,2"), ("MMV", vec![1]));
        // Asked to, the default folding meets a budget with positions in place of lanes.
        let budget = layer_cycles(&model_geometry(&m)[0], LayerFold::new(4, 1));
        let with = resolve_for_cycles(&m, budget, DspLanes::Off, &[FoldOverride::MaxMmv(4)]);
        let l0 = with.unwrap().layers[0];
        assert_eq!((l0.pe * l0.mmv, l0.mmv), (4, 4), "{l0:?}");
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        assert_eq!(reason("conv1"), "missing `=`");
        assert_eq!(reason("dsp=0"), "factors are positive integers");
        assert_eq!(
            reason("dsp=yes"),
            "`dsp` is `on`, `off` or a number of DSP products"
        );
        assert_eq!(reason("regs=2"), "`regs` is `on` or `off`");
        assert_eq!(
            reason("conv1=4"),
            "expected PE,SIMD or PE,SIMD,MMV after `=`"
        );
        assert_eq!(
            reason("conv1=4,1,2,2"),
            "expected PE,SIMD or PE,SIMD,MMV after `=`"
        );
        for bad in ["1=0,1", "1=-2,1", "1=x,1", "input=", "input=1.5"] {
            assert_eq!(reason(bad), "factors are positive integers", "{bad}");
        }
        assert_eq!(
            reason("1=99999999999999,1"),
            "`99999999999999` is larger than any layer"
        );
    }
}
