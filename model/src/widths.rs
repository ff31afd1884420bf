//! Bit-width analysis: interval arithmetic over the weights, parameters and shapes of a model,
//! giving every accumulator, membrane, output and logit a range that no input can leave.
//!
//! The bounds are exact for the accumulator of the pixel layer (any pixel may be at its
//! maximum), and safe (possibly loose) deeper in the network. The tests at the end of this file
//! drive saturated weights and inputs that reach the pixel layer's bound and check that no
//! traced value leaves any range.

use crate::geometry::{bits_signed, bits_unsigned, output_range, try_model_geometry};
use crate::ir::{FireRule, Layer, Leak, Lif, Model, Neuron, Reset, Tsa};
use crate::validate::Problem;
use crate::weights::weight_values;

/// Widest value the golden model and the generator support.
pub const MAX_BITS: u32 = 62;

/// A closed integer interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Smallest value.
    pub lo: i64,
    /// Largest value.
    pub hi: i64,
}

impl Range {
    /// The interval holding one value.
    pub fn point(v: i64) -> Self {
        Range { lo: v, hi: v }
    }
    /// Smallest interval holding both.
    pub fn hull(self, o: Range) -> Range {
        Range {
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
        }
    }
    /// Two's-complement bits that hold every value of the interval.
    pub fn bits(self) -> u32 {
        bits_signed(self.lo, self.hi)
    }
    fn add(self, o: Range) -> Range {
        Range {
            lo: self.lo.saturating_add(o.lo),
            hi: self.hi.saturating_add(o.hi),
        }
    }
}

/// Widths of one layer's datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerWidths {
    /// Range of the synaptic current of one step (the accumulator), over all channels.
    pub acc: Range,
    /// Range of every membrane value the neuron computes (LIF: before and after reset, and the
    /// subtractive-reset difference; TSA: the doubled, integrated, clamped and reset values;
    /// TSA readout: every `u`), over all channels and steps; `None` without a neuron.
    pub membrane: Option<Range>,
    /// Range of one value on the layer's output stream.
    pub output: Range,
    /// Whether output values are signed (layers without a neuron, ternary spikes, readouts).
    pub output_signed: bool,
}

impl LayerWidths {
    /// Accumulator width (signed).
    pub fn acc_bits(&self) -> u32 {
        self.acc.bits()
    }
    /// Membrane width (signed); 0 without a neuron.
    pub fn membrane_bits(&self) -> u32 {
        self.membrane.map_or(0, Range::bits)
    }
    /// Width of one output value (two's complement when signed, unsigned otherwise).
    pub fn output_bits(&self) -> u32 {
        if self.output_signed {
            self.output.bits()
        } else {
            bits_unsigned(self.output.hi as u64)
        }
    }
}

/// Widths of the whole model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths {
    /// Per layer.
    pub layers: Vec<LayerWidths>,
    /// Range of the logits of the GAP head.
    pub logits: Range,
    /// Classes (output channels of the last layer).
    pub classes: u32,
}

impl Widths {
    /// Width of one logit (signed).
    pub fn logit_bits(&self) -> u32 {
        self.logits.bits()
    }
    /// Width of the class index.
    pub fn class_bits(&self) -> u32 {
        bits_unsigned(self.classes.saturating_sub(1) as u64)
    }
}

/// Per-channel range of the accumulator `Σ x·w` with every `x ∈ [xmin, xmax]` (`xmin ≤ 0`).
pub fn channel_acc_ranges(layer: &Layer, fan_in: usize, xmin: i64, xmax: i64) -> Vec<Range> {
    let w = weight_values(layer, fan_in * layer.out_channels() as usize);
    w.chunks(fan_in.max(1))
        .map(|row| {
            let pos: i64 = row.iter().filter(|&&v| v > 0).sum();
            let neg: i64 = row.iter().filter(|&&v| v < 0).sum();
            Range {
                lo: neg * xmax + pos * xmin,
                hi: pos * xmax + neg * xmin,
            }
        })
        .collect()
}

/// Largest `|I|` a TSA neuron integrates in one step: the accumulator range `acc` (either
/// polarity), with the bias at the first step. The `M` of the saturation lemma.
pub fn tsa_input_bound(acc: Range, bias: i32) -> i64 {
    let b = bias as i64;
    [acc.lo, acc.hi, acc.lo + b, acc.hi + b]
        .iter()
        .map(|v| v.abs())
        .max()
        .unwrap_or(0)
}

