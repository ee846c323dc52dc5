#!/usr/bin/env bash
# Grammar VAE + latent regressors + ICM inverse design on QM9 at CPU scale
# (specs/grammar-vae.md §4-§7, §9; issue 7). Not run in CI.
#
#   bash benchmarks/grammar_vae_report.sh [WORKDIR]      (default runs/gvae)
#
# Steps (each skipped when its output exists, so the script can be re-run after an interruption;
# VAE training resumes from its last checkpoint):
#   1. QM9 SMILES with HOMO/LUMO/gap (eV) and a seeded 80/10/10 split (all 130,831 molecules)
#   2. grammar-vae-qm9-fast on 20,000 training SMILES (VAE_MINUTES of wall time, default 42)
#   3. generative metrics on the test split: reconstruction, prior validity, ELBO, active dims
#   4. latent regressors for LUMO, gap and HOMO (test MAE on the test split)
#   5. baselines: ridge / MLP / random forest on Morgan fingerprints, 5-fold CV on 10,000 SMILES
#   6. SchNet LUMO and gap models (schnet-fast, 20,000 QM9 molecules, 20 min each) as the
#      independent evaluator (the gap model is the one of benchmarks/gschnet_report.sh if present)
#   7. ICM towards LUMO in [-1, 0] eV and gap in [4, 6] eV (targets -0.5 and 5.0 eV), 10^4
#      prior samples, 20 iterations, top 100
#   8. independent check: ETKDG + MMFF, GFN2-xTB relaxation, SchNet LUMO/gap, for the candidates
#      and for 300 training molecules under the same evaluator
set -euo pipefail
W=${1:-runs/gvae}
DA=${DA:-.venv/bin/deepatoms}
export OMP_NUM_THREADS=1
mkdir -p "$W"
D="$W/qm9_smiles.csv"
[ -f "$D" ] || $DA data qm9-smiles "$D"
[ -f "$W/vae/model.pt" ] || $DA vae train --data "$D" --preset grammar-vae-qm9-fast \
    --set train.max_time="${VAE_MINUTES:-42}" --set train.num_threads=1 --out "$W/vae"
[ -f "$W/vae/metrics.json" ] || $DA vae evaluate "$W/vae" --data "$D" --split test \
    --samples 1000 --iw-samples 0
[ -f "$W/vae/regressors.pt" ] || $DA vae regress "$W/vae" --data "$D" --property lumo \
    --property gap --property homo --set regressor.max_epochs="${REG_EPOCHS:-60}"
[ -f "$W/baselines_10k.json" ] || $DA design baselines --data "$D" --property lumo \
    --property gap --property homo --limit 10000 --folds 5 --out "$W/baselines_10k.json"
G=${GAP_MODEL:-runs/gschnet/gap_schnet/model.pt}
if [ ! -f "$G" ]; then
    G="$W/gap_schnet/model.pt"
    [ -f "$G" ] || $DA data qm9 "$W/qm9.h5"
    [ -f "$G" ] || $DA train --preset schnet-fast --data "$W/qm9.h5" --target gap \
        --n-train 20000 --n-val 2000 --max-time 20 --set train.num_threads=1 --out "$W/gap_schnet"
fi
Q=${QM9_H5:-runs/gschnet/qm9gen.h5}
[ -f "$Q" ] || { Q="$W/qm9.h5"; [ -f "$Q" ] || $DA data qm9 "$Q"; }
[ -f "$W/lumo_schnet/model.pt" ] || $DA train --preset schnet-fast --data "$Q" --target lumo \
    --n-train 20000 --n-val 2000 --max-time 20 --set train.num_threads=1 --out "$W/lumo_schnet"
mkdir -p "$W/design"
[ -f "$W/design/candidates.csv" ] || $DA design run "$W/vae" --target lumo=-0.5 \
    --target gap=5.0 --window lumo=-1:0 --window gap=4:6 --samples "${SAMPLES:-10000}" \
    --iterations 20 --top 100 --seed 0 --out "$W/design/candidates.csv" \
    --xyz "$W/design/candidates.extxyz"
[ -f "$W/design/check/metrics.json" ] || $DA design check "$W/design/candidates.csv" \
    --model lumo="$W/lumo_schnet/model.pt" --model gap="$G" --window lumo=-1:0 --window gap=4:6 \
    --reference "$D" --reference-sample 300 --xtb-relax --xtb-orbitals --out "$W/design/check"
