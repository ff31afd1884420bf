//! A training run end to end, as `spikeforge train`, `convert` and `demo` run it: the options
//! checked before anything is written, a fresh start or a resume from the checkpoint in the
//! output directory, the train/validation split, the epochs with their JSON log, checkpoint and
//! plot, and the export-evaluate-summarise step. The caller brings the progress display (an
//! [`Observer`]); everything a run decides is here.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use spikeforge_model::IoError;

use crate::ale::Decision;
use crate::data::{self, DataError, Dataset, Split};
use crate::distill::{self, DistillConfig, TeacherReport};
use crate::events::sets::event_set;
use crate::events::{load_event_set, load_event_split, Bins, FramingConfig};
use crate::export::{self, ExportError};
use crate::net::NetError;
use crate::swa::SwaLog;
use crate::train::{
    self, Checkpoint, EpochLog, Observer, OptionsError, SplitConfig, TrainConfig, TrainError,
    TrainOptions, DEFAULT_VAL,
};

/// A run to start or resume.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's options. On resume, the architecture, dataset, T and network kind must match
    /// the checkpoint's, and only the options [`TrainOptions::apply_on_resume`] names (and
    /// `epochs`) change it.
    pub train: TrainOptions,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// Directory of the dataset's files (default: where its package installs them).
    pub data_dir: Option<PathBuf>,
    /// Output directory: checkpoint, log, plot, model.
    pub out: PathBuf,
    /// Stop after this many epochs of this invocation.
    pub stop_after: Option<usize>,
}

