//! The golden model: the bit-exact integer reference semantics of a hardware model. The RTL is
//! correct exactly when it produces, beat for beat, what this module produces.
//!
//! Semantics (every rounding and tie fixed here; `docs/ir.md` repeats them):
//! * direct encoding: the pixel layer sees the same pixels at every step, so its synaptic
//!   current is computed once and reused for all `T` steps;
//! * synaptic current `acc[c] = Σ_j x_j·w[c][j]`, zero padding outside the map; binary layers
//!   compute it as `Σ_b 2^b·(2·popcount(x_b ∧ w) − popcount(x_b))` over the bit-planes `x_b`
//!   of the unsigned inputs, which equals the ±1 dot product exactly;
//!   (signed inputs, ternary spikes and their pooled sums, use the plain integer dot product);
//! * LIF: see [`crate::ir::Lif`]; shifts are arithmetic (floor);
//! * TSA: see [`crate::ir::Tsa`]; a TSA layer runs `T + silent` local steps, the input of
//!   step `k` being the previous layer's output step `k` (none after the last), and the pixel
//!   layer's current entering at step 1 only (`first_step` encoding); the TSA readout
//!   ([`crate::ir::Neuron::TsaReadout`]) outputs one value per position;
//! * pooling: per step and channel over 2×2 windows, odd last row/column dropped;
//! * head: logits are sums over positions and steps; argmax takes the lowest index on ties.

use rayon::prelude::*;
use thiserror::Error;

use crate::geometry::{model_geometry, LayerGeometry, MapShape};
use crate::ir::{FireRule, Layer, Leak, Lif, Model, NegativeSpikes, Neuron, Pool, Reset, Tsa};
use crate::weights::weight_values;
use crate::widths::Range;

/// Errors of running the golden model on user data.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GoldenError {
    /// The image buffer does not hold a whole number of images.
    #[error("input has {found} bytes, which is not a multiple of the image size {expected} bytes ({h}×{w}×{c}{})", if *frames > 1 { format!(" × {frames} frames") } else { String::new() })]
    ImageSize {
        /// Bytes of one image.
        expected: usize,
        /// Bytes given.
        found: usize,
        /// Image height.
        h: u32,
        /// Image width.
        w: u32,
        /// Image channels.
        c: u32,
        /// Input frames per image (`T` for the `frames` encoding, else 1).
        frames: usize,
    },
    /// A pixel exceeds the model's pixel width.
    #[error(
        "image {image}, byte {offset}: pixel value {value} exceeds the model's {bits}-bit pixels"
    )]
    PixelRange {
        /// Image index.
        image: usize,
        /// Byte offset inside the image.
        offset: usize,
        /// The value.
        value: u8,
        /// Pixel bits of the model.
        bits: u32,
    },
}

/// A feature map over time: values `[position][step][channel]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerTrace {
    /// Map shape.
    pub shape: MapShape,
    /// Steps stored per position.
    pub steps: u32,
    /// The values.
    pub values: Vec<i64>,
    /// Range of the synaptic currents computed for this layer.
    pub acc_seen: Range,
    /// Range of the membrane values computed (LIF, TSA, TSA readout).
    pub membrane_seen: Option<Range>,
}

impl LayerTrace {
    /// The value at a position (raster index), step and channel.
    pub fn at(&self, pos: usize, step: usize, ch: usize) -> i64 {
        let c = self.shape.channels as usize;
        self.values[(pos * self.steps as usize + step) * c + ch]
    }
}

/// The result of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    /// Winning class (lowest index on ties).
    pub class: usize,
    /// GAP logits.
    pub logits: Vec<i64>,
    /// Per-layer output maps (after pooling), when requested.
    pub trace: Option<Vec<LayerTrace>>,
}

struct Plan {
    geo: LayerGeometry,
    /// Binary layers on unsigned inputs: sign words per output channel (`words` u64 each,
    /// bit j = weight j is +1).
    signs: Vec<u64>,
    words: usize,
    /// Integer layers, and binary layers on signed inputs: weights `[c][j]`.
    ints: Vec<i64>,
}

