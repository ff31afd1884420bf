//! The accuracy-loss estimator (ALBSNN; methods-spec §1.6): which candidate layers are binary,
//! re-decided during training from a per-layer error metric, with a threshold, an optional
//! cap and hysteresis. Every decision is logged with its metric values.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::linalg::matmul;
use crate::net::{mean_abs_rows, sign_times, Control, Net, Precision};

/// The error metric (decision register A4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// E1: `‖W − α⊙sign W‖² / ‖W‖²` (weight space; no data).
    Weight,
    /// E2: `‖x·Wᵀ − x·W_bᵀ‖² / ‖x·Wᵀ‖²` on a calibration batch (output space).
    Output,
    /// Measured accuracy drop on the calibration set when the layer is binary.
    Accuracy,
}

impl Metric {
    /// The default threshold ε of the metric (A5; placeholders to sweep).
    pub fn default_threshold(self) -> f64 {
        match self {
            Metric::Weight => 0.35,
            Metric::Output => 0.35,
            Metric::Accuracy => 0.005,
        }
    }
}

/// Estimator settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AleConfig {
    /// Metric.
    pub metric: Metric,
    /// A layer becomes binary when its error is at most ε.
    pub threshold: f64,
    /// A binary layer returns to full precision only when its error exceeds ε + δ.
    pub hysteresis: f64,
    /// At most this fraction of candidate layers is binary (smallest error first, a binary layer
    /// ranked δ lower so that close layers do not swap); 1 = no cap.
    pub cap: f64,
    /// Re-evaluate every this many epochs.
    pub every: usize,
    /// Whether the first and last layers are candidates too (A6 keeps them full precision).
    pub first_last: bool,
    /// Also decide before the first epoch, on the initial weights (binary-first: layers start
    /// binary where the error allows and return to full precision when it grows past ε + δ).
    #[serde(default)]
    pub at_start: bool,
    /// Once BWO starts, the binary set is final and the estimator stops re-deciding: BWO tunes
    /// the binary weights of the layers chosen so far, and a late swap would throw that away
    /// (and, with a cap, trade a large binary layer for a small one at the end of the cosine
    /// schedule, when the network can no longer recover). Checkpoints from before the option
    /// load with `false`, the behaviour they were trained with.
    #[serde(default)]
    pub freeze_with_bwo: bool,
}

impl Default for AleConfig {
    fn default() -> Self {
        AleConfig {
            metric: Metric::Weight,
            threshold: Metric::Weight.default_threshold(),
            hysteresis: 0.05,
            cap: 1.0,
            every: 1,
            first_last: false,
            at_start: true,
            freeze_with_bwo: true,
        }
    }
}

/// One layer's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Layer index.
    pub layer: usize,
    /// Metric value.
    pub error: f64,
    /// Precision before.
    pub before: Precision,
    /// Precision after.
    pub after: Precision,
    /// Human-readable reason.
    pub reason: String,
}

