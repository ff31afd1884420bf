//! An event set as training data: every recording of a split framed into T input maps (the
//! IR's `frames` encoding), in a [`Dataset`] whose splits hold T frames per sample.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::sets::{files_with, EventSet, Layout};
use super::{format_error, frames, read_nmnist, Bins, Framing};
use crate::data::{DataError, Dataset, Split};

/// How a run frames its event set (recorded in the checkpoint: a resumed run frames alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FramingConfig {
    /// How a recording is cut into the T steps.
    pub bins: Bins,
    /// The largest count a frame pixel keeps (1: binary frames).
    pub clip: u8,
    /// Spatial down-sampling factor.
    pub factor: u16,
}

impl FramingConfig {
    /// Bits of a frame value, the model's `pixel_bits`.
    pub fn pixel_bits(&self) -> u32 {
        u8::BITS - self.clip.max(1).leading_zeros()
    }

    /// How `model`'s input frames `set`: its pixel bits give the clip, its width the
    /// down-sampling (the IR does not record the bins; `bins` gives them).
    pub fn for_model(model: &spikeforge_model::Model, set: &EventSet, bins: Bins) -> Self {
        let bits = model.input.pixel_bits.clamp(1, 8);
        FramingConfig {
            bins,
            clip: ((1u32 << bits) - 1) as u8,
            factor: (u32::from(set.sensor.0) / model.input.width.max(1)).max(1) as u16,
        }
    }

    /// Frames of `steps` steps on `set`'s sensor.
    fn framing(&self, set: &EventSet, steps: usize) -> Framing {
        Framing {
            width: set.sensor.0,
            height: set.sensor.1,
            steps,
            bins: self.bins,
            factor: self.factor.max(1),
            clip: self.clip.max(1),
        }
    }
}

/// Loads an event set as framed samples: `Train` and `Test`, each recording framed into
/// `steps` maps of `(sensor / factor) × 2` (OFF, ON) counts. Recordings are ordered by file
/// name, then class, so that the classes interleave (N-MNIST and converted MNIST name a file
/// by its MNIST index) and a validation split cut from the end holds every class.
pub fn load_event_set(
    set: &EventSet,
    dir: Option<&Path>,
    steps: usize,
    framing: &FramingConfig,
) -> Result<Dataset, DataError> {
    Ok(Dataset {
        name: set.name.into(),
        train: load_event_split(set, dir, "Train", steps, framing)?,
        test: load_event_split(set, dir, "Test", steps, framing)?,
        classes: set.classes as usize,
    })
}

/// One part (`Train` or `Test`) of an event set as framed samples, as [`load_event_set`]
/// frames it.
pub fn load_event_split(
    set: &EventSet,
    dir: Option<&Path>,
    part: &str,
    steps: usize,
    framing: &FramingConfig,
) -> Result<Split, DataError> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => set.default_dir().ok_or_else(|| DataError::Missing {
            name: set.name.into(),
            missing: "directory".into(),
            dir: PathBuf::from(set.default_dirs.join(" or ")),
            help: format!("to get it: {}", set.help),
        })?,
    };
    let Layout::DigitFolders = set.layout else {
        return Err(format_error(
            &dir,
            format!(
                "training on {} is not supported yet: only the digit-folder sets (nmnist, converted-mnist) load as framed samples",
                set.name
            ),
        ));
    };
    let f = framing.framing(set, steps);
    let files = digit_files(&dir.join(part), set.classes)?;
    let framed: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(_, path)| read_nmnist(path).map(|ev| frames(&ev, &f)))
        .collect::<Result<_, _>>()?;
    Ok(Split {
        images: framed.concat(),
        labels: files.iter().map(|(label, _)| *label).collect(),
        shape: (
            u32::from(f.height / f.factor),
            u32::from(f.width / f.factor),
            2,
        ),
        steps: steps as u32,
    })
}

/// Every `.bin` recording under `root/<class>/`, with its class, ordered by file name, then
/// class.
fn digit_files(root: &Path, classes: u32) -> Result<Vec<(u8, PathBuf)>, DataError> {
    let mut files = Vec::new();
    for class in 0..classes {
        let d = root.join(class.to_string());
        files.extend(files_with(&d, "bin")?.into_iter().map(|p| (class as u8, p)));
    }
    if files.is_empty() {
        return Err(format_error(
            root,
            "no recordings in its class folders".into(),
        ));
    }
    files.sort_by(|a, b| (a.1.file_name(), a.0).cmp(&(b.1.file_name(), b.0)));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_bits_hold_the_clip() {
        let f = |clip| FramingConfig {
            bins: Bins::Time,
            clip,
            factor: 1,
        };
        assert_eq!(f(1).pixel_bits(), 1);
        assert_eq!(f(3).pixel_bits(), 2);
        assert_eq!(f(4).pixel_bits(), 3);
        assert_eq!(f(255).pixel_bits(), 8);
    }
}
