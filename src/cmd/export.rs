//! `spikeforge export`: a training checkpoint becomes an integer hardware model.

use std::path::PathBuf;

use anyhow::Result;
use spikeforge_trainer::train::Checkpoint;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint written by `spikeforge train` (`checkpoint.json`).
    pub checkpoint: PathBuf,
    /// Model file to write.
    #[arg(long, default_value = "model.json")]
    pub out: PathBuf,
    /// Also evaluate float and integer accuracy on this many test images of the checkpoint's
    /// dataset (0: skip).
    #[arg(long, default_value_t = 0)]
    pub eval: usize,
    /// Directory of the dataset (for --eval and --bn-recalibrate).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// First re-estimate the BatchNorm statistics layer by layer on the first N training
    /// images, as `spikeforge train --bn-recalibrate` does before its export (for checkpoints
    /// trained without it; 0: keep the checkpoint's statistics).
    #[arg(long, default_value_t = 0)]
    pub bn_recalibrate: usize,
}

pub fn run(a: Args) -> Result<()> {
    let mut ck = Checkpoint::load(&a.checkpoint)?;
    let ds = if a.eval > 0 || a.bn_recalibrate > 0 {
        Some(spikeforge_trainer::data::load(
            &ck.config.dataset,
            a.data.as_deref(),
        )?)
    } else {
        None
    };
    if let Some(ds) = ds.as_ref().filter(|_| a.bn_recalibrate > 0) {
        let images = ds.train.take(a.bn_recalibrate);
        ck.net.recalibrate_bn(&images.images);
        println!(
            "BatchNorm statistics re-estimated on the first {} training images",
            images.len()
        );
    }
    let Some(ds) = ds.filter(|_| a.eval > 0) else {
        let name = spikeforge_trainer::export::model_name(&ck.config.dataset);
        let model = spikeforge_trainer::export::export(&ck.net, &name)?;
        spikeforge_model::save(&model, &a.out)?;
        println!(
            "model: {} ({} layers, T = {}, from epoch {} of {})",
            a.out.display(),
            model.layers.len(),
            model.time_steps,
            ck.epoch,
            a.checkpoint.display()
        );
        return Ok(());
    };
    let s = super::train::finish(&ck, &ds, &a.out, Some(a.eval))?;
    super::train::print_summary(&s);
    Ok(())
}
