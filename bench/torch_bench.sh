#!/usr/bin/env bash
# Training speed: spikeforge against PyTorch and snnTorch on the identical network, same batch,
# same thread count. Installs torch and snntorch from PyPI into bench/.venv (large; not a CI
# dependency), then prints both and the ratios.
#   bash bench/torch_bench.sh [ARCH] [THREADS] [--epoch] [ROUNDS]
# The frameworks take turns for ROUNDS rounds (default 3) and each reports the median of its
# rounds' median step times: on a shared machine, a slow spell then hits both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-28x28x1-32C3-MP2-64C3-MP2-128C3-10C3-GAP}
THREADS=${2:-2}
EPOCH=${3:-}
ROUNDS=${4:-3}
if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q torch snntorch
fi
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
cargo build --release -q
mkdir -p out/bench-rounds
for r in $(seq "$ROUNDS"); do
    target/release/spikeforge bench --train "$ARCH" --batch 64 --steps 50 $EPOCH \
        --out "out/bench-rounds/spikeforge-$r.json"
    target/release/spikeforge bench --train "$ARCH" --batch 64 --steps 50 $EPOCH \
        --full-precision --out "out/bench-rounds/spikeforge-fp-$r.json"
    bench/.venv/bin/python bench/torch_train_step.py --arch "$ARCH" --threads "$THREADS" \
        --batch 64 --steps 50 $EPOCH --out "out/bench-rounds/torch-$r.json"
done
ROUNDS=$ROUNDS python3 - <<'PY'
import json, os, statistics
rounds = int(os.environ["ROUNDS"])
ours = [json.load(open(f"out/bench-rounds/spikeforge-{r}.json")) for r in range(1, rounds + 1)]
ours_fp = [json.load(open(f"out/bench-rounds/spikeforge-fp-{r}.json")) for r in range(1, rounds + 1)]
theirs = [json.load(open(f"out/bench-rounds/torch-{r}.json")) for r in range(1, rounds + 1)]

def summary(rows):
    """One row: the median over rounds of the step medians (and of the epochs, if timed)."""
    row = dict(rows[0])
    row["step_ms_median"] = statistics.median(r["step_ms_median"] for r in rows)
    row["step_ms_rounds"] = [r["step_ms_median"] for r in rows]
    epochs = [r["epoch_s"] for r in rows if r.get("epoch_s")]
    row["epoch_s"] = statistics.median(epochs) if epochs else None
    return row

us, us_fp = summary(ours), summary(ours_fp)
json.dump([us, us_fp], open("out/bench-train.json", "w"), indent=2)
rows = []
for fw in [r["framework"] for r in theirs[0]]:
    rows.append(summary([next(x for x in t if x["framework"] == fw) for t in theirs]))
json.dump(rows, open("out/bench-torch.json", "w"), indent=2)
for row in rows:
    for ours_row, what in ((us, f"binary layers {us['binary_layers']}"), (us_fp, "all full precision")):
        ratio = ours_row["step_ms_median"] / row["step_ms_median"]
        line = (f"step (median of {rounds} rounds): spikeforge ({what}) "
                f"{ours_row['step_ms_median']:.1f} ms {[round(v, 1) for v in ours_row['step_ms_rounds']]}, "
                f"{row['framework']} {row['step_ms_median']:.1f} ms "
                f"{[round(v, 1) for v in row['step_ms_rounds']]} -> ratio {ratio:.2f}")
        if ours_row.get("epoch_s") and row.get("epoch_s"):
            line += (f"; epoch {ours_row['epoch_s']:.1f} s vs {row['epoch_s']:.1f} s "
                     f"-> {ours_row['epoch_s'] / row['epoch_s']:.2f}")
        print(line)
PY
