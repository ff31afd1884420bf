//! Semantic validation of a parsed model. Every rejection names the field (a JSON path such as
//! `layers[2].weights.values[17]`) and the reason; all problems are collected before failing.

use crate::geometry::{layer_geometry, output_range, pixel_range, LayerGeometry, MapShape};
use crate::ir::{
    Coding, Encoding, Layer, Leak, Lif, Model, Neuron, Pool, Synapse, Tsa, Weights, FORMAT,
    FRAMES_VERSION, VERSION,
};
use crate::widths;

/// One reason a model is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong, and what would be right.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Largest number of time steps accepted (membrane bounds stay far below 2^62).
pub const MAX_TIME_STEPS: u32 = 64;
/// Largest per-channel bias or threshold magnitude.
pub const MAX_PARAM: i64 = 1 << 30;
/// Largest input edge and channel count.
pub const MAX_DIM: u32 = 4096;

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            reason: reason.into(),
        });
    }
    fn range(&mut self, field: String, v: i64, lo: i64, hi: i64) -> bool {
        if v < lo || v > hi {
            self.fail(field, format!("{v} is out of range {lo}..={hi}"));
            false
        } else {
            true
        }
    }
}

/// Checks everything the golden model and the generator rely on.
pub fn validate(model: &Model) -> Result<(), Vec<Problem>> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    check_header(&mut c, model);
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let mut names = std::collections::HashSet::new();
    let inp = &model.input;
    let mut shape = MapShape {
        height: inp.height,
        width: inp.width,
        channels: inp.channels,
    };
    let mut range = pixel_range(model);
    let last = model.layers.len() - 1;
    let coding = model.coding();
    check_encoding(&mut c, model, coding);
    for (i, layer) in model.layers.iter().enumerate() {
        let at = format!("layers[{i}]");
        if !names.insert(layer.name.as_str()) {
            c.fail(
                format!("{at}.name"),
                format!("\"{}\" is used by an earlier layer", layer.name),
            );
        }
        check_synapse(&mut c, &at, layer);
        let Some(g) = layer_geometry(layer, shape, range, 1, model.time_steps, i == 0) else {
            c.fail(
                format!("{at}.synapse"),
                format!(
                    "a {}×{} kernel does not fit the {}×{} input map",
                    kernel(layer),
                    kernel(layer),
                    shape.height,
                    shape.width
                ),
            );
            return Err(c.problems);
        };
        check_weights(&mut c, &at, layer, g.fan_in);
        check_neuron(&mut c, &at, layer, i == last);
        check_coding(&mut c, &at, layer, coding, i == last);
        if let (Neuron::Tsa(tsa), true) = (&layer.neuron, c.problems.is_empty()) {
            check_clamp(
                &mut c,
                &at,
                layer,
                tsa,
                g.fan_in,
                (g.input_min, g.input_max),
            );
        }
        if let Some(pool) = layer.pool {
            check_pool(&mut c, &at, layer, pool, coding, &g);
        }
        shape = g.output;
        range = output_range(layer);
    }
    if c.problems.is_empty() {
        if let Err(p) = widths::analyse(model) {
            c.problems.push(p);
        }
    }
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(c.problems)
    }
}

/// The format, the version, the input and the time steps, and that there are layers.
fn check_header(c: &mut Checker, model: &Model) {
    if model.format != FORMAT {
        c.fail(
            "format",
            format!("expected \"{FORMAT}\", found \"{}\"", model.format),
        );
    }
    if !(VERSION..=FRAMES_VERSION).contains(&model.version) {
        c.fail(
            "version",
            format!(
                "this build reads IR versions {VERSION} to {FRAMES_VERSION}, found {}",
                model.version
            ),
        );
    } else if model.input.encoding == Encoding::Frames && model.version < FRAMES_VERSION {
        c.fail(
            "version",
            format!(
                "the \"frames\" input encoding needs IR version {FRAMES_VERSION}, found {}",
                model.version
            ),
        );
    }
    let inp = &model.input;
    for (name, v) in [
        ("height", inp.height),
        ("width", inp.width),
        ("channels", inp.channels),
    ] {
        c.range(format!("input.{name}"), v as i64, 1, MAX_DIM as i64);
    }
    c.range("input.pixel_bits".into(), inp.pixel_bits as i64, 1, 8);
    c.problems.extend(time_steps_problem(model.time_steps));
    if model.layers.is_empty() {
        c.fail("layers", "a model needs at least one layer");
    }
}

