#!/usr/bin/env python3
"""Refits the estimate's per-family weights (hdl-gen/src/estimate.rs, `weights`) to the
per-module Yosys cells of `spikeforge bench --estimate` (its JSON, default
out/bench-estimate.json).

Per module: Yosys logic (LUT4 + 2 per carry cell + 2 per distributed-RAM cell on ECP5,
SB_LUT4 on iCE40) minus the distributed-RAM cells the estimate places itself, against the
operator counts of the generated module (`cost.rs`) and a constant per module kind.
Non-negative least squares, residuals weighted by 1/sqrt(LUT4) (large modules would
otherwise decide everything). Then the flattening factor: flat design total over the sum of
its modules. Prints the weights and, per design, the refitted estimate against Yosys.

Needs numpy and scipy (`pip install numpy scipy`); a development tool, not used by the
build or the tests.
"""

import json
import sys

import numpy as np
from scipy.optimize import nnls

OPS = ["add", "merged_add", "cmp", "eq", "mux", "logic", "rom_bit", "ram_bit"]
KINDS = ["Window", "Mvu", "Pool", "Converter", "Head", "Glue"]


def kind(name):
    last = name.rsplit("_", 1)[-1]
    return {
        "swg": "Window",
        "mvu": "Mvu",
        "pool": "Pool",
        "head": "Head",
        "reorder": "Converter",
    }.get(last, "Converter" if last.startswith("dwc") else "Glue")


def family(target):
    return "ice40" if target.startswith("ice40") else "ecp5"


def features(m):
    c, mem = m["counts"], m["memories"]
    ops = [
        c["add"],
        c["merged_add"],
        c["cmp"],
        c["eq"],
        c["mux"] + mem["distributed_mux"],
        c["logic"],
        mem["rom_logic_bits"],
        mem["ram_logic_bits"],
    ]
    onehot = [1.0 if kind(m["module"]) == k else 0.0 for k in KINDS]
    return ops + onehot


def target(m):
    return m["yosys"]["luts"] - 2.0 * m["memories"]["distributed_cells"]


def fit(rows, fam, leave_out=()):
    xs, ys, ws = [], [], []
    for r in rows:
        if family(r["target"]) != fam or r["name"] in leave_out:
            continue
        for m in r["modules"]:
            y = target(m)
            xs.append(features(m))
            ys.append(y)
            ws.append(1.0 / np.sqrt(max(y, 1.0)))
    x, y, w = np.array(xs), np.array(ys), np.array(ws)
    coef, _ = nnls(x * w[:, None], y * w)
    return coef


def module_estimate(coef, m):
    return float(np.dot(coef, features(m))) + 2.0 * m["memories"]["distributed_cells"]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "out/bench-estimate.json"
    leave_out = tuple(sys.argv[2:])
    rows = json.load(open(path))
    for fam in ["ecp5", "ice40"]:
        fam_rows = [r for r in rows if family(r["target"]) == fam]
        if not fam_rows:
            continue
        coef = fit(rows, fam, leave_out)
        sums = [sum(module_estimate(coef, m) for m in r["modules"]) for r in fam_rows]
        flatten = sum(r["yosys"]["luts"] for r in fam_rows) / max(sum(sums), 1.0)
        print(f"== {fam}: " + ", ".join(f"{n} {v:.3f}" for n, v in zip(OPS, coef)))
        print("   base " + ", ".join(f"{k} {v:.1f}" for k, v in zip(KINDS, coef[len(OPS):])))
        print(f"   flatten {flatten:.3f}")
        for r, s in zip(fam_rows, sums):
            est, syn = flatten * s, r["yosys"]["luts"]
            held = " (held out)" if r["name"] in leave_out else ""
            print(
                f"   {r['name']:<18} now {r['estimate']['luts']:>8.0f} "
                f"({100 * (r['estimate']['luts'] - syn) / syn:+6.1f} %)  refit {est:>8.0f} "
                f"({100 * (est - syn) / syn:+6.1f} %)  yosys {syn:>6}{held}"
            )


if __name__ == "__main__":
    main()
