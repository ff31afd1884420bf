//! `spikeforge export`: a training checkpoint becomes an integer hardware model.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
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
    /// Export the mean of CHECKPOINT and these checkpoints of the same run instead (weight
    /// averaging over epoch ends, e.g. the last epochs' snapshots); needs --bn-recalibrate,
    /// since no averaged network ran with the averaged BatchNorm statistics.
    #[arg(long, num_args = 1.., value_name = "CKPT")]
    pub average: Vec<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let mut ck = Checkpoint::load(&a.checkpoint)?;
    // The dataset first: a missing one must fail before anything is printed.
    let ds = if a.eval > 0 || a.bn_recalibrate > 0 {
        Some(spikeforge_trainer::data::load(
            &ck.config.dataset,
            a.data.as_deref(),
        )?)
    } else {
        None
    };
    if !a.average.is_empty() {
        average_into(&mut ck, &a)?;
    }
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
    let s = super::train::evaluating(a.eval.min(ds.test.len()), || {
        spikeforge_trainer::session::finish(&ck, &ds, &a.out, Some(a.eval))
    })?;
    super::train::print_summary(&s);
    Ok(())
}

/// Replaces `ck`'s network with the mean of it and the `--average` checkpoints'.
fn average_into(ck: &mut Checkpoint, a: &Args) -> Result<()> {
    if a.bn_recalibrate == 0 {
        bail!("--average needs --bn-recalibrate N: the averaged BatchNorm statistics belong to no network");
    }
    let others = a
        .average
        .iter()
        .map(|p| Checkpoint::load(p).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let nets: Vec<_> = std::iter::once(&ck.net)
        .chain(others.iter().map(|c| &c.net))
        .collect();
    let mean = spikeforge_trainer::average::average(&nets).with_context(|| {
        let names: Vec<_> = std::iter::once(&a.checkpoint)
            .chain(&a.average)
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "averaging {} (network i is the i-th of these)",
            names.join(", ")
        )
    })?;
    let epochs: Vec<_> = std::iter::once(ck.epoch)
        .chain(others.iter().map(|c| c.epoch))
        .collect();
    println!("averaged {} checkpoints (epochs {epochs:?})", nets.len());
    ck.net = mean;
    Ok(())
}
