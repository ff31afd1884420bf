//! Shapes derived from the IR: per layer, the input map, the synaptic output map, the pooled
//! output map, the fan-in and the range of the values a layer consumes.
//!
//! These functions assume a model that passed [`crate::validate`]; validation itself uses
//! the `checked` variants that report instead of assuming.

use crate::ir::{Layer, Model, Padding, Pool, Synapse};

/// Height × width × channels of a feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapShape {
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Channels.
    pub channels: u32,
}

impl MapShape {
    /// Number of positions (rows × columns).
    pub fn positions(&self) -> usize {
        self.height as usize * self.width as usize
    }
    /// Number of values (positions × channels).
    pub fn len(&self) -> usize {
        self.positions() * self.channels as usize
    }
    /// Whether the map holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one layer consumes and produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerGeometry {
    /// The input feature map.
    pub input: MapShape,
    /// The map after the synaptic operation and neuron (before pooling).
    pub synaptic: MapShape,
    /// The map after pooling (equal to `synaptic` without pooling).
    pub output: MapShape,
    /// Window size: k (conv) or the input map's height/width (dense, see `window_*`).
    pub window_height: u32,
    /// Window width.
    pub window_width: u32,
    /// Stride (1 for dense).
    pub stride: u32,
    /// Zero padding on each side (0 for dense).
    pub pad: u32,
    /// Inputs per output value: window height × width × input channels.
    pub fan_in: usize,
    /// Smallest input value (0, or −1 for ternary spikes, −4 for sum-pooled ternary spikes).
    pub input_min: i64,
    /// Largest input value (pixels: 2^bits − 1; spikes: 1; sum-pooled spikes: 4).
    pub input_max: i64,
    /// Bits of one input value: unsigned when `input_min` is 0, two's complement otherwise.
    pub input_bits: u32,
    /// Steps per input value: T, except 1 for a pixel layer whose image is the same at every
    /// step (direct and first-step encodings; per-step frames give it T).
    pub input_steps: u32,
    /// Steps the neuron runs per position: `T`, or `T + silent` for a TSA neuron.
    pub local_steps: u32,
    /// Whether this is the first layer, which reads pixels.
    pub is_pixel_layer: bool,
    /// Whether the synaptic op is dense (fully connected) rather than a convolution.
    pub dense: bool,
}

impl LayerGeometry {
    /// Whether the synaptic op is dense.
    pub fn is_dense(&self) -> bool {
        self.dense
    }
}

/// Output size of a convolution along one axis, or `None` if the window does not fit.
pub fn conv_out_size(n: u32, kernel: u32, stride: u32, padding: Padding) -> Option<u32> {
    let pad = match padding {
        Padding::Same => (kernel - 1) / 2,
        Padding::Valid => 0,
    };
    let span = n + 2 * pad;
    if span < kernel || stride == 0 {
        return None;
    }
    Some((span - kernel) / stride + 1)
}

/// The map a synaptic op produces from `input`, or `None` when the kernel does not fit.
pub fn synaptic_shape(input: MapShape, synapse: &Synapse) -> Option<MapShape> {
    match *synapse {
        Synapse::Conv {
            out_channels,
            kernel,
            stride,
            padding,
        } => Some(MapShape {
            height: conv_out_size(input.height, kernel, stride, padding)?,
            width: conv_out_size(input.width, kernel, stride, padding)?,
            channels: out_channels,
        }),
        Synapse::Dense { out_features } => Some(MapShape {
            height: 1,
            width: 1,
            channels: out_features,
        }),
    }
}

/// The map after 2×2 stride-2 pooling (odd last row/column dropped).
pub fn pooled_shape(m: MapShape) -> MapShape {
    MapShape {
        height: m.height / 2,
        width: m.width / 2,
        channels: m.channels,
    }
}

