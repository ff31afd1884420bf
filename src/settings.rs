//! Settings that come from the environment. Only the binary reads the environment; libraries
//! get these values passed in.

use std::path::PathBuf;

/// The Verilator executable: `$SPIKEFORGE_VERILATOR`, else `verilator` on `PATH`.
pub fn verilator() -> String {
    std::env::var("SPIKEFORGE_VERILATOR").unwrap_or_else(|_| "verilator".into())
}

/// Where co-simulation libraries are cached: `$SPIKEFORGE_CACHE`, else
/// `$XDG_CACHE_HOME/spikeforge`, else `~/.cache/spikeforge`.
pub fn cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("SPIKEFORGE_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|_| std::env::temp_dir());
    base.join("spikeforge").join("cosim")
}
