//! `spikeforge bench --train`: training-step and epoch time of the trainer on a dataset, the
//! figures `bench/torch_train_step.py` measures for PyTorch and snnTorch on the same network.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use spikeforge_trainer::train::{Checkpoint, TrainConfig};

/// What is measured.
pub struct Setup<'a> {
    pub arch: &'a str,
    pub time_steps: usize,
    pub batch: usize,
    pub steps: usize,
    pub epoch: bool,
    pub full_precision: bool,
    pub data: &'a super::train::DataArgs,
}

#[derive(Serialize)]
struct Row {
    framework: &'static str,
    arch: String,
    time_steps: usize,
    batch: usize,
    threads: usize,
    step_ms_median: f64,
    step_ms_mean: f64,
    steps: usize,
    epoch_s: Option<f64>,
    epoch_images: usize,
    binary_layers: Vec<usize>,
}

/// Times `steps` training steps (after 3 warm-up steps) and optionally one whole epoch.
pub fn run(s: &Setup, out: &Path) -> Result<()> {
    let ds = s.data.load()?;
    if s.batch >= ds.train.len() {
        anyhow::bail!(
            "--batch {} is not smaller than the {} training images of {}",
            s.batch,
            ds.train.len(),
            ds.name
        );
    }
    let mut config = TrainConfig {
        arch: s.arch.into(),
        time_steps: s.time_steps,
        batch: s.batch,
        epochs: 1,
        qat_epochs: 0,
        ..TrainConfig::default()
    };
    if s.full_precision {
        config.ale.cap = 0.0;
    }
    let mut ck = Checkpoint::new(config)?;
    // The estimator's first decision, as in a real run (none binary with --full-precision).
    let cal = ds.train.take(256);
    spikeforge_trainer::ale::update(
        &mut ck.net,
        &ck.config.ale,
        &spikeforge_trainer::ale::Calibration {
            images: &cal.images,
            labels: &cal.labels,
        },
    );
    let n = ds.train.image_len();
    let mut times = Vec::new();
    for step in 0..s.steps + 3 {
        let start = (step * s.batch) % (ds.train.len() - s.batch);
        let images = &ds.train.images[start * n..(start + s.batch) * n];
        let labels = &ds.train.labels[start..start + s.batch];
        let t0 = Instant::now();
        spikeforge_trainer::train::train_step(&mut ck, images, labels, 1e-3);
        if step >= 3 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let epoch_s = s.epoch.then(|| {
        let t0 = Instant::now();
        let train = ds.train.clone();
        let mut ck2 = Checkpoint::new(ck.config.clone()).expect("built once already");
        spikeforge_trainer::train::train(
            &mut ck2,
            &train,
            &ds.test.take(1),
            None,
            None,
            &mut spikeforge_trainer::train::Silent,
        )
        .expect("a one-epoch run");
        t0.elapsed().as_secs_f64()
    });
    let row = Row {
        framework: "spikeforge",
        arch: s.arch.into(),
        time_steps: s.time_steps,
        batch: s.batch,
        threads: rayon::current_num_threads(),
        step_ms_median: median,
        step_ms_mean: mean,
        steps: times.len(),
        epoch_s,
        epoch_images: ds.train.len(),
        binary_layers: ck.net.binary_layers(),
    };
    println!(
        "spikeforge training step: {median:.1} ms median ({mean:.1} ms mean) over {} steps, batch {}, T = {}, {} threads{}",
        row.steps,
        s.batch,
        s.time_steps,
        row.threads,
        epoch_s.map_or(String::new(), |e| format!("; one epoch of {} images: {e:.1} s", ds.train.len()))
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&row)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
