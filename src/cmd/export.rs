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
    /// Directory of the dataset (for --eval).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let ck = Checkpoint::load(&a.checkpoint)?;
    if a.eval == 0 {
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
    }
    let ds = spikeforge_trainer::data::load(&ck.config.dataset, a.data.as_deref())?;
    let s = super::train::finish(&ck, &ds, &a.out, Some(a.eval))?;
    super::train::print_summary(&s);
    Ok(())
}
