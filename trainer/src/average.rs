//! Weight averaging of checkpoints of one run (stochastic weight averaging, Izmailov et al.
//! 2018): the mean of the networks at several epoch ends lies nearer the centre of the flat
//! region the optimiser circles in late training than any one of them, and often generalises
//! better. Every trainable value is averaged: latent weights (a binary layer exports the sign
//! of the mean), biases, BatchNorm γ and β, BWO's α and the head's logit scale. The running
//! BatchNorm statistics are averaged too, but belong to none of the averaged networks, so
//! re-estimate them ([`Net::recalibrate_bn`]) before evaluating or exporting the mean.

use crate::net::Net;
use crate::ops::BatchNorm;

/// Why networks cannot be averaged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AverageError {
    /// Nothing to average.
    #[error("no networks to average")]
    Empty,
    /// Network `index` differs from the first in something that is not a trainable value.
    #[error("network {index} cannot be averaged with the first: {reason}")]
    Mismatch {
        /// Position in the list (0-based).
        index: usize,
        /// What differs.
        reason: String,
    },
}

/// The element-wise mean of `nets`, which must share architecture, time steps, neuron
/// constants and the precision of every layer (in one run: checkpoints after the estimator's
/// last decision, e.g. once BWO has frozen the binary set).
pub fn average(nets: &[&Net]) -> Result<Net, AverageError> {
    let weighted: Vec<(&Net, f64)> = nets.iter().map(|&n| (n, 1.0)).collect();
    weighted_average(&weighted)
}

/// The element-wise mean of the networks weighted by their factors, Σ wᵢ·xᵢ / Σ wᵢ (a running
/// mean of k networks with one more is `[(mean, k), (next, 1)]`); the same conditions as
/// [`average`].
pub fn weighted_average(nets: &[(&Net, f64)]) -> Result<Net, AverageError> {
    let ((first, _), rest) = nets.split_first().ok_or(AverageError::Empty)?;
    for (i, (n, _)) in rest.iter().enumerate() {
        compatible(first, n).map_err(|reason| AverageError::Mismatch {
            index: i + 1,
            reason,
        })?;
    }
    let total: f64 = nets.iter().map(|(_, w)| w).sum();
    let mean = |pick: &dyn Fn(&Net) -> &[f32]| -> Vec<f32> {
        let mut acc = vec![0.0f64; pick(first).len()];
        for (n, weight) in nets {
            for (a, &v) in acc.iter_mut().zip(pick(n)) {
                *a += weight * f64::from(v);
            }
        }
        acc.iter().map(|&a| (a / total) as f32).collect()
    };
    let mut out = (*first).clone();
    for (l, p) in out.params.iter_mut().enumerate() {
        p.w = mean(&|n| &n.params[l].w);
        p.bias = mean(&|n| &n.params[l].bias);
        if let Some(bn) = p.bn.as_mut() {
            bn.gamma = mean(&|n| &bn_of(n, l).gamma);
            bn.beta = mean(&|n| &bn_of(n, l).beta);
            bn.mean = mean(&|n| &bn_of(n, l).mean);
            bn.var = mean(&|n| &bn_of(n, l).var);
        }
        if let Some(alpha) = p.alpha.as_mut() {
            *alpha = mean(&|n| n.params[l].alpha.as_deref().expect("checked by compatible"));
        }
    }
    out.head_log_scale = mean(&|n| std::slice::from_ref(&n.head_log_scale))[0];
    Ok(out)
}

/// Layer `l`'s BatchNorm, which [`compatible`] has checked every averaged network has.
fn bn_of(n: &Net, l: usize) -> &BatchNorm {
    n.params[l].bn.as_ref().expect("checked by compatible")
}

/// `Ok` when `b` has `a`'s structure: the same architecture, neurons and layer precisions, and
/// a trainable α and BatchNorm where `a` has one.
fn compatible(a: &Net, b: &Net) -> Result<(), String> {
    if a.arch != b.arch || a.time_steps != b.time_steps || a.neuron != b.neuron {
        return Err(format!(
            "`{}` at T = {} against `{}` at T = {}",
            b.arch, b.time_steps, a.arch, a.time_steps
        ));
    }
    if a.lif != b.lif {
        return Err("different LIF constants".into());
    }
    for (l, (pa, pb)) in a.params.iter().zip(&b.params).enumerate() {
        if pa.precision != pb.precision {
            return Err(format!(
                "layer {l} is {:?} here and {:?} in the first",
                pb.precision, pa.precision
            ));
        }
        if pa.alpha.is_some() != pb.alpha.is_some() || pa.bn.is_some() != pb.bn.is_some() {
            return Err(format!(
                "layer {l} has a different set of parameters (BWO started in between?)"
            ));
        }
        if pa.w.len() != pb.w.len() || pa.bias.len() != pb.bias.len() {
            return Err(format!("layer {l} has a different size"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::net::Precision;
    use crate::ops::LifConfig;

    /// A small random network (also for the weight-averaging tests of [`crate::swa`]).
    pub(crate) fn net(seed: u64) -> Net {
        Net::new(
            "8x8x1-4C3-MP2-6C3-3C3-GAP",
            1,
            LifConfig::default(),
            false,
            seed,
        )
        .expect("parses")
    }

    #[test]
    fn the_mean_of_two_networks_is_their_midpoint() {
        let (a, b) = (net(1), net(2));
        let m = average(&[&a, &b]).unwrap();
        for (l, p) in m.params.iter().enumerate() {
            for (i, &v) in p.w.iter().enumerate() {
                let mid = (a.params[l].w[i] + b.params[l].w[i]) / 2.0;
                assert!(
                    (v - mid).abs() <= 1e-7 * mid.abs().max(1.0),
                    "layer {l} w{i}"
                );
            }
        }
        // One network averages to itself, bit for bit.
        assert_eq!(average(&[&a]).unwrap(), a);
    }

    #[test]
    fn structural_differences_are_refused() {
        let a = net(1);
        let mut b = net(1);
        b.params[1].precision = match a.params[1].precision {
            Precision::Binary => Precision::Full,
            Precision::Full => Precision::Binary,
        };
        let e = average(&[&a, &b]).unwrap_err();
        assert!(
            matches!(&e, AverageError::Mismatch { index: 1, reason } if reason.contains("layer 1")),
            "{e}"
        );
        let c = Net::new(
            "8x8x1-4C3-MP2-7C3-3C3-GAP",
            1,
            LifConfig::default(),
            false,
            1,
        )
        .unwrap();
        assert!(average(&[&a, &c]).is_err());
        assert_eq!(average(&[]), Err(AverageError::Empty));
    }
}