/// E1 of a weight matrix with per-row α.
pub fn weight_error(w: ArrayView2<f32>) -> f64 {
    let wb = sign_times(w, &mean_abs_rows(w));
    let num: f64 = w
        .iter()
        .zip(wb.iter())
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// E2 of a layer on recorded inputs `x` (`[rows, fan_in]`).
pub fn output_error(w: ArrayView2<f32>, x: ArrayView2<f32>) -> f64 {
    let wb = sign_times(w, &mean_abs_rows(w));
    let y = matmul(x, w.t());
    let yb = matmul(x, wb.t());
    let num: f64 = y
        .iter()
        .zip(yb.iter())
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = y.iter().map(|a| (*a as f64).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Calibration data for the data-dependent metrics.
pub struct Calibration<'a> {
    /// Images.
    pub images: &'a [u8],
    /// Labels.
    pub labels: &'a [u8],
}

fn accuracy(net: &mut Net, cal: &Calibration) -> f64 {
    let f = net.forward(cal.images, false, false);
    crate::data::accuracy(&crate::ops::classes(&f.logits), cal.labels)
}

/// The hysteresis a layer in precision `p` enjoys: a binary layer stays binary up to ε + δ, and
/// under the cap it is ranked δ lower, so that two layers with close errors do not swap every
/// epoch; a full-precision layer gets none.
fn held_margin(p: Precision, cfg: &AleConfig) -> f64 {
    if p == Precision::Binary {
        cfg.hysteresis
    } else {
        0.0
    }
}

/// Evaluates every candidate layer and sets the binary set for the next epochs.
pub fn update(net: &mut Net, cfg: &AleConfig, cal: &Calibration) -> Vec<Decision> {
    let candidates: Vec<usize> = (0..net.specs.len())
        .filter(|&l| net.specs[l].control == Control::Estimator)
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let inputs = (cfg.metric == Metric::Output).then(|| {
        net.forward(cal.images, false, true)
            .inputs
            .expect("recorded")
    });
    let mut errors = Vec::new();
    for &l in &candidates {
        let e = match cfg.metric {
            Metric::Weight => weight_error(net.weights(l)),
            Metric::Output => {
                let x = &inputs.as_ref().expect("inputs")[l];
                output_error(net.weights(l), x.view())
            }
            Metric::Accuracy => {
                let keep = net.params[l].precision;
                net.params[l].precision = Precision::Full;
                let fp = accuracy(net, cal);
                net.params[l].precision = Precision::Binary;
                let bin = accuracy(net, cal);
                net.params[l].precision = keep;
                fp - bin
            }
        };
        errors.push((l, e));
    }
    let margin = |l: usize| held_margin(net.params[l].precision, cfg);
    let mut want: Vec<(usize, f64)> = errors
        .iter()
        .copied()
        .filter(|&(l, e)| e <= cfg.threshold + margin(l))
        .collect();
    want.sort_by(|a, b| {
        let rank = |&(l, e): &(usize, f64)| e - margin(l);
        rank(a).total_cmp(&rank(b)).then(a.0.cmp(&b.0))
    });
    let max_binary = ((cfg.cap * candidates.len() as f64).floor() as usize).min(candidates.len());
    let capped: Vec<usize> = want.iter().skip(max_binary).map(|w| w.0).collect();
    want.truncate(max_binary);
    errors
        .into_iter()
        .map(|(l, e)| {
            let before = net.params[l].precision;
            let binary = want.iter().any(|w| w.0 == l);
            let after = if binary { Precision::Binary } else { Precision::Full };
            let limit = cfg.threshold + held_margin(before, cfg);
            let reason = if capped.contains(&l) {
                format!("error {e:.4} ≤ {limit:.4} but the cap of {max_binary} binary layers is reached")
            } else if binary {
                format!("error {e:.4} ≤ {limit:.4}")
            } else {
                format!("error {e:.4} > {limit:.4}")
            };
            if after != before {
                net.params[l].precision = after;
                if after == Precision::Full {
                    net.params[l].alpha = None;
                }
            }
            Decision {
                layer: l,
                error: e,
                before,
                after,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn weight_error_is_zero_for_binary_weights_and_known_for_uniform() {
        let w = Array2::from_shape_vec((2, 4), vec![0.5, -0.5, 0.5, 0.5, -2.0, 2.0, 2.0, -2.0])
            .unwrap();
        assert!(weight_error(w.view()) < 1e-12);
        // Uniform on [−1, 1]: E1 = 1 − (E|w|)² / E[w²] = 1 − (1/4)/(1/3) = 1/4.
        let n = 10_000;
        let w = Array2::from_shape_fn((1, n), |(_, j)| -1.0 + 2.0 * (j as f32 + 0.5) / n as f32);
        assert!((weight_error(w.view()) - 0.25).abs() < 1e-3);
        // Output error with the identity as input equals the weight error.
        let w = Array2::from_shape_vec((1, 3), vec![0.1, 0.5, -0.9]).unwrap();
        let x = Array2::eye(3);
        assert!((output_error(w.view(), x.view()) - weight_error(w.view())).abs() < 1e-6);
    }

    /// Weights alternating between magnitudes 1 and `r` in every row: E1 = 1 − (1+r)²/(2(1+r²)).
    fn set_two_level_weights(net: &mut Net, l: usize, r: f32) -> f64 {
        let p = &mut net.params[l].w;
        for (i, w) in p.iter_mut().enumerate() {
            let m = if i % 2 == 0 { 1.0 } else { r };
            *w = if i % 3 == 0 { -m } else { m };
        }
        weight_error(net.weights(l))
    }

    #[test]
    fn the_cap_keeps_a_binary_layer_unless_another_is_better_by_more_than_the_hysteresis() {
        let lif = crate::ops::LifConfig::default();
        let mut net = Net::new("8x8x1-4C3-8C3-8C3-10C3-GAP", 1, lif, false, 1).unwrap();
        let cfg = AleConfig {
            threshold: 0.45,
            cap: 0.5,
            ..AleConfig::default()
        };
        let cal = Calibration {
            images: &[],
            labels: &[],
        };
        let binary = |net: &Net| net.binary_layers();
        // Layer 2 (1-based 3) binary; layer 1 a little better, within δ: no swap.
        net.params[2].precision = Precision::Binary;
        let e1 = set_two_level_weights(&mut net, 1, 0.3);
        let e2 = set_two_level_weights(&mut net, 2, 0.25);
        assert!(e1 < e2 && e2 - e1 < cfg.hysteresis, "{e1} {e2}");
        let d = update(&mut net, &cfg, &cal);
        assert_eq!(binary(&net), vec![3], "{d:?}");
        assert!(d[0].reason.contains("cap"), "{}", d[0].reason);
        // Layer 1 better by more than δ: the binary place moves to it.
        let e2 = set_two_level_weights(&mut net, 2, 0.15);
        assert!(e2 - e1 > cfg.hysteresis, "{e1} {e2}");
        update(&mut net, &cfg, &cal);
        assert_eq!(binary(&net), vec![2]);
        // Without the cap both are binary.
        let cfg = AleConfig { cap: 1.0, ..cfg };
        update(&mut net, &cfg, &cal);
        assert_eq!(binary(&net), vec![2, 3]);
    }
}
