//! The one I/O error of every spikeforge crate: a file that could not be read or written, and
//! why. Each crate's error enum wraps it (`Io(#[from] IoError)`), so the message reads the same
//! wherever the file was.

use std::path::{Path, PathBuf};

/// A file or directory that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct IoError {
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error: part of the message, so deliberately not a `source()` (anyhow's `{:#}`
    /// would print it twice).
    pub error: std::io::Error,
}

impl IoError {
    /// For `map_err`: the error of an operation on `path`.
    pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
        move |error| IoError {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// `std::fs::read` with the path in its error.
pub fn read(path: &Path) -> Result<Vec<u8>, IoError> {
    std::fs::read(path).map_err(IoError::at(path))
}

/// `std::fs::read_to_string` with the path in its error.
pub fn read_to_string(path: &Path) -> Result<String, IoError> {
    std::fs::read_to_string(path).map_err(IoError::at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_path_and_the_os_error() {
        let path = Path::new("/nonexistent/spikeforge-io-test.json");
        let e = read(path).unwrap_err();
        assert_eq!(e.path, path);
        let text = e.to_string();
        assert!(
            text.starts_with("/nonexistent/spikeforge-io-test.json: "),
            "{text}"
        );
        assert!(text.contains("No such file"), "{text}");
    }
}
