//! The hardware model IR, version 1: plain data, serialised as one JSON document.
//!
//! Invariants (enforced by [`crate::validate`], never assumed elsewhere without it):
//! * everything is an integer; nothing here is a float;
//! * tensors are stored in raster order with channels fastest: a feature map is `[y][x][c]`,
//!   conv weights are `[out][ky][kx][in]`, dense weights are `[out][y][x][c]` over the
//!   flattened input map;
//! * binary weights are sign bits, `1` meaning `+1`, packed LSB-first into bytes, written as
//!   lowercase hex (`docs/ir.md` has the exact layout).
//!
//! The semantics of every field are defined by [`crate::golden`].

use serde::{Deserialize, Serialize};

/// The value of [`Model::format`]: identifies a spikeforge hardware-model file.
pub const FORMAT: &str = "spikeforge-hardware-model";
/// The IR version of models without per-step input frames: what this crate writes for them,
/// so that such files (and their hashes) stay as they were.
pub const VERSION: u32 = 1;
/// The IR version that added the `frames` input encoding; this crate reads 1 and 2.
pub const FRAMES_VERSION: u32 = 2;

/// The version a model with this input encoding is written as.
pub fn version_for(encoding: Encoding) -> u32 {
    match encoding {
        Encoding::Direct | Encoding::FirstStep => VERSION,
        Encoding::Frames => FRAMES_VERSION,
    }
}

/// A complete hardware model: input, time steps, layers and head.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`], or [`FRAMES_VERSION`] for a model with per-step input frames
    /// ([`version_for`]).
    pub version: u32,
    /// A human-readable name; also the stem of generated module names (sanitised).
    pub name: String,
    /// Shape and encoding of the input image.
    pub input: InputSpec,
    /// Number of time steps `T ≥ 1` every image is presented for.
    pub time_steps: u32,
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// What turns the last layer's output into a class.
    pub head: Head,
}

/// The input image: unsigned pixels, raster order, channels fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Channels per pixel.
    pub channels: u32,
    /// Bits per unsigned pixel value (1..=8).
    pub pixel_bits: u32,
    /// How pixels become per-step inputs.
    pub encoding: Encoding,
}

impl InputSpec {
    /// How far an 8-bit image pixel is shifted right to become this input's pixel: a still
    /// image keeps its top `pixel_bits` bits (a model with 2-bit pixels sees 0..=3 where the
    /// image has 0..=255); event frames are made at their own width and are not shifted.
    pub fn image_shift(&self) -> u32 {
        match self.encoding {
            Encoding::Frames => 0,
            Encoding::Direct | Encoding::FirstStep => 8 - self.pixel_bits.clamp(1, 8),
        }
    }

    /// 8-bit images (or frames) as this input takes them, in place.
    pub fn quantise_image(&self, pixels: &mut [u8]) {
        let shift = self.image_shift();
        if shift > 0 {
            pixels.iter_mut().for_each(|p| *p >>= shift);
        }
    }

    /// [`InputSpec::quantise_image`] of borrowed images: copied only when it shifts them.
    pub fn quantised<'a>(&self, pixels: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.image_shift() == 0 {
            return pixels.into();
        }
        let mut owned = pixels.to_vec();
        self.quantise_image(&mut owned);
        owned.into()
    }

    /// The offset of the first value above `2^pixel_bits − 1`, if any.
    pub fn first_out_of_range(&self, pixels: &[u8]) -> Option<usize> {
        let max = (1u32 << self.pixel_bits) - 1;
        pixels.iter().position(|&p| u32::from(p) > max)
    }
}

/// Input encoding over time steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The same pixels are presented at every time step (the first layer is the encoder).
    /// LIF-coded models use it.
    Direct,
    /// The pixels drive the first layer's current at its first local step only, and nothing
    /// after: the analog `I_1` of CSS conversion (register C7). TSA-coded models use it.
    FirstStep,
    /// Each time step has its own input map (framed event data): an image is `T` frames,
    /// byte `(t, y, x, c)` at `((t·H + y)·W + x)·C + c`, and step `t` of the first layer
    /// sees frame `t`. LIF-coded models; IR version 2.
    Frames,
}

impl Encoding {
    /// Input maps per image: `T` for per-step frames, one for an image shown at every step
    /// or at the first.
    pub fn input_maps(self, time_steps: u32) -> u32 {
        match self {
            Encoding::Frames => time_steps,
            Encoding::Direct | Encoding::FirstStep => 1,
        }
    }
}

/// One layer: a synaptic operation, its weights, a neuron and optional pooling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Layer name, unique in the model (used in reports and error messages).
    pub name: String,
    /// The synaptic operation.
    pub synapse: Synapse,
    /// The weights of the synaptic operation.
    pub weights: Weights,
    /// The neuron applied to the synaptic current of each output channel.
    pub neuron: Neuron,
    /// Optional 2×2 stride-2 pooling of the neuron's spikes.
    #[serde(default)]
    pub pool: Option<Pool>,
}

