//! CSS conversion (methods-spec §2.6): a trained ReLU ANN becomes a TSA-coded spiking network,
//! first in floating point (the converted SNN), then as an integer hardware model.
//!
//! Per hidden layer `l`, BatchNorm folds into the weights (`W' = a·W`, `b' = c` with `a, c`
//! its evaluation affine), and the layer's activations are normalised by `λ_l`, a percentile
//! of its non-zero ReLU outputs on calibration images (register C6): in units of `θ = λ_l`, a
//! weight from an input of unit `u` (pixel/255, `λ_{l−1}`, or `λ_{l−1}/4` for a sum-pooled
//! input) is `V = W'·u/λ_l` and the bias `B = b'/λ_l`. The float SNN runs the TSA dynamics on
//! `V, B` (threshold `½·2^d` after `d` silent steps, reset by `2^d`). The integer model scales
//! each channel by `q = 2θ_q/2^d` so that the compare level is the integer `θ_q`: weights
//! `round(V·q)`, chosen per channel as large as the weight width allows; binary layers keep
//! their ±1 weights and take `θ_q = round(2^(d−1)/|g|)` from their scale `g = a·α·u/λ_l`.

use ndarray::{s, Array2};
use spikeforge_model::arch::{self, WeightKind};
use spikeforge_model::ir::{self, Encoding, Layer, Model, NegativeSpikes, Neuron, Tsa, Weights};
use spikeforge_model::validate::MAX_PARAM;
use spikeforge_model::weights::pack_signs;
use thiserror::Error;

use crate::export::{assemble, input_max, ir_shape};
use crate::linalg::matmul;
use crate::net::{Net, Precision};
use crate::ops::{self, PoolKind};

/// Conversion settings (methods-spec §3.3, registers C1–C9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CssConfig {
    /// Time steps `T`: output spikes per neuron.
    pub time_steps: u32,
    /// Percentile of non-zero activations that becomes `θ` (C6: 99.9).
    pub percentile: f64,
    /// Silent steps of hidden layers after the first (C2: 1); the pixel layer has none (C7).
    pub silent: u32,
    /// When negative spikes may fire (C4: after a +1).
    pub negative: NegativeSpikes,
}

impl Default for CssConfig {
    fn default() -> Self {
        CssConfig {
            time_steps: 8,
            percentile: 99.9,
            silent: 1,
            negative: NegativeSpikes::AfterPositive,
        }
    }
}

/// Why a network cannot be converted.
#[derive(Debug, Error)]
pub enum ConvertError {
    /// The architecture has a layer CSS cannot express.
    #[error("{0}")]
    Unsupported(String),
    /// The converted model does not validate.
    #[error("the converted model is invalid: {0}")]
    Invalid(String),
}

/// Checks that CSS can convert an architecture: max pooling of signed, weighted spike trains
/// is not defined step by step (methods-spec §2.6.3).
pub fn check_arch(arch_str: &str) -> Result<(), ConvertError> {
    let parsed = arch::parse(arch_str).map_err(|e| ConvertError::Unsupported(e.to_string()))?;
    let max: Vec<usize> = parsed
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.pool == Some(ir::Pool::Or))
        .map(|(i, _)| i + 1)
        .collect();
    if !max.is_empty() {
        return Err(ConvertError::Unsupported(format!(
            "architecture `{arch_str}`: CSS conversion cannot express max pooling (`MP2`, after \
             layer {max:?}): the maximum of signed, weighted ternary spike trains is not known \
             until the last step. Use average pooling instead: write `AP2` for `MP2` (`{}`)",
            arch_str.replace("MP2", "AP2")
        )));
    }
    Ok(())
}

/// One layer of the converted network in θ units.
#[derive(Debug, Clone)]
pub struct CssLayer {
    /// `[out, fan_in]` weights per unit of the input stream.
    pub v: Array2<f32>,
    /// Per-channel bias, injected at the first step.
    pub b: Vec<f32>,
    /// Silent steps (hidden layers).
    pub silent: u32,
    /// For binary layers: per-channel signed scale `g` (`v = g·sign`).
    pub binary_scale: Option<Vec<f32>>,
}

/// A converted network: float weights in θ units, ready to simulate or quantise.
#[derive(Debug, Clone)]
pub struct Converted {
    /// Per layer.
    pub layers: Vec<CssLayer>,
    /// The normalisation `λ` of each hidden layer's channels.
    pub lambdas: Vec<Vec<f32>>,
    /// Settings.
    pub config: CssConfig,
}

