//! `spikeforge mnist-events`: converted MNIST, an event set made from MNIST's digits the way
//! N-MNIST was recorded (three saccades, ON/OFF events, 34 × 34; `trainer::events::saccade`),
//! written in N-MNIST's layout and format so that every reader and command takes it as it
//! would take the real set. Always labelled as converted MNIST, never as N-MNIST.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use spikeforge_trainer::events::saccade::{saccade_events, SaccadeConfig};
use spikeforge_trainer::events::{write_nmnist, Event};
use spikeforge_trainer::Split;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Output directory: `Train/<digit>/<index>.bin` and `Test/<digit>/<index>.bin` (N-MNIST's
    /// layout and binary format) and `converted-mnist.json` (how it was made, and counts).
    #[arg(long, default_value = "out/converted-mnist")]
    pub out: PathBuf,
    /// Directory of MNIST's files (default: where `spikeforge data` finds them).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Convert only the first N images of each split.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// Log-intensity contrast threshold of an event (default: calibrated to N-MNIST's event
    /// count).
    #[arg(long, value_parser = super::parse::rate)]
    pub threshold: Option<f32>,
}

/// `converted-mnist.json`.
#[derive(Serialize)]
struct Card {
    what: &'static str,
    source: &'static str,
    method: &'static str,
    threshold: f32,
    saccade_us: u32,
    step_us: u32,
    triangle_px: [(f32, f32); 3],
    splits: Vec<SplitCard>,
}

#[derive(Serialize)]
struct SplitCard {
    name: &'static str,
    samples: usize,
    events_mean: f64,
    events_min: usize,
    events_max: usize,
    on_fraction: f64,
}

pub fn run(a: Args) -> Result<()> {
    let config = SaccadeConfig {
        threshold: a.threshold.unwrap_or(SaccadeConfig::default().threshold),
        ..SaccadeConfig::default()
    };
    let ds = super::train::load_dataset("mnist", a.data.as_deref())?;
    let limit = a.limit.unwrap_or(usize::MAX);
    // Everything goes to a directory beside --out that replaces it when complete.
    let card = spikeforge_model::io::replace_dir(&a.out, ".spikeforge-events-", |tmp| {
        write_set(&ds, limit, &config, tmp)
    })?;
    for s in &card.splits {
        println!(
            "{}: {} samples, {:.0} events each on average ({}..={}), {:.1} % ON",
            s.name,
            s.samples,
            s.events_mean,
            s.events_min,
            s.events_max,
            s.on_fraction * 100.0
        );
    }
    println!(
        "converted MNIST (not N-MNIST) in {}; read one with `spikeforge events {}`",
        a.out.display(),
        a.out
            .join("Test")
            .join(ds.test.labels[0].to_string())
            .join("00000.bin")
            .display()
    );
    Ok(())
}

/// Converts both splits (the first `limit` images of each) into `dir` and writes the card
/// there; returns the card.
fn write_set(
    ds: &spikeforge_trainer::Dataset,
    limit: usize,
    config: &SaccadeConfig,
    dir: &Path,
) -> Result<Card> {
    let mut splits = Vec::new();
    for (name, split) in [("Train", &ds.train), ("Test", &ds.test)] {
        splits.push(convert_split(name, &split.take(limit), config, dir)?);
    }
    let card = Card {
        what: "converted MNIST: MNIST digits turned into events by simulated saccades; not N-MNIST",
        source: "MNIST (LeCun et al.), the files `spikeforge data` finds",
        method: "three 100 ms saccades in a triangle, (1 − cos πτ)/2 profile, bilinear sampling, ln(0.1 + I), one event per threshold crossing at its interpolated time; no noise",
        threshold: config.threshold,
        saccade_us: config.saccade_us,
        step_us: config.step_us,
        triangle_px: [(0.0, 0.0), config.vertices[0], config.vertices[1]],
        splits,
    };
    let card_path = dir.join("converted-mnist.json");
    std::fs::write(&card_path, serde_json::to_string_pretty(&card)? + "\n")
        .with_context(|| format!("writing {}", card_path.display()))?;
    Ok(card)
}

/// Converts and writes one split; returns its counts.
fn convert_split(
    name: &'static str,
    split: &Split,
    config: &SaccadeConfig,
    dir: &Path,
) -> Result<SplitCard> {
    let (h, w) = (split.shape.0 as usize, split.shape.1 as usize);
    for digit in 0..10 {
        let d = dir.join(name).join(digit.to_string());
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let bar = ProgressBar::new(split.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    bar.set_message(format!("{name}: digits to events"));
    let counts: Vec<(usize, usize)> = (0..split.len())
        .into_par_iter()
        .map(|i| -> Result<(usize, usize)> {
            let image = &split.images[i * h * w..(i + 1) * h * w];
            let events: Vec<Event> = saccade_events(image, (h, w), config);
            let path = dir
                .join(name)
                .join(split.labels[i].to_string())
                .join(format!("{i:05}.bin"));
            std::fs::write(&path, write_nmnist(&events))
                .with_context(|| format!("writing {}", path.display()))?;
            bar.inc(1);
            Ok((events.len(), events.iter().filter(|e| e.on).count()))
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    let total: usize = counts.iter().map(|c| c.0).sum();
    let on: usize = counts.iter().map(|c| c.1).sum();
    Ok(SplitCard {
        name,
        samples: counts.len(),
        events_mean: total as f64 / counts.len().max(1) as f64,
        events_min: counts.iter().map(|c| c.0).min().unwrap_or(0),
        events_max: counts.iter().map(|c| c.0).max().unwrap_or(0),
        on_fraction: on as f64 / total.max(1) as f64,
    })
}