/// A synaptic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Synapse {
    /// k×k convolution over the input map.
    Conv {
        /// Output channels.
        out_channels: u32,
        /// Kernel size k ∈ {1, 3, 5}.
        kernel: u32,
        /// Stride ∈ {1, 2}.
        stride: u32,
        /// Zero padding.
        padding: Padding,
    },
    /// Fully connected over the whole (flattened) input map; the output map is 1×1.
    Dense {
        /// Output features (channels of the 1×1 output map).
        out_features: u32,
    },
}

/// Convolution padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// `(k−1)/2` zeros on every side: output size `⌊(n + 2p − k)/s⌋ + 1`.
    Same,
    /// No padding: output size `⌊(n − k)/s⌋ + 1`.
    Valid,
}

/// Weights of a synaptic operation, in the layout given in the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Weights {
    /// ±1 weights as sign bits (1 = +1), packed LSB-first, lowercase hex.
    Binary {
        /// Packed sign bits; `2·⌈n/8⌉` hex digits for `n` weights, unused high bits zero.
        signs: String,
    },
    /// Signed integer weights of a stated width.
    Integer {
        /// Two's-complement width, 2..=16.
        bits: u32,
        /// One value per weight.
        values: Vec<i32>,
    },
}

/// The neuron after the synaptic operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Neuron {
    /// Leaky integrate-and-fire with per-channel integer parameters.
    Lif(Lif),
    /// No neuron: the layer outputs `current + bias` at every step (output layer only).
    None {
        /// Per-channel bias added to the synaptic current at every step.
        bias: Vec<i32>,
    },
    /// Ternary self-amplifying neuron of CSS coding: spikes −1/0/+1.
    Tsa(Tsa),
    /// The non-firing output layer of a TSA-coded model: per channel `u ← 2u + I` over the `T`
    /// input steps (`I = current`, plus `bias` at the first step only), with `u` starting at
    /// 0; the layer outputs `u` once, after the last step (one value per position, not per
    /// step). Up to the positive factor `2^(T−1)` this decodes the weighted spike trains.
    TsaReadout {
        /// Per-channel bias, injected once at the first step.
        bias: Vec<i32>,
    },
}

/// Ternary self-amplifying (TSA) neuron, the integer golden model of methods-spec §3.2. Per
/// channel `c` and local step `k = 1 … T + silent`, with `u = 0` and `fired = false` at the
/// start of every image and position:
///
/// 1. `u ← 2u` (self-amplification: the membrane doubles before integration);
/// 2. if `k ≤ T` (the layer has input): `u ← u + I_k`, `I_k = (neg[c] ? −acc_k : acc_k)`,
///    plus `bias[c]` at `k = 1` only (register C5);
/// 3. `u ← clamp(u, −clamp[c], clamp[c])`;
/// 4. if `k > silent`: fire `+1` when `u ≥ θ` (`θ = threshold[c]`) and set `fired`; else fire
///    `−1` when `u < −θ` and negative spikes are allowed (see [`NegativeSpikes`]); else `0`.
///    A spike `s` subtracts `2θ·s` from `u`. The spike is output step `m = k − silent`.
///
/// Spike `m` carries weight `2^−(m−1)` in the next layer's decoding, which the next layer's
/// doubling applies by itself. The clamp never changes a spike when `clamp[c] ≥ 4θ + M` with
/// `M` the largest `|I_k|` (register C9's output-preserving clamp); validation requires that.
/// methods-spec §3.2 states `2θ + M`, which changes spikes when `M` is small against `θ`
/// (a clamped `u = C` resets to `C − 2θ`, and `2(C − 2θ) − M` must stay `≥ C`); the golden
/// model's tests show both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tsa {
    /// Per-channel bias, injected once at the first local step.
    pub bias: Vec<i32>,
    /// Per-channel compare level `θ ≥ 1`: `+1` at `u ≥ θ`, `−1` at `u < −θ`, reset by `2θ`.
    pub threshold: Vec<i32>,
    /// Per-channel polarity, as in [`Lif::polarity`].
    pub polarity: String,
    /// Per-channel membrane clamp bound (register C9).
    pub clamp: Vec<i32>,
    /// Silent steps `d ∈ 0..=2` before the first output (register C2: 1; 0 for the pixel layer,
    /// whose whole input is known at its first step, register C7).
    pub silent: u32,
    /// When a `−1` may be emitted (register C4).
    pub negative: NegativeSpikes,
}

/// When a TSA neuron may emit a negative spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegativeSpikes {
    /// Only after the neuron has fired `+1` for this image and position: the 1-bit ReLU guard,
    /// which keeps the decoded output ≥ 0 (register C4 default).
    AfterPositive,
    /// Whenever `u < −θ`: the neuron codes the identity rather than ReLU.
    Always,
}

