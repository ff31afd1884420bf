//! `spikeforge eval`: golden-model (= RTL) accuracy of a hardware model on a dataset.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    #[command(flatten)]
    pub data: super::train::DataArgs,
    /// At most this many test images.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
    /// Event sets: the bins the model was trained with (`train --bins`; the model file does
    /// not record them).
    #[arg(long, value_enum, default_value_t)]
    pub bins: super::train::BinsArg,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let test = super::train::test_samples(
        &model,
        &a.model,
        &a.data.dataset,
        a.data.data.as_deref(),
        a.limit,
        a.bins,
    )?;
    let t0 = std::time::Instant::now();
    let pred = spikeforge_trainer::export::golden_classes(&model, &test.images);
    let correct = spikeforge_trainer::data::correct(&pred, &test.labels);
    println!(
        "{}: {correct}/{} = {:.2} % on the {} test set (golden model, bit-exact with the RTL; {:.1} s)",
        a.model.display(),
        test.len(),
        100.0 * correct as f64 / test.len().max(1) as f64,
        a.data.dataset,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