/// Why a run cannot start, continue or finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The options cannot make a run.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The checkpoint to resume does not fit the options.
    #[error("{}: {reason}", path.display())]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// `--resume` without a readable checkpoint in the output directory.
    #[error("--resume needs the checkpoint of an earlier run in --out: {0}")]
    NoCheckpoint(TrainError),
    /// The network does not fit the data, or the split leaves nothing to train on.
    #[error("{0}")]
    Data(String),
    /// Reading the dataset.
    #[error(transparent)]
    Dataset(#[from] DataError),
    /// Building the network.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Training, the checkpoint or the teachers.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Exporting the integer model.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Writing the model.
    #[error(transparent)]
    Model(#[from] spikeforge_model::ModelError),
    /// Writing the log or the summary.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// A finished training run: its checkpoint, the data, and what only the run itself knows.
pub struct Trained {
    /// The run's final checkpoint.
    pub ck: Checkpoint,
    /// The dataset it trained on.
    pub ds: Dataset,
    /// Training images (the validation images excluded).
    pub train_images: usize,
    /// How good the teachers were (distilled runs).
    pub teachers: Option<TeacherReport>,
}

/// What a finished run reports (also written as `summary.json`).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub dataset: String,
    pub arch: String,
    pub time_steps: usize,
    pub epochs: usize,
    pub train_images: usize,
    pub test_images: usize,
    pub float_accuracy: f64,
    pub integer_accuracy: f64,
    pub gap_points: f64,
    pub binary_layers: Vec<usize>,
    pub weight_bits: u64,
    pub weight_bits_all_full_precision: u64,
    pub storage_saving_percent: f64,
    pub train_seconds: f64,
    pub model: PathBuf,
    /// What the weight average gave on the validation images (runs with --swa-epochs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swa: Option<SwaLog>,
    /// The teachers and the distillation weight and temperature (runs with --teacher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
    /// The teachers' validation accuracy, alone and as the ensemble (runs with --teacher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teachers: Option<TeacherReport>,
    /// The float network's class for each evaluated test image.
    #[serde(skip)]
    pub float_classes: Vec<usize>,
    /// The integer model's (golden = RTL) class for each evaluated test image.
    #[serde(skip)]
    pub integer_classes: Vec<usize>,
}

/// What a run shows besides the epochs: the opening line and the teachers.
pub trait SessionObserver: Observer {
    /// Called once the run is set up, before the first epoch.
    fn opening(&mut self, _ck: &Checkpoint, _ds: &Dataset, _train: usize, _val: usize) {}
}

/// Trains per the options: checks everything it can before any output, then trains with the
/// log and a checkpoint per epoch, and draws the training plot (a failure to draw it is
/// returned as a warning, not an error: the run itself is done).
pub fn train_run(
    o: &RunOptions,
    load: impl FnOnce(&TrainConfig, Option<&Path>) -> Result<Dataset, DataError>,
    obs: &mut dyn SessionObserver,
) -> Result<(Trained, Option<String>), SessionError> {
    let ckpt_path = o.out.join("checkpoint.json");
    let mut ck = if o.resume {
        if !o.train.teachers.is_empty() {
            return Err(OptionsError::Invalid(
                "--teacher cannot change on --resume: the run's checkpoint names its teachers"
                    .into(),
            )
            .into());
        }
        resumed(&o.train, &ckpt_path)?
    } else {
        let config = o.train.config()?;
        config.check()?;
        Checkpoint::new(config)?
    };
    if let Some(d) = &ck.config.distill {
        distill::check_teachers(d, &ck.net)?;
    }
    let ds = load(&ck.config, o.data_dir.as_deref())?;
    check_fit(&ck, &ds)?;
    let asked = SplitConfig {
        limit: o.train.limit,
        val: o.train.val,
    };
    let (train_set, val_set) = split(ck.config.split.unwrap_or(asked), &ds)?;
    std::fs::create_dir_all(&o.out).map_err(IoError::at(&o.out))?;
    obs.opening(&ck, &ds, train_set.len(), val_set.len());
    let mut logged = LogFile {
        inner: obs,
        file: open_log(&o.out.join("log.jsonl"), &ck.log)?,
        teachers: None,
    };
    train::train(
        &mut ck,
        &train_set,
        &val_set,
        Some(&ckpt_path),
        o.stop_after,
        &mut logged,
    )?;
    let teachers = logged.teachers;
    let png = o.out.join("training.png");
    let warning =
        crate::plot::training_png(&ck.log, ck.swa_log.as_ref(), ck.config.ale.threshold, &png)
            .err()
            .map(|e| format!("{}: could not draw the training plot: {e}", png.display()));
    let trained = Trained {
        ck,
        ds,
        train_images: train_set.len(),
        teachers,
    };
    Ok((trained, warning))
}

impl Trained {
    /// Exports the run's network to `model_path` and summarises it on the whole test set.
    pub fn finish(&self, model_path: &Path) -> Result<Summary, SessionError> {
        let mut s = finish(&self.ck, &self.ds, model_path, None)?;
        s.train_images = self.train_images;
        s.teachers = self.teachers.clone();
        Ok(s)
    }
}

/// Exports a checkpoint, evaluates float and integer accuracy on the first `test_limit` test
/// images (all without), writes the model and returns the summary.
pub fn finish(
    ck: &Checkpoint,
    ds: &Dataset,
    model_path: &Path,
    test_limit: Option<usize>,
) -> Result<Summary, SessionError> {
    let mut net = ck.net.clone();
    let model = export::export(&net, &export::model_name(&ds.name))?;
    spikeforge_model::save(&model, model_path)?;
    let test = ds.test.take(test_limit.unwrap_or(usize::MAX));
    let float_pred = train::predict(&mut net, &test);
    let int_pred = export::golden_classes(&model, &model.input.quantised(&test.images));
    let fa = data::accuracy(&float_pred, &test.labels);
    let ia = data::accuracy(&int_pred, &test.labels);
    let (bits, full) = train::storage_bits(&net);
    Ok(Summary {
        dataset: ds.name.clone(),
        arch: ck.config.arch.clone(),
        time_steps: ck.config.time_steps,
        epochs: ck.epoch,
        train_images: 0,
        test_images: test.len(),
        float_accuracy: fa,
        integer_accuracy: ia,
        gap_points: (fa - ia) * 100.0,
        binary_layers: net.binary_layers(),
        weight_bits: bits,
        weight_bits_all_full_precision: full,
        storage_saving_percent: 100.0 * (1.0 - bits as f64 / full.max(1) as f64),
        train_seconds: ck.log.iter().map(|e| e.seconds).sum(),
        model: model_path.to_path_buf(),
        swa: ck.swa_log.clone(),
        distill: ck.config.distill.clone(),
        teachers: None,
        float_classes: float_pred,
        integer_classes: int_pred,
    })
}

/// Writes `summary.json` beside the model.
pub fn write_summary(s: &Summary, path: &Path) -> Result<(), SessionError> {
    let text = serde_json::to_string_pretty(s).expect("a summary always serialises");
    std::fs::write(path, text).map_err(IoError::at(path))?;
    Ok(())
}

/// The data of a run: the image set, or the event set framed as the run frames it.
pub fn load_data(c: &TrainConfig, dir: Option<&Path>) -> Result<Dataset, DataError> {
    match (&c.framing, event_set(&c.dataset)) {
        (Some(f), Some(set)) => load_event_set(set, dir, c.time_steps, f),
        _ => data::load(&c.dataset, dir),
    }
}

/// The caller's observer with each epoch's line of `log.jsonl` written before it is passed on.
struct LogFile<'a> {
    inner: &'a mut dyn SessionObserver,
    file: std::fs::File,
    teachers: Option<TeacherReport>,
}

