//! An event set as training data: every recording of a split framed into T input maps (the
//! IR's `frames` encoding), in a [`Dataset`] whose splits hold T frames per sample.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::sets::{files_with, EventSet, Layout};
use super::{aedat, format_error, frames, read_nmnist, Bins, Framing};
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
        train: load_event_split(set, dir, "Train", steps, framing, None)?,
        test: load_event_split(set, dir, "Test", steps, framing, None)?,
        classes: set.classes as usize,
    })
}

/// One part (`Train` or `Test`) of an event set as framed samples, as [`load_event_set`]
/// frames it; with `limit`, its first `limit` samples (only their recordings are read where a
/// recording is one sample).
pub fn load_event_split(
    set: &EventSet,
    dir: Option<&Path>,
    part: &str,
    steps: usize,
    framing: &FramingConfig,
    limit: Option<usize>,
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
    let f = framing.framing(set, steps);
    let limit = limit.unwrap_or(usize::MAX);
    let mut samples = match set.layout {
        Layout::DigitFolders => digit_samples(&dir.join(part), set.classes, &f, limit)?,
        Layout::LabelledRecordings => gesture_samples(&dir, part, set.classes, &f)?,
        Layout::ClassFolders(classes) => class_folder_samples(&dir, classes, part, &f, limit)?,
    };
    samples.truncate(limit);
    if samples.is_empty() {
        return Err(format_error(&dir, format!("no {part} samples")));
    }
    Ok(Split {
        labels: samples.iter().map(|(label, _)| *label).collect(),
        images: samples.into_iter().flat_map(|(_, frames)| frames).collect(),
        shape: (
            u32::from(f.height / f.factor),
            u32::from(f.width / f.factor),
            2,
        ),
        steps: steps as u32,
    })
}

/// A sample: its class and its frames.
type Sample = (u8, Vec<u8>);

/// N-MNIST's layout: every recording under `root/<digit>/`, ordered by file name, then class.
fn digit_samples(
    root: &Path,
    classes: u32,
    f: &Framing,
    limit: usize,
) -> Result<Vec<Sample>, DataError> {
    let mut files = digit_files(root, classes)?;
    files.truncate(limit);
    files
        .par_iter()
        .map(|(label, path)| Ok((*label, frames(&read_nmnist(path)?, f))))
        .collect()
}

/// DVS128 Gesture's layout: the recordings listed in `trials_to_train.txt` (`Train`) or
/// `trials_to_test.txt` (`Test`), each cut into its labelled segments (classes 1..=11 in
/// the file, 0-based here), in list order.
fn gesture_samples(
    dir: &Path,
    part: &str,
    classes: u32,
    f: &Framing,
) -> Result<Vec<Sample>, DataError> {
    let list = dir.join(format!("trials_to_{}.txt", part.to_lowercase()));
    let text = spikeforge_model::io::read_to_string(&list)?;
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let per_recording: Vec<Vec<Sample>> = names
        .par_iter()
        .map(|name| {
            let path = dir.join(name);
            let events = aedat::read_aedat3(&path)?;
            let segments = aedat::read_labels(&labels_path(&path), &events, classes)?;
            Ok(segments
                .iter()
                .map(|s| ((s.class - 1) as u8, frames(aedat::cut(&events, s), f)))
                .collect())
        })
        .collect::<Result<_, DataError>>()?;
    Ok(per_recording.concat())
}

/// A DVS128 Gesture recording's label file: `<stem>_labels.csv` beside it.
pub(super) fn labels_path(recording: &Path) -> PathBuf {
    let stem = recording.file_stem().unwrap_or_default().to_string_lossy();
    recording.with_file_name(format!("{stem}_labels.csv"))
}

/// CIFAR10-DVS's layout: one folder per class. The set has no official split; as the
/// usual loaders do, the first nine tenths of each class's recordings (by their number) are
/// `Train` and the last tenth `Test`. Ordered by number, then class, so classes interleave.
fn class_folder_samples(
    dir: &Path,
    classes: &[&str],
    part: &str,
    f: &Framing,
    limit: usize,
) -> Result<Vec<Sample>, DataError> {
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let mut all = files_with(&dir.join(class), "aedat")?;
        all.sort_by_key(|p| (recording_number(p), p.clone()));
        let cut = all.len() * 9 / 10;
        let mine = if part == "Train" {
            &all[..cut]
        } else {
            &all[cut..]
        };
        files.extend(
            mine.iter()
                .enumerate()
                .map(|(k, p)| (k, label as u8, p.clone())),
        );
    }
    files.sort_by_key(|(k, label, _)| (*k, *label));
    files.truncate(limit);
    files
        .par_iter()
        .map(|(_, label, path)| Ok((*label, frames(&aedat::read_aedat2(path)?, f))))
        .collect()
}

