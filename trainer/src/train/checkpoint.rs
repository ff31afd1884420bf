//! The checkpoint: a run's configuration, network, optimiser state and log, written after
//! every epoch and read back to resume.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ale::Decision;
use crate::net::{Net, Precision};
use crate::optim::Optimizer;
use crate::swa::{SwaLog, SwaState};

use super::*;

/// One epoch's log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate at the epoch start.
    pub lr: f32,
    /// Mean training loss.
    pub train_loss: f32,
    /// Training accuracy (on the augmented batches, in training mode).
    pub train_acc: f32,
    /// Validation loss.
    pub val_loss: f32,
    /// Validation accuracy.
    pub val_acc: f32,
    /// Precision of every layer during this epoch.
    pub precision: Vec<Precision>,
    /// Estimator evaluations at the end of the epoch.
    pub decisions: Vec<Decision>,
    /// Whether BWO was active during the epoch.
    pub bwo: bool,
    /// Whether weights were fake-quantised during the epoch.
    pub fake_quant: bool,
    /// Mean spike rate of each hidden layer (last batch).
    pub spike_rates: Vec<f32>,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// A checkpoint: enough to resume bit for bit, and to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Identifies the file.
    pub format: String,
    /// The run's settings.
    pub config: TrainConfig,
    /// The network.
    pub net: Net,
    /// Optimiser state.
    pub optimizer: Optimizer,
    /// Epochs completed.
    pub epoch: usize,
    /// Best validation loss so far: infinite before the first epoch, which JSON writes as
    /// `null`, so `null` reads back as infinite.
    #[serde(deserialize_with = "infinite_if_null")]
    pub best_val_loss: f32,
    /// Epochs since it improved.
    pub since_best: usize,
    /// Whether BWO has started.
    pub bwo_active: bool,
    /// Every epoch so far.
    pub log: Vec<EpochLog>,
    /// The estimator's decisions before the first epoch (with `ale.at_start`).
    #[serde(default)]
    pub start_decisions: Vec<Decision>,
    /// The running weight average of the flat phase, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa: Option<SwaState>,
    /// What the weight average gave, once the run has ended with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa_log: Option<SwaLog>,
}

fn infinite_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::INFINITY))
}

/// `format` of checkpoint files.
pub const CHECKPOINT_FORMAT: &str = "spikeforge-checkpoint-1";

/// Training failures.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The loss stopped being a number.
    #[error("{what} became {value} at epoch {epoch}, step {step}: training diverged and stopped (lower the learning rate). {}",
        match .checkpoint { Some(p) => format!("The last good checkpoint is {} (epoch {}).", p.display(), .epoch - 1), None => "No epoch completed, so there is no checkpoint.".into() })]
    Diverged {
        /// What stopped being a number: the loss or a weight.
        what: &'static str,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within it.
        step: usize,
        /// The value.
        value: f32,
        /// Last good checkpoint.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint cannot be read or written.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The data does not fit the network.
    #[error("{0}")]
    Data(String),
}

impl Checkpoint {
    /// A fresh run.
    pub fn new(config: TrainConfig) -> Result<Checkpoint, crate::net::NetError> {
        let net = Net::new(
            &config.arch,
            config.time_steps,
            config.lif,
            config.ale.first_last,
            config.seed,
        )?;
        let net = Net {
            neuron: config.neuron,
            frames: config.framing.map(|f| f.pixel_bits()),
            input_bits: config.input_bits,
            ..net
        };
        Ok(Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            config,
            net,
            optimizer: Optimizer::default(),
            epoch: 0,
            best_val_loss: f32::INFINITY,
            since_best: 0,
            bwo_active: false,
            log: Vec::new(),
            start_decisions: Vec::new(),
            swa: None,
            swa_log: None,
        })
    }

    /// Reads a checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint, TrainError> {
        let err = |reason: String| TrainError::Checkpoint {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        match serde_json::from_str::<Checkpoint>(&text) {
            Ok(c) if c.format == CHECKPOINT_FORMAT => Ok(c),
            Ok(c) => Err(err(wrong_format(&c.format))),
            Err(e) => {
                // A file of another kind (often the exported model) says what it is.
                #[derive(Deserialize)]
                struct Header {
                    format: String,
                }
                Err(err(match serde_json::from_str::<Header>(&text) {
                    Ok(h) if h.format != CHECKPOINT_FORMAT => wrong_format(&h.format),
                    _ => format!("not a spikeforge checkpoint: {e}"),
                }))
            }
        }
    }

    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let err = |reason: String| TrainError::Checkpoint {
            path: path.into(),
            reason,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }
}

/// Why a file of format `found` is not a checkpoint.
fn wrong_format(found: &str) -> String {
    let hint = if found == spikeforge_model::ir::FORMAT {
        ": this is an exported hardware model; give the checkpoint.json its training run wrote"
    } else {
        ""
    };
    format!("format `{found}`, expected `{CHECKPOINT_FORMAT}`{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_checkpoint_reads_back_equal() {
        // Its best validation loss is infinite, which JSON can only write as null.
        let cfg = TrainConfig {
            arch: "8x8x1-4C3-MP2-4".into(),
            ..TrainConfig::default()
        };
        let ck = Checkpoint::new(cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        ck.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), ck);
    }
}
