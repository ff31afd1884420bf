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

/// Makes `dir` anew without leaving a partial one: `fill` writes the content into a temporary
/// directory beside it (named `prefix…`), which then replaces `dir`. A failure of `fill`
/// leaves `dir` as it was and removes the temporary directory.
pub fn replace_dir<T, E: From<IoError>>(
    dir: &Path,
    prefix: &str,
    fill: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(IoError::at(&parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(IoError::at(&parent))?;
    let made = fill(tmp.path())?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(IoError::at(dir))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        IoError::at(dir)(e)
    })?;
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_directory_appears_whole_or_not_at_all() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("old"), "old").unwrap();
        let failed: Result<(), IoError> = replace_dir(&dir, ".t-", |tmp| {
            std::fs::write(tmp.join("new"), "new").unwrap();
            Err(IoError::at(tmp)(std::io::Error::other("fill failed")))
        });
        assert!(failed.is_err());
        assert!(dir.join("old").exists() && !dir.join("new").exists());
        let n = replace_dir::<_, IoError>(&dir, ".t-", |tmp| {
            std::fs::write(tmp.join("new"), "new").unwrap();
            Ok(7)
        })
        .unwrap();
        assert_eq!(n, 7);
        assert!(!dir.join("old").exists() && dir.join("new").exists());
        // Only `out` is left beside it: no temporary directories.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

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