/// The number that ends a file's stem (`cifar10_airplane_17` → 17), if any.
fn recording_number(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let digits: String = stem
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
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
    use crate::events::sets::event_set;
    use crate::events::Event;

    /// `n` events of one polarity at pixel (x, y), 1 µs apart from `t0`.
    fn burst(x: u16, y: u16, on: bool, t0: u64, n: u64) -> Vec<Event> {
        (0..n)
            .map(|k| Event {
                x,
                y,
                on,
                t_us: t0 + k,
            })
            .collect()
    }

    fn binary(factor: u16) -> FramingConfig {
        FramingConfig {
            bins: Bins::Time,
            clip: 1,
            factor,
        }
    }

    #[test]
    fn dvs_gesture_recordings_load_as_their_labelled_segments() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Two recordings: three segments (classes 1, 11, 5) and one (class 2).
        let mut a = burst(0, 0, true, 100, 10);
        a.extend(burst(127, 127, false, 1000, 10));
        a.extend(burst(64, 4, true, 5000, 10));
        std::fs::write(d.join("user01_led.aedat"), aedat::write_aedat3(&a, 7)).unwrap();
        std::fs::write(
            d.join("user01_led_labels.csv"),
            "class,startTime_usec,endTime_usec\n1,100,110\n11,1000,1010\n5,5000,5010\n",
        )
        .unwrap();
        let b = burst(8, 120, true, 50, 20);
        std::fs::write(d.join("user02_lab.aedat"), aedat::write_aedat3(&b, 100)).unwrap();
        std::fs::write(
            d.join("user02_lab_labels.csv"),
            "class,startTime_usec,endTime_usec\n2,50,70\n",
        )
        .unwrap();
        std::fs::write(d.join("trials_to_train.txt"), "user01_led.aedat\n\n").unwrap();
        std::fs::write(d.join("trials_to_test.txt"), "user02_lab.aedat\n").unwrap();
        let set = event_set("dvs-gesture").unwrap();
        let ds = load_event_set(set, Some(d), 2, &binary(4)).unwrap();
        assert_eq!(ds.train.labels, vec![0, 10, 4]);
        assert_eq!(ds.test.labels, vec![1]);
        assert_eq!((ds.train.shape, ds.train.steps), ((32, 32, 2), 2));
        // The first recording's second segment: OFF events at sensor (127, 127) → frame
        // pixel (31, 31), channel 0, in both steps.
        let frame = 32 * 32 * 2;
        let sample = &ds.train.images[2 * frame..2 * 2 * frame];
        for t in 0..2 {
            let f = &sample[t * frame..(t + 1) * frame];
            assert_eq!(f[(31 * 32 + 31) * 2], 1);
            assert_eq!(f.iter().map(|&v| v as u32).sum::<u32>(), 1);
        }
        // A listed recording that is missing is named.
        std::fs::write(d.join("trials_to_test.txt"), "user09_x.aedat\n").unwrap();
        let err = load_event_split(set, Some(d), "Test", 2, &binary(4), None).unwrap_err();
        assert!(err.to_string().contains("user09_x.aedat"), "{err}");
    }

    #[test]
    fn cifar10_dvs_splits_each_class_nine_tenths_to_one_tenth_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let set = event_set("cifar10-dvs").unwrap();
        let Layout::ClassFolders(classes) = set.layout else {
            panic!("class folders")
        };
        for (label, class) in classes.iter().enumerate() {
            let folder = dir.path().join(class);
            std::fs::create_dir_all(&folder).unwrap();
            // Recording k of class `label` is numbered k + 1 (`cifar10_airplane_1.aedat` …
            // `_10`, which sorts second by name) and fires at column `label`, row 12k.
            for k in 0..10u16 {
                let ev = burst(label as u16 * 4, k * 12, true, 10, 5);
                let name = format!("cifar10_{class}_{}.aedat", k + 1);
                std::fs::write(folder.join(name), aedat::write_aedat2(&ev)).unwrap();
            }
        }
        let ds = load_event_set(set, Some(dir.path()), 1, &binary(4)).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (90, 10));
        // A limit reads only the first recordings and gives the first samples.
        let first = load_event_split(set, Some(dir.path()), "Train", 1, &binary(4), Some(13));
        let first = first.unwrap();
        assert_eq!(first.labels, ds.train.take(13).labels);
        assert_eq!(first.images, ds.train.take(13).images);
        // Classes interleave: the first ten training samples are recording 0 of each class.
        assert_eq!(ds.train.labels[..10], (0..10).collect::<Vec<u8>>()[..]);
        // The test split is each class's `_10`, the last by number.
        let frame = 32 * 32 * 2;
        for (i, &label) in ds.test.labels.iter().enumerate() {
            let f = &ds.test.images[i * frame..(i + 1) * frame];
            assert_eq!(f[(27 * 32 + label as usize) * 2 + 1], 1, "test sample {i}");
        }
    }

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
