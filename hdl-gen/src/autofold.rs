//! Target-driven folding: the fastest folding whose estimate fits a device under utilisation
//! caps. Layers are folded to a common cycle budget with the least area each, and a dense
//! first layer takes as many pixels per beat as the budget needs
//! ([`fold::resolve_for_cycles`]); budgets are halved from the slowest folding, the fastest
//! that fits is bisected towards the next; with and without DSP lanes where the device has
//! DSPs, weights where Yosys puts them or all in block RAM, and up to 1, 2 or 4 output
//! positions per weight fetch (MMV). The user's `--fold` overrides hold for every candidate.

use spikeforge_constraints::{Device, Family};
use spikeforge_model::ir::Model;
use thiserror::Error;

use crate::estimate::{estimate, DesignEstimate, Estimate};
use crate::fold::{self, DspLanes, FoldError, FoldOverride, Folding};

/// The share of each resource a chosen folding may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    /// Logic (LUT4 / LC / LUT6).
    pub logic: f64,
    /// Block RAM.
    pub ram: f64,
    /// DSP blocks.
    pub dsp: f64,
}

impl Default for Caps {
    /// 85 % of logic (room for placement and routing), 90 % of block RAM and DSPs.
    fn default() -> Self {
        Caps {
            logic: 0.85,
            ram: 0.90,
            dsp: 0.90,
        }
    }
}

impl Caps {
    /// `percent` of the logic; block RAM and DSPs at 90 %, or `percent` when lower
    /// (`--max-util`).
    pub fn max_util(percent: f64) -> Self {
        let p = percent / 100.0;
        Caps {
            logic: p,
            ram: p.min(0.9),
            dsp: p.min(0.9),
        }
    }
}

/// The chosen folding and its estimate.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Folding.
    pub folding: Folding,
    /// Its estimate on the device.
    pub estimate: DesignEstimate,
}

/// Why no folding fits.
#[derive(Debug, Error)]
pub enum NoFit {
    /// The overrides do not resolve.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// The model has no RTL (more classes than the shell sends).
    #[error(transparent)]
    Unsupported(#[from] Box<crate::GenError>),
    /// Every folding tried exceeds a resource.
    #[error(
        "no folding fits {device}: the closest ({cycles} cycles per image) needs {needed:.0} {resource}, and {cap:.0} % of the device is {allowed:.0}{hint}"
    )]
    TooLarge {
        /// The device's target name.
        device: String,
        /// The binding resource.
        resource: String,
        /// Estimated need of the folding that came closest.
        needed: f64,
        /// What the cap allows.
        allowed: f64,
        /// The cap in percent.
        cap: f64,
        /// Cycles per image of the folding that came closest.
        cycles: u64,
        /// What would fit instead.
        hint: String,
    },
}

/// The resource of `e` furthest over its cap on `device`, if any: `(resource, needed,
/// allowed, cap %)`.
fn overflow(e: &Estimate, device: &Device, caps: Caps) -> Option<(String, f64, f64, f64)> {
    [
        (
            format!("logic ({})", device.logic_unit),
            e.cells,
            device.logic as f64,
            caps.logic,
        ),
        (
            format!("block RAM ({})", device.ram_block_cell),
            e.ram_blocks,
            device.ram_blocks as f64,
            caps.ram,
        ),
        ("DSP blocks".into(), e.dsps, device.dsps as f64, caps.dsp),
        ("flip-flops".into(), e.ffs, device.ffs as f64, 1.0),
    ]
    .into_iter()
    .filter(|(_, need, have, cap)| *need > cap * have)
    .map(|(r, need, have, cap)| (r, need, cap * have, 100.0 * cap))
    .max_by(|a, b| (a.1 / a.2.max(1.0)).total_cmp(&(b.1 / b.2.max(1.0))))
}