/// Per-step current range of channel `ch` after polarity, without the bias.
fn polarised(r: Range, polarity: &str, ch: usize) -> Range {
    if polarity.as_bytes()[ch] == b'-' {
        Range {
            lo: -r.hi,
            hi: -r.lo,
        }
    } else {
        r
    }
}

/// Membrane range of one TSA channel: every `u` is within `±(2·clamp + M)` (doubled from at
/// most `clamp`, plus one input), and the clamp bounds what is carried.
fn tsa_membrane_range(acc: Range, tsa: &Tsa, ch: usize) -> Range {
    let m = tsa_input_bound(acc, tsa.bias[ch]);
    let c = tsa.clamp[ch] as i64;
    Range {
        lo: -2 * c - m,
        hi: 2 * c + m,
    }
}

/// Range of every `u` of a TSA readout channel over `steps` steps: `u ← 2u + I`, bias at the
/// first step.
fn readout_range(acc: Range, bias: i32, steps: u32) -> Range {
    let mut u = Range::point(0);
    let mut seen = u;
    for k in 0..steps {
        let i = if k == 0 {
            acc.add(Range::point(bias as i64))
        } else {
            acc
        };
        u = Range {
            lo: u.lo.saturating_mul(2),
            hi: u.hi.saturating_mul(2),
        }
        .add(i);
        seen = seen.hull(u);
    }
    seen
}

/// Per-channel LIF membrane ranges.
fn lif_membranes(per_channel: &[Range], lif: &Lif, t: u32) -> Option<Range> {
    let mut m: Option<Range> = None;
    for (c, r) in per_channel.iter().enumerate() {
        let cur = polarised(*r, &lif.polarity, c).add(Range::point(lif.bias[c] as i64));
        let thr = lif.threshold[c] as i64;
        let mr = membrane_range(cur, thr, lif.leak, lif.reset, lif.fire, t);
        m = Some(m.map_or(mr, |x| x.hull(mr)));
    }
    m
}

fn floor_shift(v: i64, s: u32) -> i64 {
    v >> s
}

fn leak_range(leak: Leak, r: Range) -> Range {
    match leak {
        Leak::None => r,
        Leak::Shift { shift } => Range {
            lo: floor_shift(r.lo, shift),
            hi: floor_shift(r.hi, shift),
        },
        // x − ⌊x/2^s⌋ is non-decreasing in x, so the interval maps end to end.
        Leak::Decay { shift } => Range {
            lo: r.lo - floor_shift(r.lo, shift),
            hi: r.hi - floor_shift(r.hi, shift),
        },
    }
}

/// Membrane ranges of one LIF channel over `steps` steps with per-step current in `current`.
fn membrane_range(
    current: Range,
    thr: i64,
    leak: Leak,
    reset: Reset,
    fire: FireRule,
    steps: u32,
) -> Range {
    let fire_at = match fire {
        FireRule::Ge => thr,
        FireRule::Gt => thr.saturating_add(1),
    };
    let mut carried = Range::point(0);
    let mut seen = Range::point(thr);
    for _ in 0..steps {
        let v = leak_range(leak, carried).add(current);
        seen = seen.hull(v).hull(Range {
            lo: v.lo - thr,
            hi: v.hi - thr,
        });
        let mut next: Option<Range> = None;
        if v.lo < fire_at {
            next = Some(Range {
                lo: v.lo,
                hi: v.hi.min(fire_at - 1),
            });
        }
        if v.hi >= fire_at {
            let fired = match reset {
                Reset::Hard => Range::point(0),
                Reset::Subtract => Range {
                    lo: v.lo.max(fire_at) - thr,
                    hi: v.hi - thr,
                },
            };
            next = Some(next.map_or(fired, |n| n.hull(fired)));
        }
        carried = next.expect("a membrane interval is never empty");
        seen = seen.hull(carried);
    }
    seen
}