/// `p`-th percentile of the positive values.
fn percentile_of_positive(values: impl Iterator<Item = f32>, p: f64) -> f32 {
    let mut v: Vec<f32> = values.filter(|&x| x > 0.0).collect();
    if v.is_empty() {
        return 1.0;
    }
    let k = (((v.len() - 1) as f64) * p / 100.0).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    x.max(1e-6)
}

/// `λ` of every hidden layer's channels on calibration images (evaluation mode): one
/// percentile over the layer (register C6), or one per channel where `per_channel` is set and
/// the next layer has integer weights (a binary layer's ±1 weights cannot absorb a scale per
/// input channel, so a layer feeding one keeps a single `λ`).
pub fn lambdas(net: &mut Net, images: &[u8], percentile: f64, per_channel: bool) -> Vec<Vec<f32>> {
    let (h, w, c) = net.input;
    let per = h * w * c;
    let hidden = net.specs.len() - 1;
    let mut all: Vec<Vec<Vec<f32>>> = (0..hidden)
        .map(|l| vec![Vec::new(); net.specs[l].out])
        .collect();
    for chunk in images.chunks(per * 250) {
        let f = net.forward(chunk, false, true);
        for (l, a) in f.hidden.expect("recorded").into_iter().enumerate() {
            for row in a.rows() {
                for (ch, &x) in row.iter().enumerate() {
                    if x > 0.0 {
                        all[l][ch].push(x);
                    }
                }
            }
        }
    }
    all.into_iter()
        .enumerate()
        .map(|(l, chans)| {
            let next_binary = net.params[l + 1].precision == Precision::Binary;
            if per_channel && !next_binary {
                chans
                    .into_iter()
                    .map(|v| percentile_of_positive(v.into_iter(), percentile))
                    .collect()
            } else {
                let n = chans.len();
                let one = percentile_of_positive(chans.into_iter().flatten(), percentile);
                vec![one; n]
            }
        })
        .collect()
}

/// Folds BatchNorm and normalises a trained ReLU ANN (`net.neuron` is ReLU) by `lambdas`.
pub fn convert(net: &Net, lambdas: &[Vec<f32>], config: CssConfig) -> Converted {
    let mut layers = Vec::new();
    for (l, spec) in net.specs.iter().enumerate() {
        let (w_eff, _) = net.effective_weights(l);
        // The unit of input j: channels are fastest in the IR's input order.
        let cin = spec.in_shape.2;
        let unit: Vec<f32> = (0..spec.fan_in)
            .map(|j| net.input_unit(l) as f32 * if l == 0 { 1.0 } else { lambdas[l - 1][j % cin] })
            .collect();
        let (a, c): (Vec<f32>, Vec<f32>) = match &net.params[l].bn {
            Some(bn) => {
                let (a, c) = bn.eval_affine();
                (
                    a.iter().map(|&x| x as f32).collect(),
                    c.iter().map(|&x| x as f32).collect(),
                )
            }
            None => (vec![1.0; spec.out], net.effective_bias(l)),
        };
        let lambda: Vec<f32> = if spec.last {
            vec![1.0; spec.out]
        } else {
            lambdas[l].clone()
        };
        let mut v = w_eff;
        for (o, mut row) in v.rows_mut().into_iter().enumerate() {
            for (x, u) in row.iter_mut().zip(&unit) {
                *x *= a[o] * u / lambda[o];
            }
        }
        // A binary layer's inputs share one unit (see `lambdas`).
        let binary_scale = (net.params[l].precision == Precision::Binary).then(|| {
            let alpha = net.alpha_of(l);
            (0..spec.out)
                .map(|o| a[o] * alpha[o] * unit[0] / lambda[o])
                .collect()
        });
        layers.push(CssLayer {
            v,
            b: c.iter().zip(&lambda).map(|(&x, l)| x / l).collect(),
            silent: if l == 0 || spec.last {
                0
            } else {
                config.silent
            },
            binary_scale,
        });
    }
    Converted {
        layers,
        lambdas: lambdas.to_vec(),
        config,
    }
}

/// Runs TSA neurons in floating point on currents `[T·R, C]` (time-major, `R` rows per step);
/// returns the `T` output steps, same layout.
fn tsa_float(
    currents: &Array2<f32>,
    t: usize,
    silent: u32,
    negative: NegativeSpikes,
) -> Array2<f32> {
    let rows = currents.nrows() / t;
    let cols = currents.ncols();
    let level = (silent as f32 - 1.0).exp2();
    let mut out = Array2::zeros(currents.raw_dim());
    for r in 0..rows {
        for ch in 0..cols {
            let (mut u, mut fired) = (0f32, false);
            for k in 0..t + silent as usize {
                u = 2.0 * u
                    + if k < t {
                        currents[[k * rows + r, ch]]
                    } else {
                        0.0
                    };
                if k >= silent as usize {
                    let may_neg = fired || negative == NegativeSpikes::Always;
                    let s = if u >= level {
                        fired = true;
                        1.0
                    } else if u < -level && may_neg {
                        -1.0
                    } else {
                        0.0
                    };
                    u -= 2.0 * level * s;
                    out[[(k - silent as usize) * rows + r, ch]] = s;
                }
            }
        }
    }
    out
}