impl Observer for LogFile<'_> {
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f32, acc: f32) {
        self.inner.step(epoch, step, steps, loss, acc);
    }
    fn start(&mut self, decisions: &[Decision]) {
        self.inner.start(decisions);
    }
    fn epoch(&mut self, e: &EpochLog) {
        self.inner.epoch(e);
        // A failed log write must not stop a long run; the checkpoint holds the same log.
        let _ = write_log_line(&mut self.file, e);
    }
    fn averaged(&mut self, s: &SwaLog) {
        self.inner.averaged(s);
    }
    fn teachers(&mut self, r: &TeacherReport) {
        self.teachers = Some(r.clone());
        self.inner.teachers(r);
    }
}

/// Creates the JSON log, holding the lines of the epochs a resumed checkpoint has done. Written
/// from the checkpoint rather than appended to: a run stopped after an epoch's log line but
/// before its checkpoint would otherwise log that epoch twice.
fn open_log(path: &Path, done: &[EpochLog]) -> Result<std::fs::File, IoError> {
    let mut log = std::fs::File::create(path).map_err(IoError::at(path))?;
    for e in done {
        write_log_line(&mut log, e).map_err(IoError::at(path))?;
    }
    Ok(log)
}

/// One epoch's line of `log.jsonl`, the same whether written live or from a checkpoint.
fn write_log_line(log: &mut impl Write, e: &EpochLog) -> std::io::Result<()> {
    writeln!(log, "{}", serde_json::to_string(e)?)
}

/// The checkpoint of an earlier run, which must be of the same network and data, with the
/// options that may change on resuming applied.
fn resumed(o: &TrainOptions, ckpt_path: &Path) -> Result<Checkpoint, SessionError> {
    let refuse = |reason: String| SessionError::Resume {
        path: ckpt_path.to_path_buf(),
        reason,
    };
    let config = o.config()?;
    let mut c = Checkpoint::load(ckpt_path).map_err(SessionError::NoCheckpoint)?;
    let old = &c.config;
    // Without --arch or --time-steps the run's own, not the dataset's defaults.
    let arch_differs = o.arch.is_some() && old.arch != config.arch;
    let steps_differ = o.time_steps.is_some() && old.time_steps != config.time_steps;
    if arch_differs || steps_differ || old.dataset != config.dataset || old.neuron != config.neuron
    {
        return Err(refuse(format!(
            "the checkpoint is for {} `{}` at T = {}, not {} `{}` at T = {}",
            old.dataset, old.arch, old.time_steps, config.dataset, config.arch, config.time_steps
        )));
    }
    if let Some(n) = o.epochs {
        if n < c.epoch {
            return Err(refuse(format!(
                "--epochs {n} is fewer than the {} epochs the checkpoint has done",
                c.epoch
            )));
        }
        c.config.epochs = n;
    }
    // The split stays the run's: a different --val or --limit would move images between the
    // training and validation sets halfway through.
    if let Some(recorded) = c.config.split {
        let asked = |given: Option<usize>, have: Option<usize>| given.is_some() && given != have;
        if asked(o.val, recorded.val) || asked(o.limit, recorded.limit) {
            return Err(refuse(format!(
                "the run was started with {}; --val and --limit cannot change on --resume",
                describe_split(recorded)
            )));
        }
    }
    o.apply_on_resume(&mut c.config);
    c.config
        .check()
        .map_err(|e| refuse(format!("resuming: {e}")))?;
    Ok(c)
}