/// Derives every width of a model whose structure is valid. Fails with a [`Problem`] when a
/// value would need more than [`MAX_BITS`] bits.
pub fn analyse(model: &Model) -> Result<Widths, Problem> {
    let t = model.time_steps;
    let geo = try_model_geometry(model).map_err(|i| Problem {
        field: format!("layers[{i}].synapse"),
        reason: "kernel does not fit the input map".into(),
    })?;
    let mut layers = Vec::new();
    let mut logits = Range::point(0);
    for (i, (layer, g)) in model.layers.iter().zip(&geo).enumerate() {
        let per_channel = channel_acc_ranges(layer, g.fan_in, g.input_min, g.input_max);
        let acc = per_channel
            .iter()
            .copied()
            .reduce(Range::hull)
            .unwrap_or(Range::point(0));
        let hull = |v: &[Range]| v.iter().copied().reduce(Range::hull);
        let spikes = |per_channel: &[Range]| {
            let (lo, hi) = output_range(layer);
            (Range { lo, hi }, vec![Range { lo, hi }; per_channel.len()])
        };
        // Output value range per channel, and the values the head sums per position.
        let (membrane, output, signed, channel_out) = match &layer.neuron {
            Neuron::Lif(lif) => {
                let (out, ch) = spikes(&per_channel);
                (lif_membranes(&per_channel, lif, t), out, false, ch)
            }
            Neuron::Tsa(tsa) => {
                let m: Vec<Range> = (0..per_channel.len())
                    .map(|c| tsa_membrane_range(per_channel[c], tsa, c))
                    .collect();
                let (out, ch) = spikes(&per_channel);
                (hull(&m), out, true, ch)
            }
            Neuron::TsaReadout { bias } => {
                let ch: Vec<Range> = per_channel
                    .iter()
                    .zip(bias)
                    .map(|(r, &b)| readout_range(*r, b, t))
                    .collect();
                let all = hull(&ch).unwrap_or(Range::point(0));
                (Some(all), all, true, ch)
            }
            Neuron::None { bias } => {
                let ch: Vec<Range> = per_channel
                    .iter()
                    .zip(bias)
                    .map(|(r, &b)| r.add(Range::point(b as i64)))
                    .collect();
                let out = hull(&ch).unwrap_or(Range::point(0));
                (None, out, true, ch)
            }
        };
        let lw = LayerWidths {
            acc,
            membrane,
            output,
            output_signed: signed,
        };
        for (what, bits) in [
            ("accumulator", lw.acc_bits()),
            ("membrane", lw.membrane_bits()),
            ("output", lw.output_bits()),
        ] {
            if bits > MAX_BITS {
                return Err(Problem {
                    field: format!("layers[{i}]"),
                    reason: format!(
                        "the {what} needs {bits} bits; at most {MAX_BITS} are supported \
                         (smaller weights, biases or thresholds would fit)"
                    ),
                });
            }
        }
        if i == model.layers.len() - 1 {
            // The readout outputs one value per position; the others one per step.
            let steps = i64::from(layer.neuron.output_steps(t));
            let n = (g.output.positions() as i64) * steps;
            let per: Vec<Range> = channel_out
                .iter()
                .map(|r| Range {
                    lo: r.lo * n,
                    hi: r.hi * n,
                })
                .collect();
            logits = per
                .into_iter()
                .reduce(Range::hull)
                .unwrap_or(Range::point(0));
            if logits.bits() > MAX_BITS {
                return Err(Problem {
                    field: "head".into(),
                    reason: format!("logits need {} bits; at most {MAX_BITS}", logits.bits()),
                });
            }
        }
        layers.push(lw);
    }
    let classes = model.layers.last().map_or(0, |l| l.out_channels());
    Ok(Widths {
        layers,
        logits,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_reset_membrane_without_leak_accumulates_below_threshold() {
        // current in [−3, 5], threshold 4, IF, hard reset, 3 steps:
        // below-threshold values can sink to −9 and rise to 3 + 5 = 8.
        let r = membrane_range(
            Range { lo: -3, hi: 5 },
            4,
            Leak::None,
            Reset::Hard,
            FireRule::Ge,
            3,
        );
        assert_eq!(r.lo, -9 - 4);
        assert_eq!(r.hi, 8);
    }

    #[test]
    fn decay_leak_is_monotone() {
        for s in 1..5 {
            let f = |x: i64| x - (x >> s);
            for x in -100..100 {
                assert!(f(x + 1) >= f(x));
            }
        }
    }
}

#[cfg(test)]
mod worst_case {
    //! The analysis against adversarial inputs: saturated pixels with all-positive or
    //! all-negative weights reach the accumulator bounds exactly, and no value the golden
    //! model computes ever leaves the analysed ranges.
    use super::*;
    use crate::arch::parse;
    use crate::golden::Golden;
    use crate::ir::Coding;
    use crate::ir::Weights;
    use crate::random::{random_coded_model, random_images, random_model};

    /// TSA models: every membrane the golden model computes (doubled, integrated, clamped,
    /// reset; readout `u`) stays inside the analysed range, on random and saturated images.
    #[test]
    fn tsa_values_stay_inside_their_ranges() {
        for (arch, t) in [
            ("10x10x2-5C3-SP2-4C3b-3", 6),
            ("30-12b-9-4", 8),
            ("6x6-3C3-2", 2),
        ] {
            for seed in 0..4 {
                let m = random_coded_model(&parse(arch).unwrap(), t, seed, Coding::Tsa).unwrap();
                let w = analyse(&m).unwrap();
                let mut imgs =
                    vec![255u8; (m.input.height * m.input.width * m.input.channels) as usize];
                imgs.extend(random_images(&m, 10, seed));
                for r in Golden::new(&m).run_batch(&imgs, true).unwrap() {
                    for (l, tr) in r.trace.as_ref().unwrap().iter().enumerate() {
                        let (ms, mb) = (tr.membrane_seen.unwrap(), w.layers[l].membrane.unwrap());
                        assert!(
                            mb.lo <= ms.lo && ms.hi <= mb.hi,
                            "{arch} layer {l}: {ms:?} outside {mb:?}"
                        );
                        let a = w.layers[l].acc;
                        assert!(
                            a.lo <= tr.acc_seen.lo && tr.acc_seen.hi <= a.hi,
                            "{arch} layer {l}"
                        );
                    }
                    for &lg in &r.logits {
                        assert!(w.logits.lo <= lg && lg <= w.logits.hi);
                    }
                }
            }
        }
    }

    fn saturate(model: &mut Model, positive: bool) {
        let geo = crate::geometry::model_geometry(model);
        for (layer, g) in model.layers.iter_mut().zip(geo) {
            let total = g.fan_in * layer.out_channels() as usize;
            match &mut layer.weights {
                Weights::Binary { signs } => {
                    let fill = if positive { 'f' } else { '0' };
                    let n = signs.len();
                    *signs = std::iter::repeat_n(fill, n).collect();
                    // Keep padding bits zero (validation requires it).
                    if positive && !total.is_multiple_of(8) {
                        let keep = (1u32 << (total % 8)) - 1;
                        signs.replace_range(n - 2.., &format!("{keep:02x}"));
                    }
                }
                Weights::Integer { bits, values } => {
                    let v = if positive {
                        (1 << (*bits - 1)) - 1
                    } else {
                        -(1 << (*bits - 1))
                    };
                    values.iter_mut().for_each(|x| *x = v);
                }
            }
        }
    }

    #[test]
    fn saturated_inputs_reach_the_accumulator_bound_and_stay_inside_every_range() {
        for (arch, t) in [
            ("6x6x2-3C3b-4i5", 3),
            ("20-7i8-3b", 1),
            ("8x8-4C3i4-SP2-3C1i8", 4),
        ] {
            for positive in [true, false] {
                let mut m = random_model(&parse(arch).unwrap(), t, 5).unwrap();
                saturate(&mut m, positive);
                crate::validate::validate(&m).unwrap();
                let w = analyse(&m).unwrap();
                let full =
                    vec![255u8; (m.input.height * m.input.width * m.input.channels) as usize];
                let mut imgs = full.clone();
                imgs.extend(random_images(&m, 20, 1));
                let out = Golden::new(&m).run_batch(&imgs, true).unwrap();
                // Pixel layer: all pixels at 255 drive the exact bound (interior positions).
                let seen = out[0].trace.as_ref().unwrap()[0].acc_seen;
                let bound = w.layers[0].acc;
                assert_eq!(
                    if positive { seen.hi } else { seen.lo },
                    if positive { bound.hi } else { bound.lo },
                    "{arch}"
                );
                for r in &out {
                    for (l, tr) in r.trace.as_ref().unwrap().iter().enumerate() {
                        let lw = &w.layers[l];
                        assert!(
                            lw.acc.lo <= tr.acc_seen.lo && tr.acc_seen.hi <= lw.acc.hi,
                            "{arch} layer {l}"
                        );
                        if let (Some(ms), Some(mb)) = (tr.membrane_seen, lw.membrane) {
                            assert!(
                                mb.lo <= ms.lo && ms.hi <= mb.hi,
                                "{arch} layer {l}: {ms:?} outside {mb:?}"
                            );
                        }
                    }
                    for &lg in &r.logits {
                        assert!(w.logits.lo <= lg && lg <= w.logits.hi);
                    }
                }
            }
        }
    }
}