/// Geometry of one layer given its input map and the value range `(min, max)` of its inputs.
pub fn layer_geometry(
    layer: &Layer,
    input: MapShape,
    (input_min, input_max): (i64, i64),
    input_steps: u32,
    time_steps: u32,
    is_pixel_layer: bool,
) -> Option<LayerGeometry> {
    let synaptic = synaptic_shape(input, &layer.synapse)?;
    let output = if layer.pool.is_some() {
        pooled_shape(synaptic)
    } else {
        synaptic
    };
    let (wh, ww, stride, pad) = match layer.synapse {
        Synapse::Conv {
            kernel,
            stride,
            padding,
            ..
        } => {
            let pad = if padding == Padding::Same {
                (kernel - 1) / 2
            } else {
                0
            };
            (kernel, kernel, stride, pad)
        }
        Synapse::Dense { .. } => (input.height, input.width, 1, 0),
    };
    Some(LayerGeometry {
        input,
        synaptic,
        output,
        window_height: wh,
        window_width: ww,
        stride,
        pad,
        fan_in: wh as usize * ww as usize * input.channels as usize,
        input_min,
        input_max,
        input_bits: value_bits(input_min, input_max),
        input_steps,
        local_steps: layer.neuron.local_steps(time_steps),
        is_pixel_layer,
        dense: matches!(layer.synapse, Synapse::Dense { .. }),
    })
}

/// Geometry of every layer, or the index of the first layer whose kernel does not fit its
/// input map.
pub fn try_model_geometry(model: &Model) -> Result<Vec<LayerGeometry>, usize> {
    let mut shape = MapShape {
        height: model.input.height,
        width: model.input.width,
        channels: model.input.channels,
    };
    let mut range = pixel_range(model);
    let mut steps = model.input.encoding.input_maps(model.time_steps);
    let mut out = Vec::with_capacity(model.layers.len());
    for (i, layer) in model.layers.iter().enumerate() {
        let g = layer_geometry(layer, shape, range, steps, model.time_steps, i == 0).ok_or(i)?;
        shape = g.output;
        range = output_range(layer);
        steps = model.time_steps;
        out.push(g);
    }
    Ok(out)
}

/// Geometry of every layer of a validated model.
///
/// # Panics
/// If the model did not pass validation (a kernel larger than its input).
pub fn model_geometry(model: &Model) -> Vec<LayerGeometry> {
    try_model_geometry(model).expect("model_geometry called on a model that failed validation")
}

/// Range of the pixel values.
pub fn pixel_range(model: &Model) -> (i64, i64) {
    (0, (1i64 << model.input.pixel_bits) - 1)
}

/// Range `(min, max)` of the values a spiking layer emits: a spike (0/1 or −1/0/+1), or the
/// sum of four of them after sum pooling; the OR of binary spikes is a spike.
pub fn output_range(layer: &Layer) -> (i64, i64) {
    let max = layer.pool.map_or(1, Pool::max_value);
    if layer.neuron.signed_spikes() {
        (-max, max)
    } else {
        (0, max)
    }
}

/// Bits of one stream value in `[min, max]`: unsigned when `min ≥ 0`, two's complement
/// otherwise (a ternary spike is 2 bits: bit 0 "non-zero", bit 1 "negative").
pub fn value_bits(min: i64, max: i64) -> u32 {
    if min >= 0 {
        bits_unsigned(max as u64)
    } else {
        bits_signed(min, max)
    }
}

/// Bits needed for an unsigned value `v` (at least 1).
pub fn bits_unsigned(v: u64) -> u32 {
    (64 - v.leading_zeros()).max(1)
}

/// Bits needed for a two's-complement value in `[lo, hi]` (at least 1).
pub fn bits_signed(lo: i64, hi: i64) -> u32 {
    let need = |v: i64| -> u32 {
        if v >= 0 {
            65 - v.leading_zeros()
        } else {
            65 - (!v).leading_zeros()
        }
    };
    need(lo).max(need(hi)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bits_cover_range_exactly() {
        assert_eq!(bits_signed(0, 0), 1);
        assert_eq!(bits_signed(-1, 0), 1);
        assert_eq!(bits_signed(0, 1), 2);
        assert_eq!(bits_signed(-128, 127), 8);
        assert_eq!(bits_signed(-129, 0), 9);
        assert_eq!(bits_signed(0, 128), 9);
        assert_eq!(bits_unsigned(255), 8);
        assert_eq!(bits_unsigned(4), 3);
    }

    #[test]
    fn conv_sizes_follow_floor_rule() {
        assert_eq!(conv_out_size(28, 3, 1, Padding::Same), Some(28));
        assert_eq!(conv_out_size(28, 3, 2, Padding::Same), Some(14));
        assert_eq!(conv_out_size(7, 3, 2, Padding::Same), Some(4));
        assert_eq!(conv_out_size(7, 5, 2, Padding::Valid), Some(2));
        assert_eq!(conv_out_size(2, 3, 1, Padding::Valid), None);
    }
}
