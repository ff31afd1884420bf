//! Export: a trained network becomes an integer hardware model (methods-spec §3.1).
//!
//! Per hidden layer the float neuron sees `z = A·acc + B` with `acc` the integer synaptic
//! current (±1 or integer weights on integer inputs) and `A`, `B` folding BatchNorm, α or the
//! quantisation step, and the input unit (pixels /255, average pooling /4). Firing `z > θ`
//! becomes `s·acc + bias > thr` with `s = sign A` (the IR's polarity), `bias = round(B/|A|)`
//! and `thr = ⌊(θ − B)/|A|⌋ + bias`: exact at T = 1, and at T > 1 exact on the first step,
//! with the leak's rounding and the bias's rounding as the only approximations after it.

use spikeforge_model::ir::{
    self, Encoding, FireRule, Head, InputSpec, Layer, Leak, Lif, Model, Neuron, Pool, Reset,
    Synapse, Weights,
};
use spikeforge_model::validate::MAX_PARAM;
use spikeforge_model::weights::pack_signs;
use thiserror::Error;

use crate::net::{Net, Precision};
use crate::ops::{PoolKind, ResetKind};

/// Why a network cannot be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The decay τ has no shift form.
    #[error("the LIF decay τ = {0} has no integer form: use 1 (no leak), 2^-k (e.g. 0.25) or 1 − 2^-k (e.g. 0.75)")]
    Leak(f32),
    /// The exported model does not validate (a bug or an extreme network).
    #[error("the exported model is invalid: {0}")]
    Invalid(String),
}

/// The IR leak of a decay factor τ.
pub fn leak_of(tau: f32, time_steps: usize) -> Result<Leak, ExportError> {
    if time_steps == 1 {
        // The carried membrane is never used at T = 1; keep the default shift.
        return Ok(Leak::Shift { shift: 2 });
    }
    if tau == 1.0 {
        return Ok(Leak::None);
    }
    for k in 1..=15u32 {
        let p = (-(k as f32)).exp2();
        if tau == p {
            return Ok(Leak::Shift { shift: k });
        }
        if tau == 1.0 - p {
            return Ok(Leak::Decay { shift: k });
        }
    }
    Err(ExportError::Leak(tau))
}

/// Largest input value of layer `l` in integer units.
pub(crate) fn input_max(net: &Net, l: usize) -> i64 {
    if l == 0 {
        (1 << net.frames.unwrap_or(8)) - 1
    } else if net.specs[l - 1].pool == Some(PoolKind::Avg) {
        4
    } else {
        1
    }
}

