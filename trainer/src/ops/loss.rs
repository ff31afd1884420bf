//! The training loss and the class decision.

use ndarray::Array2;

/// Softmax cross-entropy over `[B, classes]` logits: mean loss, correct count, ∂loss/∂logits.
pub fn softmax_ce(logits: &Array2<f32>, labels: &[u8]) -> (f32, usize, Array2<f32>) {
    softmax_ce_smoothed(logits, labels, 0.0)
}

/// Cross-entropy against label-smoothed targets `q = (1 − ε)·onehot + ε/K` (Szegedy et al.
/// 2016): the gradient is `softmax − q`, so a confident correct logit stops being pushed further
/// once its probability passes `1 − ε + ε/K`. `ε = 0` is plain cross-entropy. Returns the mean
/// loss, the number of correct rows and the gradient of the mean loss.
pub fn softmax_ce_smoothed(
    logits: &Array2<f32>,
    labels: &[u8],
    smoothing: f32,
) -> (f32, usize, Array2<f32>) {
    let b = logits.nrows();
    let k_classes = logits.ncols();
    let off = smoothing / k_classes as f32;
    let on = 1.0 - smoothing + off;
    let mut grad = Array2::zeros(logits.dim());
    let mut loss = 0.0f64;
    let mut correct = 0;
    for (i, row) in logits.rows().into_iter().enumerate() {
        let m = row.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
        let z: f32 = e.iter().sum();
        let y = labels[i] as usize;
        if argmax(row.as_slice().unwrap_or(&row.to_vec())) == y {
            correct += 1;
        }
        for (k, ev) in e.iter().enumerate() {
            let q = if k == y { on } else { off };
            if q > 0.0 {
                loss += -(q as f64) * ((ev / z).max(1e-30) as f64).ln();
            }
            grad[[i, k]] = (ev / z - q) / b as f32;
        }
    }
    ((loss / b as f64) as f32, correct, grad)
}

/// The class (argmax, lowest index on ties) of every row of `[B, classes]` logits.
pub fn classes(logits: &Array2<f32>) -> Vec<usize> {
    logits
        .rows()
        .into_iter()
        .map(|r| argmax(&r.to_vec()))
        .collect()
}

pub use spikeforge_model::golden::argmax;
