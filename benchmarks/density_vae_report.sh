#!/usr/bin/env bash
# Density VAE + attention U-Net report at CPU scale (docs/density_vae.md §7, §10;
# issue 8). Not run in CI.
#
#   bash benchmarks/density_vae_report.sh [WORKDIR]      (default runs/density)
#
# Data: the shared Perov-5 validation and test CSVs (7,572 crystals; set PEROV to their folder)
# plus pymatgen's AFLOW prototypes and 1,000 element-substituted variants, split 80/10/10 by
# crystal (material id or parent prototype). Steps (each skipped when its output exists):
#   1. density-vae-fast, FIRST_MINUTES (default 38) on one thread
#   2. a second run that keeps the VAE of step 1 and trains on with a new GroupNorm U-Net
#      (the fast preset's norm; step 1's BatchNorm U-Net mixed the statistics of decoded and
#      true densities) and beta 0.1 (step 1's beta 1 held the KL at about 57 nats, too few for
#      the atoms' positions and species), SECOND_MINUTES (default 70)
#   3. a third run that starts from all of step 2 with Adam at 3e-4, THIRD_MINUTES (default 33)
#   4. the paper's single-cell metrics on the held-out test crystals (3 rotations each) for
#      the three runs
#   5. interpolation images between held-out crystals, prior samples with the nearest-neighbour
#      distance comparison against real crystals
#   6. benchmarks: grid construction (crystals per second) and training steps per second for
#      both presets
set -euo pipefail
W=${1:-runs/density}
DA=${DA:-.venv/bin/deepatoms}
PY=${PY:-.venv/bin/python}
P=${PEROV:-../shared/data/perov_5}
export OMP_NUM_THREADS=1
DATA=(--data "$P/val.csv" --data "$P/test.csv" --data prototypes:1000)
mkdir -p "$W"
[ -f "$W/fast/model.pt" ] || $DA crystals train "${DATA[@]}" --out "$W/fast" \
    --set model.unet.norm=batch --set train.max_time="${FIRST_MINUTES:-38}" \
    --set train.num_threads=1
[ -f "$W/fast_gn/model.pt" ] || $DA crystals train "${DATA[@]}" --out "$W/fast_gn" \
    --init "$W/fast" --init-part vae --set train.beta=0.1 \
    --set train.max_time="${SECOND_MINUTES:-70}" \
    --set train.num_threads=1
[ -f "$W/fast_gn2/model.pt" ] || $DA crystals train "${DATA[@]}" --out "$W/fast_gn2" \
    --init "$W/fast_gn" --init-part all --set train.beta=0.1 --set train.lr=3e-4 \
    --set train.max_time="${THIRD_MINUTES:-33}" --set train.num_threads=1
for r in fast fast_gn fast_gn2; do
    [ -f "$W/${r}_eval_test/metrics.json" ] || $DA crystals evaluate "$W/$r" "${DATA[@]}" \
        --split test --out "$W/${r}_eval_test"
done
M="$W/fast_gn2"
mkdir -p "$W/latent"
# Perov-5 test rows 0 and 1 (cubic perovskites) and a rock-salt prototype
[ -f "$W/latent/interp_perov.extxyz" ] || $DA crystals interpolate "$M" "$P/test.csv@0" \
    "$P/test.csv@1" --steps 3 --no-rotate --out "$W/latent/interp_perov.extxyz" \
    --image "$W/latent/interp_perov.png"
[ -f "$W/latent/prior.extxyz" ] || $DA crystals sample "$M" -n 500 --seed 0 \
    --out "$W/latent/prior.extxyz" --images "$W/latent/prior_images" --compare "$P/test.csv" \
    --json > "$W/latent/prior.json"
[ -f "$W/grid_benchmark.json" ] || $PY benchmarks/density_grid.py \
    | tee "$W/grid_benchmark.log" | tail -1 > "$W/grid_benchmark.json"
[ -f "$W/train_steps.json" ] || $PY benchmarks/density_train_steps.py --threads 1 \
    | tee "$W/train_steps.log" | tail -1 > "$W/train_steps.json"
