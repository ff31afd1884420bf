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

/// `cosim MODEL --dataset fashion-mnist --limit N`: asserts that all N test images were
/// bit-exact; returns stdout.
pub fn cosim_test_images_bit_exact(model: &Path, n: usize) -> String {
    let n = n.to_string();
    let args = [
        "cosim",
        model.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
        "--limit",
        &n,
    ];
    let (ok, stdout, err) = run(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains(&format!("{n}/{n} bit-exact")), "{stdout}");
    stdout
}

/// `eval MODEL --dataset fashion-mnist [--limit N]`: asserts that it prints `accuracy` (a
/// fraction) as its percentage.
pub fn assert_eval_prints(model: &Path, limit: Option<usize>, accuracy: f64) {
    let limit = limit.map(|n| n.to_string());
    let mut args = vec![
        "eval",
        model.to_str().unwrap(),
        "--dataset",
        "fashion-mnist",
    ];
    if let Some(n) = &limit {
        args.extend(["--limit", n]);
    }
    let (ok, stdout, err) = run(&args);
    assert!(ok, "{err}");
    let pct = format!("{:.2} %", accuracy * 100.0);
    assert!(stdout.contains(&pct), "eval should print {pct}: {stdout}");
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
    let files = design.source_files();
    let opts = BuildOptions {
        verilator: "verilator".into(),
        cache_dir: cache_dir(),
        opt: 1,
        trace: false,
    };
    Simulator::build(&design.manifest, &files, &opts).expect("verilator builds the design")
}

/// Generates a design with its flow scripts (the files `spikeforge gen` writes).
pub fn design(model: &Model, folding: &Folding) -> Design {
    let design = spikeforge_hdl_gen::generate(model, folding).expect("the design generates");
    spikeforge_flow::design_dir::complete(design).expect("the flow scripts are planned")
}

/// Writes a design's files into `dir` (plain, for external tools).
pub fn write(design: &Design, dir: &Path) {
    spikeforge_flow::design_dir::write(design, dir).expect("the design is written");
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

/// Runs an external tool in `dir` and asserts that it succeeds; returns its standard output.
pub fn run_tool(dir: &Path, program: &str, args: &[String], what: &str) -> String {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Yosys elaborates a written design's synthesis top and finds no latch (`proc` turns every
/// process into flip-flops and multiplexers, or into latches where an assignment is missing).
pub fn assert_no_latch(dir: &Path, design: &Design, what: &str) {
    let script = format!(
        "read_verilog {}; hierarchy -top {}; proc; select -assert-none t:$dlatch t:$adlatch t:$dlatchsr",
        design.manifest.sources.join(" "),
        design.manifest.top
    );
    run_tool(
        dir,
        "yosys",
        &["-q".into(), "-p".into(), script],
        &format!("{what}: yosys found a latch or failed"),
    );
}

/// Runs `images` through a design in Icarus: the manifest's top, simulated from `sources`
/// (Icarus arguments: the RTL, or a synthesised netlist and cell models); returns the output
/// beats as 32-bit words, least significant first.
pub fn icarus_run_sources(
    dir: &Path,
    design: &Design,
    sources: &[String],
    images: &[u8],
    n: usize,
) -> Vec<Vec<u32>> {
    let m = &design.manifest;
    // The testbench takes values in beat order: per-step frames go beat by beat.
    let line = spikeforge_cosim::serial_order(m, images);
    let hex: String = line.iter().map(|p| format!("{p:02x}\n")).collect();
    std::fs::write(dir.join("images.hex"), hex).unwrap();
    std::fs::write(dir.join("icarus_tb.v"), include_str!("icarus_tb.v")).unwrap();
    let img = images.len() / n;
    let beat = m.input.pixels_per_beat * m.input.channels * m.input.steps;
    let mut args: Vec<String> = vec![
        "-g2005".into(),
        "-o".into(),
        "icarus.vvp".into(),
        "-s".into(),
        "tb".into(),
        format!("-DDUT={}", m.top),
        format!("-Ptb.N={n}"),
        format!("-Ptb.IMG={img}"),
        format!("-Ptb.BEAT={beat}"),
        format!("-Ptb.PIX_BITS={}", m.input.pixel_bits),
        format!("-Ptb.OUT_BITS={}", m.output.tdata_bits),
        "icarus_tb.v".into(),
    ];
    args.extend(sources.iter().cloned());
    run_tool(dir, "iverilog", &args, "iverilog rejects the design");
    let text = run_tool(
        dir,
        "vvp",
        &["-n".into(), "icarus.vvp".into()],
        "Icarus run failed",
    );
    assert!(!text.contains("TIMEOUT"), "Icarus run timed out:\n{text}");
    let words = m.output.tdata_bits.div_ceil(32) as usize;
    text.lines()
        .filter_map(|l| l.strip_prefix("R "))
        .map(|h| {
            let h = h.trim();
            (0..words)
                .map(|w| {
                    let end = h.len().saturating_sub(8 * w);
                    let start = end.saturating_sub(8);
                    u32::from_str_radix(&h[start..end], 16).unwrap_or(0)
                })
                .collect()
        })
        .collect()
}

/// Runs `images` through the design in Icarus and asserts that every class and logit equals
/// the golden model's.
pub fn assert_icarus_matches_golden(
    dir: &Path,
    design: &Design,
    model: &Model,
    images: &[u8],
    what: &str,
) {
    assert_sources_match_golden(dir, design, &design.manifest.sources, model, images, what)
}

/// As [`assert_icarus_matches_golden`], simulating `sources` in place of the design's RTL.
pub fn assert_sources_match_golden(
    dir: &Path,
    design: &Design,
    sources: &[String],
    model: &Model,
    images: &[u8],
    what: &str,
) {
    let golden = spikeforge_model::Golden::new(model);
    let n = golden.check_images(images).unwrap();
    let expected = golden.run_batch(images, false).unwrap();
    let got = icarus_run_sources(dir, design, sources, images, n);
    assert_eq!(
        got.len(),
        n,
        "{what}: Icarus gave {} of {n} results",
        got.len()
    );
    let o = &design.manifest.output;
    for (i, (beat, e)) in got.iter().zip(&expected).enumerate() {
        let class = spikeforge_cosim::field(beat, 0, o.class_bits, false);
        assert_eq!(class, e.class as i64, "{what}: image {i}: class");
        for (c, &l) in e.logits.iter().enumerate() {
            let at = (o.class_bits + c as u32 * o.logit_bits) as usize;
            let a = spikeforge_cosim::field(beat, at, o.logit_bits, true);
            assert_eq!(a, l, "{what}: image {i}: logit {c}");
        }
    }
}

/// The DOM of an HTML file as headless Chromium renders it (Debian `chromium`); panics when a
/// console message reports an error or the page does not load.
pub fn render_in_chromium(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .expect("chromium runs (apt-get install chromium)");
    let log = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    assert!(out.status.success(), "chromium failed:\n{log}");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("</html>"), "no page rendered:\n{log}");
    dom
}
