//! `spikeforge events FILE`: reads and checks an event-camera recording and says what is in it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use spikeforge_trainer::events::{self, aedat, Event};

/// Recording formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// N-MNIST binary (5-byte events, 34 × 34).
    Nmnist,
    /// AEDAT 3.1 polarity packets (DVS128 Gesture).
    Aedat3,
    /// jAER AEDAT 2.0 (CIFAR10-DVS).
    Aedat2,
    /// AEDAT 4 (iniVation DV), its first event stream.
    Aedat4,
}

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The recording.
    pub file: PathBuf,
    /// Its format (default: from the file's first bytes: `#!AER-DAT4.0`, `#!AER-DAT3.1`,
    /// `#!AER-DAT2.0`, else N-MNIST).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// DVS128 Gesture label segments (`*_labels.csv`) to check against the recording and list.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Classes the labels may name (DVS128 Gesture: 11).
    #[arg(long, default_value_t = 11)]
    pub classes: u32,
}

fn detect(a: &Args) -> Result<Format> {
    if let Some(f) = a.format {
        return Ok(f);
    }
    let head = std::fs::read(&a.file)
        .map(|b| b[..b.len().min(12)].to_vec())
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    Ok(match head.as_slice() {
        b"#!AER-DAT3.1" => Format::Aedat3,
        b"#!AER-DAT2.0" => Format::Aedat2,
        b"#!AER-DAT4.0" => Format::Aedat4,
        _ => Format::Nmnist,
    })
}

pub fn run(a: Args) -> Result<()> {
    let format = detect(&a)?;
    let ev: Vec<Event> = match format {
        Format::Nmnist => events::read_nmnist(&a.file)?,
        Format::Aedat3 => aedat::read_aedat3(&a.file)?,
        Format::Aedat2 => aedat::read_aedat2(&a.file)?,
        Format::Aedat4 => events::aedat4::read_aedat4(&a.file)?.events,
    };
    let on = ev.iter().filter(|e| e.on).count();
    let range = |f: fn(&Event) -> u64| {
        ev.iter()
            .map(f)
            .fold(None, |r: Option<(u64, u64)>, v| {
                Some(r.map_or((v, v), |(a, b)| (a.min(v), b.max(v))))
            })
            .map_or("—".to_string(), |(a, b)| format!("{a}..={b}"))
    };
    println!(
        "{}: {format:?}, {} events, {on} ON, x {}, y {}, t {} µs",
        a.file.display(),
        ev.len(),
        range(|e| e.x as u64),
        range(|e| e.y as u64),
        range(|e| e.t_us)
    );
    if let Some(labels) = &a.labels {
        if format == Format::Nmnist {
            bail!("--labels: N-MNIST recordings are one sample each, with no label segments");
        }
        let segments = aedat::read_labels(labels, &ev, a.classes)?;
        println!("{}: {} segments", labels.display(), segments.len());
        for s in &segments {
            println!(
                "  class {:>2}  {}..{} µs  {} events",
                s.class,
                s.start_us,
                s.end_us,
                aedat::cut(&ev, s).len()
            );
        }
    }
    Ok(())
}