impl Plan {
    /// Whether the synaptic current goes through bit-plane popcounts.
    fn popcount(&self) -> bool {
        !self.signs.is_empty()
    }
}

/// A model prepared for fast bit-exact evaluation.
pub struct Golden<'m> {
    model: &'m Model,
    plans: Vec<Plan>,
}

struct Map {
    shape: MapShape,
    steps: u32,
    values: Vec<i64>,
}

impl<'m> Golden<'m> {
    /// Prepares a model that passed [`crate::validate::validate`].
    pub fn new(model: &'m Model) -> Self {
        let plans = model
            .layers
            .iter()
            .zip(model_geometry(model))
            .map(|(layer, geo)| plan(layer, geo))
            .collect();
        Golden { model, plans }
    }

    /// Bytes of one input image (all `T` frames of a `frames` model).
    pub fn image_len(&self) -> usize {
        let i = &self.model.input;
        (i.height * i.width * i.channels) as usize * self.input_steps()
    }

    /// Input maps per image: `T` for per-step frames, else one.
    fn input_steps(&self) -> usize {
        self.model.input.encoding.input_maps(self.model.time_steps) as usize
    }

    /// Checks that `images` holds whole images with in-range pixels.
    pub fn check_images(&self, images: &[u8]) -> Result<usize, GoldenError> {
        let n = self.image_len();
        let i = &self.model.input;
        if !images.len().is_multiple_of(n) || images.is_empty() {
            return Err(GoldenError::ImageSize {
                expected: n,
                found: images.len(),
                h: i.height,
                w: i.width,
                c: i.channels,
                frames: self.input_steps(),
            });
        }
        if let Some(k) = i.first_out_of_range(images) {
            return Err(GoldenError::PixelRange {
                image: k / n,
                offset: k % n,
                value: images[k],
                bits: i.pixel_bits,
            });
        }
        Ok(images.len() / n)
    }

    /// Runs a batch of images (concatenated), in parallel across images.
    pub fn run_batch(&self, images: &[u8], trace: bool) -> Result<Vec<Inference>, GoldenError> {
        self.check_images(images)?;
        Ok(images
            .par_chunks(self.image_len())
            .map(|img| self.run_one(img, trace))
            .collect())
    }

    /// The first layer's input map of one image of exactly [`Self::image_len`] bytes, as
    /// [`Self::currents`] takes it: `[position][step][channel]` with one step, or `T` for
    /// per-step frames (which arrive `[step][position][channel]`).
    pub fn input_values(&self, image: &[u8]) -> Vec<i64> {
        let steps = self.input_steps();
        let frame = image.len() / steps;
        let c = self.model.input.channels as usize;
        let mut values = vec![0i64; image.len()];
        for (k, &p) in image.iter().enumerate() {
            let (t, rest) = (k / frame, k % frame);
            values[((rest / c) * steps + t) * c + rest % c] = p as i64;
        }
        values
    }

    /// Runs one image of exactly [`Self::image_len`] in-range bytes.
    pub fn run_one(&self, image: &[u8], trace: bool) -> Inference {
        let i = &self.model.input;
        let steps = self.input_steps();
        let values = self.input_values(image);
        let mut map = Map {
            shape: MapShape {
                height: i.height,
                width: i.width,
                channels: i.channels,
            },
            steps: steps as u32,
            values,
        };
        let mut traces = Vec::new();
        for (layer, plan) in self.model.layers.iter().zip(&self.plans) {
            let (out, acc_seen, membrane_seen) = self.run_layer(layer, plan, &map);
            if trace {
                traces.push(LayerTrace {
                    shape: out.shape,
                    steps: out.steps,
                    values: out.values.clone(),
                    acc_seen,
                    membrane_seen,
                });
            }
            map = out;
        }
        let c = map.shape.channels as usize;
        let mut logits = vec![0i64; c];
        for chunk in map.values.chunks(c) {
            for (l, v) in logits.iter_mut().zip(chunk) {
                *l += v;
            }
        }
        Inference {
            class: argmax(&logits),
            logits,
            trace: trace.then_some(traces),
        }
    }

