//! The event sets spikeforge knows: where their official releases are, how they unpack, and a
//! check of an unpacked directory's layout that reads one recording of each part with the
//! validating readers (`spikeforge data`).

use std::path::{Path, PathBuf};

use spikeforge_model::IoError;

use super::{aedat, read_nmnist};

/// How a set's files are laid out once unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `Train/<digit>/*.bin` and `Test/<digit>/*.bin`, N-MNIST binary (N-MNIST and converted
    /// MNIST).
    DigitFolders,
    /// `user<NN>_<lighting>.aedat` AEDAT 3.1 recordings, each with its `*_labels.csv` (DVS128
    /// Gesture).
    LabelledRecordings,
    /// One folder per class of AEDAT 2.0 recordings (CIFAR10-DVS).
    ClassFolders(&'static [&'static str]),
}

/// A known event set.
#[derive(Debug, Clone, Copy)]
pub struct EventSet {
    /// Name used on the command line.
    pub name: &'static str,
    /// Sensor width and height.
    pub sensor: (u16, u16),
    /// Spatial down-sampling a run frames it with unless `--factor` says otherwise (the
    /// 128 × 128 sensors to 32 × 32, as the published networks do for the hardware).
    pub default_factor: u16,
    /// Classes.
    pub classes: u32,
    /// Directories searched when `--data` is not given, in order.
    pub default_dirs: &'static [&'static str],
    /// Layout of the unpacked files.
    pub layout: Layout,
    /// Where the official release is and how to unpack it.
    pub help: &'static str,
}

/// CIFAR10-DVS's class folders, as released.
pub const CIFAR10_DVS_CLASSES: &[&str] = &[
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The event sets.
pub const EVENT_SETS: &[EventSet] = &[
    EventSet {
        name: "nmnist",
        sensor: (34, 34),
        default_factor: 1,
        classes: 10,
        default_dirs: &["data/N-MNIST", "data/nmnist"],
        layout: Layout::DigitFolders,
        help: "download Train.zip and Test.zip of N-MNIST (Orchard et al. 2015, \
               https://www.garrickorchard.com/datasets/n-mnist), unzip both into one directory \
               (it then holds Train/0..9 and Test/0..9) and pass `--data DIR`",
    },
    EventSet {
        name: "converted-mnist",
        sensor: (34, 34),
        default_factor: 1,
        classes: 10,
        default_dirs: &["out/converted-mnist"],
        layout: Layout::DigitFolders,
        help: "make it from MNIST with `spikeforge mnist-events --out out/converted-mnist` \
               (converted MNIST, not N-MNIST; docs/events.md)",
    },
    EventSet {
        name: "dvs-gesture",
        sensor: (128, 128),
        default_factor: 4,
        classes: 11,
        default_dirs: &["data/DvsGesture", "data/dvs-gesture"],
        layout: Layout::LabelledRecordings,
        help: "download DvsGesture.tar.gz (Amir et al. 2017, IBM, \
               https://research.ibm.com/interactive/dvsgesture/), `tar xzf DvsGesture.tar.gz` \
               and pass `--data DvsGesture`",
    },
    EventSet {
        name: "cifar10-dvs",
        sensor: (128, 128),
        default_factor: 4,
        classes: 10,
        default_dirs: &["data/CIFAR10-DVS", "data/cifar10-dvs"],
        layout: Layout::ClassFolders(CIFAR10_DVS_CLASSES),
        help: "download the ten class archives of CIFAR10-DVS (Li et al. 2017, \
               https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671), unzip each into \
               a folder of its class name (airplane … truck) under one directory and pass \
               `--data DIR`",
    },
];

impl EventSet {
    /// The first of its default directories that exists.
    pub fn default_dir(&self) -> Option<PathBuf> {
        self.default_dirs
            .iter()
            .map(PathBuf::from)
            .find(|d| d.is_dir())
    }
}

/// The event set of a name, if it is one.
pub fn event_set(name: &str) -> Option<&'static EventSet> {
    let n = name.to_ascii_lowercase().replace('_', "-");
    let n = match n.as_str() {
        "n-mnist" => "nmnist",
        "dvsgesture" | "dvs128-gesture" => "dvs-gesture",
        "cifar10dvs" => "cifar10-dvs",
        other => other,
    };
    EVENT_SETS.iter().find(|s| s.name == n)
}