/// LIF parameters. Per step `t` and channel `c`:
/// `I = (neg[c] ? −acc : acc) + bias[c]`, `v = leak(v') + I`, fire when `v ≥ thr[c]`
/// (or `>`), then `v' = reset(v)`; `v'` starts at 0 for every image and position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lif {
    /// Per-channel bias added at every step.
    pub bias: Vec<i32>,
    /// Per-channel firing threshold.
    pub threshold: Vec<i32>,
    /// Per-channel polarity: `+` uses the synaptic current as is, `-` negates it
    /// (a negative folded BatchNorm scale). One character per channel.
    pub polarity: String,
    /// Leak applied to the membrane carried from the previous step.
    pub leak: Leak,
    /// What happens to the membrane after a spike.
    pub reset: Reset,
    /// Comparison against the threshold.
    pub fire: FireRule,
}

/// Membrane leak, applied to the previous step's post-reset membrane. Shifts are arithmetic
/// (floor toward −∞).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Leak {
    /// Integrate-and-fire: `v' ` is kept.
    None,
    /// `v' >> shift`: decay factor `τ = 2^−shift` (STBP's τ = 0.25 is `shift = 2`).
    Shift {
        /// 1..=15.
        shift: u32,
    },
    /// `v' − (v' >> shift)`: decay factor `τ = 1 − 2^−shift`.
    Decay {
        /// 1..=15.
        shift: u32,
    },
}

/// Reset after a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// Membrane set to 0.
    Hard,
    /// Threshold subtracted from the membrane.
    Subtract,
}

/// Firing comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireRule {
    /// Fire when `v ≥ threshold`.
    Ge,
    /// Fire when `v > threshold` (the STBP convention).
    Gt,
}

/// 2×2 stride-2 pooling of spike maps, per time step; an odd last row/column is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pool {
    /// OR of the four spikes (max pooling of 0/1 spikes).
    Or,
    /// Sum of the four spikes (0..=4 for binary spikes, −4..=4 for ternary ones); the ÷4 of
    /// average pooling is folded downstream.
    Sum,
}

/// The classification head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Head {
    /// Logit `c` = sum over positions and time steps of the last layer's output channel `c`;
    /// class = argmax, lowest index on ties.
    GapArgmax,
}

impl Layer {
    /// Output channels of the synaptic operation.
    pub fn out_channels(&self) -> u32 {
        match self.synapse {
            Synapse::Conv { out_channels, .. } => out_channels,
            Synapse::Dense { out_features } => out_features,
        }
    }

    /// Whether the weights are binary (±1).
    pub fn is_binary(&self) -> bool {
        matches!(self.weights, Weights::Binary { .. })
    }

    /// Whether the neuron belongs to TSA coding (ternary spikes or the TSA readout).
    pub fn is_tsa(&self) -> bool {
        match self.neuron {
            Neuron::Tsa(_) | Neuron::TsaReadout { .. } => true,
            Neuron::Lif(_) | Neuron::None { .. } => false,
        }
    }
}

impl Neuron {
    /// Whether the layer's outputs are spikes (binary or ternary), not values.
    pub fn spikes(&self) -> bool {
        match self {
            Neuron::Lif(_) | Neuron::Tsa(_) => true,
            Neuron::None { .. } | Neuron::TsaReadout { .. } => false,
        }
    }

    /// Whether its spikes can be negative (ternary), so that a spike map is signed.
    pub fn signed_spikes(&self) -> bool {
        match self {
            Neuron::Tsa(_) => true,
            Neuron::Lif(_) | Neuron::None { .. } | Neuron::TsaReadout { .. } => false,
        }
    }

    /// Steps the neuron runs for an image of `time_steps` input steps: TSA's silent steps
    /// come after the input.
    pub fn local_steps(&self, time_steps: u32) -> u32 {
        match self {
            Neuron::Tsa(tsa) => time_steps + tsa.silent,
            Neuron::Lif(_) | Neuron::None { .. } | Neuron::TsaReadout { .. } => time_steps,
        }
    }

    /// Output values per position: one per step, or one in all for the TSA readout.
    pub fn output_steps(&self, time_steps: u32) -> u32 {
        match self {
            Neuron::TsaReadout { .. } => 1,
            Neuron::Lif(_) | Neuron::None { .. } | Neuron::Tsa(_) => time_steps,
        }
    }
}

/// How a model's hidden layers code values in spikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Binary spikes from LIF neurons (ALBSNN), direct pixel encoding.
    Lif,
    /// Ternary spikes from TSA neurons (CSS), pixels at the first step, a TSA readout.
    Tsa,
}

impl Model {
    /// The model's coding, decided by its first layer (validation requires every layer to
    /// agree).
    pub fn coding(&self) -> Coding {
        match self.layers.first() {
            Some(l) if l.is_tsa() => Coding::Tsa,
            _ => Coding::Lif,
        }
    }
}

impl Pool {
    /// Largest pooled value.
    pub fn max_value(self) -> i64 {
        match self {
            Pool::Or => 1,
            Pool::Sum => 4,
        }
    }
}
