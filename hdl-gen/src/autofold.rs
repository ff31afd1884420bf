//! Target-driven folding: the fastest folding whose estimate fits a device under utilisation
//! caps. Layers are folded to a common cycle budget with the least area each
//! ([`fold::resolve_for_cycles`]); the budget is halved from the slowest folding while the
//! estimate fits, then bisected; with and without DSP lanes where the device has DSPs. The
//! user's `--fold` overrides hold for every candidate.

use spikeforge_constraints::Device;
use spikeforge_model::ir::Model;
use thiserror::Error;

use crate::estimate::{estimate, DesignEstimate, Estimate};
use crate::fold::{self, FoldError, FoldOverride, Folding};

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
    /// Even the slowest folding exceeds a resource.
    #[error(
        "no folding fits {device}: even the slowest ({cycles} cycles per image) needs {needed:.0} {resource}, and {cap:.0} % of the device is {allowed:.0}{hint}"
    )]
    TooLarge {
        /// The device's target name.
        device: String,
        /// The binding resource.
        resource: String,
        /// Estimated need at the slowest folding.
        needed: f64,
        /// What the cap allows.
        allowed: f64,
        /// The cap in percent.
        cap: f64,
        /// Cycles per image of the slowest folding.
        cycles: u64,
        /// What would fit instead.
        hint: String,
    },
}

/// The first resource of `e` over its cap on `device`: `(resource, needed, allowed, cap %)`.
fn overflow(e: &Estimate, device: &Device, caps: Caps) -> Option<(String, f64, f64, f64)> {
    [
        (
            format!("logic ({})", device.logic_unit),
            e.luts,
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
    .find(|(_, need, have, cap)| *need > cap * have)
    .map(|(r, need, have, cap)| (r, need, cap * have, 100.0 * cap))
}

/// The fastest folding whose estimate fits `device` under `caps`, honouring `overrides`.
pub fn choose(
    model: &Model,
    device: &Device,
    caps: Caps,
    overrides: &[FoldOverride],
) -> Result<Choice, NoFit> {
    let user_dsp = overrides.iter().any(|o| matches!(o, FoldOverride::Dsp(_)));
    let mut lane_kinds = vec![false];
    if device.dsps > 0 && !user_dsp {
        lane_kinds.push(true);
    }
    let mut best: Option<Choice> = None;
    let mut first_err = None;
    for dsp in lane_kinds {
        match search(model, device, caps, overrides, dsp) {
            Ok(c) => {
                let better = best.as_ref().is_none_or(|b| {
                    (c.estimate.cycles_per_image, c.estimate.total.luts as u64)
                        < (b.estimate.cycles_per_image, b.estimate.total.luts as u64)
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
    dsp: bool,
) -> Result<Choice, NoFit> {
    let at = |cycles: u64| -> Result<Choice, NoFit> {
        let folding = fold::resolve_for_cycles(model, cycles, dsp, overrides)?;
        let estimate = estimate(model, &folding, device.family);
        Ok(Choice { folding, estimate })
    };
    let slowest = fold::slowest_cycles(model);
    let fastest = fold::pipeline_cycles(model, &fold::for_cycles(model, 1)).max(1);
    let slow = at(slowest)?;
    if let Some((resource, needed, allowed, cap)) = overflow(&slow.estimate.total, device, caps) {
        return Err(NoFit::TooLarge {
            device: device.target.clone(),
            resource,
            needed,
            allowed,
            cap,
            cycles: slow.estimate.cycles_per_image,
            hint: larger_devices(model, device, caps),
        });
    }
    // Halve the budget while it fits, then bisect (geometrically) between the last budget
    // that fitted and the first that did not.
    let (mut good, mut good_budget) = (slow, slowest);
    let mut bad_budget = None;
    while good_budget > fastest {
        let budget = (good_budget / 2).max(fastest);
        let c = at(budget)?;
        if overflow(&c.estimate.total, device, caps).is_some() {
            bad_budget = Some(budget);
            break;
        }
        (good, good_budget) = (c, budget);
    }
    if let Some(mut bad) = bad_budget {
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
        .filter(|d| overflow(&estimate(model, &slowest, d.family).total, d, caps).is_none())
        .map(|d| d.target.clone())
        .collect();
    if fit.is_empty() {
        "; no supported device holds it: binary layers or fewer channels shrink the weights and the logic".into()
    } else {
        format!("; it fits {}", fit.join(", "))
    }
}