/// What a check of a set's directory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCheck {
    /// The directory checked (`None`: none of the defaults exists).
    pub dir: Option<PathBuf>,
    /// One line per part: what it holds, or what is wrong.
    pub parts: Vec<String>,
    /// Whether every part is present and its sample recording reads.
    pub ready: bool,
}

/// Checks the layout of a set in `dir` (default: the first of its default directories that
/// exists) and reads one recording of each part.
pub fn check_set(set: &EventSet, dir: Option<&Path>) -> SetCheck {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => match set.default_dir() {
            Some(d) => d,
            None => {
                return SetCheck {
                    dir: None,
                    parts: vec![format!("none of {} exists", set.default_dirs.join(", "))],
                    ready: false,
                }
            }
        },
    };
    let parts: Vec<Result<String, String>> = match set.layout {
        Layout::DigitFolders => ["Train", "Test"]
            .iter()
            .map(|split| {
                check_folders(&dir.join(split), &digits(), "bin", |p| {
                    read_nmnist(p).map(|e| e.len()).map_err(|e| e.to_string())
                })
            })
            .collect(),
        Layout::ClassFolders(classes) => {
            let names: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
            vec![check_folders(&dir, &names, "aedat", |p| {
                aedat::read_aedat2(p)
                    .map(|e| e.len())
                    .map_err(|e| e.to_string())
            })]
        }
        Layout::LabelledRecordings => vec![check_recordings(&dir, set.classes)],
    };
    let ready = parts.iter().all(Result::is_ok);
    SetCheck {
        dir: Some(dir),
        parts: parts.into_iter().map(|p| p.unwrap_or_else(|e| e)).collect(),
        ready,
    }
}

fn digits() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// The files with extension `ext` in `dir`, sorted.
pub(super) fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, IoError> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(IoError::at(dir))? {
        let p = e.map_err(IoError::at(dir))?.path();
        if p.extension().is_some_and(|x| x == ext) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// One folder per class under `root`, each with recordings; the first of the first class
/// read with `read`.
fn check_folders(
    root: &Path,
    classes: &[String],
    ext: &str,
    read: impl Fn(&Path) -> Result<usize, String>,
) -> Result<String, String> {
    let mut total = 0;
    let mut first = None;
    for c in classes {
        let files = files_with(&root.join(c), ext).map_err(|e| e.to_string())?;
        if files.is_empty() {
            return Err(format!("{}: no .{ext} recordings", root.join(c).display()));
        }
        total += files.len();
        first.get_or_insert(files[0].clone());
    }
    let first = first.expect("at least one class");
    let events = read(&first)?;
    Ok(format!(
        "{}: {total} recordings in {} class folders; {} reads ({events} events)",
        root.display(),
        classes.len(),
        first.display()
    ))
}

/// `*.aedat` recordings each with its `*_labels.csv`; the first read with its labels.
fn check_recordings(dir: &Path, classes: u32) -> Result<String, String> {
    let files = files_with(dir, "aedat").map_err(|e| e.to_string())?;
    let Some(first) = files.first() else {
        return Err(format!("{}: no .aedat recordings", dir.display()));
    };
    let labels = super::dataset::labels_path;
    if let Some(bare) = files.iter().find(|p| !labels(p).is_file()) {
        return Err(format!("{}: no {}", bare.display(), labels(bare).display()));
    }
    let events = aedat::read_aedat3(first).map_err(|e| e.to_string())?;
    let segments =
        aedat::read_labels(&labels(first), &events, classes).map_err(|e| e.to_string())?;
    Ok(format!(
        "{}: {} labelled recordings; {} reads ({} events, {} labelled segments)",
        dir.display(),
        files.len(),
        first.display(),
        events.len(),
        segments.len()
    ))
}
