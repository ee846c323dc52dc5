#!/usr/bin/env bash
# G-SchNet reproduction at CPU scale (docs/gschnet.md Table 1; issue 6). Not run in CI.
#
#   bash benchmarks/gschnet_report.sh [WORKDIR]      (default runs/gschnet)
#
# Steps (each skipped when its output exists, so the script can be re-run after an interruption;
# a training run resumes from its last checkpoint):
#   1. QM9 for generation (all molecules, validity-filtered) and the gap < 4.5 eV subset
#   2. gschnet-qm9-fast on a random 5,000 / 500 split (TRAIN_MINUTES of wall time, default 90)
#   3. a SchNet gap model (schnet-fast, 20,000 QM9 molecules, 20 minutes) for the gap row
#   4. fine-tuning on the gap < 4.5 eV subset (optimiser reset, FINETUNE_MINUTES, default 15)
#   5. N molecules (default 1,000) from each model at T = 0.1, and their evaluation with
#      GFN2-xTB relaxation of a 100-molecule sample and the SchNet gap model
set -euo pipefail
W=${1:-runs/gschnet}
N=${N:-1000}
DA=${DA:-.venv/bin/deepatoms}
export OMP_NUM_THREADS=1
mkdir -p "$W"
[ -f "$W/qm9gen.h5" ] || $DA data qm9-generative --out "$W/qm9gen.h5"
[ -f "$W/qm9gap45.h5" ] || $DA data qm9-generative --max-gap 4.5 --out "$W/qm9gap45.h5"
[ -f "$W/fast/model.pt" ] || $DA train --preset gschnet-qm9-fast --data "$W/qm9gen.h5" \
    --max-time "${TRAIN_MINUTES:-90}" --set train.num_threads=1 --out "$W/fast"
[ -f "$W/gap_schnet/model.pt" ] || $DA train --preset schnet-fast --data "$W/qm9gen.h5" \
    --target gap --n-train 20000 --n-val 2000 --max-time 20 --set train.num_threads=1 \
    --out "$W/gap_schnet"
[ -f "$W/finetune/model.pt" ] || $DA train --preset gschnet-qm9-fast --init "$W/fast/model.pt" \
    --data "$W/qm9gap45.h5" --set data.split_column=split --max-time "${FINETUNE_MINUTES:-15}" \
    --set train.num_threads=1 --out "$W/finetune"
for m in fast finetune; do
    [ -f "$W/$m/gen.db" ] || $DA generate gschnet "$W/$m" -n "$N" --temperature 0.1 --seed 0 \
        --out "$W/$m/gen.db"
    [ -f "$W/$m/eval/metrics.json" ] || $DA evaluate-generated "$W/$m/gen.db" \
        --reference "$W/qm9gen.h5" --train-split "$W/$m" --relax xtb --relax-sample 100 \
        --gap-model "$W/gap_schnet" --out "$W/$m/eval"
done
