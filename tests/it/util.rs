//! Shared helpers: building simulations into a per-target cache, seeds, external tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spikeforge_cosim::{BuildOptions, Simulator};
use spikeforge_hdl_gen::{Design, Folding};
use spikeforge_model::Model;

/// The CLI binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spikeforge"));
    c.env("SPIKEFORGE_CACHE", cache_dir());
    c
}

/// Runs the CLI; returns (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out: Output = bin().args(args).output().expect("the CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads and parses a JSON file the CLI wrote (a summary, checkpoint, report or manifest).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Path of a checked-in reference model (`tests/models/NAME.json`).
pub fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models")
        .join(format!("{name}.json"))
}

/// Co-simulation libraries built by the tests, kept between runs.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cosim-cache")
}

/// Seed for randomised tests: `SPIKEFORGE_TEST_SEED` or a fixed default (printed on failure
/// by the callers' messages).
pub fn seed() -> u64 {
    std::env::var("SPIKEFORGE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261123)
}

/// Number of extra random cases: `SPIKEFORGE_TEST_CASES` or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("SPIKEFORGE_TEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Builds a design's simulation (quick C++ optimisation: tests run few images).
pub fn simulator(design: &Design) -> Simulator {
    let files = spikeforge_cosim::design_files(design);
    let opts = BuildOptions {
        verilator: "verilator".into(),
        cache_dir: cache_dir(),
        opt: 1,
        trace: false,
    };
    Simulator::build(&design.manifest, &files, &opts).expect("verilator builds the design")
}

/// Generates a design.
pub fn design(model: &Model, folding: &Folding) -> Design {
    spikeforge_hdl_gen::generate(model, folding).expect("the design generates")
}

/// Writes a design's files into `dir` (plain, for external tools).
pub fn write(design: &Design, dir: &Path) {
    spikeforge_hdl_gen::write_design(design, dir).expect("the design is written");
}

/// `verilator --lint-only -Wall` on a written design; returns its complaints.
pub fn lint(dir: &Path, design: &Design) -> String {
    spikeforge_cosim::lint("verilator", dir, &design.manifest).expect("verilator runs")
}

/// `yosys synth_ice40` on a written design; panics on failure or on any latch, returns the
/// LUT count.
pub fn synth_ice40(dir: &Path, top: &str, what: &str) -> u64 {
    let script = format!("read_verilog *.v; synth_ice40 -top {top}; stat");
    let out = Command::new("yosys")
        .current_dir(dir)
        .args(["-q", "-l", "yosys.log", "-p", &script])
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.join("yosys.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{what}: yosys failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !log.contains("$dlatch") && !log.contains("Latch inferred"),
        "{what}: latch inferred; see {log}"
    );
    log.lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("SB_LUT4")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{what}: no LUTs in the yosys report"))
}
