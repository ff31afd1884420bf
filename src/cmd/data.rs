//! `spikeforge data`: which datasets are present, whether their files are intact and
//! official, and how to get the missing ones.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use spikeforge_trainer::data;
use spikeforge_trainer::events::sets;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Only this dataset (default: all known ones), an image set or an event set (nmnist,
    /// converted-mnist, dvs-gesture, cifar10-dvs).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Look in this directory instead of the defaults (with --dataset).
    #[arg(long, requires = "dataset")]
    pub data: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    if let Some(set) = a.dataset.as_deref().and_then(sets::event_set) {
        return check_event_set(set, a.data.as_deref(), true);
    }
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
    if a.dataset.is_none() {
        for set in sets::EVENT_SETS {
            check_event_set(set, None, false)?;
        }
    }
    if !bad.is_empty() {
        bail!("{} is not usable (see above)", bad.join(", "));
    }
    Ok(())
}

/// Prints an event set's check; with `required`, a set that is not ready is an error.
fn check_event_set(set: &sets::EventSet, dir: Option<&Path>, required: bool) -> Result<()> {
    let c = sets::check_set(set, dir);
    println!(
        "{} (events, {}×{} sensor, {} classes): {}",
        set.name,
        set.sensor.0,
        set.sensor.1,
        set.classes,
        if c.ready { "ready" } else { "not usable" }
    );
    for p in &c.parts {
        println!("  {p}");
    }
    if !c.ready {
        println!("  to get it: {}", set.help);
        if required {
            bail!("{} is not usable (see above)", set.name);
        }
    }
    Ok(())
}
