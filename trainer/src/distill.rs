//! Knowledge distillation (Hinton, Vinyals and Dean 2015) from trained networks: the student's
//! loss mixes the cross-entropy against the (smoothed) label with the cross-entropy against the
//! teachers' mean class probabilities at a temperature τ,
//!
//! `L = (1 − λ)·CE(q, softmax(z)) + λ·τ²·CE(p̄_τ, softmax(z/τ))`,  `p̄_τ = mean_t softmax(z_t/τ)`,
//!
//! where the τ² keeps the soft term's gradient on the scale of the hard one. The teachers are
//! checkpoints of earlier runs, typically of the same architecture: an ensemble of them ranks
//! the confusable classes of an image better than any one member, and the student learns that
//! ranking from a single network's worth of weights (the exported model does not change shape).
//!
//! The teachers see each training image once, unaugmented, before the first epoch; the student
//! is asked to match those probabilities on its shifted and flipped views too (the teachers were
//! trained with the same augmentation, so their outputs barely move under it), which keeps a
//! step as fast as without distillation. The probabilities are recomputed on resume; the
//! checkpoint records each teacher's SHA-256, so a changed teacher file is refused.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{self, Split};
use crate::net::Net;
use crate::ops;
use crate::train::{Checkpoint, TrainError};

/// The distillation settings of a run (in its checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// The teacher checkpoints.
    pub teachers: Vec<TeacherFile>,
    /// λ, the weight of the soft term (0: labels only, 1: teachers only).
    pub weight: f32,
    /// τ, the softmax temperature of both sides of the soft term.
    pub temperature: f32,
}

/// One teacher: where its checkpoint is and what it contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherFile {
    /// The checkpoint file (absolute).
    pub path: PathBuf,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

impl TeacherFile {
    /// Records a teacher checkpoint by its absolute path and content hash; a run directory
    /// stands for the `checkpoint.json` in it.
    pub fn new(path: &Path) -> Result<TeacherFile, TrainError> {
        let file = path.join("checkpoint.json");
        let path = if path.is_dir() { &file } else { path };
        let bytes = read(path)?;
        let path = std::fs::canonicalize(path).map_err(|e| checkpoint_error(path, e))?;
        Ok(TeacherFile {
            path,
            sha256: hex(&Sha256::digest(&bytes)),
        })
    }

    /// Loads the teacher's network, refusing a file that changed since the run recorded it.
    fn load(&self) -> Result<Net, TrainError> {
        let found = hex(&Sha256::digest(read(&self.path)?));
        if found != self.sha256 {
            return Err(TrainError::Checkpoint {
                path: self.path.clone(),
                reason: format!(
                    "this teacher changed since the run started (SHA-256 {found}, recorded {}); \
                     the run's soft targets would no longer be the ones it trained on",
                    self.sha256
                ),
            });
        }
        Ok(Checkpoint::load(&self.path)?.net)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| checkpoint_error(path, e))
}

