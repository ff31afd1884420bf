//! `spikeforge bench --deploy`: the reference deployments of issue 36, each taken the whole
//! way: the folding chosen for the board's device, the design generated with the board top,
//! co-simulated against the golden model on the test set (and through the board's serial
//! line), synthesised, placed and routed. One JSON row per deployment; a table against the
//! targets. Minutes for the iCEBreaker, tens of minutes per ECP5 design (YoWASP nextpnr):
//! a benchmark, not a test.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use spikeforge_cosim::Simulator;
use spikeforge_flow::plan as flow;
use spikeforge_hdl_gen::{autofold, estimate, GenOptions};
use spikeforge_model::Model;

use super::cosim::SimKind;

/// One reference deployment and its targets.
struct Deployment {
    key: &'static str,
    what: &'static str,
    /// The shipped model file.
    model: &'static str,
    /// Its dataset, whose test images go through the RTL.
    dataset: &'static str,
    board: &'static str,
    /// Test images through the RTL.
    test_images: usize,
    /// Images through the board top's serial line.
    serial_images: usize,
    min_images_per_s: f64,
    max_logic_percent: f64,
    min_accuracy: Option<f64>,
    /// Clock the board top from the device's PLL at this many MHz (`gen --pll`), chosen
    /// below the Fmax of the design's last placement.
    pll_mhz: Option<f64>,
}

const DEPLOYMENTS: &[Deployment] = &[
    Deployment {
        key: "a",
        what: "MNIST MLP 784-128b-10, T = 1, 1-bit pixels",
        model: "models/mnist-mlp-t1-1bit-ulx3s.json",
        dataset: "mnist",
        board: "ulx3s",
        test_images: 10_000,
        serial_images: 100,
        min_images_per_s: 1_800_000.0,
        max_logic_percent: 85.0,
        min_accuracy: None,
        pll_mhz: None,
    },
    Deployment {
        key: "b",
        what: "selected Fashion-MNIST model (93.63 %)",
        model: "models/fashion-mnist-t1-ulx3s.json",
        dataset: "fashion-mnist",
        board: "ulx3s",
        test_images: 10_000,
        serial_images: 100,
        min_images_per_s: 4_300.0,
        max_logic_percent: 85.0,
        min_accuracy: None,
        pll_mhz: None,
    },
    Deployment {
        key: "c",
        what: "iCEBreaker Fashion-MNIST model",
        model: "models/fashion-mnist-t1-icebreaker.json",
        dataset: "fashion-mnist",
        board: "icebreaker",
        test_images: 10_000,
        serial_images: 100,
        min_images_per_s: 2_000.0,
        max_logic_percent: 90.0,
        min_accuracy: Some(90.0),
        pll_mhz: Some(30.0),
    },
    Deployment {
        key: "d",
        what: "CSS T = 8 Fashion-MNIST model",
        model: "models/fashion-mnist-css-t8-ulx3s.json",
        dataset: "fashion-mnist",
        board: "ulx3s",
        test_images: 10_000,
        serial_images: 0,
        min_images_per_s: 4_700.0,
        max_logic_percent: 85.0,
        min_accuracy: None,
        pll_mhz: None,
    },
];

/// What to run.
pub struct Setup<'a> {
    /// Deployment keys (`a`–`d`); empty: all.
    pub only: &'a [String],
    /// At most this many test images per deployment (the full test set by default).
    pub limit: Option<usize>,
    /// Stop after co-simulation (no synthesis).
    pub skip_flow: bool,
}

#[derive(Serialize)]
struct CosimRow {
    images: usize,
    bit_exact: usize,
    cycles_per_image: f64,
    rtl_accuracy_percent: Option<f64>,
    seconds: f64,
}

#[derive(Serialize)]
struct Row {
    key: String,
    what: String,
    model: String,
    model_sha256: String,
    board: String,
    device: String,
    fold_args: String,
    cycles_per_image: u64,
    estimate: estimate::Estimate,
    /// The estimate's logic against Yosys' (LUT4 + 2 per CCU2C and per TRELLIS_DPR16X4 on
    /// ECP5, as the estimate counts them), in percent of Yosys'.
    estimate_error_percent: Option<f64>,
    cosim: Option<CosimRow>,
    serial: Option<(usize, usize)>,
    flow: Option<spikeforge_flow::Report>,
    logic_percent: Option<f64>,
    fmax_mhz: Option<f64>,
    images_per_s_on_chip: Option<f64>,
    /// At the design's clock: the board's, or its PLL's when there is one.
    images_per_s_at_board_clock: f64,
    board_clock_mhz: f64,
    /// The PLL that clocks the design, if any.
    pll: Option<String>,
    board_clock_met: Option<bool>,
    target_images_per_s: f64,
    target_logic_percent: f64,
    target_accuracy_percent: Option<f64>,
    meets_targets: Option<bool>,
    seconds: f64,
}

