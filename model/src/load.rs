//! Reading and writing model files. Every failure names the file; validation failures list
//! every problem with its field.

use crate::io::IoError;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ir::{Model, FRAMES_VERSION, VERSION};
use crate::validate::{validate, Problem};

/// Why a model file could not be used.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// The file is not valid JSON, or a field has the wrong type or is missing.
    #[error("{path}: line {line}, column {column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde found wrong.
        message: String,
    },
    /// The file is a model of another IR version.
    #[error("{path}: IR version {found} is not supported; this build of spikeforge reads versions 1 to {supported} (re-export the model, or use a matching spikeforge)")]
    Version {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u64,
        /// The newest version this build reads (it reads 1 up to it).
        supported: u32,
    },
    /// The file parsed but the model is inconsistent.
    #[error("{path}: invalid model:\n{}", list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(p: &[Problem]) -> String {
    p.iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses and validates a model from JSON text; `path` only names the source in errors.
pub fn from_json(text: &str, path: &Path) -> Result<Model, ModelError> {
    let json_err = |e: serde_json::Error| ModelError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    // Look at the version before the schema, so an old or future file says so instead of
    // failing on whichever field changed.
    let raw: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
    if let Some(v) = raw.get("version").and_then(|v| v.as_u64()) {
        if !(VERSION as u64..=FRAMES_VERSION as u64).contains(&v) {
            return Err(ModelError::Version {
                path: path.into(),
                found: v,
                supported: FRAMES_VERSION,
            });
        }
    }
    let model: Model = serde_json::from_str(text).map_err(json_err)?;
    validate(&model).map_err(|problems| ModelError::Invalid {
        path: path.into(),
        problems,
    })?;
    Ok(model)
}

/// Reads, parses and validates a model file.
pub fn load(path: &Path) -> Result<Model, ModelError> {
    let text = crate::io::read_to_string(path)?;
    from_json(&text, path)
}

/// The canonical JSON text of a model (stable field order, two-space indentation).
pub fn to_json(model: &Model) -> String {
    let mut s = serde_json::to_string_pretty(model).expect("a model always serialises");
    s.push('\n');
    s
}

/// Writes a model atomically (temporary file, then rename): a failure leaves no partial file.
pub fn save(model: &Model, path: &Path) -> Result<(), ModelError> {
    let tmp = path.with_extension("json.tmp-write");
    std::fs::write(&tmp, to_json(model)).map_err(IoError::at(path))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IoError::at(path)(e).into()
    })
}

/// SHA-256 of the canonical JSON, as 64 lowercase hex digits: names a model in generated files.
pub fn model_hash(model: &Model) -> String {
    let digest = Sha256::digest(serde_json::to_vec(model).expect("a model always serialises"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