/// Float-SNN logits of a converted network on images (`B·H·W·C` bytes): `[B, classes]`.
pub fn float_logits(net: &Net, conv: &Converted, images: &[u8]) -> Array2<f32> {
    let (h, w, c) = net.input;
    let b = images.len() / (h * w * c);
    let t = conv.config.time_steps as usize;
    let mut x = Array2::from_shape_vec((b * h * w, c), images.iter().map(|&p| p as f32).collect())
        .expect("image shape");
    for (l, (spec, layer)) in net.specs.iter().zip(&conv.layers).enumerate() {
        // The pixel layer has one input step (its current enters at step 1 only).
        let frames = if l == 0 { b } else { b * t };
        let x2 = match spec.geom() {
            Some(g) => ops::im2col(x.view(), &g, frames),
            None => x
                .into_shape_with_order((frames, spec.fan_in))
                .expect("dense input"),
        };
        let y = matmul(x2.view(), layer.v.t());
        let rows = y.nrows() / if l == 0 { 1 } else { t };
        let mut cur = Array2::zeros((rows * t, spec.out));
        cur.slice_mut(s![..y.nrows(), ..]).assign(&y);
        for mut row in cur.slice_mut(s![..rows, ..]).rows_mut() {
            row.iter_mut().zip(&layer.b).for_each(|(v, b)| *v += b);
        }
        if spec.last {
            // Readout: u_T = Σ_k 2^(T−k) I_k, summed over positions (GAP).
            let pos = rows / b;
            let mut logits = Array2::zeros((b, spec.out));
            for k in 0..t {
                let wk = ((t - 1 - k) as f32).exp2();
                for bi in 0..b {
                    let block = cur.slice(s![k * rows + bi * pos..k * rows + (bi + 1) * pos, ..]);
                    let mut lrow = logits.row_mut(bi);
                    for r in block.rows() {
                        lrow.scaled_add(wk, &r);
                    }
                }
            }
            return logits;
        }
        let spk = tsa_float(&cur, t, layer.silent, conv.config.negative);
        x = match spec.pool {
            Some(kind) => {
                let (p, _) =
                    ops::pool_forward(spk.view(), kind, b * t, spec.out_hw.0, spec.out_hw.1);
                // The next layer's weights take pooled sums.
                if kind == PoolKind::Avg {
                    p * 4.0
                } else {
                    p
                }
            }
            None => spk,
        };
    }
    unreachable!("the last layer returns")
}

/// Float-SNN classes on a set of images, in chunks.
pub fn float_classes(net: &Net, conv: &Converted, images: &[u8]) -> Vec<usize> {
    let (h, w, c) = net.input;
    images
        .chunks(h * w * c * 200)
        .flat_map(|chunk| ops::classes(&float_logits(net, conv, chunk)))
        .collect()
}

fn clamp_param(v: f64) -> i32 {
    v.clamp(-(MAX_PARAM as f64), MAX_PARAM as f64) as i32
}

/// Integer weights, per-channel thresholds, biases and polarities of one hidden layer.
struct IntLayer {
    weights: Weights,
    values: Vec<i64>,
    threshold: Vec<i32>,
    bias: Vec<i32>,
    polarity: String,
}

