//! `spikeforge infer`: the golden model's result for images from a file.

use std::path::PathBuf;

use anyhow::Result;
use spikeforge_model::Golden;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (JSON IR).
    pub model: PathBuf,
    /// Images: raw bytes (H·W·C per image; T frames of H·W·C for a `frames` model) or an IDX
    /// image file (optionally gzipped).
    #[arg(long)]
    pub input: PathBuf,
    /// At most this many images.
    #[arg(long, value_parser = super::parse::at_least_one)]
    pub limit: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let golden = Golden::new(&model);
    let (images, _) =
        crate::images::read_images(&a.input, &model.input, golden.image_len(), a.limit)?;
    let results = golden.run_batch(&images, false)?;
    for (i, r) in results.iter().enumerate() {
        println!("image {i}: class {}  logits {:?}", r.class, r.logits);
    }
    Ok(())
}
