#!/usr/bin/env bash
# The main job of `make demo`: QM9 subset → train schnet-fast on U0 → evaluate → predict.
# Runs in a few minutes on 2 CPU cores. Usage: examples/demo.sh [RUN_FOLDER]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-demo_run}"
mkdir -p "$work"
data="$work/qm9_demo.h5"
run="$work/schnet_fast_U0"

echo "== 1/4 build a QM9 subset (6,000 molecules from the installed qm9pack data)"
if [ ! -f "$data" ]; then
  deepatoms data qm9 --out "$data" --limit 6000 --seed 0
fi
deepatoms data info "$data" | head -20

echo "== 2/4 train schnet-fast on U0 (3 minutes of CPU time at most)"
rm -rf "$run"
deepatoms train --preset schnet-fast --data "$data" --target U0 --out "$run" \
  --n-train 5000 --n-val 500 --max-time 3 --seed 0

echo "== 3/4 evaluate on the held-out test split"
deepatoms evaluate "$run" --data "$data" --split test

echo "== 4/4 predict molecules from a shipped XYZ file"
deepatoms predict "$run/model.pt" "$here/molecules.xyz" --out "$work/predictions.csv" --overwrite
echo "demo finished: run folder $run, predictions $work/predictions.csv"
