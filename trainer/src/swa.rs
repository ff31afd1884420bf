//! Stochastic weight averaging (SWA, Izmailov et al. 2018) as the end of a run: the cosine
//! schedule anneals to a flat rate `swa_lr`, the last `swa_epochs` epochs train at that rate,
//! each one's end network joins a running mean, and the run ends with the mean, its BatchNorm
//! statistics re-estimated (the averaged running statistics belong to no network).
//!
//! Why a flat rate: at the tail of a cosine schedule the weights barely move, so the mean of
//! the last epochs is the last epoch; at a flat rate the optimiser keeps circling the flat
//! region of the loss, whose centre the mean approximates better than any one epoch end.

use serde::{Deserialize, Serialize};

use crate::average::weighted_average;
use crate::net::Net;
use crate::optim::cosine;
use crate::train::TrainConfig;

/// The running mean of the epoch-end networks of the flat phase so far (in the checkpoint, so
/// that an interrupted run resumes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwaState {
    /// The mean.
    pub mean: Net,
    /// The epochs (1-based) whose end networks it averages.
    pub epochs: Vec<usize>,
}

/// What the averaging gave (in the checkpoint and the run's summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwaLog {
    /// The averaged epochs (1-based).
    pub epochs: Vec<usize>,
    /// Validation loss of the mean, BatchNorm re-estimated.
    pub val_loss: f32,
    /// Validation accuracy of the mean.
    pub val_acc: f32,
    /// Validation accuracy of the last epoch's network alone, for comparison.
    pub last_val_acc: f32,
}

/// The first epoch (1-based) of the flat phase; `None` when averaging is off.
pub fn first_epoch(cfg: &TrainConfig) -> Option<usize> {
    (cfg.swa_epochs > 0).then(|| cfg.epochs.saturating_sub(cfg.swa_epochs) + 1)
}

/// The learning rate at fractional epoch `e` (0-based: 2.5 is half-way through epoch 3):
/// cosine from `lr` to 0 over the run, or with averaging, cosine from `lr` to `swa_lr` over
/// the epochs before the flat phase and `swa_lr` during it.
pub fn learning_rate(cfg: &TrainConfig, e: f64) -> f32 {
    if cfg.swa_epochs == 0 {
        return cosine(cfg.lr, e, cfg.epochs);
    }
    let anneal = cfg.epochs.saturating_sub(cfg.swa_epochs);
    if e >= anneal as f64 {
        cfg.swa_lr
    } else {
        cfg.swa_lr + cosine(cfg.lr - cfg.swa_lr, e, anneal)
    }
}

/// Adds the network at the end of `epoch` to the running mean. A network that cannot be
/// averaged with the mean (BWO started during the flat phase and gave a layer its α) starts
/// the mean afresh, so that the mean is always of networks of one structure.
pub fn accumulate(state: &mut Option<SwaState>, net: &Net, epoch: usize) {
    if let Some(s) = state.as_mut() {
        if let Ok(mean) = weighted_average(&[(&s.mean, s.epochs.len() as f64), (net, 1.0)]) {
            s.mean = mean;
            s.epochs.push(epoch);
            return;
        }
    }
    *state = Some(SwaState {
        mean: net.clone(),
        epochs: vec![epoch],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::average::average;
    use crate::average::tests::net;

    fn cfg(epochs: usize, swa_epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            lr: 1e-2,
            swa_epochs,
            swa_lr: 1e-3,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn the_schedule_anneals_to_the_flat_rate_and_stays_there() {
        let off = cfg(10, 0);
        assert_eq!(first_epoch(&off), None);
        for e in [0.0, 3.3, 9.9] {
            assert_eq!(learning_rate(&off, e), cosine(off.lr, e, 10));
        }
        let on = cfg(10, 4);
        assert_eq!(first_epoch(&on), Some(7));
        assert_eq!(learning_rate(&on, 0.0), on.lr);
        let mid = learning_rate(&on, 3.0);
        assert!(mid < on.lr && mid > on.swa_lr, "{mid}");
        assert!((learning_rate(&on, 5.999) - on.swa_lr).abs() < 1e-6);
        for e in [6.0, 7.5, 9.99] {
            assert_eq!(learning_rate(&on, e), on.swa_lr);
        }
    }

    #[test]
    fn the_running_mean_equals_the_mean_of_the_epoch_ends() {
        let nets: Vec<Net> = (1..=3).map(net).collect();
        let mut state = None;
        for (i, n) in nets.iter().enumerate() {
            accumulate(&mut state, n, 5 + i);
        }
        let state = state.expect("accumulated");
        assert_eq!(state.epochs, [5, 6, 7]);
        let direct = average(&nets.iter().collect::<Vec<_>>()).unwrap();
        for (a, b) in state.mean.params.iter().zip(&direct.params) {
            for (x, y) in a.w.iter().zip(&b.w) {
                assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{x} vs {y}");
            }
        }
        assert!(state.mean.params[0].w != nets[2].params[0].w);
    }

    #[test]
    fn a_change_of_structure_starts_the_mean_afresh() {
        let a = net(1);
        let mut b = a.clone();
        b.params[1].alpha = Some(vec![1.0; 6]);
        let mut state = None;
        accumulate(&mut state, &a, 1);
        accumulate(&mut state, &b, 2);
        let s = state.expect("accumulated");
        assert_eq!(s.epochs, [2]);
        assert_eq!(s.mean, b);
    }
}