/// The problem `validate` reports for a `time_steps` outside 1..=MAX_TIME_STEPS, if any; also
/// for builders that must refuse T before they run anything with it.
pub(crate) fn time_steps_problem(time_steps: u32) -> Option<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    c.range(
        "time_steps".into(),
        time_steps as i64,
        1,
        MAX_TIME_STEPS as i64,
    );
    c.problems.pop()
}

/// 2×2 pooling needs spikes, a map of at least 2×2, and for ternary spikes sum pooling.
fn check_pool(
    c: &mut Checker,
    at: &str,
    layer: &Layer,
    pool: Pool,
    coding: Coding,
    g: &LayerGeometry,
) {
    if !layer.neuron.spikes() {
        c.fail(
            format!("{at}.pool"),
            "pooling needs spikes: give the layer a LIF or TSA neuron",
        );
    } else if coding == Coding::Tsa && pool == Pool::Or {
        c.fail(
            format!("{at}.pool"),
            "max (OR) pooling of signed, weighted ternary spike trains is not defined \
             step by step; use sum (average) pooling",
        );
    } else if g.synaptic.height < 2 || g.synaptic.width < 2 {
        c.fail(
            format!("{at}.pool"),
            format!(
                "2×2 pooling needs a map of at least 2×2, the layer produces {}×{}",
                g.synaptic.height, g.synaptic.width
            ),
        );
    }
}

fn kernel(layer: &Layer) -> u32 {
    match layer.synapse {
        Synapse::Conv { kernel, .. } => kernel,
        Synapse::Dense { .. } => 1,
    }
}

fn check_synapse(c: &mut Checker, at: &str, layer: &Layer) {
    match layer.synapse {
        Synapse::Conv {
            out_channels,
            kernel,
            stride,
            ..
        } => {
            c.range(
                format!("{at}.synapse.out_channels"),
                out_channels as i64,
                1,
                MAX_DIM as i64,
            );
            if ![1, 3, 5].contains(&kernel) {
                c.fail(
                    format!("{at}.synapse.kernel"),
                    format!("{kernel} is not one of 1, 3, 5"),
                );
            }
            if ![1, 2].contains(&stride) {
                c.fail(
                    format!("{at}.synapse.stride"),
                    format!("{stride} is not 1 or 2"),
                );
            }
        }
        Synapse::Dense { out_features } => {
            c.range(
                format!("{at}.synapse.out_features"),
                out_features as i64,
                1,
                MAX_DIM as i64,
            );
        }
    }
}