    /// The synaptic currents of layer `index` for every output position and input step,
    /// `[position][step][channel]`, given that layer's input map `[position][step][channel]`.
    /// Used to calibrate random models.
    pub fn currents(&self, index: usize, input: &[i64], steps: u32) -> Vec<i64> {
        let plan = &self.plans[index];
        let map = Map {
            shape: plan.geo.input,
            steps,
            values: input.to_vec(),
        };
        synaptic(plan, &map)
    }

    /// Output map of layer `index` (after pooling) and the step count stored per position.
    pub fn layer_output(&self, index: usize, input: &[i64], steps: u32) -> (Vec<i64>, u32) {
        let plan = &self.plans[index];
        let map = Map {
            shape: plan.geo.input,
            steps,
            values: input.to_vec(),
        };
        let (out, _, _) = self.run_layer(&self.model.layers[index], plan, &map);
        (out.values, out.steps)
    }

    fn run_layer(&self, layer: &Layer, plan: &Plan, input: &Map) -> (Map, Range, Option<Range>) {
        let acc = synaptic(plan, input);
        let acc_seen = acc
            .iter()
            .fold(None, |r: Option<Range>, &v| {
                Some(r.map_or(Range::point(v), |r| r.hull(Range::point(v))))
            })
            .unwrap_or(Range::point(0));
        let t = self.model.time_steps;
        let syn = plan.geo.synaptic;
        let c = syn.channels as usize;
        let in_steps = input.steps as usize;
        let out_steps = layer.neuron.output_steps(t) as usize;
        let mut out = vec![0i64; syn.positions() * out_steps * c];
        let mut membrane_seen: Option<Range> = None;
        for pos in 0..syn.positions() {
            for ch in 0..c {
                let at = |step: usize| acc[(pos * in_steps + step) * c + ch];
                // Direct encoding repeats the pixel layer's one input step; TSA layers get no
                // input after the last step.
                let repeated = |step: usize| at(step.min(in_steps - 1));
                let once = |step: usize| if step < in_steps { at(step) } else { 0 };
                let mut put = |step: usize, v: i64| out[(pos * out_steps + step) * c + ch] = v;
                let seen = match &layer.neuron {
                    Neuron::Lif(lif) => Some(run_lif(lif, ch, t, repeated, put)),
                    Neuron::Tsa(tsa) => Some(run_tsa(tsa, ch, t, once, put).1),
                    Neuron::TsaReadout { bias } => {
                        let (u, seen) = run_readout(bias[ch] as i64, t, once);
                        put(0, u);
                        Some(seen)
                    }
                    Neuron::None { bias } => {
                        for s in 0..t as usize {
                            put(s, repeated(s) + bias[ch] as i64);
                        }
                        None
                    }
                };
                if let Some(r) = seen {
                    membrane_seen = Some(membrane_seen.map_or(r, |m| m.hull(r)));
                }
            }
        }
        let map = Map {
            shape: syn,
            steps: out_steps as u32,
            values: out,
        };
        let map = match layer.pool {
            Some(p) => pool(&map, p),
            None => map,
        };
        (map, acc_seen, membrane_seen)
    }
}

fn plan(layer: &Layer, geo: LayerGeometry) -> Plan {
    let n = geo.fan_in;
    let cout = geo.synaptic.channels as usize;
    let w = weight_values(layer, n * cout);
    if layer.is_binary() && geo.input_min >= 0 {
        let words = n.div_ceil(64);
        let mut signs = vec![0u64; words * cout];
        for c in 0..cout {
            for j in 0..n {
                if w[c * n + j] > 0 {
                    signs[c * words + j / 64] |= 1 << (j % 64);
                }
            }
        }
        Plan {
            geo,
            signs,
            words,
            ints: Vec::new(),
        }
    } else {
        Plan {
            geo,
            signs: Vec::new(),
            words: 0,
            ints: w,
        }
    }
}

