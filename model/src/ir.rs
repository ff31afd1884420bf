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
/// The IR version this crate reads and writes.
pub const VERSION: u32 = 1;

/// A complete hardware model: input, time steps, layers and head.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for this crate.
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

/// Input encoding over time steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The same pixels are presented at every time step (the first layer is the encoder).
    Direct,
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
    /// Count of the four spikes (0..=4); the ÷4 of average pooling is folded downstream.
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
}

impl Pool {
    /// Bits of one pooled value.
    pub fn value_bits(self) -> u32 {
        match self {
            Pool::Or => 1,
            Pool::Sum => 3,
        }
    }
    /// Largest pooled value.
    pub fn max_value(self) -> i64 {
        match self {
            Pool::Or => 1,
            Pool::Sum => 4,
        }
    }
}
