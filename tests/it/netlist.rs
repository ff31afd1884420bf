//! The post-synthesis rung: the gate-level netlist Yosys makes of a generated design
//! (`synth_ice40`, `synth_ecp5 -nowidelut`, `write_verilog`), simulated in Icarus with the
//! cell models Yosys ships (`<datdir>/{ice40,ecp5}/cells_sim.v`), on real Fashion-MNIST
//! images, equal to the golden model. This is what catches a construct Yosys maps wrongly
//! (HARDWARE.md: `synth_ice40 -dsp` on registered products), which RTL simulation cannot.

use std::path::{Path, PathBuf};

use spikeforge_hdl_gen::fold;
use spikeforge_model::arch;
use spikeforge_model::random::random_model;

use crate::util;

/// Yosys' data directory: `yosys-config --datdir`, else `share/yosys` beside the binary.
fn yosys_datdir() -> PathBuf {
    if let Ok(out) = std::process::Command::new("yosys-config")
        .arg("--datdir")
        .output()
    {
        if out.status.success() {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v yosys"])
        .output()
        .expect("sh runs");
    let bin = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
    let bin = std::fs::canonicalize(&bin).unwrap_or(bin);
    bin.parent()
        .and_then(Path::parent)
        .map(|p| p.join("share/yosys"))
        .expect("yosys is installed")
}

/// Synthesises the design's top in `dir` for `family` and returns the Icarus arguments that
/// simulate the netlist: the netlist and the family's cell models (the iCE40 models' port
/// defaults are SystemVerilog, which `NO_ICE40_DEFAULT_ASSIGNMENTS` leaves out).
fn netlist(dir: &Path, top: &str, sources: &[String], family: &str) -> Vec<String> {
    let synth = match family {
        "ice40" => format!("synth_ice40 -top {top}"),
        "ecp5" => format!("synth_ecp5 -nowidelut -top {top}"),
        _ => unreachable!("a family this rung covers"),
    };
    let script = format!(
        "read_verilog {}; {synth}; write_verilog -noattr netlist.v; tee -q -o netlist.stat stat",
        sources.join(" ")
    );
    util::run_tool(
        dir,
        "yosys",
        &["-q".into(), "-p".into(), script],
        "Yosys synthesises the design",
    );
    let cells = yosys_datdir().join(family).join("cells_sim.v");
    assert!(cells.exists(), "{} exists", cells.display());
    vec![
        "-DNO_ICE40_DEFAULT_ASSIGNMENTS".into(),
        "netlist.v".into(),
        cells.display().to_string(),
    ]
}

fn rtl_sources(design: &spikeforge_hdl_gen::Design) -> Vec<String> {
    // The network only: the UART shell is not in the stream testbench's top.
    design
        .manifest
        .sources
        .iter()
        .filter(|s| !s.contains("uart") && !s.contains("fifo"))
        .cloned()
        .collect()
}

/// LUT lanes (8-bit pixels × integer weights, spikes × binary weights, pooled counts ×
/// integer weights), block RAM windows and ROMs, on one family.
fn lut_lanes_netlist_matches_golden(family: &str) {
    let model = random_model(
        &arch::parse("28x28x1-4C3i8-MP2-8C3b-SP2-10C1i8-GAP").unwrap(),
        2,
        util::seed(),
    )
    .unwrap();
    let folding = fold::resolve(&model, &[]).unwrap();
    let design = util::design(&model, &folding);
    let dir = tempfile::tempdir().unwrap();
    util::write(&design, dir.path());
    let sources = netlist(
        dir.path(),
        &design.manifest.top,
        &rtl_sources(&design),
        family,
    );
    let stat = std::fs::read_to_string(dir.path().join("netlist.stat")).unwrap();
    let ram: &[&str] = if family == "ice40" {
        &["SB_RAM40_4K"]
    } else {
        &["DP16KD", "TRELLIS_DPR16X4"]
    };
    assert!(
        ram.iter().any(|r| stat.contains(r)),
        "the netlist maps memories to RAM cells ({ram:?}):\n{stat}"
    );
    let images = crate::icarus::fashion_mnist_test_images(2);
    util::assert_sources_match_golden(
        dir.path(),
        &design,
        &sources,
        &model,
        &images,
        &format!("{family} netlist, LUT lanes"),
    );
}

#[test]
fn ice40_netlist_with_lut_lanes_equals_the_golden_model() {
    lut_lanes_netlist_matches_golden("ice40");
}

#[test]
fn ecp5_netlist_with_lut_lanes_equals_the_golden_model() {
    lut_lanes_netlist_matches_golden("ecp5");
}