/// Gathers the window of output position (oy, ox) at one input step into `xs` (zero padded).
fn gather(geo: &LayerGeometry, input: &Map, step: usize, oy: usize, ox: usize, xs: &mut [i64]) {
    let cin = geo.input.channels as usize;
    let (h, w) = (geo.input.height as i64, geo.input.width as i64);
    let steps = input.steps as usize;
    let mut j = 0;
    for ky in 0..geo.window_height as i64 {
        for kx in 0..geo.window_width as i64 {
            let y = (oy * geo.stride as usize) as i64 - geo.pad as i64 + ky;
            let x = (ox * geo.stride as usize) as i64 - geo.pad as i64 + kx;
            if y < 0 || y >= h || x < 0 || x >= w {
                xs[j..j + cin].fill(0);
            } else {
                let base = ((y * w + x) as usize * steps + step) * cin;
                xs[j..j + cin].copy_from_slice(&input.values[base..base + cin]);
            }
            j += cin;
        }
    }
}

/// Synaptic currents `[position][input step][channel]`.
fn synaptic(plan: &Plan, input: &Map) -> Vec<i64> {
    let geo = &plan.geo;
    let syn = geo.synaptic;
    let cout = syn.channels as usize;
    let n = geo.fan_in;
    let steps = input.steps as usize;
    let mut acc = vec![0i64; syn.positions() * steps * cout];
    let mut xs = vec![0i64; n];
    let planes = geo.input_bits as usize;
    let mut bits = vec![0u64; planes * plan.words];
    for oy in 0..syn.height as usize {
        for ox in 0..syn.width as usize {
            let pos = oy * syn.width as usize + ox;
            for s in 0..steps {
                gather(geo, input, s, oy, ox, &mut xs);
                let dst = &mut acc[(pos * steps + s) * cout..][..cout];
                if plan.popcount() {
                    binary_dot(plan, &xs, planes, &mut bits, dst);
                } else {
                    integer_dot(plan, &xs, dst);
                }
            }
        }
    }
    acc
}

fn binary_dot(plan: &Plan, xs: &[i64], planes: usize, bits: &mut [u64], dst: &mut [i64]) {
    let words = plan.words;
    bits.fill(0);
    for (j, &x) in xs.iter().enumerate() {
        for b in 0..planes {
            bits[b * words + j / 64] |= ((x as u64 >> b) & 1) << (j % 64);
        }
    }
    let totals: Vec<i64> = (0..planes)
        .map(|b| {
            bits[b * words..][..words]
                .iter()
                .map(|w| w.count_ones() as i64)
                .sum()
        })
        .collect();
    for (c, d) in dst.iter_mut().enumerate() {
        let w = &plan.signs[c * words..][..words];
        let mut acc = 0i64;
        for (b, total) in totals.iter().enumerate() {
            let x = &bits[b * words..][..words];
            let agree: i64 = x
                .iter()
                .zip(w)
                .map(|(x, w)| (x & w).count_ones() as i64)
                .sum();
            acc += (2 * agree - total) << b;
        }
        *d = acc;
    }
}

fn integer_dot(plan: &Plan, xs: &[i64], dst: &mut [i64]) {
    let n = xs.len();
    let nz: Vec<(usize, i64)> = xs
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, x)| x != 0)
        .collect();
    for (c, d) in dst.iter_mut().enumerate() {
        let w = &plan.ints[c * n..][..n];
        *d = nz.iter().map(|&(j, x)| x * w[j]).sum();
    }
}

/// Applies a leak to the carried membrane.
pub fn leak(kind: Leak, v: i64) -> i64 {
    match kind {
        Leak::None => v,
        Leak::Shift { shift } => v >> shift,
        Leak::Decay { shift } => v - (v >> shift),
    }
}

