//! `spikeforge data`: which datasets are present, whether their files are intact and
//! official, and how to get the missing ones.

use std::path::PathBuf;

use anyhow::{bail, Result};
use spikeforge_trainer::data;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Only this dataset (default: all known ones).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Look in this directory instead of the defaults (with --dataset).
    #[arg(long, requires = "dataset")]
    pub data: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let sets: Vec<&data::KnownDataset> = match &a.dataset {
        Some(n) => vec![data::known(n)?],
        None => data::KNOWN.iter().collect(),
    };
    let mut bad = Vec::new();
    for ds in sets {
        let checks = data::check(ds, a.data.as_deref());
        let ok = checks.iter().all(|c| c.status == "ok");
        println!(
            "{} ({}×{}×{}, {} classes): {}",
            ds.name,
            ds.shape.0,
            ds.shape.1,
            ds.shape.2,
            ds.classes,
            if ok { "ready" } else { "not usable" }
        );
        for c in &checks {
            let sum = match c.checksum_ok {
                Some(true) => "official content (SHA-256 of the decompressed data matches)",
                Some(false) => "checksum differs from the official content",
                None => "no official checksum known here",
            };
            match &c.path {
                Some(p) => println!("  {:<28} {}: {}; {sum}", c.name, p.display(), c.status),
                None => println!("  {:<28} missing", c.name),
            }
        }
        if !ok {
            println!("  to get it: {}", ds.help);
            if a.dataset.is_some() {
                bad.push(ds.name);
            }
        }
    }
    if !bad.is_empty() {
        bail!("{} is not usable (see above)", bad.join(", "));
    }
    Ok(())
}
