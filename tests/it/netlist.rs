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
fn netlist(dir: &Path, top: &str, sources: &[String], family: &str, dsp: bool) -> Vec<String> {
    let synth = match family {
        "ice40" if dsp => format!("synth_ice40 -dsp -top {top}"),
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
    let mut args = vec![
        "-DNO_ICE40_DEFAULT_ASSIGNMENTS".into(),
        // The ECP5 models include their flip-flop file from beside them.
        format!("-I{}", cells.parent().unwrap().display()),
        "netlist.v".into(),
        cells.display().to_string(),
    ];
    if family == "ecp5" {
        // Yosys ships no MULT18X18D simulation model; this one is ours.
        let model = dir.join("ecp5_mult18x18d.v");
        std::fs::write(&model, include_str!("cells/ecp5_mult18x18d.v")).unwrap();
        args.push("ecp5_mult18x18d.v".into());
    }
    args
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

/// A 28×28 conv net (8-bit pixels × integer weights, spikes × binary weights, sum-pooled
/// counts × integer weights) with the default folding, block RAM windows and ROMs; with
/// `dsp`, its multi-bit × multi-bit synapses as multiplier products; with `regs`, operand
/// registers after the weight ROMs and the products. Synthesised for `family`, simulated gate
/// by gate on real images, compared with the golden model.
fn netlist_matches_golden(family: &str, dsp: bool, regs: bool) {
    let model = random_model(
        &arch::parse("28x28x1-4C3i8-MP2-8C3b-SP2-10C1i8-GAP").unwrap(),
        2,
        util::seed(),
    )
    .unwrap();
    let lanes = if dsp {
        fold::DspLanes::On
    } else {
        fold::DspLanes::Off
    };
    let overrides = [
        fold::FoldOverride::Dsp(lanes),
        fold::FoldOverride::OperandRegs(regs),
    ];
    let folding = fold::resolve(&model, &overrides).unwrap();
    let design = util::design(&model, &folding);
    let dir = tempfile::tempdir().unwrap();
    util::write(&design, dir.path());
    let top = &design.manifest.top;
    let sources = netlist(dir.path(), top, &rtl_sources(&design), family, dsp);
    let stat = std::fs::read_to_string(dir.path().join("netlist.stat")).unwrap();
    let (ram, dsp_cell): (&[&str], &str) = if family == "ice40" {
        (&["SB_RAM40_4K"], "SB_MAC16")
    } else {
        (&["DP16KD", "TRELLIS_DPR16X4"], "MULT18X18D")
    };
    assert!(
        ram.iter().any(|r| stat.contains(r)),
        "the netlist maps memories to RAM cells ({ram:?}):\n{stat}"
    );
    assert_eq!(
        stat.contains(dsp_cell),
        dsp,
        "DSP lanes {} and {dsp_cell} in the netlist:\n{stat}",
        if dsp { "on" } else { "off" }
    );
    let images = crate::icarus::fashion_mnist_test_images(2);
    let lanes = if dsp { "DSP" } else { "LUT" };
    let what = format!("{family} netlist, {lanes} lanes, operand registers {regs}");
    util::assert_sources_match_golden(dir.path(), &design, &sources, &model, &images, &what);
}

#[test]
fn ice40_netlist_with_lut_lanes_equals_the_golden_model() {
    netlist_matches_golden("ice40", false, false);
}

#[test]
fn ecp5_netlist_with_lut_lanes_equals_the_golden_model() {
    netlist_matches_golden("ecp5", false, false);
}

#[test]
fn ice40_netlist_with_dsp_lanes_equals_the_golden_model() {
    // As the iCEBreaker deployment builds it (operand registers are an ECP5 choice).
    netlist_matches_golden("ice40", true, false);
}

#[test]
fn ecp5_netlist_with_dsp_lanes_equals_the_golden_model() {
    // As `--target` builds it for ECP5: operand registers after ROMs and products.
    netlist_matches_golden("ecp5", true, true);
}