/// Runs one LIF channel for `t` steps; returns the range of membrane values computed.
fn run_lif(
    lif: &Lif,
    ch: usize,
    t: u32,
    current: impl Fn(usize) -> i64,
    mut emit: impl FnMut(usize, i64),
) -> Range {
    let neg = lif.polarity.as_bytes()[ch] == b'-';
    let bias = lif.bias[ch] as i64;
    let thr = lif.threshold[ch] as i64;
    let mut carried = 0i64;
    let mut seen = Range::point(0);
    for s in 0..t as usize {
        let a = current(s);
        let i = if neg { -a } else { a } + bias;
        let v = leak(lif.leak, carried) + i;
        let fire = match lif.fire {
            FireRule::Ge => v >= thr,
            FireRule::Gt => v > thr,
        };
        carried = match (fire, lif.reset) {
            (false, _) => v,
            (true, Reset::Hard) => 0,
            (true, Reset::Subtract) => v - thr,
        };
        seen = seen.hull(Range::point(v)).hull(Range::point(carried));
        emit(s, fire as i64);
    }
    seen
}

/// Runs one TSA channel for `t + silent` local steps (see [`Tsa`]); returns the final
/// membrane and the range of membrane values computed.
fn run_tsa(
    tsa: &Tsa,
    ch: usize,
    t: u32,
    current: impl Fn(usize) -> i64,
    mut emit: impl FnMut(usize, i64),
) -> (i64, Range) {
    let neg = tsa.polarity.as_bytes()[ch] == b'-';
    let bias = tsa.bias[ch] as i64;
    let thr = tsa.threshold[ch] as i64;
    let clamp = tsa.clamp[ch] as i64;
    let silent = tsa.silent as usize;
    let (mut u, mut fired) = (0i64, false);
    let mut seen = Range::point(0);
    for k in 0..t as usize + silent {
        u *= 2;
        seen = seen.hull(Range::point(u));
        if k < t as usize {
            let a = current(k);
            u += if neg { -a } else { a } + if k == 0 { bias } else { 0 };
            seen = seen.hull(Range::point(u));
        }
        u = u.clamp(-clamp, clamp);
        if k >= silent {
            let may_go_negative = match tsa.negative {
                NegativeSpikes::AfterPositive => fired,
                NegativeSpikes::Always => true,
            };
            let s = if u >= thr {
                fired = true;
                1
            } else if u < -thr && may_go_negative {
                -1
            } else {
                0
            };
            u -= 2 * thr * s;
            seen = seen.hull(Range::point(u));
            emit(k - silent, s);
        }
    }
    (u, seen)
}

/// Runs one TSA readout channel: `u ← 2u + I` for `t` steps, the bias at the first; returns
/// the final `u` and the range of every `u`.
fn run_readout(bias: i64, t: u32, current: impl Fn(usize) -> i64) -> (i64, Range) {
    let mut u = 0i64;
    let mut seen = Range::point(0);
    for k in 0..t as usize {
        u = 2 * u + current(k) + if k == 0 { bias } else { 0 };
        seen = seen.hull(Range::point(u));
    }
    (u, seen)
}

fn pool(map: &Map, kind: Pool) -> Map {
    let (h, w) = (map.shape.height as usize / 2, map.shape.width as usize / 2);
    let c = map.shape.channels as usize;
    let steps = map.steps as usize;
    let src_w = map.shape.width as usize;
    let mut out = vec![0i64; h * w * steps * c];
    for y in 0..h {
        for x in 0..w {
            for s in 0..steps {
                for ch in 0..c {
                    let v = |dy: usize, dx: usize| {
                        map.values[(((2 * y + dy) * src_w + 2 * x + dx) * steps + s) * c + ch]
                    };
                    let four = [v(0, 0), v(0, 1), v(1, 0), v(1, 1)];
                    out[((y * w + x) * steps + s) * c + ch] = match kind {
                        Pool::Or => four.iter().copied().max().unwrap_or(0),
                        Pool::Sum => four.iter().sum(),
                    };
                }
            }
        }
    }
    Map {
        shape: MapShape {
            height: h as u32,
            width: w as u32,
            channels: map.shape.channels,
        },
        steps: map.steps,
        values: out,
    }
}

/// Index of the largest value; the lowest index wins ties (the hardware head's rule, which the
/// trainer's float classes follow too).
pub fn argmax<T: PartialOrd>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests;