fn checkpoint_error(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Checkpoint {
        path: path.into(),
        reason: format!("teacher checkpoint: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The teachers' mean probabilities for every image of a split, and how good the teachers are.
pub struct SoftTargets {
    /// `[images, classes]`, rows summing to 1.
    pub probs: Array2<f32>,
    /// What the teachers score on the validation images.
    pub report: TeacherReport,
}

/// The teachers' validation accuracy, alone and as the ensemble the student learns from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherReport {
    /// Each teacher's accuracy, in the order given.
    pub accuracy: Vec<f32>,
    /// The accuracy of their mean probabilities at τ.
    pub ensemble_accuracy: f32,
}

/// Refuses teachers that cannot teach the student: a missing or changed file, or a network of
/// another input shape or class count (checked before a run writes anything).
pub fn check_teachers(cfg: &DistillConfig, student: &Net) -> Result<(), TrainError> {
    for t in &cfg.teachers {
        fits(t, &t.load()?, student)?;
    }
    Ok(())
}

fn fits(t: &TeacherFile, net: &Net, student: &Net) -> Result<(), TrainError> {
    if net.input == student.input && net.classes() == student.classes() {
        return Ok(());
    }
    Err(TrainError::Checkpoint {
        path: t.path.clone(),
        reason: format!(
            "this teacher takes {:?} images into {} classes, the student {:?} into {}",
            net.input,
            net.classes(),
            student.input,
            student.classes()
        ),
    })
}

/// Loads the teachers and computes their mean probabilities at temperature τ on `train`, and
/// their accuracy on `val`. Every teacher must take the student's input shape and classes.
pub fn soft_targets(
    cfg: &DistillConfig,
    student: &Net,
    train: &Split,
    val: &Split,
) -> Result<SoftTargets, TrainError> {
    let classes = student.classes();
    let mut probs = Array2::zeros((train.len(), classes));
    let mut val_probs = Array2::zeros((val.len(), classes));
    let mut accuracy = Vec::new();
    let share = 1.0 / cfg.teachers.len().max(1) as f32;
    for t in &cfg.teachers {
        let mut net = t.load()?;
        fits(t, &net, student)?;
        let own_train = softmax_rows(&logits(&mut net, train), cfg.temperature);
        if own_train.iter().any(|p| !p.is_finite()) {
            return Err(TrainError::Checkpoint {
                path: t.path.clone(),
                reason: "this teacher's outputs are not finite numbers on the training images \
                         (its weights overflow)"
                    .into(),
            });
        }
        probs.scaled_add(share, &own_train);
        // One pass over the validation images gives both the teacher's own accuracy (softmax
        // does not change the argmax) and its share of the ensemble.
        let own_val = logits(&mut net, val);
        accuracy.push(accuracy_of(&own_val, &val.labels));
        val_probs.scaled_add(share, &softmax_rows(&own_val, cfg.temperature));
    }
    let ensemble_accuracy = accuracy_of(&val_probs, &val.labels);
    Ok(SoftTargets {
        probs,
        report: TeacherReport {
            accuracy,
            ensemble_accuracy,
        },
    })
}

/// The network's logits (evaluation mode) for every image of the split, `[images, classes]`.
fn logits(net: &mut Net, split: &Split) -> Array2<f32> {
    let mut out = Array2::zeros((0, net.classes()));
    crate::train::eval_chunks(net, split, |chunk, _| {
        out.append(Axis(0), chunk.view())
            .expect("chunks have the classes' width")
    });
    out
}

/// `softmax(z/τ)` of every row.
fn softmax_rows(logits: &Array2<f32>, temperature: f32) -> Array2<f32> {
    let mut out = logits.clone();
    for mut row in out.rows_mut() {
        let p = softmax(&row.to_vec(), temperature);
        row.assign(&ndarray::ArrayView1::from(&p));
    }
    out
}

/// The share of rows whose argmax is the label, rounded to f32 the way `evaluate()` rounds.
fn accuracy_of(scores: &Array2<f32>, labels: &[u8]) -> f32 {
    data::accuracy(&ops::classes(scores), labels) as f32
}

/// `softmax(z/τ)`, shifted by the maximum for range.
fn softmax(z: &[f32], temperature: f32) -> Vec<f32> {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let e: Vec<f32> = z.iter().map(|v| ((v - m) / temperature).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// The distillation loss of a batch (module docs): logits `[B, K]`, labels, the teachers'
/// probabilities for the same images `[B, K]`, label smoothing ε of the hard term, and (λ, τ)
/// ([`DistillConfig::weight`], [`DistillConfig::temperature`]). Returns the
/// mean loss, the correctly classified rows and the gradient of the mean loss.
pub fn loss(
    logits: &Array2<f32>,
    labels: &[u8],
    soft: ArrayView2<f32>,
    smoothing: f32,
    (lambda, tau): (f32, f32),
) -> (f32, usize, Array2<f32>) {
    let (hard, correct, mut grad) = crate::ops::softmax_ce_smoothed(logits, labels, smoothing);
    grad *= 1.0 - lambda;
    let b = logits.nrows();
    let mut soft_loss = 0.0f64;
    for (i, row) in logits.rows().into_iter().enumerate() {
        let p = softmax(&row.to_vec(), tau);
        for (k, &pk) in p.iter().enumerate() {
            let q = soft[[i, k]];
            if q > 0.0 {
                soft_loss -= q as f64 * (pk.max(1e-30) as f64).ln();
            }
            // d/dz of τ²·CE(q, softmax(z/τ)) is τ·(softmax(z/τ) − q).
            grad[[i, k]] += lambda * tau * (pk - q) / b as f32;
        }
    }
    let soft_loss = (soft_loss / b as f64) as f32 * tau * tau;
    ((1.0 - lambda) * hard + lambda * soft_loss, correct, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> (Array2<f32>, Vec<u8>, Array2<f32>) {
        let logits = Array2::from_shape_vec(
            (3, 4),
            vec![
                0.3, -1.2, 2.0, 0.1, 1.5, 0.2, -0.4, 0.9, -0.7, 0.0, 0.4, 1.1,
            ],
        )
        .unwrap();
        let soft = Array2::from_shape_vec(
            (3, 4),
            vec![0.1, 0.05, 0.8, 0.05, 0.6, 0.1, 0.1, 0.2, 0.0, 0.1, 0.3, 0.6],
        )
        .unwrap();
        (logits, vec![2, 0, 3], soft)
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let (logits, labels, soft) = batch();
        for (weight, tau, eps) in [(0.5, 1.0, 0.1), (0.7, 4.0, 0.0), (1.0, 2.0, 0.0)] {
            let c = (weight, tau);
            let (_, _, grad) = loss(&logits, &labels, soft.view(), eps, c);
            let h = 1e-3f32;
            for i in 0..3 {
                for k in 0..4 {
                    let mut up = logits.clone();
                    up[[i, k]] += h;
                    let mut down = logits.clone();
                    down[[i, k]] -= h;
                    let f = |z: &Array2<f32>| loss(z, &labels, soft.view(), eps, c).0 as f64;
                    let numeric = (f(&up) - f(&down)) / (2.0 * h as f64);
                    let analytic = grad[[i, k]] as f64;
                    assert!(
                        (numeric - analytic).abs() < 2e-3,
                        "λ {weight} τ {tau}: [{i},{k}] numeric {numeric} analytic {analytic}"
                    );
                }
            }
        }
    }

    #[test]
    fn weight_zero_is_the_label_loss_and_weight_one_ignores_the_labels() {
        let (logits, labels, soft) = batch();
        let plain = crate::ops::softmax_ce_smoothed(&logits, &labels, 0.1);
        let zero = loss(&logits, &labels, soft.view(), 0.1, (0.0, 3.0));
        assert_eq!((zero.0, zero.1), (plain.0, plain.1));
        assert_eq!(zero.2, plain.2);
        let other_labels = [0u8, 1, 2];
        let a = loss(&logits, &labels, soft.view(), 0.0, (1.0, 2.0));
        let b = loss(&logits, &other_labels, soft.view(), 0.0, (1.0, 2.0));
        assert_eq!((a.0, &a.2), (b.0, &b.2));
    }

    /// A random split of `n` 12×12 images.
    fn split(n: usize, seed: u64) -> Split {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Split {
            images: (0..n * 144).map(|_| rng.gen()).collect(),
            labels: (0..n).map(|_| rng.gen_range(0..4)).collect(),
            shape: (12, 12, 1),
            steps: 1,
        }
    }

    /// A checkpoint of a fresh network with `seed`, written to `dir`.
    fn teacher(dir: &Path, seed: u64) -> TeacherFile {
        let cfg = crate::TrainConfig {
            arch: "12x12x1-4C3-MP2-4".into(),
            seed,
            ..crate::TrainConfig::default()
        };
        let path = dir.join(format!("t{seed}.json"));
        Checkpoint::new(cfg).unwrap().save(&path).unwrap();
        TeacherFile::new(&path).unwrap()
    }

    #[test]
    fn the_targets_are_the_mean_of_the_teachers_probabilities() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (teacher(dir.path(), 1), teacher(dir.path(), 2));
        let (train, val) = (split(30, 7), split(40, 8));
        let student = Checkpoint::load(&a.path).unwrap().net;
        let targets = |teachers: Vec<TeacherFile>| {
            let cfg = DistillConfig {
                teachers,
                weight: 0.5,
                temperature: 2.0,
            };
            soft_targets(&cfg, &student, &train, &val).unwrap()
        };
        let (ta, tb, both) = (
            targets(vec![a.clone()]),
            targets(vec![b.clone()]),
            targets(vec![a.clone(), b.clone()]),
        );
        let mean = (&ta.probs + &tb.probs) * 0.5;
        let worst = (&both.probs - &mean).fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(worst < 1e-6, "{worst}");
        for row in both.probs.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
        // A teacher's own figure is its accuracy on the validation images.
        let mut net = Checkpoint::load(&b.path).unwrap().net;
        let (_, acc) = crate::train::evaluate(&mut net, &val);
        assert_eq!(tb.report.accuracy, vec![acc]);
        assert_eq!(both.report.accuracy, vec![ta.report.accuracy[0], acc]);
    }

    #[test]
    fn a_teacher_whose_outputs_overflow_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.json");
        let mut ck = Checkpoint::load(&teacher(dir.path(), 1).path).unwrap();
        for p in &mut ck.net.params {
            p.w.iter_mut().for_each(|w| *w = 3e38);
        }
        ck.save(&path).unwrap();
        let cfg = DistillConfig {
            teachers: vec![TeacherFile::new(&path).unwrap()],
            weight: 0.5,
            temperature: 1.0,
        };
        let err = soft_targets(&cfg, &ck.net, &split(8, 1), &split(8, 2))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("huge.json: this teacher's outputs are not finite"),
            "{err}"
        );
    }

    #[test]
    fn a_teacher_changed_on_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = teacher(dir.path(), 1);
        let mut bytes = std::fs::read(&t.path).unwrap();
        bytes.push(b' ');
        std::fs::write(&t.path, bytes).unwrap();
        let err = t.load().unwrap_err().to_string();
        assert!(
            err.contains("this teacher changed since the run started"),
            "{err}"
        );
    }

    #[test]
    fn softmax_rows_sum_to_one_at_any_temperature() {
        for tau in [0.5, 1.0, 4.0] {
            let p = softmax(&[3.0, -1.0, 0.5, 80.0], tau);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{p:?}");
            assert_eq!(ops::argmax(&p), 3);
        }
    }
}