pub fn run(setup: &Setup, out: &Path) -> Result<()> {
    if let Some(k) = setup
        .only
        .iter()
        .find(|k| !DEPLOYMENTS.iter().any(|d| d.key == k.as_str()))
    {
        anyhow::bail!("--only: no deployment `{k}`; the deployments are a, b, c and d");
    }
    let root = PathBuf::from("out/deploy");
    let mut rows = Vec::new();
    for d in DEPLOYMENTS
        .iter()
        .filter(|d| setup.only.is_empty() || setup.only.iter().any(|k| k == d.key))
    {
        println!("== ({}) {} on {}", d.key, d.what, d.board);
        let row = deploy(d, setup, &root.join(d.key))
            .with_context(|| format!("deployment ({}) {}", d.key, d.what))?;
        rows.push(row);
        // Written after every deployment: a long run leaves what it has finished.
        let json = serde_json::to_string_pretty(&rows)? + "\n";
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    }
    println!("\n{}", table(&rows));
    println!("wrote {}", out.display());
    Ok(())
}

fn deploy(d: &Deployment, setup: &Setup, dir: &Path) -> Result<Row> {
    let started = Instant::now();
    let (model, name) = (super::load_model(Path::new(d.model))?, d.model.to_string());
    let board = spikeforge_constraints::board(d.board)
        .with_context(|| format!("no board `{}`", d.board))?;
    let device = super::target(&board.target)?;
    // The folding may fill the device up to the deployment's logic target (`--max-util`).
    let caps = autofold::Caps::max_util(d.max_logic_percent);
    let choice = autofold::choose(&model, device, caps, &[])?;
    let fold_args = estimate::fold_args(&model, &choice.folding);
    println!(
        "folding: {fold_args} ({} cycles per image, estimated {:.0} {})",
        choice.estimate.cycles_per_image, choice.estimate.total.cells, device.logic_unit
    );
    let rtl = dir.join("rtl");
    let options = GenOptions {
        board: Some(board),
        pll_hz: d.pll_mhz.map(|mhz| mhz * 1e6),
    };
    let design = super::generate_into(&model, &choice.folding, options, &rtl)?;
    let cosim = cosim(d, setup, &model, &name, &rtl)?;
    let serial = serial(d, setup, &model, &rtl, board)?;
    let flow = if setup.skip_flow {
        None
    } else {
        let m = &design.manifest;
        let top = &m.board.as_ref().expect("generated with a board").top;
        // `gen` wrote this plan's script (with its header) into the design directory.
        let plan = flow::plan(
            device,
            Some(board),
            m.pll_hz(),
            top,
            &m.sources,
            m.folding.dsp,
        );
        let spinner = super::spinner(format!("({}) synthesis", d.key));
        let t = Instant::now();
        let report = spikeforge_flow::run_with(
            &rtl,
            &plan,
            m,
            &mut |what| {
                spinner.set_message(format!(
                    "({}) {what} ({:.0} s)",
                    d.key,
                    t.elapsed().as_secs_f64()
                ))
            },
            false,
        );
        spinner.finish_and_clear();
        let report = report?;
        println!("{}", spikeforge_flow::table(&report));
        Some(report)
    };
    let cycles = design.manifest.cycles_per_image;
    let board_clock_mhz = board.clock_hz as f64 / 1e6;
    let bm = design
        .manifest
        .board
        .as_ref()
        .expect("generated with a board");
    let clock_hz = bm.core_clock_hz();
    let fmax_mhz = flow
        .as_ref()
        .and_then(|r| r.placed.as_ref())
        .map(|p| p.fmax_mhz);
    let images_per_s_on_chip = fmax_mhz.map(|f| f * 1e6 / cycles as f64);
    let logic_percent = flow.as_ref().map(|r| r.logic_percent());
    let accuracy = cosim.as_ref().and_then(|c| c.rtl_accuracy_percent);
    let estimate_error_percent = flow
        .as_ref()
        .map(|r| super::error_percent(choice.estimate.total.luts, r.synthesised.luts));
    let meets_targets = match (images_per_s_on_chip, logic_percent) {
        (Some(ips), Some(lp)) => Some(
            ips >= d.min_images_per_s
                && lp <= d.max_logic_percent
                && flow.as_ref().is_some_and(|r| r.meets_clock())
                && d.min_accuracy
                    .is_none_or(|m| accuracy.is_some_and(|a| a >= m))
                && cosim.as_ref().is_none_or(|c| c.bit_exact == c.images),
        ),
        _ => None,
    };
    Ok(Row {
        key: d.key.into(),
        what: d.what.into(),
        model_sha256: spikeforge_model::model_hash(&model),
        model: name,
        board: board.name.clone(),
        device: device.target.clone(),
        fold_args,
        cycles_per_image: cycles,
        estimate: choice.estimate.total,
        estimate_error_percent,
        cosim,
        serial,
        board_clock_met: flow.as_ref().map(|r| r.meets_clock()),
        flow,
        logic_percent,
        fmax_mhz,
        images_per_s_on_chip,
        images_per_s_at_board_clock: clock_hz as f64 / cycles as f64,
        board_clock_mhz,
        pll: bm
            .pll
            .as_ref()
            .map(|p| format!("{} MHz, {}", p.clock_hz as f64 / 1e6, p.setting)),
        target_images_per_s: d.min_images_per_s,
        target_logic_percent: d.max_logic_percent,
        target_accuracy_percent: d.min_accuracy,
        meets_targets,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The tapped core on the test images, bit for bit.
fn cosim(
    d: &Deployment,
    setup: &Setup,
    model: &Model,
    name: &str,
    rtl: &Path,
) -> Result<Option<CosimRow>> {
    let t = Instant::now();
    let n = setup.limit.unwrap_or(d.test_images).min(d.test_images);
    let test = super::train::test_images(model, Path::new(name), d.dataset, None, Some(n))?;
    let (images, labels) = (test.images, Some(test.labels));
    let n = images.len() / spikeforge_model::Golden::new(model).image_len().max(1);
    let sim: Simulator = super::cosim::build(model, Some(rtl), &[], None, SimKind::Core, false)?;
    let bar = super::cosim::progress_bar(n);
    let report =
        spikeforge_cosim::cosimulate(model, &sim, &images, 0, None, &|k| bar.inc(k as u64));
    bar.finish_and_clear();
    let report = report?;
    super::cosim::conclude(&report)?;
    let rtl_accuracy_percent = labels.map(|l| {
        let correct = spikeforge_trainer::data::correct(&report.classes, &l);
        100.0 * correct as f64 / l.len().max(1) as f64
    });
    if let Some(a) = rtl_accuracy_percent {
        println!("RTL accuracy {a:.2} % on {n} test images");
    }
    Ok(Some(CosimRow {
        images: report.images,
        bit_exact: report.bit_exact,
        cycles_per_image: report.cycles as f64 / report.images.max(1) as f64,
        rtl_accuracy_percent,
        seconds: t.elapsed().as_secs_f64(),
    }))
}

/// Images in over the board top's serial line, class bytes back: `(agree, images)`.
fn serial(
    d: &Deployment,
    setup: &Setup,
    model: &Model,
    rtl: &Path,
    board: &'static spikeforge_constraints::Board,
) -> Result<Option<(usize, usize)>> {
    if d.serial_images == 0 {
        return Ok(None);
    }
    let n = setup.limit.unwrap_or(d.serial_images).min(d.serial_images);
    let test = super::train::test_images(model, rtl, d.dataset, None, Some(n))?;
    let clks = 4;
    let kind = SimKind::Serial { board: true, clks };
    let sim = super::cosim::build(model, Some(rtl), &[], Some(board), kind, false)?;
    let bar = super::cosim::progress_bar(n);
    let r = spikeforge_cosim::cosimulate_serial(model, &sim, &test.images, 0, clks, &|k| {
        bar.inc(k as u64)
    });
    bar.finish_and_clear();
    let r = r?;
    println!(
        "{}/{} class bytes over the serial line of the board top equal the golden model",
        r.agree, r.images
    );
    if let Some((i, want, got)) = r.first_mismatch {
        anyhow::bail!("image {i}: the board top sent class {got}, the golden model says {want}");
    }
    Ok(Some((r.agree, r.images)))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| design | device | logic | estimate error | Fmax | cycles/image | images/s on chip (target) | at board clock | board clock met | RTL accuracy | bit-exact |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("—".into(), f);
    for r in rows {
        s += &format!(
            "| ({}) {} | {} | {} | {} | {} | {} | {} ({:.0}) | {:.0}{} | {} | {} | {} |\n",
            r.key,
            r.what,
            r.device,
            opt(r.logic_percent, &|p| format!(
                "{p:.1} % (≤ {:.0} %)",
                r.target_logic_percent
            )),
            opt(r.estimate_error_percent, &|e| format!("{e:+.1} %")),
            opt(r.fmax_mhz, &|f| format!("{f:.1} MHz")),
            r.cycles_per_image,
            opt(r.images_per_s_on_chip, &|v| format!("{v:.0}")),
            r.target_images_per_s,
            r.images_per_s_at_board_clock,
            r.pll.as_ref().map_or(String::new(), |p| format!(
                " (PLL {})",
                p.split(',').next().unwrap_or(p)
            )),
            r.board_clock_met
                .map_or("—".into(), |m| if m { "yes" } else { "no" }.to_string()),
            opt(
                r.cosim.as_ref().and_then(|c| c.rtl_accuracy_percent),
                &|a| format!("{a:.2} %")
            ),
            r.cosim
                .as_ref()
                .map_or("—".into(), |c| format!("{}/{}", c.bit_exact, c.images)),
        );
    }
    s
}