fn check_weights(c: &mut Checker, at: &str, layer: &Layer, fan_in: usize) {
    let n = fan_in * layer.out_channels() as usize;
    match &layer.weights {
        Weights::Binary { signs } => {
            let want = n.div_ceil(8) * 2;
            let field = format!("{at}.weights.signs");
            if signs.len() != want {
                c.fail(
                    field,
                    format!(
                        "{n} weights need {want} hex digits, found {} (truncated or wrong layer shape?)",
                        signs.len()
                    ),
                );
            } else if let Some(pos) = signs.find(|ch: char| !matches!(ch, '0'..='9' | 'a'..='f')) {
                c.fail(
                    field,
                    format!("character {pos} is not a lowercase hex digit"),
                );
            } else if !n.is_multiple_of(8) {
                let last = u8::from_str_radix(&signs[want - 2..], 16).unwrap_or(0);
                if last >> (n % 8) != 0 {
                    c.fail(field, "bits beyond the last weight must be zero");
                }
            }
        }
        Weights::Integer { bits, values } => {
            if !c.range(format!("{at}.weights.bits"), *bits as i64, 2, 16) {
                return;
            }
            if values.len() != n {
                c.fail(
                    format!("{at}.weights.values"),
                    format!(
                        "expected {n} values ({} outputs × fan-in {fan_in}), found {}",
                        layer.out_channels(),
                        values.len()
                    ),
                );
            }
            let lim = 1i64 << (bits - 1);
            let bad: Vec<usize> = (0..values.len())
                .filter(|&k| !(-lim..lim).contains(&(values[k] as i64)))
                .collect();
            if let Some(&k) = bad.first() {
                c.fail(
                    format!("{at}.weights.values[{k}]"),
                    format!(
                        "{} does not fit {bits}-bit two's complement ({}..={}){}",
                        values[k],
                        -lim,
                        lim - 1,
                        if bad.len() > 1 {
                            format!("; {} more values are out of range", bad.len() - 1)
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
    }
}

fn check_channel_vec(c: &mut Checker, field: String, v: &[i32], n: usize) {
    if v.len() != n {
        c.fail(
            field,
            format!(
                "expected {n} values (one per output channel), found {}",
                v.len()
            ),
        );
        return;
    }
    if let Some(k) = v.iter().position(|&x| (x as i64).abs() > MAX_PARAM) {
        c.fail(
            format!("{field}[{k}]"),
            format!("{} exceeds ±{MAX_PARAM}", v[k]),
        );
    }
}

fn check_neuron(c: &mut Checker, at: &str, layer: &Layer, is_last: bool) {
    let n = layer.out_channels() as usize;
    match &layer.neuron {
        Neuron::None { bias } => {
            if !is_last {
                c.fail(
                    format!("{at}.neuron"),
                    "only the last layer may have no neuron: a hidden layer must emit spikes",
                );
            }
            check_channel_vec(c, format!("{at}.neuron.bias"), bias, n);
        }
        Neuron::Lif(Lif {
            bias,
            threshold,
            polarity,
            leak,
            ..
        }) => {
            check_channel_vec(c, format!("{at}.neuron.bias"), bias, n);
            check_channel_vec(c, format!("{at}.neuron.threshold"), threshold, n);
            check_polarity(c, at, polarity, n);
            if let Leak::Shift { shift } | Leak::Decay { shift } = *leak {
                c.range(format!("{at}.neuron.leak.shift"), shift as i64, 1, 15);
            }
        }
        Neuron::Tsa(Tsa {
            bias,
            threshold,
            polarity,
            clamp,
            silent,
            ..
        }) => {
            check_channel_vec(c, format!("{at}.neuron.bias"), bias, n);
            check_channel_vec(c, format!("{at}.neuron.threshold"), threshold, n);
            check_channel_vec(c, format!("{at}.neuron.clamp"), clamp, n);
            check_polarity(c, at, polarity, n);
            if let Some(k) = threshold.iter().position(|&t| t < 1) {
                c.fail(
                    format!("{at}.neuron.threshold[{k}]"),
                    format!("{} is below 1: a TSA threshold is positive", threshold[k]),
                );
            }
            c.range(format!("{at}.neuron.silent"), *silent as i64, 0, 2);
        }
        Neuron::TsaReadout { bias } => {
            check_channel_vec(c, format!("{at}.neuron.bias"), bias, n);
        }
    }
}

fn check_polarity(c: &mut Checker, at: &str, polarity: &str, n: usize) {
    if polarity.chars().count() != n {
        c.fail(
            format!("{at}.neuron.polarity"),
            format!(
                "expected {n} characters, found {}",
                polarity.chars().count()
            ),
        );
    } else if let Some(k) = polarity.chars().position(|ch| ch != '+' && ch != '-') {
        c.fail(
            format!("{at}.neuron.polarity"),
            format!("character {k} is not '+' or '-'"),
        );
    }
}

/// The input encoding each coding needs.
fn check_encoding(c: &mut Checker, model: &Model, coding: Coding) {
    let fits = match (coding, model.input.encoding) {
        (Coding::Lif, Encoding::Direct | Encoding::Frames) => true,
        (Coding::Tsa, Encoding::FirstStep) => true,
        (Coding::Lif, Encoding::FirstStep) | (Coding::Tsa, Encoding::Direct | Encoding::Frames) => {
            false
        }
    };
    if !fits {
        let (enc, why) = match coding {
            Coding::Lif => (
                "direct\" or \"frames",
                "LIF-coded models present the pixels (or a frame) at every step",
            ),
            Coding::Tsa => (
                "first_step",
                "TSA-coded models inject the pixels' current once, at the first step",
            ),
        };
        c.fail("input.encoding", format!("expected \"{enc}\": {why}"));
    }
}

/// A model is LIF-coded or TSA-coded throughout: binary spikes cannot feed a TSA neuron, nor
/// ternary spikes a LIF one.
fn check_coding(c: &mut Checker, at: &str, layer: &Layer, coding: Coding, is_last: bool) {
    let ok = matches!(
        (coding, &layer.neuron, is_last),
        (Coding::Lif, Neuron::Lif(_), _)
            | (Coding::Lif, Neuron::None { .. }, true)
            | (Coding::Tsa, Neuron::Tsa(_), false)
            | (Coding::Tsa, Neuron::TsaReadout { .. }, true)
    );
    if !ok {
        let want = match (coding, is_last) {
            (Coding::Lif, false) => "a \"lif\" neuron",
            (Coding::Lif, true) => "a \"lif\" neuron or none",
            (Coding::Tsa, false) => "a \"tsa\" neuron",
            (Coding::Tsa, true) => "a \"tsa_readout\" neuron",
        };
        let coded = match coding {
            Coding::Lif => "LIF-coded (its first layer has a LIF neuron)",
            Coding::Tsa => "TSA-coded (its first layer has a TSA neuron)",
        };
        c.fail(
            format!("{at}.neuron"),
            format!("this model is {coded}, so this layer needs {want}; mixed codings are not supported"),
        );
    }
}

/// The clamp must not change any spike: `clamp ≥ 4θ + M` per channel (see [`Tsa`]).
fn check_clamp(
    c: &mut Checker,
    at: &str,
    layer: &Layer,
    tsa: &Tsa,
    fan_in: usize,
    (xmin, xmax): (i64, i64),
) {
    let ranges = widths::channel_acc_ranges(layer, fan_in, xmin, xmax);
    if tsa.clamp.len() != ranges.len() || tsa.threshold.len() != ranges.len() {
        return; // reported by check_neuron
    }
    for (ch, r) in ranges.iter().enumerate() {
        let need = 4 * tsa.threshold[ch] as i64 + widths::tsa_input_bound(*r, tsa.bias[ch]);
        if (tsa.clamp[ch] as i64) < need {
            c.fail(
                format!("{at}.neuron.clamp[{ch}]"),
                format!(
                    "{} is below 4·threshold + max |input| = {need}: clamping there could change \
                     spikes (use {need})",
                    tsa.clamp[ch]
                ),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::parse;
    use crate::random::random_model;

    fn pool_problem(model: &Model) -> Problem {
        let problems = validate(model).unwrap_err();
        problems
            .into_iter()
            .find(|p| p.field == "layers[0].pool")
            .expect("a problem with layers[0].pool")
    }

    #[test]
    fn pooling_without_spikes_is_refused() {
        let mut m = random_model(&parse("8x8-4C3-MP2-3").unwrap(), 1, 1).unwrap();
        m.layers[0].neuron = Neuron::None { bias: vec![0; 4] };
        assert!(pool_problem(&m).reason.contains("pooling needs spikes"));
    }

    #[test]
    fn pooling_a_map_smaller_than_2x2_is_refused() {
        let mut m = random_model(&parse("8x8-4C3-MP2-3").unwrap(), 1, 1).unwrap();
        m.input.height = 1;
        let p = pool_problem(&m);
        assert!(p.reason.contains("at least 2×2"), "{p:?}");
        assert!(p.reason.contains("1×8"), "{p:?}");
    }
}