/// Integer weights of a layer, as the IR holds them and as values.
fn integer_weights(net: &Net, l: usize) -> (Weights, Vec<i64>) {
    let s = &net.specs[l];
    let w = net.weights(l);
    let scales = net.weight_scales(l);
    match net.params[l].precision {
        Precision::Binary => {
            let bits: bitvec::vec::BitVec<u8, bitvec::order::Lsb0> =
                w.iter().map(|&v| v >= 0.0).collect();
            let values = w.iter().map(|&v| if v >= 0.0 { 1 } else { -1 }).collect();
            (
                Weights::Binary {
                    signs: pack_signs(&bits),
                },
                values,
            )
        }
        Precision::Full => {
            let qmax = (1i64 << (s.int_bits - 1)) - 1;
            let values: Vec<i64> = w
                .rows()
                .into_iter()
                .zip(&scales)
                .flat_map(|(row, &q)| {
                    row.iter()
                        .map(move |&v| {
                            if q > 0.0 {
                                ((v / q).round() as i64).clamp(-qmax, qmax)
                            } else {
                                0
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            (
                Weights::Integer {
                    bits: s.int_bits,
                    values: values.iter().map(|&v| v as i32).collect(),
                },
                values,
            )
        }
    }
}

fn clamp_param(v: f64) -> i32 {
    v.clamp(-(MAX_PARAM as f64), MAX_PARAM as f64) as i32
}

/// The LIF parameters of a hidden layer.
fn lif_params(net: &Net, l: usize, values: &[i64]) -> Result<Lif, ExportError> {
    let s = &net.specs[l];
    let (_, bn_b) = net.params[l]
        .bn
        .as_ref()
        .expect("hidden layers have BatchNorm")
        .eval_affine();
    // `A` (one unit of integer current in float) and the rounded per-step bias, as the
    // fake-quantised network evaluates them.
    let grid = net.step_grid(l);
    let xmax = input_max(net, l);
    let vth = net.lif.vth as f64;
    let (mut bias, mut thr, mut pol) = (Vec::new(), Vec::new(), String::new());
    for c in 0..s.out {
        let (a, step_bias) = grid[c];
        let b = bn_b[c];
        let max_acc: i64 = values[c * s.fan_in..(c + 1) * s.fan_in]
            .iter()
            .map(|v| v.abs())
            .sum::<i64>()
            * xmax;
        let (bi, th, neg) = if a == 0.0 || !a.is_finite() {
            // Constant neuron: fires always or never, whatever the input.
            let fires = if net.lif.strict { b > vth } else { b >= vth };
            (0, if fires { -(max_acc + 1) } else { max_acc + 1 }, false)
        } else {
            let q = (vth - b) / a.abs();
            let cut = if net.lif.strict { q.floor() } else { q.ceil() };
            if net.time_steps == 1 {
                // Exact, and clamped to the reachable range so no width is wasted.
                (
                    0,
                    (cut.clamp(-(max_acc + 1) as f64, (max_acc + 1) as f64)) as i64,
                    a < 0.0,
                )
            } else {
                // The per-step shift on the integer grid, as the fake-quantised network
                // evaluates it (`Net::step_bias_shift`); the membrane is then the float one
                // over |A|, and it crosses θ/|A| where the float one crosses θ.
                let q = vth / a.abs();
                let cut = if net.lif.strict { q.floor() } else { q.ceil() };
                (step_bias, cut as i64, a < 0.0)
            }
        };
        bias.push(clamp_param(bi as f64));
        thr.push(clamp_param(th as f64));
        pol.push(if neg { '-' } else { '+' });
    }
    Ok(Lif {
        bias,
        threshold: thr,
        polarity: pol,
        leak: leak_of(net.lif.tau, net.time_steps)?,
        reset: match net.lif.reset {
            ResetKind::Hard => Reset::Hard,
            ResetKind::Subtract => Reset::Subtract,
        },
        fire: if net.lif.strict {
            FireRule::Gt
        } else {
            FireRule::Ge
        },
    })
}

/// The name an exported model of a dataset gets (`fashion_mnist_albsnn`).
pub fn model_name(dataset: &str) -> String {
    format!("{}_albsnn", dataset.replace('-', "_"))
}

/// Exports the network (in evaluation mode: running BatchNorm statistics) as a hardware model.
pub fn export(net: &Net, name: &str) -> Result<Model, ExportError> {
    let mut layers = Vec::new();
    for (l, s) in net.specs.iter().enumerate() {
        let (weights, values) = integer_weights(net, l);
        let neuron = if s.last {
            let head = net.head_unit();
            Neuron::None {
                bias: net.params[l]
                    .bias
                    .iter()
                    .map(|&b| clamp_param((b as f64 / head).round()))
                    .collect(),
            }
        } else {
            Neuron::Lif(lif_params(net, l, &values)?)
        };
        let (name, synapse, pool) = ir_shape(s, l);
        layers.push(Layer {
            name,
            synapse,
            weights,
            neuron,
            pool,
        });
    }
    let encoding = match net.frames {
        None => Encoding::Direct,
        Some(_) => Encoding::Frames,
    };
    assemble(net, name, encoding, net.time_steps as u32, layers).map_err(ExportError::Invalid)
}

/// A validated model of `net`'s input shape (8-bit pixels, or the frames' bits) from its
/// layers; the error lists every problem.
pub(crate) fn assemble(
    net: &Net,
    name: &str,
    encoding: Encoding,
    time_steps: u32,
    layers: Vec<Layer>,
) -> Result<Model, String> {
    let model = Model {
        format: ir::FORMAT.into(),
        version: ir::version_for(encoding),
        name: name.into(),
        input: InputSpec {
            height: net.input.0 as u32,
            width: net.input.1 as u32,
            channels: net.input.2 as u32,
            pixel_bits: net.frames.or(net.input_bits).unwrap_or(8),
            encoding,
        },
        time_steps,
        layers,
        head: Head::GapArgmax,
    };
    spikeforge_model::validate::validate(&model).map_err(|p| {
        p.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok(model)
}

/// The IR name, synaptic operation and pooling of layer `l`.
pub(crate) fn ir_shape(s: &crate::net::LayerSpec, l: usize) -> (String, Synapse, Option<Pool>) {
    let synapse = match s.conv {
        Some((k, stride, padding)) => Synapse::Conv {
            out_channels: s.out as u32,
            kernel: k as u32,
            stride: stride as u32,
            padding,
        },
        None => Synapse::Dense {
            out_features: s.out as u32,
        },
    };
    let kind = if s.conv.is_some() { "conv" } else { "dense" };
    let pool = s.pool.map(|p| match p {
        PoolKind::Max => Pool::Or,
        PoolKind::Avg => Pool::Sum,
    });
    (format!("{kind}{l}"), synapse, pool)
}

/// Golden-model (= RTL) classes of a model on images as the model takes them (narrow pixels
/// already shifted, see [`spikeforge_model::ir::InputSpec::quantise_image`]).
pub fn golden_classes(model: &Model, images: &[u8]) -> Vec<usize> {
    let g = spikeforge_model::Golden::new(model);
    g.run_batch(images, false)
        .expect("images checked against the model")
        .into_iter()
        .map(|i| i.class)
        .collect()
}