/// The fastest folding whose estimate fits `device` under `caps`, honouring `overrides`.
pub fn choose(
    model: &Model,
    device: &Device,
    caps: Caps,
    overrides: &[FoldOverride],
) -> Result<Choice, NoFit> {
    let user_dsp = overrides.iter().any(|o| matches!(o, FoldOverride::Dsp(_)));
    let mut lane_kinds = vec![DspLanes::Off];
    if device.dsps > 0 && !user_dsp {
        // As many products as the cap allows; lanes beyond them stay in LUTs.
        let limit = (caps.dsp * device.dsps as f64).floor() as u32;
        if limit > 0 {
            lane_kinds.push(DspLanes::AtMost(limit));
        }
    }
    // Weight ROMs where Yosys' costs put them, or all in block RAM (which frees the logic
    // that wide, shallow ROMs of fast foldings take).
    let user_weights = overrides
        .iter()
        .any(|o| matches!(o, FoldOverride::BlockWeights(_)));
    let stores: &[bool] = if user_weights {
        &[false]
    } else {
        &[false, true]
    };
    // One output position per weight fetch, or up to 2 or 4 in place of PE lanes (narrower
    // weight words: fewer block RAMs for a wide layer's weights at the same rate).
    let user_mmv = overrides
        .iter()
        .any(|o| matches!(o, FoldOverride::MaxMmv(_)));
    let mmvs: &[u32] = if user_mmv { &[1] } else { &[1, 2, 4] };
    // On ECP5 a block RAM's output (5.8 ns) and a multiplier (3.9 ns) each take most of a
    // cycle, and a routed design's critical path crossed both: register after each. On
    // iCE40 the flip-flops would take logic cells of their own. `--fold regs=` overrides.
    let operand_regs = device.family == Family::Ecp5;
    let mut best: Option<Choice> = None;
    let mut first_err = None;
    for (&dsp, &block, &mmv) in lane_kinds.iter().flat_map(|d| {
        stores
            .iter()
            .flat_map(move |b| mmvs.iter().map(move |v| (d, b, v)))
    }) {
        let mut with = vec![
            FoldOverride::BlockWeights(block),
            FoldOverride::MaxMmv(mmv),
            FoldOverride::OperandRegs(operand_regs),
        ];
        with.extend_from_slice(overrides);
        match search(model, device, caps, &with, dsp) {
            Ok(c) => {
                let better = best.as_ref().is_none_or(|b| {
                    (c.estimate.cycles_per_image, c.estimate.total.cells as u64)
                        < (b.estimate.cycles_per_image, b.estimate.total.cells as u64)
                });
                if better {
                    best = Some(c);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (best, first_err) {
        (Some(c), _) => Ok(c),
        (None, Some(e)) => Err(e),
        (None, None) => unreachable!("at least one lane kind is tried"),
    }
}

fn search(
    model: &Model,
    device: &Device,
    caps: Caps,
    overrides: &[FoldOverride],
    dsp: DspLanes,
) -> Result<Choice, NoFit> {
    let at = |cycles: u64| -> Result<Choice, NoFit> {
        let folding = fold::resolve_for_cycles(model, cycles, dsp, overrides)?;
        let estimate = estimate(model, &folding, device.family).map_err(Box::new)?;
        Ok(Choice { folding, estimate })
    };
    let slowest = fold::slowest_cycles(model);
    // Only its cycles are needed, not an estimate of the largest design.
    let fastest =
        fold::pipeline_cycles(model, &fold::resolve_for_cycles(model, 1, dsp, overrides)?).max(1);
    // Budgets from the slowest folding down, halving; the fastest that fits wins. A faster
    // folding can need fewer block RAMs (wider ROM words pack better), so a budget that does
    // not fit does not end the walk; logic far over its cap does (it only grows).
    let mut budget = slowest;
    let (mut good, mut first_bad): (Option<(Choice, u64)>, Option<u64>) = (None, None);
    let mut least_over: Option<(f64, Choice)> = None;
    loop {
        let c = at(budget)?;
        match overflow(&c.estimate.total, device, caps) {
            None => {
                good = Some((c, budget));
                first_bad = None;
            }
            Some((_, need, allowed, _)) => {
                first_bad.get_or_insert(budget);
                let ratio = need / allowed.max(1.0);
                if least_over.as_ref().is_none_or(|(r, _)| ratio < *r) {
                    least_over = Some((ratio, c.clone()));
                }
                if c.estimate.total.cells > 1.5 * caps.logic * device.logic as f64 {
                    break;
                }
            }
        }
        if budget <= fastest {
            break;
        }
        budget = (budget / 2).max(fastest);
    }
    let Some((mut good, mut good_budget)) = good else {
        let c = least_over.map(|(_, c)| c).expect("a budget was tried");
        let (resource, needed, allowed, cap) =
            overflow(&c.estimate.total, device, caps).expect("it overflowed");
        return Err(NoFit::TooLarge {
            device: device.target.clone(),
            resource,
            needed,
            allowed,
            cap,
            cycles: c.estimate.cycles_per_image,
            hint: larger_devices(model, device, caps),
        });
    };
    // Bisect (geometrically) towards the faster budget that did not fit.
    if let Some(mut bad) = first_bad.filter(|&b| b < good_budget) {
        for _ in 0..4 {
            let mid = ((good_budget as f64) * (bad as f64)).sqrt() as u64;
            if mid <= bad || mid >= good_budget {
                break;
            }
            let c = at(mid)?;
            if overflow(&c.estimate.total, device, caps).is_some() {
                bad = mid;
            } else {
                (good, good_budget) = (c, mid);
            }
        }
    }
    Ok(good)
}

/// The devices on which the slowest folding fits, as a hint.
fn larger_devices(model: &Model, device: &Device, caps: Caps) -> String {
    let slowest = fold::for_cycles(model, u64::MAX);
    let fit: Vec<String> = spikeforge_constraints::devices()
        .iter()
        .filter(|d| d.target != device.target && !d.nextpnr_device.is_empty())
        .filter(|d| {
            estimate(model, &slowest, d.family).is_ok_and(|e| overflow(&e.total, d, caps).is_none())
        })
        .map(|d| d.target.clone())
        .collect();
    if fit.is_empty() {
        "; no supported device holds it: binary layers or fewer channels shrink the weights and the logic".into()
    } else {
        format!("; it fits {}", fit.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spikeforge_model::{arch, random::random_model};

    fn model(a: &str, t: u32) -> Model {
        random_model(&arch::parse(a).unwrap(), t, 7).unwrap()
    }

    #[test]
    fn the_choice_fits_and_twice_its_speed_does_not() {
        let device = spikeforge_constraints::device("ice40-up5k").unwrap();
        for (a, t) in [("8x8x1-8C3i8-MP2-8C3b-10C1i4-GAP", 2), ("64-32b-10", 1)] {
            let m = model(a, t);
            let caps = Caps::default();
            let c = choose(&m, device, caps, &[]).unwrap();
            assert!(overflow(&c.estimate.total, device, caps).is_none(), "{a}");
            let fastest = fold::pipeline_cycles(
                &m,
                &fold::resolve_for_cycles(&m, 1, DspLanes::Off, &[]).unwrap(),
            );
            let cycles = c.estimate.cycles_per_image;
            if cycles > fastest {
                let faster = fold::resolve_for_cycles(&m, cycles / 2, DspLanes::Off, &[]).unwrap();
                let e = estimate(&m, &faster, device.family).unwrap();
                assert!(
                    e.cycles_per_image >= cycles || overflow(&e.total, device, caps).is_some(),
                    "{a}: {} cycles fit, and {} would too",
                    cycles,
                    e.cycles_per_image
                );
            }
        }
    }

    #[test]
    fn a_dsp_budget_puts_whole_lanes_on_dsps_and_the_rest_in_luts() {
        // The pixel layer at PE 8 on a device with 8 DSPs: 90 % of them is 7 products.
        let m = model("8x8x1-8C3i8-MP2-8C3b-10C1i8-GAP", 1);
        let overrides = [
            FoldOverride::Layer("0".into(), fold::LayerFold::new(8, 1)),
            FoldOverride::Layer("2".into(), fold::LayerFold::new(2, 4)),
            FoldOverride::Dsp(DspLanes::AtMost(7)),
        ];
        let folding = fold::resolve(&m, &overrides).unwrap();
        let geo = spikeforge_model::geometry::model_geometry(&m);
        let widths = spikeforge_model::widths::analyse(&m).unwrap();
        let ctxs = crate::rtl::LayerCtx::all(&m, &folding, &geo, &widths);
        // Layers 1 (binary) and 2 (integer on spikes) have no products.
        assert_eq!(
            ctxs.iter().map(|c| c.dsp_lanes).collect::<Vec<_>>(),
            [7, 0, 0]
        );
        let e = estimate(
            &m,
            &folding,
            spikeforge_constraints::device("ice40-up5k").unwrap().family,
        )
        .unwrap();
        assert_eq!(e.total.dsps, 7.0);
    }

    #[test]
    fn a_named_layer_keeps_its_folding() {
        let m = model("8x8x1-8C3i8-MP2-8C3b-10C1i4-GAP", 1);
        let device = spikeforge_constraints::device("ecp5-85k").unwrap();
        let fixed = FoldOverride::Layer("1".into(), fold::LayerFold::new(2, 1));
        let c = choose(&m, device, Caps::default(), &[fixed]).unwrap();
        assert_eq!(c.folding.layers[1], fold::LayerFold::new(2, 1));
    }

    #[test]
    fn operand_registers_are_chosen_for_ecp5_only_unless_asked() {
        let m = model("8x8x1-8C3i8-MP2-8C3b-10C1i4-GAP", 1);
        let regs = |target: &str, overrides: &[FoldOverride]| {
            let device = spikeforge_constraints::device(target).unwrap();
            let c = choose(&m, device, Caps::default(), overrides).unwrap();
            c.folding.operand_regs
        };
        assert!(regs("ecp5-85k", &[]));
        assert!(!regs("ice40-up5k", &[]));
        assert!(!regs("ecp5-85k", &[FoldOverride::OperandRegs(false)]));
        assert!(regs("ice40-up5k", &[FoldOverride::OperandRegs(true)]));
    }

    #[test]
    fn nothing_fits_names_the_resource() {
        let m = model("64x64x1-64C3i8-128C3i8-10C1i8-GAP", 1);
        let device = spikeforge_constraints::device("ice40-up5k").unwrap();
        let e = choose(&m, device, Caps::default(), &[]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("no folding fits ice40-up5k"), "{text}");
        assert!(
            text.contains("block RAM") || text.contains("logic"),
            "{text}"
        );
    }
}
