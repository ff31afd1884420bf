//! Optimisers (Adam, SGD with momentum) and the cosine learning-rate schedule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Optimiser choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimKind {
    /// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// Optimiser state: moments per named parameter (ordered, so checkpoints are byte-stable).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    /// Steps taken.
    pub step: u64,
    /// First moment (Adam) or velocity (SGD).
    pub m: BTreeMap<String, Vec<f32>>,
    /// Second moment (Adam).
    pub v: BTreeMap<String, Vec<f32>>,
}

/// Hyper-parameters of one update.
#[derive(Debug, Clone, Copy)]
pub struct Hyper {
    /// Kind.
    pub kind: OptimKind,
    /// Learning rate of this step.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Decoupled weight decay (applied to weights only).
    pub weight_decay: f32,
}

impl Optimizer {
    /// Starts a step (Adam's bias correction counts steps).
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    /// Updates one parameter in place.
    pub fn update(&mut self, key: &str, value: &mut [f32], grad: &[f32], h: &Hyper, decay: bool) {
        let m = self
            .m
            .entry(key.to_string())
            .or_insert_with(|| vec![0.0; value.len()]);
        if m.len() != value.len() {
            *m = vec![0.0; value.len()];
        }
        let wd = if decay { h.weight_decay } else { 0.0 };
        match h.kind {
            OptimKind::Adam => {
                let v = self
                    .v
                    .entry(key.to_string())
                    .or_insert_with(|| vec![0.0; value.len()]);
                if v.len() != value.len() {
                    *v = vec![0.0; value.len()];
                }
                let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                let c1 = 1.0 - b1.powi(self.step as i32);
                let c2 = 1.0 - b2.powi(self.step as i32);
                for i in 0..value.len() {
                    m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
                    v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
                    let upd = (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                    value[i] -= h.lr * (upd + wd * value[i]);
                }
            }
            OptimKind::Sgd => {
                for i in 0..value.len() {
                    m[i] = h.momentum * m[i] + grad[i] + wd * value[i];
                    value[i] -= h.lr * m[i];
                }
            }
        }
    }
}

/// Cosine schedule from `base` to 0 over `epochs`, evaluated at fractional epoch `e`.
pub fn cosine(base: f32, e: f64, epochs: usize) -> f32 {
    let p = (e / epochs.max(1) as f64).clamp(0.0, 1.0);
    (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut o = Optimizer::default();
        let mut x = vec![3.0f32, -2.0];
        let h = Hyper {
            kind: OptimKind::Adam,
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
        };
        for _ in 0..500 {
            o.begin_step();
            let g: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
            o.update("x", &mut x, &g, &h, false);
        }
        assert!(x.iter().all(|v| v.abs() < 1e-2), "{x:?}");
        assert_eq!(cosine(1.0, 0.0, 10), 1.0);
        assert!(cosine(1.0, 10.0, 10).abs() < 1e-6);
    }
}