fn quantise_hidden(layer: &CssLayer, bits: u32) -> IntLayer {
    let d = layer.silent as i32;
    // q = 2θ_q / 2^d integer units per θ.
    let q_of = |thr: f64| thr * (2f64).powi(1 - d);
    let (out, fan_in) = layer.v.dim();
    let (mut threshold, mut bias, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut polarity = String::new();
    match &layer.binary_scale {
        Some(g) => {
            for (o, &go) in g.iter().enumerate() {
                let thr = ((2f64).powi(d - 1) / go.abs().max(1e-12) as f64)
                    .round()
                    .clamp(1.0, MAX_PARAM as f64);
                threshold.push(thr as i32);
                bias.push(clamp_param((layer.b[o] as f64 * q_of(thr)).round()));
                polarity.push(if go < 0.0 { '-' } else { '+' });
                values.extend(layer.v.row(o).iter().map(|&x| {
                    if (x >= 0.0) == (go >= 0.0) {
                        1
                    } else {
                        -1
                    }
                }));
            }
            let signs: bitvec::vec::BitVec<u8, bitvec::order::Lsb0> =
                values.iter().map(|&v| v > 0).collect();
            IntLayer {
                weights: Weights::Binary {
                    signs: pack_signs(&signs),
                },
                values,
                threshold,
                bias,
                polarity,
            }
        }
        None => {
            let lim = ((1i64 << (bits - 1)) - 1) as f64;
            for o in 0..out {
                let row = layer.v.row(o);
                let mx = row.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-12) as f64;
                // The largest θ_q whose weights fit `bits`.
                let thr = (lim / mx * (2f64).powi(d - 1))
                    .floor()
                    .clamp(1.0, MAX_PARAM as f64);
                let q = q_of(thr);
                threshold.push(thr as i32);
                bias.push(clamp_param((layer.b[o] as f64 * q).round()));
                polarity.push('+');
                values.extend(row.iter().map(|&x| {
                    ((x as f64 * q).round() as i64).clamp(-(lim as i64) - 1, lim as i64)
                }));
            }
            debug_assert_eq!(values.len(), out * fan_in);
            IntLayer {
                weights: Weights::Integer {
                    bits,
                    values: values.iter().map(|&v| v as i32).collect(),
                },
                values,
                threshold,
                bias,
                polarity,
            }
        }
    }
}

/// The readout's weights and bias on one scale shared by all classes.
fn quantise_readout(layer: &CssLayer, bits: u32) -> (Weights, Vec<i32>) {
    if let Some(g) = &layer.binary_scale {
        let signs: bitvec::vec::BitVec<u8, bitvec::order::Lsb0> =
            layer.v.iter().map(|&x| x >= 0.0).collect();
        let unit = g[0].abs().max(1e-12) as f64;
        let bias = layer
            .b
            .iter()
            .map(|&b| clamp_param((b as f64 / unit).round()))
            .collect();
        return (
            Weights::Binary {
                signs: pack_signs(&signs),
            },
            bias,
        );
    }
    let lim = ((1i64 << (bits - 1)) - 1) as f64;
    let mx = layer.v.iter().fold(0f32, |m, &x| m.max(x.abs())).max(1e-12) as f64;
    let q = lim / mx;
    let values = layer
        .v
        .iter()
        .map(|&x| (x as f64 * q).round() as i32)
        .collect();
    let bias = layer
        .b
        .iter()
        .map(|&b| clamp_param((b as f64 * q).round()))
        .collect();
    (Weights::Integer { bits, values }, bias)
}

/// Largest `|I|` of each channel: `Σ|w|·max|x|` plus `|bias|`.
fn input_bounds(values: &[i64], fan_in: usize, xmax: i64, bias: &[i32]) -> Vec<i64> {
    values
        .chunks(fan_in)
        .zip(bias)
        .map(|(row, &b)| row.iter().map(|w| w.abs()).sum::<i64>() * xmax + (b as i64).abs())
        .collect()
}

/// The integer TSA hardware model of a converted network.
pub fn to_model(net: &Net, conv: &Converted, name: &str) -> Result<Model, ConvertError> {
    let parsed = arch::parse(&net.arch).map_err(|e| ConvertError::Invalid(e.to_string()))?;
    let mut layers = Vec::new();
    for (l, (spec, layer)) in net.specs.iter().zip(&conv.layers).enumerate() {
        let bits = match parsed.layers[l].weights {
            WeightKind::Integer(b) => b,
            WeightKind::Binary => spec.int_bits,
        };
        let (lname, synapse, pool) = ir_shape(spec, l);
        let (weights, neuron) = if spec.last {
            let (weights, bias) = quantise_readout(layer, bits);
            (weights, Neuron::TsaReadout { bias })
        } else {
            let q = quantise_hidden(layer, bits);
            let clamp = input_bounds(&q.values, spec.fan_in, input_max(net, l), &q.bias)
                .iter()
                .zip(&q.threshold)
                .map(|(&m, &t)| clamp_param((4 * t as i64 + m) as f64))
                .collect();
            (
                q.weights,
                Neuron::Tsa(Tsa {
                    bias: q.bias,
                    threshold: q.threshold,
                    polarity: q.polarity,
                    clamp,
                    silent: layer.silent,
                    negative: conv.config.negative,
                }),
            )
        };
        layers.push(Layer {
            name: lname,
            synapse,
            weights,
            neuron,
            pool,
        });
    }
    assemble(
        net,
        name,
        Encoding::FirstStep,
        conv.config.time_steps,
        layers,
    )
    .map_err(ConvertError::Invalid)
}