fn describe_split(s: SplitConfig) -> String {
    let part = |name: &str, v: Option<usize>| match v {
        Some(n) => format!("--{name} {n}"),
        None => format!("no --{name}"),
    };
    format!("{}, {}", part("limit", s.limit), part("val", s.val))
}

/// The network must take the dataset's images and have one output per class.
fn check_fit(ck: &Checkpoint, ds: &Dataset) -> Result<(), SessionError> {
    let (h, w, c) = ck.net.input;
    if ds.train.shape != (h as u32, w as u32, c as u32) || ck.net.classes() != ds.classes {
        return Err(SessionError::Data(format!(
            "architecture `{}` takes {h}×{w}×{c} images into {} classes; {} has {}×{}×{} images in {} classes",
            ck.config.arch,
            ck.net.classes(),
            ds.name,
            ds.train.shape.0,
            ds.train.shape.1,
            ds.train.shape.2,
            ds.classes
        )));
    }
    Ok(())
}

/// The training images (the first `limit`) split into training and validation sets: the last
/// `val` images (default [`DEFAULT_VAL`], or a tenth of `limit`) are held out.
fn split(s: SplitConfig, ds: &Dataset) -> Result<(Split, Split), SessionError> {
    let SplitConfig { limit, val } = s;
    let full = match limit {
        Some(n) => ds.train.take(n),
        None => ds.train.clone(),
    };
    // At least one validation image: the plateau and the estimator's calibration need one.
    let val_n = val
        .unwrap_or(if limit.is_some() {
            full.len() / 10
        } else {
            DEFAULT_VAL
        })
        .max(1);
    if val_n >= full.len() {
        return Err(SessionError::Data(format!(
            "{} validation image(s) leave no training images: the training set has {}{}",
            val_n,
            full.len(),
            limit.map_or(String::new(), |n| format!(" (--limit {n})"))
        )));
    }
    Ok(full.split_last(val_n))
}

/// The first `limit` test images of a dataset, checked against the input shape of the model
/// in `model_path`, at the model's pixel width (the top `pixel_bits` bits of each pixel).
pub fn test_images(
    model: &spikeforge_model::Model,
    model_path: &Path,
    ds: &Dataset,
    limit: Option<usize>,
) -> Result<Split, SessionError> {
    let mut split = check_shape(
        model,
        model_path,
        &ds.name,
        ds.test.take(limit.unwrap_or(usize::MAX)),
    )?;
    model.input.quantise_image(&mut split.images);
    Ok(split)
}

/// The first `limit` test samples of the dataset `name` as `model` takes them: images, or
/// for an event set its `Test` recordings framed into the model's T steps with its pixel
/// bits and size, in `bins` (the IR does not record how a model's training framed its set).
pub fn model_test_split(
    model: &spikeforge_model::Model,
    model_path: &Path,
    name: &str,
    dir: Option<&Path>,
    limit: Option<usize>,
    bins: Bins,
) -> Result<Split, SessionError> {
    let Some(set) = event_set(name) else {
        let ds = data::load(name, dir)?;
        return test_images(model, model_path, &ds, limit);
    };
    if model.input.encoding != spikeforge_model::ir::Encoding::Frames {
        return Err(SessionError::Data(format!(
            "{}: {} is an event set and the model takes still images (its input encoding is not \"frames\")",
            model_path.display(),
            set.name
        )));
    }
    let framing = FramingConfig::for_model(model, set, bins);
    let steps = model.time_steps as usize;
    let split = load_event_split(set, dir, "Test", steps, &framing, limit)?;
    check_shape(model, model_path, set.name, split)
}

fn check_shape(
    model: &spikeforge_model::Model,
    model_path: &Path,
    name: &str,
    test: Split,
) -> Result<Split, SessionError> {
    let i = &model.input;
    if (i.height, i.width, i.channels) != test.shape {
        return Err(SessionError::Data(format!(
            "{}: the model takes {}×{}×{} images, the {} test images are {}×{}×{}",
            model_path.display(),
            i.height,
            i.width,
            i.channels,
            name,
            test.shape.0,
            test.shape.1,
            test.shape.2
        )));
    }
    Ok(test)
}
