#!/usr/bin/env bash
# Training speed: spikeforge against PyTorch and snnTorch on the identical network, same batch,
# same thread count. Installs torch and snntorch from PyPI into bench/.venv (large; not a CI
# dependency), then prints both and the ratios.
#   bash bench/torch_bench.sh [ARCH] [THREADS] [--epoch]
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-28x28x1-32C3-MP2-64C3-MP2-128C3-10C3-GAP}
THREADS=${2:-2}
EPOCH=${3:-}
if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q torch snntorch
fi
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
cargo run --release -q -- bench --train "$ARCH" --batch 64 --steps 50 $EPOCH --out out/bench-train.json
bench/.venv/bin/python bench/torch_train_step.py --arch "$ARCH" --threads "$THREADS" --batch 64 --steps 50 $EPOCH --out out/bench-torch.json
python3 - <<'PY'
import json
ours = json.load(open("out/bench-train.json"))
for row in json.load(open("out/bench-torch.json")):
    r = ours["step_ms_median"] / row["step_ms_median"]
    line = f"step: spikeforge {ours['step_ms_median']:.1f} ms, {row['framework']} {row['step_ms_median']:.1f} ms -> ratio {r:.2f}"
    if ours.get("epoch_s") and row.get("epoch_s"):
        line += f"; epoch {ours['epoch_s']:.1f} s vs {row['epoch_s']:.1f} s -> {ours['epoch_s'] / row['epoch_s']:.2f}"
    print(line)
PY
